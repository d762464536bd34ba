//! Groups through the simulator: create, read, change, participants, invite links, join and
//! leave through the API; group events as webhooks; group messages in history; keyword rules
//! that answer direct chats only unless told; another tenant's device and bad input.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::{Answer, Receiver};

const SHOP: &str = "6281100000091";
const BUDI: &str = "6281299990091";
const SARI: &str = "6281299990092";
const DEWI: &str = "6281299990093";
/// Not on WhatsApp in the simulator (ends in 0000).
const NOBODY: &str = "6281299990000";

async fn webhook(app: &TestApp, tenant: &TestTenant, receiver: &Receiver, events: &[&str]) {
    let (status, body) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": receiver.url("/hook"), "events": events}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The events the receiver has, by type, once `n` arrived (in any order).
async fn events(receiver: &Receiver, n: usize) -> Vec<Value> {
    let mut got: Vec<Value> = receiver.wait_for(n, WAIT).await.iter().map(|r| r.json()).collect();
    got.sort_by_key(|e| e["type"].as_str().unwrap_or_default().to_string());
    got
}

/// The walk a new user takes: create a group of three, a member writes (the message is in the
/// group's chat with the member's number, and no keyword rule answers it), a member leaves and
/// `group.participants` arrives; the group's details, subject change and invite link.
#[tokio::test]
async fn a_group_is_created_written_in_and_left_with_events() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    webhook(&app, &tenant, &receiver, &["group.joined", "group.participants", "group.updated", "group.left"])
        .await;
    let (status, rule) = app
        .post("/api/user/auto-reply", &tenant.api_key, &json!({"keyword": "harga", "reply": "Rp 10.000"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["groups"], false, "rules answer direct chats only by default: {rule}");

    let groups = format!("/api/user/devices/{device}/groups");
    let (status, created) = app
        .post(
            &groups,
            &tenant.api_key,
            &json!({"subject": "Reseller Jakarta", "participants": [BUDI, format!("+{SARI}"), NOBODY]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let group = created["group"]["jid"].as_str().unwrap().to_string();
    assert!(group.ends_with("@g.us"), "{created}");
    assert_eq!(created["group"]["subject"], "Reseller Jakarta");
    assert_eq!(created["group"]["size"], 3);
    assert_eq!(created["group"]["is_admin"], true);
    let results: Vec<(String, String)> = created["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap().to_string(), p["result"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        results,
        [
            (BUDI.into(), "added".into()),
            (SARI.into(), "added".into()),
            (NOBODY.into(), "not_on_whatsapp".into())
        ]
    );

    let (status, list) = app.get(&groups, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["jid"], group.as_str());
    assert_eq!(list["data"][0]["size"], 3);
    assert_eq!(list["data"][0]["is_admin"], true);
    assert!(list["data"][0].get("participants").is_none(), "lists leave members out: {list}");
    assert_eq!(list["data"][0]["cached_at"], Value::Null, "answered live");

    // A member writes: stored in the group's chat with the member's number; no rule answers.
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": BUDI, "group": group, "text": "harga berapa?", "push_name": "Budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, history) = app.get(&format!("/api/user/chat-history?chat={group}"), &tenant.api_key).await;
    assert_eq!(history["total"], 1, "{history}");
    assert_eq!(history["data"][0]["from"], BUDI);
    assert_eq!(history["data"][0]["is_group"], true);
    app.wait_idle().await;
    assert!(app.outbox(device).await.is_empty(), "no rule answers in a group by default");

    // The rule told to answer in groups too does.
    let rule_id = rule["id"].as_i64().unwrap();
    let (status, changed) = app
        .send(
            app.request(reqwest::Method::PUT, &format!("/api/user/auto-reply/{rule_id}"))
                .header("x-api-key", &tenant.api_key)
                .json(&json!({"groups": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["groups"], true);
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": SARI, "group": group, "text": "harga?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sent = poll_until(WAIT, || async {
        let outbox = app.outbox(device).await;
        (!outbox.is_empty()).then_some(outbox)
    })
    .await;
    assert_eq!(sent[0]["to"], group.as_str(), "the answer goes to the group: {sent:?}");
    assert_eq!(sent[0]["text"], "Rp 10.000");

    // Details, then a subject change through the API.
    let path = format!("{groups}/{group}");
    let (status, details) = app.get(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{details}");
    let members: BTreeSet<(String, String)> = details["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap().to_string(), p["role"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        members,
        BTreeSet::from([
            (SHOP.into(), "superadmin".into()),
            (BUDI.into(), "member".into()),
            (SARI.into(), "member".into())
        ])
    );
    let (status, patched) = app
        .patch(&path, &tenant.api_key, &json!({"subject": "Reseller Jabodetabek", "announce": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["subject"], "Reseller Jabodetabek");
    assert_eq!(patched["settings"]["announce"], true);

    // The invite link, read and revoked (a new one); then a member leaves.
    let (status, invite) = app.get(&format!("{path}/invite"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{invite}");
    let link = invite["invite_link"].as_str().unwrap().to_string();
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{link}");
    let (status, revoked) = app.delete(&format!("{path}/invite"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_ne!(revoked["invite_link"], link.as_str(), "revoking makes a new link");

    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/groups/participants",
            &json!({"group": group, "by": SARI, "action": "remove", "participants": [SARI]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // joined (create), updated (subject), participants (Sari left).
    let got = events(&receiver, 3).await;
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["group.joined", "group.participants", "group.updated"], "{got:?}");
    let joined = &got[0]["data"];
    assert_eq!(joined["group"], group.as_str());
    assert_eq!(joined["device_id"], device);
    assert_eq!(joined["device"], SHOP);
    assert_eq!(joined["by"], SHOP);
    let left = &got[1]["data"];
    assert_eq!(left["action"], "remove");
    assert_eq!(left["by"], SARI);
    assert_eq!(left["participants"], json!([{"phone": SARI, "lid": null}]));
    assert_eq!(left["subject"], "Reseller Jabodetabek");
    let updated = &got[2]["data"];
    assert_eq!(updated["changes"], json!({"subject": "Reseller Jabodetabek", "announce": true}));

    // The cache follows the event: offline, the group shows two members.
    app.admin_post("/api/admin/simulator/disconnect", &json!({"device": device})).await;
    let (status, cached) = poll_until(WAIT, || async {
        let (s, g) = app.get(&path, &tenant.api_key).await;
        (!g["cached_at"].is_null()).then_some((s, g))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{cached}");
    assert_eq!(cached["size"], 2, "{cached}");
    assert_eq!(cached["subject"], "Reseller Jabodetabek");
    let (status, body) = app.patch(&path, &tenant.api_key, &json!({"subject": "x"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
}

/// Participants added, promoted, demoted and removed answer per participant; a device that is
/// not admin is refused; joining by invite link and leaving.
#[tokio::test]
async fn participants_change_per_participant_and_admin_rights_hold() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let groups = format!("/api/user/devices/{device}/groups");

    // A contact's group the device is a plain member of.
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/groups",
            &json!({"creator": DEWI, "subject": "Arisan", "members": [SHOP, BUDI]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let theirs = body["group"].as_str().unwrap().to_string();
    let (_, list) = app.get(&groups, &tenant.api_key).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["is_admin"], false);
    let (status, body) = app
        .post(
            &format!("{groups}/{theirs}/participants"),
            &tenant.api_key,
            &json!({"action": "remove", "participants": [BUDI]}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.get(&format!("{groups}/{theirs}/invite"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) =
        app.patch(&format!("{groups}/{theirs}"), &tenant.api_key, &json!({"locked": true})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // The device's own group.
    let (_, created) =
        app.post(&groups, &tenant.api_key, &json!({"subject": "Staf", "participants": [BUDI]})).await;
    let ours = created["group"]["jid"].as_str().unwrap().to_string();
    let participants = format!("{groups}/{ours}/participants");
    let (status, added) = app
        .post(&participants, &tenant.api_key, &json!({"action": "add", "participants": [SARI, BUDI, NOBODY]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let results: Vec<&str> =
        added["participants"].as_array().unwrap().iter().map(|p| p["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["added", "already_a_member", "not_on_whatsapp"], "{added}");
    let (_, promoted) =
        app.post(&participants, &tenant.api_key, &json!({"action": "promote", "participants": [SARI]})).await;
    assert_eq!(promoted["participants"][0]["result"], "promoted", "{promoted}");
    let (_, details) = app.get(&format!("{groups}/{ours}"), &tenant.api_key).await;
    let sari =
        details["participants"].as_array().unwrap().iter().find(|p| p["phone"] == SARI).cloned().unwrap();
    assert_eq!(sari["role"], "admin");
    assert_eq!(sari["is_admin"], true);
    let (_, demoted) =
        app.post(&participants, &tenant.api_key, &json!({"action": "demote", "participants": [SARI]})).await;
    assert_eq!(demoted["participants"][0]["result"], "demoted");
    let (_, removed) = app
        .post(&participants, &tenant.api_key, &json!({"action": "remove", "participants": [BUDI, DEWI]}))
        .await;
    let results: Vec<&str> =
        removed["participants"].as_array().unwrap().iter().map(|p| p["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["removed", "not_a_member"], "{removed}");

    // A second device of the tenant joins by the invite link, then leaves.
    let other = app.pair_device(&tenant, "6281100000092").await;
    let (_, invite) = app.get(&format!("{groups}/{ours}/invite"), &tenant.api_key).await;
    let link = invite["invite_link"].as_str().unwrap();
    let (status, joined) = app
        .post(&format!("/api/user/devices/{other}/groups/join"), &tenant.api_key, &json!({"invite": link}))
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["jid"], ours.as_str());
    assert_eq!(joined["is_admin"], false);
    let (status, left) = app
        .post(&format!("/api/user/devices/{other}/groups/{ours}/leave"), &tenant.api_key, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    let (_, list) = app.get(&format!("/api/user/devices/{other}/groups"), &tenant.api_key).await;
    assert_eq!(list["total"], 0, "{list}");
    let (status, body) = app.get(&format!("/api/user/devices/{other}/groups/{ours}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// Bad input is a 4xx JSON error; another tenant's device is 404.
#[tokio::test]
async fn bad_group_requests_are_refused_and_tenants_stay_apart() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let intruder = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let groups = format!("/api/user/devices/{device}/groups");
    let (_, created) =
        app.post(&groups, &tenant.api_key, &json!({"subject": "Toko", "participants": [BUDI]})).await;
    let group = created["group"]["jid"].as_str().unwrap().to_string();

    for (path, body) in [
        (groups.clone(), json!({"subject": " ", "participants": [BUDI]})),
        (groups.clone(), json!({"subject": "x".repeat(101), "participants": [BUDI]})),
        (groups.clone(), json!({"subject": "Toko", "participants": []})),
        (groups.clone(), json!({"subject": "Toko", "participants": ["bukan nomor"]})),
        (format!("{groups}/join"), json!({"invite": "https://example.com/abc"})),
    ] {
        let (status, answer) = app.post(&path, &tenant.api_key, &body).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let (status, body) = app
        .post(
            &format!("{groups}/join"),
            &tenant.api_key,
            &json!({"invite": "https://chat.whatsapp.com/AAAAAAAAAAAAAAAAAAAAAA"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.patch(&format!("{groups}/{group}"), &tenant.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, body) = app.get(&format!("{groups}/not-a-group"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, body) = app.get(&format!("{groups}/120363999999999999@g.us"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    for (status, body) in [
        app.get(&format!("/api/user/devices/{device}/groups"), &intruder.api_key).await,
        app.get(&format!("{groups}/{group}"), &intruder.api_key).await,
        app.post(&format!("{groups}/{group}/leave"), &intruder.api_key, &json!({})).await,
        app.post(&groups, &intruder.api_key, &json!({"subject": "x", "participants": [BUDI]})).await,
    ] {
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

/// A flood of group events, faster than the live broadcast holds (every change reaches three
/// devices of the tenant at once), is queued for webhooks complete and exactly once: the code
/// that handles each event queues it before moving on, instead of a listener that may fall
/// behind and skip events. The receiver gets every one of them.
#[tokio::test]
async fn a_flood_of_group_events_reaches_the_webhook_queue_complete_and_once() {
    /// Participant changes made; each one is an event on each of the devices.
    const CHANGES: usize = 1_000;
    const DEVICES: [&str; 3] = ["6281100000095", "6281100000096", "6281100000097"];
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"devices": DEVICES.len()})).await;
    let mut devices = Vec::new();
    for phone in DEVICES {
        devices.push(app.pair_device(&tenant, phone).await);
    }
    receiver.answer(Answer::status(200).after(std::time::Duration::from_secs(30)));
    webhook(&app, &tenant, &receiver, &["group.participants"]).await;
    let (status, created) = app
        .admin_post(
            "/api/admin/simulator/groups",
            &json!({"creator": BUDI, "subject": "Banjir", "members": DEVICES}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let group = created["group"].as_str().unwrap().to_string();

    // Budi adds and removes Dewi, over and over, as fast as the simulator takes it.
    for n in 0..CHANGES {
        let action = if n % 2 == 0 { "add" } else { "remove" };
        let (status, body) = app
            .admin_post(
                "/api/admin/simulator/groups/participants",
                &json!({"group": group, "by": BUDI, "action": action, "participants": [DEWI]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "change {n}: {body}");
        assert_eq!(body["participants"][0]["status"], 200, "change {n}: {body}");
    }

    // Counted in the delivery queue, where an event that reached the webhooks is written once;
    // the receiver answers slowly, so the few deliveries in flight do not compete with the
    // flood (delivering is tested elsewhere).
    let expected = (CHANGES * DEVICES.len()) as i64;
    let queued = "SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'group.participants'";
    let long = std::time::Duration::from_secs(120);
    poll_until(long, || async { (app.query_i64(queued).await >= expected).then_some(()) }).await;
    assert_eq!(app.query_i64(queued).await, expected, "each event queued once");
    for device in devices {
        let of_device = format!("{queued} AND payload LIKE '%\"device_id\":{device},%'");
        assert_eq!(app.query_i64(&of_device).await, CHANGES as i64, "device {device}");
        let adds = format!("{of_device} AND payload LIKE '%\"action\":\"add\"%'");
        assert_eq!(app.query_i64(&adds).await, (CHANGES / 2) as i64, "device {device}");
        let elsewhere = format!("{of_device} AND payload NOT LIKE '%\"group\":\"{group}\"%'");
        assert_eq!(app.query_i64(&elsewhere).await, 0, "device {device}: every event names the group");
    }
}
