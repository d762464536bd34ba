//! What a lost ack, a dropped connection or a gateway restart does to a message in flight: a
//! send counts as `sent` only once the server acked it, and goes again under the same WhatsApp
//! id until it is, so the contact gets one message however many copies went out.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::fake_wa::{FakeEvent, FakeWhatsApp};
use super::{paired_device, report, send_text, spawn, STEP};
use crate::helpers::{TestApp, TestTenant};

const CONTACT: &str = "6281299990301";

/// `POST /api/send-message` with `async`: answers at once with the queued message.
async fn send_async(app: &TestApp, tenant: &TestTenant, device: i64, text: &str) -> Value {
    let (status, body) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({ "device": device, "to": CONTACT, "text": text, "async": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn message(app: &TestApp, tenant: &TestTenant, id: i64) -> Value {
    let (status, body) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The ids of the `<message>` stanzas `phone`'s clients sent to the contact, in order.
fn stanza_ids(fake: &FakeWhatsApp, phone: &str) -> Vec<String> {
    let to = format!("{CONTACT}@s.whatsapp.net");
    fake.sent(phone).into_iter().filter(|(t, _)| *t == to).map(|(_, id)| id).collect()
}

/// The server swallows a send (no ack, nothing delivered): the message stays `queued` with its
/// WhatsApp id recorded; when the connection comes back it goes again under that id, and the
/// contact gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swallowed_send_stays_queued_and_goes_again_under_the_same_id() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830681";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    fake.swallow_sends(phone, 1);
    let queued = send_async(&app, &tenant, device, "pesan yang hilang").await;
    let id = queued["id"].as_i64().unwrap();
    fake.wait_until("the swallowed send", STEP, |f| {
        f.journal().iter().any(|(_, e)| matches!(e, FakeEvent::Swallowed { phone: p, .. } if p == phone))
    })
    .await
    .unwrap();
    let row = message(&app, &tenant, id).await;
    assert_eq!(row["status"], "queued", "not sent without the server's ack: {row}");
    let wa_id = row["wa_id"].as_str().expect("the id is recorded before the send").to_string();
    assert_eq!(stanza_ids(&fake, phone), std::slice::from_ref(&wa_id));
    assert!(fake.messages_of(CONTACT).is_empty());

    // The connection drops and comes back: the same message goes again.
    fake.drop_connection(phone);
    app.wait_for_message_status(&tenant, id, "sent").await;
    report("swallowed send → reconnect → sent under the same id", t);
    assert_eq!(stanza_ids(&fake, phone), [wa_id.clone(), wa_id.clone()]);
    let got = fake.messages_of(CONTACT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].id.as_str(), got[0].content.text()), (wa_id.as_str(), Some("pesan yang hilang")));
    let row = message(&app, &tenant, id).await;
    assert_eq!(row["wa_id"], wa_id.as_str());
    let statuses: Vec<_> =
        row["status_history"].as_array().unwrap().iter().map(|h| h["status"].clone()).collect();
    assert_eq!(statuses, [json!("queued"), json!("sent")], "{row}");
}

/// The server delivers a send but its ack is lost with the connection: the gateway sends it
/// again under the same id; the contact holds two copies of one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ack_sends_the_same_message_again_and_the_contact_counts_it_once() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830682";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    fake.drop_before_ack(phone, 1);
    let (status, body) = send_text(&app, &tenant, device, CONTACT, "sekali saja").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    report("lost ack → reconnect → acked resend", t);
    let wa_id = body["wa_id"].as_str().unwrap().to_string();
    assert_eq!(stanza_ids(&fake, phone), [wa_id.clone(), wa_id.clone()]);
    let copies = fake.received_by(CONTACT);
    assert_eq!(copies.len(), 2, "both copies reached the contact: {copies:?}");
    assert!(copies.iter().all(|c| c.id == wa_id && c.content.text() == Some("sekali saja")));
    assert_eq!(fake.messages_of(CONTACT).len(), 1, "one message");
    let (_, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(history["data"].as_array().unwrap().len(), 1, "{history}");
}

/// The gateway stops while a send waits for its ack (the message went out; the process died
/// before recording it): the next process sends it again under the same id, never as a second
/// message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_a_send_waits_for_its_ack_resends_it_under_the_same_id() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830683";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    fake.withhold_acks(phone, 1);
    let queued = send_async(&app, &tenant, device, "jangan dobel").await;
    let id = queued["id"].as_i64().unwrap();
    let got = fake.wait_messages_of(CONTACT, 1, STEP).await.expect("the contact got it");
    let wa_id = got[0].id.clone();
    let row = message(&app, &tenant, id).await;
    assert_eq!(row["status"], "queued", "no ack yet: {row}");
    assert_eq!(row["wa_id"], wa_id.as_str(), "recorded before the send");

    app = app.restart().await;
    app.wait_for_message_status(&tenant, id, "sent").await;
    report("restart while waiting for the ack → resent, sent", t);
    assert_eq!(stanza_ids(&fake, phone), [wa_id.clone(), wa_id.clone()]);
    assert_eq!(fake.received_by(CONTACT).len(), 2);
    assert_eq!(fake.messages_of(CONTACT).len(), 1, "one message for the contact");
    let (_, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(history["data"].as_array().unwrap().len(), 1, "{history}");
}

/// Rows in the gateway's pending-inbound store (the durability hook's buffer).
async fn pending_inbound(app: &TestApp) -> String {
    super::query_text(app, "SELECT CAST(COUNT(*) AS TEXT) FROM wa_pending_inbound").await.unwrap_or_default()
}

/// Rejects inbound rows with this text, as a database failing at the worst moment would.
const REFUSE_TRIGGER_SQLITE: &str = "CREATE TRIGGER refuse_inbound BEFORE INSERT ON messages \
    WHEN NEW.text = 'tolong disimpan' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END";
const REFUSE_TRIGGER_POSTGRES: &str = "CREATE FUNCTION refuse_inbound() RETURNS trigger AS $$ \
    BEGIN IF NEW.text = 'tolong disimpan' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END \
    $$ LANGUAGE plpgsql; \
    CREATE TRIGGER refuse_inbound BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_inbound()";

/// The gateway cannot store an inbound message the client already decrypted (its database
/// refuses the row): the client keeps the message in the gateway's pending-inbound store and
/// does not confirm it. After a restart, with the database accepting it again, WhatsApp
/// delivers it again, the client replays it from that store, and it is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_message_the_gateway_could_not_store_survives_a_restart_and_is_stored_once() {
    let fake = FakeWhatsApp::new();
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830684";
    paired_device(&app, &tenant, &fake, phone).await;
    let sqlite = app.config.database.url.starts_with("sqlite:");
    super::execute_sql(&app, if sqlite { REFUSE_TRIGGER_SQLITE } else { REFUSE_TRIGGER_POSTGRES }).await;

    let t = Instant::now();
    let sent = fake
        .contact_sends(phone, CONTACT, super::fake_wa::ContactMessage::text("tolong disimpan"))
        .await
        .unwrap();
    crate::helpers::poll_until(STEP, || async { (pending_inbound(&app).await == "1").then_some(()) }).await;
    assert!(!fake.client_answered(phone, &sent.id), "not confirmed while not stored");
    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    assert_eq!(history["data"].as_array().unwrap().len(), 0, "{history}");

    let drop = if sqlite {
        "DROP TRIGGER refuse_inbound"
    } else {
        "DROP TRIGGER refuse_inbound ON messages; DROP FUNCTION refuse_inbound()"
    };
    super::execute_sql(&app, drop).await;
    app = app.restart().await;
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored after the restart");
    report("refused store → restart → replayed and stored", t);
    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    let rows = history["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{history}");
    assert_eq!(
        (rows[0]["text"].as_str(), rows[0]["wa_id"].as_str()),
        (Some("tolong disimpan"), Some(sent.id.as_str()))
    );
    crate::helpers::poll_until(STEP, || async { (pending_inbound(&app).await == "0").then_some(()) }).await;
}
