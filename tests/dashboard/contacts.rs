//! The contacts pages over plain HTTP: the list (names, numbers, LIDs) with search, a device
//! filter and pages, one contact with the profile read through the device, block and unblock
//! reaching WhatsApp (the simulator's outbox) only with the form's CSRF token, and another
//! tenant's contacts staying out of reach.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::agent::{tenant, Agent, Login, PASSWORD};
use crate::helpers::{TestApp, TestTenant};

const SHOP: &str = "6281100000395";
const WAREHOUSE: &str = "6281100000396";
const BUDI: &str = "6281299990395";
const SARI: &str = "6281299990396";
const DEWI: &str = "6281299990397";
const BUDI_LID: &str = "555444333222395@lid";
const GUEST_LID: &str = "555444333222396@lid";
/// Not on WhatsApp in the simulator (ends in 0000).
const NOBODY: &str = "6281299990000";

fn api(t: &Login) -> TestTenant {
    TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() }
}

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
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

/// The contacts the list shows, by JID, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("<li data-jid=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_string).collect()
}

/// The list's entry for `jid`.
fn entry(body: &str, jid: &str) -> String {
    let body = unescape(body);
    let start = body.find(&format!("<li data-jid=\"{jid}\"")).unwrap_or_else(|| panic!("{jid}: {body}"));
    let end = body[start..].find("</li>").unwrap() + start;
    body[start..end].to_string()
}

async fn inbound(app: &TestApp, body: Value) {
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "simulator inbound: {answer}");
}

async fn logged_in<'a>(app: &'a TestApp, t: &Login, accept_language: &'static str) -> Agent<'a> {
    let mut agent = Agent::new(app);
    agent.accept_language = accept_language;
    assert_eq!(agent.login(&t.email, PASSWORD).await.status, StatusCode::SEE_OTHER);
    agent
}

