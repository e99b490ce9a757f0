//! A blocking TCP stream that is plain or TLS, with timeouts, upgradable in place.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use crate::{Error, TlsConnector};

/// Timeouts for connecting and for every single read and write. A stalled server produces
/// [`Error::Timeout`] after at most one of these, never a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Per resolved address for the TCP connect; the TLS handshake uses `read`/`write`.
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
            read: Some(Duration::from_mins(5)),
            write: Some(Duration::from_mins(5)),
        }
    }
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Left behind when a failed STARTTLS handshake consumed the socket.
    Broken,
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
    pub fn connect(host: &str, port: u16, timeouts: &Timeouts) -> Result<Stream, Error> {
        let tcp = connect_tcp(host, port, timeouts)?;
        let peer = tcp.peer_addr().ok();
        Ok(Stream { inner: Inner::Plain(tcp), host: host.to_owned(), peer, timeouts: *timeouts })
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
    pub fn start_tls(&mut self, tls: &TlsConnector) -> Result<(), Error> {
        let server_name = tls.server_name(&self.host)?;
        let tcp = match std::mem::replace(&mut self.inner, Inner::Broken) {
            Inner::Plain(tcp) => tcp,
            other => {
                self.inner = other;
                return Err(Error::AlreadyTls);
            }
        };
        let connection = ClientConnection::new(tls.config(), server_name)
            .map_err(|source| Error::Tls { host: self.host.clone(), source })?;
        let mut stream = StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
                return Err(self.map_tls_error("TLS handshake", error));
            }
        }
        self.inner = Inner::Tls(Box::new(stream));
        Ok(())
    }

    /// True once TLS is in use.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
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
        self.tcp()?
            .set_read_timeout(timeout)
            .map_err(|source| Error::Io { operation: "set read timeout", source })?;
        self.timeouts.read = timeout;
        Ok(())
    }

    /// Reads what is available (at least one byte, or `Ok(0)` at end of stream), with the
    /// error mapped to [`Error::Timeout`] / [`Error::Closed`] / [`Error::Tls`] / [`Error::Io`].
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.read(buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.map_tls_error("read", error)),
            }
        }
    }

    /// Writes and flushes all of `buf`, with typed errors.
    pub fn send(&mut self, buf: &[u8]) -> Result<(), Error> {
        self.write_all(buf)
            .and_then(|()| self.flush())
            .map_err(|error| self.map_tls_error("write", error))
    }

    /// Closes both directions (after sending a TLS close_notify when in TLS).
    pub fn shutdown(&mut self) {
        if let Inner::Tls(stream) = &mut self.inner {
            stream.conn.send_close_notify();
            let _ = stream.conn.complete_io(&mut stream.sock);
        }
        if let Ok(tcp) = self.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }

    fn tcp(&self) -> Result<&TcpStream, Error> {
        match &self.inner {
            Inner::Plain(tcp) => Ok(tcp),
            Inner::Tls(stream) => Ok(&stream.sock),
            Inner::Broken => Err(Error::Closed { operation: "use of a failed connection" }),
        }
    }

    fn map_tls_error(&self, operation: &'static str, error: io::Error) -> Error {
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

fn connect_tcp(host: &str, port: u16, timeouts: &Timeouts) -> Result<TcpStream, Error> {
    let lookup = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = (lookup, port)
        .to_socket_addrs()
        .map_err(|source| Error::Resolve { host: host.to_owned(), source })?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeouts.connect) {
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
