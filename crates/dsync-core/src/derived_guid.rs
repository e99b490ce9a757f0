//! Mailbox GUIDs for sources that keep none (IMAP servers, POP3), derived from the
//! mailbox's name exactly as Dovecot's `imapc` and `pop3c` storages derive them, so that
//! a destination we write and one `doveadm backup -R … imapc:` writes carry the same
//! GUIDs, and either tool can take over from the other.
//!
//! Dovecot 2.3 (`imapc_mailbox_get_metadata` and `pop3c_mailbox_get_metadata`) answers a
//! mailbox GUID with `mail_generate_guid_128_hash(box->name)` (`src/lib-storage/mail.c`):
//! a name that is 32 hex digits is taken as the GUID itself, any other name gives the
//! **last** 16 bytes of its SHA-1. `box->name` is the storage name: the remote name with
//! the **remote server's** hierarchy separator (never the local namespace's), modified
//! UTF-7, each component escaped with `%` as `mailbox_list_escape_name_params` does for
//! imapc's `storage_name_escape_char`. pop3c's only mailbox is `INBOX`.
//!
//! Such a GUID is not an identity: it changes when the mailbox is renamed on the server,
//! exactly as in Dovecot. It is given to mailboxes created from the source, and adopted by
//! a backup destination whose GUID differs, but never decides that two mailboxes are the
//! same or that one was renamed (see [`Capabilities::mailbox_guids`]).
//!
//! [`Capabilities::mailbox_guids`]: crate::Capabilities::mailbox_guids

use sha1::{Digest, Sha1};

use crate::model::MailboxGuid;

/// Dovecot's `mail_generate_guid_128_hash`: `text` itself when it is 32 hex digits (either
/// case), else the last 16 bytes of its SHA-1.
pub fn hash_guid(text: &[u8]) -> MailboxGuid {
    if let Some(guid) = parse_hex(text) {
        return guid;
    }
    let digest = Sha1::digest(text);
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&digest[digest.len() - 16..]);
    MailboxGuid(guid)
}

/// The GUID Dovecot's imapc gives the mailbox whose name on the server has `components`
/// (UTF-8, as the engine names it) joined by the server's hierarchy `separator` (`/` when
/// the server announces none, as imapc assumes).
pub fn imapc_mailbox_guid<S: AsRef<str>>(components: &[S], separator: char) -> MailboxGuid {
    hash_guid(&imapc_storage_name(components, separator))
}

/// The GUID Dovecot's imapc gives the mailbox the server lists as `raw` (its own bytes,
/// whether or not they are canonical modified UTF-7), with hierarchy `separator`.
pub fn imapc_mailbox_guid_raw(raw: &[u8], separator: char) -> MailboxGuid {
    hash_guid(&imapc_storage_name_raw(raw, separator))
}

/// imapc's storage name of the remote name `raw`: each level escaped as
/// [`imapc_storage_name`] escapes them, the bytes otherwise as the server sent them.
pub fn imapc_storage_name_raw(raw: &[u8], separator: char) -> Vec<u8> {
    let mut buffer = [0u8; 4];
    let separator = separator.encode_utf8(&mut buffer).as_bytes()[0];
    let mut name = Vec::with_capacity(raw.len());
    for (index, component) in raw.split(|&byte| byte == separator).enumerate() {
        if index > 0 {
            name.push(separator);
        }
        escape_component(component, separator, &mut name);
    }
    name
}

/// The GUID Dovecot's pop3c gives its only mailbox, INBOX.
pub fn pop3c_mailbox_guid() -> MailboxGuid {
    hash_guid(b"INBOX")
}

