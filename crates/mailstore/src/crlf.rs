//! Line-ending conversion while streaming, with Dovecot's size accounting.
//!
//! Dovecot stores Maildir mail with LF line ends (`i_stream_create_lf`: CRLF becomes LF, a
//! lone CR stays) unless `mail_save_crlf=yes` (`i_stream_create_crlf`: a bare LF becomes
//! CRLF). The virtual size (`W=`, IMAP `RFC822.SIZE`) counts every LF not preceded by CR as
//! two bytes, which is exactly what IMAP serves.
//!
//! One case we store better than Dovecot: a CRLF right after a CR (`\r\r\n`, seen in real
//! spam). Dovecot stores `\r\n`, which it then serves as `\r\n`: a CR of the message is
//! lost. We keep such a CRLF as it is, so what IMAP serves is the message that was saved.

use std::io::{self, BufRead, Read, Write};

/// How message bodies are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEndings {
    /// LF only, Dovecot's default.
    #[default]
    Lf,
    /// CRLF, as with `mail_save_crlf = yes`.
    Crlf,
}

/// Where a [`ConvertingWriter`] puts converted bytes: a writer that may also take a whole
/// buffer of them.
pub(crate) trait ChunkWrite: Write {
    /// Writes all of `chunk` and leaves it empty; the default copies it out.
    fn write_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
        let result = self.write_all(chunk);
        chunk.clear();
        result
    }
}

impl ChunkWrite for Vec<u8> {}

/// Converts line endings of everything written and counts stored and virtual bytes.
#[derive(Debug)]
pub(crate) struct ConvertingWriter<W: Write> {
    inner: W,
    mode: LineEndings,
    pending_cr: bool,
    last_stored: u8,
    physical: u64,
    bare_lf: u64,
    /// Converted bytes not yet written to `inner`.
    scratch: Vec<u8>,
    /// Converted bytes are written once this many have gathered (0: after each write).
    buffer_limit: usize,
}

impl<W: ChunkWrite> ConvertingWriter<W> {
    pub(crate) fn new(inner: W, mode: LineEndings) -> Self {
        ConvertingWriter {
            inner,
            mode,
            pending_cr: false,
            last_stored: 0,
            physical: 0,
            bare_lf: 0,
            scratch: Vec::new(),
            buffer_limit: 0,
        }
    }

    /// Gathers up to `limit` converted bytes before writing them to the inner writer: a
    /// message of that size is written with one call, from this writer's own buffer (so
    /// the inner writer needs none).
    pub(crate) fn buffering(mut self, limit: usize) -> Self {
        self.buffer_limit = limit;
        self.scratch.reserve(limit.min(16 * 1024));
        self
    }

    /// Like [`buffering`](Self::buffering), gathering into `scratch` (emptied first): the
    /// buffer of an earlier message, handed back by [`finish_keeping`](Self::finish_keeping),
    /// saves allocating one per message.
    pub(crate) fn buffering_into(mut self, limit: usize, mut scratch: Vec<u8>) -> Self {
        scratch.clear();
        self.scratch = scratch;
        self.buffering(limit)
    }

    /// Writes what is still held back (a final lone CR) and returns the inner writer with
    /// the physical (stored) and virtual (CRLF) sizes.
    pub(crate) fn finish(self) -> io::Result<(W, u64, u64)> {
        let (inner, physical, virtual_size, _) = self.finish_keeping()?;
        Ok((inner, physical, virtual_size))
    }

    /// Like [`finish`](Self::finish), also handing back the (emptied) buffer converted bytes
    /// were gathered in, for the next message's [`buffering_into`](Self::buffering_into).
    pub(crate) fn finish_keeping(mut self) -> io::Result<(W, u64, u64, Vec<u8>)> {
        if self.pending_cr {
            self.pending_cr = false;
            let start = self.scratch.len();
            self.scratch.push(b'\r');
            self.count_stored(start);
        }
        self.flush_scratch()?;
        self.scratch.clear();
        Ok((self.inner, self.physical, self.physical + self.bare_lf, self.scratch))
    }

