//! The message kinds beyond text and media through the `whatsapp-web` driver: quotes,
//! reactions, locations, contact cards, polls, edits, deletions, voice notes and stickers as
//! the fake's contact decrypts them; read marks and typing as the fake sees them; and the
//! contact's own locations, reactions, votes, edits and deletions in the history.

use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;

use super::fake_wa::{ContactMessage, Content, FakeWhatsApp, MediaRef, Received};
use super::inbound::wait_history;
use super::{paired_device, report, send_text, spawn, STEP};
use crate::helpers::{poll_until, TestApp, TestAppWith, TestTenant};

const CONTACT: &str = "6281299990901";

/// A paired device of account `phone` on a fresh fake and gateway.
async fn setup(phone: &str) -> (Arc<FakeWhatsApp>, TestAppWith, TestTenant, i64) {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let device = paired_device(&app, &tenant, &fake, phone).await;
    (fake, app, tenant, device)
}

fn contact_jid() -> String {
    format!("{CONTACT}@s.whatsapp.net")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST path` with `body`, which must be accepted; returns the answer.
async fn post_ok(app: &TestApp, tenant: &TestTenant, path: &str, body: Value) -> Value {
    let (status, answer) = app.post(path, &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

/// Sends `text` to the contact through the API; returns the gateway's id and WhatsApp's, once
/// the contact has it (its `n`-th message).
async fn sent_text(
    app: &TestApp,
    tenant: &TestTenant,
    fake: &FakeWhatsApp,
    device: i64,
    text: &str,
    n: usize,
) -> (i64, String) {
    let (status, body) = send_text(app, tenant, device, CONTACT, text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = fake.wait_messages_of(CONTACT, n, STEP).await.expect("the contact got the text");
    assert_eq!(got[n - 1].content.text(), Some(text));
    (body["id"].as_i64().unwrap(), body["wa_id"].as_str().unwrap().to_string())
}

/// The contact's `n`-th message from the device.
async fn nth_received(fake: &FakeWhatsApp, n: usize) -> Received {
    fake.wait_messages_of(CONTACT, n, STEP).await.expect("the contact got the message")[n - 1].clone()
}

/// The contact sends `message`; returns the gateway's id of the stored message (the device's
/// `n`-th inbound one) and WhatsApp's.
async fn contact_sent(
    app: &TestApp,
    tenant: &TestTenant,
    fake: &FakeWhatsApp,
    phone: &str,
    device: i64,
    message: wa::Message,
    n: usize,
) -> (i64, String) {
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(message)).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");
    let rows = wait_history(app, tenant, &format!("direction=in&device={device}"), n).await;
    let row = rows.iter().find(|r| r["wa_id"] == sent.id.as_str()).expect("the stored message");
    (row["id"].as_i64().unwrap(), sent.id)
}

/// Polls `GET /api/user/messages/{id}` until `check` holds; returns the message.
async fn wait_message(app: &TestApp, tenant: &TestTenant, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    poll_until(STEP, || async {
        let (status, body) = app.get(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check(&body).then_some(body)
    })
    .await
}

fn media_of(content: &Content) -> &MediaRef {
    match content {
        Content::Media(m) => m,
        other => panic!("not a media message: {other:?}"),
    }
}

/// The key of the message a reaction, edit or deletion names.
fn key_in(message: &wa::Message) -> wa::MessageKey {
    let key = match (message.reaction_message.as_option(), message.protocol_message.as_option()) {
        (Some(r), _) => &r.key,
        (_, Some(p)) => &p.key,
        _ => panic!("no key in {message:?}"),
    };
    key.as_option().expect("a key").clone()
}

/// A text with `send-message`'s `reply_to` naming a contact's message (by the gateway's id):
/// the contact decrypts an extended text quoting that message's id, author and text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_quotes_the_contacts_message() {
    let phone = "6281381830901";
    let (fake, app, tenant, device) = setup(phone).await;
    let question = wa::Message { conversation: Some("jam berapa buka?".into()), ..Default::default() };
    let (id, wa_id) = contact_sent(&app, &tenant, &fake, phone, device, question, 1).await;

    let t = Instant::now();
    let body = json!({ "device": device, "to": CONTACT, "text": "Jam 8 pagi", "reply_to": id });
    let answer = post_ok(&app, &tenant, "/api/send-message", body).await;
    let got = nth_received(&fake, 1).await;
    report("send-message with reply_to → quoted reply decrypted", t);
    assert_eq!(got.content, Content::Text("Jam 8 pagi".into()));
    assert_eq!(got.id, answer["wa_id"].as_str().unwrap());
    let ext = got.message.extended_text_message.as_option().expect("an extended text");
    let context = ext.context_info.as_option().expect("a context");
    assert_eq!(context.stanza_id.as_deref(), Some(wa_id.as_str()));
    assert_eq!(context.participant.as_deref(), Some(contact_jid().as_str()));
    let quoted = context.quoted_message.as_option().and_then(|q| q.conversation.as_deref());
    assert_eq!(quoted, Some("jam berapa buka?"));
}

/// `POST /api/user/messages/{id}/reaction` on a sent message: the contact decrypts a reaction
/// keyed to that message (sent by the device, in the contact's chat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_names_the_message_it_reacts_to() {
    let phone = "6281381830902";
    let (fake, app, tenant, device) = setup(phone).await;
    let (id, wa_id) = sent_text(&app, &tenant, &fake, device, "Pesanan diterima", 1).await;

    let t = Instant::now();
    let answer =
        post_ok(&app, &tenant, &format!("/api/user/messages/{id}/reaction"), json!({ "emoji": "👍" })).await;
    let got = nth_received(&fake, 2).await;
    report("reaction → decrypted by the contact", t);
    assert_eq!(got.content, Content::Reaction { target: wa_id.clone(), emoji: "👍".into() });
    let key = key_in(&got.message);
    assert_eq!((key.remote_jid, key.from_me, key.participant), (Some(contact_jid()), Some(true), None));
    assert_eq!(answer["reactions"][0]["from"], "me", "{answer}");
}

/// `POST /api/send-location`: the contact decrypts a location message with the point, name
/// and address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_reaches_the_contact() {
    let phone = "6281381830903";
    let (fake, app, tenant, device) = setup(phone).await;
    let body = json!({ "device": device, "to": CONTACT, "latitude": -6.175392, "longitude": 106.827153,
                       "name": "Monas", "address": "Gambir, Jakarta Pusat" });
    let answer = post_ok(&app, &tenant, "/api/send-location", body).await;
    let got = nth_received(&fake, 1).await;
    assert_eq!(
        got.content,
        Content::Location {
            latitude: -6.175392,
            longitude: 106.827153,
            name: Some("Monas".into()),
            address: Some("Gambir, Jakarta Pusat".into())
        }
    );
    assert_eq!(got.id, answer["wa_id"].as_str().unwrap());
}

/// `POST /api/send-contact`: the contact decrypts a contact card whose vCard carries the
/// number as a WhatsApp id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_card_reaches_the_contact() {
    let phone = "6281381830904";
    let (fake, app, tenant, device) = setup(phone).await;
    let body = json!({ "device": device, "to": CONTACT, "contacts": [{ "name": "Toko Budi", "phone": "6281234567890" }] });
    post_ok(&app, &tenant, "/api/send-contact", body).await;
    let got = nth_received(&fake, 1).await;
    let Content::Contacts(cards) = &got.content else { panic!("not a contact card: {:?}", got.content) };
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].0.as_deref(), Some("Toko Budi"));
    assert!(
        cards[0].1.contains("FN:Toko Budi") && cards[0].1.contains("waid=6281234567890:+6281234567890"),
        "{cards:?}"
    );
}

/// `PATCH /api/user/messages/{id}`: the contact decrypts an edit of that message with the new
/// text; the message keeps the old text in `previous_texts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_the_contact() {
    let phone = "6281381830905";
    let (fake, app, tenant, device) = setup(phone).await;
    let (id, wa_id) = sent_text(&app, &tenant, &fake, device, "Harga 10rb", 1).await;

    let (status, answer) = app
        .patch(&format!("/api/user/messages/{id}"), &tenant.api_key, &json!({ "text": "Harga 12rb" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = nth_received(&fake, 2).await;
    assert_eq!(got.content, Content::Edit { target: wa_id, text: "Harga 12rb".into() });
    assert_ne!(got.id, answer["wa_id"].as_str().unwrap(), "an edit goes under an id of its own");
    assert_eq!(
        (answer["text"].as_str(), &answer["previous_texts"]),
        (Some("Harga 12rb"), &json!(["Harga 10rb"]))
    );
}

/// `DELETE /api/user/messages/{id}`: the contact decrypts the deletion of that message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_reaches_the_contact() {
    let phone = "6281381830906";
    let (fake, app, tenant, device) = setup(phone).await;
    let (id, wa_id) = sent_text(&app, &tenant, &fake, device, "salah kirim", 1).await;

    let (status, answer) = app.delete(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = nth_received(&fake, 2).await;
    assert_eq!(got.content, Content::Revoke { target: wa_id });
    assert_eq!(key_in(&got.message).from_me, Some(true));
    assert!(answer["revoked_at"].is_string(), "{answer}");
}

/// `send-media` type `voice` with an OGG/Opus file: the contact decrypts a push-to-talk audio
/// message and opens the original bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_is_push_to_talk_audio() {
    let phone = "6281381830907";
    let (fake, app, tenant, device) = setup(phone).await;
    let mut ogg = b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0".to_vec();
    ogg.extend(std::iter::repeat_n(0x5a, 300));
    let body = json!({ "device": device, "to": CONTACT, "type": "voice", "base64": b64(&ogg) });
    post_ok(&app, &tenant, "/api/send-media", body).await;
    let got = nth_received(&fake, 1).await;
    let voice = media_of(&got.content);
    assert_eq!((voice.kind, voice.mimetype.as_deref()), ("voice", Some("audio/ogg; codecs=opus")));
    assert_eq!(got.message.audio_message.as_option().and_then(|a| a.ptt), Some(true));
    assert_eq!(fake.open_media(voice).expect("the upload opens"), ogg);
}

/// `send-media` type `sticker` with a WebP image: the contact decrypts a sticker message and
/// opens the original bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webp_sticker_is_a_sticker_message() {
    let phone = "6281381830908";
    let (fake, app, tenant, device) = setup(phone).await;
    let picture = image::RgbaImage::from_pixel(16, 16, image::Rgba([0x25, 0xd3, 0x66, 0xff]));
    let mut webp = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut webp, image::ImageFormat::WebP).expect("WebP encodes");
    let webp = webp.into_inner();
    let body = json!({ "device": device, "to": CONTACT, "type": "sticker", "base64": b64(&webp) });
    post_ok(&app, &tenant, "/api/send-media", body).await;
    let got = nth_received(&fake, 1).await;
    let sticker = media_of(&got.content);
    assert_eq!((sticker.kind, sticker.mimetype.as_deref()), ("sticker", Some("image/webp")));
    assert_eq!(fake.open_media(sticker).expect("the upload opens"), webp);
}

/// `POST /api/user/messages/{id}/read` on a contact's message: the client sends WhatsApp a read
/// receipt for that message in the contact's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_mark_is_a_read_receipt() {
    let phone = "6281381830909";
    let (fake, app, tenant, device) = setup(phone).await;
    let hello = wa::Message { conversation: Some("halo".into()), ..Default::default() };
    let (id, wa_id) = contact_sent(&app, &tenant, &fake, phone, device, hello, 1).await;

    let t = Instant::now();
    let answer = post_ok(&app, &tenant, &format!("/api/user/messages/{id}/read"), json!({})).await;
    let receipt = fake.wait_receipt_sent(phone, "read", &wa_id, STEP).await.expect("a read receipt");
    report("read → read receipt at the fake", t);
    assert_eq!((receipt.to.as_str(), receipt.participant), (contact_jid().as_str(), None));
    assert!(answer["read_at"].is_string(), "{answer}");
}

