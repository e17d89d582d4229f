//! Calendar arithmetic and the timestamp formats AWS uses, without a date crate.
//!
//! Formats: SigV4 "basic" ISO-8601 (`20261126T144500Z`, SigV4 §"Handling dates"),
//! the credential-scope date stamp (`20261126`), extended ISO-8601 / RFC 3339 as
//! used in XML responses and IAM `Date*` conditions (`2026-11-26T14:45:00Z`), and
//! the HTTP `Date` header's IMF-fixdate (RFC 9110 §5.6.7).
//!
//! All instants are `i64` seconds since the Unix epoch, UTC; leap seconds do not
//! exist here, as in every AWS wire format.

use thiserror::Error;

/// A timestamp string that is not in the expected format or names no real instant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {format} timestamp: {value:?}")]
pub struct TimeError {
    /// Which format was expected.
    pub format: &'static str,
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

impl TimeError {
    fn new(format: &'static str, value: &str) -> Self {
        TimeError {
            format,
            value: value.chars().take(64).collect(),
        }
    }
}

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
///
/// Shifts the year to start in March so the leap day is the last day of the
/// year, then counts whole 400-year eras (146 097 days each).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let shifted_month = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1–12) of `year`; 0 for an invalid month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Unix seconds of a UTC civil date and time, validating every field.
pub fn unix_from_parts(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * SECS_PER_DAY
            + i64::from(hour) * 3600
            + i64::from(minute) * 60
            + i64::from(second),
    )
}

/// The UTC `(year, month, day, hour, minute, second)` of a Unix instant.
pub fn parts_from_unix(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(SECS_PER_DAY);
    let secs = t.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        ((secs % 3600) / 60) as u32,
        (secs % 60) as u32,
    )
}

/// Parses exactly `n` ASCII digits at `s[at..at + n]`.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    let mut v: u32 = 0;
    for &b in part {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// Parses a SigV4 timestamp, `YYYYMMDD'T'HHMMSS'Z'` (as in `X-Amz-Date`).
pub fn parse_amz_date(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError::new("X-Amz-Date (YYYYMMDDTHHMMSSZ)", s);
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(err());
    }
    let year = digits(b, 0, 4).ok_or_else(err)?;
    let month = digits(b, 4, 2).ok_or_else(err)?;
    let day = digits(b, 6, 2).ok_or_else(err)?;
    let hour = digits(b, 9, 2).ok_or_else(err)?;
    let minute = digits(b, 11, 2).ok_or_else(err)?;
    let second = digits(b, 13, 2).ok_or_else(err)?;
    unix_from_parts(i64::from(year), month, day, hour, minute, second).ok_or_else(err)
}

/// Parses a credential-scope date stamp `YYYYMMDD` to the Unix instant of its midnight.
pub fn parse_date_stamp(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError::new("date stamp (YYYYMMDD)", s);
    let b = s.as_bytes();
    if b.len() != 8 {
        return Err(err());
    }
    let year = digits(b, 0, 4).ok_or_else(err)?;
    let month = digits(b, 4, 2).ok_or_else(err)?;
    let day = digits(b, 6, 2).ok_or_else(err)?;
    unix_from_parts(i64::from(year), month, day, 0, 0, 0).ok_or_else(err)
}

