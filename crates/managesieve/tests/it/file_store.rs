//! Our file store against Pigeonhole: what we write, managesieved serves byte for byte
//! with the same active script; what managesieved wrote, we read back equal.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use managesieve::{ActiveScript, FileStore, ScriptName};

use crate::{login, start};

fn name(text: &str) -> ScriptName {
    ScriptName::new(text).expect("valid name")
}

fn scripts() -> Vec<(ScriptName, Vec<u8>)> {
    vec![
        (name("Spam filter (Müll)"), "require \"fileinto\";\r\n# → Müll\r\nif header :contains \"X-Spam\" \"yes\" { fileinto \"Müll\"; }\r\n".as_bytes().to_vec()),
        (name("away"), b"require \"vacation\";\nvacation \"Away.\";\n".to_vec()),
        (name("keep"), b"keep;".to_vec()),
    ]
}

fn home_store(home: &Path) -> FileStore {
    FileStore::parse_location("file:~/sieve;active=~/.dovecot.sieve", Some(home)).expect("location")
}

#[test]
fn managesieved_serves_what_we_wrote() {
    let dovecot = start();
    let home = dovecot.home("alice");
    let store = home_store(&home);
    let modified = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (name, bytes) in scripts() {
        store.write(&name, bytes.as_slice(), Some(modified)).expect("write");
    }
    store.activate(Some(&name("away"))).expect("activate");

    // Pigeonhole's layout: NAME.sieve 0600, tmp/ left empty, a relative link.
    let file = home.join("sieve/Spam filter (Müll).sieve");
    let metadata = std::fs::metadata(&file).expect("script file");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(metadata.modified().expect("mtime"), modified);
    // Written as root into the user's home: the user's, as if Pigeonhole had made it.
    let owner = std::fs::metadata(&home).expect("home").uid();
    assert_eq!(
        (metadata.uid(), std::fs::metadata(home.join("sieve")).expect("dir").uid()),
        (owner, owner)
    );
    assert_eq!(std::fs::read_dir(home.join("sieve/tmp")).expect("tmp/").count(), 0);
    let link = std::fs::read_link(home.join(".dovecot.sieve")).expect("active link");
    assert_eq!(link, Path::new("sieve/away.sieve"));

    let mut session = login(&dovecot, "alice", "alicepw");
    let mut listed = session.list_scripts().expect("list");
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let shown: Vec<(String, bool)> =
        listed.iter().map(|s| (s.name.to_string(), s.active)).collect();
    assert_eq!(
        shown,
        [("Spam filter (Müll)".into(), false), ("away".into(), true), ("keep".into(), false)]
    );
    for (name, bytes) in scripts() {
        assert_eq!(session.get_script(&name).expect("get"), bytes, "{name}");
    }
    let doveadm = dovecot.doveadm_ok(&["sieve", "list", "-u", "alice"]);
    assert!(doveadm.lines().any(|l| l == "away ACTIVE"), "{doveadm}");

    // Re-activation, deactivation and deletion, each seen by Pigeonhole.
    store.activate(Some(&name("keep"))).expect("activate keep");
    assert!(
        session.list_scripts().expect("list").iter().any(|s| s.active && s.name.as_str() == "keep")
    );
    assert!(store.delete(&name("keep")).is_err(), "the active script stays");
    store.activate(None).expect("deactivate");
    store.delete(&name("keep")).expect("delete");
    let listed = session.list_scripts().expect("list");
    assert!(listed.iter().all(|s| !s.active) && listed.len() == 2, "{listed:?}");
}

#[test]
fn we_read_what_managesieved_wrote() {
    let dovecot = start();
    let mut session = login(&dovecot, "alice", "alicepw");
    for (name, bytes) in scripts() {
        session.put_script(&name, &bytes).expect("put");
    }
    session.set_active(Some(&name("Spam filter (Müll)"))).expect("activate");
    let store = home_store(&dovecot.home("alice"));
    let listed: Vec<ScriptName> = store.list().expect("list").into_iter().map(|s| s.name).collect();
    let mut expected: Vec<ScriptName> = scripts().into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for (name, bytes) in scripts() {
        assert_eq!(store.read(&name).expect("read"), bytes);
    }
    assert_eq!(store.active().expect("active"), ActiveScript::Script(name("Spam filter (Müll)")));
}

#[test]
fn a_legacy_active_file_is_rescued_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = home_store(dir.path());
    std::fs::write(dir.path().join(".dovecot.sieve"), b"discard;\n").expect("legacy");
    assert_eq!(store.active().expect("active"), ActiveScript::Singular);
    assert!(store.list().expect("list").is_empty(), "the legacy file is not a listed script");
    store.write(&name("new"), b"keep;\n", None).expect("write");
    store.activate(Some(&name("new"))).expect("activate");
    assert_eq!(store.read(&name("dovecot.orig")).expect("rescued"), b"discard;\n");
    assert_eq!(store.active().expect("active"), ActiveScript::Script(name("new")));
    // A link pointing elsewhere is not an active script of this store.
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("other")).expect("link");
    let foreign = FileStore::new(dir.path().join("sieve"), Some(dir.path().join("other")));
    assert!(matches!(foreign.active().expect("active"), ActiveScript::Foreign(_)));
}
