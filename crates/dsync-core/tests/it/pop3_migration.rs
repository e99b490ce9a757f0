//! The pop3_migration matcher against the real Dovecot: a source whose POP3 shows stored
//! UIDLs (`P`) in a stored order (`O`) and a non-default `pop3_uidl_format`, read over IMAP
//! with `imapc` and over POP3 with `pop3c`. Every IMAP UID must get exactly the UIDL and
//! position Dovecot's POP3 shows for that message — identity checked by comparing the
//! bytes IMAP and POP3 serve.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use dsync_core::pop3_migration::{
    ImapMessage, MatchOptions, MatchedBy, Matcher, MissingPolicy, Pop3Message,
};
use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet, Uid};
use pop3c::MessageNumber;
use testkit::{Dovecot, RawImap, RawPop3};

use crate::pop3_source::{Pop3Source, message, stored_pop3_fields};

/// Collects one body section per UID.
#[derive(Default)]
struct Bodies {
    by_seq: HashMap<u32, Vec<u8>>,
    by_uid: BTreeMap<u32, Vec<u8>>,
}

impl FetchHandler for Bodies {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        self.by_seq.insert(start.fetch.seq, bytes);
        Ok(())
    }
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        if let (Some(uid), Some(bytes)) = (fetch.uid, self.by_seq.remove(&fetch.seq)) {
            self.by_uid.insert(uid.get(), bytes);
        }
        Ok(())
    }
}

