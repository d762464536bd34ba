//! Contacts through the simulator: the list from direct chats (names, LIDs), one contact's
//! profile read on demand and kept, block and unblock, bad input and another tenant.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, TestApp};

const SHOP: &str = "6281100000097";
const BUDI: &str = "6281299990097";
const SARI: &str = "6281299990098";
const LID: &str = "555444333222111@lid";
/// Not on WhatsApp in the simulator (ends in 0000).
const NOBODY: &str = "6281299990000";

#[tokio::test]
async fn contacts_are_listed_read_with_their_profile_and_blocked() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let intruder = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    for body in [
        json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"}),
        json!({"device": device, "from": SARI, "text": "pagi", "push_name": "Sari"}),
        json!({"device": device, "from": SARI, "group": "120363000000000097@g.us", "text": "di grup"}),
    ] {
        let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, _) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": BUDI}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, list) = app.get("/api/user/contacts", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2, "direct chats only: {list}");
    let rows: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["phone"].as_str().unwrap().to_string(), c["name"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(rows, [(SARI.to_string(), "Sari".to_string()), (BUDI.to_string(), "Budi".to_string())]);
    assert_eq!(list["data"][1]["lid"], LID, "the LID behind Budi's number: {list}");
    let (_, found) = app.get("/api/user/contacts?q=bud", &tenant.api_key).await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["data"][0]["phone"], BUDI);

    // The profile is read through the device on demand, then kept.
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/contacts",
            &json!({"phone": BUDI, "about": "Toko kue", "picture_url": "https://pps.whatsapp.net/v/budi.jpg",
                    "business": true, "business_name": "Kue Budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/api/user/contacts/{BUDI}?device={device}");
    let (status, budi) = app.get(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{budi}");
    assert_eq!(budi["jid"], format!("{BUDI}@s.whatsapp.net"));
    assert_eq!(budi["about"], "Toko kue");
    assert_eq!(budi["picture_url"], "https://pps.whatsapp.net/v/budi.jpg");
    assert_eq!(budi["business"], true);
    assert_eq!(budi["business_name"], "Kue Budi");
    assert_eq!(budi["name"], "Budi");
    assert!(budi["fetched_at"].is_string(), "{budi}");
    app.admin_post("/api/admin/simulator/contacts", &json!({"phone": BUDI, "about": "Tutup sementara"}))
        .await;
    let (_, kept) = app.get(&path, &tenant.api_key).await;
    assert_eq!(kept["about"], "Toko kue", "read within a day: kept");
    let (_, fresh) = app.get(&format!("{path}&refresh=true"), &tenant.api_key).await;
    assert_eq!(fresh["about"], "Tutup sementara", "refresh reads it again");

    // Block and unblock go through the device.
    let (status, blocked) = app
        .post(&format!("/api/user/contacts/{BUDI}/block?device={device}"), &tenant.api_key, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{blocked}");
    assert_eq!(blocked["blocked"], true);
    let (_, list) = app.get("/api/user/contacts", &tenant.api_key).await;
    assert_eq!(list["data"][1]["blocked"], true, "{list}");
    let (status, unblocked) = app
        .post(&format!("/api/user/contacts/{BUDI}/unblock?device={device}"), &tenant.api_key, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{unblocked}");
    assert_eq!(unblocked["blocked"], false);
    let kinds: Vec<String> = app
        .outbox(device)
        .await
        .into_iter()
        .filter(|m| m["to"] == format!("{BUDI}@s.whatsapp.net"))
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["block", "unblock"]);

    // Bad input, a number not on WhatsApp, another tenant.
    let (status, body) =
        app.get(&format!("/api/user/contacts/{NOBODY}?device={device}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.get(&format!("/api/user/contacts/abc?device={device}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, theirs) = app.get("/api/user/contacts", &intruder.api_key).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    for (status, body) in [
        app.get(&path, &intruder.api_key).await,
        app.post(&format!("/api/user/contacts/{BUDI}/block?device={device}"), &intruder.api_key, &json!({}))
            .await,
        app.get(&format!("/api/user/contacts?device={device}"), &intruder.api_key).await,
    ] {
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

/// Plays the account saving a contact in its phone's address book.
async fn phone_saves(app: &TestApp, body: serde_json::Value) {
    let (status, answer) = app.admin_post("/api/admin/simulator/saved-name", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_name_saved_for_a_lid_moves_to_the_number_when_it_is_learned() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, answer) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": SARI, "text": "pagi", "push_name": "Sari"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Saved by LID while its number is unknown: listed under the LID.
    phone_saves(
        &app,
        json!({"device": device, "contact": LID, "full_name": "Bu Sari Kue", "first_name": "Sari"}),
    )
    .await;
    let (_, before) = app.get("/api/user/contacts?q=kue", &tenant.api_key).await;
    assert_eq!(before["total"], 1, "{before}");
    assert_eq!(before["data"][0]["lid"], LID, "{before}");

    let (status, _) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": SARI}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/user/contacts", &tenant.api_key).await;
    assert_eq!(list["total"], 1, "one contact, not the number and the LID: {list}");
    let sari = &list["data"][0];
    assert_eq!(sari["phone"], SARI, "{list}");
    assert_eq!(sari["saved_name"], "Bu Sari Kue", "{list}");
    assert_eq!(sari["saved_first_name"], "Sari", "{list}");
    assert_eq!(sari["lid"], LID, "{list}");
    let (_, chats) = app.get("/api/user/chats?q=kue", &tenant.api_key).await;
    assert_eq!(chats["total"], 1, "{chats}");
    assert_eq!(chats["data"][0]["name"], "Bu Sari Kue");
}

#[tokio::test]
async fn saved_names_from_the_address_book_are_shown_and_searched() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let intruder = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    for body in [
        json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"}),
        json!({"device": device, "from": SARI, "text": "pagi", "push_name": "Sari"}),
    ] {
        let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    phone_saves(
        &app,
        json!({"device": device, "contact": BUDI, "full_name": "Pak Budi Kue", "first_name": "Budi"}),
    )
    .await;
    // Saved by LID, with the number known: stored under the number.
    let (status, _) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": SARI}))
        .await;
    assert_eq!(status, StatusCode::OK);
    phone_saves(&app, json!({"device": device, "contact": LID, "first_name": "Bu Sari"})).await;
    // In the address book without a chat.
    let dewi = "6281299990099";
    phone_saves(&app, json!({"device": device, "contact": dewi, "full_name": "Dewi Florist"})).await;

    let (status, list) = app.get("/api/user/contacts", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let rows: Vec<(String, String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |f: &str| c[f].as_str().unwrap_or("-").to_string();
            (text("phone"), text("display_name"), text("name"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            (SARI.into(), "Bu Sari".into(), "Sari".into()),
            (BUDI.into(), "Pak Budi Kue".into(), "Budi".into()),
            (dewi.into(), "Dewi Florist".into(), "-".into()),
        ],
        "chats first, then the address book: {list}"
    );
    assert_eq!(list["total"], 3);
    assert_eq!(list["data"][1]["saved_name"], "Pak Budi Kue");
    assert_eq!(list["data"][1]["saved_first_name"], "Budi");
    assert_eq!(list["data"][2]["last_at"], serde_json::Value::Null);

    // Search matches saved names; the chat list names the chat by it too.
    let (_, found) = app.get("/api/user/contacts?q=kue", &tenant.api_key).await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["data"][0]["phone"], BUDI);
    let (_, found) = app.get(&format!("/api/user/contacts?q=florist&device={device}"), &tenant.api_key).await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["data"][0]["phone"], dewi);
    let (_, chats) = app.get("/api/user/chats?q=kue", &tenant.api_key).await;
    assert_eq!(chats["total"], 1, "{chats}");
    assert_eq!(chats["data"][0]["name"], "Pak Budi Kue");

    // One contact, also one known only from the address book (the device is connected, so its
    // profile is read too).
    let (status, budi) =
        app.get(&format!("/api/user/contacts/{BUDI}?device={device}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{budi}");
    assert_eq!((budi["saved_name"].as_str(), budi["name"].as_str()), (Some("Pak Budi Kue"), Some("Budi")));
    let (status, found) =
        app.get(&format!("/api/user/contacts/{dewi}?device={device}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["display_name"], "Dewi Florist");

    // Another tenant sees none of it; a group is not a contact.
    let (_, theirs) = app.get("/api/user/contacts?q=kue", &intruder.api_key).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (_, theirs) = app.get("/api/user/contacts", &intruder.api_key).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/saved-name",
            &json!({"device": device, "contact": "120363000000000097@g.us", "full_name": "Grup"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
