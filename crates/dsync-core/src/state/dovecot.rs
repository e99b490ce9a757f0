//! The incremental-sync state string of `doveadm sync -s` (Dovecot's
//! `dsync-mailbox-state.c`), for interoperating with doveadm.
//!
//! Layout before base64 (standard alphabet, padded): the version header `01 00 00 00`, one
//! 44-byte record per mailbox (GUID, UIDVALIDITY, last common UID, last common modseq,
//! last common private modseq, message count; little-endian), then CRC-32 (IEEE) of
//! everything before it, little-endian. Dovecot writes records in hash-table order, so
//! compare states as sets.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::model::MailboxGuid;

const HEADER: [u8; 4] = [1, 0, 0, 0];
const RECORD_SIZE: usize = 16 + 4 + 4 + 8 + 8 + 4;
const V0_RECORD_SIZE: usize = 16 + 4 + 4 + 8 + 8;

/// What was in common between the two sides after the last sync of one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DovecotMailboxState {
    /// The mailbox.
    pub mailbox_guid: MailboxGuid,
    /// UIDVALIDITY at the last sync.
    pub last_uid_validity: u32,
    /// Highest UID known to be identical on both sides.
    pub last_common_uid: u32,
    /// Highest modification sequence known to be synced.
    pub last_common_modseq: u64,
    /// The same for private (per-user) flags.
    pub last_common_private_modseq: u64,
    /// Number of messages at the last sync.
    pub last_messages_count: u32,
}

/// The state of every synced mailbox, keyed by mailbox GUID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DovecotState {
    /// Per-mailbox states.
    pub mailboxes: BTreeMap<MailboxGuid, DovecotMailboxState>,
}

/// Why a state string was not accepted. Dovecot answers each of these with "Saved sync
/// state is invalid, falling back to full sync".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not base64.
    #[error("sync state is not valid base64")]
    InvalidBase64,
    /// Shorter than a header and a CRC.
    #[error("sync state is too small")]
    TooSmall,
    /// Not a whole number of records.
    #[error("sync state has an invalid size")]
    InvalidSize,
    /// The checksum does not match.
    #[error("sync state CRC32 mismatch")]
    CrcMismatch,
}

impl DovecotState {
    /// The empty state (`AQAAAHm4+Jk=`): "stateful, but nothing synced yet".
    pub fn empty() -> DovecotState {
        DovecotState::default()
    }

    /// Encodes as Dovecot does.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.mailboxes.len() * RECORD_SIZE + 4);
        bytes.extend_from_slice(&HEADER);
        for state in self.mailboxes.values() {
            bytes.extend_from_slice(&state.mailbox_guid.0);
            bytes.extend_from_slice(&state.last_uid_validity.to_le_bytes());
            bytes.extend_from_slice(&state.last_common_uid.to_le_bytes());
            bytes.extend_from_slice(&state.last_common_modseq.to_le_bytes());
            bytes.extend_from_slice(&state.last_common_private_modseq.to_le_bytes());
            bytes.extend_from_slice(&state.last_messages_count.to_le_bytes());
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        BASE64.encode(bytes)
    }

