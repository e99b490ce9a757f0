//! The benchmark's source account, written straight into the Maildir that the private
//! Dovecot serves (with `mailstore`, far faster than APPENDing it), or copied from a corpus
//! directory given on the command line.
//!
//! The generated corpus is reproducible (a fixed-seed SplitMix64) and shaped like a real
//! account: ~99.7 % of messages between 2 and 20 KiB (most near the bottom, median ~3 KiB),
//! one in 250 between 100 KiB and 5 MiB, optional huge ones; eleven folders (nested ones, a
//! non-ASCII one), system flags and keywords in realistic proportions, UID gaps, received
//! dates spread over years. The default 6 000 messages come to ~33 MB, like the yardstick
//! account.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::Command;

use mailstore::{Durability, Flags, Keyword, Location, MailboxName, Maildir, Options, SaveOptions};

use crate::Result;

/// What was written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) folders: usize,
}

/// SplitMix64: tiny, fast, and the same numbers on every machine.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Folders of the generated account with their share of messages (per mille).
const FOLDERS: [(&str, u32); 11] = [
    ("INBOX", 340),
    ("Archive", 140),
    ("Archive/2023", 120),
    ("Archive/2024", 100),
    ("Sent", 120),
    ("Drafts", 10),
    ("Trash", 40),
    ("Junk", 30),
    ("Lists", 10),
    ("Lists/rust-users", 70),
    ("Entwürfe", 20),
];

/// Size of message number `index` of `count`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn message_size(rng: &mut Rng, index: u32, count: u32) -> usize {
    let medium_every = 250;
    if count >= medium_every && index % medium_every == medium_every / 2 {
        // 100 KiB – 5 MiB, skewed to the small end (attachments).
        (100.0 * 1024.0 * 51.2f64.powf(rng.unit().powi(6))) as usize
    } else {
        // 2 – 20 KiB, most near 2–4 KiB (plain mail).
        (2048.0 * 10f64.powf(rng.unit().powi(3))) as usize
    }
}

/// Writes an RFC 5322 message of about `size` bytes (CRLF) to `out`, streaming, so huge
/// ones never sit in memory.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn write_message(
    out: &mut impl Write,
    rng: &mut Rng,
    index: u32,
    size: usize,
) -> io::Result<()> {
    let header = format!(
        "Return-Path: <sender{s}@example.org>\r\nDelivered-To: alice@example.com\r\n\
         Date: Mon, 1 Jan 2024 10:{m:02}:{sec:02} +0000\r\nFrom: Sender {s} <sender{s}@example.org>\r\n\
         To: Alice <alice@example.com>\r\nSubject: Benchmark message {index} about item {r}\r\n\
         Message-ID: <bench.{index}.{r}@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        s = index % 97,
        m = (index / 60) % 60,
        sec = index % 60,
        r = rng.below(1_000_000),
    );
    out.write_all(header.as_bytes())?;
    let mut written = header.len();
    const WORDS: [&str; 16] = [
        "the",
        "mailbox",
        "migration",
        "server",
        "message",
        "folder",
        "quick",
        "brown",
        "IMAP",
        "flags",
        "keyword",
        "sync",
        "Dovecot",
        "and",
        "with",
        "über",
    ];
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut line = Vec::with_capacity(100);
    // Big messages are mostly an attachment: base64-looking lines.
    let base64 = size > 64 * 1024;
    while written < size {
        line.clear();
        if base64 {
            let mut bits = rng.next_u64();
            for i in 0..76 {
                if i % 10 == 0 {
                    bits = rng.next_u64();
                }
                line.push(ALPHABET[(bits & 63) as usize]);
                bits >>= 6;
            }
        } else {
            while line.len() < 70 {
                let word = WORDS[rng.below(WORDS.len() as u64) as usize];
                line.extend_from_slice(word.as_bytes());
                line.push(b' ');
            }
            line.pop();
        }
        line.extend_from_slice(b"\r\n");
        out.write_all(&line)?;
        written += line.len();
    }
    Ok(())
}

