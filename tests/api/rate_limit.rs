//! The request rate limit: per tenant (every key together) and per key, shared by the
//! gateway processes of one database.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, poll_until, TestApp, WAIT};

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
async fn the_keys_of_a_tenant_share_its_allowance() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"requests_per_minute": 2})).await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::OK);
    }
    assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::TOO_MANY_REQUESTS);
    // A new key does not bring a new allowance.
    let (status, body) =
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", tenant.id), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["api_key"].as_str().unwrap();
    let (status, body) = app.get("/api/user/info", second).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

/// The package's 600 requests a minute hold for the tenant, however its requests are spread
/// over its keys: with two keys it gets one bucket of 600 (plus what refills while the
/// requests are made, 10 a second), not two.
#[tokio::test]
async fn the_601st_request_in_a_minute_across_two_keys_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let started = std::time::Instant::now();
    let (status, body) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "second"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["api_key"].as_str().unwrap().to_string();
    // The key creation above was request 1.
    let mut granted = 1u64;
    let refused = loop {
        let key = if granted.is_multiple_of(2) { &tenant.api_key } else { &second };
        let (status, body) = app.get("/api/user/info", key).await;
        if status != StatusCode::OK {
            break (status, body);
        }
        granted += 1;
        assert!(granted <= 1_200, "two keys got two allowances");
    };
    assert_error(refused.0, &refused.1, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let refilled = (started.elapsed().as_secs_f64() * 10.0).ceil() as u64;
    assert!((600..=600 + refilled).contains(&granted), "{granted} granted, {refilled} refilled");
}

#[tokio::test]
async fn unlimited_requests_per_minute_are_never_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    for _ in 0..50 {
        assert_eq!(app.get("/api/user/info", &tenant.api_key).await.0, StatusCode::OK);
    }
}

/// Two gateway processes on one PostgreSQL database share each tenant's bucket: a tenant
/// allowed 20 requests a minute, sending as fast as it can through both, gets 20 (plus what
/// refills meanwhile, plus at most the bound `src/limits/rate.rs` states for two processes:
/// ⌈20 / 2⌉ = 10), not 20 from each.
#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn a_tenant_sending_through_two_processes_gets_one_allowance() {
    let a = TestApp::spawn().await;
    let b = a.spawn_second().await;
    poll_until(WAIT, || async {
        (a.state.rate.processes() == 2 && b.state.rate.processes() == 2).then_some(())
    })
    .await;
    let tenant = a.create_tenant("basic").await;
    a.set_limits(&tenant, json!({"requests_per_minute": 20})).await;

    let started = std::time::Instant::now();
    let mut granted = [0u64; 2];
    let mut i = 0usize;
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let app = [&a, &b][i % 2];
        let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
        match status {
            StatusCode::OK => granted[i % 2] += 1,
            _ => assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        }
        i += 1;
    }
    let total = granted[0] + granted[1];
    let refilled = (started.elapsed().as_secs_f64() * 20.0 / 60.0).ceil() as u64;
    let bound = 10;
    assert!(total <= 20 + refilled + bound, "{granted:?} granted, {refilled} refilled, over the bound");
    assert!(total >= 19, "{granted:?} granted: the allowance is usable through both processes");
    assert!(granted.iter().all(|&g| g > 0), "{granted:?}: both processes served some");
}