    /// Decodes a state string. Like Dovecot, an empty string, four zero bytes and a valid
    /// legacy (v0) state all decode to the empty state.
    pub fn decode(text: &str) -> Result<DovecotState, StateError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(DovecotState::empty());
        }
        let bytes = BASE64.decode(text).map_err(|_| StateError::InvalidBase64)?;
        if bytes.len() == 4 && bytes == [0, 0, 0, 0] {
            return Ok(DovecotState::empty());
        }
        if bytes.len() < 8 {
            return Err(StateError::TooSmall);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc_matches = crc32fast::hash(body).to_le_bytes() == crc;
        if (bytes.len() - 8) % RECORD_SIZE != 0 || !crc_matches {
            // A valid v0 state (no header, shorter records) is silently treated as empty.
            if body.len() % V0_RECORD_SIZE == 0 && crc_matches {
                return Ok(DovecotState::empty());
            }
            return Err(if crc_matches {
                StateError::InvalidSize
            } else {
                StateError::CrcMismatch
            });
        }
        let mut state = DovecotState::empty();
        for record in body[4..].chunks_exact(RECORD_SIZE) {
            let u32_at = |at: usize| {
                u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
            };
            let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&record[..16]);
            let mailbox = DovecotMailboxState {
                mailbox_guid: MailboxGuid(guid),
                last_uid_validity: u32_at(16),
                last_common_uid: u32_at(20),
                last_common_modseq: u64_at(24),
                last_common_private_modseq: u64_at(32),
                last_messages_count: u32_at(40),
            };
            state.mailboxes.insert(mailbox.mailbox_guid, mailbox);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_state_is_dovecots() {
        assert_eq!(DovecotState::empty().encode(), "AQAAAHm4+Jk=");
        assert_eq!(DovecotState::decode("AQAAAHm4+Jk="), Ok(DovecotState::empty()));
        assert_eq!(DovecotState::decode(""), Ok(DovecotState::empty()));
        assert_eq!(DovecotState::decode("AAAAAA=="), Ok(DovecotState::empty()), "four zero bytes");
    }

    /// Printed by `doveadm backup -s '' -R imapc:` (Dovecot 2.3.19.1) for a Maildir INBOX
    /// with GUID c92f64f7…, UIDVALIDITY 1795424052 and three messages.
    #[test]
    fn decodes_and_re_encodes_a_dovecot_state() {
        let text = "AQAAAMkvZPefDR7QHm1bMU8EiGw0/wNrAwAAAAAAAAAAAAAAAAAAAAAAAAADAAAA7dnUaQ==";
        let state = DovecotState::decode(text).expect("valid state");
        let guid = MailboxGuid::from_hex("c92f64f79f0d1ed01e6d5b314f04886c").expect("hex");
        assert_eq!(
            state.mailboxes[&guid],
            DovecotMailboxState {
                mailbox_guid: guid,
                last_uid_validity: 1_795_424_052,
                last_common_uid: 3,
                last_common_modseq: 0,
                last_common_private_modseq: 0,
                last_messages_count: 3,
            }
        );
        assert_eq!(state.encode(), text);
    }

    #[test]
    fn rejects_damaged_states() {
        assert_eq!(DovecotState::decode("not base64!"), Err(StateError::InvalidBase64));
        assert_eq!(DovecotState::decode("AQAA"), Err(StateError::TooSmall));
        assert_eq!(DovecotState::decode("AQAAAHm4+Jo="), Err(StateError::CrcMismatch));
        let mut bytes = BASE64.decode("AQAAAHm4+Jk=").expect("valid");
        bytes.insert(4, 7);
        let crc = crc32fast::hash(&bytes[..bytes.len() - 4]).to_le_bytes();
        let len = bytes.len();
        bytes[len - 4..].copy_from_slice(&crc);
        assert_eq!(DovecotState::decode(&BASE64.encode(bytes)), Err(StateError::InvalidSize));
    }

    #[test]
    fn legacy_v0_state_counts_as_empty() {
        let mut bytes = vec![0xab; V0_RECORD_SIZE];
        let crc = crc32fast::hash(&bytes).to_le_bytes();
        bytes.extend_from_slice(&crc);
        assert_eq!(DovecotState::decode(&BASE64.encode(bytes)), Ok(DovecotState::empty()));
    }

    proptest! {
        #[test]
        fn round_trip(records in proptest::collection::vec(
            (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()), 0..8)
        ) {
            let mut state = DovecotState::empty();
            for (guid, validity, uid, modseq, pvt, count) in records {
                let mailbox_guid = MailboxGuid(guid);
                state.mailboxes.insert(mailbox_guid, DovecotMailboxState {
                    mailbox_guid,
                    last_uid_validity: validity,
                    last_common_uid: uid,
                    last_common_modseq: modseq,
                    last_common_private_modseq: pvt,
                    last_messages_count: count,
                });
            }
            prop_assert_eq!(DovecotState::decode(&state.encode()), Ok(state));
        }

        #[test]
        fn decode_never_panics(text in ".{0,80}") {
            let _ = DovecotState::decode(&text);
        }
    }
}
