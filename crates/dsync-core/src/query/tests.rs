use proptest::prelude::*;

use super::*;
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxName, MailboxStatus, MessageMeta, Uid, UidValidity,
};

const NOW: i64 = 1_750_000_000;

fn words(query: &str) -> Vec<&str> {
    query.split_whitespace().collect()
}

fn parse(query: &str) -> Result<ParsedQuery, QueryError> {
    SearchQuery::parse(&words(query), NOW)
}

fn query(text: &str) -> SearchQuery {
    let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    parsed.query
}

#[test]
fn queries_read_as_doveadm_reads_them() {
    // (query, canonical words): keys are case-insensitive, UN-flags are NOT flags,
    // intervals are instants, OR makes the whole list an OR list.
    let cases = [
        ("all", "ALL"),
        ("ALL", "ALL"),
        ("seen unseen Flagged UNFLAGGED", "SEEN NOT SEEN FLAGGED NOT FLAGGED"),
        ("answered deleted draft undraft", "ANSWERED DELETED DRAFT NOT DRAFT"),
        ("keyword $Label1 unkeyword Junk", "KEYWORD $Label1 NOT KEYWORD Junk"),
        ("since 2024-01-01", "SINCE 2024-01-01"),
        ("SINCE 1-Jan-2024", "SINCE 2024-01-01"),
        ("before 29-feb-2024", "BEFORE 2024-02-29"),
        ("ON 07-Jul-2024", "ON 2024-07-07"),
        ("SINCE 1700000000", "SINCE 1700000000"),
        ("SINCE 30d", "SINCE 1747408000"),
        ("SINCE 2weeks", "SINCE 1748790400"),
        ("SINCE 90mins", "SINCE 1749994600"),
        ("BEFORE 5000ms", "BEFORE 1749999995"),
        ("OLDER 3600", "BEFORE 1749996401"),
        ("YOUNGER 60", "SINCE 1749999940"),
        ("LARGER 10k SMALLER 1M", "LARGER 10240 SMALLER 1048576"),
        ("larger 2kib smaller 5b", "LARGER 2048 SMALLER 5"),
        ("UID 1:5,7,10:*", "UID 1:5,7,10:*"),
        ("UID 9:7,1,2,3", "UID 1:3,7:9"),
        ("UID *", "UID *"),
        ("1:3,*", "1:3,*"),
        ("mailbox INBOX", "MAILBOX INBOX"),
        ("MAILBOX Arch*", "MAILBOX Arch*"),
        (
            "mailbox-guid 0123456789abcdef0123456789abcdef",
            "MAILBOX-GUID 0123456789abcdef0123456789abcdef",
        ),
        ("x-guid abc GUID def", "GUID abc GUID def"),
        ("NOT SEEN", "NOT SEEN"),
        ("NOT NOT SEEN", "SEEN"),
        ("SEEN OR FLAGGED", "SEEN OR FLAGGED"),
        ("SEEN OR FLAGGED OR DELETED", "SEEN OR FLAGGED OR DELETED"),
        ("seen flagged or deleted", "SEEN OR FLAGGED OR DELETED"),
        ("OR SEEN", "OR SEEN"),
        ("mailbox INBOX ( SEEN OR FLAGGED )", "MAILBOX INBOX ( SEEN OR FLAGGED )"),
        ("NOT ( SEEN FLAGGED )", "NOT ( SEEN FLAGGED )"),
        ("( ( SEEN ) )", "( ( SEEN ) )"),
        ("( OR SEEN )", "( OR SEEN )"),
        ("NOT OR SEEN", "OR NOT SEEN"),
        ("OLDESTONLY SINCE 2024-01-01", "OLDESTONLY SINCE 2024-01-01"),
    ];
    for (text, canonical) in cases {
        assert_eq!(query(text).to_words().join(" "), canonical, "{text}");
    }
}

