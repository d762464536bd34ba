//! Groups through the `whatsapp-web` driver: the client's sender keys and group messages,
//! decrypted by each member the fake plays, and group messages a member sends; the group
//! list, creating and changing groups through the API, and members' changes as webhooks.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};
use whatsapp_rust::waproto::whatsapp as wa;

use super::fake_wa::{Content, EncKind, FakeEvent, FakeWhatsApp};
use super::inbound::{history, wait_history};
use super::{paired_device, report, send_text, spawn, spawn_with, STEP};
use crate::webhooks::receiver::Receiver;

const MEMBER_A: &str = "6281299990701";
const MEMBER_B: &str = "6281299990702";

/// The encryptions the fake's peers decrypted for message `id`, as `(peer, kind)`.
fn decrypted(fake: &FakeWhatsApp, id: &str) -> Vec<(String, EncKind)> {
    fake.journal()
        .into_iter()
        .filter_map(|(_, e)| match e {
            FakeEvent::Decrypted { by, id: i, enc, .. } if i == id => Some((by, enc)),
            _ => None,
        })
        .collect()
}

/// A text sent to a group through the API: the client distributes its sender key to each
/// member (pairwise) and sends the content once under it; both members decrypt it. The next
/// message carries the content only, and decrypts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_sent_through_the_api_is_decrypted_by_every_member() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830801";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let group = fake.create_group("Toko Sembako", phone, &[MEMBER_A, MEMBER_B]);

    let t = Instant::now();
    let (status, body) =
        send_text(&app, &tenant, device, &group.to_string(), "Stok beras datang besok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(matches!(body["status"].as_str(), Some("sent" | "delivered")), "{body}");
    let wa_id = body["wa_id"].as_str().unwrap().to_string();
    for member in [MEMBER_A, MEMBER_B] {
        let got = fake.wait_messages_of(member, 1, STEP).await.expect("the member got the group message");
        assert_eq!(got[0].content, Content::Text("Stok beras datang besok".to_string()), "{member}");
        assert_eq!(
            (got[0].id.as_str(), got[0].enc, got[0].to.as_str()),
            (wa_id.as_str(), EncKind::Skmsg, group.to_string().as_str())
        );
    }
    report("group send → sender keys distributed → decrypted by both members", t);
    let first = decrypted(&fake, &wa_id);
    for member in [MEMBER_A, MEMBER_B] {
        assert!(
            first.iter().any(|(by, enc)| by == member && *enc == EncKind::Pkmsg),
            "{member}'s sender key: {first:?}"
        );
    }

    let (status, body) = send_text(&app, &tenant, device, &group.to_string(), "Harga tetap").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["wa_id"].as_str().unwrap().to_string();
    for member in [MEMBER_A, MEMBER_B] {
        let got = fake.wait_messages_of(member, 2, STEP).await.expect("the second group message");
        assert_eq!(got[1].content, Content::Text("Harga tetap".to_string()));
    }
    // The members have the key already: the content only. (The client sends its sender key
    // to the account's own phone again with every group message; the members' copies are
    // what this is about.)
    let to_members: Vec<(String, EncKind)> =
        decrypted(&fake, &second).into_iter().filter(|(by, _)| by != phone).collect();
    assert_eq!(
        to_members,
        [(MEMBER_A.to_string(), EncKind::Skmsg), (MEMBER_B.to_string(), EncKind::Skmsg)],
        "the key was distributed already"
    );
}

/// A member writes in the group (its sender key pairwise, then the content): the history has
/// the message with the group as chat and the member as sender, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_from_a_member_is_stored_with_the_group_as_chat() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830802";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let group = fake.create_group("Arisan RT 05", phone, &[MEMBER_A, MEMBER_B]);
    fake.set_push_name(MEMBER_A, "Bu Rina");

    let t = Instant::now();
    for text in ["rapat jam 3", "jangan lupa bawa kue"] {
        let message = wa::Message { conversation: Some(text.to_string()), ..Default::default() };
        let sent = fake.member_sends(phone, &group, MEMBER_A, &message).await.unwrap();
        fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");
    }
    report("two group messages from a member → stored", t);
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 2).await;
    for (row, text) in rows.iter().zip(["rapat jam 3", "jangan lupa bawa kue"]) {
        assert_eq!(row["text"], text, "{row}");
        assert_eq!(row["chat"], group.to_string(), "{row}");
        assert_eq!(row["from"], MEMBER_A, "{row}");
        assert_eq!(row["push_name"], "Bu Rina", "{row}");
        assert_eq!(row["is_group"], true, "{row}");
    }
    fake.wait_until("every delivery answered", STEP, |f| f.pending_deliveries(phone) == 0).await.unwrap();
    assert_eq!(history(&app, &tenant, "direction=in").await.len(), 2, "the sender keys are not messages");
}

