//! The raw baseline: what moving the bytes costs with nothing else done. One
//! `UID FETCH 1:* (UID BODY.PEEK[])` per folder with `imapc` (a single pipelined command:
//! the server streams everything back to back), bodies either discarded or each written
//! to its own file (no fsync, no metadata, no renames).
//!
//! Run as `migration __rawfetch PORT USER discard|write [DIR]`, password in
//! `DSYNC_PASSWORD`, so that it is timed and measured as a child like the real tools.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{Client, ConnectOptions, Credentials, FetchHandler, Security, SequenceSet};

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

struct Handler {
    /// Where bodies go; `None` discards them.
    dir: Option<PathBuf>,
    buffer: Vec<u8>,
    messages: u64,
    bytes: u64,
}

impl FetchHandler for Handler {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        let mut file = match &self.dir {
            Some(dir) => Some(File::create(dir.join(start.fetch.seq.to_string()))?),
            None => None,
        };
        loop {
            let n = body.read(&mut self.buffer)?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
            if let Some(file) = &mut file {
                file.write_all(&self.buffer[..n])?;
            }
        }
        self.messages += 1;
        Ok(())
    }

    fn fetch(&mut self, _fetch: Fetch) -> io::Result<()> {
        Ok(())
    }
}

fn run(args: &[OsString]) -> Result<(u64, u64)> {
    let usage = "usage: __rawfetch PORT USER discard|write [DIR]";
    let [port, user, mode, rest @ ..] = args else { return Err(usage.into()) };
    let port: u16 = port.to_string_lossy().parse()?;
    let user = user.to_string_lossy();
    let root = match (mode.to_str(), rest) {
        (Some("discard"), []) => None,
        (Some("write"), [dir]) => Some(PathBuf::from(dir)),
        _ => return Err(usage.into()),
    };
    let password = std::env::var("DSYNC_PASSWORD")?;
    let options = ConnectOptions::new("127.0.0.1", port, Security::Plain);
    let client = Client::connect(&options)?;
    let mut session = client.login(&Credentials::new(user, password)).map_err(|(e, _)| e)?;
    let mut handler = Handler { dir: None, buffer: vec![0u8; 64 * 1024], messages: 0, bytes: 0 };
    let items = [FetchItem::Uid, FetchItem::whole_message()];
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
            fs::create_dir_all(&dir)?;
            handler.dir = Some(dir);
        }
        session.uid_fetch(&SequenceSet::all(), &items, &mut handler)?;
    }
    session.logout()?;
    Ok((handler.messages, handler.bytes))
}
