//! Quotes in plain text: a `>>` line and the lines of a `------` block (a full quote, between two
//! lines of dashes) start with `> `, so a reader tells quoted words from the author's own.

/// The fewest dashes in a line that opens or closes a quote block.
const MIN_DASHES: usize = 6;

/// `text` with its quotes marked.
pub fn mark(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let delimiters: Vec<usize> = (0..lines.len())
        .filter(|&i| is_delimiter(lines[i]))
        .collect();
    // Delimiters pair in order; an odd last one is an ordinary line.
    let mut inside = vec![false; lines.len()];
    let mut dropped = vec![false; lines.len()];
    for pair in delimiters.chunks_exact(2) {
        dropped[pair[0]] = true;
        dropped[pair[1]] = true;
        inside[pair[0] + 1..pair[1]].fill(true);
    }
    let mut out = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        if dropped[index] {
            continue;
        }
        let line = match line.strip_prefix(">>") {
            Some(quoted) => format!("> {}", quoted.trim_start()),
            None => (*line).to_owned(),
        };
        out.push(if inside[index] {
            format!("> {line}")
        } else {
            line
        });
    }
    out.join("\n")
}

fn is_delimiter(line: &str) -> bool {
    let line = line.trim();
    line.len() >= MIN_DASHES && line.bytes().all(|b| b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_double_angle_line_is_a_quote() {
        assert_eq!(mark(">>they said\nI answer"), "> they said\nI answer");
        assert_eq!(
            mark(">> spaced\n >>not at the start"),
            "> spaced\n >>not at the start"
        );
    }

    #[test]
    fn a_dashed_block_is_quoted_and_its_dashes_go() {
        let dashes = "-".repeat(54);
        let text =
            format!("before\n{dashes}\nKlaus Weber [04.03.2026]\nthe plan\n{dashes}\nmy answer");
        assert_eq!(
            mark(&text),
            "before\n> Klaus Weber [04.03.2026]\n> the plan\nmy answer"
        );
    }

    #[test]
    fn a_lone_dashed_line_is_text() {
        assert_eq!(mark("a\n------\nb"), "a\n------\nb");
        assert_eq!(mark("a\n-----\nb\n-----"), "a\n-----\nb\n-----");
        let text = "------\nq\n------\nx\n------";
        assert_eq!(mark(text), "> q\nx\n------");
    }
}
