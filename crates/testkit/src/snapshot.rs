//! What a mail client caches about an account, captured through IMAP, with readable diffs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Mailboxes (by raw mUTF-7 name) and subscriptions of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSnapshot {
    /// Every listed mailbox.
    pub mailboxes: BTreeMap<String, MailboxSnapshot>,
    /// Names from `LSUB`.
    pub subscriptions: BTreeSet<String>,
}

/// One mailbox as IMAP shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxSnapshot {
    /// False for `\Noselect` / `\NonExistent` (then the other fields are zero).
    pub selectable: bool,
    /// `UIDVALIDITY`.
    pub uid_validity: u32,
    /// `UIDNEXT`.
    pub uid_next: u32,
    /// Messages in UID order.
    pub messages: Vec<MessageSnapshot>,
}

/// One message as IMAP shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MessageSnapshot {
    /// UID.
    pub uid: u32,
    /// Flags and keywords, sorted, `\Recent` removed.
    pub flags: Vec<String>,
    /// INTERNALDATE as UNIX seconds (the zone a server prints is not part of the date).
    pub internal_date: i64,
    /// `BODY[]` bytes.
    pub body: Vec<u8>,
}

impl fmt::Debug for MessageSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("uid", &self.uid)
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("body_len", &self.body.len())
            .field("body_start", &String::from_utf8_lossy(&self.body[..self.body.len().min(60)]))
            .finish()
    }
}

impl AccountSnapshot {
    /// Every difference between `self` (expected) and `other` (actual), one line each.
    pub fn differences(&self, other: &AccountSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        if self.subscriptions != other.subscriptions {
            out.push(format!(
                "subscriptions: expected {:?}, got {:?}",
                self.subscriptions, other.subscriptions
            ));
        }
        for name in self.mailboxes.keys().chain(other.mailboxes.keys()).collect::<BTreeSet<_>>() {
            match (self.mailboxes.get(name), other.mailboxes.get(name)) {
                (Some(_), None) => out.push(format!("mailbox {name:?}: missing")),
                (None, Some(_)) => out.push(format!("mailbox {name:?}: unexpected")),
                (Some(a), Some(b)) => a.differences(name, b, &mut out),
                (None, None) => {}
            }
        }
        out
    }

    /// Panics with every difference listed when the snapshots differ.
    pub fn assert_same(&self, actual: &AccountSnapshot) {
        let differences = self.differences(actual);
        assert!(differences.is_empty(), "accounts differ:\n  {}", differences.join("\n  "));
    }

    /// Number of messages over all mailboxes.
    pub fn message_count(&self) -> usize {
        self.mailboxes.values().map(|m| m.messages.len()).sum()
    }
}

impl MailboxSnapshot {
    fn differences(&self, name: &str, other: &MailboxSnapshot, out: &mut Vec<String>) {
        if self.selectable != other.selectable {
            out.push(format!(
                "mailbox {name:?}: selectable {} vs {}",
                self.selectable, other.selectable
            ));
        }
        if self.uid_validity != other.uid_validity {
            out.push(format!(
                "mailbox {name:?}: UIDVALIDITY {} vs {}",
                self.uid_validity, other.uid_validity
            ));
        }
        if self.uid_next != other.uid_next {
            out.push(format!("mailbox {name:?}: UIDNEXT {} vs {}", self.uid_next, other.uid_next));
        }
        let uids = |m: &MailboxSnapshot| m.messages.iter().map(|m| m.uid).collect::<Vec<_>>();
        if uids(self) != uids(other) {
            out.push(format!("mailbox {name:?}: UIDs {:?} vs {:?}", uids(self), uids(other)));
            return;
        }
        for (a, b) in self.messages.iter().zip(&other.messages) {
            if a.flags != b.flags {
                out.push(format!(
                    "mailbox {name:?} uid {}: flags {:?} vs {:?}",
                    a.uid, a.flags, b.flags
                ));
            }
            if a.internal_date != b.internal_date {
                out.push(format!(
                    "mailbox {name:?} uid {}: INTERNALDATE {} vs {}",
                    a.uid, a.internal_date, b.internal_date
                ));
            }
            if a.body != b.body {
                let first = a
                    .body
                    .iter()
                    .zip(&b.body)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.body.len().min(b.body.len()));
                out.push(format!(
                    "mailbox {name:?} uid {}: body differs ({} vs {} bytes, first difference at byte {first})",
                    a.uid,
                    a.body.len(),
                    b.body.len()
                ));
            }
        }
    }
}

/// Parses an IMAP `date-time` (`"dd-Mon-yyyy hh:mm:ss +zzzz"`, day may be space-padded)
/// into UNIX seconds.
pub fn parse_internal_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let mut date_parts = date.split('-');
    let day: i64 = date_parts.next()?.trim().parse().ok()?;
    let month_name = date_parts.next()?;
    let year: i64 = date_parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] =
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let month =
        i64::try_from(MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month_name))?).ok()? + 1;
    let mut time_parts = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time_parts.next()??, time_parts.next()??, time_parts.next()??);
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone_hours: i64 = zone.get(1..3)?.parse().ok()?;
    let zone_minutes: i64 = zone.get(3..5)?.parse().ok()?;
    let offset = sign * (zone_hours * 3600 + zone_minutes * 60);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_internal_dates_with_zones_and_padding() {
        assert_eq!(parse_internal_date("01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_internal_date(" 7-Jul-2024 10:00:00 +0200"), Some(1_720_339_200));
        assert_eq!(parse_internal_date("07-jul-2024 08:00:00 +0000"), Some(1_720_339_200));
        assert_eq!(parse_internal_date("29-Feb-2024 23:59:59 -0130"), Some(1_709_256_599));
        assert_eq!(parse_internal_date("garbage"), None);
    }
}
