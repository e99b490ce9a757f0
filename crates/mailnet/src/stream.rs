//! A blocking TCP stream that is plain or TLS, with timeouts, upgradable in place.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::{Error, Service, TlsConnector};

/// Timeouts for connecting and for every single read and write. A stalled server produces
/// [`Error::Timeout`] after at most one of these, never a hang. A server that trickles a
/// byte now and then is caught by the stall limit ([`Stream::set_stall_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TCP connect, all resolved addresses together. The protocol clients also
    /// finish their greeting, TLS handshake and STARTTLS within it.
    pub connect: Duration,
    /// For each read; `None` waits forever (not recommended).
    pub read: Option<Duration>,
    /// For each write; `None` waits forever (not recommended).
    pub write: Option<Duration>,
}

impl Default for Timeouts {
    /// 30 s to connect (Dovecot's `imapc_connection_timeout_interval`); 5 minutes per read
    /// or write, Dovecot's `imapc_cmd_timeout`, since a server may think that long before
    /// answering a SELECT of a huge mailbox.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            read: Some(Duration::from_secs(300)),
            write: Some(Duration::from_secs(300)),
        }
    }
}

enum Inner {
    Plain(Socket),
    Tls(Box<StreamOwned<ClientConnection, Socket>>),
    /// Left behind when a failed STARTTLS handshake consumed the socket.
    Broken,
}

/// Bytes received that count as progress on their own, whatever the protocol makes of
/// them: a body or a long line arriving at 16 KiB per stall limit is not a stalled server.
const PROGRESS_BYTES: u64 = 16 * 1024;

/// Bytes of the peer's first answer kept while a TLS handshake runs, to name what it
/// speaks when it is not TLS.
const FIRST_BYTES: usize = 200;

/// The TCP socket under the plain or the TLS stream. Every read goes through it, also the
/// ones rustls makes during a handshake or while a record trickles in, so the per-read
/// timeout, the stall limit and the deadline hold everywhere.
struct Socket {
    tcp: TcpStream,
    /// The configured per-read timeout.
    read_timeout: Option<Duration>,
    /// The timeout set on the socket now (changed only when it must be).
    applied: Option<Duration>,
    stall: Option<Stall>,
    deadline: Option<Deadline>,
    /// Which limit ended the last read, for the error.
    expired: Option<Expired>,
    /// The first bytes received while recording (during a TLS handshake).
    first_bytes: Option<Vec<u8>>,
}

/// Time spent waiting for the peer since the last progress.
#[derive(Debug, Clone, Copy)]
struct Stall {
    limit: Duration,
    waited: Duration,
    received: u64,
}

