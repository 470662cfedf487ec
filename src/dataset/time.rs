//! Timestamps as Unix seconds, parsed without allocation.
//!
//! Music4All-Onion writes `YYYY-MM-DD HH:MM:SS`; the import reads hundreds of millions of
//! them, so this is a hand-written parser rather than a general date library. Plain Unix
//! seconds and the `T`-separated ISO form are accepted too.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The decimal value of an all-digit field; `None` for any other byte or on overflow
/// (an over-long number is bad input, not a reason to panic).
fn digits(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` (or with `T`) or integer Unix seconds.
pub fn parse_timestamp(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    if s.len() >= 10 && s[4] == b'-' && s[7] == b'-' {
        let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        let mut secs = days_from_civil(y as i64, m as u32, d as u32) * 86_400;
        if s.len() > 10 {
            let t = &s[11..];
            if !(s[10] == b' ' || s[10] == b'T') || t.len() < 8 || t[2] != b':' || t[5] != b':' {
                return None;
            }
            let (h, mi, se) = (digits(&t[0..2])?, digits(&t[3..5])?, digits(&t[6..8])?);
            if h > 23 || mi > 59 || se > 60 {
                return None;
            }
            // Fractional seconds and a trailing `Z` are tolerated and ignored.
            let rest = &t[8..];
            let ok_rest = rest.is_empty()
                || rest == b"Z"
                || (rest[0] == b'.' && rest[1..].iter().all(|c| c.is_ascii_digit() || *c == b'Z'));
            if !ok_rest {
                return None;
            }
            secs += (h * 3600 + mi * 60 + se) as i64;
        }
        return Some(secs);
    }
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.len() > 12 {
        return None;
    }
    let v = digits(body)? as i64;
    Some(if neg { -v } else { v })
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), the inverse of [`parse_timestamp`].
pub fn format_timestamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a date given on the command line, for clap.
pub fn parse_date_arg(s: &str) -> Result<i64, String> {
    parse_timestamp(s.as_bytes())
        .ok_or_else(|| format!("`{s}` is not a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_onion_timestamps_and_round_trips() {
        assert_eq!(parse_timestamp(b"1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp(b"2019-02-20"), Some(1_550_620_800));
        assert_eq!(parse_timestamp(b"2020-02-20 13:45:07"), Some(1_582_206_307));
        assert_eq!(
            parse_timestamp(b"2020-02-20T13:45:07Z"),
            Some(1_582_206_307)
        );
        assert_eq!(parse_timestamp(b"1582206307"), Some(1_582_206_307));
        assert_eq!(parse_timestamp(b"2020-02-29"), Some(1_582_934_400));
        // More than u32 holds: parsed, where it used to overflow (a panic in debug).
        assert_eq!(parse_timestamp(b"99999999999"), Some(99_999_999_999));
        assert_eq!(
            parse_timestamp(b"9999-12-31 23:59:59"),
            Some(253_402_300_799)
        );
        assert_eq!(format_timestamp(1_582_206_307), "2020-02-20 13:45:07");
        for bad in [
            &b"2020-13-01"[..],
            b"20-02-2020",
            b"yesterday",
            b"2020-02-20 25:00:00",
            b"2019-02-29",
            b"2020-04-31",
            b"",
        ] {
            assert_eq!(
                parse_timestamp(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
