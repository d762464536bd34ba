//! Reply mode: the answer goes to the chat, counts against the limit, a slow endpoint holds
//! up nobody else, malformed answers are logged.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::receiver::{verifies, Answer, Receiver};
use super::{create, spawn, wait_logs, CUSTOMER, DEVICE};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

async fn reply_setup(app: &TestApp, receiver: &Receiver) -> (TestTenant, i64, String) {
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let endpoint = create(app, &tenant, json!({"url": receiver.url("/bot"), "mode": "reply"})).await;
    (tenant, device, endpoint["secret"].as_str().unwrap().to_string())
}

async fn wait_outbox(app: &TestApp, device: i64, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let outbox = app.outbox(device).await;
        (outbox.len() >= n).then_some(outbox)
    })
    .await
}

#[tokio::test]
async fn reply_mode_sends_the_answer_to_the_chat() {
    let receiver = Receiver::start().await;
    receiver.script(vec![
        Answer::json(json!({"reply": "Halo Budi, stok ada."})),
        Answer::json(json!({"replies": [{"text": "Ini katalog kami:"}, {"url": receiver.url("/katalog.png"), "type": "image", "caption": "Katalog"}]})),
    ]);
    let app = spawn().await;
    let (tenant, device, secret) = reply_setup(&app, &receiver).await;

    app.inbound(device, CUSTOMER, "stok ada?", Some("Budi")).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["text"], "Halo Budi, stok ada.");
    assert_eq!(outbox[0]["to"], format!("{CUSTOMER}@s.whatsapp.net"));
    let asked = receiver.requests();
    assert_eq!(asked.len(), 1, "one attempt, no queued copy of message.received for a reply endpoint");
    assert!(verifies(&secret, &asked[0]));
    assert_eq!(asked[0].json()["type"], "message.received");

    app.inbound(device, CUSTOMER, "katalog?", None).await;
    let outbox = wait_outbox(&app, device, 3).await;
    assert_eq!(outbox[1]["text"], "Ini katalog kami:");
    assert_eq!(outbox[2]["media"]["kind"], "image", "{outbox:?}");
    assert_eq!(outbox[2]["media"]["caption"], "Katalog");

    let (_, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(history["total"], 3);
    assert!(history["data"].as_array().unwrap().iter().all(|m| m["source"] == "webhook"), "{history}");
    let rows = wait_logs(&app, &tenant, &[("outcome", "success")], 2).await;
    assert!(rows.iter().all(|r| r["event"] == "message.received" && r["attempt"] == 1));
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 3, "replies count against the limit: {limits}");
}

#[tokio::test]
async fn reply_answers_over_the_monthly_limit_are_not_sent() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::json(json!({"reply": "hi"})));
    let app = spawn().await;
    let (tenant, device, _) = reply_setup(&app, &receiver).await;
    app.set_limits(&tenant, json!({"messages_per_month": 0})).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    let failed = poll_until(WAIT, || async {
        let (_, h) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
        // The page and `total` are read apart: wait for the row in the page itself.
        (h["total"] == 1 && h["data"].as_array().is_some_and(|d| d.len() == 1)).then_some(h)
    })
    .await;
    assert_eq!(failed["data"][0]["status"], "failed");
    assert!(failed["data"][0]["error"].as_str().unwrap().contains("limit_exceeded"), "{failed}");
    assert!(app.outbox(device).await.is_empty());
}

#[tokio::test]
async fn a_slow_reply_endpoint_does_not_hold_up_other_tenants() {
    let slow = Receiver::start().await;
    slow.answer(Answer::json(json!({"reply": "too late"})).after(Duration::from_secs(4)));
    let quick = Receiver::start().await;
    quick.answer(Answer::json(json!({"reply": "right away"})));
    let app = spawn().await; // reply_timeout = 2 s
    let (slow_tenant, slow_device, _) = reply_setup(&app, &slow).await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, "6281381830652").await;
    create(&app, &tenant, json!({"url": quick.url("/bot"), "mode": "reply"})).await;

    app.inbound(slow_device, CUSTOMER, "hello?", None).await;
    slow.wait_for(1, WAIT).await;
    let started = Instant::now();
    app.inbound(device, CUSTOMER, "hello?", None).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["text"], "right away");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered while the slow one waits: {:?}",
        started.elapsed()
    );

    let rows = wait_logs(&app, &slow_tenant, &[("outcome", "timeout")], 1).await;
    assert!(rows[0]["latency_ms"].as_i64().unwrap() >= 1900, "{rows:?}");
    app.wait_idle().await;
    assert!(app.outbox(slow_device).await.is_empty(), "a timed-out answer is not sent");
}

