//! The next mailbox's listing started ahead (`Storage::list_ahead`) against the real
//! Dovecot: a backup sends the EXAMINE and `UID FETCH 1:*` of the next mailbox before it
//! commits the one it copied, and every run ends exactly as a run that never lists ahead
//! (a wrapper that drops the hint): a next mailbox deleted meanwhile, an interrupt, a
//! message filter, a state-based re-run.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::filter::MessageFilter;
use dsync_core::{
    Capabilities, MailboxChanges, MailboxContents, MailboxInfo, MailboxName, MailboxPlan,
    MailboxReport, MailboxStatus, MessageListing, MessageSink, Mode, Observer, Report, Skip,
    Storage, StorageError, SyncOptions, Uid,
};
use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use crate::maildir;
use crate::traced_imap_source as imap_source;

/// What a run did, in order: the commands sent to the source, and `finished X` when the
/// engine reported mailbox X done (after its commit).
type Log = Arc<Mutex<Vec<String>>>;

/// What Dovecot serves from (a copy of) the Maildir at `path`.
fn served(path: &Path) -> AccountSnapshot {
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start();
    RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot()
}

/// Logs each finished mailbox; once `trigger` is planned, runs `act` (once) and, with
/// `interrupt`, asks the run to stop.
struct Watch<'a> {
    log: Log,
    trigger: Option<&'a str>,
    act: Option<Box<dyn FnMut() + 'a>>,
    interrupt: bool,
    fired: bool,
}

impl Observer for Watch<'_> {
    fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        if self.trigger == Some(plan.mailbox.to_string().as_str()) && !self.fired {
            self.fired = true;
            if let Some(act) = self.act.as_mut() {
                act();
            }
        }
    }

    fn mailbox_finished(&mut self, report: &MailboxReport) {
        self.log.lock().expect("log").push(format!("finished {}", report.mailbox));
    }

    fn interrupted(&mut self) -> bool {
        self.interrupt && self.fired
    }
}

/// The source as a storage that never lists ahead: everything else is forwarded, so a run
/// through it is a run before `list_ahead` existed.
struct NoAhead(ImapStorage);

impl Storage for NoAhead {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        self.0.mailboxes()
    }
    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        self.0.subscriptions()
    }
    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        self.0.status(mailbox)
    }
    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        self.0.changes_since(mailbox, token)
    }
    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        self.0.contents(mailbox)
    }
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        self.0.listing(mailbox)
    }
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.0.fetch(mailbox, uids, sink)
    }
    fn take_skipped(&mut self) -> Vec<Skip> {
        self.0.take_skipped()
    }
    fn take_warnings(&mut self) -> Vec<String> {
        self.0.take_warnings()
    }
    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, String>, StorageError> {
        self.0.header_hashes(mailbox, uids)
    }
}

/// A run's outcome as far as a caller can tell: totals, per-mailbox reports, failures,
/// warnings, skips.
fn outcome(report: &Report) -> String {
    let failures: Vec<String> =
        report.failures.iter().map(|failure| without_timing(&failure.to_string())).collect();
    format!(
        "{}\n{:?}\n{failures:?}\n{:?}\n{}",
        report.totals(),
        report.mailboxes,
        report.warnings,
        report.skipped.len()
    )
}

/// One scenario, run once listing ahead and once through [`NoAhead`], each on a fresh
/// copy of the source account made by `setup`: both must end alike (report, the error
/// that stopped the run if one did, and what Dovecot serves from the destination).
/// Returns the log of the run that lists ahead, its report and its stop.
struct Scenario<'a> {
    setup: &'a dyn Fn(&mut RawImap),
    options: SyncOptions,
    trigger: Option<&'a str>,
    /// Done to the source (through this login) when `trigger` is planned.
    act: Option<&'a dyn Fn(&mut RawImap)>,
    interrupt: bool,
    /// A run before this one (same options, no trigger), whose state this one starts from,
    /// with changes made in between.
    rerun_after: Option<&'a dyn Fn(&mut RawImap)>,
}

