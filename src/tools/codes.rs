//! The one table of error codes: every Bitrix24 code of the chat methods the tools call and of any
//! method, and the OAuth server's refresh codes, each with the category, retry flag and next step
//! the assistant is given.

use super::error::Category::{self, *};

/// How one Bitrix24 error code is presented.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: &'static str,
    pub category: Category,
    pub retryable: bool,
    /// Used when the portal sends no `error_description` of its own.
    pub meaning: &'static str,
    pub hint: &'static str,
}

const fn code(
    code: &'static str,
    category: Category,
    retryable: bool,
    meaning: &'static str,
    hint: &'static str,
) -> CodeInfo {
    CodeInfo {
        code,
        category,
        retryable,
        meaning,
        hint,
    }
}

/// Every code of the chat methods the tools call and every code any method may return, per the
/// Bitrix24 REST references. Codes are case-sensitive.
pub const BITRIX_CODES: &[CodeInfo] = &[
    code(
        "CHAT_ID_EMPTY",
        InvalidInput,
        false,
        "Chat ID can't be empty",
        "Pass CHAT_ID as the chat's positive integer ID (get it from im.chat.get), e.g. {\"CHAT_ID\": 2935}.",
    ),
    code(
        "ACCESS_ERROR",
        Permission,
        false,
        "Action unavailable",
        "The acting user may not do this in this chat: it is not a member, the chat hides its members, or Bitrix24 refuses it for this chat (as for the portal's general chat); do not retry with the same chat.",
    ),
    code(
        "ACCESS_DENIED_EXTEND",
        Permission,
        false,
        "No right to add participants to this chat",
        "The acting user may not add members to this chat (the chat's manage_users_add permission, see im_dialog_get); a chat manager or owner can; do not retry.",
    ),
    code(
        "ACCESS_DENIED_KICK",
        Permission,
        false,
        "No right to remove participants, or to leave, this chat",
        "The acting user may not remove members from this chat, or is not in it, or cannot leave it; do not retry.",
    ),
    code(
        "USER_NOT_FOUND",
        InvalidInput,
        false,
        "The user is not a participant of this chat",
        "That user is not in this chat, so there is nothing to remove; im_dialog_users_list shows who is.",
    ),
    code(
        "USER_ID_EMPTY",
        InvalidInput,
        false,
        "User ID can't be empty",
        "Pass USER_ID as the positive ID of the user to remove, e.g. {\"USER_ID\": 1271}.",
    ),
    code(
        "DIALOG_ID_EMPTY",
        InvalidInput,
        false,
        "Dialog ID can't be empty",
        "Pass the chat as CHAT_ID (e.g. 2935) or DIALOG_ID (\"chat2935\", \"sg17\" or a user ID); im_search_chat_list finds a chat by name.",
    ),
    code(
        "FIRST_ID_STRING",
        InvalidInput,
        false,
        "First ID can't be string",
        "Pass FIRST_ID as a message ID (a positive integer): newer_than of a page of im_dialog_messages_get.",
    ),
    code(
        "LAST_ID_STRING",
        InvalidInput,
        false,
        "Last ID can't be string",
        "Pass LAST_ID as a message ID (a positive integer): older_than of a page of im_dialog_messages_get.",
    ),
    code(
        "FIND_SHORT",
        InvalidInput,
        false,
        "Too short search phrase",
        "Give FIND at least 2 characters: the start of a word of the chat's title.",
    ),
    code(
        "INVALID_FORMAT",
        InvalidInput,
        false,
        "Invalid format of the user ID list",
        "Pass ID as an array of positive user IDs, e.g. [99, 1269].",
    ),
    code(
        "ID_EMPTY",
        InvalidInput,
        false,
        "User ID can't be empty",
        "Pass a positive user ID; im_user_list_get takes several as an ID array.",
    ),
    code(
        "USER_NOT_EXISTS",
        InvalidInput,
        false,
        "User does not exist",
        "No user has this ID on the portal (or the acting user may not see them); check the ID, do not retry it.",
    ),
    code(
        "INTERNAL_SERVER_ERROR",
        Upstream,
        true,
        "Internal server error",
        "The portal failed internally; retry once after a few seconds, and if it persists, the portal administrator or Bitrix24 support can look into it.",
    ),
    code(
        "ERROR_UNEXPECTED_ANSWER",
        Upstream,
        true,
        "The server returned an unexpected response",
        "The portal failed internally; retry once after a few seconds, and if it persists, the portal administrator or Bitrix24 support can look into it.",
    ),
    code(
        "QUERY_LIMIT_EXCEEDED",
        RateLimit,
        true,
        "Request rate limit exceeded",
        "The portal's request-rate limit is exhausted (2 requests/s on most plans); wait a few seconds before retrying and avoid parallel calls.",
    ),
    code(
        "OPERATION_TIME_LIMIT",
        RateLimit,
        true,
        "Method blocked: its execution-time limit was exceeded",
        "The portal blocked this method for up to 10 minutes because its accumulated execution time passed the limit; other methods still work, retry this one later.",
    ),
    code(
        "ERROR_BATCH_METHOD_NOT_ALLOWED",
        Upstream,
        false,
        "Method not allowed in batch",
        "This server does not send batches, so the portal answered unexpectedly; do not retry, and report it as a bug of bitrix24-mcp.",
    ),
    code(
        "ERROR_BATCH_LENGTH_EXCEEDED",
        Upstream,
        false,
        "Batch too long",
        "This server does not send batches, so the portal answered unexpectedly; do not retry, and report it as a bug of bitrix24-mcp.",
    ),
    code(
        "NO_AUTH_FOUND",
        Authentication,
        false,
        "Wrong authorization data",
        "The portal rejected the webhook code: the webhook may have been deleted, expired or mistyped; BITRIX24_WEBHOOK_URL needs checking against the portal's webhook settings.",
    ),
    code(
        "INVALID_REQUEST",
        Configuration,
        false,
        "HTTPS required",
        "The portal requires HTTPS: BITRIX24_WEBHOOK_URL must start with https://.",
    ),
    code(
        "OVERLOAD_LIMIT",
        RateLimit,
        false,
        "REST API blocked due to overload",
        "Bitrix24 blocked the REST API for this portal by hand; only Bitrix24 support can lift it, so do not retry.",
    ),
    code(
        "ACCESS_DENIED",
        Permission,
        false,
        "REST API is available only on commercial plans",
        "The portal's plan does not include the REST API; the portal must move to a commercial plan, so do not retry.",
    ),
    code(
        "INVALID_CREDENTIALS",
        Permission,
        false,
        "The user lacks permission for this method",
        "The employee the webhook acts for lacks the rights for this method: a webhook created by an employee with access is needed; do not retry.",
    ),
    code(
        "ERROR_MANIFEST_IS_NOT_AVAILABLE",
        Upstream,
        false,
        "Manifest not available",
        "The portal reports a manifest problem unrelated to this call's input; do not retry: the portal administrator can look into it.",
    ),
    code(
        "insufficient_scope",
        Permission,
        false,
        "The webhook or application lacks the required scope",
        "The webhook lacks the im scope: the \"im\" scope (Chat and notifications) must be added in the portal's webhook settings (the URL stays the same); then retry.",
    ),
    code(
        "expired_token",
        Authentication,
        false,
        "The access token has expired",
        "The access token was rejected as expired even after a refresh: the OAuth app's settings need checking, and the app may need to be authorized again.",
    ),
    code(
        "invalid_token",
        Authentication,
        false,
        "The access token is not valid",
        "The access token was rejected even after a refresh: the OAuth app's settings need checking, and the app may need to be authorized again.",
    ),
    code(
        "user_access_error",
        Permission,
        false,
        "The user does not have access to the application",
        "The portal administrator limited the application to other users and must grant this user access; do not retry.",
    ),
    code(
        "PORTAL_DELETED",
        Configuration,
        false,
        "Portal deleted or its public part closed",
        "The portal was deleted or its public part is closed (an on-premise setting): the portal address needs checking; do not retry.",
    ),
    code(
        "ERROR_METHOD_NOT_FOUND",
        Configuration,
        false,
        "Method not found",
        "The portal does not offer this method (its Chat module may be off, or the portal is too old): the portal administrator can enable it; do not retry.",
    ),
    code(
        "MESSAGE_EMPTY",
        InvalidInput,
        false,
        "Message can't be empty",
        "Pass MESSAGE with the text to post (BBCode); do not retry without it.",
    ),
    code(
        "MESSAGE_ID_ERROR",
        InvalidInput,
        false,
        "Message ID can't be empty or the message does not exist",
        "The message does not exist (or was removed for good): take the ID from im_dialog_messages_get of its chat; do not retry with the same ID.",
    ),
    code(
        "CANT_EDIT_MESSAGE",
        Permission,
        false,
        "Time has expired for modification or you don't have access",
        "Only the message's author may edit it (and its author or a chat manager delete it), and only within the portal's editing time; do not retry.",
    ),
    code(
        "REPLY_ACCESS_ERROR",
        Permission,
        false,
        "No access to the message replied to",
        "REPLY_ID names a message the acting user cannot see: reply to a message of this chat from im_dialog_messages_get, or leave REPLY_ID out.",
    ),
    code(
        "REPLY_FROM_OTHER_CHAT_ERROR",
        InvalidInput,
        false,
        "The message replied to is in another chat",
        "REPLY_ID must be a message of the same chat (from im_dialog_messages_get of that chat); do not retry with the same REPLY_ID.",
    ),
    code(
        "PARAMS_ERROR",
        InvalidInput,
        false,
        "Incorrect parameters",
        "The portal refused the message's parameters; check MESSAGE and the other fields against the tool's schema, and do not retry unchanged.",
    ),
];