#[tokio::test]
async fn malformed_reply_answers_are_logged_and_nothing_is_sent() {
    let receiver = Receiver::start().await;
    let bad = [
        Answer::raw(200, "not json at all"),
        Answer::json(json!({"reply": 5})),
        Answer::json(json!({"replies": [{"url": "x", "text": "y"}]})),
        Answer::raw(500, "{\"reply\": \"error page\"}"),
        Answer::raw(302, "").header("location", "http://169.254.169.254/"),
    ];
    receiver.script(bad.to_vec());
    let app = spawn().await;
    let (tenant, device, _) = reply_setup(&app, &receiver).await;
    for i in 0..bad.len() {
        app.inbound(device, CUSTOMER, &format!("question {i}"), None).await;
    }
    let rows = wait_logs(&app, &tenant, &[("outcome", "failure")], bad.len()).await;
    let errors: Vec<&str> = rows.iter().map(|r| r["error"].as_str().unwrap_or_default()).collect();
    assert!(errors.iter().any(|e| e.contains("not JSON")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("`reply` must be a string")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("not both")), "{errors:?}");
    assert!(errors.iter().any(|e| e == &"HTTP 500"), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("redirects are not followed")), "{errors:?}");
    assert!(app.outbox(device).await.is_empty(), "nothing was sent");
    let (status, _) = app.get("/healthz", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "the gateway is fine");
    assert_eq!(receiver.requests().len(), bad.len(), "one attempt each, the redirect not followed");
}

/// The reply endpoints the pipeline holds in memory follow every change at once: a disabled
/// endpoint is not asked from the next message on, a rotated secret signs the next request, a
/// deleted endpoint is never asked again.
#[tokio::test]
async fn a_reply_endpoint_disabled_rotated_or_deleted_counts_from_the_next_message() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::json(json!({"reply": "siap"})));
    let app = TestApp::spawn_with(|c| {
        super::fast(c);
        c.rules.max_replies_per_chat_per_minute = 100;
    })
    .await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let endpoint = create(&app, &tenant, json!({"url": receiver.url("/bot"), "mode": "reply"})).await;
    let path = format!("/api/user/webhooks/{}", endpoint["id"]);
    // Each message is settled before the next change, so the endpoints in memory are always
    // the ones read for the message before it.
    let ask = |text: &'static str| {
        let (app, tenant) = (&app, &tenant);
        async move {
            app.inbound(device, CUSTOMER, text, None).await;
            crate::rules::settle(app, tenant).await;
        }
    };
    ask("satu").await;
    assert_eq!(receiver.requests().len(), 1);

    let settings = json!({"url": receiver.url("/bot"), "mode": "reply", "enabled": false});
    let (status, body) = app.patch(&path, &tenant.api_key, &settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ask("dua").await;
    assert_eq!(receiver.requests().len(), 1, "a disabled endpoint is not asked");

    let settings = json!({"url": receiver.url("/bot"), "mode": "reply", "enabled": true});
    let (status, body) = app.patch(&path, &tenant.api_key, &settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ask("tiga").await;
    assert_eq!(receiver.requests().len(), 2, "enabled again, it is asked");

    let (status, rotated) = app.post(&format!("{path}/rotate-secret"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    ask("empat").await;
    let asked = receiver.requests();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[2].json()["data"]["text"], "empat");
    assert!(verifies(rotated["secret"].as_str().unwrap(), &asked[2]), "signed with the new secret");

    let (status, _) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    ask("lima").await;
    assert_eq!(receiver.requests().len(), 3, "a deleted endpoint is not asked");
    assert_eq!(wait_outbox(&app, device, 3).await.len(), 3, "one answer for each message asked");
}