    /// Counts the bytes converted into `scratch[start..]` as stored: every byte, and every LF not
    /// preceded by CR (the previous chunk's last byte included) as one more virtual byte.
    /// Runs once per chunk written, not per line: the LFs are counted with a vectorised
    /// count, and stored CRLF pairs (rare: only a lone CR before a CRLF in LF mode, every
    /// line end in CRLF mode) are found with `memchr` for CR.
    fn count_stored(&mut self, start: usize) {
        let stored = &self.scratch[start..];
        let Some(&last) = stored.last() else { return };
        let mut bare = memchr::memchr_iter(b'\n', stored).count() as u64;
        if stored[0] == b'\n' && self.last_stored == b'\r' {
            bare -= 1;
        }
        for at in memchr::memchr_iter(b'\r', stored) {
            if stored.get(at + 1) == Some(&b'\n') {
                bare -= 1;
            }
        }
        self.bare_lf += bare;
        self.last_stored = last;
        self.physical += stored.len() as u64;
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.inner.write_chunk(&mut self.scratch)
    }

    /// The last byte converted so far (in `scratch`, or already written).
    fn last_converted(&self) -> u8 {
        self.scratch.last().copied().unwrap_or(self.last_stored)
    }

    /// Converts `input` into `scratch` in LF mode and counts what it stored (the work of
    /// [`count_stored`](Self::count_stored), without a second pass). Only a CR right before
    /// an LF can go (a lone CR stays), so the LFs are what is looked for: one `memchr`
    /// iterator over the whole input finds the line ends, which are also the LFs to count,
    /// and bytes are copied a run at a time, a run ending where a CR is dropped.
    fn convert_lf(&mut self, input: &[u8]) {
        let Some(&last) = input.last() else { return };
        let start = self.scratch.len();
        self.scratch.reserve(input.len() + 1);
        if self.pending_cr {
            self.pending_cr = false;
            if input[0] != b'\n' || self.last_converted() == b'\r' {
                self.scratch.push(b'\r');
            }
        }
        // A CR ending the input is decided by the next chunk.
        let body = match last {
            b'\r' => &input[..input.len() - 1],
            _ => input,
        };
        let mut lfs = 0u64;
        // Stored LFs right after a stored CR: not bare, counted once in the virtual size.
        let mut after_cr = 0u64;
        // `body[run..]` is kept from here on until a CR is dropped.
        let mut run = 0;
        // Where the search for the next LF starts (a `memchr` call per line: cheaper than
        // `memchr_iter`'s state).
        let mut from = 0;
        while let Some(found) = memchr::memchr(b'\n', &body[from..]) {
            let at = from + found;
            from = at + 1;
            lfs += 1;
            let Some(cr) = at.checked_sub(1) else {
                // The byte before is the last one converted (a held-back CR, now decided).
                after_cr += u64::from(self.last_converted() == b'\r');
                continue;
            };
            if body[cr] != b'\r' {
                continue;
            }
            // CRLF: the CR goes, unless it follows a stored CR: a stored `\r\r\n` would be
            // served one CR short (see the module doc). A dropped CR is followed by LF, so
            // the byte before this CR is stored: `body[cr - 1]`, or the last one converted.
            let previous = match cr.checked_sub(1) {
                Some(before) => body[before],
                None => self.last_converted(),
            };
            if previous == b'\r' {
                after_cr += 1;
            } else {
                self.scratch.extend_from_slice(&body[run..cr]);
                run = at;
            }
        }
        self.scratch.extend_from_slice(&body[run..]);
        self.pending_cr = body.len() < input.len();
        let stored = &self.scratch[start..];
        if let Some(&last_stored) = stored.last() {
            self.last_stored = last_stored;
        }
        self.physical += stored.len() as u64;
        self.bare_lf += lfs - after_cr;
    }

    /// Converts `input` into `scratch` in CRLF mode (counted by
    /// [`count_stored`](Self::count_stored) afterwards).
    fn convert_crlf(&mut self, input: &[u8]) {
        let previous = self.last_converted();
        push_with_crlf(input, previous, &mut self.scratch);
    }
}

/// Appends `input` to `out` with every LF not preceded by CR made CRLF (`previous`: the
/// byte before `input[0]`). Bytes are copied a run at a time, a run ending where a CR goes
/// in: for stored mail (LF line ends), a `memchr` and a copy per line.
fn push_with_crlf(input: &[u8], previous: u8, out: &mut Vec<u8>) {
    out.reserve(input.len() + 1);
    let mut run = 0;
    for at in memchr::memchr_iter(b'\n', input) {
        let before = match at {
            0 => previous,
            _ => input[at - 1],
        };
        if before != b'\r' {
            out.extend_from_slice(&input[run..at]);
            out.push(b'\r');
            run = at;
        }
    }
    out.extend_from_slice(&input[run..]);
}

