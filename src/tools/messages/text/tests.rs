//! The whole path a text takes (strip, decode, strip, BBCode, quotes, secrets, cap), through the
//! public functions.

use super::*;

const EVERY_STRIPPED: &[(u32, u32)] = &[
    (0x200b, 0x200f),
    (0x061c, 0x061c),
    (0x00ad, 0x00ad),
    (0xfeff, 0xfeff),
    (0x180e, 0x180e),
    (0x2060, 0x2064),
    (0x13441, 0x13442),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
    (0x202a, 0x202e),
    (0x2066, 0x2069),
    (0xfe00, 0xfe0f),
    (0xe0100, 0xe01ef),
];

fn every_stripped() -> String {
    EVERY_STRIPPED
        .iter()
        .flat_map(|&(first, last)| first..=last)
        .map(|code| char::from_u32(code).unwrap())
        .collect()
}

fn plain(raw: &str) -> Cleaned {
    clean(raw, Format::Plain, &[])
}

const SECRET: &str = "t0p53cr3tc0de42x";

fn secrets() -> Vec<String> {
    vec![SECRET.to_owned()]
}

#[test]
fn a_message_of_every_stripped_character_is_empty_and_flagged() {
    let all = every_stripped();
    assert_eq!(
        all.chars().count(),
        5 + 1 + 1 + 1 + 1 + 5 + 2 + 1 + 96 + 5 + 4 + 16 + 240
    );
    for format in [Format::Plain, Format::Bbcode] {
        let cleaned = clean(&all, format, &[]);
        assert_eq!(cleaned.text, "");
        assert_eq!(cleaned.flags, [flag::INVISIBLE_REMOVED]);
        assert!(!cleaned.truncated);
    }
    let hidden = format!("pay{all}pal and the controls\u{1b}[2J\u{0}\u{85}\u{7f} go");
    let cleaned = plain(&hidden);
    assert_eq!(cleaned.text, "paypal and the controls[2J go");
    assert_eq!(cleaned.flags, [flag::INVISIBLE_REMOVED]);
}

#[test]
fn line_breaks_and_tabs_stay_and_are_no_removal() {
    let cleaned = plain("one\r\ntwo\rthree\tfour\n");
    assert_eq!(cleaned.text, "one\ntwo\nthree\tfour\n");
    assert!(cleaned.flags.is_empty());
}

#[test]
fn entities_that_hide_invisible_characters_or_controls_are_stripped_after_decoding() {
    for (raw, shown) in [
        ("abc&#x202E;fed", "abcfed"),
        ("abc&#X202e;fed", "abcfed"),
        ("zero&#8203;width", "zerowidth"),
        ("bom&#65279;", "bom"),
        ("tag&#xE0041;&#917569;s", "tags"),
        ("isolate&#x2066;d&#x2069;", "isolated"),
        ("escape&#27;[31m", "escape[31m"),
        ("nul&#0;&#x85;", "nul"),
        ("selector&#xFE0F;", "selector"),
    ] {
        for format in [Format::Plain, Format::Bbcode] {
            let cleaned = clean(raw, format, &[]);
            assert_eq!(cleaned.text, shown, "{raw}");
            assert_eq!(cleaned.flags, [flag::INVISIBLE_REMOVED], "{raw}");
        }
    }
    let cleaned = plain("&lt;b&gt; &amp; &quot;x&quot; &#39;y&#39; &#1078; line&#10;break");
    assert_eq!(cleaned.text, "<b> & \"x\" 'y' ж line\nbreak");
    assert!(cleaned.flags.is_empty());
    // Decoded once: an encoded entity is shown, visibly, as the entity.
    let cleaned = plain("&amp;#x202E;");
    assert_eq!(cleaned.text, "&#x202E;");
    assert!(cleaned.flags.is_empty());
    // A stripped character that splits an entity hides nothing either.
    let cleaned = plain("a&#x20\u{200b}2E;b");
    assert_eq!(cleaned.text, "ab");
    assert_eq!(cleaned.flags, [flag::INVISIBLE_REMOVED]);
}

#[test]
fn plain_text_reads_the_bbcode_and_marks_quotes() {
    let raw = ">>Can we ship?\n[USER=1269 REPLACE]Alexander Smith[/USER]: [B]yes[/b], see \
               [url=https://x.test/plan]the plan[/url][br][send=/ship]Ship[/send]";
    let cleaned = plain(raw);
    assert_eq!(
        cleaned.text,
        "> Can we ship?\n@Alexander Smith (user 1269): yes, see the plan <https://x.test/plan>\n\
         Ship [button: /ship]"
    );
    assert_eq!(cleaned.flags, [flag::ACTION, flag::LINK_TEXT_DIFFERS]);
}

