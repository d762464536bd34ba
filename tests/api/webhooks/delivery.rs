//! Delivery: signatures, retries on the schedule with stable ids, Retry-After, restarts, 410,
//! disabling after long failure, rotation, encryption at rest, message and device events, the
//! in-flight cap, the device filter.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::receiver::{verifies, Answer, Receiver};
use super::{create, endpoint, event_types, fast, logs, setup, spawn, wait_logs, CUSTOMER, DEVICE};
use crate::helpers::{poll_until, TestApp, WAIT};

#[tokio::test]
async fn a_received_message_is_delivered_signed() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let (tenant, device, id, secret) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    let wa = app.inbound(device, CUSTOMER, "Halo, stok ada?", Some("Budi")).await;

    let got = receiver.wait_for(1, WAIT).await;
    let request = &got[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("webhook-id").starts_with("msg_"), "{request:?}");
    assert!(verifies(&secret, request), "the signature verifies with the endpoint's secret");
    assert!(!verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", request), "and not with another");
    let body = request.json();
    assert_eq!(body["type"], "message.received");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(), "{body}");
    let data = &body["data"];
    assert_eq!(data["text"], "Halo, stok ada?");
    assert_eq!(data["from"], CUSTOMER);
    assert_eq!(data["device"], DEVICE);
    assert_eq!(data["device_id"], device);
    assert_eq!(data["direction"], "in");
    assert_eq!(data["status"], "received");
    assert_eq!(data["push_name"], "Budi");
    assert_eq!(data["wa_id"], wa["id"]);
    assert_eq!(data["chat"], format!("{CUSTOMER}@s.whatsapp.net"));

    let rows = wait_logs(&app, &tenant, &[], 1).await;
    let row = &rows[0];
    assert_eq!(row["kind"], "webhook");
    assert_eq!(row["outcome"], "success");
    assert_eq!(row["http_status"], 200);
    assert_eq!(row["attempt"], 1);
    assert_eq!(row["event"], "message.received");
    assert_eq!(row["webhook"], id);
    assert_eq!(row["message_id"], data["id"]);
    assert_eq!(row["target"], receiver.url("/hook"));
    assert_eq!(row["webhook_id"], request.header("webhook-id"));
    assert!(row["latency_ms"].as_i64().is_some());
    assert!(row["request"].as_str().unwrap().contains("Halo, stok ada?"));
    app.wait_idle().await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_with_the_same_id() {
    let receiver = Receiver::start().await;
    receiver.script(vec![Answer::raw(500, "oops"), Answer::status(502)]);
    let app = spawn().await;
    let (tenant, device, _, secret) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "halo", None).await;

    let got = receiver.wait_for(3, WAIT).await;
    let id = got[0].header("webhook-id");
    assert!(got.iter().all(|r| r.header("webhook-id") == id), "one id for every attempt");
    assert!(got.iter().all(|r| verifies(&secret, r)), "each attempt is signed");
    assert!(got.iter().all(|r| r.body == got[0].body), "the same body every time");
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(750) && gap < Duration::from_secs(4),
            "a 1 s ± 20 % wait, got {gap:?}"
        );
    }
    let rows = wait_logs(&app, &tenant, &[], 3).await;
    let attempts: Vec<(i64, &str, i64)> = rows
        .iter()
        .rev()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["http_status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, vec![(1, "failure", 500), (2, "failure", 502), (3, "success", 200)]);
    assert_eq!(rows[2]["response"], "oops", "the answer is kept");
    assert_eq!(rows[2]["error"], "HTTP 500");
    assert!(rows.iter().all(|r| r["webhook_id"] == id));
}

#[tokio::test]
async fn a_delivery_stops_when_the_schedule_is_used_up() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::status(500));
    let app = spawn().await;
    let (tenant, device, _, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    receiver.wait_for(3, WAIT).await;
    app.wait_idle().await;
    assert_eq!(receiver.requests().len(), 3, "three attempts for a schedule of three");
    let body = logs(&app, &tenant, &[("outcome", "failure")]).await;
    assert_eq!(body["total"], 3);
}

#[tokio::test]
async fn retry_after_postpones_the_next_attempt() {
    let receiver = Receiver::start().await;
    receiver.script(vec![Answer::status(503).header("retry-after", "3")]);
    let app = spawn().await;
    let (_, device, _, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    let got = receiver.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(2900), "Retry-After: 3 beats the 1 s schedule, got {gap:?}");
}

