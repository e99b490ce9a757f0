//! Maildir file names as Dovecot writes and reads them (`maildir-filename.c`,
//! `maildir-filename-flags.c`):
//!
//! ```text
//! name  = base [":2," flags [ "," extra ]]
//! base  = secs ".M" usecs "P" pid "." host [",S=" size] [",W=" vsize]
//! flags = system letters D F R S T, keyword letters a-z, unknown letters: sorted by byte
//! ```

use std::cmp::Ordering;
use std::sync::{Mutex, OnceLock};

use super::state::Sub;
use crate::flags::Flags;

/// Info separator.
pub(crate) const INFO_SEP: char = ':';

/// The base name: everything before the first `:` (what `dovecot-uidlist` records and
/// what is the default message GUID).
pub(crate) fn base(name: &str) -> &str {
    name.split_once(INFO_SEP).map_or(name, |(base, _)| base)
}

/// The value of `,<kind>=<digits>` as `maildir_filename_get_size` finds it: the first
/// `,S=` anywhere in the name, digits, then `:`, `,` or the end.
pub(crate) fn size_field(name: &str, kind: u8) -> Option<u64> {
    let bytes = name.as_bytes();
    let start = bytes.windows(3).position(|w| w[0] == b',' && w[1] == kind && w[2] == b'=')? + 3;
    let mut value: u64 = 0;
    let mut end = start;
    while let Some(&digit) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        end += 1;
    }
    match bytes.get(end) {
        None | Some(b':' | b',') => Some(value),
        Some(_) => None,
    }
}

/// What the `:2,` info of a name says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Info {
    /// System flags.
    pub(crate) flags: Flags,
    /// Keyword letters `a`–`z` as indexes 0–25, in the order found.
    pub(crate) keywords: Vec<u8>,
}

/// Flags of a name, from the info after its **last** `:` (Dovecot uses `strrchr`). Names
/// without `:2,` have no flags; unknown letters are ignored here and kept by [`with_flags`].
pub(crate) fn info(name: &str) -> Info {
    let mut info = Info::default();
    let Some((_, after)) = name.rsplit_once(INFO_SEP) else { return info };
    let Some(letters) = after.strip_prefix("2,") else { return info };
    for letter in letters.bytes().take_while(|&b| b != b',') {
        if let Some(flag) = Flags::from_maildir_letter(letter) {
            info.flags |= flag;
        } else if letter.is_ascii_lowercase() {
            let index = letter - b'a';
            if !info.keywords.contains(&index) {
                info.keywords.push(index);
            }
        }
    }
    info
}

/// The directory a message file named `name` belongs in: `new/` for a bare base name, as
/// Dovecot saves mail without flags, `cur/` once it carries `:2,` info.
pub(crate) fn sub_for(name: &str) -> Sub {
    if name.contains(INFO_SEP) { Sub::Cur } else { Sub::New }
}

/// `name` with its info replaced by `flags` and keyword indexes (0–25), keeping unknown
/// letters (such as `P`, passed) and any `,extra` part after the flags, all letters sorted
/// by byte value as `maildir_filename_flags_full_set` produces them.
pub(crate) fn with_flags(name: &str, flags: Flags, keywords: &[u8]) -> String {
    let (stem, old_letters, extra) = match name.rsplit_once(INFO_SEP) {
        Some((stem, after)) => match after.strip_prefix("2,") {
            Some(letters) => match letters.split_once(',') {
                Some((letters, extra)) => (stem, letters, Some(extra)),
                None => (stem, letters, None),
            },
            None => (stem, "", None),
        },
        None => (name, "", None),
    };
    let mut letters: Vec<u8> = old_letters
        .bytes()
        .filter(|&b| Flags::from_maildir_letter(b).is_none() && !b.is_ascii_lowercase())
        .collect();
    letters.extend(flags.maildir_letters());
    letters.extend(keywords.iter().filter(|&&k| k < 26).map(|k| b'a' + k));
    letters.sort_unstable();
    letters.dedup();
    let mut out = String::with_capacity(stem.len() + letters.len() + 4);
    out.push_str(stem);
    out.push_str(":2,");
    out.extend(letters.iter().map(|&b| char::from(b)));
    if let Some(extra) = extra {
        out.push(',');
        out.push_str(extra);
    }
    out
}

