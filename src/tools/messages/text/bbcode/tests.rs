//! BBCode to plain text, rule by rule (the plan's "Plain text" list), with the flags each sets.

use super::*;
use crate::tools::messages::text::flag;

fn plain(text: &str) -> String {
    render(text, &mut Flags::default())
}

fn flags_of(text: &str) -> Vec<&'static str> {
    let mut flags = Flags::default();
    render(text, &mut flags);
    flags.names()
}

#[test]
fn mentions_name_the_user() {
    assert_eq!(
        plain("hi [user=1269]Alexander Smith[/user]!"),
        "hi @Alexander Smith (user 1269)!"
    );
    assert_eq!(
        plain(
            "[USER=503 REPLACE]Klaus Weber[/USER] invited [USER=547 REPLACE]Anna Weber[/USER] to the chat"
        ),
        "@Klaus Weber (user 503) invited @Anna Weber (user 547) to the chat"
    );
    assert_eq!(plain("[user=7][/user]"), "@user 7");
    assert_eq!(plain("[user=all] meeting at 3"), "@all meeting at 3");
    assert_eq!(plain("[USER=ALL]"), "@all");
}

#[test]
fn links_show_their_target() {
    assert_eq!(
        plain("[url=https://x.test/a]the docs[/url]"),
        "the docs <https://x.test/a>"
    );
    assert_eq!(plain("[url]https://x.test/a[/url]"), "https://x.test/a");
    assert_eq!(
        plain("[url=https://x.test/a]https://x.test/a[/url]"),
        "https://x.test/a"
    );
    assert_eq!(
        plain("[url=https://x.test/a] x.test/a/ [/url]"),
        "https://x.test/a"
    );
    assert_eq!(plain("[url=https://x.test/a][/url]"), "https://x.test/a");
    assert_eq!(plain("[chat=5]Marketing[/chat]"), "Marketing (chat 5)");
    assert_eq!(
        plain("[context=chat5/6]that message[/context]"),
        "that message (message 6 in chat 5)"
    );
}

#[test]
fn styling_is_dropped_and_its_text_kept() {
    assert_eq!(
        plain(
            "[b]bold[/b] [I]it[/I] [u]u[/u] [s]s[/s] [size=14]big[/size] [color=#ff0000]red[/color]"
        ),
        "bold it u s big red"
    );
    assert_eq!(
        plain("[code][b]not bold[/b] [user=all][/code]"),
        "[b]not bold[/b] [user=all]"
    );
    assert_eq!(
        flags_of("[code][send=x]y[/send][/code]"),
        Vec::<&str>::new()
    );
}

#[test]
fn breaks_images_buttons_calls_files_and_times() {
    assert_eq!(plain("a[br]b[BR]c"), "a\nb\nc");
    assert_eq!(
        plain("[img size=large]https://x.test/p.png [/img]"),
        "[image: https://x.test/p.png]"
    );
    assert_eq!(
        plain("[send=/deploy]Deploy[/send]"),
        "Deploy [button: /deploy]"
    );
    assert_eq!(plain("[put=/help]Help[/put]"), "Help [button: /help]");
    assert_eq!(plain("[send]yes[/send]"), "yes [button]");
    assert_eq!(
        plain("[call=+4930123]office[/call]"),
        "office (call +4930123)"
    );
    assert_eq!(plain("[disk=5]"), "[file 5]");
    assert_eq!(
        plain("[timestamp=1772606606 format=j F Y]"),
        "2026-03-04 06:43:26 UTC"
    );
    assert_eq!(plain("[timestamp=0]"), "1970-01-01 00:00:00 UTC");
    assert_eq!(plain("[timestamp=253402300799]"), "9999-12-31 23:59:59 UTC");
    assert_eq!(
        plain("[timestamp=253402300800]"),
        "[timestamp=253402300800]"
    );
}