#[test]
fn bbcode_format_keeps_the_markup_but_strips_decodes_flags_and_caps() {
    let raw = "[b]a&#x200B;b[/b] [user=all] [url=https://evil.test]bank.test[/url] \
               [size=6]x[/size] [put=/y]z[/put] &lt;&gt;\n>>q";
    let cleaned = clean(raw, Format::Bbcode, &[]);
    assert_eq!(
        cleaned.text,
        "[b]ab[/b] [user=all] [url=https://evil.test]bank.test[/url] [size=6]x[/size] \
         [put=/y]z[/put] <>\n>>q"
    );
    assert_eq!(
        cleaned.flags,
        [
            flag::ACTION,
            flag::LINK_TEXT_DIFFERS,
            flag::MENTIONS_ALL,
            flag::HIDDEN_FORMATTING,
            flag::INVISIBLE_REMOVED
        ]
    );
    let long = clean(&"[b]".repeat(2000), Format::Bbcode, &[]);
    assert_eq!(long.text.chars().count(), MAX_TEXT_CHARS);
    assert!(long.truncated);
}

#[test]
fn broken_and_mixed_case_tags() {
    assert_eq!(
        plain("[B]x[/b] [b]open [/i] [foo]y[/foo]").text,
        "x [b]open [/i] [foo]y[/foo]"
    );
    assert_eq!(
        plain("[Url=https://a.test]A.test[/uRL]").text,
        "https://a.test"
    );
}

#[test]
fn a_100_kb_message_is_cut_and_its_tail_never_read() {
    let raw = format!("{}[user=all]\u{200b}", "x".repeat(100_000));
    let cleaned = plain(&raw);
    assert_eq!(cleaned.text, "x".repeat(MAX_TEXT_CHARS));
    assert!(cleaned.truncated);
    assert!(
        cleaned.flags.is_empty(),
        "past the input bound: {:?}",
        cleaned.flags
    );
    // Ten megabytes of invisible characters: read up to the bound, so said to be cut.
    let cleaned = plain(&"\u{200b}".repeat(10_000_000 / 3));
    assert_eq!(cleaned.text, "");
    assert!(cleaned.truncated);
    assert_eq!(cleaned.flags, [flag::INVISIBLE_REMOVED]);
}

#[test]
fn the_4000_character_cut_counts_characters_not_bytes() {
    for unit in ["ж", "😀", "a", "\u{0646}"] {
        let exact = plain(&unit.repeat(MAX_TEXT_CHARS));
        assert_eq!(exact.text, unit.repeat(MAX_TEXT_CHARS));
        assert!(!exact.truncated);
        let over = plain(&unit.repeat(MAX_TEXT_CHARS + 1));
        assert_eq!(over.text, unit.repeat(MAX_TEXT_CHARS));
        assert!(over.truncated);
    }
    let mixed = "aж😀".repeat(2000);
    let cleaned = plain(&mixed);
    assert_eq!(cleaned.text.chars().count(), MAX_TEXT_CHARS);
    assert!(mixed.starts_with(&cleaned.text));
    assert!(cleaned.truncated);
    // Markup that shrinks keeps a long text whole.
    let cleaned = plain(&format!("[b]{}[/b]", "ж".repeat(MAX_TEXT_CHARS)));
    assert_eq!(cleaned.text, "ж".repeat(MAX_TEXT_CHARS));
    assert!(!cleaned.truncated);
}

#[test]
fn hostile_nesting_is_text_or_read_without_recursion() {
    let deep = format!("{}x{}", "[b]".repeat(10_000), "[/b]".repeat(10_000));
    let cleaned = plain(&deep);
    assert!(
        cleaned.truncated,
        "70,001 characters are more than the bound"
    );
    assert_eq!(cleaned.text, "[b]".repeat(MAX_TEXT_CHARS / 3) + "[");
    let within = format!("{}x{}", "[b]".repeat(4_000), "[/b]".repeat(4_000));
    assert_eq!(plain(&within).text, "x");
}