#[tokio::test]
async fn deliveries_survive_a_gateway_restart() {
    let mut receiver = Receiver::start().await;
    receiver.stop().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.retry_schedule = vec![0, 2, 2, 2, 2, 2, 2, 2];
    })
    .await;
    let (tenant, device, _, secret) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "are you there?", None).await;
    let failed = wait_logs(&app, &tenant, &[("outcome", "failure")], 1).await;
    let id = failed[0]["webhook_id"].as_str().unwrap().to_string();
    assert!(failed[0]["http_status"].is_null(), "connection refused: {failed:?}");

    // Down goes the gateway with the delivery still pending; up comes the receiver; the new
    // gateway process finds the delivery in the database and sends it.
    let mut app = app;
    app.stop().await;
    receiver.restart().await;
    let app = app.restart().await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), id, "the same webhook-id after the restart");
    assert!(verifies(&secret, &got[0]));
    assert_eq!(got[0].json()["data"]["text"], "are you there?");
    let rows = wait_logs(&app, &tenant, &[("outcome", "success")], 1).await;
    assert!(rows[0]["attempt"].as_i64().unwrap() >= 2, "{rows:?}");
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::status(410));
    let app = spawn().await;
    let (tenant, device, id, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "one", None).await;
    receiver.wait_for(1, WAIT).await;
    let disabled = poll_until(WAIT, || async {
        let e = endpoint(&app, &tenant, id).await;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("410"), "{disabled}");
    assert!(disabled["disabled_at"].is_string());
    app.inbound(device, CUSTOMER, "two", None).await;
    app.wait_idle().await;
    assert_eq!(receiver.requests().len(), 1, "no retry and no new deliveries once gone");
    let (_, activity) = app.get("/api/user/activity-logs?action=webhook.disabled", &tenant.api_key).await;
    assert_eq!(activity["total"], 1, "{activity}");
    assert_eq!(activity["data"][0]["target"], format!("webhook:{id}"));
}

