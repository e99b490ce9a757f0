//! Entry points for the fuzz targets in `fuzz/` and for replaying their corpora in tests.
//! Not a stable API.

use crate::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use crate::message_date::received_date;
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxName, MailboxStatus, MessageMeta, Uid, UidValidity,
};
use crate::pop3_migration::{HeaderHasher, header_sha1};
use crate::query::{SearchQuery, TimeZone};
use crate::state::SyncState;
use crate::state::dovecot::DovecotState;

/// Everything that reads a message header from a server: the received date, the
/// pop3-migration hash (streamed in two chunks must equal hashed at once), and dsync's
/// header hash in every version.
pub fn message_headers(data: &[u8]) {
    let _ = received_date(data);
    let whole = header_sha1(data);
    let split = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut hasher = HeaderHasher::new();
    if hasher.update(&data[..split]) {
        hasher.update(&data[split..]);
    }
    assert_eq!(hasher.finish(), whole, "streamed hash differs at split {split}");
    for version in [HashVersion::V1, HashVersion::V2, HashVersion::V3, HashVersion::V4] {
        let _ = header_hash(data, &DEFAULT_HASHED_HEADERS, version);
    }
}

/// The state files we read back (ours, and Dovecot's `-s` string): whatever decodes must
/// encode to text that decodes to the same state. Read as a state file is read (message
/// lines left in the text), ours must decode alike, or fail on the same line, and encode
/// to the same bytes.
pub fn state_files(data: &[u8]) {
    let stored = SyncState::decode_stored(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let decoded = SyncState::decode(text);
    match (&decoded, &stored) {
        (Ok(state), Ok(stored)) => {
            assert_eq!(stored, state);
            assert_eq!(stored.encode(), state.encode(), "stored records copied as encoded");
        }
        (Err(a), Err(b)) => assert_eq!(a.line, b.line, "{a} / {b}"),
        _ => panic!("decoded {decoded:?}, stored {stored:?}"),
    }
    if let Ok(state) = decoded {
        let again = SyncState::decode(&state.encode()).expect("our own encoding decodes");
        assert_eq!(again, state);
    }
    if let Ok(state) = DovecotState::decode(text) {
        let again = DovecotState::decode(&state.encode()).expect("our own encoding decodes");
        assert_eq!(again, state);
    }
}

/// The folder listings kept beside the state for Maildir sources (`STATE.listing.<hash>`):
/// no panic on any bytes, and whatever reads back encodes to bytes that read the same.
pub fn maildir_listing_cache(data: &[u8]) {
    crate::state::listing::fuzz(data);
}

/// doveadm's search query, as words separated by whitespace: whatever parses must print
/// as words that parse back to the same query, and deciding it on a small mailbox must
/// not panic.
pub fn search_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_whitespace().collect();
    let Ok(parsed) = SearchQuery::parse(&words, 1_750_000_000) else { return };
    let query = parsed.query;
    let printed = query.to_words();
    let again = SearchQuery::parse(&printed, 1_750_000_000).expect("printed query parses");
    assert_eq!(again.query, query, "{words:?} printed as {printed:?}");

    let query = query.in_time_zone(TimeZone::Fixed(3600));
    let name = MailboxName::new(["INBOX", "Sub.folder"]).expect("valid name");
    let guid = MailboxGuid::from_hex("0123456789abcdef0123456789abcdef");
    let _ = query.may_match_mailbox(&name, guid);
    let _ = query.may_match_mailbox(&name, None);
    for named in query.named_mailboxes() {
        let _ = SearchQuery::names_mailbox(named, &name);
    }
    let messages: Vec<MessageMeta> =
        [(1, "\\Seen", 0), (7, "$Label1", 1_700_000_000), (u32::MAX, "", i64::MAX)]
            .into_iter()
            .filter_map(|(uid, flag, received)| {
                let mut meta = MessageMeta::new(Uid::new(uid)?, Flags::from_imap_names([flag]));
                meta.received = Some(received);
                meta.virtual_size = Some(u64::from(uid));
                Some(meta)
            })
            .collect();
    let contents = MailboxContents {
        status: MailboxStatus {
            uid_validity: UidValidity::MIN,
            uid_next: Uid::MIN,
            messages: 3,
            highest_modseq: None,
            guid,
            change_token: None,
            source_uid_validity: None,
        },
        messages,
    };
    let selected = query.select(&name, &contents);
    assert!(selected.len() <= contents.messages.len());
}