fn run_both(scenario: &Scenario<'_>) -> (Vec<String>, Report, Option<String>) {
    let mut results = Vec::new();
    for ahead in [true, false] {
        let dovecot = Dovecot::builder().user("alice", "alicepw").start();
        let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
        (scenario.setup)(&mut imap);
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("Maildir");
        let mut options = scenario.options.clone();
        if let Some(change) = scenario.rerun_after {
            let log = Log::default();
            let first = dsync_core::run(
                &options,
                &mut imap_source(&dovecot, &log),
                &mut maildir(&destination),
                &mut dsync_core::NoObserver,
            )
            .expect("first run");
            change(&mut imap);
            options = options.state(first.state);
        }
        let log = Log::default();
        let mut other = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
        let act = scenario.act.map(|act| Box::new(move || act(&mut other)) as Box<dyn FnMut()>);
        let mut watch = Watch {
            log: Arc::clone(&log),
            trigger: scenario.trigger,
            act,
            interrupt: scenario.interrupt,
            fired: false,
        };
        let source = imap_source(&dovecot, &log);
        let report = if ahead {
            dsync_core::run(&options, &mut { source }, &mut maildir(&destination), &mut watch)
        } else {
            dsync_core::run(&options, &mut NoAhead(source), &mut maildir(&destination), &mut watch)
        };
        let (report, stopped) = match report {
            Ok(report) => (report, None),
            Err(failed) => (*failed.report, Some(without_timing(&failed.error.to_string()))),
        };
        let log = log.lock().expect("log").clone();
        // Each run has its own source server, with UIDVALIDITYs of its own: compared
        // apart from them.
        let served = destination.exists().then(|| {
            let mut served = served(&destination);
            for mailbox in served.mailboxes.values_mut() {
                mailbox.uid_validity = 0;
            }
            served
        });
        results.push((log, report, stopped, served));
    }
    let (_, no_report, no_stopped, no_served) = results.pop().expect("run without");
    let (log, report, stopped, served) = results.pop().expect("run with");
    assert_eq!(outcome(&report), outcome(&no_report), "the runs ended differently");
    assert_eq!(stopped, no_stopped, "the runs stopped differently");
    match (&served, &no_served) {
        (Some(served), Some(no_served)) => served.assert_same(no_served),
        (None, None) => {}
        _ => panic!("one run made the destination, the other did not"),
    }
    (log, report, stopped)
}

/// `error` without the timing Dovecot appends to a tagged answer, `(0.001 + 0.000 secs)`:
/// its number of terms and its figures change from run to run.
fn without_timing(error: &str) -> String {
    match error.rfind(" (") {
        Some(start) if error[start..].trim_end_matches('.').ends_with("secs)") => {
            let tail = &error[start..];
            let after = tail.find("secs)").map_or(tail.len(), |end| end + "secs)".len());
            format!("{}{}", &error[..start], &tail[after..])
        }
        _ => error.to_owned(),
    }
}

#[test]
fn dovecot_timings_are_left_out_of_compared_errors() {
    assert_eq!(
        without_timing("refused EXAMINE: Mailbox doesn't exist: B (0.001 + 0.000 + 0.001 secs)."),
        without_timing("refused EXAMINE: Mailbox doesn't exist: B (0.002 + 0.000 secs)."),
    );
    assert_eq!(without_timing("no timing (here)"), "no timing (here)");
}

/// The position of the first logged line that starts with `prefix`.
fn position(log: &[String], prefix: &str) -> Option<usize> {
    log.iter().position(|line| line.starts_with(prefix))
}

/// The EXAMINE commands sent, by mailbox name as sent.
fn examined(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|line| line.split_once(" EXAMINE ").map(|(_, name)| name.trim().to_owned()))
        .collect()
}

fn three_folders(imap: &mut RawImap) {
    for (folder, count) in [("A", 3), ("B", 2), ("C", 4)] {
        imap.create(folder);
        for index in 0..count {
            let message = fixtures::message(index, &format!("{folder} {index}"), "body");
            imap.append(folder, &["\\Seen"], Some("07-Jul-2024 10:00:00 +0000"), &message);
        }
    }
}

#[test]
fn the_next_listing_is_sent_before_the_copied_mailbox_is_committed() {
    let scenario = Scenario {
        setup: &fixtures::populate_standard,
        options: SyncOptions::new(Mode::Backup),
        trigger: None,
        act: None,
        interrupt: false,
        rerun_after: None,
    };
    let (log, report, _) = run_both(&scenario);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // Each mailbox copied (but the last): the EXAMINE of the mailbox after it, with its
    // listing, went out right behind the copy's body FETCH, before the mailbox was
    // committed and reported.
    let copied: Vec<String> =
        report.mailboxes.iter().filter(|m| m.saved > 0).map(|m| m.mailbox.to_string()).collect();
    let mut ahead = 0;
    for (index, line) in log.iter().enumerate() {
        let Some(name) = line.strip_prefix("finished ") else { continue };
        if !copied.iter().any(|c| c == name)
            || log[index..].iter().all(|l| !l.contains(" EXAMINE "))
        {
            continue; // nothing fetched, or nothing listed after it
        }
        let fetch = log[..index]
            .iter()
            .rposition(|l| l.contains("BODY.PEEK[]"))
            .unwrap_or_else(|| panic!("no body fetch before {line}: {log:#?}"));
        assert!(log[fetch + 1].contains(" EXAMINE "), "{name}: {log:#?}");
        assert!(log[fetch + 2].contains("UID FETCH 1:* (UID FLAGS"), "{name}: {log:#?}");
        ahead += 1;
    }
    assert!(ahead >= 5, "{ahead} listings ahead: {log:#?}");
}

