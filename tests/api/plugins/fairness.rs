//! Plugin runs under load: a failing plugin stops at its failure limit however many messages
//! arrive at once, a plugin disabled for failing waits before it can be enabled again, and a
//! tenant's runs beyond its turns are skipped as `busy` without counting as failures.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{plugin, runs, setup, upload, wait_outbox};
use crate::helpers::{assert_error, poll_until, TestApp, WAIT};

/// `n` different customers (so no per-chat reply limit applies), each sending one message,
/// `parallel` at a time.
async fn burst(app: &TestApp, device: i64, n: usize, parallel: usize) {
    let senders: Vec<String> = (0..n).map(|i| format!("62812{:07}", 3_000_000 + i)).collect();
    for chunk in senders.chunks(parallel) {
        join_all(chunk.iter().map(|from| app.inbound(device, from, "pesan", None))).await;
    }
}

fn outcomes(rows: &[Value], outcome: &str) -> usize {
    rows.iter().filter(|r| r["outcome"] == outcome).count()
}

#[tokio::test]
async fn a_burst_of_40_messages_runs_a_trapping_plugin_exactly_five_times() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let trap = upload(&app, &tenant, "trap", &[("order", "1")]).await;
    upload(&app, &tenant, "echo", &[("order", "2")]).await;
    burst(&app, device, 40, 8).await;
    // The echo after the trap answers every message: then every pipeline is past the trap.
    wait_outbox(&app, device, 40).await;
    let id = trap["id"].as_i64().unwrap();
    let rows = runs(&app, &tenant, id, 5).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(outcomes(&rows, "trap"), 5);
    let trap = plugin(&app, &tenant, id).await;
    assert_eq!(trap["enabled"], false, "{trap}");
    assert_eq!((trap["runs"].as_i64(), trap["failures"].as_i64()), (Some(5), Some(5)), "{trap}");
}

#[tokio::test]
async fn a_plugin_disabled_for_failing_can_be_enabled_again_only_after_the_cooldown() {
    let app = TestApp::spawn_with(|c| {
        c.plugins.disable_after_failures = 1;
        c.plugins.reenable_cooldown = 1;
    })
    .await;
    let (tenant, device) = setup(&app).await;
    let trap = upload(&app, &tenant, "trap", &[]).await;
    let id = trap["id"].as_i64().unwrap();
    app.inbound(device, "6281234567001", "pesan", None).await;
    // The run's log row is written just before its failure is counted: wait for the count.
    let disabled = poll_until(WAIT, || async {
        let p = plugin(&app, &tenant, id).await;
        (p["enabled"] == false).then_some(p)
    })
    .await;
    assert!(disabled["disabled_at"].is_string(), "{disabled}");

    let path = format!("/api/user/plugins/{id}");
    let (status, body) = app.patch(&path, &tenant.api_key, &json!({"enabled": true})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(body["error"]["message"].as_str().unwrap().contains("enabled again from"), "{body}");
    // Other changes are allowed meanwhile.
    let (status, body) = app.patch(&path, &tenant.api_key, &json!({"order": 7})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let enabled = poll_until(WAIT, || async {
        let (status, body) = app.patch(&path, &tenant.api_key, &json!({"enabled": true})).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["failures"], 0);
    assert!(enabled["disabled_at"].is_null(), "{enabled}");
}

#[tokio::test]
async fn runs_beyond_the_tenants_turns_are_skipped_as_busy_and_do_not_count_as_failures() {
    let app = TestApp::spawn_with(|c| {
        c.plugins.tenant_concurrency = 1;
        c.plugins.queue_timeout_ms = 20;
        c.plugins.disable_after_failures = 100;
    })
    .await;
    let (tenant, device) = setup(&app).await;
    let spin = upload(&app, &tenant, "spin-forever", &[]).await;
    let id = spin["id"].as_i64().unwrap();
    // Every run holds the tenant's one turn for its whole CPU deadline (50 ms).
    burst(&app, device, 6, 6).await;
    let rows = runs(&app, &tenant, id, 6).await;
    let (busy, timeouts) = (outcomes(&rows, "busy"), outcomes(&rows, "timeout"));
    assert_eq!(busy + timeouts, 6, "{rows:?}");
    assert!(busy >= 1 && timeouts >= 1, "busy {busy}, timeouts {timeouts}");
    let spin = plugin(&app, &tenant, id).await;
    assert_eq!(spin["failures"].as_i64(), Some(timeouts as i64), "busy runs are no failures: {spin}");
    assert_eq!(spin["enabled"], true);
}
