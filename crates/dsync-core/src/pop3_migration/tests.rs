//! Known answers for each pass, and a model property: a random mailbox whose POP3 view has
//! Dovecot-like header differences, equal sizes and a different order is matched exactly.

use proptest::prelude::*;

use super::*;

fn imap(uid: u32, size: u64) -> ImapMessage {
    ImapMessage { uid, size, known_uidl: None }
}

fn pop3(number: u32, size: u64, uidl: &str) -> Pop3Message {
    Pop3Message { number, size, uidl: uidl.into() }
}

fn header(id: &str) -> Vec<u8> {
    format!("Message-ID: <{id}@example.com>\r\nSubject: {id}\r\n\r\n").into_bytes()
}

/// (uid, uidl, order, how) of every assignment.
fn pairs(outcome: &MatchOutcome) -> Vec<(u32, &str, u32, MatchedBy)> {
    outcome.assignments.iter().map(|a| (a.uid, a.uidl.as_str(), a.order, a.matched_by)).collect()
}

#[test]
fn same_order_and_distinct_sizes_need_no_header() {
    let matcher = Matcher::new(
        [imap(3, 100), imap(5, 200), imap(9, 150)],
        [pop3(1, 100, "u3"), pop3(2, 200, "u5"), pop3(3, 150, "u9")],
        MatchOptions::default(),
    );
    assert!(matcher.headers_needed().is_empty());
    let outcome = matcher.finish();
    use MatchedBy::OrderAndSize as S;
    assert_eq!(pairs(&outcome), [(3, "u3", 1, S), (5, "u5", 2, S), (9, "u9", 3, S)]);
    assert!(outcome.check(MissingPolicy::default()).is_ok() && outcome.all_imap_matched());
}

#[test]
fn equal_consecutive_sizes_stop_the_size_pass() {
    // POP3 #2 and #3 have one size: from #2 on, headers decide.
    let mut matcher = Matcher::new(
        [imap(1, 10), imap(2, 20), imap(3, 20), imap(4, 30)],
        [pop3(1, 10, "a"), pop3(2, 20, "c"), pop3(3, 20, "b"), pop3(4, 30, "d")],
        MatchOptions::default(),
    );
    let needed = matcher.headers_needed();
    assert_eq!(needed.imap_uids, [2, 3, 4]);
    assert_eq!(needed.pop3_numbers, [2, 3, 4]);
    for (uid, id) in [(2, "b"), (3, "c"), (4, "d")] {
        assert!(matcher.add_imap_header(uid, &header(id)).is_some_and(|h| h.has_end_of_header));
    }
    for (number, id) in [(2, "c"), (3, "b"), (4, "d")] {
        matcher.add_pop3_header(number, &header(id));
    }
    assert!(matcher.headers_needed().is_empty());
    let outcome = matcher.finish();
    use MatchedBy::{HeaderHash as H, OrderAndSize as S};
    assert_eq!(pairs(&outcome), [(1, "a", 1, S), (2, "b", 3, H), (3, "c", 2, H), (4, "d", 4, H)]);
}

