//! Shards run at once on one machine against one Dovecot, started exactly as the README
//! shows (its `xargs` command and its Kubernetes Job's script, taken from README.md): every
//! user is migrated exactly once, the per-shard JSON reports together name every user
//! once, every user has a log, and a second round of shards finds nothing to do.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

const USERS: usize = 9;
const SHARDS: usize = 4;
const README: &str = include_str!("../../../../README.md");

fn user(index: usize) -> String {
    format!("user{index}@example.com")
}

fn password(index: usize) -> String {
    format!("pw-{index}-shard-secret")
}

/// The fenced block of README.md that contains `marker`, without its fences.
fn readme_block(marker: &str) -> String {
    let start = README.find(marker).expect("the README shows the example");
    let open = README[..start].rfind("```").expect("inside a fenced block");
    let body = &README[open..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_owned()
}

/// The README's placeholders made real: our server, destination and master user.
fn localise(command: &str, port: u16, root: &Path) -> String {
    let mut text = command.to_owned();
    for (from, to) in [
        ("imaps://%u@old.example.com", format!("imap://%u@127.0.0.1:{port}?tls=none")),
        (
            "maildir:/srv/mail/%d/%n/Maildir",
            format!("maildir:{}/mail/%d/%n/Maildir", root.display()),
        ),
        ("--master-user migrator", "--master-user master".to_owned()),
        ("/reports/", format!("{}/k8s/", root.display())),
    ] {
        text = text.replace(from, &to);
    }
    text
}

/// Reads every `shard-*.json` in `dir`: per user, the report entries naming them.
fn merged(dir: &Path) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut users: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for shard in 0..SHARDS {
        let path = dir.join(format!("shard-{shard}.json"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let report: serde_json::Value = serde_json::from_slice(&text).expect("JSON report");
        assert_eq!(report["exit_code"], 0, "{report}");
        for entry in report["users"].as_array().expect("users") {
            let name = entry["user"].as_str().expect("user").to_owned();
            users.entry(name).or_default().push(entry.clone());
        }
    }
    users
}

#[test]
fn shards_started_as_the_readme_shows_take_every_user_exactly_once() {
    let mut builder = Dovecot::builder();
    for index in 0..USERS {
        builder = builder.user(&user(index), &password(index));
    }
    let source = builder.start();
    let mut expected = Vec::new();
    for index in 0..USERS {
        let mut imap = RawImap::login(source.imap_port(), &user(index), &password(index));
        imap.create("Archive");
        for message in 0..=index {
            let number = u32::try_from(index * 10 + message).expect("small");
            imap.append("INBOX", &["\\Seen"], None, &fixtures::message(number, "hi", "shard"));
            imap.append("Archive", &[], None, &fixtures::message(number, "old", "kept"));
        }
        expected.push(imap.snapshot());
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let users: String = (0..USERS).map(|i| user(i) + "\n").collect();
    std::fs::write(root.join("users.txt"), users).expect("users.txt");
    std::fs::write(root.join("master.pw"), format!("{}\n", source.master_credentials().1))
        .expect("master.pw");
    // `dsync` as the README calls it: the binary under test first on PATH.
    let bin = Path::new(env!("CARGO_BIN_EXE_dsync")).parent().expect("bin dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    // Four shards at once through xargs, as the README shows.
    let xargs = localise(&readme_block("seq 0 3 | xargs"), source.imap_port(), root);
    let run = Command::new("sh")
        .arg("-c")
        .arg(&xargs)
        .current_dir(root)
        .env("PATH", &path)
        .env_remove("DSYNC_PASSWORD")
        .output()
        .expect("run the shards");
    assert!(run.status.success(), "{xargs}\n{}", String::from_utf8_lossy(&run.stderr));
    let reports = merged(&root.join("reports"));
    assert_eq!(reports.len(), USERS, "{reports:?}");
    for index in 0..USERS {
        let entries = &reports[&user(index)];
        assert_eq!(entries.len(), 1, "{} in more than one shard: {entries:?}", user(index));
        assert_eq!(entries[0]["status"], "ok", "{}", entries[0]);
        assert_eq!(entries[0]["messages"], 2 * (index + 1), "{}", entries[0]);
        let log = std::fs::read_to_string(root.join(format!("reports/logs/{}.log", user(index))))
            .expect("every user has a log");
        assert!(log.contains("finished: ok") && log.contains("timing: destination"), "{log}");
    }
    let mut reader = Dovecot::builder();
    for index in 0..USERS {
        let mail = root.join(format!("mail/example.com/user{index}/Maildir"));
        reader = reader.user_serving_copy(&user(index), &password(index), &mail, "maildir");
    }
    let reader = reader.start();
    for (index, expected) in expected.iter().enumerate() {
        let served: AccountSnapshot =
            RawImap::login(reader.imap_port(), &user(index), &password(index)).snapshot();
        expected.assert_same(&served);
    }

    // The Kubernetes Job's script, once per index, all at once: a catch-up round.
    let block = readme_block("kind: Job");
    let script: Vec<&str> = block
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("- |"))
        .skip(1)
        .take_while(|line| line.starts_with("              "))
        .map(|line| &line[14..])
        .collect();
    let script = localise(&script.join("\n"), source.imap_port(), root);
    assert!(script.contains("$JOB_COMPLETION_INDEX"), "{script}");
    std::fs::create_dir_all(root.join("k8s")).expect("mkdir");
    let pods: Vec<_> = (0..SHARDS)
        .map(|index| {
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .current_dir(root)
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", index.to_string())
                .env_remove("DSYNC_PASSWORD")
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a pod's script")
        })
        .collect();
    for pod in pods {
        let output = pod.wait_with_output().expect("wait");
        assert!(output.status.success(), "{script}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let again = merged(&root.join("k8s"));
    assert_eq!(again.len(), USERS);
    for (name, entries) in &again {
        assert_eq!(entries.len(), 1, "{name}: {entries:?}");
        assert_eq!(entries[0]["status"], "ok", "{}", entries[0]);
        assert_eq!(entries[0]["messages"], 0, "{name} was done already: {}", entries[0]);
    }

    // The README's jq merge, where jq is installed.
    if Path::new("/usr/bin/jq").exists() {
        let merge = readme_block("jq -s");
        let first = merge.lines().next().expect("the merge command");
        let run = Command::new("sh").arg("-c").arg(first).current_dir(root).output().expect("jq");
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let all: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("reports/all.json")).expect("all"))
                .expect("JSON");
        assert_eq!(all["users"].as_array().expect("users").len(), USERS, "{all}");
        assert_eq!(all["exit_codes"], serde_json::json!([0, 0, 0, 0]));
    } else {
        eprintln!("jq not installed: the README's merge command was not run");
    }
}
