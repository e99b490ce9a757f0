//! Writes responses back to bytes: the inverse of the parser, used by round-trip tests,
//! fuzz targets, benchmarks and fake servers.

use crate::proto::response::{
    BodyData, BodyKind, Code, Fetch, ListEntry, ListKind, Namespace, Response, Status, StatusKind,
    Untagged,
};
use crate::types::{Flag, SequenceSet, format_internal_date};

/// Appends the wire form of `response` (with CRLF) to `out`. Strings are written as
/// quoted strings when they can be, else as literals.
pub fn write_response(response: &Response, out: &mut Vec<u8>) {
    write_response_as(response, Streamed::Announced, out);
}

/// [`write_response`] for a protocol trace: a body that was streamed to a handler (and
/// is not in the response) is shown as `<N bytes>` after its literal's announcement.
pub(crate) fn write_response_for_trace(response: &Response, out: &mut Vec<u8>) {
    write_response_as(response, Streamed::Described, out);
}

/// How a streamed body ([`BodyData::Streamed`]) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streamed {
    /// Only its literal's announcement `{N}`, as the server sent it before the bytes.
    Announced,
    /// The announcement, then `<N bytes>` where the bytes were.
    Described,
}

fn write_response_as(response: &Response, streamed: Streamed, out: &mut Vec<u8>) {
    match response {
        Response::Tagged { tag, status } => {
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            write_status(status, out);
        }
        Response::Continuation { code, text } => {
            out.extend_from_slice(b"+ ");
            write_code_text(code.as_ref(), text, out);
        }
        Response::Untagged(untagged) => {
            out.extend_from_slice(b"* ");
            write_untagged(untagged, streamed, out);
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn write_status(status: &Status, out: &mut Vec<u8>) {
    out.extend_from_slice(match status.kind {
        StatusKind::Ok => b"OK ",
        StatusKind::No => b"NO ",
        StatusKind::Bad => b"BAD ",
        StatusKind::PreAuth => b"PREAUTH ",
        StatusKind::Bye => b"BYE ",
    });
    write_code_text(status.code.as_ref(), &status.text, out);
}

fn write_code_text(code: Option<&Code>, text: &str, out: &mut Vec<u8>) {
    if let Some(code) = code {
        out.push(b'[');
        write_code(code, out);
        out.extend_from_slice(b"] ");
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_code(code: &Code, out: &mut Vec<u8>) {
    let name = code.name();
    match code {
        Code::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            for name in caps.names() {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
            }
        }
        Code::PermanentFlags(flags) => {
            out.extend_from_slice(b"PERMANENTFLAGS ");
            write_flags(flags, out);
        }
        Code::UidValidity(v) => push_fmt(out, format_args!("UIDVALIDITY {v}")),
        Code::UidNext(v) => push_fmt(out, format_args!("UIDNEXT {v}")),
        Code::Unseen(v) => push_fmt(out, format_args!("UNSEEN {v}")),
        Code::HighestModSeq(v) => push_fmt(out, format_args!("HIGHESTMODSEQ {v}")),
        Code::Modified(set) => push_fmt(out, format_args!("MODIFIED {set}")),
        Code::AppendUid { uid_validity, uids } => {
            push_fmt(out, format_args!("APPENDUID {uid_validity} {uids}"));
        }
        Code::CopyUid { uid_validity, source, destination } => {
            push_fmt(out, format_args!("COPYUID {uid_validity} {source} {destination}"));
        }
        Code::BadCharset(names) => {
            out.extend_from_slice(b"BADCHARSET");
            if !names.is_empty() {
                out.extend_from_slice(b" (");
                out.extend_from_slice(names.join(" ").as_bytes());
                out.push(b')');
            }
        }
        Code::Other { name, data } => {
            out.extend_from_slice(name.as_bytes());
            if let Some(data) = data {
                out.push(b' ');
                out.extend_from_slice(data.as_bytes());
            }
        }
        _ => out.extend_from_slice(name.as_bytes()),
    }
}

fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    out.extend_from_slice(args.to_string().as_bytes());
}

fn write_flags(flags: &[Flag], out: &mut Vec<u8>) {
    out.push(b'(');
    for (index, flag) in flags.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(flag.as_str().as_bytes());
    }
    out.push(b')');
}

/// A string: quoted when it has no CR, LF, NUL, `"`-free requirement aside; else a literal.
fn write_string(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.iter().all(|&b| b != 0 && b != b'\r' && b != b'\n') && bytes.len() < 256 {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        push_fmt(out, format_args!("{{{}}}\r\n", bytes.len()));
        out.extend_from_slice(bytes);
    }
}

fn write_nstring(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        Some(b) => write_string(b, out),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn write_delimiter(delimiter: Option<char>, out: &mut Vec<u8>) {
    match delimiter {
        Some(c) => write_string(c.to_string().as_bytes(), out),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn write_untagged(untagged: &Untagged, streamed: Streamed, out: &mut Vec<u8>) {
    match untagged {
        Untagged::Status(status) => write_status(status, out),
        Untagged::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            for name in caps.names() {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
            }
        }
        Untagged::Enabled(names) => {
            out.extend_from_slice(b"ENABLED");
            for name in names {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
            }
        }
        Untagged::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            write_flags(flags, out);
        }
        Untagged::List(entry) => write_list(entry, out),
        Untagged::MailboxStatus(status) => {
            out.extend_from_slice(b"STATUS ");
            write_string(status.name.as_raw(), out);
            out.extend_from_slice(b" (");
            let mut items = Vec::new();
            let numbers = [
                ("MESSAGES", status.messages),
                ("RECENT", status.recent),
                ("UIDNEXT", status.uid_next),
                ("UIDVALIDITY", status.uid_validity),
                ("UNSEEN", status.unseen),
                ("DELETED", status.deleted),
            ];
            for (name, value) in numbers {
                if let Some(v) = value {
                    items.push(format!("{name} {v}"));
                }
            }
            if let Some(v) = status.highest_modseq {
                items.push(format!("HIGHESTMODSEQ {v}"));
            }
            if let Some(v) = status.size {
                items.push(format!("SIZE {v}"));
            }
            if let Some(v) = &status.mailbox_id {
                items.push(format!("MAILBOXID ({v})"));
            }
            out.extend_from_slice(items.join(" ").as_bytes());
            out.push(b')');
        }
        Untagged::Search { numbers, modseq } => {
            out.extend_from_slice(b"SEARCH");
            for n in numbers {
                push_fmt(out, format_args!(" {n}"));
            }
            if let Some(m) = modseq {
                push_fmt(out, format_args!(" (MODSEQ {m})"));
            }
        }
        Untagged::ESearch(e) => {
            out.extend_from_slice(b"ESEARCH");
            if let Some(tag) = &e.tag {
                out.extend_from_slice(b" (TAG ");
                write_string(tag.as_bytes(), out);
                out.push(b')');
            }
            if e.uid {
                out.extend_from_slice(b" UID");
            }
            let parts: [(&str, Option<String>); 5] = [
                ("MIN", e.min.map(|v| v.to_string())),
                ("MAX", e.max.map(|v| v.to_string())),
                ("COUNT", e.count.map(|v| v.to_string())),
                ("ALL", e.all.as_ref().map(SequenceSet::to_string)),
                ("MODSEQ", e.modseq.map(|v| v.to_string())),
            ];
            for (name, value) in parts {
                if let Some(v) = value {
                    push_fmt(out, format_args!(" {name} {v}"));
                }
            }
        }
        Untagged::Exists(n) => push_fmt(out, format_args!("{n} EXISTS")),
        Untagged::Recent(n) => push_fmt(out, format_args!("{n} RECENT")),
        Untagged::Expunge(n) => push_fmt(out, format_args!("{n} EXPUNGE")),
        Untagged::Fetch(fetch) => write_fetch(fetch, streamed, out),
        Untagged::Vanished { earlier, uids } => {
            let earlier = if *earlier { "(EARLIER) " } else { "" };
            push_fmt(out, format_args!("VANISHED {earlier}{uids}"));
        }
        Untagged::Namespace(ns) => {
            out.extend_from_slice(b"NAMESPACE");
            for group in [&ns.personal, &ns.other_users, &ns.shared] {
                out.push(b' ');
                write_namespace_group(group, out);
            }
        }
        Untagged::Id(fields) => {
            out.extend_from_slice(b"ID ");
            match fields {
                None => out.extend_from_slice(b"NIL"),
                Some(fields) => {
                    out.push(b'(');
                    for (index, (name, value)) in fields.iter().enumerate() {
                        if index > 0 {
                            out.push(b' ');
                        }
                        write_string(name.as_bytes(), out);
                        out.push(b' ');
                        write_nstring(value.as_deref().map(str::as_bytes), out);
                    }
                    out.push(b')');
                }
            }
        }
        Untagged::Malformed { raw } | Untagged::Other { raw, .. } => out.extend_from_slice(raw),
    }
}

fn write_namespace_group(group: &[Namespace], out: &mut Vec<u8>) {
    if group.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for ns in group {
        out.push(b'(');
        write_string(ns.prefix.as_raw(), out);
        out.push(b' ');
        write_delimiter(ns.delimiter, out);
        out.push(b')');
    }
    out.push(b')');
}

fn write_list(entry: &ListEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(match entry.kind {
        ListKind::List => b"LIST (",
        ListKind::Lsub => b"LSUB (",
        ListKind::Xlist => b"XLIST (",
    });
    for (index, attribute) in entry.attributes.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(attribute.as_str().as_bytes());
    }
    out.extend_from_slice(b") ");
    write_delimiter(entry.delimiter, out);
    out.push(b' ');
    write_string(entry.name.as_raw(), out);
    let mut extended = Vec::new();
    if !entry.child_info.is_empty() {
        let mut item = b"CHILDINFO (".to_vec();
        for (index, info) in entry.child_info.iter().enumerate() {
            if index > 0 {
                item.push(b' ');
            }
            write_string(info.as_bytes(), &mut item);
        }
        item.push(b')');
        extended.push(item);
    }
    if let Some(old) = &entry.old_name {
        let mut item = b"OLDNAME (".to_vec();
        write_string(old.as_raw(), &mut item);
        item.push(b')');
        extended.push(item);
    }
    if !extended.is_empty() {
        out.extend_from_slice(b" (");
        out.extend_from_slice(&extended.join(&b' '));
        out.push(b')');
    }
}

fn write_fetch(fetch: &Fetch, streamed: Streamed, out: &mut Vec<u8>) {
    push_fmt(out, format_args!("{} FETCH (", fetch.seq));
    let mut items: Vec<Vec<u8>> = Vec::new();
    if let Some(uid) = fetch.uid {
        items.push(format!("UID {uid}").into_bytes());
    } else if let Some(uid) = fetch.invalid("UID") {
        items.push(format!("UID {uid}").into_bytes());
    }
    if let Some(flags) = &fetch.flags {
        let mut item = b"FLAGS ".to_vec();
        write_flags(flags, &mut item);
        items.push(item);
    }
    if let Some(date) = &fetch.internal_date {
        items.push(format!("INTERNALDATE \"{}\"", format_internal_date(date)).into_bytes());
    } else if let Some(text) = fetch.invalid("INTERNALDATE") {
        let mut item = b"INTERNALDATE ".to_vec();
        write_string(text.as_bytes(), &mut item);
        items.push(item);
    }
    if let Some(size) = fetch.rfc822_size {
        items.push(format!("RFC822.SIZE {size}").into_bytes());
    }
    if let Some(modseq) = fetch.modseq {
        items.push(format!("MODSEQ ({modseq})").into_bytes());
    }
    for body in &fetch.bodies {
        let mut item = match body.section.kind {
            BodyKind::Body => format!("BODY[{}]", body.section.section).into_bytes(),
            BodyKind::Binary => format!("BINARY[{}]", body.section.section).into_bytes(),
            BodyKind::Rfc822 => b"RFC822".to_vec(),
            BodyKind::Rfc822Header => b"RFC822.HEADER".to_vec(),
            BodyKind::Rfc822Text => b"RFC822.TEXT".to_vec(),
        };
        if let Some(origin) = body.section.origin {
            item.extend_from_slice(format!("<{origin}>").as_bytes());
        }
        item.push(b' ');
        match &body.data {
            BodyData::Nil => item.extend_from_slice(b"NIL"),
            // Bodies always go as literals, as servers send them.
            BodyData::Inline(data) => {
                item.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
                item.extend_from_slice(data);
            }
            BodyData::Streamed(len) => {
                item.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                if streamed == Streamed::Described {
                    item.extend_from_slice(format!("<{len} bytes>").as_bytes());
                }
            }
        }
        items.push(item);
    }
    for (section, size) in &fetch.binary_sizes {
        items.push(format!("BINARY.SIZE[{section}] {size}").into_bytes());
    }
    if let Some(id) = fetch.gmail_message_id {
        items.push(format!("X-GM-MSGID {id}").into_bytes());
    }
    if let Some(id) = fetch.gmail_thread_id {
        items.push(format!("X-GM-THRID {id}").into_bytes());
    }
    if let Some(labels) = &fetch.gmail_labels {
        let mut item = b"X-GM-LABELS (".to_vec();
        for (index, label) in labels.iter().enumerate() {
            if index > 0 {
                item.push(b' ');
            }
            write_string(label, &mut item);
        }
        item.push(b')');
        items.push(item);
    }
    if let Some(id) = &fetch.email_id {
        items.push(format!("EMAILID ({id})").into_bytes());
    }
    if let Some(guid) = &fetch.x_guid {
        items.push(format!("X-GUID {guid}").into_bytes());
    }
    out.extend_from_slice(&items.join(&b' '));
    out.push(b')');
}