#[test]
fn extra_messages_on_either_side_are_reported() {
    // POP3 has a message IMAP lacks (delivered after the IMAP listing).
    let mut matcher = Matcher::new(
        [imap(1, 10), imap(2, 20)],
        [pop3(1, 10, "a"), pop3(2, 20, "b"), pop3(3, 30, "new")],
        MatchOptions::default(),
    );
    assert_eq!(matcher.headers_needed().pop3_numbers, [3]);
    assert!(matcher.headers_needed().imap_uids.is_empty());
    matcher.add_pop3_header(3, &header("new"));
    let outcome = matcher.finish();
    assert_eq!(outcome.assignments.len(), 2);
    assert_eq!(outcome.unmatched_pop3, [pop3(3, 30, "new")]);
    let error = outcome.check(MissingPolicy::default()).expect_err("a POP3 UIDL would be lost");
    assert!(error.all_imap_found);
    assert_eq!(
        error.to_string(),
        "1 POP3 messages have no matching IMAP messages (first POP3 msg 3 UIDL new) - all IMAP \
         messages were found (POP3 contains more than IMAP INBOX)"
    );
    let extra = MissingPolicy { ignore_extra_uidls: true, ..MissingPolicy::default() };
    assert!(outcome.check(extra).is_ok());

    // IMAP has a message POP3 lacks (a POP3 client deleted it): it keeps no POP3 identity.
    let mut matcher = Matcher::new(
        [imap(1, 10), imap(2, 25), imap(3, 30)],
        [pop3(1, 10, "a"), pop3(2, 30, "c")],
        MatchOptions::default(),
    );
    let needed = matcher.headers_needed();
    assert_eq!(
        (needed.imap_uids.as_slice(), needed.pop3_numbers.as_slice()),
        (&[2, 3][..], &[2][..])
    );
    matcher.add_imap_header(2, &header("b"));
    matcher.add_imap_header(3, &header("c"));
    matcher.add_pop3_header(2, &header("c"));
    let outcome = matcher.finish();
    assert_eq!(outcome.unmatched_imap, [2]);
    assert_eq!(outcome.get(3).map(|a| (a.uidl.as_str(), a.order)), Some(("c", 2)));
    assert!(outcome.check(MissingPolicy::default()).is_ok());
}

#[test]
fn unmatched_pop3_fails_unless_ignored() {
    let mut matcher = Matcher::new([imap(1, 10)], [pop3(1, 11, "x")], MatchOptions::default());
    matcher.add_imap_header(1, &header("one"));
    matcher.add_pop3_header(1, &header("other"));
    let outcome = matcher.finish();
    let error = outcome.check(MissingPolicy::default()).expect_err("missing");
    assert!(!error.all_imap_found && error.first_number == 1);
    assert!(
        outcome.check(MissingPolicy { ignore_extra_uidls: true, ..Default::default() }).is_err()
    );
    assert!(
        outcome.check(MissingPolicy { ignore_missing_uidls: true, ..Default::default() }).is_ok()
    );
    assert_eq!(outcome.unmatched_error(), Some(error));
}

#[test]
fn known_uidls_join_first_and_break_the_size_pass_on_disagreement() {
    let with_known =
        |uid, size, uidl: &str| ImapMessage { uid, size, known_uidl: Some(uidl.into()) };
    // UID 1 knows its UIDL; UID 2 matches by size; UID 3 knows a UIDL at another position.
    let mut matcher = Matcher::new(
        [with_known(1, 10, "a"), imap(2, 20), with_known(3, 99, "d"), imap(4, 40)],
        [pop3(1, 10, "a"), pop3(2, 20, "b"), pop3(3, 40, "c"), pop3(4, 99, "d")],
        MatchOptions::default(),
    );
    let needed = matcher.headers_needed();
    assert_eq!((needed.imap_uids.as_slice(), needed.pop3_numbers.as_slice()), (&[4][..], &[3][..]));
    matcher.add_imap_header(4, &header("c"));
    matcher.add_pop3_header(3, &header("c"));
    use MatchedBy::{HeaderHash as H, KnownUidl as K, OrderAndSize as S};
    assert_eq!(
        pairs(&matcher.finish()),
        [(1, "a", 1, K), (2, "b", 2, S), (3, "d", 4, K), (4, "c", 3, H)]
    );

    // A known UIDL POP3 no longer has: that message stays unmatched.
    let outcome = Matcher::new([with_known(1, 10, "gone")], [], MatchOptions::default()).finish();
    assert_eq!(outcome.unmatched_imap, [1]);
}

