//! The chat list: one row per conversation with its name, unread count and latest message;
//! marking a chat read (receipts to WhatsApp); a LID's chat folding into its number's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

const SHOP: &str = "6281100000095";
const BUDI: &str = "6281299990095";
const SARI: &str = "6281299990096";
const LID: &str = "987654321098765@lid";

async fn inbound(app: &TestApp, body: Value) {
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

fn chats_of(list: &Value) -> Vec<(String, i64)> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["chat"].as_str().unwrap().to_string(), c["unread"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn chats_list_conversations_newest_first_with_unread_counts_and_are_marked_read() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let intruder = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (_, created) = app
        .admin_post(
            "/api/admin/simulator/groups",
            &json!({"creator": SARI, "subject": "Arisan RT", "members": [SHOP]}),
        )
        .await;
    let group = created["group"].as_str().unwrap().to_string();

    inbound(&app, json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "ada stok?", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "group": group, "text": "rapat jam 7"})).await;
    let (status, sent) = app
        .post("/api/send-message", &tenant.api_key, &json!({"device": device, "to": SARI, "text": "siap"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");

    let (status, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3, "{list}");
    let sari = format!("{SARI}@s.whatsapp.net");
    let budi = format!("{BUDI}@s.whatsapp.net");
    assert_eq!(chats_of(&list), [(sari.clone(), 0), (group.clone(), 1), (budi.clone(), 2)], "{list}");
    let first = &list["data"][0];
    assert_eq!(first["last_message"]["text"], "siap");
    assert_eq!(first["phone"], SARI);
    assert_eq!(list["data"][1]["name"], "Arisan RT", "a group is named by its subject");
    assert_eq!(list["data"][1]["is_group"], true);
    assert_eq!(list["data"][1]["last_message"]["from"], SARI);
    assert_eq!(list["data"][2]["name"], "Budi", "a contact by its WhatsApp name");
    assert_eq!(list["data"][2]["last_message"]["text"], "ada stok?");

    // Filters: search, unread only, device, paging.
    let (_, found) = app.get("/api/user/chats?q=arisan", &tenant.api_key).await;
    assert_eq!(chats_of(&found), [(group.clone(), 1)], "{found}");
    let (_, found) = app.get(&format!("/api/user/chats?q={}", &BUDI[4..]), &tenant.api_key).await;
    assert_eq!(chats_of(&found), [(budi.clone(), 2)], "{found}");
    let (_, unread) = app.get("/api/user/chats?unread=true", &tenant.api_key).await;
    assert_eq!(unread["total"], 2, "{unread}");
    let (_, paged) =
        app.get(&format!("/api/user/chats?device={device}&limit=1&offset=1"), &tenant.api_key).await;
    assert_eq!(chats_of(&paged), [(group.clone(), 1)]);
    assert_eq!(paged["total"], 3);

    // Marking Budi's chat read: the count clears and WhatsApp gets receipts for both messages.
    let (status, read) =
        app.post(&format!("/api/user/chats/{BUDI}/read?device={device}"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["marked"], 2);
    assert_eq!(read["unread"], 0);
    assert_eq!(read["receipts_sent"], true);
    let receipts: Vec<Value> = app.outbox(device).await.into_iter().filter(|m| m["type"] == "read").collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["to"], budi.as_str());
    assert_eq!(receipts[0]["read"].as_array().unwrap().len(), 2);
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(chats_of(&list)[2], (budi.clone(), 0));
    // Again: nothing new to mark.
    let (_, again) =
        app.post(&format!("/api/user/chats/{budi}/read?device={device}"), &tenant.api_key, &json!({})).await;
    assert_eq!(again["marked"], 0, "{again}");

    // Another tenant sees none of it; unknown chats and devices are 404, bad ids 422.
    let (_, theirs) = app.get("/api/user/chats", &intruder.api_key).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (status, body) = app.get(&format!("/api/user/chats?device={device}"), &intruder.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .post(&format!("/api/user/chats/{BUDI}/read?device={device}"), &intruder.api_key, &json!({}))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .post(&format!("/api/user/chats/6281299990099/read?device={device}"), &tenant.api_key, &json!({}))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) =
        app.post(&format!("/api/user/chats/abc/read?device={device}"), &tenant.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

/// A LID sender's chat shows under the LID until its number is known, then under the number,
/// with the unread messages of both.
#[tokio::test]
async fn a_lid_chat_folds_into_the_numbers_chat_when_the_mapping_arrives() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "pertama"})).await;
    inbound(&app, json!({"device": device, "from_lid": LID, "text": "kedua"})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    let budi = format!("{BUDI}@s.whatsapp.net");
    assert_eq!(chats_of(&list), [(LID.to_string(), 1), (budi.clone(), 1)], "{list}");

    let (status, body) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": BUDI}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(chats_of(&list), [(budi, 2)], "{list}");
    assert_eq!(list["data"][0]["last_message"]["text"], "kedua");
    assert_eq!(list["data"][0]["last_message"]["from"], BUDI);
}

/// Plays the account's phone changing a chat's state; answers once the gateway stored it.
async fn phone_sets(app: &TestApp, body: Value) {
    let (status, answer) = app.admin_post("/api/admin/simulator/chat-state", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// `(chat, archived, pinned, muted)` of each listed chat, newest first.
fn states_of(list: &Value) -> Vec<(String, bool, bool, bool)> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let flag = |f: &str| c[f].as_bool().unwrap_or_else(|| panic!("{f} of {c}"));
            (c["chat"].as_str().unwrap().to_string(), flag("archived"), flag("pinned"), flag("muted"))
        })
        .collect()
}