/// The OAuth server's codes for a failed refresh (reference section 4). Kept apart from
/// [`BITRIX_CODES`] because `insufficient_scope` means something else there.
pub const REFRESH_CODES: &[CodeInfo] = &[
    code(
        "invalid_grant",
        Authentication,
        false,
        "The refresh token has expired or was already used",
        "The app's refresh token is no longer valid (expired after 180 days, or used elsewhere): the app must be authorized again and the new tokens configured.",
    ),
    code(
        "invalid_client",
        Authentication,
        false,
        "The client ID or secret was rejected",
        "The OAuth server rejected the application: BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET need checking, and the app must still be installed on the portal.",
    ),
    code(
        "invalid_request",
        Configuration,
        false,
        "The refresh request was malformed",
        "The OAuth server refused the refresh request: BITRIX24_OAUTH_TOKEN_URL and the app's credentials need checking.",
    ),
    code(
        "invalid_scope",
        Permission,
        false,
        "The requested scope is not valid for this application",
        "The application's scopes do not cover this call: the im scope must be added to the app and the app authorized again.",
    ),
    code(
        "insufficient_scope",
        Permission,
        false,
        "The application lacks the required scope",
        "The application's scopes do not cover this call: the im scope must be added to the app and the app authorized again.",
    ),
    code(
        "PAYMENT_REQUIRED",
        Permission,
        false,
        "The application requires payment",
        "The application's subscription has lapsed on this portal; the portal administrator must renew it, do not retry.",
    ),
];

/// Looks up a Bitrix24 code, case-sensitively.
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    BITRIX_CODES.iter().find(|info| info.code == code)
}