/// A new unique base name `secs.M<usecs>P<pid>.<host>` (`maildir_filename_generate`):
/// when the clock has not advanced since the last name, the microseconds are incremented.
pub(crate) fn generate_base() -> String {
    let mut base = String::with_capacity(64);
    push_base(&mut base);
    base
}

/// [`temp_name`] of a [`generate_base`], formatted into one allocation (once per saved
/// message).
pub(crate) fn generate_temp_name() -> String {
    let mut name = String::with_capacity(TEMP_PREFIX.len() + 64);
    name.push_str(TEMP_PREFIX);
    push_base(&mut name);
    name
}

/// Appends a new unique base name to `out`.
fn push_base(out: &mut String) {
    static LAST: Mutex<(i64, u32)> = Mutex::new((0, 0));
    let (mut secs, mut usecs) = crate::fs::now();
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if (secs, usecs) <= *last {
        (secs, usecs) = *last;
        usecs += 1;
        if usecs == 1_000_000 {
            secs += 1;
            usecs = 0;
        }
    }
    *last = (secs, usecs);
    drop(last);
    // `{secs}.M{usecs}P{pid}.` without the formatting machinery (once a message).
    out.push_str(itoa::Buffer::new().format(secs));
    out.push_str(".M");
    push_decimal(out, u64::from(usecs));
    out.push('P');
    push_decimal(out, u64::from(process_id()));
    out.push('.');
    out.push_str(crate::fs::filename_host());
}

/// Appends `value` in decimal, as `write!(out, "{value}")` does, without the formatting
/// machinery (once a saved message).
pub(crate) fn push_decimal(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// This process's ID, asked once: `getpid` is a system call, and this was one per saved
/// message. (We never fork without exec, so it cannot go stale.)
pub(crate) fn process_id() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// The start of the names of our files in a mailbox's `tmp/` (messages being saved or
/// linked, not yet committed): a later run recognises those a killed run left behind and
/// removes them at once, where anyone else's wait for Dovecot's 36 hours. Dovecot's own
/// names start with a digit, so they never look like ours.
pub(crate) const TEMP_PREFIX: &str = "dsync-rs-tmp.";

/// The `tmp/` name of a message that gets the base name `base` when committed.
pub(crate) fn temp_name(base: &str) -> String {
    format!("{TEMP_PREFIX}{base}")
}

/// The base name a temp file of ours was named for (a temp name of an older version is
/// the base name itself).
pub(crate) fn base_of_temp(name: &str) -> &str {
    name.strip_prefix(TEMP_PREFIX).unwrap_or(name)
}

/// The process id and host of a name [`generate_base`] made (`secs.M<usecs>P<pid>.<host>`,
/// possibly after a prefix ending with `.` such as [`TEMP_PREFIX`]): who wrote the file.
pub(crate) fn writer_of(name: &str) -> Option<(u32, &str)> {
    // The seconds are the first all-digit dot-separated field; the host may hold dots.
    let mut rest = name;
    loop {
        let (field, tail) = rest.split_once('.')?;
        if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
            let (unique, host) = tail.split_once('.')?;
            let pid = unique.strip_prefix('M')?.split_once('P')?.1;
            return Some((pid.parse().ok()?, host));
        }
        rest = tail;
    }
}

/// True if `candidate` can be used as a base name: what a caller-supplied GUID must be for
/// Dovecot to keep it as the file name (no `/`, `:`, white space or control characters,
/// not hidden, not too long).
pub(crate) fn is_usable_base(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= 200
        && !candidate.starts_with('.')
        && candidate.bytes().all(|b| b > b' ' && b != 0x7f && b != b'/' && b != b':')
}