#[test]
fn secrets_are_redacted_however_they_are_hidden() {
    for raw in [
        "the code is t0p53cr3tc0de42x",
        "t0p5\u{200b}3cr3t\u{202e}c0de42x",
        "t0p5&#x200B;3cr3tc0de&#8203;42x",
        "&#116;&#x30;p53cr3tc0de42x",
        "t0p5[b][/b]3cr3tc0de42x",
        "[url=https://portal.test/rest/1/t0p53cr3tc0de42x/]hook[/url]",
        "T0P53CR3TC0DE42X",
        "t0p53cr3t%63%30de42x",
    ] {
        let cleaned = clean(raw, Format::Plain, &secrets());
        assert!(cleaned.text.contains(REDACTED), "{raw} → {}", cleaned.text);
        assert!(
            !cleaned.text.to_ascii_lowercase().contains("3cr3t"),
            "{raw} → {}",
            cleaned.text
        );
        if !raw.contains("[b]") {
            // Names keep BBCode as written, so only plain text joins what tags split.
            let name = name(raw, 100, &secrets());
            assert!(
                !name.to_ascii_lowercase().contains("3cr3t"),
                "{raw} → {name}"
            );
        }
    }
    let bbcode = clean("a t0p5&#8203;3cr3tc0de42x", Format::Bbcode, &secrets());
    assert_eq!(bbcode.text, "a <redacted>");
}

#[test]
fn a_secret_split_by_a_cut_leaves_no_prefix() {
    // Split by the input bound: everything before it is stripped.
    for offset in 1..SECRET.len() {
        let raw = format!(
            "{}{SECRET}",
            "\u{200b}".repeat(MAX_INPUT_CHARS - SECRET.len() + offset)
        );
        let cleaned = clean(&raw, Format::Plain, &secrets());
        assert!(!cleaned.text.contains("t0p"), "{offset}: {}", cleaned.text);
        assert!(cleaned.truncated);
    }
    // Split by the output cap: the secret is redacted whole, and half a marker is not left.
    for offset in 0..SECRET.len() {
        let raw = format!(
            "{}{SECRET} and a tail past the cap",
            "x".repeat(MAX_TEXT_CHARS - offset)
        );
        let cleaned = clean(&raw, Format::Plain, &secrets());
        let whole_or_none =
            cleaned.text.matches('<').count() == cleaned.text.matches(REDACTED).count();
        assert!(whole_or_none, "{offset}: …{}", &cleaned.text[3900..]);
        assert!(!cleaned.text.contains("t0p"), "{offset}");
        assert!(cleaned.truncated);
    }
}

#[test]
fn names_are_one_clean_bounded_line() {
    assert_eq!(
        name("Anna\nWeber\t\u{202e}CEO\u{1b}[0m", 50, &[]),
        "Anna Weber CEO [0m"
    );
    assert_eq!(
        name("  Deal&#x202E;&#10;1663 &amp; co  ", 50, &[]),
        "Deal 1663 & co"
    );
    assert_eq!(name("[b]Marketing[/b]", 50, &[]), "[b]Marketing[/b]");
    assert_eq!(name("abcdef", 4, &[]), "abc…");
    assert_eq!(name("abcd", 4, &[]), "abcd");
    assert_eq!(name("жжжжжж", 3, &[]), "жж…");
    assert_eq!(name("x", 0, &[]), "");
    assert_eq!(name("\u{200b}\u{feff}", 10, &[]), "");
    let huge = "y".repeat(10_000_000);
    assert_eq!(name(&huge, 10, &[]), format!("{}…", "y".repeat(9)));
    assert_eq!(
        name(
            &format!("{}{SECRET}", "\u{200b}".repeat(2000)),
            200,
            &secrets()
        ),
        "…"
    );
}

#[test]
fn the_first_line_is_the_first_non_empty_plain_line() {
    let raw = "\n \u{200b}\n  [b]Launch[/b] moves to [url=https://x.test]March 3[/url]\nsecond";
    assert_eq!(
        first_line(raw, 100, &[]),
        "Launch moves to March 3 <https://x.test>"
    );
    assert_eq!(first_line(raw, 6, &[]), "Launch");
    assert_eq!(first_line("\u{202e}\u{200b}", 10, &[]), "");
    assert_eq!(first_line("жж&#8203;жж", 3, &[]), "жжж");
    assert_eq!(
        first_line("key t0p5&#8203;3cr3tc0de42x", 100, &secrets()),
        "key <redacted>"
    );
}
