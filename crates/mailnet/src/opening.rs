//! [`Opening`]: the start of a client connection, the same for every mail protocol —
//! connect (with the TLS handshake for implicit TLS), a deadline for the greeting within
//! the connect budget, and naming what a port speaks when no greeting of ours comes.

use std::time::{Duration, Instant};

use crate::{Error, Service, Stream, Timeouts, TlsConnector};

/// How long a server may take to greet, by default.
pub const DEFAULT_GREETING_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the TLS probe of a silent port may take, at most (and no longer than the
/// greeting was waited for: a TLS server answers a ClientHello at once). The probe comes
/// after the connect budget is given up, to tell why.
const TLS_PROBE_TIME: Duration = Duration::from_secs(5);

/// Bytes of a foreign greeting kept for an error message.
const GREETING_SHOWN: usize = 200;

/// A connection being opened: when it started, its connect budget, and how long its
/// greeting is waited for.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    started: Instant,
    budget: Duration,
    greeting_wait: Duration,
}

/// What a port that gave no greeting of the expected protocol speaks instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongPort {
    /// It speaks TLS from the first byte (imaps, pop3s): the client spoke plain text.
    ImplicitTls,
    /// It greeted in another protocol.
    Service(Service),
}

impl Opening {
    /// Connects to `host:port` within [`Timeouts::connect`], does the TLS handshake when
    /// `implicit_tls` is given, and sets the stream's deadline for the greeting:
    /// `greeting_timeout`, but no longer than the read timeout nor what is left of the
    /// connect budget, rounded to tenths of a second (it is shown in messages, and what is
    /// left of a budget is no round number).
    ///
    /// # Errors
    ///
    /// Those of [`Stream::connect`] and [`Stream::start_tls`].
    pub fn connect(
        host: &str,
        port: u16,
        timeouts: &Timeouts,
        greeting_timeout: Duration,
        implicit_tls: Option<&TlsConnector>,
    ) -> Result<(Stream, Opening), Error> {
        let mut opening = Opening {
            started: Instant::now(),
            budget: timeouts.connect,
            greeting_wait: Duration::ZERO,
        };
        let mut stream = Stream::connect(host, port, timeouts)?;
        let wanted = timeouts.read.map_or(greeting_timeout, |read| read.min(greeting_timeout));
        opening.greeting_wait = tenths(wanted.min(opening.budget_left()));
        stream.set_deadline(Some(opening.greeting_wait), "waiting for the server's greeting");
        if let Some(tls) = implicit_tls {
            stream.start_tls(tls)?;
        }
        Ok((stream, opening))
    }

    /// How long the greeting is waited for.
    pub fn greeting_wait(&self) -> Duration {
        self.greeting_wait
    }

    /// What is left of the connect budget, in whole milliseconds (for the message).
    pub fn budget_left(&self) -> Duration {
        let left = self.budget.saturating_sub(self.started.elapsed());
        Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
    }

    /// The greeting came: the rest of the connect budget bounds what follows it
    /// (capabilities, STARTTLS), until [`Stream::set_deadline`] with `None` ends it.
    pub fn greeted(&self, stream: &mut Stream) {
        stream.set_deadline(Some(self.budget_left()), "connecting");
    }

    /// The greeting of `expected` did not come: says what the port speaks when the bytes
    /// that did come, or a TLS probe of the same port, tell — `None` when they do not.
    ///
    /// `received` is what the server sent so far, `error` the transport error that ended
    /// the wait, if it was one (only a silent port — nothing received, then a timeout or a
    /// close — is probed for TLS, for as long as the greeting was waited for, 5 s at most).
    pub fn wrong_port(
        &self,
        expected: Service,
        stream: &Stream,
        port: u16,
        received: &[u8],
        error: Option<&Error>,
    ) -> Option<WrongPort> {
        let tls = stream.is_tls();
        match Service::recognise(received) {
            Some(Service::Tls) if !tls => return Some(WrongPort::ImplicitTls),
            Some(found) if found != expected => return Some(WrongPort::Service(found)),
            _ => {}
        }
        let silent = received.is_empty()
            && error.is_some_and(|net| net.is_timeout() || matches!(net, Error::Closed { .. }));
        let probe = self.greeting_wait.min(TLS_PROBE_TIME);
        (silent && !tls && Stream::answers_tls(stream.host(), port, probe))
            .then_some(WrongPort::ImplicitTls)
    }
}

/// The first line of a greeting as an error message shows it: without its line end, at
/// most 200 bytes.
pub fn greeting_line(received: &[u8]) -> &[u8] {
    let line = received.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    &line[..line.len().min(GREETING_SHOWN)]
}

/// `duration` to the nearest tenth of a second (at least one tenth).
fn tenths(duration: Duration) -> Duration {
    let tenths = (duration.as_millis() + 50) / 100;
    Duration::from_millis(u64::try_from(tenths.max(1) * 100).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_shown_in_tenths() {
        assert_eq!(tenths(Duration::from_millis(14_949)), Duration::from_millis(14_900));
        assert_eq!(tenths(Duration::from_millis(14_950)), Duration::from_secs(15));
        assert_eq!(tenths(Duration::ZERO), Duration::from_millis(100));
    }

    #[test]
    fn greeting_line_is_the_first_line_cut_short() {
        assert_eq!(greeting_line(b"220 smtp ready\r\nmore"), b"220 smtp ready");
        assert_eq!(greeting_line(b"SSH-2.0-OpenSSH\n"), b"SSH-2.0-OpenSSH");
        assert_eq!(greeting_line(&[b'x'; 300]).len(), 200);
        assert_eq!(greeting_line(b""), b"");
    }
}
