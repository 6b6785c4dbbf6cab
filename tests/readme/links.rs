//! The links of the documentation: every relative link in README.md and docs/*.md must lead to
//! a file that exists, and every `#anchor` to a heading of that file, named as GitHub names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One link a page makes, with the line it is on (for the failure message).
#[derive(Debug, PartialEq)]
pub struct Link {
    pub line: usize,
    pub target: String,
}

/// The lines of `text` that are prose: not inside a fenced code block. Each with its number.
fn prose_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fence: Option<&str> = None;
    text.lines().enumerate().filter_map(move |(i, line)| {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => {
                fence = Some(m);
                None
            }
            (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => {
                fence = None;
                None
            }
            (Some(_), _) => None,
            (None, None) => Some((i + 1, line)),
        }
    })
}

/// `line` with its inline code spans (`` `...` ``, ``` `` ... `` ```) taken out.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        let closing = "`".repeat(ticks);
        match after.find(&closing) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                // An unclosed span is literal text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every inline link (`[text](target)`, images too) and link definition (`[name]: target`) of a
/// page, outside code.
pub fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (line_no, line) in prose_lines(text) {
        let line = without_code_spans(line);
        if let Some(definition) = line.trim_start().strip_prefix('[') {
            let label_end = definition.find(']').unwrap_or(definition.len());
            if let Some(target) = definition[label_end..].strip_prefix("]:") {
                let target = target.split_whitespace().next().unwrap_or_default();
                found.push(Link {
                    line: line_no,
                    target: target.trim_matches(['<', '>']).to_owned(),
                });
                continue;
            }
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            found.push(Link {
                line: line_no,
                target: target.trim_matches(['<', '>']).to_owned(),
            });
            rest = &after[end..];
        }
    }
    found
}

/// The anchor GitHub gives a heading's text: the text as rendered (no code ticks, emphasis or
/// link syntax), in lower case, with everything but letters, digits, `-`, `_` and spaces
/// dropped, and each space made a `-`.
pub fn slug(heading: &str) -> String {
    let mut rendered = String::new();
    let mut rest = heading;
    // A link renders as its text.
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        rendered.push_str(&rest[..open]);
        rendered.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    rendered
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (ATX `#` headings outside code), numbered as GitHub numbers
/// repeats: `name`, `name-1`, `name-2`.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let text = line[hashes..].trim().trim_end_matches('#').trim_end();
        let base = slug(text);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// What is wrong with the links of the page at `page` (whose text is `text`): one line per
/// link that leads nowhere.
pub fn broken_links(page: &Path, text: &str) -> Vec<String> {
    let dir = page.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    for Link { line, target } in links(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let file: PathBuf = if path.is_empty() {
            page.to_owned()
        } else {
            dir.join(path)
        };
        let at = format!("{}:{line}: {target}", page.display());
        if !file.exists() {
            problems.push(format!("{at}: no file {}", file.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        let Ok(linked) = std::fs::read_to_string(&file) else {
            problems.push(format!("{at}: an anchor into something that is not a page"));
            continue;
        };
        if !anchors(&linked).contains(anchor) {
            problems.push(format!("{at}: no heading with that anchor"));
        }
    }
    problems
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        slug("Or: an installed OAuth application"),
        "or-an-installed-oauth-application"
    );
    assert_eq!(slug("The tools"), "the-tools");
    assert_eq!(
        slug("`im_chat_get` and `bitrix24_call`"),
        "im_chat_get-and-bitrix24_call"
    );
    assert_eq!(
        slug("Serving over HTTP (and SSE)"),
        "serving-over-http-and-sse"
    );
    assert_eq!(slug("See [the docs](docs/README.md)!"), "see-the-docs");
    assert_eq!(slug("Limits — and retries"), "limits--and-retries");
}

#[test]
fn anchors_skip_code_and_number_repeats() {
    let page = "# Title\n\n```sh\n# a comment, not a heading\n```\n\n## Notes\n\n### Notes\n\n#not a heading\n";
    let found: Vec<_> = anchors(page).into_iter().collect();
    assert_eq!(found, ["notes", "notes-1", "title"]);
}

#[test]
fn links_are_found_outside_code_only() {
    let page = "See [a](a.md#x) and ![b](img.png \"title\"), not `[c](c.md)`.\n\
                ```\n[d](d.md)\n```\n[e]: e.md#y\n";
    let found: Vec<_> = links(page)
        .into_iter()
        .map(|l| (l.line, l.target))
        .collect();
    assert_eq!(
        found,
        [
            (1, "a.md#x".to_owned()),
            (1, "img.png".to_owned()),
            (5, "e.md#y".to_owned())
        ]
    );
}

#[test]
fn a_missing_file_and_a_missing_anchor_are_reported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = root.join("README.md");
    let text = "[ok](docs/README.md#where-each-fact-is-documented) [ok too](#try-it)\n\
                [gone](docs/no-such-page.md) [bad anchor](docs/errors.md#no-such-heading)\n\
                [web](https://example.com/#x)\n";
    let problems = broken_links(&page, text);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("docs/no-such-page.md: no file"));
    assert!(problems[1].contains("docs/errors.md#no-such-heading: no heading"));
}
