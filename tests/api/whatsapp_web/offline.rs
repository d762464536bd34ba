//! Messages and receipts that reach a device while it is offline or while its connection
//! drops, and what a gateway restart keeps: the offline queue is delivered once after the next
//! login, a delivery cut off before the client's receipt comes again and is stored once, and
//! the Signal sessions in the gateway's database survive the restart.

use std::time::Instant;

use reqwest::StatusCode;

use super::fake_wa::{ContactMessage, Content, EncKind, FakeEvent, FakeWhatsApp, ReceiptKind};
use super::inbound::{history, wait_history};
use super::{paired_device, report, send_text, spawn, STEP};

const CONTACT: &str = "6281299990601";

/// While the gateway is down, a contact sends seven messages and reads the device's earlier
/// message. After the restart the fake announces the backlog, sends a primer, the rest when
/// the client asks, and the end marker: every message is stored once, in order, and the
/// earlier message is `read`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_arrives_while_the_device_is_offline_is_delivered_once_after_it_reconnects() {
    let fake = FakeWhatsApp::new();
    fake.set_auto_receipts(false);
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830701";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let (status, body) = send_text(&app, &tenant, device, CONTACT, "pesanan diterima").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let earlier = body["id"].as_i64().unwrap();
    let earlier_wa = body["wa_id"].as_str().unwrap().to_string();

    app.stop().await;
    fake.wait_disconnected(phone, STEP).await.expect("the device is offline");
    let t = Instant::now();
    let texts: Vec<String> = (1..=7).map(|i| format!("pesan offline {i}")).collect();
    let mut ids = Vec::new();
    for text in &texts {
        ids.push(fake.contact_sends(phone, CONTACT, ContactMessage::text(text)).await.unwrap().id);
    }
    fake.contact_receipt(phone, CONTACT, std::slice::from_ref(&earlier_wa), ReceiptKind::Read).unwrap();
    assert_eq!(fake.pending_deliveries(phone), 8, "queued for the next login");

    app = app.restart().await;
    for id in &ids {
        fake.wait_client_answered(phone, id, STEP).await.expect("each offline message stored");
    }
    app.wait_for_message_status(&tenant, earlier, "read").await;
    report("offline queue of 7 messages and a receipt → delivered after the restart", t);
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 7).await;
    let stored: Vec<_> = rows.iter().map(|r| r["text"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(stored, texts, "each once, in order");
    let offline: Vec<String> = fake
        .journal()
        .into_iter()
        .filter_map(|(_, e)| match e {
            FakeEvent::Delivered { tag, id, offline: true, .. } if tag == "message" => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(offline, ids, "delivered from the offline queue, each once");
    let journal = fake.journal();
    assert!(
        journal.iter().any(|(_, e)| matches!(e, FakeEvent::OfflineBatchRequested { .. })),
        "the client asked for what the primer left"
    );
    // The client confirms the backlog with receipts (one aggregated receipt at the end marker
    // when the gateway stored everything by then; on a busy machine some come on their own):
    // together they name each message exactly once.
    let mut answered: Vec<String> = journal
        .iter()
        .filter_map(|(_, e)| match e {
            FakeEvent::ClientAnswered { tag, ids: got, .. } if tag == "message" => Some(got.clone()),
            _ => None,
        })
        .flatten()
        .filter(|id| ids.contains(id))
        .collect();
    answered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(answered, expected, "each offline message answered once:\n{}", fake.journal_text());
    fake.wait_until("every delivery answered", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
}

/// The connection drops right after a contact's message was delivered, before the client
/// could answer it: the fake delivers it again after the reconnect, and it is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_off_before_the_receipt_comes_again_and_is_stored_once() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830702";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    fake.drop_after_delivery(phone, 1);
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::text("terputus")).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored after the redelivery");
    report("delivery cut off → redelivered → stored", t);
    let deliveries = fake
        .journal()
        .into_iter()
        .filter(
            |(_, e)| matches!(e, FakeEvent::Delivered { id, tag, .. } if *id == sent.id && tag == "message"),
        )
        .count();
    assert_eq!(deliveries, 2, "delivered, cut off, delivered again:\n{}", fake.journal_text());
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["text"], "terputus");
    fake.wait_until("every delivery answered", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
    assert_eq!(history(&app, &tenant, "direction=in").await.len(), 1, "stored once");
}

/// A gateway restart between two exchanges keeps the Signal sessions (they live in the
/// gateway's database): after it, the contact's next message is a msg on the same session and
/// decrypts, and the device's next message to the contact does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_signal_session_with_a_contact() {
    let fake = FakeWhatsApp::new();
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830703";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let first = fake.contact_sends(phone, CONTACT, ContactMessage::text("halo")).await.unwrap();
    assert_eq!(first.enc, EncKind::Pkmsg);
    fake.wait_client_answered(phone, &first.id, STEP).await.expect("stored");
    let (status, body) = send_text(&app, &tenant, device, CONTACT, "halo juga").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = fake.wait_messages_of(CONTACT, 1, STEP).await.unwrap();
    assert_eq!(got[0].enc, EncKind::Msg, "the device answers on the contact's session");

    let t = Instant::now();
    app = app.restart().await;
    super::wait_status(&app, &tenant, device, "connected", super::LOGIN).await;
    let second = fake.contact_sends(phone, CONTACT, ContactMessage::text("masih di sana?")).await.unwrap();
    assert_eq!(second.enc, EncKind::Msg, "the contact's session was acknowledged before the restart");
    fake.wait_client_answered(phone, &second.id, STEP).await.expect("decrypted and stored after the restart");
    let (status, body) = send_text(&app, &tenant, device, CONTACT, "masih").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = fake.wait_messages_of(CONTACT, 2, STEP).await.unwrap();
    report("restart → msg both ways on the stored session", t);
    assert_eq!((got[1].enc, &got[1].content), (EncKind::Msg, &Content::Text("masih".to_string())));
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 2).await;
    assert_eq!(rows[1]["text"], "masih di sana?");
    assert!(
        !fake
            .journal()
            .iter()
            .any(|(_, e)| matches!(e, FakeEvent::DecryptFailed { .. } | FakeEvent::ClientNack { .. })),
        "nothing failed to decrypt on either side:\n{}",
        fake.journal_text()
    );
}
