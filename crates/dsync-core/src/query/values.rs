//! The values search keys take, parsed as Dovecot 2.3 parses them: dates
//! (`mail_parse_human_timestamp`), intervals (`settings_get_time`), sizes
//! (`settings_get_size`) and message sets (`imap_seq_set_parse`).

use std::fmt;

/// A date argument of `BEFORE`, `ON`, `SINCE` (and `OLDER`, `YOUNGER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateValue {
    /// A calendar day (days since 1970-01-01), compared with the day on which a message
    /// arrived in the local time zone: `2024-01-01` or `1-Jan-2024`.
    Day(i64),
    /// An instant (UNIX seconds), compared with the received time itself: a UNIX time or
    /// an interval counted back from now.
    Instant(i64),
}

/// Parses a date the way `mail_parse_human_timestamp` does, in its order: `YYYY-MM-DD`,
/// an IMAP date (`1-Jan-2024`), a UNIX time, then an interval (`30d`) back from `now`.
/// Impossible days (`2024-02-30`) are refused where Dovecot would roll them over.
pub(crate) fn parse_date(text: &str, now: i64) -> Result<DateValue, String> {
    if let Some(day) = iso_day(text)? {
        return Ok(DateValue::Day(day));
    }
    if let Some(day) = imap_day(text)? {
        return Ok(DateValue::Day(day));
    }
    if let Some(seconds) = signed_integer(text) {
        return Ok(DateValue::Instant(seconds));
    }
    match parse_interval(text) {
        Ok(seconds) => Ok(DateValue::Instant(now.saturating_sub(i64::from(seconds)))),
        Err(_) => Err(format!(
            "invalid date {text:?} (YYYY-MM-DD, D-Mon-YYYY, a UNIX time or an interval such as 30d)"
        )),
    }
}

/// `YYYY-MM-DD` exactly (four, two and two digits).
fn iso_day(text: &str) -> Result<Option<i64>, String> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return Ok(None);
    }
    let number = |range: std::ops::Range<usize>| -> i64 {
        bytes[range].iter().fold(0, |n, b| n * 10 + i64::from(b - b'0'))
    };
    civil_day(number(0..4), number(5..7), number(8..10))
        .map(Some)
        .ok_or_else(|| format!("{text}: there is no such day"))
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// IMAP's `date` (`d-Mon-yyyy`, the day one or two digits and optionally preceded by a
/// space; the month case-insensitive).
fn imap_day(text: &str) -> Result<Option<i64>, String> {
    let trimmed = text.strip_prefix(' ').unwrap_or(text);
    let Some((day, rest)) = trimmed.split_once('-') else { return Ok(None) };
    let Some((month, year)) = rest.split_once('-') else { return Ok(None) };
    let digits = |s: &str, lengths: &[usize]| {
        lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(day, &[1, 2]) || !digits(year, &[4]) {
        return Ok(None);
    }
    let Some(month_index) = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month)) else {
        return Ok(None);
    };
    let (Ok(day), Ok(year)) = (day.parse::<i64>(), year.parse::<i64>()) else {
        return Ok(None);
    };
    let month = i64::try_from(month_index).unwrap_or(0) + 1;
    civil_day(year, month, day).map(Some).ok_or_else(|| format!("{text}: there is no such day"))
}

/// An optionally negative decimal integer (Dovecot's `str_to_time`).
fn signed_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date.
pub(crate) fn civil_day(year: i64, month: i64, day: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // H. Hinnant's days_from_civil.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `(year, month, day)` of a day number: the inverse of [`civil_day`].
pub(crate) fn civil_from_day(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A time interval as Dovecot's settings take it (`settings_get_time`): a number, spaces,
/// then a unit that is a prefix of `secs`/`seconds`, `mins`/`minutes`, `hours`, `days`,
/// `weeks` (case-insensitive), or milliseconds (`ms`, `msecs`…) in whole seconds. At most
/// 2^32 - 1 seconds.
pub(crate) fn parse_interval(text: &str) -> Result<u32, String> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return Err(format!("invalid interval {text:?}"));
    }
    let mut number: u64 =
        text[..digits_end].parse().map_err(|_| format!("interval {text:?} is too large"))?;
    let unit = text[digits_end..].trim_start_matches(' ');
    if unit.is_empty() && number != 0 {
        return Err(format!("interval {text:?} has no unit (e.g. s, m, h, d, w)"));
    }
    let is_prefix_of = |words: &[&str]| {
        words
            .iter()
            .any(|word| unit.len() <= word.len() && word[..unit.len()].eq_ignore_ascii_case(unit))
    };
    let multiplier: u64 = match unit.bytes().next().map(|b| b.to_ascii_lowercase()) {
        None => 1,
        Some(b's') if is_prefix_of(&["secs", "seconds"]) => 1,
        Some(b'm') if is_prefix_of(&["mins", "minutes"]) => 60,
        Some(b'm') if is_prefix_of(&["msecs", "mseconds", "millisecs", "milliseconds"]) => {
            if !number.is_multiple_of(1000) {
                return Err(format!("interval {text:?}: milliseconds must be whole seconds"));
            }
            number /= 1000;
            1
        }
        Some(b'h') if is_prefix_of(&["hours"]) => 3600,
        Some(b'd') if is_prefix_of(&["days"]) => 86_400,
        Some(b'w') if is_prefix_of(&["weeks"]) => 7 * 86_400,
        Some(_) => return Err(format!("invalid interval {text:?}")),
    };
    number
        .checked_mul(multiplier)
        .and_then(|seconds| u32::try_from(seconds).ok())
        .ok_or_else(|| format!("interval {text:?} is too large"))
}

