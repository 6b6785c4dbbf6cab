//! What an MCP client sees: the tools, their schemas and annotations, the server's identity, and
//! successful calls of im_chat_user_list against the sample portal, down to the exact request the
//! portal received. (The other chat tools: `chat_tools.rs`.)

mod common;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

async fn demo() -> DemoPortal {
    DemoPortal::start(PortalData::sample(CODE)).await.unwrap()
}

/// Keys and shapes MCP clients choke on, anywhere in a schema: `format`, references, and a
/// field with no type at all (the Inspector's strict mode warns). Input schemas go to model APIs
/// that take one type per field; an output schema, read only by the client's validator, may name
/// several (`["integer", "null"]`).
fn assert_plain_schema(value: &Value, path: &str, several_types: bool) {
    let Value::Object(map) = value else {
        panic!("{path} is not a schema: {value}")
    };
    match &map.get("type") {
        Some(Value::String(_)) => {}
        Some(Value::Array(types)) if several_types => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            assert!(
                names.len() == types.len() && names.len() > 1,
                "{path}.type: {types:?}"
            );
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{path}.type repeats a type");
        }
        other => panic!("{path} has no single type: {other:?}"),
    }
    for (key, inner) in map {
        assert!(
            !matches!(
                key.as_str(),
                "format" | "$ref" | "$defs" | "anyOf" | "oneOf"
            ),
            "{path}.{key}"
        );
        match key.as_str() {
            // Property names are names, not keywords: look inside each definition.
            "properties" => {
                for (name, schema) in inner.as_object().unwrap() {
                    assert_plain_schema(schema, &format!("{path}.{name}"), several_types);
                }
            }
            "items" => assert_plain_schema(inner, &format!("{path}[]"), several_types),
            "additionalProperties" if inner.is_object() => {
                assert_plain_schema(inner, &format!("{path}.*"), several_types)
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_tool_is_listed_read_only_with_plain_input_and_output_schemas() {
    let client = mcp_client(Bitrix24Tools::new(None)).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "im_search_chat_list",
            "im_chat_get",
            "im_dialog_get",
            "im_dialog_users_list",
            "im_chat_user_list",
            "im_user_list_get",
            "im_recent_list",
            "im_dialog_messages_get",
            "im_dialog_messages_search",
            "bitrix24_call",
        ]
    );
    for tool in &tools {
        let tool = serde_json::to_value(tool).unwrap();
        let name = tool["name"].as_str().unwrap();
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{name}");
        assert_eq!(tool["annotations"]["destructiveHint"], false, "{name}");
        assert_eq!(tool["annotations"]["idempotentHint"], true, "{name}");
        assert_eq!(tool["annotations"]["openWorldHint"], true, "{name}");
        assert_eq!(tool["annotations"]["title"], tool["title"], "{name}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        assert_plain_schema(&tool["inputSchema"], &format!("{name} input"), false);
        assert_plain_schema(&tool["outputSchema"], &format!("{name} output"), true);
        // Parameters are the REST method's own names, in upper case (bitrix24_call takes the
        // method's name and its parameters, as `method` and `params`).
        for parameter in tool["inputSchema"]["properties"]
            .as_object()
            .unwrap()
            .keys()
        {
            if name != "bitrix24_call" {
                assert_eq!(parameter, &parameter.to_uppercase(), "{name}");
            }
        }
        let description = tool["description"].as_str().unwrap();
        assert!(description.contains("acting user"), "{name}: {description}");
        if name != "bitrix24_call" {
            assert!(description.contains("(REST im."), "{name}: {description}");
        }
    }
}

#[tokio::test]
async fn im_chat_user_list_keeps_its_documented_schema() {
    let tool = Bitrix24Tools::definitions()
        .into_iter()
        .find(|t| t.name == "im_chat_user_list")
        .unwrap();
    let tool = serde_json::to_value(&tool).unwrap();
    assert_eq!(tool["title"], "List chat participant IDs");
    assert_eq!(
        tool["inputSchema"],
        json!({
            "type": "object",
            "properties": {"CHAT_ID": {
                "type": "integer",
                "minimum": 1,
                "description": tool["inputSchema"]["properties"]["CHAT_ID"]["description"],
            }},
            "required": ["CHAT_ID"],
        })
    );
    let description = tool["description"].as_str().unwrap();
    for phrase in [
        "articipant",
        "empty list",
        "im_dialog_users_list",
        "im_chat_get",
    ] {
        assert!(description.contains(phrase), "description lacks {phrase:?}");
    }
    let output = &tool["outputSchema"];
    assert_eq!(output["required"], json!(["chat_id", "user_ids", "count"]));
    assert_eq!(
        output["properties"]["user_ids"]["items"],
        json!({"type": "integer"})
    );
}

#[tokio::test]
async fn server_info_names_this_crate_and_version() {
    let client = mcp_client(Bitrix24Tools::new(None)).await;
    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server.name, "bitrix24-mcp");
    assert_eq!(server.version, env!("CARGO_PKG_VERSION"));
    assert!(info.capabilities.tools.is_some());
}

#[tokio::test]
async fn returns_participants_as_structured_content_and_json_text() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    let result = call(&client, json!({"CHAT_ID": 2935})).await;
    assert_eq!(
        success_object(&result),
        json!({"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3})
    );
    // Field order of the text follows the schema, as a person reading it expects.
    assert_eq!(
        text(&result),
        r#"{"chat_id":2935,"user_ids":[99,1269,1271],"count":3}"#
    );
}

#[tokio::test]
async fn sends_exactly_the_documented_request() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    call(&client, json!({"CHAT_ID": 2935})).await;
    let requests = portal.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/rest/99/{CODE}/im.chat.user.list"));
    assert_eq!(request.query, None);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["accept"], "application/json");
    assert_eq!(
        request.headers["user-agent"],
        format!("bitrix24-mcp/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(request.body, r#"{"CHAT_ID":2935}"#);
}

#[tokio::test]
async fn lenient_forms_of_chat_id_are_sent_as_the_integer() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    for arguments in [json!({"CHAT_ID": "2935"}), json!({"CHAT_ID": "chat2935"})] {
        let result = call(&client, arguments.clone()).await;
        assert_eq!(
            success_object(&result)["user_ids"],
            json!([99, 1269, 1271]),
            "{arguments}"
        );
    }
    let bodies: Vec<String> = portal.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, [r#"{"CHAT_ID":2935}"#, r#"{"CHAT_ID":2935}"#]);
}

#[tokio::test]
async fn an_empty_list_carries_the_permission_note() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    for chat_id in [2936, 777_777] {
        let result = success_object(&call(&client, json!({"CHAT_ID": chat_id})).await);
        assert_eq!(result["user_ids"], json!([]));
        assert_eq!(result["count"], 0);
        let note = result["note"].as_str().unwrap();
        assert!(note.contains("may not see"), "{note}");
    }
}

#[tokio::test]
async fn the_general_chat_is_refused_with_access_error() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 1})).await);
    assert_eq!(error["error"], "ACCESS_ERROR");
    assert_eq!(error["http_status"], 403);
    assert_eq!(error["category"], "permission");
    assert_eq!(error["retryable"], false);
}