const MEMBER_C: &str = "6281299990703";
/// Not on WhatsApp (the test says so to the fake).
const NOBODY: &str = "6281299990709";

/// `GET /api/user/devices/{id}/groups` asks WhatsApp for the groups the account is in: the
/// one it created (superadmin) and the one it was added to (a member), not the one it is not
/// in; the details name each member's role, the owner and when it was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_list_shows_the_groups_the_account_is_in_with_its_role() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830803";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let own = fake.create_group("Grosir Pasar Baru", phone, &[MEMBER_A, MEMBER_B]);
    let joined = fake.create_group("Arisan Ibu-ibu", MEMBER_A, &[phone]);
    fake.create_group("Bukan urusan kita", MEMBER_A, &[MEMBER_B]);

    let t = Instant::now();
    let groups = format!("/api/user/devices/{device}/groups");
    let (status, list) = app.get(&groups, &tenant.api_key).await;
    report("list groups", t);
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2, "{list}");
    let rows: Vec<(&str, &str, i64, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let (jid, subject) = (g["jid"].as_str().unwrap(), g["subject"].as_str().unwrap());
            (jid, subject, g["size"].as_i64().unwrap(), g["is_admin"].as_bool().unwrap())
        })
        .collect();
    let (own, joined) = (own.to_string(), joined.to_string());
    assert_eq!(
        rows,
        [(joined.as_str(), "Arisan Ibu-ibu", 2, false), (own.as_str(), "Grosir Pasar Baru", 3, true)],
        "{list}"
    );
    assert_eq!(list["data"][0]["cached_at"], Value::Null, "answered by WhatsApp: {list}");

    let (status, details) = app.get(&format!("{groups}/{own}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{details}");
    let members: Vec<(&str, &str)> = details["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap(), p["role"].as_str().unwrap()))
        .collect();
    assert_eq!(members, [(phone, "superadmin"), (MEMBER_A, "member"), (MEMBER_B, "member")]);
    assert_eq!(details["owner"], phone, "{details}");
    assert!(details["created_at"].as_str().is_some_and(|t| t.starts_with("20")), "{details}");
    assert_eq!(details["settings"]["announce"], false, "{details}");

    // A group the account is not in reads as unknown.
    let other = fake.groups_of(MEMBER_B).into_iter().find(|g| !g.members.contains(&phone.to_string()));
    let (status, body) = app.get(&format!("{groups}/{}", other.unwrap().jid), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// `POST /api/user/devices/{id}/groups` creates the group on WhatsApp with the account as
/// superadmin: the answer says who was added and who is not on WhatsApp, and the fake holds
/// the group with the account and the one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_through_the_api_exists_on_whatsapp_with_its_members() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830804";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    fake.set_unregistered(NOBODY);

    let t = Instant::now();
    let (status, created) = app
        .post(
            &format!("/api/user/devices/{device}/groups"),
            &tenant.api_key,
            &json!({"subject": "Reseller Bandung", "participants": [MEMBER_A, NOBODY]}),
        )
        .await;
    report("create group", t);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let jid = created["group"]["jid"].as_str().unwrap();
    assert!(jid.ends_with("@g.us"), "{created}");
    assert_eq!(created["group"]["subject"], "Reseller Bandung", "{created}");
    assert_eq!(created["group"]["size"], 2, "the account and the one member: {created}");
    assert_eq!(created["group"]["is_admin"], true, "{created}");
    let results: Vec<(&str, &str)> = created["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap(), p["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results, [(MEMBER_A, "added"), (NOBODY, "not_on_whatsapp")], "{created}");

    let on_whatsapp = fake.group(&jid.parse().unwrap()).expect("the fake has the group");
    assert_eq!(on_whatsapp.subject, "Reseller Bandung");
    assert_eq!(on_whatsapp.members, [phone, MEMBER_A]);
    assert_eq!(on_whatsapp.creator, phone);
}

/// Changes through the API reach WhatsApp: subject and announce-only mode, then members
/// added (one already in: 409) and promoted, each answered per participant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_through_the_api_reach_whatsapp() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830805";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let group = fake.create_group("Toko Kue", phone, &[MEMBER_A]);
    let path = format!("/api/user/devices/{device}/groups/{group}");

    let (status, patched) =
        app.patch(&path, &tenant.api_key, &json!({"subject": "Toko Kue Bu Rina", "announce": true})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (&patched["subject"], &patched["settings"]["announce"]),
        (&json!("Toko Kue Bu Rina"), &json!(true))
    );
    let on_whatsapp = fake.group(&group).unwrap();
    assert_eq!((on_whatsapp.subject.as_str(), on_whatsapp.announce), ("Toko Kue Bu Rina", true));

    let participants = format!("{path}/participants");
    let (status, added) = app
        .post(&participants, &tenant.api_key, &json!({"action": "add", "participants": [MEMBER_B, MEMBER_A]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let results: Vec<(&str, &str)> = added["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap(), p["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results, [(MEMBER_B, "added"), (MEMBER_A, "already_a_member")], "{added}");
    let (status, promoted) = app
        .post(&participants, &tenant.api_key, &json!({"action": "promote", "participants": [MEMBER_B]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["participants"][0]["result"], "promoted", "{promoted}");
    let on_whatsapp = fake.group(&group).unwrap();
    assert_eq!(on_whatsapp.members, [phone, MEMBER_A, MEMBER_B]);
    assert_eq!(on_whatsapp.admins, [MEMBER_B]);

    // The invite link is the group's code; revoking it makes a new one.
    let (status, invite) = app.get(&format!("{path}/invite"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{invite}");
    let link = |code: &str| format!("https://chat.whatsapp.com/{code}");
    assert_eq!(invite["invite_link"], link(&fake.group(&group).unwrap().invite), "{invite}");
    let (status, revoked) = app.delete(&format!("{path}/invite"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let code = fake.group(&group).unwrap().invite;
    assert_eq!(revoked["invite_link"], link(&code), "{revoked}");
    assert_ne!(revoked["invite_link"], invite["invite_link"]);

    // The device leaves, and joins again by the link.
    let (status, left) = app.post(&format!("{path}/leave"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert!(!fake.group(&group).unwrap().members.contains(&phone.to_string()), "left on WhatsApp");
    let (status, joined) = app
        .post(
            &format!("/api/user/devices/{device}/groups/join"),
            &tenant.api_key,
            &json!({"invite": link(&code)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["jid"], group.to_string(), "{joined}");
    assert_eq!(joined["is_admin"], false, "a member again, no longer superadmin: {joined}");
    let (status, body) = app
        .post(
            &format!("/api/user/devices/{device}/groups/join"),
            &tenant.api_key,
            &json!({"invite": link("AbCdEfGhIjKlMnOpQrStUv")}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown code: {body}");
}

/// A member leaves and another adds someone: WhatsApp notifies the device, and each change
/// reaches the tenant's webhook as `group.participants` with the action, the member and who
/// did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_leaving_and_being_added_reach_the_webhook() {
    let receiver = Receiver::start().await;
    let fake = FakeWhatsApp::new();
    let app = spawn_with(&fake, |c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830806";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    let group = fake.create_group("Arisan RT 07", phone, &[MEMBER_A, MEMBER_B]);
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["group.participants"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let t = Instant::now();
    fake.member_leaves(&group, MEMBER_B);
    let got = receiver.wait_for(1, STEP).await;
    report("member leaves → group.participants webhook", t);
    let event = got[0].json();
    assert_eq!(event["type"], "group.participants", "{event}");
    let data = &event["data"];
    assert_eq!(data["group"], group.to_string(), "{event}");
    assert_eq!(data["device_id"], device, "{event}");
    assert_eq!(data["action"], "remove", "{event}");
    assert_eq!(data["participants"][0]["phone"], MEMBER_B, "{event}");
    assert_eq!(data["by"], MEMBER_B, "{event}");

    fake.member_adds(&group, MEMBER_A, &[MEMBER_C]);
    let got = receiver.wait_for(2, STEP).await;
    let event = got[1].json();
    let data = &event["data"];
    assert_eq!((&data["action"], &data["by"]), (&json!("add"), &json!(MEMBER_A)), "{data}");
    assert_eq!(data["participants"][0]["phone"], MEMBER_C, "{data}");
    assert_eq!(data["participants"].as_array().map(Vec::len), Some(1), "{data}");
}
