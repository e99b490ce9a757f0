//! [`MetadataListing`]: a mailbox's metadata listing read one answer at a time, so that a
//! caller comparing a 1 000 000-message mailbox never holds its listing whole.

use crate::error::{Error, Result};
use crate::proto::{Response, Untagged};

use super::conn::{Conn, check};
use super::fetch::{MessageMeta, is_fetch};

/// The answers of a `UID FETCH 1:* (…)` metadata listing
/// ([`Session::examine_listing`](crate::Session::examine_listing)), read from the
/// connection as the caller asks for them: each complete answer as a [`MessageMeta`], in
/// the order the server sends them (Dovecot's is ascending UID; a caller that needs an
/// order checks it). Unsolicited answers without every item (another client's flag change)
/// are passed over.
///
/// The listing ends with `None` after the command's tagged answer, or after an error
/// (then given once as `Some(Err(..))`). Dropped before its end, or once the server listed
/// more messages than the mailbox has (EXISTS), the rest of the answer is read and dropped
/// so the session can go on — except after an answer that puts the connection out of step
/// (an answer to a command never sent): then the session is unusable, as after any fatal
/// error.
#[derive(Debug)]
pub struct MetadataListing<'s> {
    conn: &'s mut Conn,
    /// The `UID FETCH`'s tag, until its tagged answer is read.
    tag: Option<String>,
    /// The mailbox's highest EXISTS: a listing cannot hold more messages.
    limit: u32,
    /// Complete answers handed on.
    listed: u64,
    /// The first answer that looked like a FETCH but could not be decoded.
    malformed: Option<Vec<u8>>,
}

impl<'s> MetadataListing<'s> {
    /// The listing of the `UID FETCH` sent as `tag`, in a mailbox of `exists` messages;
    /// without a tag, an empty one.
    pub(crate) fn new(conn: &'s mut Conn, tag: Option<String>, exists: u32) -> MetadataListing<'s> {
        MetadataListing { conn, tag, limit: exists, listed: 0, malformed: None }
    }

    /// The whole listing, sorted by UID, a message answered twice alike once (two
    /// different answers under one UID are both kept, for the caller to report).
    ///
    /// # Errors
    ///
    /// The listing's first error.
    pub fn read_whole(self) -> Result<Vec<MessageMeta>> {
        // A server's EXISTS bounds the listing (and what it costs to keep); never trust it
        // for more than a first allocation.
        let mut all = Vec::with_capacity((self.limit as usize).min(1 << 16));
        for meta in self {
            all.push(meta?);
        }
        all.sort_by_key(|m| m.uid);
        all.dedup();
        Ok(all)
    }

    /// Ends the listing with `error`; a fatal one leaves the connection unusable.
    fn fail(&mut self, error: Error, fatal: bool) -> Result<MessageMeta> {
        self.tag = None;
        if fatal {
            self.conn.mark_broken();
        }
        Err(error)
    }
}

impl Iterator for MetadataListing<'_> {
    type Item = Result<MessageMeta>;

    fn next(&mut self) -> Option<Result<MessageMeta>> {
        loop {
            let tag = self.tag.as_deref()?;
            let response = match self.conn.next_response() {
                Ok(response) => response,
                // The connection is gone or could not be read: nothing more will come.
                Err(error) => return Some(self.fail(error, false)),
            };
            match response {
                Response::Untagged(Untagged::Fetch(fetch)) => {
                    // Unsolicited FETCH (a flag change by another client) without all items.
                    let Some(meta) = MessageMeta::from_fetch(*fetch) else { continue };
                    self.listed += 1;
                    if self.listed > u64::from(self.limit) {
                        // The rest is read and dropped (the session stays in sync), never
                        // kept: its cost stays bounded whatever the server sends.
                        let error = Error::Protocol(format!(
                            "the server listed more messages than the {} the mailbox has \
                             (EXISTS)",
                            self.limit
                        ));
                        if let Some(tag) = self.tag.take() {
                            let _ = self.conn.finish(&tag, "UID FETCH", &mut |_| Ok(()));
                        }
                        return Some(Err(error));
                    }
                    return Some(Ok(meta));
                }
                Response::Untagged(Untagged::Exists(count)) => self.limit = self.limit.max(count),
                Response::Untagged(Untagged::Malformed { raw }) if is_fetch(&raw) => {
                    self.malformed.get_or_insert(raw);
                }
                Response::Untagged(_) => {}
                Response::Tagged { tag: answered, status } if answered == tag => {
                    self.tag = None;
                    if let Err(error) = check("UID FETCH", status) {
                        return Some(Err(error));
                    }
                    let raw = self.malformed.take()?;
                    return Some(Err(Error::Decode(crate::proto::DecodeError::Malformed {
                        line: mutf7::escape_for_display(&raw[..raw.len().min(200)]),
                    })));
                }
                Response::Tagged { tag: answered, .. } => {
                    let error = Error::Protocol(format!("answer for unknown tag {answered:?}"));
                    return Some(self.fail(error, true));
                }
                Response::Continuation { .. } => {
                    let error = Error::Protocol("unexpected continuation during UID FETCH".into());
                    return Some(self.fail(error, true));
                }
            }
        }
    }
}

impl Drop for MetadataListing<'_> {
    fn drop(&mut self) {
        if let Some(tag) = self.tag.take() {
            // The caller stopped early: read the rest so the next command's answers are
            // its own. A failure here shows at the session's next command.
            let _ = self.conn.finish(&tag, "UID FETCH", &mut |_| Ok(()));
        }
    }
}
