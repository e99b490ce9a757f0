//! A TCP proxy on 127.0.0.1 in front of a real server that cuts its first connection once
//! the server has sent a given number of bytes through it: a connection lost in the
//! middle of a transfer, at a point the test chooses, which a real server does not do on
//! demand. Every later connection passes through untouched, so a client that reconnects
//! finishes against the real server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct CuttingProxy {
    port: u16,
    connections: Arc<AtomicUsize>,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl CuttingProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:target_port`; the first
    /// connection is closed (both ways) after `cut_after` bytes from the server.
    pub fn start(target_port: u16, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (connections, cut, stop) = (connections.clone(), cut.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
                    let limit = first.then_some(cut_after);
                    let cut = cut.clone();
                    std::thread::spawn(move || forward(client, target_port, limit, &cut));
                }
            })
        };
        CuttingProxy { port, connections, cut, stop, handle: Some(handle) }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// True once the first connection was cut.
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Joins `client` to the server; with `limit`, cuts both after that many server bytes.
fn forward(client: TcpStream, target_port: u16, limit: Option<u64>, cut: &AtomicBool) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let mut sent = 0u64;
    let mut buffer = [0u8; 8192];
    while let Ok(n) = server_reader.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let allowed = limit.map_or(n, |limit| {
            usize::try_from(limit.saturating_sub(sent)).unwrap_or(usize::MAX).min(n)
        });
        if client_writer.write_all(&buffer[..allowed]).is_err() {
            break;
        }
        sent += allowed as u64;
        if allowed < n || limit.is_some_and(|limit| sent >= limit) {
            cut.store(true, Ordering::SeqCst);
            break;
        }
    }
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = server_reader.shutdown(Shutdown::Both);
    let _ = upstream.join();
}
