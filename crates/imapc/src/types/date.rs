//! INTERNALDATE: `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP
//! zone DQUOTE` (RFC 3501 §9), e.g. `" 7-Jul-2024 10:00:00 +0200"`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Parses the text between the quotes. The day may be space-padded or have one or two
/// digits; month names are case-insensitive.
pub fn parse_internal_date(text: &[u8]) -> Option<DateTime<FixedOffset>> {
    let text = std::str::from_utf8(text).ok()?.trim_start();
    let mut parts = text.split(' ');
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut date_parts = date.split('-');
    let day: u32 = number(date_parts.next()?, 1, 2)?;
    let month_name = date_parts.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month_name))?;
    let year: i32 = i32::try_from(number(date_parts.next()?, 4, 4)?).ok()?;
    if date_parts.next().is_some() {
        return None;
    }
    let mut time_parts = time.split(':');
    let hour = number(time_parts.next()?, 2, 2)?;
    let minute = number(time_parts.next()?, 2, 2)?;
    let second = number(time_parts.next()?, 2, 2)?;
    if time_parts.next().is_some() || zone.len() != 5 {
        return None;
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone_hours = i32::try_from(number(&zone[1..3], 2, 2)?).ok()?;
    let zone_minutes = i32::try_from(number(&zone[3..5], 2, 2)?).ok()?;
    let offset = FixedOffset::east_opt(sign * (zone_hours * 3600 + zone_minutes * 60))?;
    let naive = NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()? + 1, day)?
        .and_hms_opt(hour, minute, second)?;
    offset.from_local_datetime(&naive).single()
}

fn number(text: &str, min_digits: usize, max_digits: usize) -> Option<u32> {
    let valid =
        (min_digits..=max_digits).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if valid { text.parse().ok() } else { None }
}

/// Formats for APPEND, with the day space-padded as the grammar's `date-day-fixed` says.
pub fn format_internal_date(date: &DateTime<FixedOffset>) -> String {
    let offset = date.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    format!(
        "{:>2}-{}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        date.day(),
        MONTHS[date.month0() as usize],
        date.year(),
        date.hour(),
        date.minute(),
        date.second(),
        offset / 3600,
        (offset % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let table: &[(&str, Option<i64>)] = &[
            (" 7-Jul-2024 10:00:00 +0200", Some(1_720_339_200)),
            ("07-Jul-2024 10:00:00 +0200", Some(1_720_339_200)),
            ("7-jul-2024 10:00:00 +0200", Some(1_720_339_200)),
            ("13-Jul-2024 23:59:59 +1400", Some(1_720_864_799)),
            ("09-Jul-2024 12:00:00 -0500", Some(1_720_544_400)),
            ("32-Jul-2024 10:00:00 +0200", None),
            ("07-Foo-2024 10:00:00 +0200", None),
            ("07-Jul-2024 10:00 +0200", None),
            ("07-Jul-2024 10:00:00 0200", None),
            ("", None),
        ];
        for (text, expected) in table {
            let parsed = parse_internal_date(text.as_bytes());
            assert_eq!(parsed.map(|d| d.timestamp()), *expected, "{text:?}");
            if let Some(date) = parsed {
                assert_eq!(parse_internal_date(format_internal_date(&date).as_bytes()), Some(date));
            }
        }
        let date = parse_internal_date(b"07-Jul-2024 10:00:00 +0200").expect("valid");
        assert_eq!(format_internal_date(&date), " 7-Jul-2024 10:00:00 +0200");
        let date = parse_internal_date(b"09-Jul-2024 12:00:00 -0530").expect("valid");
        assert_eq!(format_internal_date(&date), " 9-Jul-2024 12:00:00 -0530");
    }
}
