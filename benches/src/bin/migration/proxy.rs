//! A TCP proxy on loopback that delays every byte by a fixed time in each direction, like
//! `tc qdisc … netem delay` on the loopback interface (which delays both directions, so the
//! round trip grows by twice the delay). Bandwidth is not limited: bytes are read as soon
//! as they arrive and written once they are due, so pipelining tools keep the pipe full
//! while stop-and-wait tools pay a round trip per exchange.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;

/// Chunks in flight per direction; bounds the proxy's memory (64 KiB each).
const QUEUE: usize = 4096;

/// A running proxy; it lives until the process ends.
#[derive(Debug)]
pub(crate) struct Proxy {
    port: u16,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to `target_port`.
    pub(crate) fn start(target_port: u16, delay: Duration) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone())
                {
                    pump(client_read, server, delay);
                    pump(server_read, client, delay);
                }
            }
        });
        Ok(Proxy { port })
    }

    /// The port clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// Copies `from` → `to`, each chunk written `delay` after it was read.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (sender, receiver) = mpsc::sync_channel::<(Instant, Vec<u8>)>(QUEUE);
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send((Instant::now() + delay, buffer[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender tells the writer to shut the other side down.
    });
    thread::spawn(move || {
        for (due, chunk) in receiver {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_bytes_both_ways_with_the_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = echo.accept().unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).unwrap();
            stream.write_all(&buffer).unwrap();
        });
        let proxy = Proxy::start(echo_port, Duration::from_millis(20)).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        let started = Instant::now();
        client.write_all(b"hello").unwrap();
        let mut answer = [0u8; 5];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"hello");
        // One delay each way.
        assert!(started.elapsed() >= Duration::from_millis(40), "{:?}", started.elapsed());
    }
}