#[test]
fn nesting_works() {
    assert_eq!(
        plain("[b][url=https://x.test]see [i]this[/i][/url][/b] now"),
        "see this <https://x.test> now"
    );
    assert_eq!(
        plain("[send=/a][user=3]Ann[/user][/send]"),
        "@Ann (user 3) [button: /a]"
    );
}

#[test]
fn unknown_and_broken_tags_stay_as_text() {
    for text in [
        "[bold]x[/bold]",
        "[b]never closed",
        "closed only[/b]",
        "[url=https://x.test]no end",
        "[b x]y[/b]",
        "[ b]y[/ b]",
        "[[b]",
        "a [ b",
        "]]]",
        "[code]no end [b]",
        "[user=abc]x[/user]",
        "[disk=x]",
        "[b\n]x[/b]",
    ] {
        assert_eq!(plain(text), text, "{text:?}");
        assert!(flags_of(text).is_empty(), "{text:?}");
    }
    assert_eq!(plain("[b]x[/b][/b]"), "x[/b]");
    assert_eq!(
        plain("[b][i]x[/b][/i]"),
        "[i]x[/i]",
        "crossed tags: the outer pair wins"
    );
    assert_eq!(plain("[[b]x[/b]]"), "[x]");
}

#[test]
fn tags_are_read_in_any_letter_case() {
    assert_eq!(
        plain("[B]x[/b] [Url=https://x.test]y[/URL]"),
        "x y <https://x.test>"
    );
    assert_eq!(plain("[CODE][b]z[/b][/Code]"), "[b]z[/b]");
}

#[test]
fn each_flag_is_set_by_its_tag() {
    assert_eq!(flags_of("[send=/deploy]Deploy[/send]"), [flag::ACTION]);
    assert_eq!(flags_of("[PUT=/x]X[/PUT]"), [flag::ACTION]);
    assert_eq!(
        flags_of("[url=https://evil.test]https://bank.test[/url]"),
        [flag::LINK_TEXT_DIFFERS]
    );
    assert!(flags_of("[url=https://www.bank.test/]bank.test[/url]").is_empty());
    assert!(flags_of("[url=http://bank.test]HTTPS://Bank.test/[/url]").is_empty());
    assert_eq!(flags_of("[user=all]"), [flag::MENTIONS_ALL]);
    assert_eq!(flags_of("[size=8]tiny[/size]"), [flag::HIDDEN_FORMATTING]);
    assert_eq!(flags_of("[size=9px]tiny[/size]"), [flag::HIDDEN_FORMATTING]);
    assert!(flags_of("[size=10]normal[/size]").is_empty());
    assert_eq!(
        flags_of("[color=#ffffff]white[/color]"),
        [flag::HIDDEN_FORMATTING]
    );
    assert_eq!(
        flags_of("[color=red][user=all][/color][url=https://a.test]b[/url][send=c]d[/send]"),
        [
            flag::ACTION,
            flag::LINK_TEXT_DIFFERS,
            flag::MENTIONS_ALL,
            flag::HIDDEN_FORMATTING
        ]
    );
}

#[test]
fn ten_thousand_nested_tags_cost_their_length() {
    let open = "[b]".repeat(10_000);
    let close = "[/b]".repeat(10_000);
    assert_eq!(plain(&format!("{open}deep{close}")), "deep");
    assert_eq!(plain(&format!("{open}deep")), format!("{open}deep"));
    let links = "[url=https://a.test]".repeat(3000);
    let ends = "[/url]".repeat(3000);
    let out = plain(&format!("{links}x{ends}"));
    assert!(
        out.starts_with("x <https://a.test> <https://a.test>"),
        "{}",
        &out[..80]
    );
    // Closing tags with nothing open, and openers that never close.
    let mixed = "[/i][u]".repeat(10_000);
    assert_eq!(plain(&mixed), mixed);
    let codes = "[code]".repeat(10_000);
    assert_eq!(plain(&codes), codes);
}