#[tokio::test]
async fn the_phones_archive_pin_and_mute_show_in_the_chat_list_and_filter_it() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let intruder = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (_, created) = app
        .admin_post(
            "/api/admin/simulator/groups",
            &json!({"creator": SARI, "subject": "Arisan RT", "members": [SHOP]}),
        )
        .await;
    let group = created["group"].as_str().unwrap().to_string();
    let (budi, sari) = (format!("{BUDI}@s.whatsapp.net"), format!("{SARI}@s.whatsapp.net"));
    inbound(&app, json!({"device": device, "from": BUDI, "text": "halo"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "group": group, "text": "rapat jam 7"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "text": "pagi"})).await;

    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    let plain = [
        (sari.clone(), false, false, false),
        (group.clone(), false, false, false),
        (budi.clone(), false, false, false),
    ];
    assert_eq!(states_of(&list), plain, "nothing set yet: {list}");

    let until = (chrono::Utc::now() + chrono::Duration::hours(8)).to_rfc3339();
    phone_sets(&app, json!({"device": device, "chat": BUDI, "archived": true})).await;
    phone_sets(&app, json!({"device": device, "chat": sari, "pinned": true, "muted": true})).await;
    phone_sets(&app, json!({"device": device, "chat": group, "muted_until": until})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(
        states_of(&list),
        [
            (sari.clone(), false, true, true),
            (group.clone(), false, false, true),
            (budi.clone(), true, false, false)
        ],
        "{list}"
    );
    assert_eq!(list["data"][0]["muted_until"], Value::Null, "muted with no end: {list}");
    let shown = list["data"][1]["muted_until"].as_str().unwrap();
    let shown = chrono::DateTime::parse_from_rfc3339(shown).unwrap();
    let wanted = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    assert!((shown - wanted).num_milliseconds().abs() < 1000, "{shown} vs {wanted}");

    // Archived chats are listed unless asked otherwise; `archived` and `pinned` separate them.
    let (_, main) = app.get("/api/user/chats?archived=false", &tenant.api_key).await;
    assert_eq!(chats_of(&main).into_iter().map(|c| c.0).collect::<Vec<_>>(), [sari.clone(), group.clone()]);
    assert_eq!(main["total"], 2);
    let (_, archive) =
        app.get(&format!("/api/user/chats?archived=true&device={device}"), &tenant.api_key).await;
    assert_eq!(chats_of(&archive), [(budi.clone(), 1)], "{archive}");
    assert_eq!(archive["total"], 1);
    let (_, pinned) = app.get("/api/user/chats?pinned=1", &tenant.api_key).await;
    assert_eq!(chats_of(&pinned), [(sari.clone(), 1)], "{pinned}");
    let (_, muted) = app.get("/api/user/chats?muted=true", &tenant.api_key).await;
    assert_eq!(
        chats_of(&muted),
        [(sari.clone(), 1), (group.clone(), 1)],
        "muted, with or without an end: {muted}"
    );
    let (_, unmuted) = app.get("/api/user/chats?muted=false", &tenant.api_key).await;
    assert_eq!(chats_of(&unmuted), [(budi.clone(), 1)], "{unmuted}");

    // A later message keeps the state; the phone unarchives, unmutes, mutes until a past time.
    inbound(&app, json!({"device": device, "from": BUDI, "text": "masih ada?"})).await;
    phone_sets(&app, json!({"device": device, "chat": sari, "muted": false})).await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    phone_sets(&app, json!({"device": device, "chat": group, "muted_until": past})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(
        states_of(&list),
        [
            (budi.clone(), true, false, false),
            (sari.clone(), false, true, false),
            (group.clone(), false, false, false)
        ],
        "{list}"
    );
    assert_eq!(list["data"][0]["last_message"]["text"], "masih ada?");
    phone_sets(&app, json!({"device": device, "chat": budi, "archived": false})).await;
    let (_, archive) = app.get("/api/user/chats?archived=true", &tenant.api_key).await;
    assert_eq!(archive["total"], 0, "{archive}");
    let (_, muted) = app.get("/api/user/chats?muted=1", &tenant.api_key).await;
    assert_eq!(muted["total"], 0, "unmuted, and muted until a time gone by: {muted}");

    // Another tenant sees none of it; bad filters and bad chats are 422.
    let (_, theirs) = app.get("/api/user/chats?pinned=true", &intruder.api_key).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (status, body) = app.get("/api/user/chats?archived=maybe", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/chat-state",
            &json!({"device": device, "chat": "abc", "pinned": true}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

/// WhatsApp may sync a chat's state before the gateway stored any of its messages: the chat
/// is not listed without a message, and shows the state once one arrives.
#[tokio::test]
async fn a_chat_state_synced_before_any_message_shows_once_a_message_arrives() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    phone_sets(&app, json!({"device": device, "chat": BUDI, "archived": true, "pinned": true})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(list["total"], 0, "no message, not listed: {list}");
    let (_, contacts) = app.get("/api/user/contacts", &tenant.api_key).await;
    assert_eq!(contacts["total"], 0, "no message, no contact: {contacts}");

    inbound(&app, json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(states_of(&list), [(format!("{BUDI}@s.whatsapp.net"), true, true, false)], "{list}");
    assert_eq!(list["data"][0]["unread"], 1);
    assert_eq!(list["data"][0]["name"], "Budi");
}

/// The phone archived the LID's chat and pinned the number's earlier: when the mapping folds
/// the two chats into one, each part of the state is the one changed last.
#[tokio::test]
async fn a_lid_chat_folded_into_the_numbers_chat_keeps_the_latest_state() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "pertama"})).await;
    inbound(&app, json!({"device": device, "from_lid": LID, "text": "kedua"})).await;
    phone_sets(&app, json!({"device": device, "chat": BUDI, "pinned": true, "archived": true})).await;
    phone_sets(&app, json!({"device": device, "chat": LID, "archived": false, "muted": true})).await;
    phone_sets(&app, json!({"device": device, "chat": LID, "archived": true})).await;
    phone_sets(&app, json!({"device": device, "chat": BUDI, "archived": false})).await;
    let budi = format!("{BUDI}@s.whatsapp.net");
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(
        states_of(&list),
        [(LID.to_string(), true, false, true), (budi.clone(), false, true, false)],
        "{list}"
    );

    let (status, body) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": BUDI}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    // Unarchived last under the number, pinned only there, muted only under the LID.
    assert_eq!(states_of(&list), [(budi.clone(), false, true, true)], "{list}");
    assert_eq!(chats_of(&list), [(budi.clone(), 2)]);

    // Known now, the LID names the number's chat.
    phone_sets(&app, json!({"device": device, "chat": LID, "pinned": false})).await;
    let (_, list) = app.get("/api/user/chats", &tenant.api_key).await;
    assert_eq!(states_of(&list), [(budi, false, false, true)], "{list}");
}