/// Generates the default corpus into the Maildir at `root`.
pub(crate) fn generate(root: &Path, messages: u32, huge_mib: &[u64], seed: u64) -> Result<Summary> {
    let maildir = open(root);
    let mut rng = Rng::new(seed);
    let mut mailboxes = Vec::new();
    let mut names = Vec::new();
    for (position, (name, _)) in FOLDERS.iter().enumerate() {
        let name = MailboxName::parse(name, '/')?;
        let uid_validity = 1_700_000_000 + u32::try_from(position)?;
        mailboxes.push((maildir.create_mailbox(&name, Some(uid_validity), None)?, 1u32, 0u32));
        names.push(name);
    }
    maildir.set_subscriptions(&names)?;
    let total: u32 = FOLDERS.iter().map(|(_, share)| share).sum();
    let keyword = |k: &str| Keyword::new(k).expect("valid keyword");
    let mut summary = Summary { folders: FOLDERS.len(), ..Summary::default() };
    for index in 0..messages {
        let pick = u32::try_from(rng.below(u64::from(total)))?;
        let mut acc = 0;
        let folder = FOLDERS
            .iter()
            .position(|(_, share)| {
                acc += share;
                pick < acc
            })
            .unwrap_or(0);
        let folder_name = FOLDERS[folder].0;
        let size = message_size(&mut rng, index, messages);
        let mut flags = Flags::EMPTY;
        if folder_name == "Drafts" {
            flags |= Flags::DRAFT;
        } else if rng.chance(0.85) {
            flags |= Flags::SEEN;
        }
        if rng.chance(0.12) {
            flags |= Flags::ANSWERED;
        }
        if rng.chance(0.04) {
            flags |= Flags::FLAGGED;
        }
        if rng.chance(0.005) {
            flags |= Flags::DELETED;
        }
        let mut keywords = Vec::new();
        if rng.chance(0.03) {
            keywords.push(keyword("$Forwarded"));
        }
        if rng.chance(0.05) {
            keywords.push(keyword("$Label1"));
        }
        if folder_name == "Junk" {
            keywords.push(keyword("Junk"));
        } else if folder_name == "INBOX" && rng.chance(0.2) {
            keywords.push(keyword("NonJunk"));
        }
        let received = 1_500_000_000 + i64::from(index) * 20_000 + i64::try_from(rng.below(3600))?;
        let (mailbox, next_uid, staged) = &mut mailboxes[folder];
        // UID gaps, as left by expunges.
        if rng.chance(0.05) {
            *next_uid += u32::try_from(1 + rng.below(3))?;
        }
        let options = SaveOptions::default()
            .with_uid(*next_uid)
            .with_flags(flags)
            .with_keywords(keywords)
            .with_received(received);
        summary.bytes += save(mailbox, &mut rng, index, size, options)?;
        summary.messages += 1;
        *next_uid += 1;
        *staged += 1;
        if *staged >= 500 {
            mailbox.commit()?;
            *staged = 0;
        }
    }
    let inbox = &mut mailboxes[0];
    for (offset, mib) in huge_mib.iter().enumerate() {
        let size = usize::try_from(mib << 20)?;
        let options = SaveOptions::default().with_uid(inbox.1).with_flags(Flags::SEEN);
        summary.bytes +=
            save(&mut inbox.0, &mut rng, messages + u32::try_from(offset)?, size, options)?;
        summary.messages += 1;
        inbox.1 += 1;
    }
    for (mailbox, _, _) in &mut mailboxes {
        mailbox.commit()?;
    }
    maildir.sync_to_disk()?;
    Ok(summary)
}

/// The memory-mode corpus: a folder of `bulk` small messages and INBOX with one message of
/// `big_mib` MiB between a few small ones.
pub(crate) fn generate_memory(root: &Path, bulk: u32, big_mib: u64, seed: u64) -> Result<Summary> {
    let maildir = open(root);
    let mut rng = Rng::new(seed);
    let mut summary = Summary { folders: 2, ..Summary::default() };
    let mut inbox = maildir.create_mailbox(&MailboxName::inbox(), Some(1_700_000_100), None)?;
    for uid in 1..=3u32 {
        let size = if uid == 2 { usize::try_from(big_mib << 20)? } else { 4096 };
        let options = SaveOptions::default().with_uid(uid).with_flags(Flags::SEEN);
        summary.bytes += save(&mut inbox, &mut rng, uid, size, options)?;
        summary.messages += 1;
    }
    inbox.commit()?;
    let name = MailboxName::parse("Bulk", '/')?;
    let mut folder = maildir.create_mailbox(&name, Some(1_700_000_101), None)?;
    for uid in 1..=bulk {
        let size = 1024 + usize::try_from(rng.below(2048))?;
        let flags = if rng.chance(0.9) { Flags::SEEN } else { Flags::EMPTY };
        let options = SaveOptions::default()
            .with_uid(uid)
            .with_flags(flags)
            .with_received(1_600_000_000 + i64::from(uid) * 60);
        summary.bytes += save(&mut folder, &mut rng, uid, size, options)?;
        summary.messages += 1;
        if uid % 1000 == 0 {
            folder.commit()?;
        }
    }
    folder.commit()?;
    maildir.set_subscriptions(&[MailboxName::inbox(), name])?;
    maildir.sync_to_disk()?;
    Ok(summary)
}