#[test]
fn matcher_gives_each_uid_the_uidl_dovecot_pop3_shows() {
    // 1.-2. A source mailbox with stored P/O fields, served with %08Xv%08Xu.
    let source = Pop3Source::start("%08Xv%08Xu");
    let dovecot = &source.dovecot;

    // Dovecot's own views, through the independent oracles.
    let mut oracle_imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let (_, _, uid_validity) = oracle_imap.status("INBOX");
    let imap_bodies: BTreeMap<u32, Vec<u8>> =
        oracle_imap.messages("INBOX").into_iter().map(|m| (m.uid, m.body)).collect();
    oracle_imap.logout();
    let mut oracle_pop3 = RawPop3::login(dovecot.pop3_port(), "alice", "alicepw");
    let pop3_uidls = oracle_pop3.uidl();
    let pop3_bodies: Vec<Vec<u8>> = pop3_uidls.iter().map(|(n, _)| oracle_pop3.retr(*n)).collect();
    oracle_pop3.quit();

    // What Dovecot's POP3 shows: P overrides the format, O gives the order, the rest use
    // %08Xv%08Xu (lower-case hex).
    let fields = stored_pop3_fields();
    let mut shown_order: Vec<(u32, String)> = fields
        .iter()
        .map(|(&uid, &(uidl, order))| {
            let uidl = uidl.map_or_else(|| format!("{uid_validity:08x}{uid:08x}"), str::to_owned);
            (order, uidl)
        })
        .collect();
    shown_order.sort();
    let expected_listing: Vec<(u32, String)> = shown_order.into_iter().collect();
    assert_eq!(pop3_uidls, expected_listing, "Dovecot serves the stored UIDLs in the stored order");

    // 3. The IMAP view with imapc, the POP3 view with pop3c.
    let imap_options =
        imapc::ConnectOptions::new("127.0.0.1", dovecot.imap_port(), imapc::Security::Plain);
    let mut imap = imapc::Client::connect(&imap_options)
        .expect("imap connect")
        .login(&imapc::Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("imap login");
    imap.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let imap_view: Vec<ImapMessage> = imap
        .fetch_metadata_all()
        .expect("metadata")
        .iter()
        .map(|m| ImapMessage { uid: m.uid, size: m.rfc822_size, known_uidl: None })
        .collect();
    let pop3_options =
        pop3c::ConnectOptions::new("127.0.0.1", dovecot.pop3_port(), pop3c::Security::Plain);
    let mut pop3 = pop3c::Client::connect(&pop3_options)
        .expect("pop3 connect")
        .login(&pop3c::Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("pop3 login");
    let pop3_view: Vec<Pop3Message> = pop3
        .messages()
        .expect("LIST + UIDL")
        .into_iter()
        .map(|m| Pop3Message { number: m.number.get(), size: m.size, uidl: m.uidl.into_string() })
        .collect();

    // 4. Match, fetching headers only for what the size pass leaves.
    let mut matcher = Matcher::new(imap_view.clone(), pop3_view.clone(), MatchOptions::default());
    let needed = matcher.headers_needed();
    // POP3 #1 lines up with UID 1; POP3 #2 and #3 share a size, so headers decide from there.
    assert_eq!(needed.imap_uids, (2..=9).collect::<Vec<u32>>());
    assert_eq!(needed.pop3_numbers, (2..=9).collect::<Vec<u32>>());
    let uids = SequenceSet::from_uids(needed.imap_uids.iter().filter_map(|&u| Uid::new(u)));
    let header = FetchItem::Body { section: "HEADER".into(), partial: None, peek: true };
    let mut headers = Bodies::default();
    imap.uid_fetch(&uids, &[FetchItem::Uid, header], &mut headers).expect("BODY.PEEK[HEADER]");
    for (uid, bytes) in &headers.by_uid {
        let hash = matcher.add_imap_header(*uid, bytes).expect("known UID");
        assert!(hash.has_end_of_header);
    }
    let numbers: Vec<MessageNumber> =
        needed.pop3_numbers.iter().filter_map(|&n| MessageNumber::new(n)).collect();
    pop3.top_many(&numbers, 0, &mut |number: MessageNumber, body: &mut dyn Read| {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        let hash = matcher.add_pop3_header(number.get(), &bytes).expect("known number");
        assert!(hash.has_end_of_header);
        Ok(())
    })
    .expect("TOP n 0");
    assert!(matcher.headers_needed().is_empty());
    let outcome = matcher.finish();
    outcome.check(MissingPolicy::default()).expect("every POP3 message matched");
    assert!(outcome.all_imap_matched() && outcome.assignments.len() == 9);

    // 5. Each UID got exactly the UIDL and position Dovecot's POP3 shows for that message.
    for assignment in &outcome.assignments {
        let (stored_uidl, stored_order) = fields[&assignment.uid];
        let expected_uidl = stored_uidl
            .map_or_else(|| format!("{uid_validity:08x}{:08x}", assignment.uid), str::to_owned);
        assert_eq!(
            (assignment.uidl.as_str(), assignment.order),
            (expected_uidl.as_str(), stored_order),
            "UID {}",
            assignment.uid
        );
        // Identity through the bytes: POP3 message `order` is this IMAP message.
        let position = assignment.order as usize - 1;
        assert_eq!(pop3_uidls[position].1, assignment.uidl);
        assert!(
            pop3_bodies[position] == imap_bodies[&assignment.uid],
            "UID {} and POP3 #{} are different messages",
            assignment.uid,
            assignment.order
        );
    }
    let by_size: Vec<u32> = outcome
        .assignments
        .iter()
        .filter(|a| a.matched_by == MatchedBy::OrderAndSize)
        .map(|a| a.uid)
        .collect();
    assert_eq!(by_size, [1]);

    // Skipping the size pass gives the same answer from headers alone.
    let mut matcher = Matcher::new(imap_view, pop3_view, MatchOptions { skip_size_check: true });
    assert_eq!(matcher.headers_needed().imap_uids.len(), 9);
    let all = SequenceSet::from_uids((1..=9).filter_map(Uid::new));
    let mut headers = Bodies::default();
    let header = FetchItem::Body { section: "HEADER".into(), partial: None, peek: true };
    imap.uid_fetch(&all, &[FetchItem::Uid, header], &mut headers).expect("headers");
    for (uid, bytes) in &headers.by_uid {
        matcher.add_imap_header(*uid, bytes);
    }
    let numbers: Vec<MessageNumber> = (1..=9).filter_map(MessageNumber::new).collect();
    pop3.top_many(&numbers, 0, &mut |number: MessageNumber, body: &mut dyn Read| {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        matcher.add_pop3_header(number.get(), &bytes);
        Ok(())
    })
    .expect("TOP");
    let again = matcher.finish();
    let strip = |o: &dsync_core::pop3_migration::MatchOutcome| -> Vec<(u32, String, u32)> {
        o.assignments.iter().map(|a| (a.uid, a.uidl.clone(), a.order)).collect()
    };
    assert_eq!(strip(&again), strip(&outcome));
    pop3.quit().expect("QUIT");
    imap.logout().expect("LOGOUT");
}

/// With `pop3_uidl_format = %g` a Maildir's UIDL is the message's base file name; in UID
/// order with distinct sizes the order-and-size pass matches everything and no header is
/// fetched at all.
#[test]
fn guid_uidls_in_uid_order_need_no_headers() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").pop3_uidl_format("%g").start();
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    for (id, size) in [("a", 200), ("b", 400), ("c", 600), ("d", 800)] {
        raw.append("INBOX", &[], None, &message(id, size));
    }
    raw.logout();

    let imap_options =
        imapc::ConnectOptions::new("127.0.0.1", dovecot.imap_port(), imapc::Security::Plain);
    let mut imap = imapc::Client::connect(&imap_options)
        .expect("connect")
        .login(&imapc::Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("login");
    imap.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let imap_view: Vec<ImapMessage> = imap
        .fetch_metadata_all()
        .expect("metadata")
        .iter()
        .map(|m| ImapMessage { uid: m.uid, size: m.rfc822_size, known_uidl: None })
        .collect();
    imap.logout().expect("LOGOUT");
    let pop3_options =
        pop3c::ConnectOptions::new("127.0.0.1", dovecot.pop3_port(), pop3c::Security::Plain);
    let mut pop3 = pop3c::Client::connect(&pop3_options)
        .expect("connect")
        .login(&pop3c::Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("login");
    let pop3_view: Vec<Pop3Message> = pop3
        .messages()
        .expect("LIST + UIDL")
        .into_iter()
        .map(|m| Pop3Message { number: m.number.get(), size: m.size, uidl: m.uidl.into_string() })
        .collect();
    pop3.quit().expect("QUIT");

    let matcher = Matcher::new(imap_view, pop3_view, MatchOptions::default());
    assert!(matcher.headers_needed().is_empty());
    let outcome = matcher.finish();
    outcome.check(MissingPolicy::default()).expect("all matched");
    let mut base_names: Vec<String> = ["cur", "new"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(dovecot.home("alice").join("Maildir").join(sub)).expect("dir")
        })
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .split(":2,")
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    base_names.sort();
    let mut uidls: Vec<String> = outcome.assignments.iter().map(|a| a.uidl.clone()).collect();
    uidls.sort();
    assert_eq!(uidls, base_names, "%g UIDLs are the Maildir base names");
    let orders: Vec<(u32, u32)> = outcome.assignments.iter().map(|a| (a.uid, a.order)).collect();
    assert_eq!(orders, [(1, 1), (2, 2), (3, 3), (4, 4)]);
}
