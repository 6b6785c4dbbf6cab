//! Text that came from the network (a portal, a proxy, the token server) on its way into a result,
//! an error message or a log line: secrets are redacted in every form a URL, a form body or PHP's
//! JSON would give them, control characters are escaped (a portal must not forge log lines or
//! drive a terminal), and the length is bounded, saying where it was cut.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// The longest error description passed on.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The longest error code passed on (real ones are under 40 characters).
pub const MAX_CODE_CHARS: usize = 100;
/// How much of an unexpected body is quoted back.
pub const EXCERPT_CHARS: usize = 160;

/// Redacts, escapes and bounds one piece of upstream text. A long text is cut before it is
/// scrubbed (so a 3 MB answer costs little), with a margin that is dropped again afterwards: a
/// secret split by the cut cannot survive as a prefix.
pub fn sanitize(text: &str, secrets: &[String], max_chars: usize) -> String {
    let total = text.chars().count();
    let margin = secrets.iter().map(|s| 3 * s.len()).max().unwrap_or(0) + 3;
    if total <= max_chars + margin {
        return bounded_of(&escape_controls(&scrub(text, secrets)), max_chars, total);
    }
    let head: String = text.chars().take(max_chars + margin).collect();
    let scrubbed = scrub(&head, secrets);
    let keep = scrubbed.chars().count().saturating_sub(margin);
    let safe: String = scrubbed.chars().take(keep).collect();
    bounded_of(&escape_controls(&safe), max_chars, total)
}

/// A short, single-line, secret-free quote of a body: whitespace runs collapse to one space.
pub fn excerpt(text: &str, secrets: &[String]) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    sanitize(&flat, secrets, EXCERPT_CHARS)
}

/// Replaces every occurrence of a secret with [`REDACTED`]: in any ASCII letter case, and with any
/// of its bytes percent-encoded (either hex case), a space as `+`, or `/` as PHP's `\/` — the
/// forms a URL, a form body or a JSON echo would give it.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = redact(&out, secret.as_bytes());
    }
    out
}

fn redact(text: &str, secret: &[u8]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        match encoded_match(bytes, at, secret) {
            Some(end) => {
                // Matches start at an ASCII byte or a whole UTF-8 sequence of the secret, and end
                // after one, so both offsets are character boundaries.
                out.push_str(&text[copied..at]);
                out.push_str(REDACTED);
                copied = end;
                at = end;
            }
            None => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where a (possibly encoded) copy of `secret` starting at `start` ends, if there is one.
fn encoded_match(text: &[u8], start: usize, secret: &[u8]) -> Option<usize> {
    let mut at = start;
    for &want in secret {
        let here = *text.get(at)?;
        at += if here.eq_ignore_ascii_case(&want) {
            1
        } else if here == b'%' && hex_byte(text.get(at + 1..at + 3)?) == Some(want) {
            3
        } else if here == b'+' && want == b' ' {
            1
        } else if here == b'\\' && want == b'/' && text.get(at + 1) == Some(&b'/') {
            2
        } else {
            return None;
        };
    }
    Some(at)
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// Control characters (line breaks, ANSI escapes, C1 codes) and invisible direction overrides
/// written as visible escapes.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Zero-width and bidirectional formatting characters, which can make a log line read other
/// than it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// At most `max_chars` characters; a longer text is cut and says so.
pub fn bounded(text: &str, max_chars: usize) -> String {
    bounded_of(text, max_chars, text.chars().count())
}

/// [`bounded`] for a text that is a prefix (or transformation) of one of `total` characters.
fn bounded_of(text: &str, max_chars: usize, total: usize) -> String {
    if text.chars().count() <= max_chars && total <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars).collect();
    format!("{kept}… (cut: {total} characters in all)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Vec<String> {
        vec![
            "cl1ent/S3cr3t+x y".to_owned(),
            "t0p53cr3tc0de42x".to_owned(),
        ]
    }

    #[test]
    fn secrets_are_redacted_in_every_case_and_encoding() {
        let echoes = [
            "t0p53cr3tc0de42x",
            "T0P53CR3TC0DE42X",
            "client_secret=cl1ent%2FS3cr3t%2Bx+y&grant_type=refresh_token",
            "client_secret=cl1ent%2fs3cr3t%2bx%20y",
            "%63%6c%31%65%6e%74%2f%53%33%63%72%33%74%2b%78%20%79",
            r#"{"secret":"cl1ent\/S3cr3t+x y"}"#,
            "CL1ENT/S3CR3T+X Y",
        ];
        for echo in echoes {
            let out = scrub(echo, &secrets());
            assert!(out.contains(REDACTED), "{echo} → {out}");
            let lower = out.to_ascii_lowercase();
            assert!(!lower.contains("t0p53cr3tc0de42x"), "{out}");
            assert!(!lower.contains("s3cr3t"), "{echo} → {out}");
        }
        assert_eq!(scrub("nothing here", &secrets()), "nothing here");
        assert_eq!(
            scrub("ünïcödé t0P53cr3tc0de42x!", &secrets()),
            "ünïcödé <redacted>!"
        );
    }

    #[test]
    fn control_characters_are_escaped_so_no_log_line_can_be_forged() {
        let hostile = "bad\nINFO forged line\r\x1b[31mred\x1b[0m\u{202e}txt\u{85}";
        let out = escape_controls(hostile);
        assert!(
            !out.chars()
                .any(|c| c.is_control() || is_invisible_format(c)),
            "{out:?}"
        );
        assert_eq!(
            out,
            "bad\\nINFO forged line\\r\\u{1b}[31mred\\u{1b}[0m\\u{202e}txt\\u{85}"
        );
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let long = "x".repeat(3_000_000);
        let out = sanitize(&long, &[], MAX_DESCRIPTION_CHARS);
        assert!(out.len() < 600, "{}", out.len());
        assert!(out.ends_with("… (cut: 3000000 characters in all)"), "{out}");
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn excerpt_is_one_short_line() {
        let long = format!("line one\nline\ttwo {}", "x".repeat(500));
        let e = excerpt(&long, &[]);
        assert!(e.starts_with("line one line two x"));
        assert!(e.contains("(cut: "), "{e}");
        assert_eq!(e.chars().filter(|c| *c == 'x').count(), EXCERPT_CHARS - 18);
    }

    #[test]
    fn a_secret_split_by_the_cut_leaves_no_prefix() {
        let secret = "0123456789abcdefghij".to_owned();
        for offset in 0..40 {
            let text = format!("{}{}{}", "x".repeat(480 + offset), secret, "y".repeat(5000));
            let out = sanitize(&text, std::slice::from_ref(&secret), 500);
            assert!(!out.contains("0123"), "offset {offset}: {out}");
        }
    }
}
