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