/// Dovecot's `maildir_filename_sort_cmp`: by the leading seconds, then by the `M<usecs>`
/// of the uniqueness part when both have one, then by the rest of the base name. New files
/// get UIDs in this order.
pub(crate) fn sort_cmp(a: &str, b: &str) -> Ordering {
    let (secs_a, rest_a) = leading_number(a);
    let (secs_b, rest_b) = leading_number(b);
    secs_a
        .cmp(&secs_b)
        .then_with(|| match (usecs(rest_a), usecs(rest_b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        })
        .then_with(|| base_cmp(rest_a, rest_b))
}

fn leading_number(text: &str) -> (i64, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let value = text.as_bytes()[..digits]
        .iter()
        .fold(0i64, |acc, d| acc.wrapping_mul(10).wrapping_add(i64::from(d - b'0')));
    (value, &text[digits..])
}

/// `M<digits>` inside `.<uniqueness>.` right after the seconds.
fn usecs(rest: &str) -> Option<i64> {
    let unique = rest.strip_prefix('.')?;
    let unique = unique.split(['.', INFO_SEP]).next().unwrap_or("");
    let at = unique.find('M')?;
    Some(leading_number(&unique[at + 1..]).0)
}

/// Byte comparison up to `:` with C's signed `char` semantics.
fn base_cmp(a: &str, b: &str) -> Ordering {
    let signed = |s: &str| -> Vec<i8> {
        s.bytes().take_while(|&c| c != b':').map(|c| i8::from_ne_bytes([c])).collect()
    };
    signed(a).cmp(&signed(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_say_who_wrote_them() {
        let base = generate_base();
        let temp = temp_name(&base);
        assert!(temp.starts_with(TEMP_PREFIX), "{temp}");
        assert_eq!(base_of_temp(&temp), base);
        assert_eq!(base_of_temp(&base), base, "an older version's temp name");
        assert_eq!(writer_of(&temp), Some((std::process::id(), crate::fs::filename_host())));
        assert_eq!(writer_of(&base), Some((std::process::id(), crate::fs::filename_host())));
        assert_eq!(
            writer_of("dsync-rs-tmp.1700000000.M12P345.mail.example.com"),
            Some((345, "mail.example.com"))
        );
        assert_eq!(writer_of(".dsync-rs-create.17.M1P2.h"), Some((2, "h")));
        for foreign in ["", "msg", "1700000000.12345_1.host", "dsync-rs-tmp.x.MP.h", "17.M1Px.h"] {
            assert_eq!(writer_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, u8, Option<u64>)] = &[
            ("1795365036.M178829P9747.vm,S=128,W=135:2,Sab", b'S', Some(128)),
            ("1795365036.M178829P9747.vm,S=128,W=135:2,Sab", b'W', Some(135)),
            ("1795365036.M178829P9747.vm,S=128,W=135", b'W', Some(135)),
            ("1795365036.M178829P9747.vm:2,S", b'S', None),
            ("x,S=12a,W=3", b'S', None),
            ("x,S=,W=3", b'S', Some(0)),
            ("x,S=99999999999999999999999", b'S', None),
        ];
        for (name, kind, size) in cases {
            assert_eq!(size_field(name, *kind), *size, "{name} {}", char::from(*kind));
        }
    }

    #[test]
    fn info_known_answers() {
        let cases: &[(&str, Flags, &[u8])] = &[
            ("b:2,S", Flags::SEEN, &[]),
            (
                "b:2,DFRSTac",
                Flags::DRAFT | Flags::FLAGGED | Flags::ANSWERED | Flags::SEEN | Flags::DELETED,
                &[0, 2],
            ),
            ("b:2,PSz,extra", Flags::SEEN, &[25]),
            ("b", Flags::EMPTY, &[]),
            ("b:1,S", Flags::EMPTY, &[]),
            ("b:2,", Flags::EMPTY, &[]),
            ("b:x:2,F", Flags::FLAGGED, &[]),
        ];
        for (name, flags, keywords) in cases {
            let info = info(name);
            assert_eq!(info.flags, *flags, "{name}");
            assert_eq!(info.keywords, *keywords, "{name}");
        }
    }

    #[test]
    fn set_flags_known_answers() {
        let cases: &[(&str, Flags, &[u8], &str)] = &[
            ("b,S=1", Flags::SEEN, &[1, 0], "b,S=1:2,Sab"),
            ("b:2,PS", Flags::FLAGGED, &[], "b:2,FP"),
            ("b:2,Sa,extra", Flags::EMPTY, &[3], "b:2,d,extra"),
            ("b:2,", Flags::DRAFT | Flags::DELETED, &[], "b:2,DT"),
        ];
        for (name, flags, keywords, expected) in cases {
            assert_eq!(with_flags(name, *flags, keywords), *expected, "{name}");
        }
    }

    #[test]
    fn names_without_info_belong_in_new() {
        assert_eq!(sub_for("1.M1P1.h,S=1,W=2"), Sub::New);
        assert_eq!(sub_for("1.M1P1.h,S=1,W=2:2,"), Sub::Cur);
        assert_eq!(sub_for("1.M1P1.h:2,S"), Sub::Cur);
    }

    #[test]
    fn generated_names_are_unique_and_sorted() {
        let names: Vec<String> = (0..1000).map(|_| generate_base()).collect();
        for pair in names.windows(2) {
            assert_eq!(sort_cmp(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
        }
        assert!(is_usable_base(&names[0]));
        // `secs.Musecs` `P` pid `.` host, as Dovecot names them.
        let (secs, rest) = names[0].split_once(".M").unwrap();
        let (usecs, rest) = rest.split_once('P').unwrap();
        let (pid, host) = rest.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_000_000_000);
        assert!(usecs.parse::<u32>().unwrap() < 1_000_000);
        assert_eq!(pid, std::process::id().to_string());
        assert_eq!(host, crate::fs::filename_host());
        assert!(!is_usable_base("a:b") && !is_usable_base(".x") && !is_usable_base("a b"));
    }

    #[test]
    fn sort_order_like_dovecot() {
        assert_eq!(sort_cmp("2.M5P1.h", "10.M1P1.h"), Ordering::Less);
        assert_eq!(sort_cmp("10.M20P1.h", "10.M3P1.h"), Ordering::Greater);
        assert_eq!(sort_cmp("10.a.h", "10.b.h"), Ordering::Less);
        assert_eq!(sort_cmp("10.M1P1.h:2,S", "10.M1P1.h:2,F"), Ordering::Equal);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn flags_round_trip(
                stem in "[0-9]{1,10}\\.M[0-9]{1,6}P[0-9]{1,5}\\.[a-z]{1,8},S=[0-9]{1,6},W=[0-9]{1,6}",
                old in "(:2,[A-Za-z]{0,6}(,[a-z]{0,3})?)?",
                bits in 0u8..32,
                keywords in proptest::collection::btree_set(0u8..26, 0..6),
            ) {
                let flags = Flags::ALL.iter().enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .fold(Flags::EMPTY, |acc, (_, (f, _, _))| acc | *f);
                let keywords: Vec<u8> = keywords.into_iter().collect();
                let name = format!("{stem}{old}");
                let renamed = with_flags(&name, flags, &keywords);
                let info = info(&renamed);
                prop_assert_eq!(info.flags, flags);
                let mut found = info.keywords.clone();
                found.sort_unstable();
                prop_assert_eq!(found, keywords.clone());
                prop_assert_eq!(base(&renamed), base(&name));
                prop_assert_eq!(size_field(&renamed, b'S'), size_field(&name, b'S'));
                prop_assert_eq!(size_field(&renamed, b'W'), size_field(&name, b'W'));
                // Letters are sorted, and re-flagging is idempotent.
                let letters = renamed.rsplit_once(":2,").unwrap().1.split(',').next().unwrap().as_bytes().to_vec();
                let mut sorted = letters.clone();
                sorted.sort_unstable();
                prop_assert_eq!(letters, sorted);
                prop_assert_eq!(with_flags(&renamed, flags, &keywords), renamed.clone());
            }

            #[test]
            fn arbitrary_names_never_panic(name in "\\PC{0,40}") {
                crate::fuzzing::filename(name.as_bytes());
            }
        }
    }
}
