//! The per-key request rate limit.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn a_key_over_its_requests_per_minute_gets_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"requests_per_minute": 5})).await;
    app.set_limits(&other, json!({"requests_per_minute": 5})).await;

    for i in 0..5 {
        let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let response = app
        .request(reqwest::Method::GET, "/api/user/limits")
        .header("x-api-key", &tenant.api_key)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    // One token comes back every 12 s at 5 a minute.
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    let (status, body) = crate::helpers::json_of(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another tenant's key has its own allowance.
    for _ in 0..5 {
        assert_eq!(app.get("/api/user/info", &other.api_key).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn each_key_of_a_tenant_has_its_own_allowance() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"requests_per_minute": 2})).await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::OK);
    }
    assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::TOO_MANY_REQUESTS);
    let (status, body) =
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", tenant.id), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["api_key"].as_str().unwrap();
    assert_eq!(app.get("/api/user/info", second).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unlimited_requests_per_minute_are_never_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    for _ in 0..50 {
        assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::OK);
    }
}