#[test]
fn empty_uidls_missing_headers_and_skip_size_check() {
    let mut matcher = Matcher::new(
        [imap(1, 10), imap(2, 20)],
        [pop3(1, 10, ""), pop3(2, 10, "a"), pop3(3, 20, "b")],
        MatchOptions { skip_size_check: true },
    );
    assert_eq!(matcher.headers_needed().pop3_numbers, [2, 3]);
    assert_eq!(matcher.headers_needed().imap_uids, [1, 2]);
    matcher.add_imap_header(1, &header("a"));
    matcher.add_imap_header(2, &header("b"));
    matcher.add_pop3_header(2, &header("a"));
    // POP3 #3's header never arrives (deleted meanwhile): ignored, as Dovecot does.
    assert_eq!(matcher.add_pop3_header(99, &header("x")), None);
    let outcome = matcher.finish();
    assert_eq!(outcome.pop3_without_uidl, [pop3(1, 10, "")]);
    assert_eq!(outcome.pop3_without_header, [pop3(3, 20, "b")]);
    assert_eq!(outcome.unmatched_imap, [2]);
    assert!(outcome.check(MissingPolicy::default()).is_ok());
}

#[test]
fn equal_headers_pair_in_order_and_truncated_headers_are_flagged() {
    let mut matcher = Matcher::new(
        [imap(1, 5), imap(2, 5), imap(3, 5)],
        [pop3(1, 6, "x"), pop3(2, 6, "y"), pop3(3, 6, "z")],
        MatchOptions::default(),
    );
    for uid in 1..=3 {
        matcher.add_imap_header(uid, &header("same"));
        matcher.add_pop3_header(uid, &header("same"));
    }
    let truncated = matcher.add_imap_header(3, b"Message-ID: <same@example.com>\r\nSubj");
    assert!(truncated.is_some_and(|h| !h.has_end_of_header), "caller should fetch BODY[]");
    matcher.add_imap_header(3, &header("same")); // the whole message's header
    let outcome = matcher.finish();
    let got: Vec<(u32, u32)> = outcome.assignments.iter().map(|a| (a.uid, a.order)).collect();
    assert_eq!(got, [(1, 1), (2, 2), (3, 3)]);
}

/// The size pass trusts positions: a rotation of messages whose sizes line up pairs the
/// wrong ones, in Dovecot as here (the plugin's documented heuristic). Distinct sizes or
/// `skip_size_check` avoid it.
#[test]
fn rotation_with_lined_up_sizes_fools_the_size_pass_like_dovecot() {
    // IMAP X(10) Y(10) Z(20); POP3 order Y(10) Z(20) X(10).
    let views = || {
        (
            [imap(1, 10), imap(2, 10), imap(3, 20)],
            [pop3(1, 10, "uY"), pop3(2, 20, "uZ"), pop3(3, 10, "uX")],
        )
    };
    let (i, p) = views();
    let mut matcher = Matcher::new(i, p, MatchOptions::default());
    for (uid, id) in [(2, "Y"), (3, "Z")] {
        matcher.add_imap_header(uid, &header(id));
    }
    for (number, id) in [(2, "Z"), (3, "X")] {
        matcher.add_pop3_header(number, &header(id));
    }
    let outcome = matcher.finish();
    assert_eq!(outcome.get(1).map(|a| a.uidl.as_str()), Some("uY"), "X took Y's UIDL");
    let (i, p) = views();
    let mut matcher = Matcher::new(i, p, MatchOptions { skip_size_check: true });
    for (uid, id) in [(1, "X"), (2, "Y"), (3, "Z")] {
        matcher.add_imap_header(uid, &header(id));
    }
    for (number, id) in [(1, "Y"), (2, "Z"), (3, "X")] {
        matcher.add_pop3_header(number, &header(id));
    }
    let outcome = matcher.finish();
    let got: Vec<&str> = outcome.assignments.iter().map(|a| a.uidl.as_str()).collect();
    assert_eq!(got, ["uX", "uY", "uZ"]);
}

// ---- model property ----