/// A point in time by which the current phase (the greeting, connecting) must be done.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    span: Duration,
    what: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Expired {
    Stall(Duration),
    Deadline { span: Duration, what: &'static str },
}

impl Socket {
    fn new(tcp: TcpStream, read_timeout: Option<Duration>) -> Socket {
        Socket {
            tcp,
            read_timeout,
            applied: read_timeout,
            stall: None,
            deadline: None,
            expired: None,
            first_bytes: None,
        }
    }

    /// How long the next read may wait, and which limit that is (`None`: the per-read
    /// timeout).
    fn wait(&self) -> (Option<Duration>, Option<Expired>) {
        let mut wait = self.read_timeout;
        let mut limiter = None;
        if let Some(stall) = &self.stall {
            let left = stall.limit.saturating_sub(stall.waited);
            if wait.is_none_or(|w| left < w) {
                wait = Some(left);
                limiter = Some(Expired::Stall(stall.limit));
            }
        }
        if let Some(deadline) = &self.deadline {
            let left = deadline.at.saturating_duration_since(Instant::now());
            if wait.is_none_or(|w| left < w) {
                wait = Some(left);
                limiter = Some(Expired::Deadline { span: deadline.span, what: deadline.what });
            }
        }
        (wait, limiter)
    }
}

/// Whether the socket's read timeout `applied` may stay for a read that may wait `wait`:
/// it is at most that, and shorter by no more than 1/64 of it. Every read of a streamed
/// answer changes `wait` a little (the stall limit counts down); setting the timeout for
/// each was one `setsockopt` per read. A read that times out early is simply retried.
fn close_enough(applied: Option<Duration>, wait: Option<Duration>) -> bool {
    match (applied, wait) {
        (None, None) => true,
        (Some(applied), Some(wait)) => {
            wait.checked_sub(applied).is_some_and(|shorter| shorter <= wait / 64)
        }
        _ => false,
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.expired = None;
        let (wait, limiter) = self.wait();
        if wait == Some(Duration::ZERO) {
            self.expired = limiter;
            return Err(io::ErrorKind::TimedOut.into());
        }
        let started = Instant::now();
        // The timeout for this attempt: a little shorter than allowed when it has to be
        // set, so that it stays close enough while the limit counts down.
        let mut attempt = if close_enough(self.applied, wait) {
            self.applied
        } else {
            wait.map(|wait| wait.saturating_sub(wait / 128))
        };
        loop {
            if attempt != self.applied {
                self.tcp.set_read_timeout(attempt)?;
                self.applied = attempt;
            }
            let attempt_started = Instant::now();
            let result = self.tcp.read(buf);
            if let Some(stall) = &mut self.stall {
                stall.waited += attempt_started.elapsed();
                if let Ok(n) = result {
                    stall.received += n as u64;
                    if stall.received >= PROGRESS_BYTES {
                        stall.waited = Duration::ZERO;
                        stall.received = 0;
                    }
                }
            }
            match &result {
                Ok(n) => {
                    if let Some(first) = &mut self.first_bytes {
                        let room = FIRST_BYTES.saturating_sub(first.len()).min(*n);
                        first.extend_from_slice(&buf[..room]);
                    }
                }
                Err(error) if crate::is_timeout(error) && attempt != wait => {
                    // Timed out before the limit (the timeout set was shorter): wait
                    // exactly for the rest.
                    let left = wait.map(|wait| wait.saturating_sub(started.elapsed()));
                    if left != Some(Duration::ZERO) {
                        attempt = left;
                        continue;
                    }
                    self.expired = limiter;
                }
                Err(error) if crate::is_timeout(error) => self.expired = limiter,
                Err(_) => {}
            }
            return result;
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A connected stream, plain or TLS. Reads and writes time out per [`Timeouts`].
///
/// The stream buffers nothing itself; a protocol client that reads ahead must discard
/// what it read before calling [`Stream::start_tls`] (bytes received in plaintext after a
/// STARTTLS request are an injection attack, RFC 3207 §6 / CVE-2011-0411).
pub struct Stream {
    inner: Inner,
    host: String,
    peer: Option<SocketAddr>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("host", &self.host)
            .field("peer", &self.peer)
            .field("tls", &self.is_tls())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Connects over plain TCP, trying each address `host` resolves to in turn.
    /// All addresses together get [`Timeouts::connect`].
    pub fn connect(host: &str, port: u16, timeouts: &Timeouts) -> Result<Stream, Error> {
        let tcp = connect_tcp(host, port, timeouts)?;
        let peer = tcp.peer_addr().ok();
        let socket = Socket::new(tcp, timeouts.read);
        Ok(Stream { inner: Inner::Plain(socket), host: host.to_owned(), peer, timeouts: *timeouts })
    }

    /// Connects and does the TLS handshake right away (implicit TLS, e.g. imaps on 993).
    pub fn connect_tls(
        host: &str,
        port: u16,
        timeouts: &Timeouts,
        tls: &TlsConnector,
    ) -> Result<Stream, Error> {
        let mut stream = Stream::connect(host, port, timeouts)?;
        stream.start_tls(tls)?;
        Ok(stream)
    }

    /// Upgrades a plain stream to TLS in place (after the server accepted STARTTLS/STLS)
    /// and completes the handshake, verifying the certificate per the connector.
    ///
    /// A peer that answers the handshake in plain text (an IMAP or POP3 greeting: the port
    /// does not speak TLS from the first byte) gives [`Error::NotTls`] with what it said.
    pub fn start_tls(&mut self, tls: &TlsConnector) -> Result<(), Error> {
        let server_name = tls.server_name(&self.host)?;
        let mut socket = match std::mem::replace(&mut self.inner, Inner::Broken) {
            Inner::Plain(socket) => socket,
            other => {
                self.inner = other;
                return Err(Error::AlreadyTls);
            }
        };
        let connection = match ClientConnection::new(tls.config(), server_name) {
            Ok(connection) => connection,
            Err(source) => {
                self.inner = Inner::Plain(socket);
                return Err(Error::Tls { host: self.host.clone(), source });
            }
        };
        socket.first_bytes = Some(Vec::new());
        let mut stream = StreamOwned::new(connection, socket);
        while stream.conn.is_handshaking() {
            if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
                let first = stream.sock.first_bytes.take().unwrap_or_default();
                let expired = stream.sock.expired.take();
                let error = self.map_error("TLS handshake", error, expired);
                return Err(self.not_tls(&first, error));
            }
        }
        stream.sock.first_bytes = None;
        self.inner = Inner::Tls(Box::new(stream));
        Ok(())
    }

    /// The handshake failed: when the peer answered in plain text, say so and what it was.
    fn not_tls(&self, first: &[u8], error: Error) -> Error {
        let plain = !first.is_empty() && Service::recognise(first) != Some(Service::Tls);
        let handshake_broke = matches!(error, Error::Tls { .. } | Error::Closed { .. });
        if plain && handshake_broke {
            let service = Service::recognise(first);
            return Error::NotTls { host: self.host.clone(), service, received: first_line(first) };
        }
        error
    }

    /// True when a fresh connection to `host:port` answers a TLS handshake in TLS: the
    /// server speaks TLS from the first byte. For telling why a plain connection got no
    /// greeting: nothing is verified and nothing but a ClientHello is sent, and `within`
    /// bounds it all.
    pub fn answers_tls(host: &str, port: u16, within: Duration) -> bool {
        let options = crate::TlsOptions::new().dangerous_accept_invalid_certs(true);
        let Ok(tls) = TlsConnector::new(&options) else { return false };
        let Ok(name) = tls.server_name(host) else { return false };
        let Ok(connection) = ClientConnection::new(tls.config(), name) else { return false };
        let timeouts = Timeouts { connect: within, read: Some(within), write: Some(within) };
        let Ok(tcp) = connect_tcp(host, port, &timeouts) else { return false };
        let mut socket = Socket::new(tcp, Some(within));
        socket.deadline =
            Some(Deadline { at: Instant::now() + within, span: within, what: "probing for TLS" });
        socket.first_bytes = Some(Vec::new());
        let mut stream = StreamOwned::new(connection, socket);
        let mut completed = true;
        while stream.conn.is_handshaking() {
            if stream.conn.complete_io(&mut stream.sock).is_err() {
                completed = false;
                break;
            }
        }
        let _ = stream.sock.tcp.shutdown(Shutdown::Both);
        let first = stream.sock.first_bytes.take().unwrap_or_default();
        // A refused protocol version or cipher still came as a TLS alert: TLS is spoken.
        completed || Service::recognise(&first) == Some(Service::Tls)
    }

    /// Limits the time spent waiting for the peer, in all, until the next
    /// [`progress`](Self::progress) (or 16 KiB received, which count as progress by
    /// themselves): a server that trickles a byte every few seconds then fails with
    /// [`Error::Stalled`] instead of keeping us forever, as the per-read timeout would.
    /// Time we spend elsewhere (writing the mail to disk) does not count. `None` turns it
    /// off.
    pub fn set_stall_limit(&mut self, limit: Option<Duration>) {
        if let Some(socket) = self.socket_mut() {
            socket.stall = limit.map(|limit| Stall { limit, waited: Duration::ZERO, received: 0 });
        }
    }

    /// The protocol made progress (a complete answer line arrived): the stall limit starts
    /// again.
    pub fn progress(&mut self) {
        if let Some(stall) = self.socket_mut().and_then(|socket| socket.stall.as_mut()) {
            stall.waited = Duration::ZERO;
            stall.received = 0;
        }
    }

    /// Every read (and TLS handshake) must be done within `within` from now, whatever
    /// arrives meanwhile; after that they fail with [`Error::Timeout`] naming `what` (e.g.
    /// "waiting for the greeting"). `None` turns it off.
    pub fn set_deadline(&mut self, within: Option<Duration>, what: &'static str) {
        if let Some(socket) = self.socket_mut() {
            socket.deadline = within.map(|span| Deadline { at: Instant::now() + span, span, what });
        }
    }

    /// True once TLS is in use.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// True when the TLS handshake resumed an earlier session (see
    /// [`TlsConnector::shared`]) instead of a full one with the server's certificate.
    pub fn is_resumed(&self) -> bool {
        match &self.inner {
            Inner::Tls(stream) => {
                stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
            }
            Inner::Plain(_) | Inner::Broken => false,
        }
    }

    /// The host name this stream was opened to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Changes the per-read timeout.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let Some(socket) = self.socket_mut() else {
            return Err(Error::Closed { operation: "use of a failed connection" });
        };
        socket
            .tcp
            .set_read_timeout(timeout)
            .map_err(|source| Error::Io { operation: "set read timeout", source })?;
        socket.read_timeout = timeout;
        socket.applied = timeout;
        self.timeouts.read = timeout;
        Ok(())
    }

    /// Reads what is available (at least one byte, or `Ok(0)` at end of stream), with the
    /// error mapped to [`Error::Timeout`] / [`Error::Stalled`] / [`Error::Closed`] /
    /// [`Error::Tls`] / [`Error::Io`].
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.read(buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let expired = self.socket_mut().and_then(|socket| socket.expired.take());
                    return Err(self.map_error("read", error, expired));
                }
            }
        }
    }

    /// Writes and flushes all of `buf`, with typed errors.
    pub fn send(&mut self, buf: &[u8]) -> Result<(), Error> {
        match self.write_all(buf).and_then(|()| self.flush()) {
            Ok(()) => Ok(()),
            Err(error) => {
                // rustls may read while it writes (a post-handshake message).
                let expired = self.socket_mut().and_then(|socket| socket.expired.take());
                Err(self.map_error("write", error, expired))
            }
        }
    }

    /// Closes both directions (after sending a TLS close_notify when in TLS).
    pub fn shutdown(&mut self) {
        if let Inner::Tls(stream) = &mut self.inner {
            stream.conn.send_close_notify();
            let _ = stream.conn.complete_io(&mut stream.sock);
        }
        if let Some(socket) = self.socket_mut() {
            let _ = socket.tcp.shutdown(Shutdown::Both);
        }
    }

    fn socket_mut(&mut self) -> Option<&mut Socket> {
        match &mut self.inner {
            Inner::Plain(socket) => Some(socket),
            Inner::Tls(stream) => Some(&mut stream.sock),
            Inner::Broken => None,
        }
    }

    fn map_error(
        &self,
        operation: &'static str,
        error: io::Error,
        expired: Option<Expired>,
    ) -> Error {
        match expired {
            Some(Expired::Stall(timeout)) => return Error::Stalled { timeout },
            Some(Expired::Deadline { span, what }) => {
                return Error::Timeout { operation: what, timeout: span };
            }
            None => {}
        }
        let is_tls_error =
            error.get_ref().is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>);
        if is_tls_error {
            if let Some(Ok(source)) = error
                .into_inner()
                .map(<dyn std::error::Error + Send + Sync>::downcast::<rustls::Error>)
            {
                if let Some(rejection) = crate::verify::rejection_of(&source) {
                    let rejection = Box::new(rejection.clone());
                    return Error::Certificate { host: self.host.clone(), rejection };
                }
                return Error::Tls { host: self.host.clone(), source: *source };
            }
            return Error::Closed { operation };
        }
        let timeout = if operation == "write" { self.timeouts.write } else { self.timeouts.read };
        Error::from_io(operation, timeout, error)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.read(buf),
            Inner::Tls(stream) => stream.read(buf),
            Inner::Broken => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.write(buf),
            Inner::Tls(stream) => stream.write(buf),
            Inner::Broken => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.flush(),
            Inner::Tls(stream) => stream.flush(),
            Inner::Broken => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The first line of what a peer sent, for an error message: printable ASCII, the rest
