//! imapc integration tests: real Dovecot instances from `testkit`, checked against the
//! independent `testkit::RawImap` oracle; a scripted fake server only for what Dovecot
//! cannot do.

mod ahead;
mod append;
mod big;
mod buffered;
mod commands;
mod fuzz_corpus;
mod guids;
mod hostile;
mod pipelined;
mod slice;
mod tls;
mod unread;
mod wrong_server;

use std::collections::HashMap;
use std::io::Read;

use imapc::proto::{BodyStart, Fetch};
use imapc::{Client, ConnectOptions, Credentials, FetchHandler, Security, Session, TlsOptions};
use testkit::Dovecot;

/// Plain-text connection options for a test instance.
pub fn plain(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", dovecot.imap_port(), Security::Plain)
}

/// Implicit-TLS options trusting the instance's private CA.
pub fn imaps(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("localhost", dovecot.imaps_port(), Security::Tls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()))
}

/// A logged-in session for alice over plain TCP.
pub fn login(dovecot: &Dovecot) -> Session {
    Client::connect(&plain(dovecot))
        .expect("connect")
        .login(&Credentials::new("alice", "alicepw"))
        .map_err(|(error, _)| error)
        .expect("login")
}

/// A test instance with alice's standard fixture (`fixtures::populate_standard`).
pub fn populated() -> Dovecot {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut raw = testkit::RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    testkit::fixtures::populate_standard(&mut raw);
    raw.logout();
    dovecot
}

/// Body sections and their bytes, in the order received.
pub type Bodies = Vec<(String, Vec<u8>)>;

/// Collects bodies and attributes per UID, pairing bodies with their message through the
/// sequence number of the final FETCH.
#[derive(Debug, Default)]
pub struct Collect {
    bodies_by_seq: HashMap<u32, Bodies>,
    /// Per UID: the complete FETCH and its bodies by section.
    pub messages: HashMap<u32, (Fetch, Bodies)>,
    /// Largest single `read` the handler saw.
    pub max_chunk: usize,
}

impl FetchHandler for Collect {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        let mut data = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            self.max_chunk = self.max_chunk.max(n);
            data.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(data.len() as u64, start.len, "reader yields exactly the literal");
        self.bodies_by_seq
            .entry(start.fetch.seq)
            .or_default()
            .push((start.section.section.clone(), data));
        Ok(())
    }

    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        let bodies = self.bodies_by_seq.remove(&fetch.seq).unwrap_or_default();
        if let Some(uid) = fetch.uid {
            self.messages.insert(uid.get(), (fetch, bodies));
        }
        Ok(())
    }
}