/// Ways servers show one header differently over IMAP and POP3, all hidden by the filter.
#[derive(Debug, Clone, Copy)]
enum Mangle {
    SkippedHeader,
    TrailingSpace,
    EightBitAsQuestionMark,
    BlankContinuation,
    BrokenLine,
    Tabs,
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        Just(Mangle::SkippedHeader),
        Just(Mangle::TrailingSpace),
        Just(Mangle::EightBitAsQuestionMark),
        Just(Mangle::BlankContinuation),
        Just(Mangle::BrokenLine),
        Just(Mangle::Tabs),
    ]
}

/// A message's header and body as one side shows it.
fn render(id: u32, subject: &str, body_len: usize, mangles: &[Mangle]) -> Vec<u8> {
    let has = |m: fn(&Mangle) -> bool| mangles.iter().any(m);
    let mut text = Vec::new();
    if has(|m| matches!(m, Mangle::SkippedHeader)) {
        text.extend_from_slice(b"Return-Path: <bounce@example.com>\r\nX-UID: 77\r\nStatus: RO\r\n");
    }
    let space = if has(|m| matches!(m, Mangle::Tabs)) { "\t" } else { " " };
    text.extend(format!("Message-ID:{space}<m{id}@example.com>\r\n").bytes());
    let subject = if has(|m| matches!(m, Mangle::EightBitAsQuestionMark)) {
        subject.replace('\u{e9}', "?")
    } else {
        subject.to_owned()
    };
    text.extend(format!("Subject: {subject}").bytes());
    if has(|m| matches!(m, Mangle::TrailingSpace)) {
        text.extend_from_slice(b"  \t");
    }
    text.extend_from_slice(b"\r\n");
    if has(|m| matches!(m, Mangle::BlankContinuation)) {
        text.extend_from_slice(b" \r\n");
    }
    if has(|m| matches!(m, Mangle::BrokenLine)) {
        text.extend_from_slice(b"this line has no colon\r\n");
    }
    text.extend_from_slice(b"From: someone@example.com\r\n\r\n");
    text.extend(std::iter::repeat_n(b'x', body_len));
    text
}

