//! Messages contacts send to a `whatsapp-web` device: encrypted by the fake's contact to the
//! companion's uploaded keys, decrypted by the unmodified client, stored by the gateway and run
//! through its pipeline.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::fake_wa::{ContactMessage, Content, EncKind, FakeWhatsApp};
use super::{paired_device, report, spawn_with, STEP};
use crate::helpers::{poll_until, TestApp, TestTenant};
use crate::webhooks::receiver::Receiver;

const CONTACT: &str = "6281299990201";

/// The device's history for `query` (e.g. `direction=in`), oldest first.
pub(super) async fn history(app: &TestApp, tenant: &TestTenant, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/user/chat-history?{query}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut rows = body["data"].as_array().expect("a page of history").clone();
    rows.reverse();
    rows
}

/// Waits until the history for `query` has `n` rows; returns them oldest first.
pub(super) async fn wait_history(app: &TestApp, tenant: &TestTenant, query: &str, n: usize) -> Vec<Value> {
    poll_until(STEP, || async {
        let rows = history(app, tenant, query).await;
        (rows.len() >= n).then_some(rows)
    })
    .await
}

/// A contact sends three messages: two pkmsg, then, once the gateway's keyword auto-reply (a
/// msg on the session the contact opened) reached it, a msg. All three are in the history
/// once each, in order, with the sender's number and push name; each is a `message.received`
/// webhook; the auto-reply is what the contact decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_messages_are_stored_once_each_and_answered_by_keyword() {
    let fake = FakeWhatsApp::new();
    let receiver = Receiver::start().await;
    let app = spawn_with(&fake, |c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830671";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({ "url": receiver.url("/hook"), "events": ["message.received"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "harga", "reply": "Harga mulai 10rb, {name}"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    fake.set_push_name(CONTACT, "Budi Santoso");

    let t = Instant::now();
    let first = fake.contact_sends(phone, CONTACT, ContactMessage::text("halo kak")).await.unwrap();
    assert_eq!(first.enc, EncKind::Pkmsg, "a new session starts with a pkmsg");
    fake.wait_client_answered(phone, &first.id, STEP).await.expect("the device took the first message");
    report("contact → device: first message stored and receipted", t);

    let t = Instant::now();
    let second =
        fake.contact_sends(phone, CONTACT, ContactMessage::text("berapa harga paket A?")).await.unwrap();
    assert_eq!(second.enc, EncKind::Pkmsg, "still unanswered: the contact repeats its prekey message");
    let reply = fake.wait_messages_of(CONTACT, 1, STEP).await.expect("the auto-reply reached the contact");
    report("keyword → auto-reply decrypted by the contact", t);
    assert_eq!(reply[0].content, Content::Text("Harga mulai 10rb, Budi Santoso".to_string()));
    assert_eq!(reply[0].enc, EncKind::Msg, "the device answers on the session the contact opened");

    let third = fake.contact_sends(phone, CONTACT, ContactMessage::text("oke, terima kasih")).await.unwrap();
    assert_eq!(third.enc, EncKind::Msg, "answered: the contact's session is established");
    fake.wait_client_answered(phone, &third.id, STEP).await.expect("the device took the third message");

    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 3).await;
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap_or_default(),
                r["from"].as_str().unwrap_or_default(),
                r["push_name"].as_str().unwrap_or_default(),
                r["chat"].as_str().unwrap_or_default(),
                r["wa_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let chat = format!("{CONTACT}@s.whatsapp.net");
    assert_eq!(
        seen,
        [
            ("halo kak", CONTACT, "Budi Santoso", chat.as_str(), first.id.as_str()),
            ("berapa harga paket A?", CONTACT, "Budi Santoso", chat.as_str(), second.id.as_str()),
            ("oke, terima kasih", CONTACT, "Budi Santoso", chat.as_str(), third.id.as_str()),
        ]
    );
    let hooks = receiver.wait_for(3, STEP).await;
    let mut texts: Vec<String> =
        hooks.iter().map(|r| r.json()["data"]["text"].as_str().unwrap_or_default().to_string()).collect();
    texts.sort();
    assert_eq!(texts, ["berapa harga paket A?", "halo kak", "oke, terima kasih"]);
    assert!(hooks.iter().all(|r| r.json()["type"] == "message.received"));
    // One reply, to the keyword only; nothing left for the device to answer.
    assert_eq!(fake.messages_of(CONTACT).len(), 1);
    fake.wait_until("every delivery answered", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
    assert_eq!(history(&app, &tenant, "direction=in").await.len(), 3, "each message stored once");
}

/// A contact writing from its LID: with `sender_pn` the history has its number (chat and
/// sender); without it, and with no mapping known to the client, the LID is all there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lid_sender_is_stored_with_its_number_when_the_stanza_carries_it() {
    let fake = FakeWhatsApp::new();
    let app = spawn_with(&fake, |_| {}).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830672";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let contact = "6281299990202";
    let lid = "200000000000202";
    fake.set_contact_lid(contact, lid);
    fake.set_push_name(contact, "Sari");

    let sent = fake
        .contact_sends(phone, contact, ContactMessage::text("dari lid").sent_from_lid(true))
        .await
        .unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");
    let stranger = "6281299990203";
    fake.set_contact_lid(stranger, "200000000000203");
    let unknown = fake
        .contact_sends(phone, stranger, ContactMessage::text("siapa saya?").sent_from_lid(false))
        .await
        .unwrap();
    fake.wait_client_answered(phone, &unknown.id, STEP).await.expect("stored");

    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 2).await;
    assert_eq!(rows[0]["from"], contact, "{}", rows[0]);
    assert_eq!(rows[0]["chat"], format!("{contact}@s.whatsapp.net"), "{}", rows[0]);
    assert_eq!(rows[0]["push_name"], "Sari");
    assert_eq!(rows[1]["from"], "200000000000203@lid", "{}", rows[1]);
    assert_eq!(rows[1]["chat"], "200000000000203@lid", "{}", rows[1]);
    assert_eq!(rows[0]["sender_lid"], format!("{lid}@lid"), "{}", rows[0]);
    assert_eq!(rows[1]["sender_lid"], "200000000000203@lid", "{}", rows[1]);
    // The stanza that carried both taught the device the mapping; the other LID is unknown.
    let (status, mapping) = app.get(&format!("/api/user/devices/{device}/lids/{lid}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    assert_eq!(mapping["phone"], contact, "{mapping}");
    let (status, _) =
        app.get(&format!("/api/user/devices/{device}/lids/200000000000203"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A contact writes from its LID with no number anywhere: the history has the LID. Then the
/// device writes to the contact's number, which makes the client look the number up and learn
/// its LID: the stored message moves to the number and the lookup answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lid_senders_message_gets_the_number_the_client_learns_later() {
    let fake = FakeWhatsApp::new();
    let app = spawn_with(&fake, |_| {}).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830674";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let contact = "6281299990205";
    let lid = "200000000000205";
    fake.set_contact_lid(contact, lid);

    let sent = fake
        .contact_sends(phone, contact, ContactMessage::text("siapa ini?").sent_from_lid(false))
        .await
        .unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    assert_eq!(rows[0]["from"], format!("{lid}@lid"), "{}", rows[0]);
    let id = rows[0]["id"].as_i64().unwrap();

    let (status, body) = super::send_text(&app, &tenant, device, contact, "halo, ini toko kami").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.wait_messages_of(contact, 1, STEP).await.expect("the contact got the message");
    let message = poll_until(STEP, || async {
        let (_, m) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
        (m["from"] == contact).then_some(m)
    })
    .await;
    assert_eq!(message["chat"], format!("{contact}@s.whatsapp.net"), "{message}");
    assert_eq!(message["sender_lid"], format!("{lid}@lid"), "{message}");
    let (status, mapping) = app.get(&format!("/api/user/devices/{device}/lids/{lid}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    assert_eq!(mapping["phone"], contact, "{mapping}");
}

/// A contact whose LID the client learnt when the device first wrote to it (the client asks
/// WhatsApp for the LID of a number before a first send) writes from that LID without
/// `sender_pn`: the history has its number, and the LID is kept alongside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lid_sender_without_its_number_is_stored_under_the_number_the_client_knows() {
    let fake = FakeWhatsApp::new();
    let app = spawn_with(&fake, |_| {}).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830673";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let contact = "6281299990204";
    let lid = "200000000000204";
    fake.set_contact_lid(contact, lid);

    let (status, body) =
        super::send_text(&app, &tenant, device, contact, "halo, ada yang bisa dibantu?").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.wait_messages_of(contact, 1, STEP).await.expect("the contact got the first message");
    let sent = fake
        .contact_sends(phone, contact, ContactMessage::text("ya, dari lid").sent_from_lid(false))
        .await
        .unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");

    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    assert_eq!(rows[0]["from"], contact, "{}", rows[0]);
    assert_eq!(rows[0]["chat"], format!("{contact}@s.whatsapp.net"), "{}", rows[0]);
    let id = rows[0]["id"].as_i64().unwrap();
    let kept = super::query_text(&app, &format!("SELECT sender_lid FROM messages WHERE id = {id}")).await;
    assert_eq!(kept.as_deref(), Some(format!("{lid}@lid").as_str()));
}
