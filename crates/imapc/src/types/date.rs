//! INTERNALDATE: `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP
//! zone DQUOTE` (RFC 3501 §9), e.g. `" 7-Jul-2024 10:00:00 +0200"`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Parses the text between the quotes. The day may be space-padded or have one or two
/// digits; month names are case-insensitive.
pub fn parse_internal_date(text: &[u8]) -> Option<DateTime<FixedOffset>> {
    let start = text.iter().position(|&b| b != b' ')?;
    let text = &text[start..];
    // "D-Mon-YYYY HH:MM:SS +ZZZZ" (25 bytes) or with a two-digit day (26 bytes).
    let (day, rest) = match text {
        [d, b'-', rest @ ..] if d.is_ascii_digit() => (u32::from(d - b'0'), rest),
        [d1, d2, b'-', rest @ ..] => (two_digits(*d1, *d2)?, rest),
        _ => return None,
    };
    let [
        m1,
        m2,
        m3,
        b'-',
        y1,
        y2,
        y3,
        y4,
        b' ',
        h1,
        h2,
        b':',
        i1,
        i2,
        b':',
        s1,
        s2,
        b' ',
        sign,
        z1,
        z2,
        z3,
        z4,
    ] = *rest
    else {
        return None;
    };
    let month = month_index([m1, m2, m3])?;
    let year = i32::try_from(two_digits(y1, y2)? * 100 + two_digits(y3, y4)?).ok()?;
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone_hours = i32::try_from(two_digits(z1, z2)?).ok()?;
    let zone_minutes = i32::try_from(two_digits(z3, z4)?).ok()?;
    let offset = FixedOffset::east_opt(sign * (zone_hours * 3600 + zone_minutes * 60))?;
    let naive = NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()? + 1, day)?.and_hms_opt(
        two_digits(h1, h2)?,
        two_digits(i1, i2)?,
        two_digits(s1, s2)?,
    )?;
    offset.from_local_datetime(&naive).single()
}

/// The month (0 for January) named by three letters in any case: one comparison of the
/// lower-cased name (setting bit 5 lower-cases a letter and never turns another byte into
/// one) instead of a case-insensitive comparison with each month in turn.
fn month_index(name: [u8; 3]) -> Option<usize> {
    Some(match name.map(|byte| byte | 0x20) {
        [b'j', b'a', b'n'] => 0,
        [b'f', b'e', b'b'] => 1,
        [b'm', b'a', b'r'] => 2,
        [b'a', b'p', b'r'] => 3,
        [b'm', b'a', b'y'] => 4,
        [b'j', b'u', b'n'] => 5,
        [b'j', b'u', b'l'] => 6,
        [b'a', b'u', b'g'] => 7,
        [b's', b'e', b'p'] => 8,
        [b'o', b'c', b't'] => 9,
        [b'n', b'o', b'v'] => 10,
        [b'd', b'e', b'c'] => 11,
        _ => return None,
    })
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
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
        // Every three bytes whose first is a letter or one of the bytes next to them (the
        // others cannot name a month either way): the month found as a case-insensitive
        // match against each name in turn, as first written.
        for first in (0x20u8..0x80).chain([0xc1, 0xe1, 0xff]) {
            for second in 0u8..=255 {
                let thirds = b"nbrylgptvcNBRYLGPTVC\x0e\x2e\xce\x02\x22\xc2";
                for &third in thirds {
                    let name = [first, second, third];
                    let reference =
                        MONTHS.iter().position(|m| m.as_bytes().eq_ignore_ascii_case(&name));
                    assert_eq!(month_index(name), reference, "{name:?}");
                }
            }
        }
        let date = parse_internal_date(b"09-Jul-2024 12:00:00 -0530").expect("valid");
        assert_eq!(format_internal_date(&date), " 9-Jul-2024 12:00:00 -0530");
    }
}