/// imapc's storage name (`box->name`): each component in modified UTF-7 and escaped, joined
/// by the first byte of `separator` (Dovecot keeps the separator as one byte).
pub fn imapc_storage_name<S: AsRef<str>>(components: &[S], separator: char) -> Vec<u8> {
    let mut buffer = [0u8; 4];
    let separator = separator.encode_utf8(&mut buffer).as_bytes()[0];
    let mut name = Vec::new();
    for (index, component) in components.iter().enumerate() {
        if index > 0 {
            name.push(separator);
        }
        escape_component(mutf7::encode(component.as_ref()).as_bytes(), separator, &mut name);
    }
    name
}

/// Escapes one modified UTF-7 component with `%` and two lowercase hex digits, as
/// `mailbox_list_escape_name_params` does: a leading `~`; every `%`, `/` and separator
/// byte; and a `.` or `..` that starts the component or follows a `/`.
fn escape_component(component: &[u8], separator: u8, out: &mut Vec<u8>) {
    let escape = |byte: u8, out: &mut Vec<u8>| {
        out.push(b'%');
        out.extend_from_slice(format!("{byte:02x}").as_bytes());
    };
    let mut rest = component;
    let mut at_start = true;
    if let Some((b'~', tail)) = rest.split_first() {
        escape(b'~', out);
        rest = tail;
        at_start = false;
    }
    for (index, &byte) in rest.iter().enumerate() {
        if byte == separator
            || byte == b'%'
            || byte == b'/'
            || (at_start && is_dot_directory(&rest[index..]))
        {
            escape(byte, out);
        } else {
            out.push(byte);
        }
        at_start = byte == b'/';
    }
}

/// `.` or `..`, alone or before a `/` (Dovecot's `need_escape_dirstart`; imapc sets no
/// `maildir_name`).
fn is_dot_directory(rest: &[u8]) -> bool {
    matches!(rest, [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..])
}

