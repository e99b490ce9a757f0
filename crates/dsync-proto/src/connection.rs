//! A blocking conversation with a child process: the remote command's stdin and stdout
//! carry the protocol, its stderr goes straight to ours (as doveadm copies it), and how
//! it exits becomes our error.
//!
//! Our bytes go to the child through a writer thread, so the child can never block us by
//! filling its stdout while we write (and the other way round). Its stdout is read by a
//! reader thread, so a remote that stops answering is noticed after the I/O timeout
//! (doveadm's `-T`, 600 s by default) instead of hanging the run.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::command::RemoteCommand;
use crate::error::ClientError;
use crate::proto::{Decoder, Event, Finish, Handshake, Item, ItemKind, Limits, Record};

/// Chunks queued for the writer thread at most.
const WRITE_QUEUE: usize = 16;

/// Bytes queued in [`Connection::buffer`] before [`Connection::flush_if_large`] sends them.
const FLUSH_AT: usize = 256 << 10;

/// An event of the peer, owned (the decoder's borrow its buffers).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The peer's version line.
    Version,
    /// The peer's schema lines are complete.
    SchemasDone,
    /// One item.
    Item(Record),
    /// The end of a list.
    EndOfList,
    /// `X`.
    Done,
    /// Stream bytes.
    StreamData(Vec<u8>),
    /// The end of a stream.
    StreamEnd,
}

impl Incoming {
    /// A short description for errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Incoming::Version => "its version line".into(),
            Incoming::SchemasDone => "the end of its schemas".into(),
            Incoming::Item(record) => format!("a {} item", record.kind()),
            Incoming::EndOfList => "the end of a list".into(),
            Incoming::Done => "its goodbye (X)".into(),
            Incoming::StreamData(_) | Incoming::StreamEnd => "stream data".into(),
        }
    }
}

/// The running child and both directions of the conversation.
#[derive(Debug)]
pub(crate) struct Connection {
    command: RemoteCommand,
    child: Child,
    from_child: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    timeout: Duration,
    decoder: Decoder,
    to_child: Option<mpsc::SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<std::io::Result<()>>>,
    pending: Vec<u8>,
}