/// Formats a Unix instant as a SigV4 timestamp, `20261126T144500Z`.
pub fn format_amz_date(t: i64) -> String {
    let (y, mo, d, h, mi, s) = parts_from_unix(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Formats the UTC date of a Unix instant as a credential-scope stamp, `20261126`.
pub fn format_date_stamp(t: i64) -> String {
    let (y, mo, d, ..) = parts_from_unix(t);
    format!("{y:04}{mo:02}{d:02}")
}

/// Formats a Unix instant as extended ISO-8601 in UTC, `2026-11-26T14:45:00Z`
/// (the form AWS query-protocol XML responses use).
pub fn format_iso8601(t: i64) -> String {
    let (y, mo, d, h, mi, s) = parts_from_unix(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses extended ISO-8601 / RFC 3339 as IAM `Date*` conditions accept it:
/// `2026-11-26`, `2026-11-26T14:45Z`, `2026-11-26T14:45:00Z`,
/// with optional fractional seconds (truncated) and a `Z` or `±hh:mm` offset.
/// A time without any zone designator is taken as UTC.
pub fn parse_iso8601(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError::new("ISO-8601", s);
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(err());
    }
    let year = i64::from(digits(b, 0, 4).ok_or_else(err)?);
    let month = digits(b, 5, 2).ok_or_else(err)?;
    let day = digits(b, 8, 2).ok_or_else(err)?;
    if b.len() == 10 {
        return unix_from_parts(year, month, day, 0, 0, 0).ok_or_else(err);
    }
    if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
        return Err(err());
    }
    let hour = digits(b, 11, 2).ok_or_else(err)?;
    if b.get(13) != Some(&b':') {
        return Err(err());
    }
    let minute = digits(b, 14, 2).ok_or_else(err)?;
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = digits(b, i + 1, 2).ok_or_else(err)?;
        i += 3;
        if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return Err(err());
            }
        }
    }
    let base = unix_from_parts(year, month, day, hour, minute, second).ok_or_else(err)?;
    match &b[i..] {
        [] | [b'Z'] | [b'z'] => Ok(base),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [_, _, b':', _, _] => (digits(rest, 0, 2), digits(rest, 3, 2)),
                [_, _, _, _] => (digits(rest, 0, 2), digits(rest, 2, 2)),
                [_, _] => (digits(rest, 0, 2), Some(0)),
                _ => (None, None),
            };
            let (oh, om) = (oh.ok_or_else(err)?, om.ok_or_else(err)?);
            if oh > 23 || om > 59 {
                return Err(err());
            }
            let offset = i64::from(oh * 3600 + om * 60);
            Ok(if *sign == b'+' {
                base - offset
            } else {
                base + offset
            })
        }
        _ => Err(err()),
    }
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats a Unix instant as an HTTP date (IMF-fixdate), `Thu, 26 Nov 2026 14:45:00 GMT`.
pub fn format_http_date(t: i64) -> String {
    let (y, mo, d, h, mi, s) = parts_from_unix(t);
    let weekday = WEEKDAYS[t.div_euclid(SECS_PER_DAY).rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1) as usize];
    format!("{weekday}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} GMT")
}

