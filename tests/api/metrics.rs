//! `GET /metrics`: off by default, behind its token when one is set, and counting what the
//! gateway did (HTTP by route template, messages, the pipeline's stages, plugin runs, webhook
//! attempts, scheduled runs) next to what it reads at each scrape (queue, devices, pools).

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::Receiver;

const DEVICE: &str = "6281381830657";
const CUSTOMER: &str = "6281234567892";
const TOKEN: &str = "scrape-token-for-tests";

/// The scrape as text, with the metrics token.
async fn scrape(app: &TestApp) -> String {
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample `name` whose labels include every one of `labels` (0 when no such
/// sample was written yet).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap_or_else(|_| panic!("a number: {l}")))
        .sum()
}

async fn with_traffic_setup(per_tenant: bool) -> (TestApp, TestTenant, i64, Receiver) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| {
        c.metrics.enabled = true;
        c.metrics.token = TOKEN.into();
        c.metrics.per_tenant = per_tenant;
        c.webhooks.allow_private_targets = true;
        c.rules.max_replies_per_chat_per_minute = 100;
    })
    .await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["message.received"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, tenant, device, receiver)
}

#[tokio::test]
async fn metrics_are_off_unless_enabled_and_need_their_token() {
    let app = TestApp::spawn().await;
    let (status, body) = app.send(app.request(Method::GET, "/metrics")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let app = TestApp::spawn_with(|c| {
        c.metrics.enabled = true;
        c.metrics.token = TOKEN.into();
    })
    .await;
    let (status, body) = app.send(app.request(Method::GET, "/metrics")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = app.send(app.request(Method::GET, "/metrics").bearer_auth("wrong")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let admin = app.request(Method::GET, "/metrics").bearer_auth(&app.admin_token);
    assert_eq!(app.send(admin).await.0, StatusCode::OK, "the admin token works too");
    assert!(scrape(&app).await.ends_with("# EOF\n"));
}

#[tokio::test]
async fn a_scrape_after_traffic_shows_every_counter_moved() {
    let (app, tenant, device, receiver) = with_traffic_setup(false).await;
    let (status, body) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "halo", "reply": "Halo juga", "stop": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let echo = crate::plugins::upload(&app, &tenant, "echo", &[]).await;

    app.inbound(device, CUSTOMER, "halo kak", None).await;
    let body = json!({"device": device, "to": CUSTOMER, "text": "Pesanan dikirim"});
    let (status, sent) = app.post("/api/send-message", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let send_at = (Utc::now() + chrono::Duration::milliseconds(500)).to_rfc3339();
    let body = json!({"device": device, "to": CUSTOMER, "text": "Pengingat", "send_at": send_at});
    let (status, schedule) = app.post("/api/user/scheduled-messages", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    app.get(&format!("/api/user/plugins/{}", echo["id"]), &tenant.api_key).await;
    receiver.wait_for(1, WAIT).await;

    // Counters move after the answer is sent: poll until every one is where it should be.
    let text = poll_until(WAIT, || async {
        let text = scrape(&app).await;
        let done = value(&text, "wa_gateway_scheduler_runs_total", &[("outcome", "sent")]) == 1.0
            && value(&text, "wa_gateway_messages_total", &[("direction", "out"), ("status", "sent")]) == 4.0
            && value(&text, "wa_gateway_webhook_attempts_total", &[("outcome", "success")]) >= 1.0
            && value(&text, "wa_gateway_pipeline_duration_seconds_count", &[]) == 1.0
            // A message is counted sent a moment before its row leaves the queue.
            && value(&text, "wa_gateway_outbound_queue_depth", &[]) == 0.0;
        done.then_some(text)
    })
    .await;
    let in_text = [("direction", "in"), ("status", "received"), ("kind", "text")];
    assert_eq!(value(&text, "wa_gateway_messages_total", &in_text), 1.0, "{text}");
    // The API send, the scheduled one and the two replies (rule and plugin).
    assert_eq!(value(&text, "wa_gateway_messages_total", &[("direction", "out"), ("status", "queued")]), 4.0);
    let stage = |stage: &str, outcome: &str| {
        value(&text, "wa_gateway_pipeline_stage_outcomes_total", &[("stage", stage), ("outcome", outcome)])
    };
    assert_eq!(stage("rules", "replied"), 1.0, "{text}");
    assert_eq!(stage("plugins", "replied"), 1.0, "{text}");
    assert_eq!(stage("webhooks", "nothing"), 1.0, "{text}");
    assert_eq!(value(&text, "wa_gateway_plugin_runs_total", &[("outcome", "success")]), 1.0);
    assert_eq!(value(&text, "wa_gateway_plugin_run_duration_seconds_count", &[]), 1.0);
    assert!(value(&text, "wa_gateway_webhook_attempt_duration_seconds_count", &[("mode", "notify")]) >= 1.0);

    let send = [("route", "/api/send-message"), ("method", "POST"), ("status", "200")];
    assert_eq!(value(&text, "wa_gateway_http_requests_total", &send), 1.0, "{text}");
    let by_id = [("route", "/api/user/plugins/{id}"), ("method", "GET"), ("status", "200")];
    assert_eq!(
        value(&text, "wa_gateway_http_requests_total", &by_id),
        1.0,
        "route templates, not ids: {text}"
    );
    assert!(
        value(&text, "wa_gateway_http_request_duration_seconds_count", &[("route", "/api/send-message")])
            >= 1.0
    );

    assert_eq!(value(&text, "wa_gateway_devices", &[("status", "connected")]), 1.0, "{text}");
    assert_eq!(value(&text, "wa_gateway_outbound_queue_depth", &[]), 0.0);
    assert!(value(&text, "wa_gateway_db_connections", &[("state", "idle")]) >= 1.0, "{text}");
    assert!(!text.contains("tenant=\""), "no tenant label unless per_tenant: {text}");
}

#[tokio::test]
async fn per_tenant_metrics_name_the_tenant() {
    let (app, tenant, device, receiver) = with_traffic_setup(true).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    receiver.wait_for(1, WAIT).await;
    let id = tenant.id.to_string();
    let text = poll_until(WAIT, || async {
        let text = scrape(&app).await;
        (value(&text, "wa_gateway_webhook_attempts_total", &[("tenant", &id)]) >= 1.0).then_some(text)
    })
    .await;
    let received = [("direction", "in"), ("status", "received"), ("tenant", id.as_str())];
    assert_eq!(value(&text, "wa_gateway_messages_total", &received), 1.0, "{text}");
}

#[tokio::test]
async fn a_waiting_message_shows_in_the_queue_depth_and_age() {
    // A long gap after each send keeps the second message waiting in the queue.
    let app = TestApp::spawn_with(|c| {
        c.metrics.enabled = true;
        c.metrics.token = TOKEN.into();
        c.whatsapp.send_min_gap_ms = 600_000;
    })
    .await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    for text in ["pertama", "kedua"] {
        let body = json!({"device": device, "to": CUSTOMER, "text": text, "async": true});
        let (status, body) = app.post("/api/send-message", &tenant.api_key, &body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let text = poll_until(WAIT, || async {
        let text = scrape(&app).await;
        (value(&text, "wa_gateway_outbound_queue_oldest_age_seconds", &[]) >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(value(&text, "wa_gateway_outbound_queue_depth", &[]), 1.0, "{text}");
}