/// Reads the child's stdout in chunks until its end (an empty chunk) or an error; stops
/// when nobody listens any more. At most a few chunks wait, so a fast remote cannot make
/// us buffer a whole mailbox.
fn read_child(mut stdout: impl Read, to_us: &mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    let mut buf = vec![0; 64 << 10];
    loop {
        match stdout.read(&mut buf) {
            Ok(n) => {
                if to_us.send(Ok(buf[..n].to_vec())).is_err() || n == 0 {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = to_us.send(Err(e));
                return;
            }
        }
    }
}

impl Connection {
    /// Starts `command`; a remote silent for longer than `timeout` is an error.
    pub(crate) fn spawn(
        command: &RemoteCommand,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let mut child = Command::new(command.program())
            .args(&command.argv()[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| ClientError::Spawn { command: command.to_string(), source })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClientError::Spawn {
                command: command.to_string(),
                source: std::io::Error::other("no pipes to the child"),
            });
        };
        // Bounded: a pushing side that produces faster than the child reads waits instead of
        // buffering whole mailboxes. The child never waits on us meanwhile: while we send
        // mail bodies it has nothing left to say.
        let (to_child, from_us) = mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
        let writer = std::thread::Builder::new()
            .name("dsync-remote-writer".into())
            .spawn(move || {
                for chunk in from_us {
                    stdin.write_all(&chunk)?;
                }
                stdin.flush()
            })
            .map_err(|source| ClientError::Spawn { command: command.to_string(), source })?;
        let (to_us, from_child) = mpsc::sync_channel(4);
        std::thread::Builder::new()
            .name("dsync-remote-reader".into())
            .spawn(move || read_child(stdout, &to_us))
            .map_err(|source| ClientError::Spawn { command: command.to_string(), source })?;
        Ok(Connection {
            command: command.clone(),
            child,
            from_child,
            timeout,
            decoder: Decoder::new(Limits::default()),
            to_child: Some(to_child),
            writer: Some(writer),
            pending: Vec::new(),
        })
    }

    /// Queues bytes for the child; they leave at the next [`Connection::flush`].
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Hands the queued bytes to the writer thread once they are many (a pushing side
    /// calls it after each mail, so a large mailbox is never held in memory whole).
    pub(crate) fn flush_if_large(&mut self) -> Result<(), ClientError> {
        if self.pending.len() >= FLUSH_AT { self.flush() } else { Ok(()) }
    }

    /// Hands the queued bytes to the writer thread.
    pub(crate) fn flush(&mut self) -> Result<(), ClientError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.pending);
        let sent = self.to_child.as_ref().is_some_and(|to_child| to_child.send(chunk).is_ok());
        if sent { Ok(()) } else { Err(self.writer_failure()) }
    }

    /// Why the writer thread stopped (the child closed its stdin, most likely by exiting).
    fn writer_failure(&mut self) -> ClientError {
        self.to_child = None;
        let result = self.writer.take().map(JoinHandle::join);
        match result {
            Some(Ok(Err(source))) if source.kind() != std::io::ErrorKind::BrokenPipe => {
                ClientError::Io { command: self.command.to_string(), source }
            }
            _ => self.closed(),
        }
    }

    /// The child ended the conversation early: wait for it and report how it exited.
    fn closed(&mut self) -> ClientError {
        self.to_child = None;
        match self.child.wait() {
            Ok(status) => ClientError::Closed { command: self.command.to_string(), status },
            Err(source) => ClientError::Io { command: self.command.to_string(), source },
        }
    }

    /// The peer's next event, reading as much as needed.
    pub(crate) fn next(&mut self) -> Result<Incoming, ClientError> {
        self.flush()?;
        loop {
            if let Some(event) = self.decoder.next_event()? {
                return Ok(match event {
                    Event::Version { .. } => Incoming::Version,
                    Event::SchemasDone => Incoming::SchemasDone,
                    Event::Item(record) => Incoming::Item(record),
                    Event::EndOfList => Incoming::EndOfList,
                    Event::Done => Incoming::Done,
                    Event::StreamData(bytes) => Incoming::StreamData(bytes.to_vec()),
                    Event::StreamEnd => Incoming::StreamEnd,
                });
            }
            let chunk = match self.from_child.recv_timeout(self.timeout) {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(source)) => {
                    return Err(ClientError::Io { command: self.command.to_string(), source });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(ClientError::Timeout {
                        command: self.command.to_string(),
                        seconds: self.timeout.as_secs(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.closed()),
            };
            if chunk.is_empty() {
                return Err(self.closed());
            }
            self.decoder.feed(&chunk);
        }
    }

    /// The remote's side of the greeting: its version line, its schemas and its handshake
    /// (`H`) item, the same in every role.
    pub(crate) fn remote_handshake(&mut self) -> Result<Handshake, ClientError> {
        self.expect(|e| matches!(e, Incoming::Version), "the version line")?;
        self.expect(|e| matches!(e, Incoming::SchemasDone), "schema lines")?;
        self.item("the remote's handshake (H)")
    }

    /// The next event, which must satisfy `wanted`.
    pub(crate) fn expect(
        &mut self,
        wanted: impl Fn(&Incoming) -> bool,
        expected: &'static str,
    ) -> Result<(), ClientError> {
        let event = self.next()?;
        if wanted(&event) {
            Ok(())
        } else {
            Err(ClientError::Unexpected { got: event.describe(), expected })
        }
    }

    /// The next event as one item of kind `I`.
    pub(crate) fn item<I: Item>(&mut self, expected: &'static str) -> Result<I, ClientError> {
        match self.list_item(expected)? {
            Some(item) => Ok(item),
            None => Err(ClientError::Unexpected { got: "the end of a list".into(), expected }),
        }
    }

    /// The next item of a list of `I`, or `None` at its end. An `F` item instead is the
    /// peer failing midway: its reason becomes the error.
    pub(crate) fn list_item<I: Item>(
        &mut self,
        expected: &'static str,
    ) -> Result<Option<I>, ClientError> {
        match self.next()? {
            Incoming::EndOfList => Ok(None),
            Incoming::Item(record) if record.kind() == I::KIND => {
                Ok(Some(I::from_record(&record)?))
            }
            Incoming::Item(record) if record.kind() == ItemKind::Finish => {
                let finish = Finish::from_record(&record)?;
                Err(ClientError::Remote {
                    message: finish.error.unwrap_or_else(|| "(no reason given)".into()),
                    mail_error: finish.mail_error,
                    require_full_resync: finish.require_full_resync,
                })
            }
            // The peer gave up midway without an F (Dovecot's slave does so after an
            // error it has logged on stderr): how it exits says what kind of failure.
            Incoming::Done => Err(self.closed()),
            other => Err(ClientError::Unexpected { got: other.describe(), expected }),
        }
    }

    /// Ends our side (closes the child's stdin) and waits for the child; an exit status
    /// other than success is an error.
    pub(crate) fn finish(mut self) -> Result<(), ClientError> {
        self.flush()?;
        self.to_child = None;
        let written = self.writer.take().map(JoinHandle::join);
        if let Some(Ok(Err(source))) = written
            && source.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(ClientError::Io { command: self.command.to_string(), source });
        }
        let status = self
            .child
            .wait()
            .map_err(|source| ClientError::Io { command: self.command.to_string(), source })?;
        if status.success() {
            Ok(())
        } else {
            Err(ClientError::Exit { command: self.command.to_string(), status })
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A conversation abandoned midway: closing stdin makes dsync-server stop; kill it
        // in case it does not, so no child outlives us.
        self.to_child = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
