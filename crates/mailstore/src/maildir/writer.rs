//! Message files written on a thread of their own: creating a file in `tmp/`, writing its
//! bytes, setting its mtime and closing it are four system calls per message that the
//! thread reading the messages (an IMAP client parsing a FETCH stream, converting line
//! ends) need not wait for.
//!
//! The saving thread queues what is to be done per file ([`Job`]s, in order) and hands
//! them over in batches through a bounded channel: memory stays bounded (a big message
//! goes over in chunks of [`CHUNK`] bytes while it is read, never held whole), and the
//! writer thread is woken once per batch, not once per message. [`FileQueue::sync`] waits
//! until every job handed over is done; [`super::Mailbox::commit`] calls it before it
//! renames a single file into `cur/`, so a commit (and whatever a caller records after
//! it) only ever sees complete files, as before. The first failure is kept and given to
//! the saving thread at its next save or commit; the failed file is removed.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// Bytes gathered before they are handed to the writer thread: a batch of small messages,
/// or one chunk of a big one.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Batches handed over but not yet taken by the writer thread. With [`CHUNK`]-sized
/// batches this bounds the memory in flight to a few hundred KiB.
const IN_FLIGHT: usize = 4;

/// Most files in one batch (so that a run of tiny messages is not held back long).
const BATCH_FILES: usize = 32;

/// One step of writing a message file, for the writer thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// Create `name` in `tmp/` (new, exclusive).
    Create { id: u64, name: String },
    /// Append bytes.
    Data { id: u64, bytes: Vec<u8> },
    /// Set the mtime (the received date, UNIX seconds) if given, fsync when the store
    /// wants it, close.
    Finish { id: u64, received: Option<i64> },
    /// Close and remove (a message given up before it was finished).
    Abort { id: u64 },
    /// Answer when everything before it is done.
    Sync(mpsc::Sender<()>),
    /// End the thread.
    Stop,
}

/// How the writer thread creates files.
#[derive(Debug)]
pub(crate) struct FileSettings {
    /// `tmp/`, opened: files are created relative to it.
    pub(crate) tmp_dir: OwnedFd,
    /// Its path, for error messages.
    pub(crate) tmp_path: PathBuf,
    /// Mode of new files.
    pub(crate) mode: u32,
    /// fsync each file before closing it.
    pub(crate) fsync: bool,
}

/// The saving thread's end: hands jobs to the writer thread and learns of its failures.
#[derive(Debug)]
pub(crate) struct FileQueue {
    sender: SyncSender<Vec<Job>>,
    failed: Arc<Mutex<Option<Error>>>,
    thread: Option<JoinHandle<()>>,
    /// Finished messages' jobs not handed over yet.
    batch: Vec<Job>,
    batch_bytes: usize,
    batch_files: usize,
    next_id: AtomicU64,
}

impl FileQueue {
    /// Starts a writer thread.
    pub(crate) fn start(settings: FileSettings) -> Result<FileQueue> {
        let (sender, receiver) = mpsc::sync_channel(IN_FLIGHT);
        let failed = Arc::new(Mutex::new(None));
        let thread_failed = Arc::clone(&failed);
        let path = settings.tmp_path.clone();
        let thread = std::thread::Builder::new()
            .name(String::from("maildir-writer"))
            .spawn(move || Writer::new(settings, thread_failed).run(&receiver))
            .map_err(|e| Error::io("start a writer thread for", path, e))?;
        Ok(FileQueue {
            sender,
            failed,
            thread: Some(thread),
            batch: Vec::new(),
            batch_bytes: 0,
            batch_files: 0,
            next_id: AtomicU64::new(0),
        })
    }

    /// A new file, named `name` in `tmp/`, written through the returned handle.
    pub(crate) fn file(&self, name: String) -> QueuedFile {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        QueuedFile {
            sender: self.sender.clone(),
            id,
            jobs: vec![Job::Create { id, name }],
            bytes: 0,
            handed_over: false,
            finished: false,
        }
    }

    /// Queues the end of `file` (mtime `received`, close); hands the batch over once it is
    /// big enough. Fails with an earlier file's failure, if any.
    pub(crate) fn finish(&mut self, mut file: QueuedFile, received: Option<i64>) -> Result<()> {
        file.finished = true;
        let id = file.id;
        self.batch_bytes += file.bytes;
        self.batch.append(&mut file.jobs);
        self.batch.push(Job::Finish { id, received });
        self.batch_files += 1;
        if self.batch_bytes >= CHUNK || self.batch_files >= BATCH_FILES {
            self.hand_over()?;
        }
        self.take_failure()
    }

    /// Waits until every file queued is written and closed; fails with the first failure
    /// since the last call.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.hand_over()?;
        let (done, wait) = mpsc::channel();
        self.send(vec![Job::Sync(done)])?;
        if wait.recv().is_err() {
            return Err(self.failure_or_gone());
        }
        self.take_failure()
    }

    /// Forgets the queued files that were not handed over (their messages are given up).
    pub(crate) fn discard(&mut self) {
        // Files of the batch are not created yet, except big ones whose first chunks went
        // ahead: those are removed.
        let aborts: Vec<Job> = self
            .batch
            .iter()
            .filter_map(|job| match job {
                Job::Finish { id, .. } => Some(Job::Abort { id: *id }),
                _ => None,
            })
            .collect();
        self.batch.clear();
        self.batch_bytes = 0;
        self.batch_files = 0;
        if !aborts.is_empty() {
            let _ = self.sender.send(aborts);
        }
    }

    fn hand_over(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FILES * 4));
        self.batch_bytes = 0;
        self.batch_files = 0;
        self.send(batch)
    }

    fn send(&mut self, jobs: Vec<Job>) -> Result<()> {
        self.sender.send(jobs).map_err(|_| self.failure_or_gone())
    }

    fn take_failure(&self) -> Result<()> {
        match self.failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The writer thread's failure, or that it is gone (it panicked).
    fn failure_or_gone(&self) -> Error {
        match self.take_failure() {
            Err(error) => error,
            Ok(()) => Error::io("write", PathBuf::new(), io::Error::other("writer thread ended")),
        }
    }
}

