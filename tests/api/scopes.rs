//! Scoped API keys: `read`, `send`, `manage`. Every endpoint of the OpenAPI document is walked
//! with a read-only key; a send-only key sends and nothing else; no key makes a key that may
//! do more than itself.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, TestTenant};

/// The sends and the actions on messages and chats: what a `send` key is for.
const SEND: &[&str] = &[
    "/api/send-message",
    "/api/send-media",
    "/api/send-location",
    "/api/send-contact",
    "/api/send-poll",
    "/api/user/messages/{id}",
    "/api/user/messages/{id}/forward",
    "/api/user/messages/{id}/reaction",
    "/api/user/messages/{id}/read",
    "/api/user/chats/{chat}/read",
    "/api/user/devices/{id}/presence",
];

/// Makes a key of `tenant` with `scopes`; returns the whole answer.
async fn key_with(app: &TestApp, by: &str, scopes: Value) -> (StatusCode, Value) {
    app.post("/api/user/api-keys", by, &json!({"name": "scoped", "scopes": scopes})).await
}

async fn scoped_key(app: &TestApp, tenant: &TestTenant, scopes: Value) -> String {
    let (status, key) = key_with(app, &tenant.api_key, scopes).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key["api_key"].as_str().unwrap().to_string()
}

/// Asserts a 403 that names the scope the key lacks.
fn assert_lacks(status: StatusCode, body: &Value, scope: &str, what: &str) {
    assert_error(status, body, StatusCode::FORBIDDEN, "forbidden");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("`{scope}`")), "{what}: {body}");
}

#[tokio::test]
async fn every_endpoint_with_a_read_only_key_reads_or_is_refused_naming_the_scope() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let reader = scoped_key(&app, &tenant, json!(["read"])).await;
    let (_, doc) = app.send(app.request(Method::GET, "/openapi.json")).await;
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/") || path.starts_with("/api/admin/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let concrete = path
                .replace("{id}", "1")
                .replace("{chat}", "6281234567890@s.whatsapp.net")
                .replace("{jid}", "6281234567890@s.whatsapp.net")
                .replace("{group}", "120363000000000001@g.us")
                .replace("{lid}", "123456789@lid");
            let mut request = app.request(method.clone(), &concrete).header("x-api-key", &reader);
            if method != Method::GET && method != Method::DELETE {
                request = request.json(&json!({}));
            }
            let (status, body) = app.send(request).await;
            let reads = (method == Method::GET
                && path != "/api/user/api-keys"
                && path != "/api/user/devices/{id}/qr")
                || path == "/api/user/devices/{id}/check-numbers";
            let what = format!("{method} {path}");
            if reads {
                assert_ne!(status, StatusCode::FORBIDDEN, "{what} is a read: {body}");
            } else {
                let scope = if SEND.contains(&path.as_str()) { "send" } else { "manage" };
                assert_lacks(status, &body, scope, &what);
            }
            walked += 1;
        }
    }
    assert!(walked > 60, "the walk covers the API: {walked}");
}

#[tokio::test]
async fn a_send_only_key_sends_and_does_nothing_else() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, "6281381830658").await;
    let sender = scoped_key(&app, &tenant, json!(["send"])).await;
    let body = json!({"device": device, "to": "6281234567890", "text": "Pesanan Anda dikirim"});
    let (status, sent) = app.post("/api/send-message", &sender, &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let (status, body) = app.get("/api/user/chat-history", &sender).await;
    assert_lacks(status, &body, "read", "history");
    let rule = json!({"keyword": "halo", "reply": "hai"});
    let (status, body) = app.post("/api/user/auto-reply", &sender, &rule).await;
    assert_lacks(status, &body, "manage", "a rule");
    // The full key still does everything.
    let (status, _) = app.get("/api/user/chat-history", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_never_makes_a_key_that_may_do_more_than_itself() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let manager = scoped_key(&app, &tenant, json!(["manage"])).await;

    let (status, body) = key_with(&app, &manager, json!(["manage", "send"])).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = key_with(&app, &manager, json!(["manage"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["scopes"], json!(["manage"]));
    let (status, body) = app.post("/api/user/api-keys", &manager, &json!({"name": "no scopes named"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["scopes"], json!(["manage"]), "left out: the scopes of the key making it");

    let (status, body) = key_with(&app, &tenant.api_key, json!(["read", "admin"])).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(body.to_string().contains("admin"), "{body}");
    let (status, body) = key_with(&app, &tenant.api_key, json!([])).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Keys made without scopes may do everything, as before scopes existed.
    let (status, list) = app.get("/api/user/api-keys", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let first = list["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(first["scopes"], json!(["read", "send", "manage"]), "{list}");
}