/// escaped.
fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let cut = line.len() == bytes.len() && bytes.len() >= FIRST_BYTES;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut text: String =
        line.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if cut {
        text.push('…');
    }
    text
}

fn connect_tcp(host: &str, port: u16, timeouts: &Timeouts) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let lookup = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = (lookup, port)
        .to_socket_addrs()
        .map_err(|source| Error::Resolve { host: host.to_owned(), source })?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        let left = timeouts.connect.saturating_sub(started.elapsed());
        if left.is_zero() {
            last_error = Some(io::ErrorKind::TimedOut.into());
            break;
        }
        match TcpStream::connect_timeout(address, left) {
            Ok(tcp) => {
                let setup = tcp
                    .set_read_timeout(timeouts.read)
                    .and_then(|()| tcp.set_write_timeout(timeouts.write))
                    .and_then(|()| tcp.set_nodelay(true));
                setup.map_err(|source| Error::Io { operation: "socket setup", source })?;
                return Ok(tcp);
            }
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(source) => Err(Error::Connect { host: host.to_owned(), port, source }),
        None => Err(Error::NoAddress { host: host.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_read_timeout_is_kept_while_close_enough_and_never_longer_than_allowed() {
        let secs = Duration::from_secs;
        assert!(close_enough(None, None));
        assert!(!close_enough(None, Some(secs(300))));
        assert!(!close_enough(Some(secs(300)), None));
        let set = secs(300).saturating_sub(secs(300) / 128);
        assert!(close_enough(Some(set), Some(secs(300))));
        // The stall limit counted down a little: still kept (one setsockopt saved).
        assert!(close_enough(Some(set), Some(secs(299))));
        // Never a timeout longer than the time left, nor much shorter.
        assert!(!close_enough(Some(set), Some(secs(290))));
        assert!(!close_enough(Some(secs(100)), Some(secs(300))));
    }

    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    fn short() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Some(Duration::from_millis(200)),
            write: Some(Duration::from_millis(200)),
        }
    }

    #[test]
    fn stalled_peer_gives_a_timeout_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut stream = Stream::connect("127.0.0.1", port, &short()).expect("connect");
        let _peer = listener.accept().expect("accept");
        let started = Instant::now();
        let error = stream.read_some(&mut [0; 16]).expect_err("nothing to read");
        assert!(error.is_timeout(), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn stalled_tls_handshake_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tls = TlsConnector::new(&crate::TlsOptions::new()).expect("connector");
        let handle = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
        let error = Stream::connect_tls("localhost", port, &short(), &tls).expect_err("stall");
        assert!(error.is_timeout(), "{error}");
        drop(handle.join());
    }

    #[test]
    fn refused_connection_and_unknown_host_are_typed() {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("a").port();
        let error = Stream::connect("127.0.0.1", port, &short()).expect_err("closed port");
        assert!(matches!(error, Error::Connect { .. }), "{error}");
        let error = Stream::connect("no-such-host.invalid", 143, &short()).expect_err("nxdomain");
        assert!(matches!(error, Error::Resolve { .. } | Error::NoAddress { .. }), "{error}");
    }

    #[test]
    fn a_trickling_peer_is_stalled_but_time_spent_elsewhere_does_not_count() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let timeouts = Timeouts { read: Some(Duration::from_secs(5)), ..short() };
        let mut stream = Stream::connect("127.0.0.1", port, &timeouts).expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        let trickle = std::thread::spawn(move || {
            for _ in 0..100 {
                if peer.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        stream.set_stall_limit(Some(Duration::from_millis(400)));
        // Busy elsewhere for longer than the limit: that is not the server's stall.
        std::thread::sleep(Duration::from_millis(500));
        assert!(stream.read_some(&mut [0; 16]).expect("buffered bytes") > 0);
        stream.progress();
        let started = Instant::now();
        let error = loop {
            match stream.read_some(&mut [0; 16]) {
                Ok(n) => assert!(n > 0, "the peer is still sending"),
                Err(error) => break error,
            }
        };
        assert!(
            matches!(error, Error::Stalled { timeout } if timeout.as_millis() == 400),
            "{error}"
        );
        assert!(error.is_timeout());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(stream);
        drop(trickle.join());
    }

    #[test]
    fn a_deadline_ends_a_phase_whatever_arrives() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let timeouts = Timeouts { read: Some(Duration::from_secs(5)), ..short() };
        let mut stream = Stream::connect("127.0.0.1", port, &timeouts).expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        stream.set_stall_limit(Some(Duration::from_secs(5)));
        stream.set_deadline(Some(Duration::from_millis(300)), "waiting for the greeting");
        let started = Instant::now();
        let error = loop {
            peer.write_all(b"x").expect("write");
            stream.progress();
            if let Err(error) = stream.read_some(&mut [0; 16]) {
                break error;
            }
            std::thread::sleep(Duration::from_millis(30));
        };
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(error.to_string(), "waiting for the greeting timed out after 300ms");
        stream.set_deadline(None, "");
        peer.write_all(b"y").expect("write");
        assert!(stream.read_some(&mut [0; 16]).expect("no deadline any more") > 0);
    }

    #[test]
    fn a_plain_text_answer_to_the_tls_handshake_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tls = TlsConnector::new(&crate::TlsOptions::new()).expect("connector");
        let server = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().expect("accept");
            peer.write_all(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n").expect("greet");
            let mut hello = [0u8; 512];
            let _ = peer.read(&mut hello);
            std::thread::sleep(Duration::from_millis(100));
        });
        let error = Stream::connect_tls("127.0.0.1", port, &short(), &tls).expect_err("not TLS");
        assert!(
            matches!(&error, Error::NotTls { service: Some(Service::Imap), received, .. }
                if received.starts_with("* OK [CAPABILITY")),
            "{error:?}"
        );
        assert!(error.is_configuration());
        assert!(error.to_string().contains("in plain text (it speaks IMAP)"), "{error}");
        drop(server.join());
        assert!(!Stream::answers_tls("127.0.0.1", port, Duration::from_millis(300)));
    }

    #[test]
    fn unknown_hosts_are_told_from_resolver_trouble() {
        let error = Stream::connect("no-such-host.invalid", 143, &short()).expect_err("nxdomain");
        assert!(error.is_unknown_host(), "{error}");
        assert!(error.to_string().contains("no-such-host.invalid"), "{error}");
        let again = Error::Resolve {
            host: "mail.example.com".into(),
            source: io::Error::other(
                "failed to lookup address information: Temporary failure in name resolution",
            ),
        };
        assert!(!again.is_unknown_host());
        assert!(!Error::Closed { operation: "read" }.is_unknown_host());
    }

    #[test]
    fn peer_close_reads_as_end_of_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut stream = Stream::connect("localhost", port, &short()).expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        peer.write_all(b"hi").expect("write");
        drop(peer);
        let mut buf = [0; 8];
        assert_eq!(stream.read_some(&mut buf).expect("read"), 2);
        assert_eq!(stream.read_some(&mut buf).expect("eof"), 0);
        assert!(!stream.is_tls());
    }
}
