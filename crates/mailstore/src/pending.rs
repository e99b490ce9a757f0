//! A message being written: the body streams into a temp file of the store (line ends
//! converted, sizes counted) until the store's `save` finishes it.

use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;

use crate::crlf::{ChunkWrite, ConvertingWriter};

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

/// Where a pending message's (converted) bytes go: its temp file.
pub(crate) type Target = BufWriter<File>;

impl ChunkWrite for Target {}

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
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}
