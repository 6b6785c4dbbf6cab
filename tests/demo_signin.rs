//! The sample portal's sign-in for people, over real HTTP as a browser and an app meet it: the
//! chooser page, the redirect with every parameter Bitrix24 adds, the silent redirect for a
//! logged-in browser, the error page for an unknown app, single-use 30-second codes, the code
//! exchange, refresh per user, REST answering as the token's user, and uninstalling the app.

use std::collections::BTreeMap;

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, redirect};
use serde_json::{Value, json};

const CLIENT_ID: &str = "local.demo0000000000.00000000";
const SECRET: &str = "s1gn1nS3cretOfTheApp";
const HANDLER: &str = "http://127.0.0.1:9/oauth/callback";

fn app() -> OAuthApp {
    let mut app = OAuthApp::signin(CLIENT_ID, SECRET);
    app.redirect_uri = Some(HANDLER.into());
    app
}

async fn portal_with(app: OAuthApp) -> DemoPortal {
    DemoPortal::start(PortalData::sample_with_signin("c0de", app))
        .await
        .unwrap()
}

async fn portal() -> DemoPortal {
    portal_with(app()).await
}

/// A browser that does not follow redirects, so each hop can be checked.
fn browser() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

fn url_with(base: &str, pairs: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(base, pairs).unwrap().into()
}

async fn get(url: &str) -> reqwest::Response {
    browser().get(url).send().await.unwrap()
}

async fn post_form(url: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap())
        .send()
        .await
        .unwrap()
}

/// The query of a redirect's `Location`, after checking where it points.
fn callback(response: &reqwest::Response) -> BTreeMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[LOCATION].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    assert_eq!(&location[..HANDLER.len()], HANDLER, "{location}");
    url.query_pairs().into_owned().collect()
}

/// Signs `user` in through the chooser and returns the code the app receives.
async fn code_for(portal: &DemoPortal, user: i64) -> String {
    let id = user.to_string();
    let pairs = [("client_id", CLIENT_ID), ("state", "st"), ("user_id", &id)];
    let response = post_form(&portal.authorize_url(), &pairs).await;
    callback(&response)["code"].clone()
}

/// The app's code exchange, as a form POST: status and JSON answer.
async fn exchange(portal: &DemoPortal, secret: &str, code: &str) -> (StatusCode, Value) {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", secret),
        ("code", code),
    ];
    let response = post_form(&portal.token_url(), &pairs).await;
    (response.status(), response.json().await.unwrap())
}

async fn refresh(portal: &DemoPortal, token: &str) -> (StatusCode, Value) {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("refresh_token", token),
    ];
    let response = post_form(&portal.token_url(), &pairs).await;
    (response.status(), response.json().await.unwrap())
}

/// Signs `user` in and exchanges the code: the pair the app holds.
async fn tokens_for(portal: &DemoPortal, user: i64) -> (String, String) {
    let code = code_for(portal, user).await;
    let (status, pair) = exchange(portal, SECRET, &code).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    (
        pair["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// A REST call with `auth` in the JSON body: status and answer.
async fn call(
    portal: &DemoPortal,
    method: &str,
    token: &str,
    mut body: Value,
) -> (StatusCode, Value) {
    body["auth"] = json!(token);
    let url = format!("{}{method}", portal.rest_root());
    let response = browser().post(url).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The page's text, after checking it is an HTML page and not a redirect.
async fn html(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert!(
        response.headers().get(LOCATION).is_none(),
        "never a redirect"
    );
    assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    response.text().await.unwrap()
}

/// What a plain form client submits: the first form's action, its hidden fields and its checked
/// radio, as a browser would with the defaults.
fn default_submission(page: &str) -> (String, Vec<(String, String)>) {
    let attribute = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        )
    };
    let form = &page[page.find("<form").unwrap()..];
    let action = attribute(&form[..form.find('>').unwrap()], "action").unwrap();
    let fields = form
        .split("<input")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap()])
        .filter(|tag| tag.contains("type=\"hidden\"") || tag.contains(" checked"))
        .map(|tag| {
            (
                attribute(tag, "name").unwrap(),
                attribute(tag, "value").unwrap(),
            )
        })
        .collect();
    (action, fields)
}

