//! LIDs (WhatsApp's account ids that hide the phone number): messages from a LID sender, the
//! mapping to a number learned later, the history rewritten to it, the `contact.resolved`
//! event and the lookup endpoints.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::Receiver;

const SHOP: &str = "6281100000081";
const CONTACT: &str = "6281299990081";
const LID: &str = "123456789012345@lid";

/// A contact writes from a LID whose number the device does not know: the history shows the
/// LID as sender and chat. Then WhatsApp tells the number: the stored message moves to it,
/// the lookups answer, `contact.resolved` reaches the webhook, and filtering the history by
/// the LID finds the message under the number.
#[tokio::test]
async fn a_lid_sender_gets_its_number_when_the_mapping_arrives_later() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["contact.resolved"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = app
        .admin_post("/api/admin/simulator/inbound", &json!({"device": device, "from_lid": LID, "text": "hi"}))
        .await;
    assert_eq!(status, StatusCode::OK, "a LID sender without a number: {body}");
    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    assert_eq!(history["total"], 1, "{history}");
    let message = &history["data"][0];
    assert_eq!(message["from"], LID, "no number known: the LID is the sender: {message}");
    assert_eq!(message["sender_lid"], LID);
    assert_eq!(message["chat"], LID);
    let id = message["id"].as_i64().unwrap();

    let (status, _) = app.get(&format!("/api/user/devices/{device}/lids/{LID}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not learned yet");
    let (_, by_lid) = app.get(&format!("/api/user/chat-history?chat={LID}"), &tenant.api_key).await;
    assert_eq!(by_lid["total"], 1, "the LID's chat before the number is known: {by_lid}");
    let (_, by_sender) = app.get(&format!("/api/user/chat-history?sender={LID}"), &tenant.api_key).await;
    assert_eq!(by_sender["total"], 1, "the LID as sender before the number is known: {by_sender}");

    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": device, "lid": LID, "phone": CONTACT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lid"], LID);

    let (_, message) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
    assert_eq!(message["from"], CONTACT, "the stored message now has the number: {message}");
    assert_eq!(message["sender_lid"], LID);
    assert_eq!(message["chat"], format!("{CONTACT}@s.whatsapp.net"));

    let (status, mapping) = app.get(&format!("/api/user/devices/{device}/lids/{LID}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    assert_eq!(mapping["phone"], CONTACT);
    assert_eq!(mapping["lid"], LID);
    assert_eq!(mapping["device_id"], device);
    // The digits alone name the same LID.
    let (status, mapping) =
        app.get(&format!("/api/user/devices/{device}/lids/123456789012345"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mapping["phone"], CONTACT);
    let (status, lids) =
        app.get(&format!("/api/user/devices/{device}/lids?phone=%2B{CONTACT}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{lids}");
    assert_eq!(lids["data"].as_array().unwrap().len(), 1, "{lids}");
    assert_eq!(lids["data"][0]["lid"], LID);

    let got = receiver.wait_for(1, WAIT).await;
    let event = got[0].json();
    assert_eq!(event["type"], "contact.resolved", "{event}");
    assert_eq!(event["data"]["device_id"], device);
    assert_eq!(event["data"]["device"], SHOP);
    assert_eq!(event["data"]["lid"], LID);
    assert_eq!(event["data"]["phone"], CONTACT);

    // The history filter takes the LID and finds the message under the number.
    let (status, by_lid) = app.get(&format!("/api/user/chat-history?chat={LID}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{by_lid}");
    assert_eq!(by_lid["total"], 1, "{by_lid}");
    assert_eq!(by_lid["data"][0]["id"], id);
    let (_, by_lid) =
        app.get(&format!("/api/user/chat-history?chat={LID}&device={device}"), &tenant.api_key).await;
    assert_eq!(by_lid["total"], 1, "{by_lid}");
    for sender in [LID.to_string(), CONTACT.to_string(), format!("%2B{CONTACT}")] {
        let (status, by_sender) =
            app.get(&format!("/api/user/chat-history?sender={sender}"), &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "{by_sender}");
        assert_eq!(by_sender["total"], 1, "sender {sender}: {by_sender}");
        assert_eq!(by_sender["data"][0]["id"], id);
    }
    let (status, body) =
        app.get("/api/user/chat-history?sender=120363012345678901@g.us", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The same mapping again is nothing new: no second event. A later message from the LID
    // is stored under the number at once.
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": device, "lid": LID, "phone": CONTACT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from_lid": LID, "text": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, history) = app.get(&format!("/api/user/chat-history?chat={LID}"), &tenant.api_key).await;
    assert_eq!(history["total"], 2, "{history}");
    assert_eq!(history["data"][0]["text"], "again");
    assert_eq!(history["data"][0]["from"], CONTACT);
    assert_eq!(history["data"][0]["sender_lid"], LID);
    app.wait_idle().await;
    assert_eq!(receiver.requests().len(), 1, "one contact.resolved for one mapping");
}

/// A message that carries both the LID and the number is stored under the number, and teaches
/// the mapping (with its event), which earlier messages from the LID then get too.
#[tokio::test]
async fn a_lid_sender_with_its_number_is_stored_by_number_and_teaches_the_mapping() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["contact.resolved"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from_lid": LID, "text": "first"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from_lid": LID, "from": CONTACT, "text": "second"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, history) = app.get("/api/user/chat-history?direction=in", &tenant.api_key).await;
    assert_eq!(history["total"], 2, "{history}");
    for message in history["data"].as_array().unwrap() {
        assert_eq!(message["from"], CONTACT, "both under the number: {message}");
        assert_eq!(message["sender_lid"], LID);
        assert_eq!(message["chat"], format!("{CONTACT}@s.whatsapp.net"));
    }
    let (status, mapping) = app.get(&format!("/api/user/devices/{device}/lids/{LID}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    assert_eq!(mapping["phone"], CONTACT);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["type"], "contact.resolved");
    assert_eq!(got[0].json()["data"]["phone"], CONTACT);

    // A message from a number alone says nothing about LIDs.
    app.inbound(device, "6281299990082", "plain", None).await;
    let (_, lids) =
        app.get(&format!("/api/user/devices/{device}/lids?phone=6281299990082"), &tenant.api_key).await;
    assert_eq!(lids["data"], json!([]), "{lids}");
}

#[tokio::test]
async fn another_tenants_device_is_not_found_on_the_lid_endpoints() {
    let app = TestApp::spawn().await;
    let owner = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let device = app.pair_device(&owner, SHOP).await;
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": device, "lid": LID, "phone": CONTACT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/api/user/devices/{device}/lids/{LID}"), &owner.api_key).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get(&format!("/api/user/devices/{device}/lids/{LID}"), &other.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) =
        app.get(&format!("/api/user/devices/{device}/lids?phone={CONTACT}"), &other.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // The other tenant's history filter by the LID finds nothing of the owner's.
    let (_, history) = app.get(&format!("/api/user/chat-history?chat={LID}"), &other.api_key).await;
    assert_eq!(history["total"], 0, "{history}");

    let (status, body) = app.get(&format!("/api/user/devices/{device}/lids/not-a-lid"), &owner.api_key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Another LID, mentioned next to the first one.
const OTHER_LID: &str = "987654321098765@lid";
const GROUP: &str = "120363012345678981@g.us";

/// A group member mentions two LIDs and a number, and quotes a message a LID wrote.
async fn mention_and_quote(app: &TestApp, device: i64, id: &str) {
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({
                "device": device, "from": CONTACT_2, "group": GROUP, "id": id,
                "text": "@budi @sari lihat ini",
                "mentions": [LID, OTHER_LID, CONTACT_2],
                "reply_to": "QUOTED0001", "reply_to_from": LID,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The stored message of the device with WhatsApp id `wa_id`, as the history shows it.
async fn stored(app: &TestApp, tenant: &TestTenant, device: i64, wa_id: &str) -> Value {
    for offset in (0..1000).step_by(100) {
        let path = format!("/api/user/chat-history?device={device}&chat={GROUP}&limit=100&offset={offset}");
        let (status, history) = app.get(&path, &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let page = history["data"].as_array().unwrap();
        if let Some(found) = page.iter().find(|m| m["wa_id"] == wa_id) {
            return found.clone();
        }
        if page.is_empty() {
            break;
        }
    }
    panic!("{wa_id} is not stored on device {device}")
}

const CONTACT_2: &str = "6281299990083";

/// With the LID's number known, an arriving message that mentions the LID and quotes a message
/// it wrote is stored, and reported to webhooks, with the number; a LID whose number is not
/// known stays as it is.
#[tokio::test]
async fn mentions_and_a_quoted_author_by_a_known_lid_are_stored_as_the_number() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["message.received"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": device, "lid": LID, "phone": CONTACT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    mention_and_quote(&app, device, "MENTION0001").await;
    let message = stored(&app, &tenant, device, "MENTION0001").await;
    assert_eq!(message["mentions"], json!([CONTACT, OTHER_LID, CONTACT_2]), "{message}");
    assert_eq!(message["reply_to"]["sender"], CONTACT, "{message}");
    assert_eq!(message["reply_to"]["from_me"], false);
    assert_eq!(message["from"], CONTACT_2);

    let got = receiver.wait_for(1, WAIT).await;
    let event = got[0].json();
    assert_eq!(event["type"], "message.received", "{event}");
    assert_eq!(event["data"]["mentions"], json!([CONTACT, OTHER_LID, CONTACT_2]), "{event}");
    assert_eq!(event["data"]["reply_to"]["sender"], CONTACT, "{event}");
}

/// Messages stored while the LID's number was unknown get it once the mapping arrives: their
/// mentions and quoted authors show the number, also past the first page of candidates. The
/// same messages on another device, which did not learn the mapping, keep the LID.
#[tokio::test]
async fn mentions_and_quoted_authors_stored_by_lid_get_the_number_when_the_mapping_arrives() {
    /// More than the rewrite takes per query.
    const MESSAGES: usize = 210;
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"devices": 2})).await;
    let device = app.pair_device(&tenant, SHOP).await;
    let other = app.pair_device(&tenant, "6281100000082").await;
    for n in 0..MESSAGES {
        mention_and_quote(&app, device, &format!("MENTION{n:04}")).await;
    }
    mention_and_quote(&app, other, "MENTION0000").await;
    // A message that names the LID only in its text is not changed.
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": CONTACT_2, "group": GROUP, "id": "TEXTONLY01",
                    "text": format!("\"{LID}\""), "mentions": [OTHER_LID]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = stored(&app, &tenant, device, "MENTION0000").await;
    assert_eq!(before["mentions"], json!([LID, OTHER_LID, CONTACT_2]), "no number known yet: {before}");
    assert_eq!(before["reply_to"]["sender"], LID);

    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": device, "lid": LID, "phone": CONTACT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for n in [0, MESSAGES / 2, MESSAGES - 1] {
        let message = stored(&app, &tenant, device, &format!("MENTION{n:04}")).await;
        assert_eq!(message["mentions"], json!([CONTACT, OTHER_LID, CONTACT_2]), "{message}");
        assert_eq!(message["reply_to"]["sender"], CONTACT, "{message}");
        assert_eq!(message["reply_to"]["wa_id"], "QUOTED0001");
    }
    let still = app
        .query_i64(&format!(
            "SELECT COUNT(*) FROM messages WHERE device_id = {device} AND details LIKE '%\"{LID}\"%'"
        ))
        .await;
    assert_eq!(still, 0, "every message of the device has the number");
    let untouched = stored(&app, &tenant, device, "TEXTONLY01").await;
    assert_eq!(untouched["text"], format!("\"{LID}\""));
    assert_eq!(untouched["mentions"], json!([OTHER_LID]));

    let theirs = stored(&app, &tenant, other, "MENTION0000").await;
    assert_eq!(theirs["mentions"], json!([LID, OTHER_LID, CONTACT_2]), "another device: {theirs}");
    assert_eq!(theirs["reply_to"]["sender"], LID);
}

/// A contact known by its LID reacts to a message the shop sent to its number, and votes on a
/// poll sent there: both count as the number's, in the number's chat, so a later vote from the
/// number replaces the one made through the LID.
#[tokio::test]
async fn a_reaction_and_a_poll_vote_from_a_known_lid_count_as_the_number() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let mapping = json!({"device": device, "lid": LID, "phone": CONTACT});
    assert_eq!(app.admin_post("/api/admin/simulator/lid-mapping", &mapping).await.0, StatusCode::OK);
    let send = |path: &'static str, body: Value| {
        let (app, tenant) = (&app, &tenant);
        async move {
            let mut body = body;
            body["device"] = json!(device);
            body["to"] = json!(CONTACT);
            let (status, sent) = app.post(path, &tenant.api_key, &body).await;
            assert_eq!(status, StatusCode::OK, "{sent}");
            sent
        }
    };
    let text = send("/api/send-message", json!({"text": "Pesanan sudah dikirim"})).await;
    let poll = send("/api/send-poll", json!({"question": "Jam kirim?", "options": ["Pagi", "Sore"]})).await;
    let inbound = |body: Value| {
        let app = &app;
        async move {
            let mut body = body;
            body["device"] = json!(device);
            let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    inbound(json!({"from_lid": LID, "reaction": {"message": text["wa_id"], "emoji": "👍"}})).await;
    inbound(json!({"from_lid": LID, "poll_vote": {"message": poll["wa_id"], "options": ["Pagi"]}})).await;
    // The same person by number changes the vote: one vote, now for Sore.
    inbound(json!({"from": CONTACT, "poll_vote": {"message": poll["wa_id"], "options": ["Sore"]}})).await;

    let message = |id: &Value| {
        let (app, tenant, id) = (&app, &tenant, id.clone());
        async move { app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await.1 }
    };
    let reacted = crate::helpers::poll_until(WAIT, || async {
        let m = message(&text["id"]).await;
        m["reactions"].as_array().is_some_and(|r| !r.is_empty()).then_some(m)
    })
    .await;
    let reaction = &reacted["reactions"][0];
    assert_eq!((&reaction["from"], &reaction["emoji"]), (&json!(CONTACT), &json!("👍")), "{reacted}");
    let voted = crate::helpers::poll_until(WAIT, || async {
        let m = message(&poll["id"]).await;
        (m["poll"]["options"][1]["votes"] == 1).then_some(m)
    })
    .await;
    assert_eq!(voted["poll"]["options"][0]["votes"], 0, "the LID's vote was the number's: {voted}");
}
