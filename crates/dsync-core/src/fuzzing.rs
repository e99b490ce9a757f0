//! Entry points for the fuzz targets in `fuzz/` and for replaying their corpora in tests.
//! Not a stable API.

use crate::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use crate::message_date::received_date;
use crate::pop3_migration::{HeaderHasher, header_sha1};
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
/// encode to text that decodes to the same state.
pub fn state_files(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(state) = SyncState::decode(text) {
        let again = SyncState::decode(&state.encode()).expect("our own encoding decodes");
        assert_eq!(again, state);
    }
    if let Ok(state) = DovecotState::decode(text) {
        let again = DovecotState::decode(&state.encode()).expect("our own encoding decodes");
        assert_eq!(again, state);
    }
}
