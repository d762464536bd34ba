//! Every kind of message on the pages over plain HTTP: sending a location and a contact from
//! the send page, a poll with its votes, a reaction, an edit, a reply, a deletion and a read
//! mark on the message page in both languages, and the history's type filter and marks.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::agent::{tenant, Agent, Login, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

const DEVICE: &str = "6281381830777";
const CUSTOMER: &str = "6281234567890";
const OTHER: &str = "6281298765432";

fn api(t: &Login) -> TestTenant {
    TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() }
}

/// A page's text with the escapes the templates put in attribute and text values undone.
fn unescape(body: &str) -> String {
    body.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The history row of message `id`.
fn row(body: &str, id: &Value) -> String {
    let start = body.find(&format!("<tr data-id=\"{id}\">")).unwrap_or_else(|| panic!("no row {id}: {body}"));
    let end = body[start..].find("</tr>").expect("the row ends") + start;
    unescape(&body[start..end])
}

async fn logged_in<'a>(app: &'a TestApp, t: &Login, accept_language: &'static str) -> Agent<'a> {
    let mut agent = Agent::new(app);
    agent.accept_language = accept_language;
    assert_eq!(agent.login(&t.email, PASSWORD).await.status, StatusCode::SEE_OTHER);
    agent
}

/// A simulated inbound message of any kind from `from` (the customer unless given); returns
/// its WhatsApp id.
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

/// Sends through the API; returns the message.
async fn send(app: &TestApp, t: &Login, path: &str, body: Value) -> Value {
    let mut body = body;
    body["device"] = json!(DEVICE);
    body["to"] = json!(CUSTOMER);
    let (status, sent) = app.post(path, &t.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {sent}");
    sent
}

/// Waits until the API's view of message `id` satisfies `check`.
async fn wait_message(app: &TestApp, t: &Login, id: &Value, check: impl Fn(&Value) -> bool) -> Value {
    poll_until(WAIT, || async {
        let (status, m) = app.get(&format!("/api/user/messages/{id}"), &t.api_key).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        check(&m).then_some(m)
    })
    .await
}

/// The stored message with WhatsApp id `wa_id`.
async fn by_wa_id(app: &TestApp, t: &Login, wa_id: &str) -> Value {
    poll_until(WAIT, || async {
        let (_, page) = app.get("/api/user/chat-history?limit=100", &t.api_key).await;
        page["data"].as_array().and_then(|rows| rows.iter().find(|r| r["wa_id"] == wa_id).cloned())
    })
    .await
}

#[tokio::test]
async fn a_location_and_a_contact_sent_from_the_send_page_reach_whatsapp_and_show_on_their_pages() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), DEVICE).await;
    let d = device.to_string();
    let mut agent = logged_in(&app, &t, "en").await;
    let page = agent.get("/send").await;
    assert!(page.body.contains("Send a location") && page.body.contains("Send a contact"), "{}", page.body);

    let place = |latitude: &str| {
        [("device", d.as_str()), ("to", "081234567890"), ("latitude", latitude), ("longitude", "106.816666")]
            .into_iter()
            .chain([("name", "Toko Sinar"), ("address", "Jl. Merdeka 1")])
            .map(|(k, v)| (k, v.to_string()))
            .collect::<Vec<(&str, String)>>()
    };
    for (latitude, why) in [("91", "out of range"), ("utara", "not a number"), ("", "missing")] {
        let f = place(latitude);
        let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = agent.submit("/send", "/send/location", &fields).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {}", refused.body);
        let error = refused.body.find("id=\"form-error\"").expect("the error is shown");
        assert!(
            error > refused.body.find("action=\"/send/media\"").unwrap()
                && error < refused.body.find("action=\"/send/location\"").unwrap(),
            "{why}: the error is shown with the location form"
        );
        assert!(
            refused.body.contains("latitude: must be a number from -90 to 90"),
            "{why}: {}",
            refused.body
        );
        assert!(refused.body.contains("value=\"Toko Sinar\""), "{why}: what was typed stays");
    }
    assert!(app.outbox(device).await.is_empty(), "nothing was sent");

    let f = place("-6,2");
    let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = agent.submit("/send", "/send/location", &fields).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "a decimal comma is read as a point: {}", sent.body);
    assert!(sent.location().starts_with("/send?sent="), "{}", sent.location());
    let location_id = sent.location().trim_start_matches("/send?sent=").to_string();
    let outbox = app.outbox(device).await;
    assert_eq!(outbox[0]["location"]["latitude"], -6.2, "{outbox:?}");
    assert_eq!(outbox[0]["location"]["name"], "Toko Sinar");
    assert_eq!(outbox[0]["location"]["address"], "Jl. Merdeka 1");
    let detail = unescape(&agent.get(&format!("/history/{location_id}")).await.body);
    assert!(
        detail.contains(
            "href=\"https://maps.google.com/?q=-6.2,106.816666\" target=\"_blank\" rel=\"noopener noreferrer\""
        ),
        "{detail}"
    );
    assert!(
        detail.contains("📍 Location") && detail.contains("Toko Sinar") && detail.contains("Jl. Merdeka 1")
    );
    assert!(detail.contains("-6.2, 106.816666"), "the coordinates: {detail}");

    let refused = agent
        .submit(
            "/send",
            "/send/contact",
            &[("device", &d), ("to", CUSTOMER), ("contact_name", "Budi Santoso"), ("contact_phone", "12")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(
        refused.body.contains("Check the field Contact phone number:"),
        "the field is named as the form names it: {}",
        refused.body
    );
    assert!(
        refused.body.find("id=\"form-error\"").unwrap()
            > refused.body.find("action=\"/send/location\"").unwrap()
    );
    let sent = agent
        .submit(
            "/send",
            "/send/contact",
            &[
                ("device", &d),
                ("to", CUSTOMER),
                ("contact_name", "Budi Santoso"),
                ("contact_phone", "0812-3456-7890"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(agent.get(sent.location()).await.body.contains("The message was sent."));
    let contact_id = sent.location().trim_start_matches("/send?sent=").to_string();
    let outbox = app.outbox(device).await;
    assert_eq!(
        outbox[1]["contacts"],
        json!([{"name": "Budi Santoso", "phone": "6281234567890"}]),
        "{outbox:?}"
    );
    let detail = agent.get(&format!("/history/{contact_id}")).await.body;
    assert!(detail.contains("👤 Contact") && detail.contains("Budi Santoso"), "{detail}");
    assert!(detail.contains("+6281234567890"), "{detail}");

    let history = agent.get("/history").await.body;
    let location_row = row(&history, &json!(location_id.parse::<i64>().unwrap()));
    assert!(location_row.contains("data-kind=\"location\">📍 Location</span> Toko Sinar"), "{location_row}");
    let contact_row = row(&history, &json!(contact_id.parse::<i64>().unwrap()));
    assert!(contact_row.contains("👤 Contact</span> Budi Santoso"), "{contact_row}");
}

#[tokio::test]
async fn a_poll_a_reaction_an_edit_a_reply_and_a_deletion_show_on_the_message_page_in_both_languages() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), DEVICE).await;

    let poll = send(
        &app,
        &t,
        "/api/send-poll",
        json!({"question": "Kapan kirim?", "options": ["Pagi", "Siang", "Sore"], "multiple": true}),
    )
    .await;
    let poll_wa = poll["wa_id"].as_str().expect("sent").to_string();
    inbound(&app, device, json!({"poll_vote": {"message": poll_wa, "options": ["Pagi", "Sore"]}})).await;
    wait_message(&app, &t, &poll["id"], |m| m["poll"]["options"][0]["votes"] == 1).await;
    // The customer changes their mind: the latest vote counts.
    inbound(&app, device, json!({"poll_vote": {"message": poll_wa, "options": ["Sore"]}})).await;
    wait_message(&app, &t, &poll["id"], |m| m["poll"]["options"][0]["votes"] == 0).await;

    let text = send(&app, &t, "/api/send-message", json!({"text": "Harga 10.000"})).await;
    let id = &text["id"];
    let wa = text["wa_id"].as_str().expect("sent").to_string();
    inbound(&app, device, json!({"reaction": {"message": wa, "emoji": "❤️"}})).await;
    wait_message(&app, &t, id, |m| m["reactions"].as_array().is_some_and(|r| !r.is_empty())).await;
    let (status, edited) =
        app.patch(&format!("/api/user/messages/{id}"), &t.api_key, &json!({"text": "Harga 12.000"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let reply = send(
        &app,
        &t,
        "/api/send-message",
        json!({"text": "Terima kasih", "reply_to": id, "mentions": [OTHER]}),
    )
    .await;

    let mut en = logged_in(&app, &t, "en").await;
    let page = unescape(&en.get(&format!("/history/{}", poll["id"])).await.body);
    assert!(page.contains("📊 Poll") && page.contains("Kapan kirim?"), "{page}");
    assert!(page.contains("more than one choice allowed"), "{page}");
    for (option, votes) in [("Pagi", "0 votes"), ("Siang", "0 votes"), ("Sore", "1 vote")] {
        let shown = format!("<span class=\"option\">{option}</span> <span class=\"votes\">{votes}</span>");
        assert!(page.contains(&shown), "{shown}: {page}");
    }
    assert!(page.contains(">poll vote</span>"), "the vote in the status history: {page}");
    assert!(page.contains(&format!("{CUSTOMER}: Pagi, Sore")), "who voted what: {page}");
    assert!(page.contains(&format!("{CUSTOMER}: Sore")), "and their new vote: {page}");

    let page = unescape(&en.get(&format!("/history/{id}")).await.body);
    assert!(page.contains("id=\"message-text\">Harga 12.000<"), "{page}");
    assert!(page.contains("data-mark=\"edited\">edited</span>"), "{page}");
    assert!(page.contains("<li>Harga 10.000</li>"), "the earlier text: {page}");
    assert!(page.contains("<span class=\"emoji\">❤️</span> 6281234567890"), "{page}");
    for badge in ["reaction", "edited"] {
        assert!(page.contains(&format!("data-status=\"{badge}\">{badge}</span>")), "{badge}: {page}");
    }
    assert!(page.contains(&format!("{CUSTOMER} ❤️")), "who reacted with what: {page}");
    assert!(!page.contains("{\"from\""), "no raw change JSON: {page}");

    let page = unescape(&en.get(&format!("/history/{}", reply["id"])).await.body);
    assert!(page.contains(&format!("<a href=\"/history/{id}\">Harga 12.000</a>")), "the quote links: {page}");
    assert!(page.contains(&format!("@{OTHER}")), "the mention: {page}");

    let (status, deleted) = app.delete(&format!("/api/user/messages/{id}"), &t.api_key).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let page = unescape(&en.get(&format!("/history/{id}")).await.body);
    assert!(
        page.contains("Deleted for everyone") && page.contains("data-mark=\"revoked\">deleted</span>"),
        "{page}"
    );
    assert!(page.contains("data-status=\"revoked\">deleted</span>"), "{page}");

    let mut id_agent = logged_in(&app, &t, "id-ID,id;q=0.9").await;
    let page = unescape(&id_agent.get(&format!("/history/{}", poll["id"])).await.body);
    assert!(page.contains("📊 Polling") && page.contains("boleh pilih lebih dari satu"), "{page}");
    assert!(page.contains("<span class=\"votes\">1 suara</span>"), "{page}");
    assert!(page.contains(">suara polling</span>"), "{page}");
    let page = unescape(&id_agent.get(&format!("/history/{id}")).await.body);
    assert!(
        page.contains("data-mark=\"edited\">diedit</span>") && page.contains("Teks sebelumnya"),
        "{page}"
    );
    assert!(page.contains("data-status=\"reaction\">reaksi</span>") && page.contains("Reaksi"), "{page}");
    assert!(page.contains("Dihapus untuk semua"), "{page}");
    let page = unescape(&id_agent.get(&format!("/history/{}", reply["id"])).await.body);
    assert!(page.contains("Membalas") && page.contains("Menyebut"), "{page}");
}

#[tokio::test]
async fn the_history_type_filter_shows_one_kind_and_the_list_marks_edits_deletions_and_read_marks() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), DEVICE).await;
    let first = inbound(&app, device, json!({"text": "Kirim ke mana?"})).await;
    let location =
        inbound(&app, device, json!({"location": {"latitude": -7.25, "longitude": 112.75, "name": "Rumah"}}))
            .await;
    let poll =
        inbound(&app, device, json!({"poll": {"question": "Warna?", "options": ["Merah", "Biru"]}})).await;
    let first = by_wa_id(&app, &t, &first).await;
    let location = by_wa_id(&app, &t, &location).await;
    by_wa_id(&app, &t, &poll).await;

    let mut agent = logged_in(&app, &t, "en").await;
    let page = agent.get("/history?type=location").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<option value=\"location\" selected>📍 Location</option>"), "{}", page.body);
    assert!(page.body.contains("Rumah"), "{}", page.body);
    assert!(!page.body.contains("Kirim ke mana?") && !page.body.contains("Warna?"), "{}", page.body);
    let body = unescape(&page.body);
    assert!(
        body.contains("href=\"/history/export.csv?type=location\""),
        "the export keeps the filter: {body}"
    );
    assert!(body.contains("data-live=\"/live/messages?type=location&after="), "so do live updates: {body}");
    assert!(body.contains("data-label-kind-location=\"📍 Location\""), "live rows get the labels: {body}");
    let csv = agent.get("/history/export.csv?type=location").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.contains(",location,") && !csv.body.contains(",poll,"), "{}", csv.body);
    let polls = agent.get("/history?type=poll").await.body;
    assert!(polls.contains("📊 Poll</span> Warna?") && !polls.contains("Rumah"), "{polls}");
    let text = agent.get("/history?type=text").await.body;
    assert!(text.contains("Kirim ke mana?") && !text.contains("Rumah"), "{text}");
    assert!(!row(&text, &first["id"]).contains("class=\"kind\""), "plain text gets no kind label");
    let bad = agent.get("/history?type=hologram").await;
    assert!(bad.body.contains("id=\"form-error\"") && bad.body.contains("type"), "{}", bad.body);

    let first_wa = first["wa_id"].as_str().unwrap();
    inbound(&app, device, json!({"edit": {"message": first_wa, "text": "Kirim ke Surabaya?"}})).await;
    inbound(&app, device, json!({"revoke": {"message": location["wa_id"]}})).await;
    wait_message(&app, &t, &first["id"], |m| m["edited_at"].is_string()).await;
    wait_message(&app, &t, &location["id"], |m| m["revoked_at"].is_string()).await;
    let (status, read) =
        app.post(&format!("/api/user/messages/{}/read", first["id"]), &t.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{read}");

    let list = agent.get("/history").await.body;
    let edited = row(&list, &first["id"]);
    assert!(
        edited.contains("Kirim ke Surabaya? <span class=\"mark\" data-mark=\"edited\">edited</span>"),
        "{edited}"
    );
    let deleted = row(&list, &location["id"]);
    assert!(deleted.contains("data-mark=\"revoked\">deleted</span>"), "{deleted}");
    let detail = agent.get(&format!("/history/{}", first["id"])).await.body;
    assert!(
        detail.contains("Marked read") && detail.contains("data-status=\"read_mark\">marked read</span>"),
        "{detail}"
    );
    assert!(detail.contains("<li>Kirim ke mana?</li>"), "{detail}");

    let mut id_agent = logged_in(&app, &t, "id-ID,id;q=0.9").await;
    let list = id_agent.get("/history").await.body;
    assert!(row(&list, &first["id"]).contains(">diedit</span>"), "{list}");
    assert!(
        row(&list, &location["id"]).contains("📍 Lokasi</span>") && list.contains(">dihapus</span>"),
        "{list}"
    );
}