/// A size as Dovecot's settings take it (`settings_get_size`): a number, spaces, then
/// `B`, or `K`, `M`, `G`, `T` (powers of 1024) optionally followed by `i` and `B`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?} (e.g. 1024, 10k, 5M)");
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return Err(invalid());
    }
    let number: u64 =
        text[..digits_end].parse().map_err(|_| format!("size {text:?} is too large"))?;
    let mut rest = text[digits_end..].trim_start_matches(' ').as_bytes();
    let multiplier: u64 = match rest.first().map(u8::to_ascii_uppercase) {
        Some(b'B') => 1,
        Some(b'K') => 1 << 10,
        Some(b'M') => 1 << 20,
        Some(b'G') => 1 << 30,
        Some(b'T') => 1 << 40,
        _ => 0,
    };
    if multiplier != 0 {
        rest = &rest[1..];
    }
    if multiplier > 1 {
        for optional in [b'I', b'B'] {
            if rest.first().map(u8::to_ascii_uppercase) == Some(optional) {
                rest = &rest[1..];
            }
        }
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    number.checked_mul(multiplier.max(1)).ok_or_else(|| format!("size {text:?} is too large"))
}

/// `*` in a message set: the last message (sequence numbers) or, in `UID` sets, the
/// highest possible UID (doveadm 2.3 compares UIDs with the set as written).
pub(crate) const STAR: u32 = u32::MAX;

/// A message set (`1:5,7,10:*`): sorted, non-overlapping, non-adjacent ranges.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct SequenceSet(Vec<(u32, u32)>);

impl SequenceSet {
    /// Parses IMAP's `sequence-set` as `imap_seq_set_parse` does: ranges are swapped when
    /// written backwards, `0` is invalid, the empty string is the empty set.
    pub(crate) fn parse(text: &str) -> Result<SequenceSet, String> {
        let invalid = || format!("invalid message set {text:?}");
        let mut set = SequenceSet::default();
        if text.is_empty() {
            return Ok(set);
        }
        // A trailing comma is accepted, as Dovecot does.
        for part in text.strip_suffix(',').unwrap_or(text).split(',') {
            let (first, second) = match part.split_once(':') {
                Some((first, second)) => (number(first), number(second)),
                None => (number(part), number(part)),
            };
            let (Some(first), Some(second)) = (first, second) else { return Err(invalid()) };
            set.insert(first.min(second), first.max(second));
        }
        Ok(set)
    }

    fn insert(&mut self, low: u32, high: u32) {
        let mut merged = (low, high);
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            let touches =
                u64::from(a) <= u64::from(merged.1) + 1 && u64::from(merged.0) <= u64::from(b) + 1;
            if touches {
                merged = (merged.0.min(a), merged.1.max(b));
            } else {
                kept.push((a, b));
            }
        }
        kept.push(merged);
        kept.sort_unstable();
        self.0 = kept;
    }

    /// Whether `value` is in the set as written (`*` being [`STAR`]).
    pub(crate) fn contains(&self, value: u32) -> bool {
        self.0.iter().any(|&(low, high)| low <= value && value <= high)
    }

    /// Whether the set has `*` in it.
    pub(crate) fn has_star(&self) -> bool {
        self.contains(STAR)
    }
}

/// A set element: a non-zero number (one that would be 2^32 - 1 becomes one less, as in
/// Dovecot, since that value means `*`) or `*`.
fn number(text: &str) -> Option<u32> {
    if text == "*" {
        return Some(STAR);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u32 = text.parse().ok()?;
    match value {
        0 => None,
        STAR => Some(STAR - 1),
        value => Some(value),
    }
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let element = |value: u32| if value == STAR { "*".to_owned() } else { value.to_string() };
        for (index, &(low, high)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if low == high {
                f.write_str(&element(low))?;
            } else {
                write!(f, "{}:{}", element(low), element(high))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
