//! Retention: a sweep deletes messages, webhook logs, activity entries and media bytes older
//! than their ages, package by package, never a message still in flight, and tells each
//! tenant what it deleted in its activity log.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wa_gateway::config::PackageRetention;

use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::Receiver;

const CUSTOMER: &str = "6281234567893";
const DAY_MS: i64 = 86_400_000;

async fn send(app: &TestApp, tenant: &TestTenant, device: i64, text: &str) -> i64 {
    let body = json!({"device": device, "to": CUSTOMER, "text": text});
    let (status, sent) = app.post("/api/send-message", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    sent["id"].as_i64().unwrap()
}

async fn count(app: &TestApp, sql: String) -> i64 {
    app.query_i64(&sql).await
}

/// Moves the tenant's rows of `table` `days` into the past.
async fn age(app: &TestApp, table: &str, tenant: i64, days: i64) {
    app.execute_sql(&format!(
        "UPDATE {table} SET created_at = created_at - {} WHERE user_id = {tenant}",
        days * DAY_MS
    ))
    .await;
}

#[tokio::test]
async fn a_sweep_deletes_what_is_older_than_its_package_keeps_and_logs_the_counts() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.retention.messages_days = 30;
        c.retention.webhook_logs_days = 7;
        c.retention.activity_logs_days = 90;
        c.retention.batch_size = 2; // several batches each
        c.media.retention_days = 60;
        // Premium keeps its messages for ever, and its media as long as its messages.
        c.packages.get_mut("premium").unwrap().retention =
            PackageRetention { messages_days: Some(0), media_days: Some(0), ..Default::default() };
    })
    .await;
    let basic = app.create_tenant("basic").await;
    let premium = app.create_tenant("premium").await;
    let basic_device = app.pair_device(&basic, "6281381830661").await;
    let premium_device = app.pair_device(&premium, "6281381830662").await;
    for (tenant, device) in [(&basic, basic_device), (&premium, premium_device)] {
        let (status, body) = app
            .post(
                "/api/user/webhooks",
                &tenant.api_key,
                &json!({"url": receiver.url("/h"), "events": ["message.received"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for n in 0..3 {
            send(&app, tenant, device, &format!("lama {n}")).await;
        }
        app.inbound(device, CUSTOMER, "pesan lama", None).await;
    }
    // A photo the basic tenant sent, kept in the media store.
    let body = json!({"device": basic_device, "to": CUSTOMER, "base64": STANDARD.encode(photo()), "caption": "katalog"});
    let (status, photo_msg) = app.post("/api/send-media", &basic.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{photo_msg}");
    let photo_id = photo_msg["id"].as_i64().unwrap();
    poll_until(WAIT, || async {
        let (_, m) = app.get(&format!("/api/user/messages/{photo_id}"), &basic.api_key).await;
        (m["media"]["state"] == "stored").then_some(())
    })
    .await;
    receiver.wait_for(2, WAIT).await;
    crate::rules::settle(&app, &basic).await;
    crate::rules::settle(&app, &premium).await;

    for tenant in [basic.id, premium.id] {
        age(&app, "messages", tenant, 100).await;
        age(&app, "webhook_logs", tenant, 10).await;
        age(&app, "user_activity_logs", tenant, 100).await;
    }
    // An inbound message whose pipeline never finished is not deleted, however old.
    app.execute_sql(&format!(
        "UPDATE messages SET processed_at = NULL WHERE user_id = {} AND direction = 'in'",
        basic.id
    ))
    .await;
    let recent = send(&app, &basic, basic_device, "baru").await;
    let media_files = |tenant: i64| {
        let dir = app.config.media.path.join(tenant.to_string());
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    };
    assert_eq!(media_files(basic.id), 1, "the photo is in the store");

    let swept = app.state.retention.sweep().await.expect("the sweep");

    let messages =
        |tenant: i64| count(&app, format!("SELECT COUNT(*) FROM messages WHERE user_id = {tenant}"));
    let basic_left: Vec<Value> = {
        let (_, h) = app.get("/api/user/chat-history?limit=100", &basic.api_key).await;
        h["data"].as_array().unwrap().clone()
    };
    let ids: Vec<i64> = basic_left.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(messages(basic.id).await, 2, "the recent one and the unfinished inbound one: {basic_left:?}");
    assert!(ids.contains(&recent), "{ids:?}");
    assert!(basic_left.iter().any(|m| m["direction"] == "in"), "{basic_left:?}");
    assert_eq!(messages(premium.id).await, 4, "premium keeps its messages");
    assert_eq!(media_files(basic.id), 0, "the photo's bytes went with it");
    let logs =
        |tenant: i64| count(&app, format!("SELECT COUNT(*) FROM webhook_logs WHERE user_id = {tenant}"));
    assert_eq!((logs(basic.id).await, logs(premium.id).await), (0, 0), "webhook logs: 7 days for all");
    assert_eq!(swept.messages, 4, "three texts and the photo: {swept:?}");
    assert_eq!(swept.media, 1, "{swept:?}");
    assert!(swept.webhook_logs >= 2 && swept.activity_logs >= 2, "{swept:?}");

    // Each tenant reads what was deleted in its activity log; nothing older than 90 days is left.
    let (_, log) = app.get("/api/user/activity-logs?action=retention.sweep", &basic.api_key).await;
    let entry = &log["data"][0];
    assert_eq!(entry["actor"], "system", "{log}");
    assert!(entry["detail"].as_str().unwrap().contains("deleted 4 messages"), "{log}");
    let ninety_days_ago = chrono::Utc::now().timestamp_millis() - 90 * DAY_MS;
    let old = count(
        &app,
        format!(
            "SELECT COUNT(*) FROM user_activity_logs WHERE user_id = {} AND created_at < {ninety_days_ago}",
            basic.id
        ),
    )
    .await;
    assert_eq!(old, 0, "activity older than 90 days is gone");

    // A second sweep finds nothing more and logs nothing.
    let again = app.state.retention.sweep().await.expect("the sweep");
    assert_eq!(again, wa_gateway::retention::Swept::default());
}

fn photo() -> Vec<u8> {
    let picture = image::RgbaImage::from_fn(8, 8, |x, y| image::Rgba([x as u8 * 30, y as u8 * 30, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).expect("a PNG");
    out.into_inner()
}