#[tokio::test]
async fn an_endpoint_failing_longer_than_disable_after_is_disabled_and_the_tenant_told() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::status(500));
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.retry_schedule = vec![0, 1, 1, 1, 1, 1];
        c.webhooks.disable_after = 1;
    })
    .await;
    let (tenant, device, id, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    let disabled = poll_until(WAIT, || async {
        let e = endpoint(&app, &tenant, id).await;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("disable_after"), "{disabled}");
    assert!(disabled["failing_since"].is_string(), "{disabled}");
    let attempts = receiver.requests().len();
    assert!((2..=4).contains(&attempts), "disabled after about a second of failures: {attempts}");
    app.wait_idle().await;
    assert_eq!(receiver.requests().len(), attempts, "the queued retries were cancelled");
    let (_, activity) = app.get("/api/user/activity-logs?action=webhook.disabled", &tenant.api_key).await;
    assert_eq!(activity["total"], 1, "{activity}");
    assert_eq!(activity["data"][0]["actor"], "system");
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let (tenant, device, id, old) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    let (status, rotated) =
        app.post(&format!("/api/user/webhooks/{id}/rotate-secret"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    app.inbound(device, CUSTOMER, "halo", None).await;
    let got = receiver.wait_for(1, WAIT).await;
    let signatures: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(signatures.iter().all(|s| s.starts_with("v1,")));
    assert!(verifies(&new, &got[0]), "the new secret verifies");
    assert!(verifies(&old, &got[0]), "the old one too, for 24 hours");
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let created = create(&app, &tenant, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let stored: Vec<String> = match app.config.database.url.strip_prefix("sqlite:") {
        Some(_) => {
            let pool = sqlx::SqlitePool::connect(&app.config.database.url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM webhook_endpoints").fetch_all(&pool).await.unwrap()
        }
        None => {
            let pool = sqlx::PgPool::connect(&app.config.database.url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM webhook_endpoints").fetch_all(&pool).await.unwrap()
        }
    };
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].contains(&secret[6..]) && !stored[0].contains("whsec_"),
        "stored sealed: {}",
        stored[0]
    );
}

#[tokio::test]
async fn sent_and_status_events_are_delivered() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let (tenant, _, _, secret) =
        setup(&app, &receiver.url("/hook"), &["message.sent", "message.status"]).await;
    let (status, sent) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({"device": DEVICE, "to": CUSTOMER, "text": "Pesanan dikirim"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let got = receiver.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["type"], "message.sent", "{body}");
    assert_eq!(body["data"]["id"], sent["id"]);
    assert_eq!(body["data"]["status"], "sent");
    assert_eq!(body["data"]["source"], "api");
    assert_eq!(body["data"]["text"], "Pesanan dikirim");
    let (status, answer) = app
        .admin_post("/api/admin/simulator/receipt", &json!({"message_id": sent["id"], "status": "read"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = receiver.wait_for(2, WAIT).await;
    let body = got[1].json();
    assert_eq!(body["type"], "message.status", "{body}");
    assert_eq!(body["data"]["status"], "read");
    assert_eq!(body["data"]["id"], sent["id"]);
    assert!(got.iter().all(|r| verifies(&secret, r)));
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"), "two events, two ids");
    let rows = wait_logs(&app, &tenant, &[("event", "message.status")], 1).await;
    assert_eq!(rows[0]["message_id"], sent["id"]);
}

#[tokio::test]
async fn device_events_are_delivered() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    create(&app, &tenant, json!({"url": receiver.url("/hook"), "events": ["device.status", "device.qr"]}))
        .await;
    let device = app.pair_device(&tenant, DEVICE).await;
    // The status is queued with the status change and the QR from the live update, so either
    // may be delivered first: wait for both.
    let got = poll_until(WAIT, || async {
        let got = receiver.requests();
        let connected = got.iter().any(|r| r.json()["data"]["status"] == "connected");
        let qr = got.iter().any(|r| r.json()["type"] == "device.qr");
        (connected && qr).then_some(got)
    })
    .await;
    let types = event_types(&got);
    assert!(types.contains(&"device.qr".to_string()), "{types:?}");
    let qr = got.iter().find(|r| r.json()["type"] == "device.qr").unwrap().json();
    assert_eq!(qr["data"]["device_id"], device);
    assert_eq!(qr["data"]["device"], DEVICE);
    assert!(!qr["data"]["qr"].as_str().unwrap().is_empty());
    let status = got.iter().find(|r| r.json()["data"]["status"] == "connected").unwrap().json();
    assert_eq!(status["type"], "device.status");
    assert_eq!(status["data"]["device_id"], device);
}

#[tokio::test]
async fn one_endpoint_never_has_more_than_max_in_flight_attempts() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::json(json!({})).after(Duration::from_millis(300)));
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.max_in_flight = 2;
    })
    .await;
    let (_, device, _, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    for i in 0..6 {
        app.inbound(device, CUSTOMER, &format!("message {i}"), None).await;
    }
    let got = receiver.wait_for(6, WAIT).await;
    let seen: Vec<(String, u128)> =
        got.iter().map(|r| (r.header("webhook-id").to_string(), (r.at - got[0].at).as_millis())).collect();
    assert_eq!(receiver.max_in_flight(), 2, "at most two at once, and they do overlap: {seen:?}");
}

#[tokio::test]
async fn the_device_filter_limits_events_to_that_device() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let first = app.pair_device(&tenant, DEVICE).await;
    let second = app.pair_device(&tenant, "6281381830652").await;
    create(
        &app,
        &tenant,
        json!({"url": receiver.url("/hook"), "events": ["message.received"], "device": second}),
    )
    .await;
    app.inbound(first, CUSTOMER, "to the first", None).await;
    app.inbound(second, CUSTOMER, "to the second", None).await;
    receiver.wait_for(1, WAIT).await;
    app.wait_idle().await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "{:?}", event_types(&got));
    assert_eq!(got[0].json()["data"]["text"], "to the second");
}

#[tokio::test]
async fn a_scheduled_message_run_emits_scheduled_sent() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let (tenant, device, _, _) = setup(&app, &receiver.url("/hook"), &["scheduled.sent"]).await;
    let send_at = chrono::Utc::now() + chrono::Duration::milliseconds(500);
    let body = json!({
        "device": DEVICE,
        "to": CUSTOMER,
        "text": "Tagihan bulan ini",
        "send_at": send_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let (status, schedule) = app.post("/api/user/scheduled-messages", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let got = receiver.wait_for(1, WAIT).await;
    let event = got[0].json();
    assert_eq!(event["type"], "scheduled.sent", "{event}");
    let data = &event["data"];
    assert_eq!(data["schedule_id"], schedule["id"]);
    assert_eq!(data["device_id"], device);
    assert_eq!(data["device"], DEVICE);
    assert_eq!(data["to"], CUSTOMER);
    assert_eq!(data["text"], "Tagihan bulan ini");
    assert!(data["next_run_at"].is_null(), "{data}");
    // The event names the message the run queued, as the schedule and the history do.
    let message_id = data["message_id"].as_i64().expect("a message id");
    let (status, row) =
        app.get(&format!("/api/user/scheduled-messages/{}", schedule["id"]), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    let (status, message) = app.get(&format!("/api/user/chat-history/{message_id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!(message["text"], "Tagihan bulan ini");
    assert_eq!(message["source"], "scheduled");
}
