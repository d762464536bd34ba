//! Contacts through the `whatsapp-web` driver: a contact's profile (about text, picture,
//! business) read from WhatsApp through the device, and blocking and unblocking, which change
//! the account's blocklist on WhatsApp's side.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::fake_wa::{ContactProfile, FakeWhatsApp};
use super::{paired_device, report, spawn};
use crate::helpers::{assert_error, TestApp, TestTenant};

const SHOP: &str = "6281299991001";
const SHOP_LID: &str = "100000000991001";
const FRIEND: &str = "6281299991002";
/// Not on WhatsApp (the test says so to the fake).
const NOBODY: &str = "6281299991009";

async fn contact(app: &TestApp, tenant: &TestTenant, device: i64, jid: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/user/contacts/{jid}?device={device}"), &tenant.api_key).await
}

async fn block(
    app: &TestApp,
    tenant: &TestTenant,
    device: i64,
    jid: &str,
    action: &str,
) -> (StatusCode, Value) {
    app.post(&format!("/api/user/contacts/{jid}/{action}?device={device}"), &tenant.api_key, &json!({})).await
}

/// `GET /api/user/contacts/{jid}` asks WhatsApp through the device: a business shows its
/// about text, picture, verified name and LID; a contact showing nothing answers nulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_profile_is_read_from_whatsapp_through_the_device() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381831001";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    fake.set_contact_lid(SHOP, SHOP_LID);
    fake.set_contact_profile(
        SHOP,
        ContactProfile {
            about: Some("Buka setiap hari 08.00-21.00".to_string()),
            picture_url: Some("https://pps.whatsapp.net/v/t61/toko-makmur.jpg?oe=1".to_string()),
            business: true,
            verified_name: Some("Toko Makmur".to_string()),
        },
    );

    let t = Instant::now();
    let jid = format!("{SHOP}@s.whatsapp.net");
    let (status, body) = contact(&app, &tenant, device, &jid).await;
    report("contact profile read through the device", t);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["device_id"], device, "{body}");
    assert_eq!(body["jid"], jid, "{body}");
    assert_eq!(body["phone"], SHOP, "{body}");
    assert_eq!(body["lid"], format!("{SHOP_LID}@lid"), "{body}");
    assert_eq!(body["about"], "Buka setiap hari 08.00-21.00", "{body}");
    assert_eq!(body["picture_url"], "https://pps.whatsapp.net/v/t61/toko-makmur.jpg?oe=1", "{body}");
    assert_eq!(body["business"], true, "{body}");
    assert_eq!(body["business_name"], "Toko Makmur", "{body}");
    assert_eq!(body["blocked"], false, "{body}");
    assert!(body["fetched_at"].as_str().is_some_and(|t| t.starts_with("20")), "{body}");
    assert_eq!(fake.iq_count(phone, "w:profile:picture", "picture"), 1, "the picture's URL was asked");

    // Someone who shows nothing: no about text, no picture (WhatsApp said so in the usync, so
    // the picture is not asked), not a business.
    let (status, body) = contact(&app, &tenant, device, FRIEND).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jid"], format!("{FRIEND}@s.whatsapp.net"), "{body}");
    for field in ["about", "picture_url", "business_name", "lid"] {
        assert_eq!(body[field], Value::Null, "{field}: {body}");
    }
    assert_eq!(body["business"], false, "{body}");
    assert_eq!(fake.iq_count(phone, "w:profile:picture", "picture"), 1, "no picture to ask for");
}

/// Blocking puts the contact on the account's blocklist on WhatsApp and the answer says
/// `blocked`; unblocking takes it off again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_a_contact_puts_it_on_the_account_blocklist_and_unblocking_removes_it() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381831002";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    fake.set_contact_lid(SHOP, SHOP_LID);
    let jid = format!("{SHOP}@s.whatsapp.net");

    let t = Instant::now();
    let (status, body) = block(&app, &tenant, device, &jid, "block").await;
    report("block", t);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jid"], jid, "{body}");
    assert_eq!(body["blocked"], true, "{body}");
    assert_eq!(fake.blocklist(phone), [SHOP], "WhatsApp has the contact on the blocklist");

    let (status, body) = block(&app, &tenant, device, &jid, "unblock").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blocked"], false, "{body}");
    assert!(fake.blocklist(phone).is_empty(), "unblocked on WhatsApp: {:?}", fake.blocklist(phone));
}

/// A number that is not on WhatsApp has no profile to read and cannot be blocked: 404, and
/// nothing reaches the blocklist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_not_on_whatsapp_is_not_found() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381831003";
    let device = paired_device(&app, &tenant, &fake, phone).await;
    fake.set_unregistered(NOBODY);

    let jid = format!("{NOBODY}@s.whatsapp.net");
    let (status, body) = contact(&app, &tenant, device, &jid).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (status, body) = block(&app, &tenant, device, &jid, "block").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(fake.blocklist(phone).is_empty());
}
