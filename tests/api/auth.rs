//! Tenant API keys and the admin token.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn a_key_in_the_x_api_key_header_authenticates_the_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::GET, "/api/user/info").header("x-api-key", &tenant.api_key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], tenant.id);
}

#[tokio::test]
async fn a_key_as_a_bearer_token_authenticates_the_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::GET, "/api/user/info").bearer_auth(&tenant.api_key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], tenant.id);
}

#[tokio::test]
async fn a_key_in_the_api_key_query_parameter_authenticates_the_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::GET, &format!("/api/user/info?api_key={}", tenant.api_key))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], tenant.id);
}

#[tokio::test]
async fn an_api_key_parameter_with_a_nul_is_no_key_and_not_a_bad_filter() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    // Beside a key in the header (which comes first), on a list whose filters refuse U+0000.
    let (status, body) = app.get("/api/user/contacts?api_key=a%00b", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Alone it is simply not a valid key.
    let (status, body) = app.send(app.request(Method::GET, "/api/user/contacts?api_key=a%00b")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // A filter with U+0000 is still refused, naming the filter.
    let (status, body) = app.get("/api/user/contacts?q=a%00b", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "q", "{body}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_a_json_401() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    // Same shape as a real key, one character changed; and something that is no key at all.
    let mut wrong = tenant.api_key.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    for key in [wrong.as_str(), "not-a-key", "wag_"] {
        let response =
            app.request(Method::GET, "/api/user/info").header("x-api-key", key).send().await.unwrap();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let (status, body) = crate::helpers::json_of(response).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_with_401() {
    let app = TestApp::spawn().await;
    for path in ["/api/user/info", "/api/user/limits", "/api/user/api-keys"] {
        let (status, body) = app.send(app.request(Method::GET, path)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working_and_the_others_keep_working() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, created) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "laptop"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["api_key"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/user/info", &second).await.0, StatusCode::OK);

    let (status, _) = app.delete(&format!("/api/user/api-keys/{}", created["id"]), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, body) = app.get("/api/user/info", &second).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_suspended_tenants_keys_are_refused_until_it_is_reactivated() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let path = format!("/api/admin/tenants/{}", tenant.id);

    let (status, body) = app.admin_patch(&path, &json!({"status": "suspended"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "suspended");
    let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // Every way of presenting the key is refused, and other tenants are not affected.
    let (status, _) =
        app.send(app.request(Method::GET, "/api/user/limits").bearer_auth(&tenant.api_key)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/user/info", &other.api_key).await.0, StatusCode::OK);

    let (status, body) = app.admin_patch(&path, &json!({"status": "active"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
}

#[tokio::test]
async fn admin_endpoints_refuse_a_missing_or_wrong_admin_token() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let requests = [
        (Method::GET, "/api/admin/tenants".to_string(), None),
        (
            Method::POST,
            "/api/admin/tenants".to_string(),
            Some(json!({"name": "X", "email": "x@example.com"})),
        ),
        (Method::PATCH, format!("/api/admin/tenants/{}", tenant.id), Some(json!({"status": "suspended"}))),
        (Method::POST, format!("/api/admin/tenants/{}/api-keys", tenant.id), None),
    ];
    for (method, path, body) in requests {
        for token in [None, Some("wrong-token"), Some("")] {
            let mut request = app.request(method.clone(), &path);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let (status, answer) = app.send(request).await;
            assert_error(status, &answer, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // Nothing was changed by the refused calls.
    let (status, body) = app.admin_get("/api/admin/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["data"][0]["status"], "active");
}

#[tokio::test]
async fn a_tenant_key_is_not_an_admin_token_and_the_admin_token_is_not_a_key() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::GET, "/api/admin/tenants").bearer_auth(&tenant.api_key)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) =
        app.send(app.request(Method::GET, "/api/admin/tenants").header("x-api-key", &tenant.api_key)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, body) = app.get("/api/user/info", ADMIN_TOKEN).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_admin_can_issue_another_key_for_a_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", tenant.id), &json!({"name": "ops"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["api_key"].as_str().unwrap();
    assert!(key.starts_with("wag_") && key != tenant.api_key, "{key}");
    let (status, info) = app.get("/api/user/info", key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["id"], tenant.id);

    let (status, body) = app.admin_post("/api/admin/tenants/999999/api-keys", &json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_bearer_scheme_name_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let request = app
            .request(Method::GET, "/api/user/info")
            .header("authorization", format!("{scheme} {}", tenant.api_key));
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
        let request = app
            .request(Method::GET, "/api/admin/tenants")
            .header("authorization", format!("{scheme} {}", app.admin_token));
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "admin with {scheme}: {body}");
    }
    let request = app.request(Method::GET, "/api/user/info").header("authorization", "Basic abc");
    assert_eq!(app.send(request).await.0, StatusCode::UNAUTHORIZED, "another scheme is no key");
}