#[test]
fn ands_before_an_or_are_ored_with_a_warning() {
    let parsed = parse("mailbox INBOX SEEN OR FLAGGED").expect("valid");
    assert_eq!(parsed.query.to_string(), "MAILBOX INBOX OR SEEN OR FLAGGED");
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert!(parsed.warnings[0].contains("parentheses"), "{:?}", parsed.warnings);
    assert!(parse("SEEN OR FLAGGED").expect("valid").warnings.is_empty());
    assert!(parse("mailbox INBOX ( SEEN OR FLAGGED )").expect("valid").warnings.is_empty());
}

#[test]
fn bad_queries_are_refused_with_the_reason() {
    let invalid = [
        ("", "empty"),
        ("OR SEEN FLAGGED", "use parentheses when mixing ANDs and ORs"),
        ("SEEN OR FLAGGED DELETED", "use parentheses when mixing ANDs and ORs"),
        ("SEEN OR", "OR needs a search key"),
        ("NOT", "NOT needs a search key"),
        ("( SEEN", "missing ')'"),
        ("SEEN )", "unexpected ')'"),
        ("( )", "no search keys inside"),
        ("SINCE", "SINCE needs a value"),
        ("SINCE yesterday", "invalid date"),
        ("SINCE 2024-02-30", "no such day"),
        ("SINCE 2024-13-01", "no such day"),
        ("SINCE 32-Jan-2024", "no such day"),
        ("SINCE 30x", "invalid date"),
        ("LARGER 10X", "invalid size"),
        ("LARGER 99999999999999999999", "too large"),
        ("LARGER 99999999999T", "too large"),
        ("OLDER 0", "seconds above 0"),
        ("OLDER 1h", "seconds above 0"),
        ("UID 0", "invalid message set"),
        ("UID 1,,2", "invalid message set"),
        ("UID 1:2:3", "invalid message set"),
        ("1:x", "invalid message set"),
        ("BOGUS", "unknown search key \"BOGUS\""),
        ("(SEEN", "parentheses are words of their own"),
    ];
    for (text, expected) in invalid {
        let error = parse(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    // A unit-less number is a UNIX time, not an error (as in Dovecot).
    assert!(parse("SINCE 30").is_ok());
    let whole = SearchQuery::parse(&["mailbox INBOX"], NOW).expect_err("one word");
    assert!(whole.to_string().contains("do not quote the whole query"), "{whole}");
}

#[test]
fn keys_that_need_more_than_a_listing_are_unsupported() {
    for key in [
        "SUBJECT x",
        "FROM x",
        "TO x",
        "CC x",
        "BCC x",
        "HEADER X-Spam yes",
        "BODY x",
        "TEXT x",
        "SENTSINCE 2024-01-01",
        "SENTBEFORE 2024-01-01",
        "SENTON 2024-01-01",
        "RECENT",
        "NEW",
        "OLD",
        "SAVEDSINCE 2024-01-01",
        "X-SAVEDBEFORE 1d",
        "SAVEDATESUPPORTED",
        "MODSEQ 5",
        "INTHREAD REFS SEEN",
        "X-MAILBOX INBOX",
        "X-REAL-UID 1",
        "$",
        "MIMEPART x",
        "FUZZY x",
    ] {
        let error = parse(key).expect_err(key);
        let upper = key.split(' ').next().unwrap_or_default().to_ascii_uppercase();
        assert!(
            matches!(&error, QueryError::Unsupported { key, .. } if *key == upper),
            "{key}: {error:?}"
        );
    }
    let error = parse("SEEN subject hello").expect_err("subject").to_string();
    assert!(error.contains("SUBJECT is not supported") && error.contains("headers"), "{error}");
}

fn name(path: &str) -> MailboxName {
    MailboxName::split(path, Some('/')).expect("valid")
}

fn message(uid: u32, flags: &[&str], received: i64, size: u64) -> MessageMeta {
    let mut meta = MessageMeta::new(
        Uid::new(uid).expect("non-zero"),
        Flags::from_imap_names(flags.iter().copied()),
    );
    meta.received = Some(received);
    meta.virtual_size = Some(size);
    meta.guid = Some(format!("guid{uid}"));
    meta
}

fn contents(messages: Vec<MessageMeta>, guid: Option<MailboxGuid>) -> MailboxContents {
    let uid_next = messages.last().and_then(|m| m.uid.next()).unwrap_or(Uid::MIN);
    MailboxContents {
        status: MailboxStatus {
            uid_validity: UidValidity::MIN,
            uid_next,
            messages: u32::try_from(messages.len()).expect("few"),
            highest_modseq: None,
            guid,
            change_token: None,
            source_uid_validity: None,
        },
        messages,
    }
}

/// UIDs `query` selects from the sample mailbox.
fn selected(query_text: &str, mailbox: &str) -> Vec<u32> {
    selected_in(&query(query_text), mailbox)
}

fn selected_in(query: &SearchQuery, mailbox: &str) -> Vec<u32> {
    // 2024-07-07 10:00 UTC = 1_720_346_400.
    let day = 86_400;
    let base = 1_720_346_400;
    let sample = contents(
        vec![
            message(1, &["\\Seen"], base, 500),
            message(2, &["\\Seen", "\\Answered", "$Label1"], base + day, 2000),
            message(4, &["\\Draft", "\\Seen", "Junk"], base + 3 * day, 300),
            message(5, &[], base + 4 * day, 10_240),
            message(6, &["\\Deleted"], base + 5 * day, 10_241),
            message(9, &["\\Flagged", "\\Seen"], base + 8 * day, 700),
        ],
        MailboxGuid::from_hex("0123456789abcdef0123456789abcdef"),
    );
    let name = name(mailbox);
    if !query.may_match_mailbox(&name, sample.status.guid) {
        return Vec::new();
    }
    query.select(&name, &sample).iter().map(|m| m.uid.get()).collect()
}

#[test]
fn messages_are_selected_by_their_metadata() {
    let cases: &[(&str, &[u32])] = &[
        ("ALL", &[1, 2, 4, 5, 6, 9]),
        ("SEEN", &[1, 2, 4, 9]),
        ("UNSEEN", &[5, 6]),
        ("FLAGGED", &[9]),
        ("ANSWERED", &[2]),
        ("DELETED", &[6]),
        ("UNDELETED", &[1, 2, 4, 5, 9]),
        ("DRAFT", &[4]),
        ("KEYWORD junk", &[4]),
        ("UNKEYWORD $label1", &[1, 4, 5, 6, 9]),
        ("KEYWORD Nothing", &[]),
        ("SINCE 2024-07-10", &[4, 5, 6, 9]),
        ("SINCE 10-Jul-2024", &[4, 5, 6, 9]),
        ("BEFORE 2024-07-10", &[1, 2]),
        ("ON 2024-07-11", &[5]),
        ("SINCE 1720605600", &[4, 5, 6, 9]),
        ("SINCE 1720605601", &[5, 6, 9]),
        ("BEFORE 1720605600", &[1, 2]),
        ("ON 1720605600", &[4]),
        ("LARGER 10240", &[6]),
        ("SMALLER 500", &[4]),
        ("LARGER 10k", &[6]),
        ("NOT SMALLER 10k", &[5, 6]),
        ("UID 2:5", &[2, 4, 5]),
        ("UID 5:*", &[5, 6, 9]),
        ("UID 100:*", &[]),
        ("UID *", &[]),
        ("UID 1,*", &[1]),
        ("NOT UID *", &[1, 2, 4, 5, 6, 9]),
        ("2:4", &[2, 4, 5]),
        ("*", &[9]),
        ("1,*", &[1, 9]),
        ("10:*", &[9]),
        ("*:5", &[6, 9]),
        ("NOT *", &[1, 2, 4, 5, 6]),
        ("GUID guid4", &[4]),
        ("SEEN OR FLAGGED", &[1, 2, 4, 9]),
        ("UNSEEN OR FLAGGED", &[5, 6, 9]),
        ("SEEN NOT FLAGGED", &[1, 2, 4]),
        ("NOT ( SEEN FLAGGED )", &[1, 2, 4, 5, 6]),
        ("( DRAFT OR DELETED ) OR ANSWERED", &[2, 4, 6]),
        ("SEEN ( KEYWORD junk OR ANSWERED )", &[2, 4]),
        ("UNSEEN LARGER 10k OR FLAGGED", &[5, 6, 9]),
        ("OLDESTONLY SEEN", &[1, 2, 4]),
        ("OLDESTONLY ALL", &[1, 2, 4, 5, 6, 9]),
        ("OLDESTONLY UNSEEN", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(selected(text, "INBOX"), *expected, "{text}");
    }
}

#[test]
fn day_dates_are_days_in_the_time_zone() {
    // Message 1 arrived 2024-07-07 10:00 UTC: still the 7th at UTC-09:00, already the
    // 8th at UTC+14:00.
    let on =
        |day: &str, zone| selected_in(&query(&format!("ON {day}")).in_time_zone(zone), "INBOX");
    assert_eq!(on("2024-07-07", TimeZone::Utc), [1]);
    assert_eq!(on("2024-07-07", TimeZone::Fixed(-9 * 3600)), [1]);
    assert_eq!(on("2024-07-07", TimeZone::Fixed(14 * 3600)), Vec::<u32>::new());
    assert_eq!(on("2024-07-08", TimeZone::Fixed(14 * 3600)), [1]);
    assert_eq!(on("2024-07-09", TimeZone::Fixed(14 * 3600)), [2]);
    // Instants are not shifted.
    let since = query("SINCE 1720346400").in_time_zone(TimeZone::Fixed(14 * 3600));
    assert_eq!(selected_in(&since, "INBOX"), [1, 2, 4, 5, 6, 9]);
    // The local zone works at all (the machine's, whatever it is).
    assert!(
        !selected_in(&query("SINCE 2000-01-01").in_time_zone(TimeZone::Local), "INBOX").is_empty()
    );
}

#[test]
fn mailboxes_by_name_pattern_and_guid() {
    let cases: &[(&str, &str, bool)] = &[
        ("mailbox INBOX", "INBOX", true),
        ("mailbox inbox", "INBOX", true),
        ("mailbox INBOX", "INBOX/Sub", false),
        ("mailbox inbox/Sub", "INBOX/Sub", true),
        ("mailbox inbox/sub", "INBOX/Sub", false),
        ("mailbox Archive", "archive", false),
        ("mailbox Archive/2023", "Archive/2023", true),
        ("mailbox Archive.2023", "Archive/2023", true),
        ("mailbox Arch*", "Archive/2023", true),
        ("mailbox Arch%", "Archive/2023", false),
        ("mailbox Arch%", "Archive", true),
        ("mailbox Archive/%", "Archive/2023", true),
        ("mailbox Archive.%", "Archive/2023", true),
        ("mailbox %", "Archive/2023", false),
        ("mailbox *", "Archive/2023", true),
        ("mailbox inb*", "INBOX/x", true),
        ("mailbox A?chive", "Archive", false),
        ("mailbox Entwürfe", "Entwürfe", true),
        ("NOT mailbox Trash", "Trash", false),
        ("NOT mailbox Trash", "INBOX", true),
        ("mailbox INBOX OR mailbox Sent", "Sent", true),
        ("mailbox INBOX mailbox Sent", "Sent", false),
        ("mailbox-guid 0123456789abcdef0123456789abcdef", "Any", true),
        ("mailbox-guid 0123456789ABCDEF0123456789ABCDEF", "Any", false),
        ("mailbox-guid ffffffffffffffffffffffffffffffff", "Any", false),
    ];
    for (text, mailbox, expected) in cases {
        let got = !selected(text, mailbox).is_empty();
        assert_eq!(got, *expected, "{text} in {mailbox}");
    }
    // Only the mailbox keys decide whether a mailbox is looked at; an unknown GUID
    // leaves it open.
    let guid = query("mailbox-guid 0123456789abcdef0123456789abcdef");
    assert!(guid.may_match_mailbox(&name("X"), None));
    assert!(!query("mailbox INBOX SEEN").may_match_mailbox(&name("Sent"), None));
    assert!(query("mailbox INBOX OR SEEN").may_match_mailbox(&name("Sent"), None));
    assert!(!query("NOT ALL").may_match_mailbox(&name("Sent"), None));
    assert!(query("NOT SEEN").may_match_mailbox(&name("Sent"), None));
}

#[test]
fn names_opened_directly_follow_doveadm() {
    let named = |text: &str| -> Vec<String> {
        query(text).named_mailboxes().into_iter().map(str::to_owned).collect()
    };
    assert_eq!(named("mailbox INBOX SEEN"), ["INBOX"]);
    assert_eq!(named("mailbox INBOX ( mailbox Sent ALL )"), ["INBOX", "Sent"]);
    assert!(named("ALL").is_empty());
    assert!(named("mailbox Arch*").is_empty(), "wildcards: listed");
    assert!(named("mailbox INBOX mailbox Arch*").is_empty());
    assert!(named("NOT mailbox INBOX").is_empty());
    assert!(named("mailbox INBOX NOT mailbox Sent").is_empty());
    assert!(named("mailbox INBOX OR mailbox Sent").is_empty(), "ORs are not looked into");
    assert!(named("NOT ( mailbox INBOX )").is_empty());
    assert!(SearchQuery::names_mailbox("inbox", &name("INBOX")));
    assert!(SearchQuery::names_mailbox("Archive.2023", &name("Archive/2023")));
    assert!(!SearchQuery::names_mailbox("Arch*", &name("Archive")));
    assert!(query("GUID x").uses_message_guids() && !query("SEEN").uses_message_guids());
    assert!(query("( mailbox-guid x )").uses_mailbox_guids());
}

/// Words a query may be made of: every key, values that parse and values that do not.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ALL",
            "all",
            "SEEN",
            "UNSEEN",
            "FLAGGED",
            "ANSWERED",
            "DELETED",
            "DRAFT",
            "UNDRAFT",
            "KEYWORD",
            "UNKEYWORD",
            "SINCE",
            "BEFORE",
            "ON",
            "OLDER",
            "YOUNGER",
            "LARGER",
            "SMALLER",
            "UID",
            "GUID",
            "MAILBOX",
            "mailbox-guid",
            "NOT",
            "OR",
            "or",
            "(",
            ")",
            "OLDESTONLY",
            "SUBJECT",
            "RECENT",
            "2024-01-01",
            "1-Jan-2024",
            "30d",
            "1700000000",
            "10k",
            "1:5,*",
            "*",
            "7",
            "0",
            "INBOX",
            "Arch*",
            "%",
            "",
            "2024-02-30",
            "-5",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    /// Any words: an answer, never a panic; and what parses prints as words that parse
    /// back to the same query.
    #[test]
    fn parsing_never_panics_and_round_trips(words in prop::collection::vec(word(), 0..24)) {
        if let Ok(parsed) = SearchQuery::parse(&words, NOW) {
            let again = SearchQuery::parse(&parsed.query.to_words(), NOW)
                .unwrap_or_else(|e| panic!("{:?} printed as {:?}: {e}", words, parsed.query.to_words()));
            prop_assert_eq!(again.query, parsed.query);
        }
    }

    /// Deep nesting and long NOT/OR chains are refused or parsed, without exhausting the
    /// stack.
    #[test]
    fn nesting_is_bounded(depth in 0usize..5000, key in prop::sample::select(vec!["(", "NOT", "OR"])) {
        let mut words: Vec<&str> = std::iter::repeat_n(key, depth).collect();
        words.push("SEEN");
        let _ = SearchQuery::parse(&words, NOW);
    }
}