#[tokio::test]
async fn the_chooser_lists_who_can_sign_in_and_posts_back_client_state_and_user() {
    let portal = portal().await;
    let state = "a\"<b>&c";
    // Bitrix24 takes the redirect URL and scope from the app's settings: these are ignored.
    let url = url_with(
        &portal.authorize_url(),
        &[
            ("client_id", CLIENT_ID),
            ("state", state),
            ("redirect_uri", "http://evil.test/steal"),
            ("scope", "crm"),
            ("response_type", "code"),
        ],
    );
    let page = html(get(&url).await, StatusCode::OK).await;
    assert!(
        page.contains("<form method=\"post\" action=\"/oauth/authorize/\">"),
        "{page}"
    );
    assert!(
        page.contains(&format!("name=\"client_id\" value=\"{CLIENT_ID}\"")),
        "{page}"
    );
    assert!(
        page.contains("name=\"state\" value=\"a&quot;&lt;b&gt;&amp;c\""),
        "{page}"
    );
    assert!(
        page.contains(
            "name=\"user_id\" value=\"99\" checked> Anna Petrova (Integration Developer)"
        ),
        "{page}"
    );
    assert!(
        page.contains("name=\"user_id\" value=\"1271\"> Maria Garcia (Marketing Manager)"),
        "{page}"
    );
    assert!(
        !page.contains("Olga"),
        "only the people who can sign in: {page}"
    );

    // A plain form client submits the defaults and lands on the app's handler as Anna.
    let (action, fields) = default_submission(&page);
    assert_eq!(action, "/oauth/authorize/");
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("client_id", CLIENT_ID),
            ("state", state),
            ("user_id", "99")
        ]
    );
    let response = post_form(&format!("http://{}{action}", portal.addr()), &pairs).await;
    let back = callback(&response);
    assert_eq!(back["state"], state);
    let (_, pair) = exchange(&portal, SECRET, &back["code"]).await;
    assert_eq!(
        portal.token_user(pair["access_token"].as_str().unwrap()),
        Some(99)
    );
}

