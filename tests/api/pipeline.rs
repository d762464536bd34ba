//! The inbound pipeline's loop guard over all stages together: keyword rules, plugins and
//! reply webhooks share one per-chat allowance, and none of them answers the gateway's own
//! text coming back.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, TestTenant};
use crate::plugins::upload;
use crate::rules::settle;
use crate::webhooks::receiver::{Answer, Receiver};

const DEVICE: &str = "6281381830660";
const CUSTOMER: &str = "6281234567860";

async fn with_reply_webhook(app: &TestApp, tenant: &TestTenant, receiver: &Receiver) {
    let (status, body) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": receiver.url("/bot"), "mode": "reply"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Every automatic reply the gateway sent to the customer.
async fn replies_to_customer(app: &TestApp, tenant: &TestTenant) -> usize {
    let request = app
        .request(Method::GET, "/api/user/chat-history")
        .header("x-api-key", &tenant.api_key)
        .query(&[("direction", "out"), ("chat", CUSTOMER), ("limit", "500")]);
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_chat_gets_at_most_n_automatic_replies_a_minute_from_all_stages_together() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::json(json!({"reply": "Dari bot kami"})));
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.rules.max_replies_per_chat_per_minute = 4;
    })
    .await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let (status, body) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "pesan", "reply": "Dari aturan", "stop": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    upload(&app, &tenant, "echo", &[]).await;
    with_reply_webhook(&app, &tenant, &receiver).await;

    // Every message asks for three replies, one from each stage.
    for i in 0..4 {
        app.inbound(device, CUSTOMER, &format!("pesan {i}"), None).await;
        settle(&app, &tenant).await;
    }
    assert_eq!(receiver.requests().len(), 4, "the reply webhook was asked every time");
    assert_eq!(replies_to_customer(&app, &tenant).await, 4, "the chat's allowance, not 3 x 4");
    // Another chat has its own allowance.
    app.inbound(device, "6281234567861", "pesan lain", None).await;
    settle(&app, &tenant).await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.iter().filter(|m| m["to"] == "6281234567861@s.whatsapp.net").count(), 3);
}

#[tokio::test]
async fn a_reply_webhook_does_not_answer_the_gateways_own_text_coming_back() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::json(json!({"reply": "Dari bot kami"})));
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    with_reply_webhook(&app, &tenant, &receiver).await;
    let (status, body) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({"device": device, "to": CUSTOMER, "text": "Promo hari ini"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The customer's phone echoes our message back.
    app.inbound(device, CUSTOMER, "Promo hari ini", None).await;
    settle(&app, &tenant).await;
    assert_eq!(receiver.requests().len(), 1, "the endpoint was still told");
    assert_eq!(
        replies_to_customer(&app, &tenant).await,
        1,
        "only the message we sent, no answer to its echo"
    );
    // A message of the customer's own is answered.
    app.inbound(device, CUSTOMER, "Berapa harganya?", None).await;
    settle(&app, &tenant).await;
    assert_eq!(replies_to_customer(&app, &tenant).await, 2);
}