#[tokio::test]
async fn a_customers_photo_shows_on_its_page_and_only_its_tenant_can_open_it() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), DEVICE).await;
    let picture = image::RgbaImage::from_pixel(8, 8, image::Rgba([10, 120, 200, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let wa =
        inbound(&app, device, json!({"media": {"kind": "image", "mime": "image/png", "base64": b64}})).await;
    let stored = by_wa_id(&app, &t, &wa).await;
    let id = stored["id"].clone();
    wait_message(&app, &t, &id, |m| m["media"]["state"] == "stored").await;

    let mut agent = logged_in(&app, &t, "en").await;
    let page = unescape(&agent.get(&format!("/history/{id}")).await.body);
    assert!(
        page.contains(&format!("id=\"media-preview\" class=\"thumb\" src=\"/history/{id}/media\"")),
        "{page}"
    );
    let media = agent.get(&format!("/history/{id}/media")).await;
    assert_eq!(media.status, StatusCode::OK);
    assert_eq!(media.headers["content-type"], "image/png");
    assert_eq!(media.headers["content-length"], png.len().to_string().as_str());

    let other = tenant(&app, "basic").await;
    let mut stranger = logged_in(&app, &other, "en").await;
    assert_eq!(stranger.get(&format!("/history/{id}/media")).await.status, StatusCode::NOT_FOUND);
}
