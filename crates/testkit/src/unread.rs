//! [`LeaveUnread`]: a message handler that stops reading one body early, for the tests
//! that a client reads the rest and drops it.

use std::io::{self, Read};

/// Reads every body whole except one, of which it reads only the first few bytes: the
/// client must drop the rest and keep the connection in step. Feed it from the client's
/// body callback; compare with [`assert_read`](Self::assert_read).
#[derive(Debug)]
pub struct LeaveUnread {
    /// The message (sequence number, from 1) whose body is left unread.
    pub stop_at: u32,
    /// How many bytes of that body are read.
    pub keep: usize,
    /// What was read, by message number.
    pub bodies: Vec<(u32, Vec<u8>)>,
}

impl LeaveUnread {
    /// Reads only `keep` bytes of message `stop_at`'s body.
    pub fn new(stop_at: u32, keep: usize) -> LeaveUnread {
        LeaveUnread { stop_at, keep, bodies: Vec::new() }
    }

    /// Reads the body of message `number` (whole, or only `keep` bytes of it).
    ///
    /// # Errors
    ///
    /// The first error of `body`, or an unexpected end before `keep` bytes.
    pub fn read(&mut self, number: u32, body: &mut dyn Read) -> io::Result<()> {
        let mut bytes = Vec::new();
        if number == self.stop_at {
            bytes.resize(self.keep, 0);
            body.read_exact(&mut bytes)?;
        } else {
            body.read_to_end(&mut bytes)?;
        }
        self.bodies.push((number, bytes));
        Ok(())
    }

    /// Asserts that the bodies read are `messages` (numbered from 1), each whole but the
    /// one left unread, of which its first `keep` bytes.
    ///
    /// # Panics
    ///
    /// When they are not.
    pub fn assert_read(&self, messages: &[Vec<u8>]) {
        let expected: Vec<(u32, Vec<u8>)> = (1..)
            .zip(messages)
            .map(|(number, message)| {
                let cut = if number == self.stop_at { self.keep } else { message.len() };
                (number, message[..cut].to_vec())
            })
            .collect();
        assert!(self.bodies == expected, "bodies differ from what was appended");
    }
}
