//! Sending through the `whatsapp-web` driver, proven at the other end: the fake's contact
//! decrypts what the unmodified client encrypted, and its receipts move the gateway's history.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};
use whatsapp_rust::wacore_binary::Jid;

use super::fake_wa::{Content, EncKind, FakeWhatsApp, ReceiptKind};
use super::{paired_device, report, send_text, spawn_with, STEP};
use crate::helpers::{poll_until, TestApp, TestTenant};
use crate::webhooks::receiver::Receiver;

const CONTACT: &str = "6281299990101";

/// The statuses of a message's history, oldest first.
async fn status_history(app: &TestApp, tenant: &TestTenant, id: i64) -> Vec<String> {
    let (status, body) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["status_history"]
        .as_array()
        .expect("a status history")
        .iter()
        .map(|h| h["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Registers a webhook endpoint for `events` at `receiver`.
async fn webhook(app: &TestApp, tenant: &TestTenant, receiver: &Receiver, events: &[&str]) {
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({ "url": receiver.url("/hook"), "events": events }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// `POST /api/send-message` → the contact decrypts exactly that text (and the account's phone
/// its own copy); the history says `sent` once the server acked, then `delivered` and `read`
/// from the contact's receipts; each step is a `message.*` webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_text_is_decrypted_by_the_contact_and_its_receipts_move_the_history() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let receiver = Receiver::start().await;
    let app = spawn_with(&fake, |c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830661";
    let t = Instant::now();
    let device = paired_device(&app, &tenant, &fake, phone).await;
    report("pair (outbound test)", t);
    webhook(&app, &tenant, &receiver, &["message.sent", "message.status"]).await;

    let t = Instant::now();
    let text = "Halo Budi, pesanan #1042 sudah dikirim 🚚";
    let (status, body) = send_text(&app, &tenant, device, CONTACT, text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    let id = body["id"].as_i64().expect("a message id");
    let wa_id = body["wa_id"].as_str().expect("a WhatsApp id").to_string();
    let got = fake.wait_messages_of(CONTACT, 1, STEP).await.expect("the contact got the message");
    report("send-message → decrypted by the contact", t);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].content, Content::Text(text.to_string()));
    assert_eq!(got[0].id, wa_id);
    assert_eq!(got[0].from, Jid::pn_device(phone.to_string(), 1), "sent by the paired companion");
    assert_eq!(got[0].enc, EncKind::Pkmsg, "the first message opens the session");
    // Every companion also sends the account's phone a copy, wrapped for its own devices.
    let copies = fake.phone_copies(phone);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].id, wa_id);
    assert_eq!(copies[0].content, Content::Text(text.to_string()));
    let dsm = copies[0].message.device_sent_message.as_option().expect("a DeviceSentMessage");
    assert_eq!(dsm.destination_jid.as_deref(), Some(format!("{CONTACT}@s.whatsapp.net").as_str()));

    let t = Instant::now();
    fake.contact_receipt(phone, CONTACT, std::slice::from_ref(&wa_id), ReceiptKind::Delivered).unwrap();
    app.wait_for_message_status(&tenant, id, "delivered").await;
    fake.contact_receipt(phone, CONTACT, std::slice::from_ref(&wa_id), ReceiptKind::Read).unwrap();
    app.wait_for_message_status(&tenant, id, "read").await;
    report("receipts → delivered → read", t);
    assert_eq!(status_history(&app, &tenant, id).await, ["queued", "sent", "delivered", "read"]);

    // Deliveries run in parallel: put them in the order of the events they report.
    let mut hooks: Vec<Value> = receiver.wait_for(3, STEP).await.iter().map(|r| r.json()).collect();
    hooks.sort_by_key(|h| h["timestamp"].as_str().unwrap_or_default().to_string());
    let seen: Vec<(String, String, i64)> = hooks
        .iter()
        .map(|body| {
            (
                body["type"].as_str().unwrap_or_default().to_string(),
                body["data"]["status"].as_str().unwrap_or_default().to_string(),
                body["data"]["id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("message.sent".to_string(), "sent".to_string(), id),
            ("message.status".to_string(), "delivered".to_string(), id),
            ("message.status".to_string(), "read".to_string(), id),
        ]
    );
    // The client answered every receipt: nothing is left to redeliver.
    fake.wait_until("receipts acked", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
}

/// One read receipt listing three messages (`<list>`) marks all three read; the contact got
/// each exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_listing_several_messages_marks_each_of_them_read() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let app = spawn_with(&fake, |_| {}).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830662";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    let mut sent = Vec::new();
    for text in ["satu", "dua", "tiga"] {
        let (status, body) = send_text(&app, &tenant, device, CONTACT, text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "sent", "{body}");
        sent.push((body["id"].as_i64().unwrap(), body["wa_id"].as_str().unwrap().to_string()));
    }
    let got = fake.wait_messages_of(CONTACT, 3, STEP).await.expect("three messages");
    let texts: Vec<_> = got.iter().map(|r| r.content.text().unwrap_or_default().to_string()).collect();
    assert_eq!(texts, ["satu", "dua", "tiga"]);
    assert_eq!(
        got.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        sent.iter().map(|s| s.1.clone()).collect::<Vec<_>>()
    );
    assert_eq!(fake.received_by(CONTACT).len(), 3, "no copy twice");

    let ids: Vec<String> = sent.iter().map(|s| s.1.clone()).collect();
    fake.contact_receipt(phone, CONTACT, &ids, ReceiptKind::Read).unwrap();
    for (id, _) in &sent {
        app.wait_for_message_status(&tenant, *id, "read").await;
    }
    report("three sends → one list receipt → all read", t);
    // A receipt for an id the device never sent changes nothing.
    fake.contact_receipt(phone, CONTACT, &["3EB0FFFFFFFFFFFFFFFF".to_string()], ReceiptKind::Delivered)
        .unwrap();
    fake.wait_until("the stray receipt acked", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
    for (id, _) in &sent {
        let statuses = poll_until(STEP, || async { Some(status_history(&app, &tenant, *id).await) }).await;
        assert_eq!(statuses, ["queued", "sent", "read"], "message {id}");
    }
}
