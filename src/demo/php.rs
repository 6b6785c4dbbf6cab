//! The two bits of PHP behaviour the sample portal must reproduce: `intval` on request
//! parameters, and the ISO-8601 dates of the `time` block.

use serde_json::Value;

/// PHP's `intval` on a decoded request value: leading whitespace, an optional sign and the longest
/// run of digits; anything else is 0. Floats truncate toward zero, `true` is 1.
pub fn intval(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
            .unwrap_or(0),
        Value::String(s) => leading_integer(s),
        Value::Bool(b) => i64::from(*b),
        Value::Null | Value::Array(_) | Value::Object(_) => 0,
    }
}

fn leading_integer(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // PHP saturates on overflow.
    let magnitude = digits
        .parse::<i64>()
        .unwrap_or(if digits.is_empty() { 0 } else { i64::MAX });
    if negative { -magnitude } else { magnitude }
}

/// `2026-03-02T10:09:14+00:00` for a Unix time, in UTC.
pub fn iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intval_follows_php() {
        let cases = [
            (json!(2935), 2935),
            (json!("2935"), 2935),
            (json!("  12abc"), 12),
            (json!("abc"), 0),
            (json!("-5"), -5),
            (json!(""), 0),
            (json!(7.9), 7),
            (json!(true), 1),
            (json!(null), 0),
            (json!({"a": 1}), 0),
        ];
        for (value, expected) in cases {
            assert_eq!(intval(&value), expected, "{value}");
        }
    }

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(1_772_453_354), "2026-03-02T12:09:14+00:00");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00+00:00");
    }
}
