//! Our header hash equals the one Dovecot's dsync computes, for awkward header shapes.
//! Dovecot computes it when it backs up from a GUID-less (imapc) source into a destination
//! that already has the messages; with `-D` it logs `hdr_hash=` per UID.

use std::collections::BTreeMap;

use dsync_core::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use testkit::{Dovecot, RawImap, chown_to_mail_user};

const SHAPES: &[&[u8]] = &[
    b"Date: Mon, 1 Jan 2024 10:01:00 +0000\r\nMessage-ID: <s1@example.com>\r\n\r\nbody\r\n",
    b"Subject: neither header\r\n\r\nbody\r\n",
    b"date: lower case name\r\nmessage-id: <lower@x>\r\n\r\n",
    b"Message-ID:\r\n <folded@example.com>\r\nDate: Tue,\r\n\t2 Jan 2024 10:00:00 +0000\r\n\r\n",
    b"Date: Gr\xc3\xbc\xc3\x9fe 8-bit \xe6\x97\xa5\r\nMessage-ID: <latin1-\xe9@x>\r\n\r\n",
    b"Date: trailing spaces   \r\nMessage-ID: <a@b>\t\t\r\n\r\n",
    b"Date: ??? many ?? question marks ?\r\nMessage-ID: <\x01\x02\x7f@ctl>\r\n\r\n",
    b"Date: first\r\nDate: second\r\nMessage-ID: <dup@x>\r\n\r\n",
    b"Resent-Date: not hashed\r\nX-Message-ID: <no@x>\r\n\r\n",
    b"Date : space before colon\r\nMessage-ID : <sp@x>\r\n\r\n",
    b"Message-ID: <order@x>\r\nDate: order reversed\r\n\r\n",
    b"Date: only headers, no body\r\nMessage-ID: <nobody@x>\r\n",
    b"\r\nbody without any header\r\n",
    b"Date:\r\nMessage-ID:\r\n\r\nempty values\r\n",
    b"Date: \t mixed \t whitespace \t\r\nMessage-ID: <w@x>\r\n\r\n",
];

#[test]
fn header_hashes_match_dovecot_dsync() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let mut bodies = BTreeMap::new();
    for shape in SHAPES {
        let uid = imap.append("INBOX", &[], None, shape);
        bodies.insert(uid, *shape);
    }
    imap.logout();

    let destination = dovecot.dir().join("hash-destination");
    std::fs::create_dir_all(&destination).expect("create destination");
    chown_to_mail_user(&destination);
    let settings = [
        "imapc_host=127.0.0.1".to_owned(),
        format!("imapc_port={}", dovecot.imap_port()),
        "imapc_user=alice".to_owned(),
        "imapc_password=alicepw".to_owned(),
        format!("mail_location=maildir:{}", destination.display()),
    ];
    let backup = |global: &[&str], command: &[&str]| {
        let mut args: Vec<&str> = global.to_vec();
        for setting in &settings {
            args.extend_from_slice(&["-o", setting]);
        }
        args.extend_from_slice(command);
        args.extend_from_slice(&["-u", "alice", "imapc:"]);
        dovecot.doveadm(&args)
    };
    let first = backup(&[], &["backup", "-R"]);
    assert!(first.status.success(), "first backup: {}", String::from_utf8_lossy(&first.stderr));
    // -f compares every message, which needs the hashes; -D logs them (on stderr).
    let second = backup(&["-D"], &["backup", "-f", "-R"]);
    let log = String::from_utf8_lossy(&second.stderr);

    let mut dovecot_hashes = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("Import change type=save")) {
        let field = |key: &str| line.split(key).nth(1).and_then(|rest| rest.split(' ').next());
        if let (Some(uid), Some(hash)) = (field(" UID="), field(" hdr_hash=")) {
            dovecot_hashes.insert(uid.parse::<u32>().expect("uid"), hash.to_owned());
        }
    }
    assert_eq!(dovecot_hashes.len(), SHAPES.len(), "Dovecot logged a hash per message:\n{log}");
    for (uid, body) in &bodies {
        let ours = header_hash(body, &DEFAULT_HASHED_HEADERS, HashVersion::V3);
        assert_eq!(&ours, &dovecot_hashes[uid], "UID {uid}: {}", String::from_utf8_lossy(body));
    }
}
