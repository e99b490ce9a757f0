//! Saves into an sdbox mailbox, as Dovecot's `sdbox-save.c` makes them: each message is
//! written to a temp file (file header, message header, the body with LF line ends,
//! metadata) and fsynced; [`SdboxMailbox::commit`] then takes the log's lock, renames the
//! files to `u.<uid>` and appends one transaction (`APPEND`, keywords, POP3 header bits,
//! modseqs). Dovecot writes its temp files into `dbox-Mails`; ours go to the store's
//! staging directory in the root ([`super::Store::save_staging`], on the same file system),
//! so that the mail directory changes only under the lock and its clean stamp holds
//! across our commits ([`super::clean_stamp`]). A kill before the transaction is written
//! leaves files the index does not list; the next run of ours removes them, and Dovecot
//! never lists them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use super::file;
use super::mailbox::{FileInfo, SdboxMailbox, index_bit};
use super::write;
use crate::crlf::{ConvertingWriter, LineEndings};
use crate::error::{Error, IoContext, Result};
use crate::guid::Guid;
use crate::maildir::{CopyOutcome, SaveOptions};
use crate::pending::PendingMessage;

/// The start of our temp files' names: Dovecot removes any `.temp.*` older than 36 hours
/// (`DBOX_TMP_DELETE_SECS`), and its rebuild reads only `u.*`; ours name the writing
/// process, so the next run of ours removes those of a killed one at once (in the staging
/// directory with it; in `dbox-Mails`, where earlier versions of ours wrote them and where
/// they still go when the root is on another file system, by the first write's scan).
pub(crate) const TEMP_PREFIX: &str = ".temp.dsync-rs.";

/// A commit of this many messages or more is part of a bulk copy: it records no clean
/// stamp ([`super::clean_stamp`]), whose wait of up to a clock tick under the lock would
/// add seconds over the thousand commits of a large copy. The directory is then not known
/// clean for the rest of the run, and the next run lists it once (as every run did
/// before the stamp); runs that save a few messages keep the stamp from run to run.
const RECORD_BATCH_LIMIT: usize = 64;

