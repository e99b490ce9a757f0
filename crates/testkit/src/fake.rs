//! A scripted fake server on 127.0.0.1 for what a real Dovecot cannot be made to do:
//! malformed or hostile responses, cut connections, stalls. One connection, one script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes; `{tag}` is replaced by the tag of the last line read.
    Send(Vec<u8>),
    /// Read one client line (and the literal data it announces with `{n+}`).
    Read,
    /// Wait.
    Sleep(Duration),
    /// Send these bytes one at a time, waiting this long before each (a server that
    /// trickles).
    Trickle(Vec<u8>, Duration),
    /// Send these bytes this many times (a flood, without building it in memory first).
    Repeat(Vec<u8>, usize),
    /// Close the connection (the script ends).
    Close,
}

impl Step {
    /// [`Step::Send`] of a string.
    pub fn send(text: &str) -> Step {
        Step::Send(text.as_bytes().to_vec())
    }
}

/// A running fake server. [`FakeServer::finish`] returns the lines the client sent.
#[derive(Debug)]
pub struct FakeServer {
    port: u16,
    handle: Option<JoinHandle<Vec<String>>>,
}

impl FakeServer {
    /// Listens on a free loopback port and runs `script` on the first connection. Reads
    /// time out after 10 s, so a script never hangs a test run.
    pub fn start(script: Vec<Step>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return Vec::new(),
                }
            };
            run(stream, &script)
        });
        FakeServer { port, handle: Some(handle) }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the script to end; the client's lines, CRLF removed.
    pub fn finish(mut self) -> Vec<String> {
        self.handle.take().map(|h| h.join().expect("fake server thread")).unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Detach: the thread ends on its own when the client goes away or times out.
        drop(self.handle.take());
    }
}

fn run(stream: TcpStream, script: &[Step]) -> Vec<String> {
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let mut tag = String::new();
    for step in script {
        match step {
            Step::Send(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let bytes = if text.contains("{tag}") {
                    text.replace("{tag}", &tag).into_bytes()
                } else {
                    bytes.clone()
                };
                if writer.write_all(&bytes).is_err() {
                    break;
                }
            }
            Step::Read => {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if let Some(len) = non_sync_literal(&text) {
                    let mut data = vec![0u8; len];
                    if reader.read_exact(&mut data).is_err() {
                        break;
                    }
                }
                text.split(' ').next().unwrap_or_default().clone_into(&mut tag);
                lines.push(text);
            }
            Step::Sleep(duration) => std::thread::sleep(*duration),
            Step::Trickle(bytes, every) => {
                for byte in bytes {
                    std::thread::sleep(*every);
                    if writer.write_all(std::slice::from_ref(byte)).is_err() {
                        return lines;
                    }
                }
            }
            Step::Repeat(bytes, times) => {
                // Batched, so a flood of short lines is not a write per line.
                let batch = bytes.repeat((64 * 1024 / bytes.len().max(1)).max(1));
                let per_batch = batch.len() / bytes.len().max(1);
                let mut left = *times;
                while left > 0 {
                    let n = left.min(per_batch);
                    if writer.write_all(&batch[..n * bytes.len()]).is_err() {
                        return lines;
                    }
                    left -= n;
                }
            }
            Step::Close => break,
        }
    }
    lines
}

fn non_sync_literal(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    line[open + 1..].strip_suffix("+}")?.parse().ok()
}