/// Parses an HTTP date: IMF-fixdate, `Thu, 26 Nov 2026 14:45:00 GMT` (RFC 9110
/// §5.6.7), or the RFC 2822 form with a numeric zone that Python's
/// `email.utils.formatdate` (and so botocore) writes, `Thu, 26 Nov 2026 14:45:00 -0000`.
/// The obsolete RFC 850 and asctime forms are not accepted. The weekday name is
/// checked for syntax but not against the date, as RFC 9110 lets recipients ignore it.
pub fn parse_http_date(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError::new("HTTP date (IMF-fixdate)", s);
    let b = s.as_bytes();
    // "Thu, 26 Nov 2026 14:45:00" is 25 bytes, then " GMT" or " +hhmm".
    if b.len() < 29 || &b[3..5] != b", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return Err(err());
    }
    if b[19] != b':' || b[22] != b':' || b[25] != b' ' {
        return Err(err());
    }
    let offset = match &b[26..] {
        b"GMT" | b"UTC" => 0,
        [sign @ (b'+' | b'-'), _, _, _, _] => {
            let hh = digits(b, 27, 2).ok_or_else(err)?;
            let mm = digits(b, 29, 2).ok_or_else(err)?;
            if hh > 23 || mm > 59 {
                return Err(err());
            }
            let secs = i64::from(hh * 3600 + mm * 60);
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return Err(err()),
    };
    if !WEEKDAYS.iter().any(|w| w.as_bytes() == &b[0..3]) {
        return Err(err());
    }
    let day = digits(b, 5, 2).ok_or_else(err)?;
    let month = MONTHS
        .iter()
        .position(|m| m.as_bytes() == &b[8..11])
        .ok_or_else(err)? as u32
        + 1;
    let year = digits(b, 12, 4).ok_or_else(err)?;
    let hour = digits(b, 17, 2).ok_or_else(err)?;
    let minute = digits(b, 20, 2).ok_or_else(err)?;
    let second = digits(b, 23, 2).ok_or_else(err)?;
    let local =
        unix_from_parts(i64::from(year), month, day, hour, minute, second).ok_or_else(err)?;
    Ok(local - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn civil_round_trips_every_day_over_eight_centuries() {
        // Walk day by day from 1600-01-01 so every month length and leap rule is hit.
        let start = days_from_civil(1600, 1, 1);
        let (mut y, mut m, mut d) = (1600i64, 1u32, 1u32);
        for n in start..start + 365 * 800 {
            assert_eq!(civil_from_days(n), (y, m, d), "day {n}");
            assert_eq!(days_from_civil(y, m, d), n);
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2026));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2026, 13), 0);
    }

    #[test]
    fn amz_date_parses_and_formats() {
        let t = parse_amz_date("20261126T144500Z").unwrap();
        assert_eq!(t, 1_795_704_300);
        assert_eq!(format_amz_date(t), "20261126T144500Z");
        assert_eq!(format_date_stamp(t), "20261126");
        assert_eq!(format_iso8601(t), "2026-11-26T14:45:00Z");
        assert_eq!(parse_amz_date("20150830T123600Z").unwrap(), 1_440_938_160);
        assert_eq!(parse_amz_date("19700101T000000Z").unwrap(), 0);
    }

    #[test]
    fn amz_date_rejects_malformed_and_impossible() {
        for bad in [
            "",
            "20261126T144500",
            "20261126 144500Z",
            "2026112T144500Z",
            "20261126T144500Z ",
            "20261326T144500Z",
            "20260230T000000Z",
            "20261126T244500Z",
            "20261126T146000Z",
            "20261126T144560Z",
            "2026-11-26T14:45:00Z",
            "2026112aT144500Z",
            "+0261126T144500Z",
            "２0261126T144500Z",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_amz_date("20240229T000000Z").is_ok());
        assert!(parse_amz_date("20230229T000000Z").is_err());
    }

    #[test]
    fn date_stamp() {
        assert_eq!(parse_date_stamp("20261126").unwrap(), 1_795_651_200);
        assert_eq!(
            parse_date_stamp("20261126").unwrap() + 14 * 3600 + 45 * 60,
            parse_amz_date("20261126T144500Z").unwrap()
        );
        for bad in ["2026112", "202611261", "20261131", "2026-11-", "abcdefgh"] {
            assert!(parse_date_stamp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn iso8601_forms() {
        let t = 1_795_704_300;
        for ok in [
            "2026-11-26T14:45:00Z",
            "2026-11-26T14:45:00.000Z",
            "2026-11-26T14:45:00.999999z",
            "2026-11-26T14:45Z",
            "2026-11-26T14:45:00",
            "2026-11-26T16:45:00+02:00",
            "2026-11-26T16:45:00+0200",
            "2026-11-26T16:45:00+02",
            "2026-11-26T12:45:00-02:00",
            "2026-11-26 14:45:00Z",
        ] {
            assert_eq!(parse_iso8601(ok), Ok(t), "{ok}");
        }
        assert_eq!(parse_iso8601("2026-11-26").unwrap(), 1_795_651_200);
        for bad in [
            "2026-11-26T",
            "2026-11-26T14",
            "2026-11-26T14:45:00.Z",
            "2026-11-26T14:45:00Q",
            "2026-11-26T14:45:00+2",
            "2026-11-26T14:45:00+25:00",
            "2026/11/26",
            "2026-02-30",
            "26-11-2026",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_date() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap(),
            784_111_777
        );
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = 1_795_704_300;
        assert_eq!(parse_http_date(&format_http_date(t)), Ok(t));
        assert_eq!(
            parse_http_date("Thu, 26 Nov 2026 14:45:00 -0000"),
            Ok(1_795_704_300)
        );
        assert_eq!(
            parse_http_date("Thu, 26 Nov 2026 16:45:00 +0200"),
            Ok(1_795_704_300)
        );
        assert_eq!(
            parse_http_date("Thu, 26 Nov 2026 14:45:00 UTC"),
            Ok(1_795_704_300)
        );
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 06 Nov 1994 08:49:37 +2400",
            "Sun, 06 Nov 1994 08:49:37 +02:00",
            "Sun, 06 Nov 1994 08:49:37  GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Noo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
        ] {
            assert!(parse_http_date(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip_pseudo_random_instants() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 0000-01-01 .. 9999-12-31 keeps four-digit years.
            let t = (x % 315_537_897_600) as i64 - 62_167_219_200;
            assert_eq!(parse_amz_date(&format_amz_date(t)), Ok(t));
            assert_eq!(parse_iso8601(&format_iso8601(t)), Ok(t));
            assert_eq!(parse_http_date(&format_http_date(t)), Ok(t));
            let midnight = t - t.rem_euclid(86_400);
            assert_eq!(parse_date_stamp(&format_date_stamp(t)), Ok(midnight));
        }
    }
}
