//! The sample portal's calendar: it runs at UTC+03:00, gives message dates as ISO 8601 with that
//! offset (`2026-11-25T10:00:00+03:00`), and reads the dates a search is given (an ISO 8601 date,
//! or an RFC 3339 date-time with or without an offset; without one, the portal's own).

use super::php;

/// The portal's offset from UTC, in seconds.
pub const OFFSET_SECS: i64 = 3 * 3600;

/// A Unix time as the portal writes message dates: `2026-11-25T10:00:00+03:00`.
pub fn local(unix: i64) -> String {
    let utc = php::iso8601(unix + OFFSET_SECS);
    format!("{}+03:00", utc.trim_end_matches("+00:00"))
}

/// The Unix time of a wall-clock moment at the portal.
pub fn at(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 - OFFSET_SECS
}

/// A date or date-time as a search's `DATE`, `DATE_FROM` and `DATE_TO` are given: `2026-11-25`
/// (midnight at the portal), `2026-11-25T10:00`, `…:30`, `…:30.5`, then `Z`, `+03:00`, `+0300`
/// or nothing (the portal's offset); a space may stand for the `T`. `None` when it is none of
/// these.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    let date = text.get(..10)?;
    let (year, month, day) = (
        number(date.get(..4)?)?,
        number(date.get(5..7)?)?,
        number(date.get(8..10)?)?,
    );
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' || !(1..=12).contains(&month) {
        return None;
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(days * 86_400 - OFFSET_SECS);
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let (hour, minute) = (number(rest.get(..2)?)?, number(rest.get(3..5)?)?);
    if rest.as_bytes()[2] != b':' || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &rest[5..];
    let mut second = 0;
    if let Some(more) = rest.strip_prefix(':') {
        second = number(more.get(..2)?)?;
        if second > 60 {
            return None;
        }
        rest = &more[2..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &fraction[digits..];
        }
    }
    let offset = match rest {
        "" => OFFSET_SECS,
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let zone = rest[1..].replace(':', "");
            if zone.len() != 4 {
                return None;
            }
            let (h, m) = (number(zone.get(..2)?)?, number(zone.get(2..)?)?);
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn number(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_carry_the_portal_offset() {
        let unix = at(2026, 11, 25, 10, 0);
        assert_eq!(local(unix), "2026-11-25T10:00:00+03:00");
        assert_eq!(php::iso8601(unix), "2026-11-25T07:00:00+00:00");
    }

    #[test]
    fn parse_reads_dates_and_date_times() {
        let ten = at(2026, 11, 25, 10, 0);
        assert_eq!(parse("2026-11-25"), Some(at(2026, 11, 25, 0, 0)));
        assert_eq!(parse("2026-11-25T10:00"), Some(ten));
        assert_eq!(parse("2026-11-25T10:00:00+03:00"), Some(ten));
        assert_eq!(parse("2026-11-25 07:00:00Z"), Some(ten));
        assert_eq!(parse("2026-11-25T07:00:00.250+0000"), Some(ten));
        assert_eq!(parse("2026-11-25T02:00:00-05:00"), Some(ten));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-25T25:00",
            "2026-11-25T10:00+3",
            "2026-11-25X",
            "2026-11-25T10:00:00.Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
