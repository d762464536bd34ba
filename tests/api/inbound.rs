//! Storing inbound messages that strangers write: text PostgreSQL cannot store, and a message
//! the database refuses however often WhatsApp delivers it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{poll_until, TestApp, WAIT};
use crate::webhooks::receiver::Receiver;

const SHOP: &str = "6281100000067";
const STRANGER: &str = "6281299999997";

#[tokio::test]
async fn an_inbound_text_with_a_nul_character_is_stored_with_it_replaced() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": STRANGER, "text": "in\u{0}bound", "push_name": "N\u{0}N"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the message is stored and acknowledged: {body}");
    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    assert_eq!(history["total"], 1, "{history}");
    assert_eq!(history["data"][0]["text"], "in\u{FFFD}bound");
    assert_eq!(history["data"][0]["push_name"], "N\u{FFFD}N");
}

/// The database refuses one message (a trigger stands in for whatever makes a row
/// unstorable). WhatsApp delivers it again and again; after three attempts it becomes a dead
/// letter: acknowledged, a `failed` row in the history, a `message.status` event, and the
/// operator's list. The messages after it are stored as usual.
#[tokio::test]
async fn a_message_the_database_refuses_becomes_a_dead_letter_after_three_attempts() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["message.status", "message.received"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    if app.on_postgres() {
        app.execute_sql(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.text = 'poison' THEN RAISE EXCEPTION 'this row cannot be stored'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .await;
        app.execute_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await;
    } else {
        app.execute_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'this row cannot be stored'); END",
        )
        .await;
    }
    let poison = json!({"device": device, "from": STRANGER, "text": "poison", "id": "POISON-1"});
    for attempt in 1..=2 {
        let (status, body) = app.admin_post("/api/admin/simulator/inbound", &poison).await;
        assert_eq!(status, StatusCode::CONFLICT, "attempt {attempt} is not acknowledged: {body}");
    }
    let (status, body) = app.admin_post("/api/admin/simulator/inbound", &poison).await;
    assert_eq!(status, StatusCode::OK, "the third attempt is acknowledged as a dead letter: {body}");
    // Delivered once more (WhatsApp did not see the acknowledgement): nothing new.
    let (status, _) = app.admin_post("/api/admin/simulator/inbound", &poison).await;
    assert_eq!(status, StatusCode::OK);
    app.inbound(device, STRANGER, "after the poison", None).await;

    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    assert_eq!(history["total"], 2, "{history}");
    let failed = history["data"].as_array().unwrap().iter().find(|m| m["status"] == "failed").cloned();
    let failed = failed.expect("the history marks the message");
    assert!(failed["text"].is_null(), "{failed}");
    assert_eq!(failed["wa_id"], "POISON-1");
    assert!(failed["error"].as_str().unwrap().contains("could not store"), "{failed}");
    assert!(history["data"].as_array().unwrap().iter().any(|m| m["text"] == "after the poison"));

    let (status, letters) = app.admin_get("/api/admin/dead-letters").await;
    assert_eq!(status, StatusCode::OK, "{letters}");
    assert_eq!(letters["total"], 1, "{letters}");
    let letter = &letters["data"][0];
    assert_eq!((letter["tenant_id"].as_i64(), letter["device_id"].as_i64()), (Some(tenant.id), Some(device)));
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["message_id"], failed["id"]);
    assert_eq!(letter["payload"]["text"], "poison", "the operator keeps the content: {letter}");
    assert!(letter["reason"].as_str().unwrap().contains("cannot be stored"), "{letter}");

    let event = poll_until(WAIT, || async {
        receiver.requests().into_iter().map(|r| r.json()).find(|b| b["type"] == "message.status")
    })
    .await;
    assert_eq!(event["data"]["id"], failed["id"], "{event}");
    assert_eq!(event["data"]["direction"], "in");
    assert_eq!(event["data"]["status"], "failed");
}