/// `POST /api/user/devices/{id}/presence` with `typing` and then `paused`: the client sends
/// the chat states to the contact's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_a_chat_state_in_the_chat() {
    let phone = "6281381830910";
    let (fake, app, tenant, device) = setup(phone).await;
    let path = format!("/api/user/devices/{device}/presence");
    post_ok(&app, &tenant, &path, json!({ "chat": CONTACT, "state": "typing" })).await;
    fake.wait_chat_state(phone, &contact_jid(), "composing", STEP).await.expect("typing shown");
    post_ok(&app, &tenant, &path, json!({ "chat": CONTACT, "state": "paused" })).await;
    fake.wait_chat_state(phone, &contact_jid(), "paused", STEP).await.expect("typing stopped");
    let (status, body) = app.post(&path, &tenant.api_key, &json!({ "state": "recording" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a chat state needs a chat: {body}");
}

/// A contact shares a location: the message is stored as a `location` with its point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_location_is_stored_with_its_point() {
    let phone = "6281381830911";
    let (fake, app, tenant, device) = setup(phone).await;
    let location = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(-7.797068),
            degrees_longitude: Some(110.370529),
            name: Some("Malioboro".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (id, _) = contact_sent(&app, &tenant, &fake, phone, device, location, 1).await;
    let message = wait_message(&app, &tenant, id, |m| m["type"] == "location").await;
    assert_eq!(
        message["location"],
        json!({ "latitude": -7.797068, "longitude": 110.370529, "name": "Malioboro" })
    );
}

/// The contact reacts to a message the device sent: the reaction shows on that message, from
/// the contact's number; taking it back removes it. No message of its own is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_reaction_shows_on_the_sent_message() {
    let phone = "6281381830912";
    let (fake, app, tenant, device) = setup(phone).await;
    let (id, wa_id) = sent_text(&app, &tenant, &fake, device, "Sudah transfer?", 1).await;

    let reaction = |emoji: &str| wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: MessageField::some(wa::MessageKey {
                remote_jid: Some(format!("{phone}@s.whatsapp.net")),
                from_me: Some(false),
                id: Some(wa_id.clone()),
                participant: None,
            }),
            text: Some(emoji.to_string()),
            sender_timestamp_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(reaction("🙏"))).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("taken");
    let message =
        wait_message(&app, &tenant, id, |m| m["reactions"].as_array().is_some_and(|r| !r.is_empty())).await;
    report("contact's reaction → on the sent message", t);
    assert_eq!(
        (&message["reactions"][0]["from"], &message["reactions"][0]["emoji"]),
        (&json!(CONTACT), &json!("🙏"))
    );

    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(reaction(""))).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("taken");
    wait_message(&app, &tenant, id, |m| {
        m.get("reactions").is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
    })
    .await;
    let rows = super::inbound::history(&app, &tenant, &format!("direction=in&device={device}")).await;
    assert!(rows.is_empty(), "reactions are not messages: {rows:?}");
}

