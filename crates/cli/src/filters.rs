//! doveadm's filter options turned into the engine's filters: `-m`/`-x` mailbox patterns,
//! `-n` namespaces, `-t`/`-e` received dates, `-O` flag, `-I` size.

use dsync_core::filter::{FlagCondition, MailboxFilter, MailboxPattern, MessageFilter};

use crate::args::FilterArgs;

/// Builds the mailbox filter (`-m`, `-x`) after checking `-n`.
pub(crate) fn mailbox_filter(
    include: &[String],
    exclude: &[String],
    namespaces: &[String],
) -> Result<MailboxFilter, String> {
    for prefix in namespaces {
        // Only the personal namespace is synced; its prefix is empty (Maildir, Dovecot) or
        // INBOX with the server's separator (Courier, Cyrus).
        let personal =
            prefix.is_empty() || prefix.trim_end_matches(['/', '.']).eq_ignore_ascii_case("INBOX");
        if !personal {
            return Err(format!(
                "-n {prefix}: only the personal namespace ('' or INBOX) is synced; shared and public namespaces are not supported"
            ));
        }
    }
    let parse = |patterns: &[String]| -> Result<Vec<MailboxPattern>, String> {
        patterns
            .iter()
            .map(|p| MailboxPattern::parse(p).map_err(|e| format!("{p:?}: {e}")))
            .collect()
    };
    Ok(MailboxFilter { include: parse(include)?, exclude: parse(exclude)? })
}

/// Builds the message filter (`-t`, `-e`, `-O`, `-I`), `now` being the current UNIX time.
pub(crate) fn message_filter(args: &FilterArgs, now: i64) -> Result<MessageFilter, String> {
    let mut filter = MessageFilter::default();
    if let Some(since) = &args.since {
        filter.received_since =
            Some(parse_date(since, now).map_err(|e| format!("-t {since}: {e}"))?);
    }
    if let Some(until) = &args.until {
        filter.received_until =
            Some(parse_date(until, now).map_err(|e| format!("-e {until}: {e}"))?);
    }
    if let Some(flag) = &args.flag {
        filter.flag = Some(match flag.strip_prefix('-') {
            _ if flag.is_empty() || flag == "-" => return Err("-O needs a flag".into()),
            Some(without) => FlagCondition::Without(without.to_owned()),
            None => FlagCondition::With(flag.clone()),
        });
    }
    if let Some(size) = &args.max_size {
        filter.max_size = Some(parse_size(size).map_err(|e| format!("-I {size}: {e}"))?);
    }
    Ok(filter)
}

/// `YYYY-MM-DD` (UTC midnight), `YYYY-MM-DDTHH:MM[:SS][Z]`, a UNIX time, or an age
/// (`30d`, `12h`, `2w`, `90m`, `45s`, also `30days`, `2 weeks`) counted back from `now`.
pub(crate) fn parse_date(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() > 8 {
        return text.parse().map_err(|_| "UNIX time out of range".into());
    }
    if let Some((date, time)) = split_date_time(text) {
        let mut parts = date.split('-');
        let mut next = |what: &str| -> Result<i64, String> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| format!("bad {what}"))
        };
        let (year, month, day) = (next("year")?, next("month")?, next("day")?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err("month or day out of range".into());
        }
        let mut seconds = 0;
        if let Some(time) = time {
            let time = time.trim_end_matches('Z');
            let mut fields = time.split(':').map(|f| f.parse::<i64>().ok());
            let hour = fields.next().flatten().filter(|h| (0..24).contains(h));
            let minute = fields.next().flatten().filter(|m| (0..60).contains(m));
            let second = fields.next().unwrap_or(Some(0)).filter(|s| (0..61).contains(s));
            match (hour, minute, second) {
                (Some(h), Some(m), Some(s)) => seconds = h * 3600 + m * 60 + s,
                _ => return Err("bad time of day (HH:MM[:SS])".into()),
            }
        }
        return Ok(days_from_civil(year, month, day) * 86_400 + seconds);
    }
    // An age: digits then a unit.
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let unit = text[digits.len()..].trim().to_ascii_lowercase();
    let amount: i64 = digits.parse().map_err(|_| {
        "expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS, a UNIX time or an age such as 30d".to_owned()
    })?;
    let seconds = match unit.trim_end_matches('s') {
        "" if unit.is_empty() => return Err("an age needs a unit (s, m, h, d, w)".into()),
        "" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "w" | "week" => 7 * 86_400,
        _ => return Err(format!("unknown unit {unit:?} (s, m, h, d, w)")),
    };
    Ok(now - amount.saturating_mul(seconds))
}

fn split_date_time(text: &str) -> Option<(&str, Option<&str>)> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    (date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-')
        .then_some((date, time))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `1234`, `10k`, `5M`, `1G` (binary multiples; `kB`/`MiB` spellings accepted).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let number: u64 = digits.parse().map_err(|_| "expected a size such as 1048576, 500k or 10M")?;
    let unit = text[digits.len()..].trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("unknown size unit {unit:?} (k, M, G)")),
    };
    number.checked_mul(multiplier).ok_or_else(|| "size too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn dates() {
        let cases = [
            ("2024-01-01", 1_704_067_200),
            ("1970-01-01", 0),
            ("2000-02-29T12:30", 951_827_400),
            ("2000-02-29T12:30:15Z", 951_827_415),
            ("1700000000", 1_700_000_000),
            ("30d", NOW - 30 * 86_400),
            ("2 weeks", NOW - 14 * 86_400),
            ("12h", NOW - 12 * 3600),
            ("90mins", NOW - 90 * 60),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_date(text, NOW), Ok(expected), "{text}");
        }
        for bad in ["", "yesterday", "2024-13-01", "2024-01-01T25:00", "30", "5 fortnights"] {
            assert!(parse_date(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("1234", 1234),
            ("10k", 10_240),
            ("5M", 5 << 20),
            ("1GiB", 1 << 30),
            ("2 MB", 2 << 20),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
        for bad in ["", "M", "5X", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespaces_and_patterns() {
        assert!(mailbox_filter(&[], &[], &[String::new(), "INBOX/".into()]).is_ok());
        let error = mailbox_filter(&[], &[], &["shared/".into()]).expect_err("shared");
        assert!(error.contains("only the personal namespace"), "{error}");
        assert!(mailbox_filter(&["\\Bogus".into()], &[], &[]).is_err());
        let filter = mailbox_filter(&["INBOX".into()], &["\\Trash".into()], &[]).expect("valid");
        assert_eq!(filter.include.len(), 1);
        assert_eq!(filter.exclude.len(), 1);
    }

    #[test]
    fn flag_condition() {
        let args = |flag: &str| FilterArgs {
            mailboxes: vec![],
            exclude: vec![],
            namespaces: vec![],
            since: None,
            until: None,
            flag: Some(flag.into()),
            max_size: None,
        };
        let with = message_filter(&args("\\Seen"), NOW).expect("valid");
        assert_eq!(with.flag, Some(FlagCondition::With("\\Seen".into())));
        let without = message_filter(&args("-$Label1"), NOW).expect("valid");
        assert_eq!(without.flag, Some(FlagCondition::Without("$Label1".into())));
        assert!(message_filter(&args("-"), NOW).is_err());
    }
}
