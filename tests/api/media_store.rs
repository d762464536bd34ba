//! The media store: media a customer sends is downloaded when it arrives and served byte for
//! byte, with an API key or through a signed link; sent media is kept too; bytes past the
//! retention are gone (410); a slow media server holds up nothing else; tenants never see each
//! other's media.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::Receiver;

const DEVICE: &str = "6281381830651";
const CUSTOMER: &str = "6281234567890";

/// A real PNG (what a customer's photo of a transfer receipt could be), 16 × 16.
fn photo() -> Vec<u8> {
    let picture =
        image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba([x as u8 * 16, y as u8 * 16, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).expect("a PNG");
    out.into_inner()
}

async fn setup(app: &TestApp) -> (TestTenant, i64) {
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    (tenant, device)
}

/// A customer sends `bytes` as an image; returns the stored message once its media has a
/// final state.
async fn customer_sends_image(
    app: &TestApp,
    tenant: &TestTenant,
    device: i64,
    bytes: &[u8],
    delay_ms: u64,
) -> Value {
    let body = json!({
        "device": device,
        "from": CUSTOMER,
        "media": {"kind": "image", "mime": "image/png", "base64": STANDARD.encode(bytes), "delay_ms": delay_ms},
    });
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let wa_id = answer["id"].as_str().unwrap().to_string();
    poll_until(WAIT, || async {
        let (_, page) = app.get("/api/user/chat-history?type=image", &tenant.api_key).await;
        page["data"].as_array().and_then(|rows| rows.iter().find(|r| r["wa_id"] == wa_id.as_str()).cloned())
    })
    .await
}

async fn wait_media_state(app: &TestApp, tenant: &TestTenant, id: &Value, state: &str) -> Value {
    poll_until(WAIT, || async {
        let (_, m) = app.get(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
        (m["media"]["state"] == state).then_some(m)
    })
    .await
}

async fn fetch(app: &TestApp, url: &str, key: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = app.request(Method::GET, "/").build().unwrap();
    *request.url_mut() = reqwest::Url::parse(url).unwrap();
    if let Some(key) = key {
        request.headers_mut().insert("x-api-key", key.parse().unwrap());
    }
    let response = reqwest::Client::new().execute(request).await.unwrap();
    let status = response.status();
    let mime =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, mime, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_customers_photo_is_kept_and_served_with_a_key_and_through_the_webhooks_signed_link() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let (tenant, device) = setup(&app).await;
    let (status, _) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["message.received"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let bytes = photo();
    let stored = customer_sends_image(&app, &tenant, device, &bytes, 0).await;
    let id = stored["id"].clone();
    let kept = wait_media_state(&app, &tenant, &id, "stored").await;
    assert_eq!(kept["media"]["size"], bytes.len());
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(kept["media"]["sha256"], digest);
    assert!(kept["media"].get("key").is_none() && kept["media"].get("source").is_none(), "{kept}");

    let url = app.url(&format!("/api/user/messages/{id}/media"));
    assert_eq!(kept["media"]["url"], url.as_str());
    let (status, mime, got) = fetch(&app, &url, Some(&tenant.api_key)).await;
    assert_eq!((status, mime.as_str()), (StatusCode::OK, "image/png"));
    assert_eq!(got, bytes, "byte for byte");
    let (status, _, _) = fetch(&app, &url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the API path needs a key");

    let event = receiver.wait_for(1, WAIT).await[0].json();
    let link = event["data"]["media"]["download_url"].as_str().expect("a signed link").to_string();
    let (status, _, got) = fetch(&app, &link, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, bytes, "the link works without a key");
    // The link opens its own message only, and only as signed.
    let other = link.replacen(&format!("/media/{id}?"), &format!("/media/{}?", id.as_i64().unwrap() + 1), 1);
    assert_eq!(fetch(&app, &other, None).await.0, StatusCode::FORBIDDEN);
    let later = link.replacen("expires=", "expires=9", 1);
    assert_eq!(fetch(&app, &later, None).await.0, StatusCode::FORBIDDEN);
    // The signature's last character changed (to another one: the link may end in `0`).
    let last = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &link[..link.len() - 1]);
    assert_eq!(fetch(&app, &tampered, None).await.0, StatusCode::FORBIDDEN);

    // Another tenant sees no such message.
    let stranger = app.create_tenant("premium").await;
    let (status, body) = app.get(&format!("/api/user/messages/{id}/media"), &stranger.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn sent_media_is_kept_until_the_retention_then_it_is_gone() {
    let app = TestApp::spawn().await;
    let (tenant, _) = setup(&app).await;
    let bytes = photo();
    let body =
        json!({"device": DEVICE, "to": CUSTOMER, "base64": STANDARD.encode(&bytes), "caption": "katalog"});
    let (status, sent) = app.post("/api/send-media", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let id = sent["id"].clone();
    wait_media_state(&app, &tenant, &id, "stored").await;
    let url = app.url(&format!("/api/user/messages/{id}/media"));
    let (status, _, got) = fetch(&app, &url, Some(&tenant.api_key)).await;
    assert_eq!((status, got), (StatusCode::OK, bytes));
    let (status, text) = app.get("/api/user/chat-history", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text["data"][0]["media"]["state"], "stored");

    // 31 days later (the default retention is 30): the sweeper, which runs at start, deletes
    // the bytes and keeps the message.
    app.execute_sql(&format!(
        "UPDATE messages SET created_at = created_at - {} WHERE id = {id}",
        31 * 86_400_000i64
    ))
    .await;
    let app = app.restart().await;
    let expired = wait_media_state(&app, &tenant, &id, "expired").await;
    assert_eq!(expired["media"]["caption"], "katalog", "the details stay");
    let (status, body) = app.get(&format!("/api/user/messages/{id}/media"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::GONE, "gone");
}

#[tokio::test]
async fn a_slow_media_server_does_not_hold_up_the_next_messages_auto_reply() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let (status, rule) = app
        .post("/api/user/auto-reply", &tenant.api_key, &json!({"keyword": "halo", "reply": "Halo juga!"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    // The photo's server takes a minute; the text after it is answered meanwhile.
    let slow = customer_sends_image(&app, &tenant, device, &photo(), 60_000).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    let replies = poll_until(WAIT, || async {
        let outbox = app.outbox(device).await;
        outbox.iter().any(|s| s["text"] == "Halo juga!").then_some(outbox)
    })
    .await;
    assert_eq!(replies.len(), 1);
    let (_, still) = app.get(&format!("/api/user/messages/{}", slow["id"]), &tenant.api_key).await;
    assert_eq!(still["media"]["state"], "pending", "the download was still running: {still}");
    let (status, body) = app.get(&format!("/api/user/messages/{}/media", slow["id"]), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn with_downloads_off_only_the_details_are_kept() {
    let app = TestApp::spawn_with(|c| c.media.download = wa_gateway::config::MediaDownload::Never).await;
    let (tenant, device) = setup(&app).await;
    let stored = customer_sends_image(&app, &tenant, device, &photo(), 0).await;
    assert_eq!(stored["media"]["state"], "skipped", "{stored}");
    let (status, body) =
        app.get(&format!("/api/user/messages/{}/media", stored["id"]), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // A text message has no media at all.
    app.inbound(device, CUSTOMER, "tanpa foto", None).await;
    let (_, page) = app.get("/api/user/chat-history?type=text", &tenant.api_key).await;
    let (status, body) =
        app.get(&format!("/api/user/messages/{}/media", page["data"][0]["id"]), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// The S3 server the S3 tests use (`GATEWAY_TEST_S3_URL`, e.g. moto's server mode).
fn s3_url() -> String {
    std::env::var("GATEWAY_TEST_S3_URL").expect("GATEWAY_TEST_S3_URL").trim_end_matches('/').to_string()
}

/// A client of the same S3 server, independent of the gateway, to look at what it stored.
fn s3_bucket(url: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(url)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .expect("an S3 client")
}

#[tokio::test]
#[cfg_attr(not(s3_tests), ignore = "needs an S3-compatible server: set GATEWAY_TEST_S3_URL")]
async fn on_s3_a_customers_photo_is_kept_served_and_deleted_after_the_retention() {
    use object_store::ObjectStore;
    let url = s3_url();
    let bucket = format!("wag-test-{}", crate::helpers::unique());
    let created =
        reqwest::Client::new().put(format!("{url}/{bucket}")).send().await.expect("the S3 server answers");
    assert!(created.status().is_success(), "bucket {bucket}: {}", created.status());
    let (endpoint, name) = (url.clone(), bucket.clone());
    let app = TestApp::spawn_with(move |c| {
        c.media.store = wa_gateway::config::MediaStoreKind::S3;
        c.media.s3.endpoint = endpoint;
        c.media.s3.bucket = name;
        c.media.s3.access_key_id = "test".into();
        c.media.s3.secret_access_key = "test".into();
        c.media.s3.prefix = "media".into();
        c.media.s3.allow_http = true;
    })
    .await;
    let (tenant, device) = setup(&app).await;
    let bytes = photo();
    let stored = customer_sends_image(&app, &tenant, device, &bytes, 0).await;
    let id = stored["id"].as_i64().unwrap();
    wait_media_state(&app, &tenant, &stored["id"], "stored").await;
    let (status, mime, got) =
        fetch(&app, &app.url(&format!("/api/user/messages/{id}/media")), Some(&tenant.api_key)).await;
    assert_eq!((status, mime.as_str()), (StatusCode::OK, "image/png"));
    assert_eq!(got, bytes);

    let s3 = s3_bucket(&url, &bucket);
    let tenant_id = app.query_i64(&format!("SELECT user_id FROM messages WHERE id = {id}")).await;
    let object = object_store::path::Path::from(format!("media/{tenant_id}/{id}"));
    let in_bucket = s3.get(&object).await.expect("the object is in the bucket").bytes().await.unwrap();
    assert_eq!(in_bucket.as_ref(), bytes.as_slice(), "the bytes are in the bucket, not on the disk");

    app.execute_sql(&format!(
        "UPDATE messages SET created_at = created_at - {} WHERE id = {id}",
        31 * 86_400_000i64
    ))
    .await;
    let app = app.restart().await;
    wait_media_state(&app, &tenant, &stored["id"], "expired").await;
    assert!(
        matches!(s3.get(&object).await, Err(object_store::Error::NotFound { .. })),
        "deleted from the bucket"
    );
}