#[test]
fn a_next_mailbox_deleted_meanwhile_fails_as_without_listing_ahead() {
    let scenario = Scenario {
        setup: &three_folders,
        options: SyncOptions::new(Mode::Backup),
        trigger: Some("A"),
        act: Some(&|imap: &mut RawImap| {
            imap.command_ok("DELETE B");
        }),
        interrupt: false,
        rerun_after: None,
    };
    let (log, report, stopped) = run_both(&scenario);
    // B's EXAMINE went out ahead and failed; the run stops there, as it does when the
    // EXAMINE is sent when B's turn comes.
    let finished = position(&log, "finished A").expect("A finished");
    assert!(examined(&log[..finished]).contains(&"B".to_owned()), "{log:#?}");
    let stopped = stopped.expect("the run stops");
    assert!(stopped.contains("EXAMINE") && stopped.contains('B'), "{stopped}");
    assert_eq!(report.mailboxes.len(), 1, "{}", outcome(&report));
}

#[test]
fn an_interrupt_sends_nothing_ahead_and_stops_as_before() {
    let scenario = Scenario {
        setup: &three_folders,
        options: SyncOptions::new(Mode::Backup),
        trigger: Some("A"),
        act: None,
        interrupt: true,
        rerun_after: None,
    };
    let (log, _, _) = run_both(&scenario);
    assert_eq!(examined(&log), ["A"], "{log:#?}");
}

#[test]
fn a_message_filter_run_lists_ahead_and_ends_as_before() {
    // From 2024-07-10 on: some of each folder's messages are left out.
    let filter = MessageFilter { received_since: Some(1_720_569_600), ..MessageFilter::default() };
    let scenario = Scenario {
        setup: &fixtures::populate_standard,
        options: SyncOptions::new(Mode::Backup).message_filter(filter),
        trigger: None,
        act: None,
        interrupt: false,
        rerun_after: None,
    };
    run_both(&scenario);
}

#[test]
fn a_state_based_rerun_lists_nothing_ahead_and_ends_as_before() {
    let scenario = Scenario {
        setup: &fixtures::populate_standard,
        options: SyncOptions::new(Mode::Backup),
        trigger: None,
        act: None,
        interrupt: false,
        rerun_after: Some(&|imap: &mut RawImap| {
            imap.store("INBOX", "1", "+FLAGS (\\Answered)");
            let date = Some("20-Jul-2024 10:00:00 +0000");
            imap.append("Archive", &[], date, &fixtures::message(300, "new", "x"));
            imap.append("Sent", &[], date, &fixtures::message(301, "new", "y"));
        }),
    };
    let (log, report, _) = run_both(&scenario);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // Only the changes are asked for: no whole listing, so none ahead either.
    assert!(
        !log.iter().any(|l| l.contains("UID FETCH 1:* (UID FLAGS") && !l.contains("CHANGEDSINCE")),
        "{log:#?}"
    );
}

/// A folder of 1 100 messages (two body FETCH pieces of the adapter's 1 000) followed by
/// another: the next listing goes behind the last piece only.
fn a_big_folder_first(imap: &mut RawImap) {
    imap.create("A");
    imap.create("B");
    let date = Some("07-Jul-2024 10:00:00 +0000");
    for index in 0..1_100 {
        imap.append("A", &[], date, &fixtures::message(index, "big", "x"));
    }
    imap.append("B", &["\\Seen"], date, &fixtures::message(0, "B", "y"));
}

#[test]
fn a_copy_in_pieces_sends_the_next_listing_behind_its_last_piece() {
    let scenario = Scenario {
        setup: &a_big_folder_first,
        options: SyncOptions::new(Mode::Backup),
        trigger: None,
        act: None,
        interrupt: false,
        rerun_after: None,
    };
    let (log, report, _) = run_both(&scenario);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let fetches: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("BODY.PEEK[]"))
        .map(|(index, _)| index)
        .collect();
    let examine_b = log.iter().position(|l| l.ends_with(" EXAMINE B")).expect("B examined");
    // A's two pieces, then B's EXAMINE right behind the second (not the first).
    assert!(fetches.len() >= 2, "{log:#?}");
    assert_eq!(examine_b, fetches[1] + 1, "{log:#?}");
    assert!(examine_b < position(&log, "finished A").expect("A finished"));
}

#[test]
fn a_copy_in_several_batches_sends_the_next_listing_before_the_commit() {
    let scenario = Scenario {
        setup: &three_folders,
        options: SyncOptions::new(Mode::Backup).save_batch(2),
        trigger: None,
        act: None,
        interrupt: false,
        rerun_after: None,
    };
    let (log, report, _) = run_both(&scenario);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // A (3 messages) takes two fetches of 2 and 1: B's EXAMINE follows the last of them
    // (not the first, which would select B under A's second fetch), before A is reported.
    let finished = position(&log, "finished A").expect("A finished");
    let examine_b = log.iter().position(|l| l.ends_with(" EXAMINE B")).expect("B examined");
    let a_fetches: Vec<usize> = log[..examine_b]
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("BODY.PEEK[]"))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(a_fetches.len(), 2, "{log:#?}");
    assert!(examine_b < finished, "{log:#?}");
    assert_eq!(examined(&log).iter().filter(|name| *name == "A").count(), 1, "{log:#?}");
}
