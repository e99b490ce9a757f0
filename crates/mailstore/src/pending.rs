//! A message being written: the body streams into a temp file of the store (line ends
//! converted, sizes counted) until the store's `save` finishes it.

use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;

use crate::crlf::{ChunkWrite, ConvertingWriter};
use crate::maildir::writer::QueuedFile;

/// A message being written to a temp file of its store. Write the body (CRLF or LF, any
/// chunking) and hand it to the `save` of the mailbox that began it
/// ([`crate::Mailbox::save`], [`crate::SdboxMailbox::save`]); dropping it deletes the temp
/// file.
#[derive(Debug)]
pub struct PendingMessage {
    pub(crate) writer: Option<ConvertingWriter<Target>>,
    pub(crate) tmp_path: PathBuf,
    pub(crate) tmp_name: String,
}

/// Where a pending message's (converted) bytes go.
#[derive(Debug)]
pub(crate) enum Target {
    /// Into its file, on this thread.
    File(BufWriter<File>),
    /// To the mailbox's writer thread, which creates and writes the file
    /// (see [`crate::maildir::writer`]).
    Queued(QueuedFile),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(file) => file.write(buf),
            Target::Queued(file) => file.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Target::File(file) => file.write_all(buf),
            Target::Queued(file) => file.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::File(file) => file.flush(),
            Target::Queued(file) => file.flush(),
        }
    }
}

impl ChunkWrite for Target {
    fn write_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Target::File(file) => {
                let result = file.write_all(chunk);
                chunk.clear();
                result
            }
            Target::Queued(file) => file.take_chunk(chunk),
        }
    }
}

impl PendingMessage {
    /// Writes everything `source` holds, converting line ends straight from its buffer
    /// ([`BufRead::fill_buf`]) into the bytes that go to the file: no copy into a buffer
    /// of the caller's first. Returns how many bytes were read.
    pub fn write_from(&mut self, source: &mut dyn BufRead) -> io::Result<u64> {
        let Some(writer) = &mut self.writer else {
            return Err(io::Error::other("message already finished"));
        };
        crate::crlf::write_all_from(writer, source)
    }
}

impl Write for PendingMessage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(writer) => writer.write(buf),
            None => Err(io::Error::other("message already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingMessage {
    fn drop(&mut self) {
        // A queued file is removed by the writer thread (dropping it tells the thread).
        if let Some(writer) = &self.writer
            && matches!(writer.inner(), Target::File(_))
        {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}
