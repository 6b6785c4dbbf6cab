//! The Bitrix24 response envelope: `{"result": …, "time": {…}}` on success, `{"error": …}` on
//! failure whatever the HTTP status. Parsing is lenient where the portals vary (every `time`
//! field optional, numbers as strings) and strict where it matters (no `result`, no answer).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::bounded;
use super::clock::plausible_secs;
use super::error::{ApiError, CallError};
use super::memory::{LARGE_BODY, LargeAnswer};
pub use super::untrusted::scrub;
use super::untrusted::{MAX_CODE_CHARS, MAX_DESCRIPTION_CHARS, excerpt, sanitize};

/// A successful answer: the `result` value, the paging fields of list methods, and what the portal
/// said about timing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub result: Value,
    /// `total` of a list method: how many items there are in all (non-negative, when sent).
    pub total: Option<i64>,
    /// `next` of a list method: the offset of the next page, when there is one.
    pub next: Option<i64>,
    pub time: Timing,
    /// Whether `result` was cut short: it held more values than are ever passed on (see
    /// [`super::bounded`]), so any list read from it may be incomplete.
    pub cut: bool,
    /// Held while the answer of a large body is in use (see [`super::memory`]).
    pub large: Option<Arc<LargeAnswer>>,
}

/// The `time` block. Every field is optional: the set varies by method, portal and plan, and
/// `operating`/`operating_reset_at` are absent when the portal's limiter is off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    /// Seconds of execution the method used in the current 10-minute window.
    pub operating: Option<f64>,
    /// Unix time when the oldest minute of that window drops out.
    pub operating_reset_at: Option<f64>,
}

/// Turns a complete HTTP answer into an [`Envelope`] or the [`CallError`] it carries.
/// `secrets` are scrubbed from any excerpt of the body (a proxy's error page may echo the URL).
pub fn parse(status: u16, body: &[u8], secrets: &[String]) -> Result<Envelope, CallError> {
    let unexpected = |detail: String| CallError::UnexpectedResponse { status, detail };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(unexpected("empty body".to_owned()));
    }
    let large = (body.len() >= LARGE_BODY).then(|| Arc::new(LargeAnswer::hold()));
    let bounded::Parsed { value, cut } = bounded::parse(body).map_err(|_| {
        unexpected(format!(
            "body is not JSON: \"{}\"",
            excerpt(&String::from_utf8_lossy(body), secrets)
        ))
    })?;
    let Value::Object(mut object) = value else {
        return Err(unexpected(format!(
            "body is JSON but not an object: \"{}\"",
            excerpt(&value.to_string(), secrets)
        )));
    };
    // `"error": null` beside a result is how some proxies and older portals say "no error".
    if let Some(code) = object.get("error").filter(|code| !code.is_null()) {
        return Err(CallError::Api(api_error(status, code, &object, secrets)));
    }
    let paging = |name: &str| {
        object
            .get(name)
            .and_then(lenient_integer)
            .filter(|n| *n >= 0)
    };
    let (total, next) = (paging("total"), paging("next"));
    match object.remove("result") {
        Some(result) => Ok(Envelope {
            result,
            total,
            next,
            time: timing(object.get("time")),
            cut,
            large,
        }),
        None => Err(unexpected(format!(
            "JSON object without \"result\" or \"error\": \"{}\"",
            excerpt(&Value::Object(object).to_string(), secrets)
        ))),
    }
}

