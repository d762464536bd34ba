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