impl<W: ChunkWrite> Write for ConvertingWriter<W> {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        // Note: the sizes are counted before the bytes reach the inner writer; a failed
        // write poisons the message anyway (the caller discards it).
        match self.mode {
            LineEndings::Lf => self.convert_lf(input),
            LineEndings::Crlf => {
                let start = self.scratch.len();
                self.convert_crlf(input);
                self.count_stored(start);
            }
        }
        if self.scratch.len() >= self.buffer_limit {
            self.flush_scratch()?;
        }
        Ok(input.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_scratch()?;
        self.inner.flush()
    }
}

/// Writes everything `source` holds into `writer` straight from `source`'s buffer
/// ([`BufRead::fill_buf`], then [`BufRead::consume`] of what was written): with a
/// [`ConvertingWriter`] the line ends are converted from there into the bytes that go to
/// the file, with no copy into a buffer in between. Returns how many bytes were read.
pub(crate) fn write_all_from<W: Write + ?Sized>(
    writer: &mut W,
    source: &mut dyn BufRead,
) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let bytes = match source.fill_buf() {
            Ok([]) => return Ok(total),
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let n = bytes.len();
        writer.write_all(bytes)?;
        source.consume(n);
        total += n as u64;
    }
}

/// Reads a stored message as IMAP serves it: every LF not preceded by CR becomes CRLF.
#[derive(Debug)]
pub struct CrlfReader<R: Read> {
    inner: R,
    /// Stored bytes as read (allocated once per reader, not zeroed per read).
    raw: Vec<u8>,
    buffer: Vec<u8>,
    start: usize,
    previous: u8,
}

/// How many stored bytes a [`CrlfReader`] reads at a time.
const RAW_CHUNK: usize = 8192;

impl<R: Read> CrlfReader<R> {
    /// Wraps a reader of stored bytes.
    pub fn new(inner: R) -> Self {
        CrlfReader {
            inner,
            raw: Vec::new(),
            buffer: Vec::with_capacity(16 * 1024),
            start: 0,
            previous: 0,
        }
    }
}

impl<R: Read> Read for CrlfReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.start >= self.buffer.len() {
            if self.raw.is_empty() {
                self.raw.resize(RAW_CHUNK, 0);
            }
            let n = loop {
                match self.inner.read(&mut self.raw) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            let Some(&last) = self.raw.get(..n).and_then(<[u8]>::last) else { return Ok(0) };
            self.buffer.clear();
            self.start = 0;
            push_with_crlf(&self.raw[..n], self.previous, &mut self.buffer);
            self.previous = last;
        }
        let available = &self.buffer[self.start..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    fn convert(mode: LineEndings, chunks: &[&[u8]]) -> (Vec<u8>, u64, u64) {
        convert_buffering(mode, chunks, 0)
    }

    /// [`convert`] with the writer gathering up to `limit` bytes before writing them.
    fn convert_buffering(mode: LineEndings, chunks: &[&[u8]], limit: usize) -> (Vec<u8>, u64, u64) {
        let mut writer = ConvertingWriter::new(Vec::new(), mode).buffering(limit);
        for chunk in chunks {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn known_answers() {
        let cases: &[(LineEndings, &[u8], &[u8], u64)] = &[
            (LineEndings::Lf, b"a\r\nb\r\n", b"a\nb\n", 6),
            (LineEndings::Lf, b"a\nb", b"a\nb", 4),
            (LineEndings::Lf, b"a\rb\r", b"a\rb\r", 4),
            (LineEndings::Lf, b"a\r\r\nb", b"a\r\r\nb", 5),
            (LineEndings::Lf, b"\r\r\r\n\r\n", b"\r\r\r\n\n", 6),
            (LineEndings::Lf, b"", b"", 0),
            (LineEndings::Crlf, b"a\nb\r\nc", b"a\r\nb\r\nc", 7),
            (LineEndings::Crlf, b"\n\n", b"\r\n\r\n", 4),
        ];
        for (mode, input, stored, vsize) in cases {
            let (out, physical, virtual_size) = convert(*mode, &[input]);
            assert_eq!(out, *stored, "{mode:?} {input:?}");
            assert_eq!(physical, stored.len() as u64);
            assert_eq!(virtual_size, *vsize, "{mode:?} {input:?}");
            // Any split of the input gives the same result.
            for split in 0..=input.len() {
                let (left, right) = input.split_at(split);
                assert_eq!(
                    convert(*mode, &[left, right]),
                    (stored.to_vec(), physical, virtual_size)
                );
            }
            // Reading back as IMAP serves it gives `vsize` bytes.
            let mut served = Vec::new();
            CrlfReader::new(&stored[..]).read_to_end(&mut served).unwrap();
            assert_eq!(served.len() as u64, virtual_size);
        }
    }

    /// The conversion and size accounting as first written: one byte at a time.
    fn reference(mode: LineEndings, input: &[u8]) -> (Vec<u8>, u64, u64) {
        let mut stored = Vec::new();
        let mut iter = input.iter().copied().peekable();
        while let Some(byte) = iter.next() {
            match (mode, byte) {
                (LineEndings::Lf, b'\r')
                    if iter.peek() == Some(&b'\n') && stored.last() != Some(&b'\r') => {}
                (LineEndings::Crlf, b'\n') if stored.last() != Some(&b'\r') => {
                    stored.extend_from_slice(b"\r\n");
                }
                _ => stored.push(byte),
            }
        }
        let mut bare_lf = 0;
        for (at, &byte) in stored.iter().enumerate() {
            if byte == b'\n' && (at == 0 || stored[at - 1] != b'\r') {
                bare_lf += 1;
            }
        }
        let physical = stored.len() as u64;
        (stored, physical, physical + bare_lf)
    }

    /// A reader that hands out `chunks` one `fill_buf` at a time (as a connection's
    /// receive buffer does, cut wherever the reads fell).
    struct Chunked<'a> {
        chunks: Vec<&'a [u8]>,
        at: usize,
        offset: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Chunked<'_> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            while self.at < self.chunks.len() && self.offset == self.chunks[self.at].len() {
                self.at += 1;
                self.offset = 0;
            }
            Ok(self.chunks.get(self.at).map_or(&[][..], |chunk| &chunk[self.offset..]))
        }
        fn consume(&mut self, amount: usize) {
            self.offset += amount;
        }
    }