/// Reads an integer that the portal may send as a number or as a numeric string, as the PHP SDK's
/// `(int)` cast accepts. Fractions and non-numeric text are refused rather than truncated.
pub fn lenient_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn api_error(
    status: u16,
    code: &Value,
    object: &Map<String, Value>,
    secrets: &[String],
) -> ApiError {
    // Codes are documented as strings of digits, letters and underscores; some portals send a
    // bare number.
    let code = match code {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let description = match object.get("error_description") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ApiError::new(
        sanitize(&code, secrets, MAX_CODE_CHARS),
        sanitize(&description, secrets, MAX_DESCRIPTION_CHARS),
        status,
    )
}

fn timing(time: Option<&Value>) -> Timing {
    // Rust's float parser takes "inf" and "NaN": only finite, non-negative values are kept.
    let field = |name: &str| {
        time.and_then(|t| t.get(name))
            .and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            })
            .and_then(plausible_secs)
    };
    Timing {
        operating: field("operating"),
        operating_reset_at: field("operating_reset_at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(status: u16, body: &str) -> Envelope {
        parse(status, body.as_bytes(), &[]).unwrap()
    }

    fn err(status: u16, body: &str) -> CallError {
        parse(status, body.as_bytes(), &["s3cr3t".to_owned()]).unwrap_err()
    }

    #[test]
    fn parses_the_documented_success_with_full_time_block() {
        let env = ok(
            200,
            r#"{"result":[99,1269,1271],"time":{"start":1772453354,"finish":1772453354.969984,
            "duration":0.9699840545654297,"processing":0,"date_start":"2026-03-02T11:09:14+01:00",
            "date_finish":"2026-03-02T11:09:14+01:00","operating_reset_at":1772453954,"operating":0}}"#,
        );
        assert_eq!(env.result, json!([99, 1269, 1271]));
        assert_eq!(env.time.operating, Some(0.0));
        assert_eq!(env.time.operating_reset_at, Some(1772453954.0));
    }

    #[test]
    fn time_block_and_its_fields_are_optional() {
        assert_eq!(ok(200, r#"{"result":[]}"#).time, Timing::default());
        let env = ok(200, r#"{"result":[],"time":{"operating":"0.5"}}"#);
        assert_eq!(env.time.operating, Some(0.5));
        assert_eq!(env.time.operating_reset_at, None);
    }

    #[test]
    fn recognises_an_error_body_whatever_the_status() {
        for status in [200, 400, 401, 403, 500, 503] {
            let e = err(
                status,
                r#"{"error":"ACCESS_ERROR","error_description":"Action unavailable"}"#,
            );
            assert_eq!(
                e,
                CallError::Api(ApiError::new("ACCESS_ERROR", "Action unavailable", status))
            );
        }
    }

    #[test]
    fn error_codes_may_be_numbers_and_descriptions_absent() {
        let CallError::Api(api) = err(400, r#"{"error":42}"#) else {
            panic!()
        };
        assert_eq!((api.code.as_str(), api.description.as_str()), ("42", ""));
    }

    #[test]
    fn non_envelope_bodies_are_unexpected_with_a_scrubbed_excerpt() {
        let cases = [
            ("", "empty body"),
            ("  \n", "empty body"),
            (
                "<html><title>502 Bad Gateway</title> /rest/1/s3cr3t/x</html>",
                "body is not JSON",
            ),
            (r#"{"result":[1,2"#, "body is not JSON"),
            ("[1,2,3]", "not an object"),
            (r#"{"items":[]}"#, "without \"result\""),
        ];
        for (body, expected) in cases {
            let e = err(502, body);
            let CallError::UnexpectedResponse { status, detail } = &e else {
                panic!("{e:?}")
            };
            assert_eq!(*status, 502);
            assert!(detail.contains(expected), "{body:?}: {detail}");
            assert!(!detail.contains("s3cr3t"), "{detail}");
        }
    }

    #[test]
    fn a_null_error_beside_a_result_is_a_success() {
        assert_eq!(ok(200, r#"{"result":[1],"error":null}"#).result, json!([1]));
        assert!(matches!(
            err(200, r#"{"error":null}"#),
            CallError::UnexpectedResponse { .. }
        ));
    }

    #[test]
    fn hostile_time_fields_are_ignored() {
        for value in [
            r#""inf""#,
            r#""NaN""#,
            "-1",
            r#""-inf""#,
            "null",
            "{}",
            r#""soon""#,
        ] {
            let body = format!(
                r#"{{"result":[],"time":{{"operating":{value},"operating_reset_at":{value}}}}}"#
            );
            assert_eq!(ok(200, &body).time, Timing::default(), "{value}");
        }
    }

    #[test]
    fn error_texts_are_escaped_bounded_and_scrubbed() {
        let body = format!(
            r#"{{"error":"X\nY","error_description":"S3CR3T\u001b[2J{}"}}"#,
            "d".repeat(10_000)
        );
        let CallError::Api(api) = err(400, &body) else {
            panic!()
        };
        assert_eq!(api.code, "X\\nY");
        assert!(
            api.description.starts_with("<redacted>\\u{1b}[2J"),
            "{}",
            api.description
        );
        assert!(api.description.len() < 600);
    }

    #[test]
    fn a_flood_in_result_is_read_within_the_budget_and_marked_cut() {
        let ids: Vec<String> = (1_000_000..1_500_000).map(|i: u32| i.to_string()).collect();
        let body = format!(
            r#"{{"result":[{}],"total":500000,"next":50}}"#,
            ids.join(",")
        );
        let env = ok(200, &body);
        assert_eq!(
            env.result.as_array().map(Vec::len),
            Some(super::bounded::RESULT_VALUES)
        );
        assert!(env.cut);
        assert!(env.large.is_some());
        assert_eq!((env.total, env.next), (Some(500000), Some(50)));
        let small = ok(200, r#"{"result":[1,2]}"#);
        assert!(!small.cut && small.large.is_none());
    }

    #[test]
    fn lenient_integer_accepts_numbers_and_numeric_strings_only() {
        assert_eq!(lenient_integer(&json!(99)), Some(99));
        assert_eq!(lenient_integer(&json!("1269")), Some(1269));
        assert_eq!(lenient_integer(&json!(1.5)), None);
        assert_eq!(lenient_integer(&json!("abc")), None);
        assert_eq!(lenient_integer(&json!(null)), None);
    }
}
