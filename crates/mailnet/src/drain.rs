//! [`drain`]: reading the rest of a body nobody wants, so the connection stays in step.

use std::io::{self, Read};

/// Scratch space for bodies with more left than a first small read takes.
const SCRATCH: usize = 64 * 1024;

/// Reads `body` to its end (the first `Ok(0)`) and drops the bytes; returns how many there
/// were. What a handler left unread of a message must still leave the connection before
/// the next answer can be read.
///
/// Nothing is allocated when the body is already at its end (the usual case: handlers
/// read everything, and a zeroed 64 KiB buffer per message was measurable in a
/// migration's profile); otherwise the rest goes through 64 KiB of scratch. The first
/// error ends it.
///
/// ```
/// let mut body: &[u8] = b"the rest of a message";
/// assert_eq!(mailnet::drain(&mut body)?, 21);
/// assert_eq!(mailnet::drain(&mut body)?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn drain<R: Read + ?Sized>(body: &mut R) -> io::Result<u64> {
    let mut first = [0u8; 1024];
    let mut drained = body.read(&mut first)? as u64;
    if drained == 0 {
        return Ok(0);
    }
    let mut scratch = vec![0u8; SCRATCH];
    loop {
        match body.read(&mut scratch)? {
            0 => return Ok(drained),
            n => drained += n as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `left` bytes in reads of at most `chunk`, then fails if read again
    /// after its end was reported.
    struct Body {
        left: usize,
        chunk: usize,
        ended: bool,
        reads: usize,
    }

    impl Read for Body {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(!self.ended, "read after the end");
            self.reads += 1;
            let n = self.left.min(self.chunk).min(buf.len());
            self.left -= n;
            self.ended = n == 0;
            Ok(n)
        }
    }

    #[test]
    fn reads_to_the_end_and_no_further() {
        let mut body = Body { left: 200_000, chunk: 100_000, ended: false, reads: 0 };
        assert_eq!(drain(&mut body).expect("drain"), 200_000);
        assert!(body.ended);
        // 1 KiB first, then 64 KiB at a time: 1 + 4 reads with data, 1 for the end.
        assert_eq!(body.reads, 6);
        let mut empty = Body { left: 0, chunk: 10, ended: false, reads: 0 };
        assert_eq!(drain(&mut empty).expect("drain"), 0);
        assert_eq!(empty.reads, 1);
    }

    #[test]
    fn stops_at_the_first_error() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::TimedOut.into())
            }
        }
        let error = drain(&mut Failing).expect_err("error");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
