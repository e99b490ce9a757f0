//! The raw baselines: what moving the bytes costs with nothing else done. One
//! `UID FETCH 1:* (UID BODY.PEEK[])` per folder with `imapc` (a single pipelined command:
//! the server streams everything back to back), bodies either discarded or each written
//! to its own file (no fsync, no metadata, no renames).
//!
//! `maildir` is the least a client that writes a Maildir Dovecot can serve must do on top:
//! the FETCH also asks for FLAGS and INTERNALDATE, and each body is written to `tmp/` with
//! its line ends as LF, given the INTERNALDATE as its mtime and renamed into `cur/` under a
//! name that carries its flags. No uidlist, no UIDs kept, no state, no listing, no fsync:
//! it tells how much of our time over `write` the Maildir format itself asks for.
//!
//! Run as `migration __rawfetch PORT USER discard|write|maildir [DIR]`, password in
//! `DSYNC_PASSWORD`, so that it is timed and measured as a child like the real tools.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{Client, ConnectOptions, Credentials, FetchHandler, Flag, Security, SequenceSet};

use crate::Result;

pub(crate) fn main(args: &[OsString]) -> ExitCode {
    match run(args) {
        Ok((messages, bytes)) => {
            println!("{messages} messages, {bytes} bytes");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("migration __rawfetch: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How bodies are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Discard,
    Write,
    Maildir,
}

struct Handler {
    mode: Mode,
    /// Where bodies go (a plain directory, or a Maildir folder with `tmp/` and `cur/`).
    dir: Option<PathBuf>,
    buffer: Vec<u8>,
    /// The body with LF line ends (`Mode::Maildir`).
    converted: Vec<u8>,
    messages: u64,
    bytes: u64,
}

impl FetchHandler for Handler {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        let maildir = match (&self.dir, self.mode) {
            (Some(dir), Mode::Maildir) => Some(dir.clone()),
            _ => None,
        };
        let temp = maildir.as_ref().map(|dir| dir.join("tmp").join(unique_name(self.messages)));
        let mut file = match (&self.dir, &temp) {
            (_, Some(temp)) => Some(File::create_new(temp)?),
            (Some(dir), None) => Some(File::create(dir.join(start.fetch.seq.to_string()))?),
            (None, None) => None,
        };
        let mut pending_cr = false;
        loop {
            let n = body.read(&mut self.buffer)?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
            let Some(file) = &mut file else { continue };
            if maildir.is_some() {
                self.converted.clear();
                pending_cr = to_lf(&self.buffer[..n], pending_cr, &mut self.converted);
                file.write_all(&self.converted)?;
            } else {
                file.write_all(&self.buffer[..n])?;
            }
        }
        if let (Some(dir), Some(temp), Some(file)) = (maildir, temp, file) {
            if pending_cr {
                (&file).write_all(b"\r")?;
            }
            if let Some(date) = start.fetch.internal_date {
                let secs = u64::try_from(date.timestamp()).unwrap_or(0);
                file.set_modified(UNIX_EPOCH + Duration::from_secs(secs))?;
            }
            drop(file);
            let flags = start.fetch.flags.as_deref().unwrap_or_default();
            fs::rename(&temp, dir.join("cur").join(final_name(&temp, flags)))?;
        }
        self.messages += 1;
        Ok(())
    }

    fn fetch(&mut self, _fetch: Fetch) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `input` to `out` with each CRLF as LF; `pending_cr` says the previous piece
/// ended in a CR, and the answer whether this one does (that CR is not written yet).
fn to_lf(input: &[u8], pending_cr: bool, out: &mut Vec<u8>) -> bool {
    let mut rest = input;
    if pending_cr && rest.first() != Some(&b'\n') {
        out.push(b'\r');
    }
    while let Some(at) = memchr::memchr(b'\r', rest) {
        out.extend_from_slice(&rest[..at]);
        match rest.get(at + 1) {
            None => return true,
            Some(b'\n') => {}
            Some(_) => out.push(b'\r'),
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    false
}

/// A name no other message of this run has, in Maildir's `secs.Mmicros_nP<pid>.host` form.
fn unique_name(counter: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.M{}_{counter}P{}.raw", now.as_secs(), now.subsec_micros(), std::process::id())
}

/// `temp`'s name with the Maildir info of `flags` (`:2,` and the letters in ASCII order).
fn final_name(temp: &Path, flags: &[Flag]) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .filter_map(|flag| match flag {
            Flag::Draft => Some('D'),
            Flag::Flagged => Some('F'),
            Flag::Answered => Some('R'),
            Flag::Seen => Some('S'),
            Flag::Deleted => Some('T'),
            _ => None,
        })
        .collect();
    letters.sort_unstable();
    let base = temp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{base}:2,{}", letters.into_iter().collect::<String>())
}

fn run(args: &[OsString]) -> Result<(u64, u64)> {
    let usage = "usage: __rawfetch PORT USER discard|write|maildir [DIR]";
    let [port, user, mode, rest @ ..] = args else { return Err(usage.into()) };
    let port: u16 = port.to_string_lossy().parse()?;
    let user = user.to_string_lossy();
    let (mode, root) = match (mode.to_str(), rest) {
        (Some("discard"), []) => (Mode::Discard, None),
        (Some("write"), [dir]) => (Mode::Write, Some(PathBuf::from(dir))),
        (Some("maildir"), [dir]) => (Mode::Maildir, Some(PathBuf::from(dir))),
        _ => return Err(usage.into()),
    };
    let password = std::env::var("DSYNC_PASSWORD")?;
    let options = ConnectOptions::new("127.0.0.1", port, Security::Plain);
    let client = Client::connect(&options)?;
    let mut session = client.login(&Credentials::new(user, password)).map_err(|(e, _)| e)?;
    let mut handler = Handler {
        mode,
        dir: None,
        buffer: vec![0u8; 64 * 1024],
        converted: Vec::with_capacity(64 * 1024),
        messages: 0,
        bytes: 0,
    };
    let items: &[FetchItem] = if mode == Mode::Maildir {
        &[FetchItem::Uid, FetchItem::Flags, FetchItem::InternalDate, FetchItem::whole_message()]
    } else {
        &[FetchItem::Uid, FetchItem::whole_message()]
    };
    for (index, entry) in session.list("", "*")?.iter().enumerate() {
        if entry.is_noselect() {
            continue;
        }
        let info = session.examine(&entry.name)?;
        if info.exists == 0 {
            continue;
        }
        if let Some(root) = &root {
            let dir = root.join(index.to_string());
            if mode == Mode::Maildir {
                fs::create_dir_all(dir.join("tmp"))?;
                fs::create_dir_all(dir.join("cur"))?;
                fs::create_dir_all(dir.join("new"))?;
            } else {
                fs::create_dir_all(&dir)?;
            }
            handler.dir = Some(dir);
        }
        session.uid_fetch(&SequenceSet::all(), items, &mut handler)?;
    }
    session.logout()?;
    Ok((handler.messages, handler.bytes))
}