fn parse_hex(text: &[u8]) -> Option<MailboxGuid> {
    if text.len() != 32 {
        return None;
    }
    let digit = |byte: u8| char::from(byte).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut guid = [0u8; 16];
    for (slot, pair) in guid.iter_mut().zip(text.chunks_exact(2)) {
        *slot = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(MailboxGuid(guid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imapc(components: &[&str], separator: char) -> String {
        imapc_mailbox_guid(components, separator).to_string()
    }

    /// Known answers from `doveadm mailbox status guid '*'` over `imapc:` (Dovecot
    /// 2.3.19.1), against Dovecot servers with `/` and `.` separators and a scripted
    /// server listing names Dovecot itself refuses to create. The local namespace's
    /// separator (`/` or `.`) changed none of them.
    #[test]
    fn raw_names_hash_like_their_components() {
        for (components, separator) in [
            (&["Archive", "2002"][..], '/'),
            (&["Entwürfe", "~x", "50%"][..], '.'),
            (&["INBOX"][..], '/'),
        ] {
            let raw = mutf7::encode(&components.join(&separator.to_string()));
            assert_eq!(
                imapc_mailbox_guid_raw(raw.as_bytes(), separator),
                imapc_mailbox_guid(components, separator)
            );
        }
        // Bytes that are not modified UTF-7 are hashed as they are.
        assert_eq!(imapc_mailbox_guid_raw("café".as_bytes(), '/'), hash_guid("café".as_bytes()));
    }

    #[test]
    fn agrees_with_doveadm_over_imapc() {
        let cases: &[(&[&str], char, &str)] = &[
            (&["INBOX"], '/', "c92f64f79f0d1ed01e6d5b314f04886c"),
            (&["INBOX"], '.', "c92f64f79f0d1ed01e6d5b314f04886c"),
            (&["Archive"], '/', "51a58e1d1d5c491aac71488647b20224"),
            // The server's separator is hashed: `Archive/2002` and `Archive.2002`.
            (&["Archive", "2002"], '/', "346bf7282bf827fa662895cd5e5e9b19"),
            (&["Archive", "2002"], '.', "44cfc4a9aff0c0afb79346170105352a"),
            // Modified UTF-7 (`Entw&APw-rfe`), not the UTF-8 name.
            (&["Entwürfe"], '/', "d615cdbee662a5c6fd78f6050c80f1be"),
            (&["ä"], '/', "148ab90933fffd3ceb73b7c0209d8c84"),
            (&["Sent Items"], '/', "34b8141947b9372e94589bd35a54dac5"),
            // `%` is escaped (`50%25`), and a `%` followed by hex digits too.
            (&["50%"], '/', "be3bffee0de97cff5af81453bacfa5ce"),
            (&["a%2fb"], '/', "66384a004ad29cdaf86104da199fff25"),
            // A leading `~` of each component, not a later one.
            (&["~tilde"], '/', "88dd607e8dc11e2245b2b3d3abdfb828"),
            (&["Dir", "~sub"], '/', "76bfa8275b549acde6b059ffbcbb537a"),
            (&["Dir", "~sub"], '.', "e78b9126d3e97f05f9f9fd9aaea8a9b4"),
            (&["A~B"], '/', "0e6b60cc7eeff9906e72bd814c01f6b4"),
            // `/` inside a component of a `.` server; a `~` after it stays.
            (&["a/b"], '.', "6f1d3fcef4fc6a8a0103bb8bdf0a425d"),
            (&["a/~b"], '.', "b9b7491fe1bf7a05b37d285258b32134"),
            (&["a/", "/b"], '.', "9b12fa1e664bdd4bdf67db0151029d01"),
            (&["a.b"], '/', "9d71b463485b4faf4e989dc3fe77a8c6"),
            // Directory references.
            (&["."], '/', "d4deef5a57a04cdc195d7a100d041f1c"),
            (&[".."], '/', "230ed71b5cc72b961566ef6331a89fb8"),
            (&["x", ".."], '/', "adf127a9d599e7aaf94aeca1f3777152"),
            // 32 hex digits are the GUID itself, unless more comes with them.
            (&["0123456789ABCDEF0123456789abcdef"], '/', "0123456789abcdef0123456789abcdef"),
            (&["x", "0123456789abcdef0123456789abcdef"], '/', "005bf74e21d825ff6a79075dcbe7cdef"),
        ];
        for (components, separator, expected) in cases {
            assert_eq!(imapc(components, *separator), *expected, "{components:?} {separator}");
        }
    }

    #[test]
    fn pop3c_inbox_is_the_imapc_inbox() {
        // doveadm backup -R pop3c: wrote `Gc92f64f7…` into the destination's uidlist.
        assert_eq!(pop3c_mailbox_guid().to_string(), "c92f64f79f0d1ed01e6d5b314f04886c");
    }

    #[test]
    fn storage_names_are_escaped_per_component() {
        let name = |components: &[&str], separator| {
            String::from_utf8(imapc_storage_name(components, separator)).expect("ASCII")
        };
        assert_eq!(name(&["Archive", "Entwürfe"], '.'), "Archive.Entw&APw-rfe");
        assert_eq!(name(&["50%", "~x", "a/"], '.'), "50%25.%7ex.a%2f");
        // After a `/` (a server whose separator is neither `/` nor `.`).
        assert_eq!(name(&["a/..", "b/.c"], '^'), "a%2f%2e.^b%2f.c");
        assert_eq!(name(&["..x", ".y"], '/'), "..x/.y");
        assert_eq!(name(&["A&B"], '/'), "A&-B");
    }

    #[test]
    fn hex_parsing_is_strict() {
        assert_eq!(hash_guid(b"+123456789abcdef0123456789abcdef"), {
            let digest = Sha1::digest(b"+123456789abcdef0123456789abcdef");
            MailboxGuid(digest[4..].try_into().expect("16 bytes"))
        });
        // The reference notes' value for a `.`-separated server's `INBOX.Sent`.
        assert_eq!(imapc(&["INBOX", "Sent"], '.'), "7d3c7eaa71cdf47ee8a1192687cda8cd");
    }
}
