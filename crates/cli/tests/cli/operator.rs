//! The `dsync` binary as a tool in an operator's hands: usage errors, closed pipes, the man
//! page, doveadm letters it does not implement, the config file's refusals, and what it
//! checks before any work (the destination, the batch template, nesting).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{dsync, text};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

/// The bundled example Maildir (a small source that needs no server).
fn example() -> String {
    maildir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/Maildir"))
}

/// Runs dsync with a stdout pipe whose reader is already gone (`dsync … | head -1` once
/// head has exited).
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run dsync")
}

#[test]
fn a_closed_stdout_is_a_normal_end_for_every_verb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = maildir(&dir.path().join("Maildir"));
    let source = example();
    let cases: [&[&str]; 5] = [
        &["completions", "bash"],
        &["man"],
        &["mailbox", "list", &source],
        &["check", &source],
        &["backup", &source, &target],
    ];
    for args in cases {
        let run = with_closed_stdout(args);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {}", text(&run));
        assert_eq!(stderr(&run), "", "{args:?}: nothing to say about a reader that left");
    }
    // The backup itself was done, only its summary had nobody to read it.
    let verify = dsync(&["verify", &source, &target], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_missing_verb_is_a_usage_error() {
    for args in [&[][..], &["mailbox"][..]] {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(64), "{args:?}: {}", text(&run));
        assert!(stderr(&run).contains("Usage:"), "{args:?}: {}", text(&run));
    }
    // Help asked for is not an error.
    for args in [&["--help"][..], &["mailbox", "--help"][..], &["help"][..]] {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {}", text(&run));
    }
}

#[test]
fn man_pages_name_only_pages_that_exist_and_keep_the_tables() {
    let page = dsync(&["man"], None);
    assert_eq!(page.status.code(), Some(0), "{}", text(&page));
    let roff = String::from_utf8_lossy(&page.stdout);
    assert!(!roff.contains("dsync\\-help") && !roff.contains("dsync-help"), "{roff}");
    for section in ["LOCATIONS", "CERTIFICATES", "DOVECOT SETTINGS", "EXIT STATUS"] {
        assert!(roff.contains(&format!(".SH \"{section}\"\n.nf\n")), "{section}: {roff}");
    }
    // Each location keeps its own line (roff would otherwise run them into a paragraph).
    assert!(roff.lines().any(|l| l.starts_with("  imap://USER@HOST[:PORT]?tls=none")), "{roff}");

    let dir = tempfile::tempdir().expect("temp dir");
    let pages = dir.path().join("man1");
    let written = dsync(&["man", pages.to_str().expect("utf-8")], None);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .expect("pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    // Every page another page refers to was written.
    for name in &names {
        let roff = std::fs::read_to_string(pages.join(name)).expect("page");
        for reference in page_references(&roff) {
            let file = format!("{reference}.1");
            assert!(names.contains(&file), "{name} refers to {file}, not written: {names:?}");
        }
    }
    let backup = std::fs::read_to_string(pages.join("dsync-backup.1")).expect("backup page");
    assert!(backup.contains(".SH \"EXAMPLES\"\n.nf\n"), "{backup}");
}

/// The `dsync…(1)` pages a roff page names.
fn page_references(roff: &str) -> Vec<String> {
    let plain = roff.replace("\\-", "-");
    plain
        .match_indices("(1)")
        .filter_map(|(at, _)| {
            let before = &plain[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            name.starts_with("dsync").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn doveadm_letters_dsync_does_not_implement_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 7] = [
        (&["backup", "-N", "a", "b"], "-N (every namespace)"),
        (&["backup", "-g", "0123456789abcdef0123456789abcdef", "a", "b"], "-m NAME"),
        (&["sync", "-d", "a"], "mail_replica"),
        (&["backup", "-E", "a", "b"], "-E"),
        (&["backup", "-S", "/run/dovecot/doveadm-server", "a", "b"], "doveadm server"),
        (&["backup", "-U", "a", "b"], "replicator"),
        (&["import", "-N", "a", "b"], "-N"),
    ];
    for (args, reason) in cases {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(64), "{args:?}: {}", text(&run));
        let said = stderr(&run);
        assert!(said.starts_with("dsync: not supported: "), "{args:?}: {said}");
        assert!(said.contains(reason) && !said.contains("-- -"), "{args:?}: {said}");
    }
    // import -U is import's own option (the source user), still accepted.
    let dir = tempfile::tempdir().expect("temp dir");
    let import = dsync(
        &["import", "-U", "nobody", &example(), &maildir(&dir.path().join("Maildir")), "Old"],
        None,
    );
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
}

#[test]
fn a_password_in_the_config_file_is_refused_with_the_way_and_never_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("dsync.toml");
    for content in [
        "[defaults]\npassword = \"hunter2-secret\"\n",
        "[accounts.alice]\nsettings = { imapc_password = \"hunter2-secret\" }\n",
        // Not even valid TOML: the error must not quote the line either.
        "[defaults]\npassword = hunter2-secret\n",
    ] {
        std::fs::write(&config, content).expect("write config");
        let run = dsync(&["-c", config.to_str().expect("utf-8"), "backup", "a", "b"], None);
        assert_eq!(run.status.code(), Some(78), "{content}: {}", text(&run));
        let said = stderr(&run);
        assert!(!said.contains("hunter2"), "{content}: the password was printed: {said}");
        assert!(said.contains("line 2") || said.contains("password_file"), "{said}");
    }
    std::fs::write(&config, "[defaults]\npassword = \"hunter2-secret\"\n").expect("write");
    let run = dsync(&["-c", config.to_str().expect("utf-8"), "backup", "a", "b"], None);
    let said = stderr(&run);
    assert!(said.contains("passwords are not accepted"), "{said}");
    assert!(said.contains("password_file") && said.contains("password_env"), "{said}");
}
