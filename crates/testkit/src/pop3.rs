//! [`RawPop3`]: a deliberately small POP3 client to *check* what `pop3c` reads. It shares
//! no code with `pop3c`, so a bug there cannot hide itself in the tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A plain-text POP3 connection that panics with a clear message on anything unexpected.
#[derive(Debug)]
pub struct RawPop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The greeting line, line end removed.
    pub greeting: String,
}

impl RawPop3 {
    /// Connects to 127.0.0.1:`port` and reads the greeting.
    pub fn connect(port: u16) -> RawPop3 {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to POP3");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut pop3 = RawPop3 { reader: BufReader::new(stream), writer, greeting: String::new() };
        pop3.greeting = pop3.line();
        assert!(pop3.greeting.starts_with("+OK"), "greeting {:?}", pop3.greeting);
        pop3
    }

    /// Connects and logs in with `USER`/`PASS`.
    pub fn login(port: u16, user: &str, password: &str) -> RawPop3 {
        let mut pop3 = RawPop3::connect(port);
        pop3.command_ok(&format!("USER {user}"));
        pop3.command_ok(&format!("PASS {password}"));
        pop3
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).expect("read POP3 line");
        assert!(n > 0, "POP3 server closed the connection");
        String::from_utf8_lossy(line.strip_suffix(b"\r\n").unwrap_or(&line)).into_owned()
    }

    /// Sends `command` and returns the status line.
    pub fn command(&mut self, command: &str) -> String {
        self.writer.write_all(format!("{command}\r\n").as_bytes()).expect("write POP3 command");
        self.line()
    }

    /// Like [`RawPop3::command`], panicking unless the answer is `+OK`.
    pub fn command_ok(&mut self, command: &str) -> String {
        let status = self.command(command);
        assert!(status.starts_with("+OK"), "{command}: {status}");
        status
    }

    /// Sends a command with a multi-line answer; returns the body, dot-stuffing removed.
    pub fn multi_line(&mut self, command: &str) -> Vec<u8> {
        self.command_ok(command);
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).expect("read POP3 body");
            assert!(n > 0, "connection closed inside {command}");
            if line == b".\r\n" {
                return body;
            }
            let unstuffed = if line.first() == Some(&b'.') { &line[1..] } else { &line[..] };
            body.extend_from_slice(unstuffed);
        }
    }

    /// `UIDL`: (number, unique id) pairs.
    pub fn uidl(&mut self) -> Vec<(u32, String)> {
        let body = self.multi_line("UIDL");
        String::from_utf8_lossy(&body)
            .lines()
            .map(|l| {
                let (n, u) = l.split_once(' ').expect("UIDL line");
                (n.parse().expect("number"), u.to_owned())
            })
            .collect()
    }

    /// `LIST`: (number, size) pairs.
    pub fn list(&mut self) -> Vec<(u32, u64)> {
        let body = self.multi_line("LIST");
        String::from_utf8_lossy(&body)
            .lines()
            .map(|l| {
                let (n, s) = l.split_once(' ').expect("LIST line");
                (n.parse().expect("number"), s.parse().expect("size"))
            })
            .collect()
    }

    /// `RETR n`.
    pub fn retr(&mut self, number: u32) -> Vec<u8> {
        self.multi_line(&format!("RETR {number}"))
    }

    /// `TOP n lines`.
    pub fn top(&mut self, number: u32, lines: u32) -> Vec<u8> {
        self.multi_line(&format!("TOP {number} {lines}"))
    }

    /// `QUIT`, then waits for the server to close.
    pub fn quit(mut self) {
        self.command_ok("QUIT");
        let _ = self.reader.read_to_end(&mut Vec::new());
    }
}
