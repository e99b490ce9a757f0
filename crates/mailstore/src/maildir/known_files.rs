//! What a caller already knows of a mailbox's message files from an earlier listing, so
//! that a listing neither `stat`s nor opens them again ([`MessageStream::next_knowing`]).
//!
//! A message file's received date (its mtime), size and size with CRLF line ends do not
//! change while its name stays (a flag change renames it, and the base name is the
//! message's identity): Dovecot keeps them in its index cache the same way and serves
//! them from there, not from the file. A caller that kept them from the last listing
//! (by UID and base name) hands them back here; the listing then reads only `cur/`,
//! `new/` and the uidlist, and each file it has not seen.
//!
//! [`MessageStream::next_knowing`]: super::MessageStream::next_knowing

/// A message file's facts that only change with its name or identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnownFile {
    /// Received date (the file's mtime), UNIX seconds.
    pub received: i64,
    /// Bytes stored on disk.
    pub size: u64,
    /// Size with CRLF line ends.
    pub virtual_size: u64,
}

impl KnownFile {
    /// The facts of one file.
    pub fn new(received: i64, size: u64, virtual_size: u64) -> KnownFile {
        KnownFile { received, size, virtual_size }
    }
}

/// What a listing does with one message file ([`KnownFiles::lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLookup {
    /// Nothing known: the file is read (`stat`, and opened when its CRLF size is needed).
    Read,
    /// Listed with these facts, the file not touched.
    Known(KnownFile),
    /// Not listed at all: the caller has it as it is (same UID, same name, same
    /// directory).
    Skip,
}

/// The caller's knowledge of a mailbox's files, asked once per regular message file in
/// ascending UID order (a symlink, which may lead elsewhere since, is always read).
pub trait KnownFiles {
    /// What is known of message `uid`, whose file is now named `name`, in `cur/` when
    /// `in_cur` (else in `new/`: a file moved between them under the same name is not as
    /// it was).
    fn lookup(&mut self, uid: u32, name: &str, in_cur: bool) -> FileLookup;
}

/// Knows nothing: every file is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingKnown;

impl KnownFiles for NothingKnown {
    fn lookup(&mut self, _uid: u32, _name: &str, _in_cur: bool) -> FileLookup {
        FileLookup::Read
    }
}
