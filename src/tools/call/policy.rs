//! The read policy of `bitrix24_call`, by method name: a method is a read when its last segment
//! is `get`, `list`, `fields`, `search` or `count`, or a camel-case getter (`getFieldsByFilter`),
//! or it is one of the informational methods in [`INFORMATIONAL`] — unless it is one of the
//! [`READ_LOOKING_WRITERS`]. Everything else (`add`, `update`, `delete`, `set`, `send`, unknown
//! verbs) is a write. What a call really runs is read in [`super::plan`].

/// Methods that only inform, whatever their names.
pub const INFORMATIONAL: [&str; 8] = [
    "scope",
    "methods",
    "method.get",
    "user.current",
    "app.info",
    "server.time",
    "profile",
    "feature.get",
];

/// Methods named like reads that change data, in lower case: writes whatever the name rule says.
pub const READ_LOOKING_WRITERS: [&str; 5] = [
    // Its `clear` parameter defaults to 1: "delete the selected records", so a plain call deletes
    // the events it returns (https://dev.1c-bitrix.ru/rest_help/general/events_method/event_offline_get.php).
    "event.offline.get",
    // Answers with the file's public link, through which anyone may download it
    // (https://dev.1c-bitrix.ru/rest_help/disk/file/disk_file_getexternallink.php); a file that
    // had none gets one, so the call publishes the file (seen in the audit of issue 15).
    "disk.file.getexternallink",
    // The same for a folder
    // (https://dev.1c-bitrix.ru/rest_help/disk/folder/disk_folder_getexternallink.php).
    "disk.folder.getexternallink",
    // Its `offset` "confirms and removes" the user's events before it, for every application
    // (https://apidocs.bitrix24.com/api-reference/chat-bots/chat-bots-v2/im.v2/events/event-get.html).
    "im.v2.event.get",
    // The same for a bot's events
    // (https://apidocs.bitrix24.com/api-reference/chat-bots/chat-bots-v2/imbot.v2/events/event-get.html).
    "imbot.v2.event.get",
];

/// The longest method name taken.
pub const MAX_METHOD_CHARS: usize = 100;

/// Letters, digits and underscores between dots, starting with a letter: what the docs write,
/// and nothing a URL would treat as a path.
pub fn valid_method(method: &str) -> bool {
    method.len() <= MAX_METHOD_CHARS
        && method.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        && method.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// The read policy (see the module documentation).
pub fn is_read(method: &str) -> bool {
    let lower = method.to_ascii_lowercase();
    if READ_LOOKING_WRITERS.contains(&lower.as_str()) {
        return false;
    }
    if INFORMATIONAL.contains(&lower.as_str()) {
        return true;
    }
    let last = method.rsplit('.').next().unwrap_or_default();
    // A camel-case getter (`getFieldsByFilter`) is a read by Bitrix24's naming; the hump is
    // only visible in the original spelling.
    let getter = last
        .strip_prefix("get")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
    getter
        || matches!(
            last.to_ascii_lowercase().as_str(),
            "get" | "list" | "fields" | "search" | "count"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_policy() {
        for read in [
            "crm.deal.fields",
            "crm.deal.list",
            "user.get",
            "im.chat.user.list",
            "scope",
            "user.current",
            "SERVER.TIME",
            "crm.item.count",
            "catalog.product.getFieldsByFilter",
            "event.offline.list",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "crm.deal.add",
            "crm.deal.update",
            "im.chat.user.delete",
            "im.chat.leave",
            "im.message.add",
            "catalog.product.getter_reset",
            "disk.folder.getchildren_delete",
            "batch",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[test]
    fn read_looking_writers_are_writes_in_any_spelling() {
        for method in READ_LOOKING_WRITERS {
            assert!(valid_method(method), "{method}");
            assert_eq!(method, method.to_ascii_lowercase(), "listed in lower case");
            assert!(!is_read(method), "{method}");
            assert!(!is_read(&method.to_ascii_uppercase()), "{method}");
        }
        assert!(!is_read("disk.file.getExternalLink"));
        assert!(!is_read("Event.Offline.Get"));
    }

    #[test]
    fn method_names_are_checked() {
        for good in [
            "crm.deal.fields",
            "scope",
            "catalog.product.getFieldsByFilter",
            "im.v2.File.upload",
        ] {
            assert!(valid_method(good), "{good}");
        }
        for bad in [
            "",
            ".x",
            "x.",
            "a..b",
            "../profile",
            "crm/deal",
            "x y",
            "1abc",
            "crm.deal.list?x=1",
            &"a".repeat(101),
        ] {
            assert!(!valid_method(bad), "{bad}");
        }
    }
}