impl Drop for FileQueue {
    fn drop(&mut self) {
        self.discard();
        let _ = self.sender.send(vec![Job::Stop]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A message file being written by the writer thread: what is written is queued, and
/// handed over in [`CHUNK`]s while the message is still being read when it is big.
#[derive(Debug)]
pub(crate) struct QueuedFile {
    sender: SyncSender<Vec<Job>>,
    id: u64,
    jobs: Vec<Job>,
    bytes: usize,
    /// Some jobs went to the writer thread already (the file may exist).
    handed_over: bool,
    /// Given to [`FileQueue::finish`].
    finished: bool,
}

impl QueuedFile {
    /// Queues all of `chunk`, taking its buffer (no copy), and leaves it empty.
    pub(crate) fn take_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        // The converting writer allocates again only if more of the message follows.
        self.queue(std::mem::take(chunk))
    }

    fn queue(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.bytes += bytes.len();
        self.jobs.push(Job::Data { id: self.id, bytes });
        if self.bytes >= CHUNK {
            let jobs = std::mem::take(&mut self.jobs);
            self.bytes = 0;
            self.handed_over = true;
            self.sender.send(jobs).map_err(|_| io::Error::other("the writer thread ended"))?;
        }
        Ok(())
    }
}

impl Write for QueuedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.queue(buf.to_vec())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedFile {
    fn drop(&mut self) {
        if !self.finished && self.handed_over {
            // Given up: its file exists (or will); the writer thread removes it.
            let _ = self.sender.send(vec![Job::Abort { id: self.id }]);
        }
    }
}

/// The writer thread.
struct Writer {
    settings: FileSettings,
    failed: Arc<Mutex<Option<Error>>>,
    /// Files being written, by id (rarely more than one or two).
    open: Vec<(u64, String, File)>,
}

impl Writer {
    fn new(settings: FileSettings, failed: Arc<Mutex<Option<Error>>>) -> Writer {
        Writer { settings, failed, open: Vec::new() }
    }

    fn run(mut self, receiver: &Receiver<Vec<Job>>) {
        'jobs: while let Ok(jobs) = receiver.recv() {
            for job in jobs {
                match job {
                    Job::Stop => break 'jobs,
                    Job::Sync(done) => {
                        let _ = done.send(());
                    }
                    job => self.perform(job),
                }
            }
        }
        // Files still open were never finished (a message still being written when its
        // mailbox handle went away): none may stay behind half written.
        for (_, name, file) in std::mem::take(&mut self.open) {
            drop(file);
            self.unlink(&name);
        }
    }

    fn perform(&mut self, job: Job) {
        match job {
            Job::Create { id, name } => {
                let flags = nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_CLOEXEC;
                let mode = nix::sys::stat::Mode::from_bits_truncate(self.settings.mode & 0o7777);
                match nix::fcntl::openat(self.settings.tmp_dir.as_fd(), name.as_str(), flags, mode)
                {
                    Ok(fd) => self.open.push((id, name, File::from(fd))),
                    Err(errno) => {
                        self.fail("create", &name, io::Error::from(errno), false);
                    }
                }
            }
            Job::Data { id, bytes } => {
                if let Some(at) = self.position(id)
                    && let Err(error) = self.open[at].2.write_all(&bytes)
                {
                    let name = self.open.swap_remove(at).1;
                    self.fail("write", &name, error, true);
                }
            }
            Job::Finish { id, received } => {
                if let Some(at) = self.position(id) {
                    let (_, name, file) = self.open.swap_remove(at);
                    let result = received
                        .map_or(Ok(()), |seconds| {
                            file.set_modified(crate::fs::system_time(seconds))
                                .map_err(|e| ("set mtime", e))
                        })
                        .and_then(|()| {
                            if self.settings.fsync {
                                file.sync_all().map_err(|e| ("fsync", e))
                            } else {
                                Ok(())
                            }
                        });
                    drop(file);
                    if let Err((op, error)) = result {
                        self.fail(op, &name, error, true);
                    }
                }
            }
            Job::Abort { id } => {
                if let Some(at) = self.position(id) {
                    let (_, name, file) = self.open.swap_remove(at);
                    drop(file);
                    self.unlink(&name);
                }
            }
            Job::Sync(_) | Job::Stop => {}
        }
    }

    /// Where file `id` is in `open`; `None` when it failed before (or was never created).
    fn position(&self, id: u64) -> Option<usize> {
        self.open.iter().position(|(open, _, _)| *open == id)
    }

    fn fail(&self, op: &'static str, name: &str, error: io::Error, created: bool) {
        if created {
            self.unlink(name);
        }
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.is_none() {
            *failed = Some(Error::io(op, self.settings.tmp_path.join(name), error));
        }
    }

    fn unlink(&self, name: &str) {
        let _ = nix::unistd::unlinkat(
            self.settings.tmp_dir.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}