#[tokio::test]
async fn without_configuration_calls_answer_not_configured() {
    let client = mcp_client(Bitrix24Tools::new(None)).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "NOT_CONFIGURED");
    assert_eq!(error["category"], "configuration");
    assert_eq!(error["retryable"], false);
    assert!(error.get("http_status").is_none());
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("BITRIX24_WEBHOOK_URL")
    );
}

#[tokio::test]
async fn an_unknown_tool_is_a_protocol_error() {
    let client = mcp_client(Bitrix24Tools::new(None)).await;
    let err = client
        .call_tool(CallToolRequestParams::new("im_chat_delete"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("unknown tool \"im_chat_delete\""),
        "{message}"
    );
}

#[tokio::test]
async fn the_sample_portal_rejects_a_wrong_webhook_code() {
    let portal = demo().await;
    let wrong = portal.webhook_url().replace(CODE, "wrongcode");
    let webhook = bitrix24_mcp::bitrix::WebhookUrl::parse(
        &wrong,
        bitrix24_mcp::bitrix::HttpPolicy::HttpsOnly,
    )
    .unwrap();
    let client = bitrix24_mcp::bitrix::Client::new(webhook.into(), fast_options()).unwrap();
    let client = mcp_client(Bitrix24Tools::new(Some(client))).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "NO_AUTH_FOUND");
    assert_eq!(error["http_status"], 401);
    assert_eq!(error["category"], "authentication");
}

#[tokio::test]
async fn the_sample_portal_applies_php_intval_to_chat_id() {
    // The portal's own validation, reached directly: our tool never sends these.
    let portal = demo().await;
    let http = reqwest::Client::new();
    let url = format!("{}im.chat.user.list.json", portal.webhook_url());
    for body in [
        json!({"CHAT_ID": 0}),
        json!({"chat_id": "abc"}),
        json!({"CHAT_ID": -3}),
        json!({}),
    ] {
        let response = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "CHAT_ID_EMPTY", "{body}");
    }
    let answer: Value = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("DIALOG_ID=chat2935")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"], json!([99, 1269, 1271]));
    assert!(
        answer["time"]["date_start"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
}
