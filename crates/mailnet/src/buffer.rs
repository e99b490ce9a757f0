//! [`ReceiveBuffer`]: the bytes a sans-IO decoder has received and not yet decoded, with
//! room to read more into and the line search every line-based mail protocol frames with.

/// Room the buffer starts with.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// Minimum free space offered for one read.
const MIN_READ: usize = 16 * 1024;

/// A line grew beyond the limit given to [`ReceiveBuffer::find_line`], with or without its
/// line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit.
    pub limit: usize,
}

/// The receive side of a protocol decoder: bytes come in through
/// [`spare_mut`](Self::spare_mut) + [`filled`](Self::filled) (straight from a socket read)
/// or [`feed`](Self::feed), and leave from the front as the decoder frames them
/// ([`consume`](Self::consume), [`take`](Self::take)). It grows only as far as one frame
/// needs: the decoder's limits, checked with [`find_line`](Self::find_line), bound it.
///
/// ```
/// use mailnet::ReceiveBuffer;
/// let mut input = ReceiveBuffer::new();
/// input.feed(b"+OK ready\r\n* partial");
/// let len = input.find_line(512)?.expect("a whole line");
/// assert_eq!(input.take(len), b"+OK ready\r\n");
/// assert_eq!(input.find_line(512)?, None); // need more bytes
/// assert_eq!(input.bytes(), b"* partial");
/// # Ok::<(), mailnet::LineTooLong>(())
/// ```
#[derive(Debug)]
pub struct ReceiveBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Offset from `start` where the search for the next LF resumes.
    scan: usize,
}

impl Default for ReceiveBuffer {
    fn default() -> ReceiveBuffer {
        ReceiveBuffer::new()
    }
}

impl ReceiveBuffer {
    /// An empty buffer (64 KiB of room).
    pub fn new() -> ReceiveBuffer {
        ReceiveBuffer { buf: vec![0; INITIAL_CAPACITY], start: 0, end: 0, scan: 0 }
    }

    /// Copies bytes in.
    pub fn feed(&mut self, data: &[u8]) {
        let mut data = data;
        while !data.is_empty() {
            let spare = self.spare_mut();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// Free space to read into (at least 16 KiB); call [`filled`](Self::filled) after.
    /// Buffered bytes move to the front, or the buffer grows, to make the room.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scan = 0;
        }
        if self.buf.len() - self.end < MIN_READ {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < MIN_READ {
                let wanted = (self.buf.len() * 2).max(self.end + MIN_READ);
                self.buf.resize(wanted, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`spare_mut`](Self::spare_mut) as received.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// How many bytes are buffered.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The buffered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops the first `n` buffered bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        self.scan = 0;
    }

    /// Drops the first `n` buffered bytes (at most all of them) and returns them.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let from = self.start;
        self.consume(n);
        &self.buf[from..self.start]
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scan = 0;
    }

    /// The length of the first buffered line, its LF included, once it is complete;
    /// `Ok(None)` while it is not (the search resumes where it stopped next time). A line
    /// longer than `limit` bytes is an error as soon as that is known, complete or not.
    pub fn find_line(&mut self, limit: usize) -> Result<Option<usize>, LineTooLong> {
        let window = &self.buf[self.start + self.scan..self.end];
        match memchr::memchr(b'\n', window) {
            Some(offset) => {
                let len = self.scan + offset + 1;
                self.scan = 0;
                if len > limit { Err(LineTooLong { limit }) } else { Ok(Some(len)) }
            }
            None if self.len() > limit => Err(LineTooLong { limit }),
            None => {
                self.scan = self.len();
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_found_across_reads_and_limits_kept() {
        let mut input = ReceiveBuffer::new();
        input.feed(b"abc");
        assert_eq!(input.find_line(8), Ok(None));
        input.feed(b"de\r\nfg");
        assert_eq!(input.find_line(8), Ok(Some(7)));
        input.consume(7);
        assert_eq!(input.bytes(), b"fg");
        input.feed(b"hijklmn");
        assert_eq!(input.find_line(8), Err(LineTooLong { limit: 8 }));
        input.feed(b"\n");
        assert_eq!(input.find_line(8), Err(LineTooLong { limit: 8 }));
        assert_eq!(input.find_line(10), Ok(Some(10)));
    }

    #[test]
    fn consuming_restarts_the_line_search() {
        let mut input = ReceiveBuffer::new();
        input.feed(b"abc");
        assert_eq!(input.find_line(8), Ok(None));
        input.consume(1);
        input.feed(b"\n");
        assert_eq!(input.find_line(8), Ok(Some(3)));
    }

    #[test]
    fn room_made_by_moving_or_growing() {
        let mut input = ReceiveBuffer::new();
        let big = vec![b'x'; INITIAL_CAPACITY - 100];
        input.feed(&big);
        assert!(input.spare_mut().len() >= MIN_READ);
        assert_eq!(input.len(), big.len());
        input.consume(big.len() - 10);
        let spare = input.spare_mut().len();
        assert!(spare >= MIN_READ);
        assert_eq!(input.bytes(), &big[..10]);
        input.clear();
        assert!(input.is_empty());
        assert_eq!(input.take(5), b"");
    }
}