/// The contact edits its message, then deletes it: the stored message gets the new text (the
/// old one in `previous_texts`), then `revoked_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_edit_and_deletion_change_its_message() {
    let phone = "6281381830913";
    let (fake, app, tenant, device) = setup(phone).await;
    let first = wa::Message { conversation: Some("pesan 2 kotak".into()), ..Default::default() };
    let (id, wa_id) = contact_sent(&app, &tenant, &fake, phone, device, first, 1).await;

    let change = |kind, edited: Option<&str>| wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(wa::MessageKey {
                remote_jid: Some(format!("{phone}@s.whatsapp.net")),
                from_me: Some(true),
                id: Some(wa_id.clone()),
                participant: None,
            }),
            r#type: Some(kind),
            edited_message: edited
                .map(|t| {
                    MessageField::some(wa::Message { conversation: Some(t.into()), ..Default::default() })
                })
                .unwrap_or_default(),
            timestamp_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..Default::default()
        }),
        ..Default::default()
    };
    use wa::message::protocol_message::Type;
    let t = Instant::now();
    let edit = change(Type::MESSAGE_EDIT, Some("pesan 3 kotak"));
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(edit)).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("taken");
    let message = wait_message(&app, &tenant, id, |m| m["text"] == "pesan 3 kotak").await;
    report("contact's edit → the stored message", t);
    assert_eq!(message["previous_texts"], json!(["pesan 2 kotak"]));
    assert!(message["edited_at"].is_string(), "{message}");

    let sent =
        fake.contact_sends(phone, CONTACT, ContactMessage::of(change(Type::REVOKE, None))).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("taken");
    wait_message(&app, &tenant, id, |m| m["revoked_at"].is_string()).await;
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    assert_eq!(rows.len(), 1, "edits and deletions are not messages: {rows:?}");
}