#[tokio::test]
async fn the_people_offered_are_the_portal_data_s_choice() {
    let mut data = PortalData::sample_with_signin("c0de", app());
    data.signin_users = vec![1271, 1];
    let portal = DemoPortal::start(data).await.unwrap();
    let url = url_with(
        &portal.authorize_url(),
        &[("client_id", CLIENT_ID), ("state", "s")],
    );
    let page = html(get(&url).await, StatusCode::OK).await;
    assert!(
        page.contains("value=\"1271\" checked> Maria Garcia"),
        "{page}"
    );
    assert!(
        page.contains("value=\"1\"> Olga Ivanova (Portal Administrator)"),
        "{page}"
    );
    assert!(!page.contains("Anna"), "{page}");
    // Someone not offered cannot be chosen by editing the form.
    let pairs = [("client_id", CLIENT_ID), ("state", "s"), ("user_id", "99")];
    let page = html(
        post_form(&portal.authorize_url(), &pairs).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(page.contains("Sign-in failed"), "{page}");
}

#[tokio::test]
async fn choosing_redirects_to_the_app_s_handler_with_every_parameter() {
    let portal = portal().await;
    // Without the trailing slash too; a redirect_uri in the request changes nothing.
    let pairs = [
        ("client_id", CLIENT_ID),
        ("state", "xyz 1"),
        ("user_id", "1271"),
        ("redirect_uri", "http://evil.test/"),
    ];
    let url = format!("http://{}/oauth/authorize", portal.addr());
    let back = callback(&post_form(&url, &pairs).await);
    let keys: Vec<&str> = back.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "code",
            "domain",
            "member_id",
            "scope",
            "server_domain",
            "state"
        ]
    );
    assert_eq!(back["code"].len(), 32);
    assert!(back["code"].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(back["state"], "xyz 1");
    assert_eq!(back["domain"], portal.addr().to_string());
    assert_eq!(back["member_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(back["scope"], "im,user_basic");
    assert_eq!(back["server_domain"], "oauth.bitrix.info");
}

#[tokio::test]
async fn a_logged_in_browser_is_sent_back_at_once_without_a_page() {
    let portal = portal().await;
    portal.sign_in_browser_as(1271);
    let url = format!(
        "http://{}/oauth/authorize?client_id={CLIENT_ID}&state=s1",
        portal.addr()
    );
    let back = callback(&get(&url).await);
    assert_eq!(back["state"], "s1");
    let (status, pair) = exchange(&portal, SECRET, &back["code"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        portal.token_user(pair["access_token"].as_str().unwrap()),
        Some(1271)
    );

    portal.sign_out_browser();
    let page = html(get(&url).await, StatusCode::OK).await;
    assert!(page.contains("Choose who you are"), "{page}");
}

#[tokio::test]
async fn an_unknown_or_missing_client_gets_the_portal_s_error_page_never_a_redirect() {
    let portal = portal().await;
    // Even a logged-in browser is not sent anywhere for an app the portal does not know.
    portal.sign_in_browser_as(99);
    let base = portal.authorize_url();
    for url in [
        url_with(&base, &[("client_id", "local.other.1"), ("state", "s")]),
        url_with(&base, &[("state", "s")]),
        url_with(&base, &[("client_id", ""), ("state", "s")]),
    ] {
        let page = html(get(&url).await, StatusCode::BAD_REQUEST).await;
        assert!(page.contains("The application was not found"), "{page}");
    }
    let pairs = [
        ("client_id", "local.other.1"),
        ("state", "s"),
        ("user_id", "99"),
    ];
    html(post_form(&base, &pairs).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(portal.code_exchanges(99), 0);
}

#[tokio::test]
async fn the_exchange_answers_a_pair_in_bitrix24_s_shape_without_user_id() {
    let portal = portal().await;
    let code = code_for(&portal, 1271).await;
    let (status, pair) = exchange(&portal, SECRET, &code).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let keys: Vec<&str> = pair
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires",
            "expires_in",
            "scope",
            "domain",
            "server_endpoint",
            "status",
            "client_endpoint",
            "member_id",
            "refresh_token"
        ]
    );
    assert_eq!(pair["expires_in"], 3600);
    assert_eq!(pair["domain"], "oauth.bitrix.info");
    assert_eq!(pair["server_endpoint"], "https://oauth.bitrix.info/rest/");
    assert_eq!(pair["client_endpoint"], portal.rest_root());
    assert_eq!(pair["member_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(pair["status"], "L");
    assert!(pair["expires"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        portal.token_user(pair["refresh_token"].as_str().unwrap()),
        Some(1271)
    );
    assert_eq!(portal.code_exchanges(1271), 1);
}

#[tokio::test]
async fn a_code_works_once() {
    let portal = portal().await;
    let code = code_for(&portal, 99).await;
    assert_eq!(exchange(&portal, SECRET, &code).await.0, StatusCode::OK);
    let (status, answer) = exchange(&portal, SECRET, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_grant");
    let (status, answer) = exchange(&portal, SECRET, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(
        (status, answer["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    assert_eq!(portal.code_exchanges(99), 1);
}

#[tokio::test]
async fn a_code_past_its_lifetime_is_refused() {
    // Lifetime 0: every code is already past it when presented (Bitrix24's is 30 s).
    let mut app = app();
    app.code_ttl_secs = 0.0;
    let portal = portal_with(app).await;
    let code = code_for(&portal, 99).await;
    let (status, answer) = exchange(&portal, SECRET, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_grant");
    assert_eq!(portal.code_exchanges(99), 0);
}

#[tokio::test]
async fn a_wrong_client_is_invalid_client_and_spends_nothing() {
    let portal = portal().await;
    let code = code_for(&portal, 99).await;
    let (status, answer) = exchange(&portal, "wrong-secret", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "invalid_client");
    let query = [
        ("grant_type", "authorization_code"),
        ("client_id", "local.other.1"),
        ("client_secret", SECRET),
        ("code", code.as_str()),
    ];
    // The documented GET form of the token server.
    let response = get(&url_with(&portal.token_url(), &query)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // The code is still the user's to exchange, once.
    assert_eq!(exchange(&portal, SECRET, &code).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_same_question_is_answered_as_each_user() {
    let portal = portal().await;
    let (anna, _) = tokens_for(&portal, 99).await;
    let (maria, _) = tokens_for(&portal, 1271).await;
    assert_eq!(portal.token_user(&anna), Some(99));
    assert_eq!(portal.token_user(&maria), Some(1271));

    let question = json!({"CHAT_ID": 2937});
    let (status, answer) = call(&portal, "im.chat.user.list", &anna, question.clone()).await;
    assert_eq!(
        (status, answer["result"].clone()),
        (StatusCode::OK, json!([99, 1269, 1300]))
    );
    let (status, answer) = call(&portal, "im.chat.user.list", &maria, question).await;
    assert_eq!(
        (status, answer["result"].clone()),
        (StatusCode::OK, json!([]))
    );

    // Each one's private dialog with the other is the same chat, seen from either side.
    let (_, dialog) = call(
        &portal,
        "im.dialog.get",
        &anna,
        json!({"DIALOG_ID": "1271"}),
    )
    .await;
    assert_eq!(dialog["result"]["id"], 5002);
    let (_, dialog) = call(&portal, "im.dialog.get", &maria, json!({"DIALOG_ID": "99"})).await;
    assert_eq!(dialog["result"]["id"], 5002);
    let (status, refused) = call(
        &portal,
        "im.dialog.get",
        &maria,
        json!({"DIALOG_ID": "chat2937"}),
    )
    .await;
    assert_eq!(
        (status, refused["error"].clone()),
        (StatusCode::FORBIDDEN, json!("ACCESS_ERROR"))
    );

    let (_, recent) = call(&portal, "im.recent.list", &maria, json!({})).await;
    let ids: Vec<Value> = recent["result"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!("chat2938"),
            json!(99),
            json!("chat2935"),
            json!("chat2936"),
            json!("chat1")
        ]
    );
}

#[tokio::test]
async fn profile_and_user_current_name_the_caller() {
    let portal = portal().await;
    let (anna, _) = tokens_for(&portal, 99).await;
    let (maria, _) = tokens_for(&portal, 1271).await;
    let (status, profile) = call(&portal, "profile", &anna, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        profile["result"],
        json!({"ID": "99", "ADMIN": false, "NAME": "Anna", "LAST_NAME": "Petrova",
            "PERSONAL_GENDER": "", "PERSONAL_PHOTO": "", "TIME_ZONE": "", "TIME_ZONE_OFFSET": 0})
    );
    let (_, profile) = call(&portal, "profile", &maria, json!({})).await;
    assert_eq!(
        (
            profile["result"]["ID"].clone(),
            profile["result"]["NAME"].clone()
        ),
        (json!("1271"), json!("Maria"))
    );
    let (_, current) = call(&portal, "user.current", &maria, json!({})).await;
    assert_eq!(current["result"]["ID"], "1271");
    assert_eq!(current["result"]["LAST_NAME"], "Garcia");
    assert_eq!(current["result"]["WORK_POSITION"], "Marketing Manager");

    // Olga, the administrator, when she signs in; the webhook acts as Anna, who is not one.
    let mut data = PortalData::sample_with_signin("c0de", app());
    data.signin_users.push(1);
    let portal = DemoPortal::start(data).await.unwrap();
    let (olga, _) = tokens_for(&portal, 1).await;
    let (_, profile) = call(&portal, "profile", &olga, json!({})).await;
    assert_eq!(profile["result"]["ADMIN"], true);
    let response = browser()
        .post(format!("{}profile", portal.webhook_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let profile: Value = response.json().await.unwrap();
    assert_eq!(
        (
            profile["result"]["ID"].clone(),
            profile["result"]["ADMIN"].clone()
        ),
        (json!("99"), json!(false))
    );
}

#[tokio::test]
async fn a_refresh_keeps_the_user_and_rotates() {
    let portal = portal().await;
    let (_, old_refresh) = tokens_for(&portal, 1271).await;
    let (status, pair) = refresh(&portal, &old_refresh).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(pair["user_id"], 1271);
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(portal.token_user(access), Some(1271));
    assert_eq!(
        portal.token_user(pair["refresh_token"].as_str().unwrap()),
        Some(1271)
    );
    let (_, answer) = call(
        &portal,
        "im.chat.user.list",
        access,
        json!({"CHAT_ID": 2937}),
    )
    .await;
    assert_eq!(answer["result"], json!([]), "still Maria");
    let (status, answer) = refresh(&portal, &old_refresh).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    assert_eq!((portal.refreshes(1271), portal.refreshes(99)), (1, 0));

    portal.expire_access_tokens();
    let (status, answer) = call(&portal, "profile", access, json!({})).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("expired_token"))
    );
}

#[tokio::test]
async fn the_seed_tokens_belong_to_the_webhook_user() {
    let mut app = OAuthApp::new(CLIENT_ID, SECRET, "seedRefresh");
    app.access_tokens = vec![("seedAccess".into(), 4_000_000_000.0)];
    let portal = portal_with(app).await;
    assert_eq!(portal.token_user("seedAccess"), Some(99));
    assert_eq!(portal.token_user("seedRefresh"), Some(99));
    let (_, pair) = refresh(&portal, "seedRefresh").await;
    assert_eq!(pair["user_id"], 99);
}

#[tokio::test]
async fn uninstalling_the_app_kills_every_token() {
    let mut app = OAuthApp::new(CLIENT_ID, SECRET, "seedRefresh");
    app.redirect_uri = Some(HANDLER.into());
    app.access_tokens = vec![("seedAccess".into(), 4_000_000_000.0)];
    let portal = portal_with(app).await;
    let (access, refresh_token) = tokens_for(&portal, 1271).await;
    let code = code_for(&portal, 99).await;

    portal.uninstall_app();
    for token in [access.as_str(), "seedAccess"] {
        let (status, answer) = call(&portal, "profile", token, json!({})).await;
        assert_eq!(
            (status, answer["error"].clone()),
            (StatusCode::UNAUTHORIZED, json!("invalid_token"))
        );
        assert_eq!(portal.token_user(token), None);
    }
    for token in [refresh_token.as_str(), "seedRefresh"] {
        let (status, answer) = refresh(&portal, token).await;
        assert_eq!(
            (status, answer["error"].clone()),
            (StatusCode::UNAUTHORIZED, json!("invalid_client"))
        );
    }
    let (status, answer) = exchange(&portal, SECRET, &code).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_client"))
    );
    let url = url_with(
        &portal.authorize_url(),
        &[("client_id", CLIENT_ID), ("state", "s")],
    );
    html(get(&url).await, StatusCode::BAD_REQUEST).await;
    // The webhook is not the app: it keeps working.
    let response = browser()
        .post(format!("{}profile", portal.webhook_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_handler_url_can_be_set_after_start_and_without_one_the_code_is_shown() {
    let portal = portal_with(OAuthApp::signin(CLIENT_ID, SECRET)).await;
    let pairs = [("client_id", CLIENT_ID), ("state", "s"), ("user_id", "99")];
    let page = html(
        post_form(&portal.authorize_url(), &pairs).await,
        StatusCode::OK,
    )
    .await;
    assert!(page.contains("Copy this code"), "{page}");

    portal.set_redirect_uri(HANDLER);
    let back = callback(&post_form(&portal.authorize_url(), &pairs).await);
    assert_eq!(
        exchange(&portal, SECRET, &back["code"]).await.0,
        StatusCode::OK
    );
}
