//! A batch command's query as the portal reads it: PHP's `parse_url` cuts the command at `#` and
//! turns control characters into `_`; `parse_str` then files each name its own way (a leading
//! space dropped, dots, spaces and a stray `[` turned into `_`, a name cut at NUL, text after `]`
//! ignored) and keeps the last of two values for one place. Whatever PHP would read otherwise
//! than written is refused, so that the question shows what runs.

use std::collections::{HashMap, HashSet};

use super::plan::{collision, fold, shown_name};
use crate::tools::error::ToolError;

/// The deepest `a[b][c]…` taken in a command's query (PHP drops names past 64 levels).
const MAX_QUERY_NESTING: usize = 32;

/// The query's parameters, decoded, in order; refused when PHP would read them otherwise.
pub fn read(key: &str, query: &str) -> Result<Vec<(String, String)>, ToolError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    refuse_query_collisions(key, &params)?;
    if let Some((name, _)) = params.iter().find(|(name, _)| !plain_query_name(name)) {
        return Err(ToolError::invalid_argument(format!(
            "the params.cmd command {} names the parameter {}, which Bitrix24 would read as \
             another name (PHP drops a leading space, turns dots, spaces and a stray [ into _, \
             cuts at a NUL and ignores text after ]); write NAME or NAME[key], with no dots, \
             spaces or stray brackets",
            shown_name(key),
            shown_name(name)
        )));
    }
    refuse_overlaps(key, &params)?;
    Ok(params)
}

/// Refuses a command that PHP's `parse_url` would change before reading it: it drops everything
/// from a `#` on, and turns control characters into `_`, so the question would show another
/// command than the one run.
pub fn refuse_url_rewrites(key: &str, text: &str) -> Result<(), ToolError> {
    let command = shown_name(key);
    if text.contains('#') {
        return Err(ToolError::invalid_argument(format!(
            "the params.cmd command {command} holds a #: Bitrix24 would drop everything after it; \
             write it as %23"
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_ascii_control()) {
        return Err(ToolError::invalid_argument(format!(
            "the params.cmd command {command} holds the control character U+{:04X}, which \
             Bitrix24 would read as _; percent-encode it",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Whether PHP's `parse_str` files a (decoded) query name under exactly this name, case aside:
/// `NAME` or `NAME[key]…`, where NAME has no leading space, dot, space or bracket, no key holds
/// a bracket, nothing follows the last `]`, nothing holds a NUL, and the nesting is shallow.
fn plain_query_name(name: &str) -> bool {
    let (base, mut rest) = name.split_at(name.find('[').unwrap_or(name.len()));
    if base.is_empty() || base.contains([' ', '.', ']', '\0']) {
        return false;
    }
    let mut depth = 0;
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return false;
        };
        let Some(end) = inner.find(']') else {
            return false;
        };
        if inner[..end].contains(['[', '\0']) {
            return false;
        }
        depth += 1;
        rest = &inner[end + 1..];
    }
    depth <= MAX_QUERY_NESTING
}

/// A command's query names each parameter once (a list's `name[]` may repeat, spelled alike).
fn refuse_query_collisions(key: &str, params: &[(String, String)]) -> Result<(), ToolError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, _) in params {
        if let Some(first) = seen.insert(fold(name), name) {
            if first == name && name.ends_with("[]") {
                continue;
            }
            return Err(collision(
                &format!("the params.cmd command {}", shown_name(key)),
                first,
                name,
            ));
        }
    }
    Ok(())
}

/// The place a plain name fills: its base and keys, folded; an empty key appends.
fn place(name: &str) -> Vec<String> {
    let (base, rest) = name.split_at(name.find('[').unwrap_or(name.len()));
    let mut segments = vec![fold(base)];
    segments.extend(
        rest.split(']')
            .filter_map(|s| s.strip_prefix('['))
            .map(str::to_uppercase),
    );
    segments
}

/// Refuses two names of which PHP keeps only one value: a value and a list or map at one place
/// (`USERS=5&USERS[]=1`, `fields[A]=1&fields[A][B]=2`: the last replaces the first), and
/// appended items mixed with given keys (`USERS[]=1&USERS[0]=666`: 666 replaces 1).
fn refuse_overlaps(key: &str, params: &[(String, String)]) -> Result<(), ToolError> {
    let places: Vec<Vec<String>> = params.iter().map(|(name, _)| place(name)).collect();
    let filled: HashMap<&[String], &str> = places
        .iter()
        .zip(params)
        .map(|(place, (name, _))| (place.as_slice(), name.as_str()))
        .collect();
    let mut appended: HashMap<&[String], &str> = HashMap::new();
    let mut keyed: HashMap<&[String], &str> = HashMap::new();
    let mut parents: HashSet<&[String]> = HashSet::new();
    for (place, (name, _)) in places.iter().zip(params) {
        for depth in 1..place.len() {
            let parent = &place[..depth];
            parents.insert(parent);
            if let Some(first) = filled.get(parent) {
                return Err(overlap(key, first, name));
            }
            let children = if place[depth].is_empty() {
                &mut appended
            } else {
                &mut keyed
            };
            children.entry(parent).or_insert(name);
            if let (Some(a), Some(b)) = (appended.get(parent), keyed.get(parent)) {
                return Err(overlap(key, a, b));
            }
        }
    }
    Ok(())
}

fn overlap(key: &str, first: &str, second: &str) -> ToolError {
    ToolError::invalid_argument(format!(
        "the params.cmd command {} has both {} and {}, which fill one place: Bitrix24 would keep \
         only the last; give each value once",
        shown_name(key),
        shown_name(first),
        shown_name(second)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_are_those_php_files_them_under() {
        for plain in [
            "ID",
            "fields[TITLE]",
            "USERS[]",
            "filter[>DATE_CREATE]",
            "filter[@ID][]",
            "a[ b.c ]",
        ] {
            assert!(plain_query_name(plain), "{plain}");
        }
        let deep = format!("a{}", "[x]".repeat(MAX_QUERY_NESTING + 1));
        for odd in [
            "", " ID", "CHAT.ID", "CHAT ID", "CHAT[ID", "CHAT]ID", "ID\0x", "ID[0]x", "ID[a[b]]",
            "ID[a\0]", "[x]", &deep,
        ] {
            assert!(!plain_query_name(odd), "{odd}");
        }
    }

    fn overlap_of(query: &str) -> Option<String> {
        read("a", query).err().map(|e| e.error_description)
    }

    #[test]
    fn names_filling_one_place_are_refused() {
        for (query, both) in [
            ("USERS=5&USERS[]=1", "\"USERS\" and \"USERS[]\""),
            ("USERS[]=1&users=5", "\"users\" and \"USERS[]\""),
            (
                "fields[A]=1&fields[A][B]=2",
                "\"fields[A]\" and \"fields[A][B]\"",
            ),
            ("USERS[]=1&USERS[0]=666", "\"USERS[]\" and \"USERS[0]\""),
        ] {
            let refused = overlap_of(query).unwrap();
            assert!(refused.contains(both), "{query}: {refused}");
            assert!(refused.contains("keep only the last"), "{query}: {refused}");
        }
        for fine in [
            "USERS[]=1&USERS[]=2",
            "fields[A]=1&fields[B]=2&ID=3",
            "filter[@ID][]=1&filter[@ID][]=2&filter[>DATE]=x",
            "order[ID]=ASC&select[]=ID",
        ] {
            assert_eq!(overlap_of(fine), None, "{fine}");
        }
    }
}