/// The many-folders corpus: INBOX and `folders` more (`Folder 00001`, …), one small message
/// each, every one subscribed: what made runs quadratic in the number of mailboxes.
pub(crate) fn generate_folders(root: &Path, folders: u32, seed: u64) -> Result<Summary> {
    let maildir = open(root);
    let mut rng = Rng::new(seed);
    let mut summary = Summary { folders: usize::try_from(folders)? + 1, ..Summary::default() };
    let mut names = vec![MailboxName::inbox()];
    names.extend(
        (1..=folders)
            .map(|index| MailboxName::new([format!("Folder {index:05}")]))
            .collect::<std::result::Result<Vec<_>, _>>()?,
    );
    for (index, name) in (0u32..).zip(&names) {
        let mut mailbox = maildir.create_mailbox(name, Some(1_700_100_000 + index), None)?;
        let size = 2048 + usize::try_from(rng.below(2048))?;
        let options = SaveOptions::default()
            .with_uid(1)
            .with_flags(Flags::SEEN)
            .with_received(1_600_000_000 + i64::from(index) * 60);
        summary.bytes += save(&mut mailbox, &mut rng, index, size, options)?;
        summary.messages += 1;
        mailbox.commit()?;
    }
    maildir.set_subscriptions(&names)?;
    maildir.sync_to_disk()?;
    Ok(summary)
}

/// Copies a Maildir corpus (`DIR` with `cur/`, `.Folder/`…) into `root`.
pub(crate) fn copy(dir: &Path, root: &Path) -> Result<Summary> {
    std::fs::create_dir_all(root)?;
    let mut source = dir.as_os_str().to_os_string();
    source.push("/.");
    let status = Command::new("cp").arg("-a").arg(&source).arg(root).status()?;
    if !status.success() {
        return Err(format!("cp -a {} {} failed", dir.display(), root.display()).into());
    }
    Ok(Summary::default())
}

fn open(root: &Path) -> Maildir {
    let options = Options::default().with_durability(Durability::Deferred);
    Maildir::with_options(Location::maildir(root), options)
}

fn save(
    mailbox: &mut mailstore::Mailbox,
    rng: &mut Rng,
    index: u32,
    size: usize,
    options: SaveOptions,
) -> Result<u64> {
    let mut pending = mailbox.begin_save()?;
    let mut counting = Counting { inner: BufWriter::new(&mut pending), count: 0 };
    write_message(&mut counting, rng, index, size)?;
    counting.flush()?;
    let bytes = counting.count;
    drop(counting);
    mailbox.save(pending, options)?;
    Ok(bytes)
}

struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_corpus_is_reproducible_and_about_33_mb() {
        let sizes = |seed| {
            let mut rng = Rng::new(seed);
            (0..6000).map(|i| message_size(&mut rng, i, 6000) as u64).collect::<Vec<_>>()
        };
        let first = sizes(42);
        assert_eq!(first, sizes(42));
        let total: u64 = first.iter().sum();
        assert!((25_000_000..45_000_000).contains(&total), "{total}");
        assert_eq!(first.iter().filter(|&&s| s >= 100 * 1024).count(), 24);
    }

    #[test]
    fn messages_have_the_asked_size_and_crlf_lines() {
        let mut out = Vec::new();
        write_message(&mut out, &mut Rng::new(1), 7, 5000).unwrap();
        assert!((5000..5100).contains(&out.len()), "{}", out.len());
        assert!(out.ends_with(b"\r\n"));
        assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }

    #[test]
    fn the_many_folders_corpus_has_one_subscribed_message_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let summary = generate_folders(&root, 30, 5).unwrap();
        assert_eq!((summary.folders, summary.messages), (31, 31));
        let maildir = Maildir::open(Location::maildir(&root));
        let entries = maildir.mailboxes().unwrap();
        assert_eq!(entries.len(), 31);
        assert_eq!(maildir.subscriptions().unwrap().len(), 31);
        for entry in entries {
            assert_eq!(maildir.mailbox(&entry.name).unwrap().messages().unwrap().len(), 1);
        }
    }

    #[test]
    fn a_generated_maildir_has_every_message() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let summary = generate(&root, 200, &[], 3).unwrap();
        assert_eq!(summary.messages, 200);
        let maildir = Maildir::open(Location::maildir(&root));
        let mut count = 0;
        for entry in maildir.mailboxes().unwrap() {
            count += maildir.mailbox(&entry.name).unwrap().messages().unwrap().len();
        }
        assert_eq!(count, 200);
    }
}