/// A saved message waiting for commit.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) tmp_path: PathBuf,
    pub(crate) options: SaveOptions,
    /// Renamed to `u.<uid>`: nothing left to remove.
    pub(crate) committed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl SdboxMailbox {
    /// Where this mailbox's saves write their files: the store's staging directory when
    /// it is on the mail directory's file system (the commit's rename is atomic), else the
    /// mail directory itself (its clean stamp then never holds: every first write lists it).
    fn staging_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = self.staging.get() {
            return Ok(dir.clone());
        }
        let staging = self.store.save_staging()?;
        let same_device = match (fs::metadata(&staging), fs::metadata(&self.paths.mail)) {
            (Ok(staging), Ok(mail)) => staging.dev() == mail.dev(),
            _ => false,
        };
        let dir = if same_device { staging } else { self.paths.mail.clone() };
        Ok(self.staging.get_or_init(|| dir).clone())
    }

    /// Starts a message: a temp file in the staging directory, its headers written.
    pub fn begin_save(&self) -> Result<PendingMessage> {
        self.store.writable()?;
        let tmp_name = format!("{TEMP_PREFIX}{}", crate::maildir::filename::generate_base());
        let tmp_path = self.staging_dir()?.join(&tmp_name);
        let mut file = self.store.permissions()?.create_new(&tmp_path)?;
        let header = file::file_header(crate::fs::now().0);
        let result = file
            .write_all(&header)
            .and_then(|()| file.write_all(&file::message_header(0)))
            .ctx("write", &tmp_path);
        if let Err(error) = result {
            let _ = fs::remove_file(&tmp_path);
            return Err(error);
        }
        let writer =
            ConvertingWriter::new(BufWriter::with_capacity(64 * 1024, file), LineEndings::Lf);
        Ok(PendingMessage { writer: Some(writer), tmp_path, tmp_name })
    }

    /// Finishes a message (body size in its header, metadata: received date, virtual size,
    /// POP3 UIDL and order, GUID — the caller's, else a new one) and stages it for
    /// [`Self::commit`].
    pub fn save(&mut self, mut pending: PendingMessage, options: SaveOptions) -> Result<()> {
        crate::maildir::save::validate(&options)?;
        let tmp_path = pending.tmp_path.clone();
        let writer = pending
            .writer
            .take()
            .ok_or_else(|| Error::io("write", &tmp_path, io::Error::other("finished")))?;
        let staged = Staged { tmp_path: tmp_path.clone(), options, committed: false };
        let (buffered, size, virtual_size) = writer.finish().ctx("write", &tmp_path)?;
        let mut file =
            buffered.into_inner().map_err(|e| Error::io("write", &tmp_path, e.into_error()))?;
        self.finish_file(&mut file, &tmp_path, size, virtual_size, &staged.options)?;
        self.staged.push(staged);
        Ok(())
    }

    /// Writes the body size into the message header and appends the metadata.
    fn finish_file(
        &self,
        file: &mut File,
        path: &std::path::Path,
        size: u64,
        virtual_size: u64,
        options: &SaveOptions,
    ) -> Result<()> {
        let header_at = file::file_header(crate::fs::now().0).len() as u64;
        // The file header was written with the time at begin_save; its length is that of
        // any time of this century, which is what is rewritten here: only the size.
        let written = file.metadata().ctx("stat", path)?.len() - size;
        let header_at = written.checked_sub(file::MESSAGE_HEADER_SIZE as u64).unwrap_or(header_at);
        file.write_all_at(&file::message_header(size), header_at).ctx("write", path)?;
        let guid = options.guid.clone().unwrap_or_else(|| Guid::generate().to_string());
        let received = options.received.unwrap_or_else(|| crate::fs::now().0);
        let metadata = file::metadata(
            received,
            virtual_size,
            options.pop3_uidl.as_deref(),
            options.pop3_order,
            &guid,
        );
        file.write_all(&metadata).ctx("write", path)?;
        if self.store.fsync() {
            file.sync_data().ctx("fsync", path)?;
        }
        Ok(())
    }

    /// Streams a whole message from `source` and stages it.
    pub fn save_from(&mut self, source: &mut impl io::Read, options: SaveOptions) -> Result<()> {
        let mut pending = self.begin_save()?;
        let path = pending.tmp_path.clone();
        io::copy(source, &mut pending).ctx("copy message into", &path)?;
        self.save(pending, options)
    }

    /// Discards staged messages.
    pub fn rollback(&mut self) {
        self.staged.clear();
    }

    /// Makes every staged message visible and durable, in save order, and returns their
    /// UIDs. Under the log's lock: assign UIDs (forced ones must be ≥ the next UID), rename
    /// the files to `u.<uid>`, fsync the directory, append one transaction. On error
    /// nothing of the batch stays visible.
    pub fn commit(&mut self) -> Result<Vec<u32>> {
        if self.staged.is_empty() {
            return Ok(Vec::new());
        }
        let mut staged = std::mem::take(&mut self.staged);
        let result = self.commit_staged(&mut staged);
        if result.is_ok() {
            for item in &mut staged {
                item.committed = true;
            }
        }
        result
    }

    fn commit_staged(&self, staged: &mut [Staged]) -> Result<Vec<u32>> {
        let fsync = self.store.fsync();
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A save needs the headers only (next UID, extensions, modseqs): a long save
        // holds no record of the messages it appends.
        let mut locked =
            index.lock_headers(self.store.options.lock_timeout)?.ok_or_else(|| self.no_log())?;
        let clean = write::clean_once(self, locked.state())?;
        let mut next = locked.state().next_uid();
        let mut saves = Vec::with_capacity(staged.len());
        for item in staged.iter() {
            let uid = match item.options.uid {
                Some(uid) if uid >= next => uid,
                Some(uid) => {
                    return Err(Error::UidTooLow {
                        mailbox: self.name.to_string(),
                        uid,
                        next_uid: next,
                    });
                }
                None => next,
            };
            if uid == u32::MAX {
                return Err(Error::InvalidValue {
                    field: "UID",
                    value: uid.to_string(),
                    reason: "UID space exhausted",
                });
            }
            next = uid + 1;
            saves.push(write::Save {
                uid,
                flags: index_bit(item.options.flags),
                keywords: item.options.keywords.iter().map(|k| k.as_str().to_string()).collect(),
                modseq: item.options.modseq,
                pop3_uidl: item.options.pop3_uidl.is_some(),
                pop3_order: item.options.pop3_order.is_some(),
            });
        }
        let transaction = write::appends(locked.state(), &saves);
        let mut renamed = Vec::with_capacity(staged.len());
        let result = (|| {
            for (item, save) in staged.iter().zip(&saves) {
                // A u.<uid> at or above the next UID is a save that never finished (we
                // hold the lock no other writer works without): replaced.
                let target = self.paths.mail.join(format!("u.{}", save.uid));
                fs::rename(&item.tmp_path, &target).ctx("rename", &target)?;
                renamed.push(target);
            }
            if fsync {
                crate::fs::fsync_dir(&self.paths.mail)?;
            }
            locked.append(&transaction, fsync)?;
            // Still locked, every file renamed here logged: a directory clean before is
            // clean now. A bulk commit records nothing (see RECORD_BATCH_LIMIT).
            if clean && staged.len() < RECORD_BATCH_LIMIT {
                self.record_clean()?;
            }
            Ok(())
        })();
        if let Err(error) = result {
            // As Dovecot: what was renamed goes again while the lock is still held.
            for path in &renamed {
                let _ = fs::remove_file(path);
            }
            return Err(error);
        }
        Ok(saves.iter().map(|save| save.uid).collect())
    }

    /// Stages a copy of message `uid` of `from` (a mailbox of the same store, or this one)
    /// as [`Self::save`] stages a new message. The file is hard-linked, as Dovecot's
    /// `sdbox-copy.c` links it, when the copy keeps what the file itself records (received
    /// date, GUID, POP3 UIDL and order: `options` leaves them unset or equal); otherwise
    /// the body is copied into a new file. `expected_guid` given and different, or no
    /// message `uid`: nothing is staged and [`CopyOutcome::NotFound`] is returned.
    pub fn save_copy(
        &mut self,
        from: &SdboxMailbox,
        uid: u32,
        expected_guid: Option<&str>,
        options: SaveOptions,
    ) -> Result<CopyOutcome> {
        crate::maildir::save::validate(&options)?;
        self.store.writable()?;
        let info = match from.locate(uid) {
            Ok(Some(info)) => info,
            Ok(None) | Err(Error::LeftOut(_)) => return Ok(CopyOutcome::NotFound),
            Err(error) => return Err(error),
        };
        let guid = info.metadata.guid.clone().unwrap_or_default();
        if expected_guid.is_some_and(|expected| expected != guid) {
            return Ok(CopyOutcome::NotFound);
        }
        if same_metadata(&info, &options) {
            let tmp_path = self
                .staging_dir()?
                .join(format!("{TEMP_PREFIX}{}", crate::maildir::filename::generate_base()));
            let opened = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&info.file)
            ));
            let linked = nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                &opened,
                nix::fcntl::AT_FDCWD,
                &tmp_path,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            );
            if linked.is_ok() {
                self.staged.push(Staged { tmp_path, options, committed: false });
                return Ok(CopyOutcome::Linked);
            }
        }
        let mut body = info.file;
        io::Seek::seek(&mut body, io::SeekFrom::Start(info.layout.body_offset))
            .ctx("seek", &info.path)?;
        let received = options.received.or(info.metadata.received).unwrap_or(info.mtime);
        let options = SaveOptions { received: Some(received), ..options };
        self.save_from(&mut io::Read::take(body, info.layout.body_size), options)?;
        Ok(CopyOutcome::Copied)
    }
}

/// True when a copy with `options` may share the source's file: everything the file
/// records about the message is what the copy wants.
fn same_metadata(info: &FileInfo, options: &SaveOptions) -> bool {
    let metadata = &info.metadata;
    options.received.is_none_or(|received| Some(received) == metadata.received)
        && options.guid.as_ref().is_none_or(|guid| Some(guid) == metadata.guid.as_ref())
        && options.pop3_uidl == metadata.pop3_uidl
        && options.pop3_order == metadata.pop3_order
}
