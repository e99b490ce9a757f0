//! The state decoder as it was before the byte-level one ([`super::decode`]), kept for the
//! tests only: both must read every text alike.

use std::collections::BTreeMap;

use super::pairs::{MailboxPairs, Pair, WRITING};
use super::{
    BaseFlags, FLAG_LETTERS, HEADER, MailboxState, MergeBase, StateError, SyncState, WrittenBy,
};
use crate::error::Side;
use crate::model::{Flags, MailboxGuid, MailboxName, Uid};

pub(super) fn decode(text: &str) -> Result<SyncState, StateError> {
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => return Err(StateError { line: 1, reason: format!("expected {HEADER:?}") }),
    }
    let mut state = SyncState::default();
    let mut current: Option<(MailboxName, MailboxState)> = None;
    let mut current_pairs: Option<(MailboxName, MailboxPairs)> = None;
    for (number, line) in lines {
        let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
        let fields: Vec<&str> = line.split(' ').collect();
        let keyword = fields.first().copied();
        if matches!(keyword, Some("pairs" | "pair" | "forget" | "mailbox"))
            && let Some((name, entry)) = current_pairs.take()
        {
            state.pairs.insert(name, entry);
        }
        if keyword == Some("pairs") || keyword == Some("pair") {
            if let Some((name, mailbox)) = current.take() {
                state.mailboxes.insert(name, mailbox);
            }
            if keyword == Some("pairs") {
                current_pairs = Some(decode_header(&fields[1..], &error)?);
            } else {
                apply_record(&fields[1..], &mut state.pairs, &error)?;
            }
            continue;
        }
        if let Some((_, entry)) = current_pairs.as_mut() {
            decode_pair(&fields, entry, &error)?;
            continue;
        }
        if let ["source", source] = fields[..]
            && current.is_none()
        {
            state.source = Some(unescape(source).map_err(|e| error(&e))?);
            continue;
        }
        if let ["written-by", kind] = fields[..]
            && current.is_none()
        {
            state.written_by = match kind {
                "backup" => Some(WrittenBy::Backup),
                "merge" => Some(WrittenBy::Merge),
                _ => return Err(error("unknown kind of run")),
            };
            continue;
        }
        if let ["subscribed", side, name] = fields[..]
            && current.is_none()
        {
            let name = decode_name(name).map_err(|e| error(&e))?;
            match side {
                "S" => state.subscribed_source.insert(name),
                "D" => state.subscribed_destination.insert(name),
                _ => return Err(error("bad subscription side")),
            };
            continue;
        }
        if let ["forget", name] = fields[..] {
            if let Some((name, mailbox)) = current.take() {
                state.mailboxes.insert(name, mailbox);
            }
            let name = decode_name(name).map_err(|e| error(&e))?;
            state.mailboxes.remove(&name);
            state.pairs.remove(&name);
            continue;
        }
        if fields.first() == Some(&"mailbox") {
            if let Some((name, mailbox)) = current.take() {
                state.mailboxes.insert(name, mailbox);
            }
            let [
                _,
                name,
                uid_validity,
                last_common,
                source,
                destination,
                source_guid,
                destination_guid,
                rebuild,
            ] = fields[..]
            else {
                return Err(error("a mailbox line has 9 fields"));
            };
            let rebuild = match rebuild {
                "-" => None,
                "S" => Some(Side::Source),
                "D" => Some(Side::Destination),
                _ => return Err(error("bad rebuild mark")),
            };
            let guid = |text: &str| -> Result<Option<MailboxGuid>, StateError> {
                if text == "*" {
                    Ok(None)
                } else {
                    MailboxGuid::from_hex(text).map(Some).ok_or_else(|| error("bad mailbox GUID"))
                }
            };
            let name = decode_name(name).map_err(|e| error(&e))?;
            let mailbox = MailboxState {
                base: MergeBase {
                    uid_validity: uid_validity.parse().map_err(|_| error("bad UIDVALIDITY"))?,
                    last_common_uid: last_common
                        .parse()
                        .map_err(|_| error("bad last common UID"))?,
                    flags: BaseFlags::new(),
                },
                source_token: untoken(source).map_err(|e| error(&e))?,
                destination_token: untoken(destination).map_err(|e| error(&e))?,
                source_guid: guid(source_guid)?,
                destination_guid: guid(destination_guid)?,
                rebuild,
            };
            current = Some((name, mailbox));
            continue;
        }
        let Some((_, mailbox)) = current.as_mut() else {
            return Err(error("a message line before any mailbox line"));
        };
        let (Some(uid), Some(_)) = (fields.first(), fields.get(1)) else {
            return Err(error("a message line has a UID and flags"));
        };
        let uid = uid.parse().ok().and_then(Uid::new).ok_or_else(|| error("bad UID"))?;
        let flags = decode_flags(&fields[1..], &error)?;
        if let Some(records) = mailbox.base.flags.decoded_mut() {
            records.insert(uid, flags);
        }
    }
    if let Some((name, mailbox)) = current {
        state.mailboxes.insert(name, mailbox);
    }
    if let Some((name, entry)) = current_pairs {
        state.pairs.insert(name, entry);
    }
    Ok(state)
}

