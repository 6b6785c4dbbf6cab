//! The sample portal's people and chats beyond bare membership: names, positions, bots, a
//! workgroup chat, a deal's discussion chat, a chat of 450, one whose members are hidden, the
//! users' recent lists (whose pages overlap, as Bitrix24's do), and who may sign in.

use std::collections::BTreeMap;

/// A user as the messenger methods describe one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoUser {
    pub first_name: String,
    pub last_name: String,
    pub work_position: String,
    pub bot: bool,
    pub extranet: bool,
}

impl DemoUser {
    pub fn person(first: &str, last: &str, position: &str) -> Self {
        Self {
            first_name: first.into(),
            last_name: last.into(),
            work_position: position.into(),
            bot: false,
            extranet: false,
        }
    }

    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    /// The messenger's `type`.
    pub fn kind(&self) -> &'static str {
        match (self.bot, self.extranet) {
            (true, _) => "bot",
            (false, true) => "extranet",
            (false, false) => "user",
        }
    }
}

/// What a chat is, beyond who is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatInfo {
    pub name: String,
    /// `chat`, `open`, `crm`, `sonetGroup`, `private`.
    pub kind: String,
    pub owner: i64,
    pub managers: Vec<i64>,
    /// `(ENTITY_TYPE, ENTITY_ID)` when the chat is linked to an entity.
    pub entity: Option<(String, String)>,
    /// Whether members may see the member list (`restrictions.user_list`).
    pub members_visible: bool,
}

impl ChatInfo {
    fn new(name: &str, kind: &str, owner: i64) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            owner,
            managers: vec![owner],
            entity: None,
            members_visible: true,
        }
    }

    fn linked(mut self, entity_type: &str, entity_id: &str) -> Self {
        self.entity = Some((entity_type.into(), entity_id.into()));
        self
    }
}

/// The sample people.
pub fn users() -> BTreeMap<i64, DemoUser> {
    let mut users = BTreeMap::from([
        (
            1,
            DemoUser::person("Olga", "Ivanova", "Portal Administrator"),
        ),
        (
            99,
            DemoUser::person("Anna", "Petrova", "Integration Developer"),
        ),
        (
            1269,
            DemoUser::person("Alexander", "Smith", "Sales Department Head"),
        ),
        (
            1271,
            DemoUser::person("Maria", "Garcia", "Marketing Manager"),
        ),
        (
            1300,
            DemoUser {
                bot: true,
                ..DemoUser::person("Sales", "Bot", "")
            },
        ),
        (
            1400,
            DemoUser {
                extranet: true,
                ..DemoUser::person("Ivan", "Partner", "Contractor")
            },
        ),
    ]);
    for id in ALL_HANDS_STAFF {
        users.insert(
            id,
            DemoUser::person("Employee", &id.to_string(), "Sales Representative"),
        );
    }
    users
}

/// The 449 colleagues of the webhook user in the chat of 450.
const ALL_HANDS_STAFF: std::ops::RangeInclusive<i64> = 2000..=2448;

/// Members of each sample chat.
pub fn chats() -> BTreeMap<i64, Vec<i64>> {
    let mut all_hands = vec![99];
    all_hands.extend(ALL_HANDS_STAFF);
    BTreeMap::from([
        (1, vec![1, 99, 1269, 1271]),
        (2935, vec![99, 1269, 1271]),
        (2936, vec![1269, 1271]),
        (2937, vec![99, 1269, 1300]),
        (2938, vec![99, 1271, 1400]),
        (2939, vec![1, 99]),
        (2940, all_hands),
        (5001, vec![99, 1269]),
        (5002, vec![99, 1271]),
    ])
}

/// What each sample chat is.
pub fn chat_info() -> BTreeMap<i64, ChatInfo> {
    BTreeMap::from([
        (1, ChatInfo::new("General chat", "open", 1)),
        (
            2935,
            ChatInfo {
                managers: vec![1271, 99],
                ..ChatInfo::new("Marketing team", "chat", 1271)
            },
        ),
        (2936, ChatInfo::new("Finance", "chat", 1269)),
        (
            2937,
            ChatInfo::new("Deal: Website redesign", "crm", 1269).linked("CRM", "DEAL|1663"),
        ),
        (
            2938,
            ChatInfo::new("Project Apollo", "sonetGroup", 1271).linked("SONET_GROUP", "17"),
        ),
        (
            2939,
            ChatInfo {
                members_visible: false,
                ..ChatInfo::new("Board room", "chat", 1)
            },
        ),
        (2940, ChatInfo::new("Sales all-hands", "open", 1269)),
        (5001, ChatInfo::new("Alexander Smith", "private", 99)),
        (5002, ChatInfo::new("Maria Garcia", "private", 99)),
    ])
}

/// The people the sample portal's sign-in page offers, in order: Anna (the webhook's user, in
/// most chats) and Maria, who is in fewer of them (not in 2937, 2939 or 2940).
pub fn signin_users() -> Vec<i64> {
    vec![99, 1271]
}

/// The portal's administrators: Olga. Anna is an integration developer, not an administrator.
pub fn admins() -> Vec<i64> {
    vec![1]
}

/// Each user's recent list as the portal stores it, newest first: internal rows, so a dialog can
/// come twice and pages overlap. Anna's is the webhook's; Maria's is shorter.
pub fn recent() -> BTreeMap<i64, Vec<String>> {
    let rows = |list: &[&str]| list.iter().map(|d| (*d).to_owned()).collect();
    BTreeMap::from([
        (
            99,
            rows(&[
                "chat2935", "1269", "chat2937", "chat2938", "chat2935", "1271", "chat2940",
                "chat2939", "chat1",
            ]),
        ),
        (
            1271,
            rows(&["chat2938", "99", "chat2935", "chat2936", "chat1"]),
        ),
    ])
}