    /// `input` cut at `cuts` (taken modulo its length, in any order).
    fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&input[start..cut]);
            start = cut;
        }
        chunks.push(&input[start..]);
        chunks
    }

    #[test]
    fn converted_from_the_source_buffer_with_a_cr_ending_each_chunk() {
        // Every chunk but the last ends in CR: each line end is decided by the next chunk.
        let input = b"a\r\nb\r\r\n\rc\r\n\r";
        let cuts: Vec<usize> =
            (0..input.len()).filter(|&at| input[at] == b'\r').map(|at| at + 1).collect();
        for mode in [LineEndings::Lf, LineEndings::Crlf] {
            let mut writer = ConvertingWriter::new(Vec::new(), mode).buffering(4);
            let mut source = Chunked { chunks: cut(input, &cuts), at: 0, offset: 0 };
            assert_eq!(write_all_from(&mut writer, &mut source).unwrap(), input.len() as u64);
            assert_eq!(writer.finish().unwrap(), reference(mode, input), "{mode:?}");
        }
    }

    /// What IMAP serves of stored bytes, a byte at a time: the reference for [`CrlfReader`].
    fn served_reference(stored: &[u8]) -> Vec<u8> {
        let mut served = Vec::new();
        let mut previous = 0u8;
        for &byte in stored {
            if byte == b'\n' && previous != b'\r' {
                served.push(b'\r');
            }
            served.push(byte);
            previous = byte;
        }
        served
    }

    proptest::proptest! {
        /// Stored bytes (CR, LF, anything) read through [`CrlfReader`] from a source that
        /// hands them out cut anywhere (a CR or LF at a cut), into buffers of any size,
        /// come out as the byte-at-a-time reference serves them; also for messages longer
        /// than a read.
        #[test]
        fn served_bytes_match_the_byte_at_a_time_reference(
            stored in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => Just(b'\r'), 4 => Just(b'\n'), 5 => proptest::num::u8::ANY
                ],
                0..64),
            long_line_at in proptest::option::of(0usize..64),
            cuts in proptest::collection::vec(0usize..20_000, 0..6),
            sizes in proptest::collection::vec(1usize..40, 1..5),
        ) {
            let mut stored = stored;
            if let Some(at) = long_line_at {
                let at = at.min(stored.len());
                stored.splice(at..at, std::iter::repeat_n(b'a', RAW_CHUNK + 100));
            }
            let source = Chunked { chunks: cut(&stored, &cuts), at: 0, offset: 0 };
            let mut reader = CrlfReader::new(source);
            let mut served = Vec::new();
            for size in sizes.iter().cycle() {
                let mut buf = vec![0u8; *size];
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                served.extend_from_slice(&buf[..n]);
            }
            proptest::prop_assert_eq!(served, served_reference(&stored));
        }

        /// A message with CRLF line ends (lone CRs allowed) is served exactly as saved.
        #[test]
        fn a_crlf_message_is_served_as_saved(
            input in proptest::collection::vec(
                proptest::prop_oneof![Just(&b"\r"[..]), Just(&b"\r\n"[..]), Just(&b"a"[..])],
                0..64),
            crlf in proptest::bool::ANY,
        ) {
            let mode = if crlf { LineEndings::Crlf } else { LineEndings::Lf };
            let input = input.concat();
            let (stored, _, virtual_size) = convert(mode, &[&input]);
            let mut served = Vec::new();
            CrlfReader::new(&stored[..]).read_to_end(&mut served).unwrap();
            proptest::prop_assert_eq!(&served, &input);
            proptest::prop_assert_eq!(virtual_size, input.len() as u64);
        }

        /// Converting straight from a source's buffer, cut anywhere (a CR ending a chunk,
        /// lone CRs and LFs, lines far longer than the buffer the writer gathers), stores
        /// what converting the whole message at once stores, with the same sizes.
        #[test]
        fn converted_from_the_source_buffer_as_from_one_piece(
            input in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..96),
            cuts in proptest::collection::vec(0usize..200_000, 0..6),
            huge_line_at in proptest::option::of(0usize..96),
            crlf in proptest::bool::ANY,
            limit in proptest::prop_oneof![0usize..80, Just(crate::maildir::save::CHUNK)],
        ) {
            let mode = if crlf { LineEndings::Crlf } else { LineEndings::Lf };
            let mut input = input;
            if let Some(at) = huge_line_at {
                // A line longer than the 64 KiB the writer gathers before writing.
                let at = at.min(input.len());
                input.splice(at..at, std::iter::repeat_n(b'a', 70_000));
            }
            let mut source = Chunked { chunks: cut(&input, &cuts), at: 0, offset: 0 };
            let mut writer = ConvertingWriter::new(Vec::new(), mode).buffering(limit);
            let read = write_all_from(&mut writer, &mut source).unwrap();
            proptest::prop_assert_eq!(read, input.len() as u64);
            proptest::prop_assert!(writer.finish().unwrap() == reference(mode, &input));
        }

        /// Any bytes (binary, NUL, 8-bit; CR and LF often), split in two at every
        /// position and cut at random further: the run-at-a-time conversion stores what
        /// the byte-at-a-time reference stores, with the same sizes, in both modes.
        #[test]
        fn binary_bodies_split_anywhere_match_the_reference(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => Just(b'\r'), 3 => Just(b'\n'), 4 => proptest::num::u8::ANY
                ],
                0..48),
            cuts in proptest::collection::vec(0usize..48, 0..3),
            limit in proptest::prop_oneof![Just(0usize), 1usize..16, Just(64usize)],
        ) {
            for mode in [LineEndings::Lf, LineEndings::Crlf] {
                let expected = reference(mode, &input);
                for split in 0..=input.len() {
                    let (left, right) = input.split_at(split);
                    let mut chunks = cut(left, &cuts);
                    chunks.push(right);
                    proptest::prop_assert_eq!(
                        &convert_buffering(mode, &chunks, limit), &expected, "{:?} split {}",
                        mode, split
                    );
                }
            }
        }

        #[test]
        fn matches_the_byte_at_a_time_reference(
            input in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..4),
            crlf in proptest::bool::ANY,
            limit in 0usize..80,
        ) {
            let mode = if crlf { LineEndings::Crlf } else { LineEndings::Lf };
            let chunks = cut(&input, &cuts);
            proptest::prop_assert_eq!(convert(mode, &chunks), reference(mode, &input));
            // Gathering converted bytes before writing them changes nothing either.
            proptest::prop_assert_eq!(
                convert_buffering(mode, &chunks, limit), reference(mode, &input)
            );
        }
    }
}