/// Reads `LETTERS keyword…` written by [`encode_flags`].
fn decode_flags(fields: &[&str], error: &dyn Fn(&str) -> StateError) -> Result<Flags, StateError> {
    let Some((letters, keywords)) = fields.split_first() else {
        return Err(error("flags are missing"));
    };
    let mut flags = Flags::default();
    if *letters != "-" {
        for letter in letters.chars() {
            let (flag, _) = FLAG_LETTERS
                .iter()
                .find(|(_, l)| *l == letter)
                .ok_or_else(|| error("unknown flag letter"))?;
            flags.system = flags.system.union(*flag);
        }
    }
    for keyword in keywords {
        flags.keywords.insert(unescape(keyword).map_err(|e| error(&e))?);
    }
    Ok(flags)
}

fn decode_name(text: &str) -> Result<MailboxName, String> {
    let components: Vec<String> = text.split('/').map(unescape).collect::<Result<_, _>>()?;
    MailboxName::new(components).map_err(|e| e.to_string())
}

fn untoken(text: &str) -> Result<Option<String>, String> {
    if text == "*" { Ok(None) } else { unescape(text).map(Some) }
}

fn unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| String::from("not UTF-8"))
}

/// Decodes a `pairs` line's fields (after the keyword).
fn decode_header(
    fields: &[&str],
    error: &dyn Fn(&str) -> StateError,
) -> Result<(MailboxName, MailboxPairs), StateError> {
    let [name, source_validity, destination_validity, source_token, destination_token] = fields
    else {
        return Err(error("a pairs line has 6 fields"));
    };
    let name = decode_name(name).map_err(|e| error(&e))?;
    let entry = MailboxPairs {
        source_uid_validity: source_validity.parse().map_err(|_| error("bad UIDVALIDITY"))?,
        destination_uid_validity: destination_validity
            .parse()
            .map_err(|_| error("bad UIDVALIDITY"))?,
        source_token: untoken(source_token).map_err(|e| error(&e))?,
        destination_token: untoken(destination_token).map_err(|e| error(&e))?,
        pairs: BTreeMap::new(),
    };
    Ok((name, entry))
}

/// Decodes `SOURCE DESTINATION FLAGS…` into `entry`.
fn decode_pair(
    fields: &[&str],
    entry: &mut MailboxPairs,
    error: &dyn Fn(&str) -> StateError,
) -> Result<(), StateError> {
    let [source, destination, flags @ ..] = fields else {
        return Err(error("a pair has two UIDs and flags"));
    };
    let uid = |text: &str| text.parse().ok().and_then(Uid::new).ok_or_else(|| error("bad UID"));
    let flags = decode_flags(flags, error)?;
    entry.pairs.insert(uid(source)?, Pair { destination: uid(destination)?, flags });
    Ok(())
}

/// Applies a `pair` record's fields (after the keyword) to `pairs`.
fn apply_record(
    fields: &[&str],
    pairs: &mut BTreeMap<MailboxName, MailboxPairs>,
    error: &dyn Fn(&str) -> StateError,
) -> Result<(), StateError> {
    let [name, source_validity, destination_validity, rest @ ..] = fields else {
        return Err(error("a pair record names its mailbox and UIDVALIDITYs"));
    };
    let name = decode_name(name).map_err(|e| error(&e))?;
    let source_validity: u32 = source_validity.parse().map_err(|_| error("bad UIDVALIDITY"))?;
    let destination_validity: u32 =
        destination_validity.parse().map_err(|_| error("bad UIDVALIDITY"))?;
    let entry = pairs
        .entry(name)
        .or_insert_with(|| MailboxPairs::new(source_validity, destination_validity));
    if (entry.source_uid_validity, entry.destination_uid_validity)
        != (source_validity, destination_validity)
    {
        *entry = MailboxPairs::new(source_validity, destination_validity);
    }
    if entry.source_token.as_deref() != Some(WRITING) {
        entry.source_token = None;
    }
    if entry.destination_token.as_deref() != Some(WRITING) {
        entry.destination_token = None;
    }
    decode_pair(rest, entry, error)
}
