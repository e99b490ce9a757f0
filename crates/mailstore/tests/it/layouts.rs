//! `LAYOUT=fs`, `UTF-8` names, and POP3 UIDLs/order, judged by Dovecot.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;

use mailstore::{Flags, Layout, Location, Maildir, SaveOptions};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{name, our_snapshot, save, selectable_only};

fn copy_for_dovecot(source: &Path, target: &Path) {
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(source)
            .arg(target)
            .status()
            .unwrap()
            .success()
    );
    testkit::chown_to_mail_user(target);
}

fn fill(maildir: &Maildir) {
    for (index, folder) in
        ["INBOX", "Archive/2023", "Entwürfe", "Parent/Child", "R&D"].iter().enumerate()
    {
        let index = u32::try_from(index).unwrap();
        let mut mailbox = maildir.create_mailbox(&name(folder), Some(100 + index), None).unwrap();
        save(
            &mut mailbox,
            3 + index,
            Flags::SEEN,
            &["$Label1"],
            1_700_000_000,
            &fixtures::message(index, folder, "x"),
        );
        mailbox.commit().unwrap();
    }
    maildir.set_subscriptions(&[name("Entwürfe"), name("Parent/Child")]).unwrap();
}

#[test]
fn fs_layout_and_utf8_names_as_dovecot_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let fs_root = dir.path().join("fs");
    let fs_maildir = Maildir::open(Location::maildir(&fs_root).with_layout(Layout::Fs));
    fill(&fs_maildir);
    // "a.b" is a legal name in LAYOUT=fs (only Maildir++ uses `.` as separator).
    fs_maildir.create_mailbox(&name("a.b"), Some(7), None).unwrap();
    assert!(fs_root.join("Archive/2023/cur").is_dir() && fs_root.join("Entw&APw-rfe/cur").is_dir());
    assert!(!fs_root.join("Archive/2023/maildirfolder").exists());
    let parent =
        fs_maildir.mailboxes().unwrap().into_iter().find(|e| e.name == name("Parent")).unwrap();
    assert!(!parent.selectable);

    let utf8_root = dir.path().join("utf8");
    let utf8_maildir = Maildir::open(Location::maildir(&utf8_root).with_utf8(true));
    fill(&utf8_maildir);
    assert!(utf8_root.join(".Entwürfe/cur").is_dir());
    assert_eq!(
        std::fs::read_to_string(utf8_root.join("subscriptions")).unwrap(),
        "V\t2\n\nEntwürfe\nParent\tChild\n"
    );

    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    copy_for_dovecot(&fs_root, &served.join("fs"));
    copy_for_dovecot(&utf8_root, &served.join("utf8"));
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_with_mail("fs", "pw", &format!("maildir:{}:LAYOUT=fs", served.join("fs").display()))
        .user_with_mail("utf8", "pw", &format!("maildir:{}:UTF-8", served.join("utf8").display()))
        .start();
    let fs_view = RawImap::login(dovecot.imap_port(), "fs", "pw").snapshot();
    assert!(fs_view.mailboxes.get("Parent").is_some_and(|m| !m.selectable));
    selectable_only(fs_view).assert_same(&our_snapshot(&fs_maildir));
    let utf8_view = selectable_only(RawImap::login(dovecot.imap_port(), "utf8", "pw").snapshot());
    utf8_view.assert_same(&our_snapshot(&utf8_maildir));
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");

    // And back: Dovecot creates folders in LAYOUT=fs, we list them.
    let mut imap = RawImap::login(dovecot.imap_port(), "fs", "pw");
    imap.create("New/Deep/Er");
    imap.append("New/Deep/Er", &["\\Answered"], None, &fixtures::message(77, "deep", "y"));
    let reread = Maildir::open(Location::maildir(served.join("fs")).with_layout(Layout::Fs));
    selectable_only(imap.snapshot()).assert_same(&our_snapshot(&reread));
}

fn pop3_uidls(port: u16, user: &str, password: &str) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read_line = |line: &mut String| {
        line.clear();
        reader.read_line(line).unwrap();
        line.trim_end().to_string()
    };
    assert!(read_line(&mut line).starts_with("+OK"));
    for command in [format!("USER {user}"), format!("PASS {password}"), String::from("UIDL")] {
        writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let reply = read_line(&mut line);
        assert!(reply.starts_with("+OK"), "{command}: {reply}");
    }
    let mut uidls = Vec::new();
    loop {
        let reply = read_line(&mut line);
        if reply == "." {
            break;
        }
        uidls.push(reply.split_once(' ').unwrap().1.to_string());
    }
    writer.write_all(b"QUIT\r\n").unwrap();
    uidls
}

#[test]
fn pop3_uidls_and_order_survive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(55), None).unwrap();
    // IMAP order 1, 2, 3; POP3 order 3, 1, 2 with the source's UIDLs.
    for (uid, uidl, order) in [(1, "UID-a1", 2), (2, "00000b2", 3), (3, "zz3", 1)] {
        let mut pending = inbox.begin_save().unwrap();
        pending.write_all(&fixtures::message(uid, "pop", "pop3")).unwrap();
        let options =
            SaveOptions::default().with_uid(uid).with_pop3(Some(uidl.into()), Some(order));
        inbox.save(pending, options).unwrap();
    }
    inbox.commit().unwrap();
    let stored: Vec<(Option<String>, Option<u32>)> =
        inbox.messages().unwrap().into_iter().map(|m| (m.pop3_uidl, m.pop3_order)).collect();
    assert_eq!(stored[2], (Some("zz3".into()), Some(1)));
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("bob", "bobpw", &root, "maildir")
        .pop3_uidl_format("%g")
        .start();
    assert_eq!(pop3_uidls(dovecot.pop3_port(), "bob", "bobpw"), ["zz3", "UID-a1", "00000b2"]);
}

#[test]
fn crlf_storage_as_with_mail_save_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let options = mailstore::Options::default().with_line_endings(mailstore::LineEndings::Crlf);
    let maildir = Maildir::with_options(Location::maildir(&root), options);
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(8), None).unwrap();
    save(&mut inbox, 1, Flags::EMPTY, &[], 1_700_000_000, b"Subject: lf\n\nbare LF\n");
    save(&mut inbox, 2, Flags::EMPTY, &[], 1_700_000_000, b"Subject: crlf\r\n\r\nCRLF\r\nno end");
    inbox.commit().unwrap();
    let messages = inbox.messages().unwrap();
    assert!(messages.iter().all(|m| m.size == m.virtual_size));
    assert_eq!(
        // Without flags it is in new/, as Dovecot saves it.
        std::fs::read(root.join("new").join(&messages[0].file_name)).unwrap(),
        b"Subject: lf\r\n\r\nbare LF\r\n"
    );
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("bob", "bobpw", &root, "maildir")
        .start();
    RawImap::login(dovecot.imap_port(), "bob", "bobpw")
        .snapshot()
        .assert_same(&our_snapshot(&maildir));
}