/// What the simulator's phone was asked to block or unblock, in order.
async fn blocks(app: &TestApp, device: i64) -> Vec<(String, String)> {
    app.outbox(device)
        .await
        .into_iter()
        .filter(|m| m["type"] == "block" || m["type"] == "unblock")
        .map(|m| (m["type"].as_str().unwrap().to_string(), m["to"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn the_contacts_page_lists_searches_filters_by_device_and_pages_contacts() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "premium").await;
    let shop = app.pair_device(&api(&t), SHOP).await;
    let warehouse = app.pair_device(&api(&t), WAREHOUSE).await;
    inbound(&app, json!({"device": shop, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": shop, "from": SARI, "text": "pagi", "push_name": "Sari"})).await;
    inbound(&app, json!({"device": shop, "from_lid": GUEST_LID, "text": "siapa ini?", "push_name": "Tamu"}))
        .await;
    inbound(&app, json!({"device": warehouse, "from": DEWI, "text": "stok?", "push_name": "Dewi"})).await;
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/lid-mapping",
            &json!({"device": shop, "lid": BUDI_LID, "phone": BUDI}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut agent = logged_in(&app, &t, "en").await;
    let home = agent.get("/").await;
    assert!(home.body.contains("href=\"/contacts\""), "the menu links the contacts");
    let page = agent.get("/contacts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("aria-current=\"page\">Contacts<"), "{}", page.body);
    assert_eq!(listed(&page.body), [jid(DEWI), GUEST_LID.to_string(), jid(SARI), jid(BUDI)], "latest first");
    let budi = entry(&page.body, &jid(BUDI));
    assert!(budi.contains(">Budi</a>") && budi.contains(&format!("+{BUDI}")), "name and number: {budi}");
    assert!(budi.contains(&format!("<small class=\"muted lid\" title=\"LID\">{BUDI_LID}</small>")), "{budi}");
    assert!(budi.contains(&format!("href=\"/contacts/{shop}/{BUDI}@s.whatsapp.net\"")), "{budi}");
    let guest = entry(&page.body, GUEST_LID);
    assert!(guest.contains(">Tamu</a>") && guest.contains(GUEST_LID), "known only by its LID: {guest}");
    assert!(!guest.contains("+</span>") && !guest.contains("+<"), "no empty number: {guest}");
    assert!(entry(&page.body, &jid(DEWI)).contains("contact-device"), "two devices: each row names its own");

    // Search, and the device filter.
    let found = agent.get("/contacts?q=SAR").await;
    assert_eq!(listed(&found.body), [jid(SARI)], "{}", found.body);
    let by_number = agent.get(&format!("/contacts?q={}", &DEWI[4..])).await;
    assert_eq!(listed(&by_number.body), [jid(DEWI)]);
    let one_device = agent.get(&format!("/contacts?device={warehouse}")).await;
    assert_eq!(listed(&one_device.body), [jid(DEWI)]);
    assert!(
        one_device.body.contains(&format!("<option value=\"{warehouse}\" selected")),
        "{}",
        one_device.body
    );
    let nothing = agent.get("/contacts?q=zzzz").await;
    assert!(listed(&nothing.body).is_empty() && nothing.body.contains("id=\"no-contacts\""));
    let too_long = agent.get(&format!("/contacts?q={}", "a".repeat(101))).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_long.body);
    assert!(too_long.body.contains("id=\"form-error\""), "{}", too_long.body);
    assert_eq!(agent.get("/contacts?device=abc").await.status, StatusCode::NOT_FOUND);

    // Pages of 25: the 26th contact and later are on the next page.
    for n in 0..24 {
        inbound(&app, json!({"device": warehouse, "from": format!("62813000004{n:02}"), "text": "hai"}))
            .await;
    }
    let first = agent.get("/contacts").await;
    assert_eq!(listed(&first.body).len(), 25);
    assert!(first.body.contains("1–25 of 28"), "{}", first.body);
    assert!(!first.body.contains("rel=\"prev\""));
    let next = unescape(&first.body);
    let next = next.split("href=\"/contacts?").find(|s| s.contains("rel=\"next\"")).expect("a next page");
    let next = next.split('"').next().unwrap();
    assert_eq!(next, "offset=25");
    let second = agent.get(&format!("/contacts?{next}")).await;
    assert_eq!(listed(&second.body), [GUEST_LID.to_string(), jid(SARI), jid(BUDI)]);
    assert!(second.body.contains("26–28 of 28") && second.body.contains("rel=\"prev\""), "{}", second.body);
}

#[tokio::test]
async fn a_contact_shows_its_profile_and_blocks_and_unblocks_through_the_device() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let other = tenant(&app, "basic").await;
    let shop = app.pair_device(&api(&t), SHOP).await;
    inbound(&app, json!({"device": shop, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": shop, "from_lid": GUEST_LID, "text": "siapa ini?"})).await;
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/contacts",
            &json!({"phone": BUDI, "about": "Toko kue", "picture_url": "https://pps.whatsapp.net/v/budi.jpg",
                    "business": true, "business_name": "Kue Budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let budi = jid(BUDI);
    let path = format!("/contacts/{shop}/{budi}");

    let mut agent = logged_in(&app, &t, "en").await;
    let page = agent.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = unescape(&page.body);
    assert!(body.contains("<h1 id=\"contact-name\">Budi</h1>"), "{body}");
    assert!(body.contains(&format!("+{BUDI}")) && body.contains("Toko kue"), "{body}");
    assert!(body.contains("href=\"https://pps.whatsapp.net/v/budi.jpg\""), "the picture: {body}");
    assert!(body.contains("data-business=\"yes\"") && body.contains(">Kue Budi<"), "{body}");
    assert!(body.contains("data-blocked=\"no\""), "{body}");
    assert!(body.contains(&format!("href=\"/chats?device={shop}&chat={BUDI}%40s.whatsapp.net\"")), "{body}");
    assert!(!body.contains("id=\"contact-fetched\">never<"), "the profile was read: {body}");

    // Blocking needs the form's token; then WhatsApp is asked, and the page says so.
    let action = format!("{path}/block");
    let forged = agent.post(&action, &[("csrf", "not-the-token")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(blocks(&app, shop).await.is_empty(), "nothing was asked of WhatsApp");
    let done = agent.submit(&path, &action, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), path);
    assert_eq!(blocks(&app, shop).await, [("block".to_string(), budi.clone())]);
    let page = unescape(&agent.get(&path).await.body);
    assert!(page.contains("data-blocked=\"yes\"") && page.contains("id=\"contact-unblock\""), "{page}");
    let list = agent.get("/contacts").await;
    assert!(entry(&list.body, &budi).contains("data-blocked=\"yes\""), "{}", list.body);
    let done = agent.submit(&path, &format!("{path}/unblock"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        blocks(&app, shop).await,
        [("block".to_string(), budi.clone()), ("unblock".to_string(), budi.clone())]
    );
    assert!(unescape(&agent.get(&path).await.body).contains("id=\"contact-block\""));

    // Known only by its LID: shown as the LID; WhatsApp blocks by number, which is not known.
    let guest = format!("/contacts/{shop}/{GUEST_LID}");
    let page = agent.get(&guest).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!("<h1 id=\"contact-name\">{GUEST_LID}</h1>")), "{}", page.body);
    assert!(page.body.contains("not known yet"), "no empty number: {}", page.body);
    let refused = agent.submit(&guest, &format!("{guest}/block"), &[]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(refused.body.contains("id=\"form-error\""), "the reason on the contact's page: {}", refused.body);
    assert_eq!(blocks(&app, shop).await.len(), 2, "nothing more was asked");

    // Not on WhatsApp, not a number, an unknown action.
    assert_eq!(agent.get(&format!("/contacts/{shop}/{NOBODY}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(agent.get(&format!("/contacts/{shop}/abc")).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(agent.submit(&path, &format!("{path}/delete"), &[]).await.status, StatusCode::NOT_FOUND);

    // Another tenant sees none of it and cannot block through the device.
    let mut intruder = logged_in(&app, &other, "en").await;
    let list = intruder.get("/contacts").await;
    assert!(listed(&list.body).is_empty() && !list.body.contains("Budi"), "{}", list.body);
    let refused = intruder.get(&path).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(!refused.body.contains("Toko kue"));
    let refused = intruder.submit("/contacts", &action, &[]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert_eq!(intruder.get(&format!("/contacts?device={shop}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(blocks(&app, shop).await.len(), 2, "the intruder asked nothing of WhatsApp");

    // In Indonesian.
    let mut id = logged_in(&app, &t, "id-ID").await;
    let page = id.get("/contacts").await;
    assert!(page.body.contains("<h1>Kontak</h1>"), "{}", page.body);
    let page = id.get(&path).await;
    assert!(page.body.contains("Buka percakapan") && page.body.contains("Blokir"), "{}", page.body);
}
