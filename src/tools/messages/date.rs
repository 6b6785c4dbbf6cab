//! The dates a search takes: an ISO 8601 date (`2026-03-04`) or an RFC 3339 date-time
//! (`2026-03-04T09:43:26+03:00`, `…Z`), checked field by field (a 30 February or a 25th hour is
//! refused) so that the portal is never sent a date it would misread.

/// The longest date taken: `2026-03-04T09:43:26.123456789+03:00` is 35 characters.
const MAX_CHARS: usize = 40;

/// A checked date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// As given, trimmed: what the portal is sent.
    pub text: String,
    /// Its moment in seconds since 1970 (UTC); a bare date counts from midnight UTC.
    pub seconds: i64,
    /// Whether it has a time of day (and so its own offset): a bare date's midnight is the
    /// portal's, whose offset is not known here.
    pub timed: bool,
}

/// `text` as a date or date-time, if it is one.
pub fn parse(text: &str) -> Option<When> {
    let text = text.trim();
    if text.len() > MAX_CHARS || !text.is_ascii() {
        return None;
    }
    let (day, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let days = date(day)?;
    let seconds = match time {
        None => 0,
        Some(time) => clock(time)?,
    };
    Some(When {
        text: text.to_owned(),
        seconds: days * 86_400 + seconds,
        timed: time.is_some(),
    })
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return None;
    };
    let year = number(year, 4, 1970..=9999)?;
    let month = number(month, 2, 1..=12)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = number(day, 2, 1..=month_days)?;
    Some(days_from_civil(year, month, day))
}

/// `HH:MM:SS[.fraction](Z|±HH:MM)` as seconds into the day, in UTC (may leave the day).
fn clock(text: &str) -> Option<i64> {
    let (local, offset) = if let Some(local) = text.strip_suffix(['Z', 'z']) {
        (local, 0)
    } else {
        let at = text.rfind(['+', '-'])?;
        let (hours, minutes) = text[at + 1..].split_once(':')?;
        let size = number(hours, 2, 0..=23)? * 3600 + number(minutes, 2, 0..=59)? * 60;
        (
            &text[..at],
            if text[at..].starts_with('-') {
                -size
            } else {
                size
            },
        )
    };
    let (whole, fraction) = match local.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (local, None),
    };
    if let Some(fraction) = fraction
        && (fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let parts: Vec<&str> = whole.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return None;
    };
    let seconds = number(hours, 2, 0..=23)? * 3600
        + number(minutes, 2, 0..=59)? * 60
        + number(seconds, 2, 0..=60)?;
    Some(seconds - offset)
}

/// Exactly `width` ASCII digits within `range`.
fn number(text: &str, width: usize, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| range.contains(n))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_date_times_are_read_exactly() {
        let seconds = |text: &str| parse(text).map(|w| w.seconds);
        assert_eq!(seconds("1970-01-01"), Some(0));
        assert_eq!(seconds(" 2026-03-04 "), Some(1_772_582_400));
        assert_eq!(seconds("2026-03-04T00:00:00Z"), Some(1_772_582_400));
        assert_eq!(seconds("2026-03-04T03:00:00+03:00"), Some(1_772_582_400));
        assert_eq!(seconds("2026-03-03T21:00:00.5-03:00"), Some(1_772_582_400));
        assert_eq!(seconds("2024-02-29"), Some(1_709_164_800));
        assert_eq!(
            parse("2026-03-04").map(|w| w.text),
            Some("2026-03-04".to_owned())
        );
        for wrong in [
            "",
            "yesterday",
            "2026-3-4",
            "2026-02-29",
            "2100-02-29",
            "2026-13-01",
            "2026-04-31",
            "1969-12-31",
            "2026-03-04T24:00:00Z",
            "2026-03-04T10:00:00",
            "2026-03-04T10:00Z",
            "2026-03-04T10:00:00+3:00",
            "2026-03-04T10:00:00.Z",
            "2026-03-04T10:00:00+03:00x",
            "２０２６-03-04",
            "2026-03-04T10:00:00+24:00",
        ] {
            assert_eq!(parse(wrong), None, "{wrong}");
        }
    }
}
