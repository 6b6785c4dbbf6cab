//! What the message tests share: the signed-in sample portal, calls as the webhook (JSON or a
//! form) or with a person's token, and readers for the answers.

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use reqwest::{Client, StatusCode, redirect};
use serde_json::{Value, json};

const CLIENT_ID: &str = "local.demo0000000000.00000000";
const SECRET: &str = "s1gn1nS3cretOfTheApp";

pub async fn portal() -> DemoPortal {
    let mut app = OAuthApp::signin(CLIENT_ID, SECRET);
    app.redirect_uri = Some("http://127.0.0.1:9/oauth/callback".into());
    DemoPortal::start(PortalData::sample_with_signin("c0de", app))
        .await
        .unwrap()
}

pub fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// A webhook call (as Anna, 99) with a JSON body: status and answer.
pub async fn call(portal: &DemoPortal, method: &str, body: Value) -> (StatusCode, Value) {
    let url = format!("{}{method}", portal.webhook_url());
    let response = client().post(url).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A webhook call with a form body, as PHP clients send it: every value a string.
pub async fn call_form(
    portal: &DemoPortal,
    method: &str,
    pairs: &[(&str, &str)],
) -> (StatusCode, Value) {
    let url = format!("{}{method}", portal.webhook_url());
    let body = serde_urlencoded::to_string(pairs).unwrap();
    let response = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A call with a person's access token.
pub async fn call_as(
    portal: &DemoPortal,
    token: &str,
    method: &str,
    mut body: Value,
) -> (StatusCode, Value) {
    body["auth"] = json!(token);
    let url = format!("{}{method}", portal.rest_root());
    let response = client().post(url).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Signs `user` in through the portal's chooser and exchanges the code: their access token.
pub async fn token_for(portal: &DemoPortal, user: i64) -> String {
    let id = user.to_string();
    let pairs = [("client_id", CLIENT_ID), ("state", "st"), ("user_id", &id)];
    let response = client()
        .post(portal.authorize_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap())
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let pairs = [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("code", &code),
    ];
    let response = client()
        .post(portal.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap())
        .send()
        .await
        .unwrap();
    let pair: Value = response.json().await.unwrap();
    pair["access_token"].as_str().unwrap().to_owned()
}

pub fn ids(answer: &Value) -> Vec<i64> {
    answer["result"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

pub fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
}

pub async fn get(portal: &DemoPortal, body: Value) -> Value {
    let (status, answer) = call(portal, "im.dialog.messages.get", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

pub async fn search(portal: &DemoPortal, body: Value) -> Value {
    let (status, answer) = call(portal, "im.dialog.messages.search", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

pub fn marketing_ids(portal: &DemoPortal) -> Vec<i64> {
    portal.messages(2935).iter().map(|m| m.id).collect()
}