/// `POST /api/send-poll`, then the contact votes (encrypted with the poll's secret, as phones
/// do): the client opens the vote and the poll counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_vote_is_counted_on_the_sent_poll() {
    use whatsapp_rust::wacore::poll::{compute_option_hash, encrypt_poll_vote_with_secret};
    let phone = "6281381830914";
    let (fake, app, tenant, device) = setup(phone).await;
    let body =
        json!({ "device": device, "to": CONTACT, "question": "Kirim kapan?", "options": ["Pagi", "Sore"] });
    let answer = post_ok(&app, &tenant, "/api/send-poll", body).await;
    let (id, poll_id) = (answer["id"].as_i64().unwrap(), answer["wa_id"].as_str().unwrap().to_string());
    let got = nth_received(&fake, 1).await;
    assert_eq!(
        got.content,
        Content::Poll {
            question: "Kirim kapan?".into(),
            options: vec!["Pagi".into(), "Sore".into()],
            selectable: 1
        }
    );
    let secret = got.message.message_context_info.as_option().and_then(|c| c.message_secret.clone());
    let secret = secret.expect("the poll carries its secret");

    let account = format!("{phone}@s.whatsapp.net");
    let chosen = vec![compute_option_hash("Sore").to_vec()];
    let (payload, iv) =
        encrypt_poll_vote_with_secret(&chosen, &secret, &poll_id, &account, &contact_jid()).unwrap();
    let vote = wa::Message {
        poll_update_message: MessageField::some(wa::message::PollUpdateMessage {
            poll_creation_message_key: MessageField::some(wa::MessageKey {
                remote_jid: Some(account),
                from_me: Some(false),
                id: Some(poll_id),
                participant: None,
            }),
            vote: MessageField::some(wa::message::PollEncValue {
                enc_payload: Some(payload),
                enc_iv: Some(iv.to_vec()),
            }),
            sender_timestamp_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(vote)).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("taken");
    let message = wait_message(&app, &tenant, id, |m| m["poll"]["options"][1]["votes"] == 1).await;
    assert_eq!(message["poll"]["options"][0]["votes"], 0, "{message}");
}
