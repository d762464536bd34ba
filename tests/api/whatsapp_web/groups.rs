//! Groups through the `whatsapp-web` driver: the client's sender keys and group messages,
//! decrypted by each member the fake plays, and group messages a member sends.

use std::time::Instant;

use reqwest::StatusCode;
use whatsapp_rust::waproto::whatsapp as wa;

use super::fake_wa::{Content, EncKind, FakeEvent, FakeWhatsApp};
use super::inbound::{history, wait_history};
use super::{paired_device, report, send_text, spawn, STEP};

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
