//! The sans-IO protocol core: it never touches a socket.
//!
//! * [`Decoder`] frames the server's byte stream — status lines, listings, bodies — with
//!   limits, removes the dot-stuffing and hands bodies out in chunks. POP3 answers carry no
//!   tags, so the caller says what it expects for each command sent
//!   ([`Decoder::expect`] with [`Command::response_kind`]).
//! * [`parse_status`], [`parse_reply`], [`parse_scan_listing`], [`parse_uidl_listing`],
//!   [`parse_capability`]: the grammar (nom; a prefix of a status line is
//!   [`ParseError::Incomplete`], never an error).
//! * [`Command`] is data; [`Command::encode`] writes it, refusing CR/LF injection.

mod command;
mod decoder;
mod parse;

#[cfg(test)]
mod tests;

pub(crate) use command::sasl_base64;
pub use command::{Command, EncodeError, MAX_COMMAND_LEN};
pub use decoder::{DecodeError, Decoder, Event, Limits, ResponseKind};
pub use parse::{
    ParseError, Reply, ScanListing, Status, StatusKind, UidlListing, apop_timestamp,
    parse_capability, parse_reply, parse_scan_listing, parse_stat, parse_status,
    parse_uidl_listing,
};

/// Writes a status line as a server does: the inverse of [`parse_status`].
///
/// ```
/// use pop3c::proto::{Status, StatusKind, parse_status, write_status};
/// let status = Status { kind: StatusKind::Err, code: Some(pop3c::ResponseCode::InUse), text: "locked".into() };
/// let mut line = Vec::new();
/// write_status(&status, &mut line);
/// assert_eq!(line, b"-ERR [IN-USE] locked\r\n");
/// assert_eq!(parse_status(&line)?.0, status);
/// # Ok::<(), pop3c::proto::ParseError>(())
/// ```
pub fn write_status(status: &Status, out: &mut Vec<u8>) {
    out.extend_from_slice(match status.kind {
        StatusKind::Ok => b"+OK",
        StatusKind::Err => b"-ERR",
    });
    if let Some(code) = &status.code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(code.as_str().as_bytes());
        out.push(b']');
    }
    if !status.text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(status.text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a multi-line body with dot-stuffing and the terminating `.` line, as a server
/// does (RFC 1939 §3): the inverse of the [`Decoder`]'s unstuffing. A body that does not
/// end in a line end gets CRLF first, as servers add one.
pub fn write_dot_stuffed(body: &[u8], out: &mut Vec<u8>) {
    let mut at_line_start = true;
    for &byte in body {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}
