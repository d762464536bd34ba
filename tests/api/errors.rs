//! Malformed input gets a 4xx answer in the one JSON error format.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, json_of, TestApp};

const TENANTS: &str = "/api/admin/tenants";

#[tokio::test]
async fn malformed_json_is_a_400_json_error() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .send(
            app.request(Method::POST, TENANTS)
                .bearer_auth(&app.admin_token)
                .header("content-type", "application/json")
                .body("{\"name\": \"Toko\", \"email\": "),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let (status, body) = app.admin_post(TENANTS, &json!({"name": 42, "email": "a@example.com"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "name", "{body}");
}

#[tokio::test]
async fn a_missing_field_is_a_422_naming_it() {
    let app = TestApp::spawn().await;
    let (status, body) = app.admin_post(TENANTS, &json!({"name": "Toko Budi"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "email", "{body}");
}

#[tokio::test]
async fn an_invalid_email_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let (status, body) = app.admin_post(TENANTS, &json!({"name": "Toko", "email": "budi at toko"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "email", "{body}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_json_error() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .send(
            app.request(Method::POST, TENANTS)
                .bearer_auth(&app.admin_token)
                .header("content-type", "text/plain")
                .body("name=Toko&email=a@example.com"),
        )
        .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_json_error() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    for path in ["/nope", "/api/user/nope", "/api/admin/tenants/1/nope"] {
        let response =
            app.request(Method::GET, path).header("x-api-key", &tenant.api_key).send().await.unwrap();
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let (status, body) = json_of(response).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    // Another tenant's or a missing tenant is not found either.
    let (status, body) = app.admin_get("/api/admin/tenants/987654").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_json_error() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::PUT, "/api/user/info").header("x-api-key", &tenant.api_key)).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let (status, body) = app.send(app.request(Method::DELETE, "/healthz")).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_payload_too_large() {
    let app = TestApp::spawn_with(|c| c.server.body_limit = 1024).await;
    let big = "x".repeat(4096);
    let (status, body) = app.admin_post(TENANTS, &json!({"name": big, "email": "big@example.com"})).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A body under the limit still works.
    let (status, body) =
        app.admin_post(TENANTS, &json!({"name": "Small", "email": "small@example.com"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn an_unknown_package_is_a_422() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .admin_post(TENANTS, &json!({"name": "Toko", "email": "toko@example.com", "package": "platinum"}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "package");

    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.admin_patch(&format!("/api/admin/tenants/{}", tenant.id), &json!({"package": "platinum"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "package");
    let (_, info) = app.get("/api/user/info", &tenant.api_key).await;
    assert_eq!(info["package"], "basic");
}

#[tokio::test]
async fn an_unknown_status_is_a_422() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.admin_patch(&format!("/api/admin/tenants/{}", tenant.id), &json!({"status": "banned"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "status");
}

#[tokio::test]
async fn a_duplicate_email_is_a_409_conflict() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Toko Budi", "email": "budi@example.com", "package": "basic"});
    let (status, first) = app.admin_post(TENANTS, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = app.admin_post(TENANTS, &body).await;
    assert_error(status, &second, StatusCode::CONFLICT, "conflict");
    // Emails compare without regard to case.
    let (status, third) =
        app.admin_post(TENANTS, &json!({"name": "Budi 2", "email": "BUDI@example.com"})).await;
    assert_error(status, &third, StatusCode::CONFLICT, "conflict");
    let (_, list) = app.admin_get(TENANTS).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn an_unknown_field_in_a_body_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let (status, body) =
        app.admin_post(TENANTS, &json!({"name": "Toko", "email": "t@example.com", "pakage": "basic"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("pakage"), "{body}");
}

/// Text with U+0000 is refused the same way on SQLite and PostgreSQL (which cannot store it):
/// 422 naming the field, in bodies and in query filters alike.
#[tokio::test]
async fn text_with_a_nul_character_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, "6281100000066").await;
    let key = &tenant.api_key;
    let bodies = [
        (
            "/api/send-message",
            json!({"device": device, "to": "6281299999999", "text": "nul\u{0}inside"}),
            "text",
        ),
        ("/api/user/devices", json!({"phone": "6281100000556", "name": "dev\u{0}nul"}), "name"),
        ("/api/user/auto-reply", json!({"keyword": "nul\u{0}kw", "reply": "r"}), "keyword"),
        ("/api/user/auto-reply", json!({"keyword": "kw", "reply": "r\u{0}r"}), "reply"),
        (
            "/api/user/webhooks",
            json!({"url": "https://nul.example.com/x", "description": "d\u{0}d"}),
            "description",
        ),
        ("/api/user/api-keys", json!({"name": "k\u{0}k"}), "name"),
        (
            "/api/user/scheduled-messages",
            json!({"device": device, "to": "6281299999999", "text": "s\u{0}s", "send_at": "2030-01-01T00:00:00Z"}),
            "text",
        ),
    ];
    for (path, body, field) in bodies {
        let (status, answer) = app.post(path, key, &body).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{path}: {answer}");
    }
    for (path, field) in [
        ("/api/user/chat-history?q=%00", "q"),
        ("/api/user/chat-history?q=a%00b", "q"),
        ("/api/user/activity-logs?action=%00", "action"),
        ("/api/user/webhook-logs?event=a%00", "event"),
    ] {
        let (status, answer) = app.get(path, key).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{path}: {answer}");
    }
    let (status, answer) =
        app.admin_post(TENANTS, &json!({"name": "nul\u{0}tenant", "email": "nul@example.com"})).await;
    assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(answer["error"]["field"], "name", "{answer}");
    // Nothing was stored or counted, and the same requests without the character work.
    let (_, history) = app.get("/api/user/chat-history", key).await;
    assert_eq!(history["total"], 0, "{history}");
    let (status, answer) = app.post("/api/user/api-keys", key, &json!({"name": "k\\u0000k"})).await;
    assert_eq!(status, StatusCode::CREATED, "an escaped backslash is ordinary text: {answer}");
    assert_eq!(answer["name"], "k\\u0000k");
}

#[tokio::test]
async fn paging_outside_its_bounds_is_a_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let max = i64::MAX;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-9223372036854775808", "limit"),
        ("offset=-1", "offset"),
        ("offset=100001", "offset"),
        (&format!("offset={max}") as &str, "offset"),
        (&format!("limit=500&offset={}", max - 1), "offset"),
    ] {
        for list in ["/api/user/chat-history", "/api/user/auto-reply", "/api/user/webhook-logs"] {
            let (status, body) = app.get(&format!("{list}?{query}"), &tenant.api_key).await;
            assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(body["error"]["field"], field, "{list}?{query}: {body}");
        }
    }
    let (status, body) = app.get("/api/user/chat-history?limit=500&offset=100000", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "the stated maxima themselves: {body}");
    assert_eq!((body["limit"].as_i64(), body["offset"].as_i64()), (Some(500), Some(100_000)));
}
