//! App state through the `whatsapp-web` driver: the account's phone archives, pins and mutes
//! a chat and saves a contact; the fake encrypts each change as a patch with the app-state key
//! it shared at login and announces it with `server_sync`, the unmodified client fetches and
//! verifies the patches, and the gateway shows the state in the chat and contact lists.

use std::time::Instant;

use serde_json::Value;

use super::fake_wa::{ContactMessage, FakeWhatsApp, PhoneAction};
use super::inbound::wait_history;
use super::{paired_device, report, spawn, STEP};
use crate::helpers::{poll_until, TestApp, TestTenant};

const CONTACT: &str = "6281299991101";

/// Polls the chat list until `check` accepts the contact's chat; returns that chat.
async fn wait_chat(app: &TestApp, tenant: &TestTenant, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let chat = format!("{CONTACT}@s.whatsapp.net");
    eprintln!("[whatsapp_web] waiting for the chat list to show {what}");
    poll_until(STEP, || async {
        let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
        let found = list["data"].as_array()?.iter().find(|c| c["chat"] == chat.as_str())?.clone();
        check(&found).then_some(found)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_archiving_pinning_muting_and_saving_a_contact_reaches_the_lists() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381831101";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::text("halo kak")).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("the device took the message");
    wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    let chat = format!("{CONTACT}@s.whatsapp.net");

    let t = Instant::now();
    fake.phone_syncs(phone, PhoneAction::Archive { chat: chat.clone(), archived: true });
    let shown = wait_chat(&app, &tenant, "the chat archived", |c| c["archived"] == true).await;
    report("phone archives → chat list shows it", t);
    assert_eq!((shown["pinned"].as_bool(), shown["muted"].as_bool()), (Some(false), Some(false)), "{shown}");

    // A second patch of the same collection (version 2), then patches of two others, one
    // after the other: each change is seen before the phone makes the next, as a person would
    // (notifications that arrive while the client is still syncing are not what this tests).
    fake.phone_syncs(phone, PhoneAction::Pin { chat: chat.clone(), pinned: true });
    wait_chat(&app, &tenant, "the chat pinned", |c| c["pinned"] == true).await;
    fake.phone_syncs(phone, PhoneAction::Mute { chat: chat.clone(), end_ms: Some(-1) });
    wait_chat(&app, &tenant, "the chat muted", |c| c["muted"] == true).await;
    fake.phone_syncs(
        phone,
        PhoneAction::SaveContact {
            jid: chat.clone(),
            full_name: "Budi Langganan".to_string(),
            first_name: Some("Budi".to_string()),
        },
    );
    let shown = wait_chat(&app, &tenant, "the contact's saved name", |c| c["name"] == "Budi Langganan").await;
    assert_eq!((shown["pinned"].as_bool(), shown["muted"].as_bool()), (Some(true), Some(true)), "{shown}");
    assert_eq!(shown["archived"], true, "{shown}");
    assert_eq!(shown["muted_until"], Value::Null, "muted with no end: {shown}");
    let (_, contacts) = app.get("/api/user/contacts?q=langganan", &tenant.api_key).await;
    assert_eq!(contacts["total"], 1, "{contacts}");
    assert_eq!(contacts["data"][0]["saved_name"], "Budi Langganan");
    assert_eq!(contacts["data"][0]["saved_first_name"], "Budi");

    // Unarchived on the phone again: the same index set anew.
    fake.phone_syncs(phone, PhoneAction::Archive { chat: chat.clone(), archived: false });
    wait_chat(&app, &tenant, "the chat unarchived", |c| c["archived"] == false).await;
}
