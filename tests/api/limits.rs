//! The limits service: reservations hold under concurrency, on whichever database runs.

use reqwest::StatusCode;
use serde_json::json;
use wa_gateway::limits::{LimitError, Resource};

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_reservations_with_ten_left_grant_exactly_ten() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let bystander = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"messages_per_month": 10})).await;

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let limits = app.state.limits.clone();
            let id = tenant.id;
            tokio::spawn(async move { limits.reserve_messages(id, "basic", 1).await })
        })
        .collect();
    let mut granted = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("the task did not panic") {
            Ok(()) => granted += 1,
            Err(LimitError::Exceeded { limit: Resource::MessagesPerMonth }) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((granted, refused), (10, 90));

    let (status, body) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["usage"]["messages_per_month"], 10, "{body}");
    assert_eq!(body["limits"]["messages_per_month"], 10);
    // Nobody else's counter moved.
    let (_, theirs) = app.get("/api/user/limits", &bystander.api_key).await;
    assert_eq!(theirs["usage"]["messages_per_month"], 0);
}

#[tokio::test]
async fn released_messages_can_be_reserved_again() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"messages_per_month": 3})).await;
    let limits = &app.state.limits;
    limits.reserve_messages(tenant.id, "basic", 3).await.unwrap();
    assert!(matches!(limits.reserve_messages(tenant.id, "basic", 1).await, Err(LimitError::Exceeded { .. })));
    limits.release_messages(tenant.id, 2).await.unwrap();
    let (_, body) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(body["usage"]["messages_per_month"], 1);
    limits.reserve_messages(tenant.id, "basic", 2).await.unwrap();
    assert!(limits.reserve_messages(tenant.id, "basic", 1).await.is_err());
}

#[tokio::test]
async fn an_unlimited_tenant_can_always_reserve() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    let limits = &app.state.limits;
    limits.reserve_messages(tenant.id, "enterprise", 1_000_000).await.unwrap();
    limits.reserve_messages(tenant.id, "enterprise", 1).await.unwrap();
    let (_, body) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(body["usage"]["messages_per_month"], 1_000_001);
    assert_eq!(body["limits"]["messages_per_month"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_zero_override_refuses_every_reservation() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    app.set_limits(&tenant, json!({"messages_per_month": 0})).await;
    let err = app.state.limits.reserve_messages(tenant.id, "premium", 1).await.unwrap_err();
    assert!(matches!(err, LimitError::Exceeded { limit: Resource::MessagesPerMonth }), "{err:?}");
}
