//! Every kind of message on the simulator: quoted replies, reactions, edits, deletes,
//! locations, contact cards, polls and votes, voice notes and stickers, read marks, presence
//! and forwards, as a tenant sees them in history, the outbox and its webhooks; bad input;
//! isolation between tenants.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::{Receiver, PNG};

const DEVICE: &str = "6281381830651";
const CUSTOMER: &str = "6281234567890";
const OTHER: &str = "6281298765432";

/// A real 2 × 2 PNG (what a shop's sticker could start as).
fn png() -> Vec<u8> {
    let picture = image::RgbaImage::from_pixel(2, 2, image::Rgba([200, 30, 30, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).expect("a PNG");
    out.into_inner()
}

/// The smallest OGG page that says it carries Opus: what a voice note starts with.
fn ogg_opus() -> Vec<u8> {
    let mut bytes = b"OggS\x00\x02".to_vec();
    bytes.extend_from_slice(&[0u8; 20]);
    bytes.extend_from_slice(b"\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00");
    bytes
}

async fn setup(app: &TestApp) -> (TestTenant, i64) {
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    (tenant, device)
}

/// A simulated inbound message of any kind; returns its WhatsApp id.
async fn inbound(app: &TestApp, device: i64, body: Value) -> String {
    let mut body = body;
    body["device"] = json!(device);
    if body.get("from").is_none() {
        body["from"] = json!(CUSTOMER);
    }
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "simulator inbound: {answer}");
    answer["id"].as_str().expect("a WhatsApp id").to_string()
}

/// The stored message with WhatsApp id `wa_id`.
async fn by_wa_id(app: &TestApp, tenant: &TestTenant, wa_id: &str) -> Value {
    let wa_id = wa_id.to_string();
    poll_until(WAIT, || async {
        let (_, page) = app.get("/api/user/chat-history?limit=100", &tenant.api_key).await;
        page["data"].as_array().and_then(|rows| rows.iter().find(|r| r["wa_id"] == wa_id.as_str()).cloned())
    })
    .await
}

async fn message(app: &TestApp, tenant: &TestTenant, id: &Value) -> Value {
    let (status, body) = app.get(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until message `id` satisfies `check`; returns it.
async fn wait_message(
    app: &TestApp,
    tenant: &TestTenant,
    id: &Value,
    check: impl Fn(&Value) -> bool,
) -> Value {
    poll_until(WAIT, || async {
        let m = message(app, tenant, id).await;
        check(&m).then_some(m)
    })
    .await
}

fn send_body(extra: Value) -> Value {
    let mut body = json!({"device": DEVICE, "to": CUSTOMER});
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body
}

async fn send(app: &TestApp, tenant: &TestTenant, path: &str, extra: Value) -> Value {
    let (status, body) = app.post(path, &tenant.api_key, &send_body(extra)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

#[tokio::test]
async fn a_customers_image_is_stored_and_answered_with_a_quote_a_reaction_and_a_read_mark() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let image = STANDARD.encode(PNG);
    let wa = inbound(
        &app,
        device,
        json!({"media": {"kind": "image", "mime": "image/png", "base64": image, "caption": "bukti transfer"}}),
    )
    .await;
    let stored = by_wa_id(&app, &tenant, &wa).await;
    assert_eq!(stored["type"], "image", "{stored}");
    assert_eq!(stored["text"], "bukti transfer");
    assert_eq!(stored["media"]["mime"], "image/png");
    assert_eq!(stored["media"]["size"], PNG.len());

    let reply =
        send(&app, &tenant, "/api/send-message", json!({"text": "Terima kasih", "reply_to": stored["id"]}))
            .await;
    assert_eq!(reply["reply_to"]["id"], stored["id"], "{reply}");
    assert_eq!(reply["reply_to"]["wa_id"], wa.as_str());
    assert_eq!(reply["reply_to"]["text"], "bukti transfer");
    let (status, reacted) = app
        .post(
            &format!("/api/user/messages/{}/reaction", stored["id"]),
            &tenant.api_key,
            &json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reacted}");
    assert_eq!(reacted["reactions"][0]["from"], "me");
    assert_eq!(reacted["reactions"][0]["emoji"], "👍");
    let (status, read) =
        app.post(&format!("/api/user/messages/{}/read", stored["id"]), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert!(read["read_at"].is_string(), "{read}");

    let outbox = app.outbox(device).await;
    let kinds: Vec<&str> = outbox.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "reaction", "read"], "{outbox:?}");
    assert_eq!(outbox[0]["reply_to"], wa.as_str());
    assert_eq!(outbox[1]["reaction"], json!({"message": wa, "emoji": "👍"}));
    assert_eq!(outbox[2]["read"], json!([wa]));
}

#[tokio::test]
async fn a_sent_text_is_edited_and_deleted_and_the_customers_reaction_reaches_the_webhook() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let (tenant, device) = setup(&app).await;
    let events = ["message.reaction", "message.edited", "message.revoked"];
    let (status, endpoint) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": receiver.url("/hook"), "events": events}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");

    let sent = send(&app, &tenant, "/api/send-message", json!({"text": "Harga 10.000"})).await;
    let id = &sent["id"];
    let wa = sent["wa_id"].as_str().expect("sent").to_string();
    inbound(&app, device, json!({"reaction": {"message": wa, "emoji": "❤️"}})).await;
    let reacted =
        wait_message(&app, &tenant, id, |m| m["reactions"].as_array().is_some_and(|r| !r.is_empty())).await;
    assert_eq!(reacted["reactions"][0]["from"], CUSTOMER);

    let (status, edited) = app
        .patch(&format!("/api/user/messages/{id}"), &tenant.api_key, &json!({"text": "Harga 12.000"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["text"], "Harga 12.000");
    assert_eq!(edited["previous_texts"], json!(["Harga 10.000"]));
    assert!(edited["edited_at"].is_string());
    let (status, deleted) = app.delete(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted["revoked_at"].is_string(), "{deleted}");

    let outbox = app.outbox(device).await;
    assert_eq!(outbox[1]["edit"], json!({"message": wa, "text": "Harga 12.000"}));
    assert_eq!(outbox[2]["revoke"], json!({"message": wa}));

    let got = receiver.wait_for(3, WAIT).await;
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    let of = |t: &str| bodies.iter().find(|b| b["type"] == t).unwrap_or_else(|| panic!("no {t}: {bodies:?}"));
    assert_eq!(of("message.reaction")["data"]["change"], json!({"from": CUSTOMER, "emoji": "❤️"}));
    assert_eq!(of("message.reaction")["data"]["id"], *id);
    assert_eq!(of("message.edited")["data"]["change"]["previous"], "Harga 10.000");
    assert_eq!(of("message.revoked")["data"]["change"], json!({"from": "me"}));
    let (_, detail) = app.get(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
    let changes: Vec<&str> =
        detail["status_history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(changes, ["queued", "sent", "reaction", "edited", "revoked"], "{detail}");
}

#[tokio::test]
async fn location_contact_and_poll_are_sent_and_votes_are_counted() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let (tenant, device) = setup(&app).await;
    let (status, _) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["message.poll_vote"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let location = send(
        &app,
        &tenant,
        "/api/send-location",
        json!({"latitude": -6.2, "longitude": 106.816666, "name": "Toko Sinar", "address": "Jl. Merdeka 1"}),
    )
    .await;
    assert_eq!(location["type"], "location", "{location}");
    assert_eq!(location["location"]["latitude"], -6.2);
    let contact = send(
        &app,
        &tenant,
        "/api/send-contact",
        json!({"contacts": [{"name": "Budi", "phone": "0812-3456-7890"}]}),
    )
    .await;
    assert_eq!(contact["contacts"], json!([{"name": "Budi", "phone": "6281234567890"}]), "{contact}");
    let poll = send(
        &app,
        &tenant,
        "/api/send-poll",
        json!({"question": "Kapan kirim?", "options": ["Pagi", "Siang", "Sore"], "multiple": true}),
    )
    .await;
    assert_eq!(poll["type"], "poll");

    let outbox = app.outbox(device).await;
    assert_eq!(outbox[0]["location"]["name"], "Toko Sinar");
    assert_eq!(outbox[1]["contacts"][0]["phone"], "6281234567890");
    assert_eq!(outbox[2]["poll"]["options"], json!(["Pagi", "Siang", "Sore"]));

    let poll_wa = poll["wa_id"].as_str().unwrap();
    inbound(&app, device, json!({"poll_vote": {"message": poll_wa, "options": ["Pagi", "Sore"]}})).await;
    wait_message(&app, &tenant, &poll["id"], |m| m["poll"]["options"][0]["votes"] == 1).await;
    // Someone outside the chat cannot vote; the customer's new vote replaces the first.
    inbound(&app, device, json!({"from": OTHER, "poll_vote": {"message": poll_wa, "options": ["Siang"]}}))
        .await;
    inbound(&app, device, json!({"poll_vote": {"message": poll_wa, "options": ["Sore", "Malam"]}})).await;
    let counted = wait_message(&app, &tenant, &poll["id"], |m| m["poll"]["options"][0]["votes"] == 0).await;
    assert_eq!(
        counted["poll"]["options"],
        json!([{"name": "Pagi", "votes": 0}, {"name": "Siang", "votes": 0}, {"name": "Sore", "votes": 1}]),
        "an option the poll does not have is not counted"
    );
    // Deliveries may arrive in either order; each vote is one event.
    let got = receiver.wait_for(2, WAIT).await;
    let mut changes: Vec<Value> = got.iter().map(|r| r.json()["data"]["change"].clone()).collect();
    changes.sort_by_key(|c| c["options"].as_array().map_or(0, |o| o.len()));
    assert_eq!(
        changes,
        [
            json!({"from": CUSTOMER, "options": ["Sore"]}),
            json!({"from": CUSTOMER, "options": ["Pagi", "Sore"]})
        ]
    );
}

#[tokio::test]
async fn inbound_kinds_are_stored_with_their_fields_and_filtered_by_type() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let first = inbound(&app, device, json!({"text": "Kirim ke mana?"})).await;
    inbound(
        &app,
        device,
        json!({"location": {"latitude": -7.25, "longitude": 112.75, "name": "Rumah"}, "reply_to": first}),
    )
    .await;
    inbound(&app, device, json!({"contact": {"name": "Sari", "phone": "+6285712345678"}})).await;
    inbound(&app, device, json!({"poll": {"question": "Warna?", "options": ["Merah", "Biru"]}})).await;

    let (_, locations) = app.get("/api/user/chat-history?type=location", &tenant.api_key).await;
    assert_eq!(locations["total"], 1, "{locations}");
    let location = &locations["data"][0];
    assert_eq!(location["location"]["name"], "Rumah");
    assert_eq!(location["reply_to"]["wa_id"], first.as_str());
    assert!(location["reply_to"]["id"].is_i64(), "the quoted message is ours: {location}");
    let (_, contacts) = app.get("/api/user/chat-history?type=contact", &tenant.api_key).await;
    assert_eq!(contacts["data"][0]["contacts"][0]["phone"], "6285712345678");
    let (_, polls) = app.get("/api/user/chat-history?type=poll", &tenant.api_key).await;
    assert_eq!(polls["data"][0]["poll"]["question"], "Warna?");
    let (status, body) = app.get("/api/user/chat-history?type=hologram", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The customer edits and deletes their own message; another sender cannot.
    inbound(&app, device, json!({"from": OTHER, "edit": {"message": first, "text": "palsu"}})).await;
    inbound(&app, device, json!({"edit": {"message": first, "text": "Kirim ke Surabaya?"}})).await;
    let stored = by_wa_id(&app, &tenant, &first).await;
    let edited = wait_message(&app, &tenant, &stored["id"], |m| m["edited_at"].is_string()).await;
    assert_eq!(edited["text"], "Kirim ke Surabaya?");
    assert_eq!(edited["previous_texts"], json!(["Kirim ke mana?"]));
    inbound(&app, device, json!({"revoke": {"message": first}})).await;
    wait_message(&app, &tenant, &stored["id"], |m| m["revoked_at"].is_string()).await;
}

#[tokio::test]
async fn voice_notes_stickers_presence_typing_and_forwards_reach_the_outbox() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let voice = send(
        &app,
        &tenant,
        "/api/send-media",
        json!({"type": "voice", "base64": STANDARD.encode(ogg_opus())}),
    )
    .await;
    assert_eq!(voice["type"], "voice", "{voice}");
    let sticker =
        send(&app, &tenant, "/api/send-media", json!({"type": "sticker", "base64": STANDARD.encode(png())}))
            .await;
    assert_eq!(sticker["type"], "sticker", "{sticker}");
    assert_eq!(sticker["media"]["mime"], "image/webp", "PNG becomes WebP");

    let (status, body) = app
        .post(
            &format!("/api/user/devices/{device}/presence"),
            &tenant.api_key,
            &json!({"chat": CUSTOMER, "state": "recording"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let typed =
        send(&app, &tenant, "/api/send-message", json!({"text": "Sebentar ya", "typing_ms": 50})).await;
    let (status, forwarded) = app
        .post(&format!("/api/user/messages/{}/forward", typed["id"]), &tenant.api_key, &json!({"to": OTHER}))
        .await;
    assert_eq!(status, StatusCode::OK, "{forwarded}");
    assert_eq!(forwarded["forwarded"], true);

    let outbox = poll_until(WAIT, || async {
        let o = app.outbox(device).await;
        (o.len() >= 6).then_some(o)
    })
    .await;
    let kinds: Vec<&str> = outbox.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["voice", "sticker", "presence", "presence", "text", "text"], "{outbox:?}");
    assert_eq!(outbox[0]["media"]["mime"], "audio/ogg; codecs=opus");
    assert_eq!(outbox[2]["presence"], "recording");
    assert_eq!(outbox[3]["presence"], "typing", "typing shows before the message");
    assert_eq!(outbox[5]["to"], format!("{OTHER}@s.whatsapp.net"));
    assert_eq!(outbox[5]["forwarded"], true);

    // Media is forwarded from the bytes the media store kept.
    let (status, again) = app
        .post(&format!("/api/user/messages/{}/forward", voice["id"]), &tenant.api_key, &json!({"to": OTHER}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["type"], "voice");
    let outbox = app.outbox(device).await;
    let last = outbox.last().unwrap();
    assert_eq!((last["type"].as_str(), last["forwarded"].as_bool()), (Some("voice"), Some(true)), "{last}");
    assert_eq!(last["media"]["sha256"], outbox[0]["media"]["sha256"], "the same bytes");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let other = app.create_tenant("premium").await;
    app.pair_device(&other, "6281311112222").await;
    let theirs = app
        .post(
            "/api/send-message",
            &other.api_key,
            &json!({"device": "6281311112222", "to": CUSTOMER, "text": "x"}),
        )
        .await
        .1;
    let inbound_wa = inbound(&app, device, json!({"text": "halo"})).await;
    let received = by_wa_id(&app, &tenant, &inbound_wa).await;
    let ours = send(&app, &tenant, "/api/send-message", json!({"text": "hai"})).await;

    let cases: Vec<(&str, Value, &str)> = vec![
        ("/api/send-location", json!({"latitude": 91, "longitude": 0}), "latitude"),
        ("/api/send-location", json!({"latitude": 0, "longitude": 181.5}), "longitude"),
        ("/api/send-poll", json!({"question": "?", "options": ["a"]}), "options"),
        (
            "/api/send-poll",
            json!({"question": "?", "options": (0..13).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "options",
        ),
        ("/api/send-poll", json!({"question": "?", "options": ["a", "a"]}), "options[1]"),
        ("/api/send-contact", json!({"contacts": []}), "contacts"),
        ("/api/send-contact", json!({"contacts": [{"name": "x", "phone": "12"}]}), "contacts[0].phone"),
        ("/api/send-message", json!({"text": "x", "reply_to": theirs["id"]}), "reply_to"),
        ("/api/send-message", json!({"text": "x", "mentions": ["abc"]}), "mentions[0]"),
        ("/api/send-message", json!({"text": "x", "typing_ms": 60000}), "typing_ms"),
        ("/api/send-media", json!({"type": "voice", "base64": STANDARD.encode(PNG)}), "type"),
    ];
    for (path, extra, field) in cases {
        let (status, body) = app.post(path, &tenant.api_key, &send_body(extra.clone())).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], field, "{path} {extra}: {body}");
    }
    let on = |id: &Value, action: &str| format!("/api/user/messages/{id}/{action}");
    let (status, body) =
        app.post(&on(&ours["id"], "reaction"), &tenant.api_key, &json!({"emoji": "👍👍"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "emoji");
    let (status, body) = app
        .patch(&format!("/api/user/messages/{}", received["id"]), &tenant.api_key, &json!({"text": "ubah"}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, body) = app.post(&on(&ours["id"], "read"), &tenant.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, body) = app
        .post(&format!("/api/user/devices/{device}/presence"), &tenant.api_key, &json!({"state": "typing"}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "chat");
    // Too late to edit: the message is made 16 minutes old.
    app.execute_sql(&format!(
        "UPDATE messages SET created_at = created_at - 960000 WHERE id = {}",
        ours["id"]
    ))
    .await;
    let (status, body) = app
        .patch(&format!("/api/user/messages/{}", ours["id"]), &tenant.api_key, &json!({"text": "telat"}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn another_tenants_message_is_not_found_on_every_action() {
    let app = TestApp::spawn().await;
    let (tenant, _) = setup(&app).await;
    let other = app.create_tenant("premium").await;
    let ours = send(&app, &tenant, "/api/send-message", json!({"text": "rahasia"})).await;
    let id = &ours["id"];
    let requests = [
        app.request(Method::POST, &format!("/api/user/messages/{id}/reaction")).json(&json!({"emoji": "👍"})),
        app.request(Method::PATCH, &format!("/api/user/messages/{id}")).json(&json!({"text": "x"})),
        app.request(Method::DELETE, &format!("/api/user/messages/{id}")),
        app.request(Method::POST, &format!("/api/user/messages/{id}/read")).json(&json!({})),
        app.request(Method::POST, &format!("/api/user/messages/{id}/forward"))
            .json(&json!({"to": OTHER, "device": DEVICE})),
        app.request(Method::GET, &format!("/api/user/messages/{id}")),
    ];
    for request in requests {
        let (status, body) = app.send(request.header("x-api-key", &other.api_key)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let after = message(&app, &tenant, id).await;
    assert!(after["reactions"].is_null() && after["revoked_at"].is_null(), "{after}");
}