#[derive(Debug, Clone)]
struct Spec {
    /// Content identity: equal for exact duplicates.
    content: u32,
    subject: String,
    body_len: usize,
    imap_mangles: Vec<Mangle>,
    pop3_mangles: Vec<Mangle>,
    on_imap: bool,
    on_pop3: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u32..40,
        prop_oneof![Just("caf\u{e9}".to_owned()), "[a-z ]{1,12}"],
        // Few distinct body lengths, so equal sizes are common.
        prop_oneof![Just(100usize), Just(100), Just(250), 0usize..400],
        proptest::collection::vec(mangle(), 0..3),
        proptest::collection::vec(mangle(), 0..3),
        proptest::bool::weighted(0.95),
        proptest::bool::weighted(0.95),
    )
        .prop_map(
            |(content, subject, body_len, imap_mangles, pop3_mangles, on_imap, on_pop3)| Spec {
                content,
                subject,
                body_len,
                imap_mangles,
                pop3_mangles,
                on_imap: on_imap || !on_pop3,
                on_pop3,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn dovecot_like_views_match_exactly(
        specs in proptest::collection::vec(spec(), 0..30),
        swaps in proptest::collection::vec((0usize..30, 0usize..30), 0..4),
    ) {
        // Exact duplicates share content, subject and body; distinct contents get distinct
        // Message-IDs (the content number).
        let mut first_of: std::collections::HashMap<u32, Spec> = std::collections::HashMap::new();
        let specs: Vec<Spec> = specs
            .into_iter()
            .map(|s| {
                let base = first_of.entry(s.content).or_insert_with(|| s.clone()).clone();
                Spec { subject: base.subject, body_len: base.body_len, ..s }
            })
            .collect();
        // IMAP: UID order. POP3: the same messages, some positions swapped (stored order).
        let mut pop3_order: Vec<usize> = (0..specs.len()).filter(|&i| specs[i].on_pop3).collect();
        for (a, b) in swaps {
            if a < pop3_order.len() && b < pop3_order.len() {
                pop3_order.swap(a, b);
            }
        }
        let imap_indexes: Vec<usize> = (0..specs.len()).filter(|&i| specs[i].on_imap).collect();
        let imap_bytes = |i: usize| render(specs[i].content, &specs[i].subject, specs[i].body_len, &specs[i].imap_mangles);
        let pop3_bytes = |i: usize| render(specs[i].content, &specs[i].subject, specs[i].body_len, &specs[i].pop3_mangles);
        let uid = |i: usize| u32::try_from(i).expect("small") * 2 + 1;
        let imap_view: Vec<ImapMessage> =
            imap_indexes.iter().map(|&i| imap(uid(i), imap_bytes(i).len() as u64)).collect();
        let pop3_view: Vec<Pop3Message> = pop3_order
            .iter()
            .enumerate()
            .map(|(n, &i)| pop3(u32::try_from(n).expect("small") + 1, pop3_bytes(i).len() as u64, &format!("uidl-{i}")))
            .collect();

        // Dovecot's size pass trusts positions (see the rotation test): only take views
        // where it is sound, i.e. it never pairs two different contents.
        let count = imap_indexes.len().min(pop3_order.len());
        for k in 0..count {
            let size = pop3_view[k].size;
            if size != imap_view[k].size || (k + 1 < count && size == pop3_view[k + 1].size) {
                break;
            }
            prop_assume!(specs[imap_indexes[k]].content == specs[pop3_order[k]].content);
        }

        let mut matcher = Matcher::new(imap_view.clone(), pop3_view.clone(), MatchOptions::default());
        let needed = matcher.headers_needed();
        for &u in &needed.imap_uids {
            let i = imap_indexes.iter().copied().find(|&i| uid(i) == u).expect("known UID");
            prop_assert!(matcher.add_imap_header(u, &imap_bytes(i)).is_some());
        }
        for &n in &needed.pop3_numbers {
            let i = pop3_order[n as usize - 1];
            prop_assert!(matcher.add_pop3_header(n, &pop3_bytes(i)).is_some());
        }
        let outcome = matcher.finish();

        // Every pair joins the same content, each POP3 message at most once, with its order.
        let mut used = std::collections::HashSet::new();
        for assignment in &outcome.assignments {
            let imap_index = imap_indexes.iter().copied().find(|&i| uid(i) == assignment.uid).expect("uid");
            let position = assignment.order as usize - 1;
            let pop3_index = pop3_order[position];
            prop_assert_eq!(&assignment.uidl, &format!("uidl-{pop3_index}"));
            prop_assert_eq!(specs[imap_index].content, specs[pop3_index].content);
            prop_assert!(used.insert(position), "POP3 message used twice");
        }
        // Nothing that could match is left over: per content, min(IMAP, POP3) pairs.
        let mut per_content: std::collections::HashMap<u32, (usize, usize)> = std::collections::HashMap::new();
        for &i in &imap_indexes {
            per_content.entry(specs[i].content).or_default().0 += 1;
        }
        for &i in &pop3_order {
            per_content.entry(specs[i].content).or_default().1 += 1;
        }
        let expected_pairs: usize = per_content.values().map(|(a, b)| a.min(b)).copied().sum();
        prop_assert_eq!(outcome.assignments.len(), expected_pairs);
        prop_assert_eq!(outcome.unmatched_imap.len(), imap_indexes.len() - expected_pairs);
        prop_assert_eq!(outcome.unmatched_pop3.len(), pop3_order.len() - expected_pairs);
        prop_assert!(outcome.pop3_without_header.is_empty());
        prop_assert_eq!(outcome.check(MissingPolicy::default()).is_ok(), outcome.unmatched_pop3.is_empty());
    }
}
