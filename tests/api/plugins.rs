//! WebAssembly plugins through the real server, with the real components that
//! `plugins/build.sh` builds into `target/plugins/`: upload (multipart and raw), the example
//! and adversarial plugins on simulator messages, the key-value store, ordering and
//! stop-the-chain, auto-disable with `plugin.failed`, refused uploads, the dry run, tenant
//! isolation, and a restart that does not compile again. The world versions side by side are
//! in `kinds`, outbound HTTP in `http`.

mod fairness;
mod http;
mod kinds;
mod transform;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::media::Form;
use crate::webhooks::receiver::Receiver;

const DEVICE: &str = "6281381830652";
const CUSTOMER: &str = "6281234567891";

/// A component built by `plugins/build.sh`.
pub fn component(name: &str) -> Vec<u8> {
    let path = format!("{}/target/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run plugins/build.sh first"))
}

/// Uploads `name` as a multipart form with extra text parts; returns the status and body.
pub async fn upload_form(
    app: &TestApp,
    tenant: &TestTenant,
    name: &str,
    wasm: &[u8],
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = Form::new().text("name", name);
    for (k, v) in extra {
        form = form.text(k, v);
    }
    let (content_type, body) = form.file("file", &format!("{name}.wasm"), "application/wasm", wasm).finish();
    let request = app
        .request(Method::POST, "/api/user/plugins")
        .header("x-api-key", &tenant.api_key)
        .header("content-type", content_type)
        .body(body);
    app.send(request).await
}

/// Uploads the built plugin `name`; returns its JSON.
pub async fn upload(app: &TestApp, tenant: &TestTenant, name: &str, extra: &[(&str, &str)]) -> Value {
    let (status, body) = upload_form(app, tenant, name, &component(name), extra).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Plugin runs in the log, newest first, once there are at least `n`.
async fn runs(app: &TestApp, tenant: &TestTenant, plugin: i64, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let request = app
            .request(Method::GET, "/api/user/webhook-logs")
            .header("x-api-key", &tenant.api_key)
            .query(&[("kind", "plugin"), ("plugin", &plugin.to_string())]);
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["data"].as_array().unwrap().clone();
        (rows.len() >= n).then_some(rows)
    })
    .await
}

async fn wait_outbox(app: &TestApp, device: i64, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let outbox = app.outbox(device).await;
        (outbox.len() >= n).then_some(outbox)
    })
    .await
}

async fn plugin(app: &TestApp, tenant: &TestTenant, id: i64) -> Value {
    let (status, body) = app.get(&format!("/api/user/plugins/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A tenant with a paired device.
async fn setup(app: &TestApp) -> (TestTenant, i64) {
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    (tenant, device)
}

/// Stored inbound messages of the tenant with `text`.
async fn inbound_stored(app: &TestApp, tenant: &TestTenant, text: &str) -> Vec<Value> {
    let request = app
        .request(Method::GET, "/api/user/chat-history")
        .header("x-api-key", &tenant.api_key)
        .query(&[("direction", "in"), ("q", text)]);
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn echo_answers_through_the_device_and_the_run_is_logged() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let echo = upload(&app, &tenant, "echo", &[]).await;
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["enabled"], true);
    assert_eq!(echo["devices"], json!([]));
    assert_eq!(echo["size"], component("echo").len());
    assert_eq!(echo["sha256"].as_str().unwrap().len(), 64);

    app.inbound(device, CUSTOMER, "halo plugin", Some("Budi")).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["text"], "echo: halo plugin");
    assert_eq!(outbox[0]["to"], format!("{CUSTOMER}@s.whatsapp.net"));

    let id = echo["id"].as_i64().unwrap();
    let rows = runs(&app, &tenant, id, 1).await;
    assert_eq!(rows[0]["kind"], "plugin");
    assert_eq!(rows[0]["target"], "echo");
    assert_eq!(rows[0]["outcome"], "success", "{}", rows[0]);
    assert_eq!(rows[0]["event"], "message.received");
    let stored = inbound_stored(&app, &tenant, "halo plugin").await;
    assert_eq!(rows[0]["message_id"], stored[0]["id"]);

    let (_, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(history["data"][0]["source"], "plugin", "{history}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 1, "replies count against the limit: {limits}");
    let after = plugin(&app, &tenant, id).await;
    assert_eq!(after["runs"], 1);
    assert_eq!(after["last_outcome"], "success");
}

/// A plugin runs for group messages until it is set to direct chats only.
#[tokio::test]
async fn a_plugin_set_to_direct_chats_skips_group_messages() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let echo = upload(&app, &tenant, "echo", &[]).await;
    assert_eq!(echo["groups"], true, "new plugins see groups: {echo}");
    let group = "120363000000000652@g.us";
    let in_group = |text: &str| json!({"device": device, "from": CUSTOMER, "group": group, "text": text});
    let (status, body) = app.admin_post("/api/admin/simulator/inbound", &in_group("satu")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["to"], group);
    assert_eq!(outbox[0]["text"], "echo: satu");

    let id = echo["id"].as_i64().unwrap();
    let (status, patched) =
        app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &json!({"groups": false})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["groups"], false);
    let (status, _) = app.admin_post("/api/admin/simulator/inbound", &in_group("dua")).await;
    assert_eq!(status, StatusCode::OK);
    app.inbound(device, CUSTOMER, "tiga", None).await;
    let outbox = wait_outbox(&app, device, 2).await;
    app.wait_idle().await;
    let texts: Vec<&str> = outbox.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["echo: satu", "echo: tiga"], "the group message is skipped, the direct one answered");
    assert_eq!(app.outbox(device).await.len(), 2);
}

#[tokio::test]
async fn a_raw_upload_with_a_name_in_the_query_works_and_names_are_unique() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let raw = |name: &str| {
        app.request(Method::POST, "/api/user/plugins")
            .header("x-api-key", &tenant.api_key)
            .header("content-type", "application/wasm")
            .query(&[("name", name), ("order", "3")])
            .body(component("echo"))
    };
    let (status, body) = app.send(raw("echo-raw")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["order"], 3);
    let (status, body) = app.send(raw("echo-raw")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = app.send(raw("")).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, list) = app.get("/api/user/plugins", &tenant.api_key).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn spin_forever_times_out_within_its_deadline_and_the_server_keeps_answering() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let spin = upload(&app, &tenant, "spin-forever", &[]).await;
    app.inbound(device, CUSTOMER, "muter terus", None).await;
    let (status, _) = app.get("/healthz", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
    let rows = runs(&app, &tenant, spin["id"].as_i64().unwrap(), 1).await;
    assert_eq!(rows[0]["outcome"], "timeout", "{}", rows[0]);
    let latency = rows[0]["latency_ms"].as_i64().unwrap();
    let timeout = app.config.plugins.timeout_ms as i64;
    assert!(latency <= timeout * 3, "cut off near its deadline, took {latency} ms");
    assert!(!rows[0]["error"].as_str().unwrap_or_default().is_empty());
    assert_eq!(inbound_stored(&app, &tenant, "muter terus").await.len(), 1, "the message is in history");
    assert!(app.outbox(device).await.is_empty());
}

#[tokio::test]
async fn hostile_plugins_fail_with_their_reason_and_send_nothing() {
    // The subject is the reason each run fails, not the clock: generous deadlines keep a busy
    // machine from turning a memory or trap failure into a timeout.
    let app = TestApp::spawn_with(|c| {
        c.plugins.cpu_ms = 5_000;
        c.plugins.timeout_ms = 10_000;
    })
    .await;
    let (tenant, device) = setup(&app).await;
    for (name, outcome) in [("memory-hog", "memory"), ("trap", "trap"), ("flood-output", "output_too_large")]
    {
        let p = upload(&app, &tenant, name, &[]).await;
        let id = p["id"].as_i64().unwrap();
        let text = format!("coba {name}");
        app.inbound(device, CUSTOMER, &text, None).await;
        let rows = runs(&app, &tenant, id, 1).await;
        assert_eq!(rows[0]["outcome"], outcome, "{name}: {}", rows[0]);
        assert!(!rows[0]["error"].as_str().unwrap_or_default().is_empty(), "{name}: a reason");
        assert_eq!(inbound_stored(&app, &tenant, &text).await.len(), 1, "{name}: the message is kept");
        // One plugin at a time: disable it before the next one.
        let (status, body) =
            app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(app.outbox(device).await.is_empty(), "nothing was sent");
    // A healthy plugin after all that still answers.
    upload(&app, &tenant, "echo", &[]).await;
    app.inbound(device, CUSTOMER, "masih hidup?", None).await;
    assert_eq!(wait_outbox(&app, device, 1).await[0]["text"], "echo: masih hidup?");
}

#[tokio::test]
async fn faq_bot_counts_per_chat_in_its_store_and_tenants_do_not_share_it() {
    let app = TestApp::spawn().await;
    let (a, device_a) = setup(&app).await;
    let b = app.create_tenant("premium").await;
    let device_b = app.pair_device(&b, "6281381830653").await;
    upload(&app, &a, "faq-bot", &[]).await;
    upload(&app, &b, "faq-bot", &[]).await;

    app.inbound(device_a, CUSTOMER, "jam buka?", None).await;
    let first = wait_outbox(&app, device_a, 1).await;
    app.inbound(device_a, CUSTOMER, "alamat?", None).await;
    let second = wait_outbox(&app, device_a, 2).await;
    let count = |v: &Value| v["text"].as_str().unwrap().to_string();
    assert!(count(&first[0]).contains("ke-1"), "{}", count(&first[0]));
    assert!(count(&second[1]).contains("ke-2"), "{}", count(&second[1]));
    // Another chat of the same tenant starts at one.
    app.inbound(device_a, "6281299990000", "jam buka?", None).await;
    let third = wait_outbox(&app, device_a, 3).await;
    assert!(count(&third[2]).contains("ke-1"), "{}", count(&third[2]));
    // The same chat at another tenant's plugin starts at one: stores are per tenant.
    app.inbound(device_b, CUSTOMER, "jam buka?", None).await;
    let other = wait_outbox(&app, device_b, 1).await;
    assert!(count(&other[0]).contains("ke-1"), "{}", count(&other[0]));
}

#[tokio::test]
async fn plugins_run_in_order_and_one_may_stop_the_chain() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let router = upload(&app, &tenant, "keyword-router", &[("order", "1")]).await;
    let config = json!({"routes": [{"keyword": "harga", "reply": "Harga mulai 10rb"}], "stop": true});
    let (status, body) = app
        .patch(&format!("/api/user/plugins/{}", router["id"]), &tenant.api_key, &json!({"config": config}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["config"], config);
    upload(&app, &tenant, "echo", &[("order", "2")]).await;
    let (_, list) = app.get("/api/user/plugins", &tenant.api_key).await;
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["keyword-router", "echo"]);

    // A route matches: the router answers and stops the chain, echo never runs.
    app.inbound(device, CUSTOMER, "berapa HARGA kaos?", None).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["text"], "Harga mulai 10rb");
    // No route: the router says nothing and echo answers.
    app.inbound(device, CUSTOMER, "selamat pagi", None).await;
    let outbox = wait_outbox(&app, device, 2).await;
    assert_eq!(outbox[1]["text"], "echo: selamat pagi");
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    // A plugin attached to another device does not run for this one.
    let other = app.pair_device(&tenant, "6281381830659").await;
    app.patch(&format!("/api/user/plugins/{}", router["id"]), &tenant.api_key, &json!({"devices": [other]}))
        .await;
    app.inbound(device, CUSTOMER, "harga lagi", None).await;
    let outbox = wait_outbox(&app, device, 3).await;
    assert_eq!(outbox[2]["text"], "echo: harga lagi");
}

/// The plugins the pipeline holds in memory follow every change at once: a new config, a
/// disabled, enabled again or deleted plugin counts from the next message.
#[tokio::test]
async fn a_plugin_edited_disabled_or_deleted_counts_from_the_next_message() {
    let app = TestApp::spawn_with(|c| c.rules.max_replies_per_chat_per_minute = 100).await;
    let (tenant, device) = setup(&app).await;
    let router = upload(&app, &tenant, "keyword-router", &[]).await;
    let path = format!("/api/user/plugins/{}", router["id"]);
    let patch = |body: Value| {
        let (app, tenant, path) = (&app, &tenant, &path);
        async move {
            let (status, body) = app.patch(path, &tenant.api_key, &body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let route = |reply: &str| json!({"config": {"routes": [{"keyword": "harga", "reply": reply}]}});
    // Each answer is read once the message before it was settled, so the plugins in memory
    // are always the ones read for the message before.
    let answer = |n: usize, text: &'static str| {
        let (app, tenant) = (&app, &tenant);
        async move {
            app.inbound(device, CUSTOMER, text, None).await;
            crate::rules::settle(app, tenant).await;
            let outbox = app.outbox(device).await;
            assert_eq!(outbox.len(), n, "{outbox:?}");
            outbox.last().map(|m| m["text"].as_str().unwrap_or_default().to_string())
        }
    };
    patch(route("Harga lama")).await;
    assert_eq!(answer(1, "harga 1").await.as_deref(), Some("Harga lama"));
    patch(route("Harga baru")).await;
    assert_eq!(answer(2, "harga 2").await.as_deref(), Some("Harga baru"), "the new config counts at once");
    patch(json!({"enabled": false})).await;
    assert_eq!(answer(2, "harga 3").await.as_deref(), Some("Harga baru"), "a disabled plugin is silent");
    patch(json!({"enabled": true})).await;
    assert_eq!(answer(3, "harga 4").await.as_deref(), Some("Harga baru"), "enabled again, it answers");
    let (status, _) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    upload(&app, &tenant, "echo", &[]).await;
    assert_eq!(answer(4, "harga 5").await.as_deref(), Some("echo: harga 5"), "deleted, and a new one counts");
}

#[tokio::test]
async fn a_plugin_failing_repeatedly_is_disabled_and_plugin_failed_is_delivered() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.plugins.disable_after_failures = 3;
        c.plugins.reenable_cooldown = 0;
    })
    .await;
    let (tenant, device) = setup(&app).await;
    let (status, body) = app
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["plugin.failed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let trap = upload(&app, &tenant, "trap", &[]).await;
    let id = trap["id"].as_i64().unwrap();
    for n in 1..=3 {
        app.inbound(device, CUSTOMER, &format!("pesan {n}"), None).await;
        runs(&app, &tenant, id, n).await;
    }
    let events = receiver.wait_for(3, WAIT).await;
    let data: Vec<Value> = events.iter().map(|r| r.json()["data"].clone()).collect();
    assert!(events.iter().all(|r| r.json()["type"] == "plugin.failed"));
    assert!(data.iter().all(|d| d["plugin_id"] == id && d["outcome"] == "trap"), "{data:?}");
    assert_eq!(data.iter().filter(|d| d["disabled"] == true).count(), 1, "{data:?}");
    let disabled = plugin(&app, &tenant, id).await;
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["disabled_reason"].as_str().unwrap().contains('3'), "{disabled}");
    // A disabled plugin does not run.
    app.inbound(device, CUSTOMER, "pesan 4", None).await;
    upload(&app, &tenant, "echo", &[]).await;
    app.inbound(device, CUSTOMER, "pesan 5", None).await;
    wait_outbox(&app, device, 1).await;
    assert_eq!(runs(&app, &tenant, id, 3).await.len(), 3);
    // Enabling it again clears the count.
    let (_, enabled) =
        app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &json!({"enabled": true})).await;
    assert_eq!(enabled["failures"], 0);
    assert!(enabled["disabled_reason"].is_null());
}

#[tokio::test]
async fn junk_wrong_world_and_oversized_uploads_are_refused() {
    let app = TestApp::spawn_with(|c| c.plugins.max_size = 200_000).await;
    let tenant = app.create_tenant("premium").await;
    let junk = b"this is not webassembly".to_vec();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    for (name, bytes) in [("junk", junk), ("core", core_module), ("empty", empty_component)] {
        let (status, body) = upload_form(&app, &tenant, name, &bytes, &[]).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(body["error"]["message"].as_str().unwrap().contains("not a valid plugin"), "{name}: {body}");
    }
    let big = vec![0u8; 200_001];
    let (status, body) = upload_form(&app, &tenant, "big", &big, &[]).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let request = app
        .request(Method::POST, "/api/user/plugins?name=x")
        .header("x-api-key", &tenant.api_key)
        .header("content-type", "text/plain")
        .body("hello");
    let (status, body) = app.send(request).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let (_, list) = app.get("/api/user/plugins", &tenant.api_key).await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn the_package_limit_holds() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    app.set_limits(&tenant, json!({"plugins": 1})).await;
    upload(&app, &tenant, "echo", &[]).await;
    let (status, body) = upload_form(&app, &tenant, "echo-2", &component("echo"), &[]).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
}

#[tokio::test]
async fn a_dry_run_returns_the_decision_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let echo = upload(&app, &tenant, "echo", &[("enabled", "false")]).await;
    let (status, body) = app
        .post(&format!("/api/user/plugins/{}/test", echo["id"]), &tenant.api_key, &json!({"text": "tes"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "success");
    assert_eq!(body["decision"]["actions"][0]["text"], "echo: tes", "{body}");
    assert_eq!(body["decision"]["stop"], false);
    let hours = upload(&app, &tenant, "business-hours", &[]).await;
    // Never open: every message is outside the hours and gets the configured answer.
    let closed = json!({"days": [], "reply": "Kami sedang tutup"});
    let (_, body) = app
        .post(&format!("/api/user/plugins/{}/test", hours["id"]), &tenant.api_key, &json!({"config": closed}))
        .await;
    assert_eq!(body["decision"]["actions"][0]["text"], "Kami sedang tutup", "{body}");
    // Open every day around the clock: nothing to say.
    let open = json!({"days": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00", "reply": "tutup"});
    let (_, body) = app
        .post(&format!("/api/user/plugins/{}/test", hours["id"]), &tenant.api_key, &json!({"config": open}))
        .await;
    assert_eq!(body["outcome"], "success", "{body}");
    assert_eq!(body["decision"]["actions"], json!([]), "{body}");
    assert!(app.outbox(device).await.is_empty());
    let request = app
        .request(Method::GET, "/api/user/webhook-logs")
        .header("x-api-key", &tenant.api_key)
        .query(&[("kind", "plugin")]);
    let (_, logs) = app.send(request).await;
    assert_eq!(logs["total"], 0, "a dry run records nothing: {logs}");
}

#[tokio::test]
async fn another_tenants_plugins_and_devices_are_not_found() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let b = app.create_tenant("premium").await;
    let echo = upload(&app, &a, "echo", &[]).await;
    let path = format!("/api/user/plugins/{}", echo["id"]);
    let (status, body) = app.get(&path, &b.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.patch(&path, &b.api_key, &json!({"enabled": false})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.post(&format!("{path}/test"), &b.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&path, &b.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // B's device cannot be attached to A's plugin.
    let device_b = app.pair_device(&b, "6281381830654").await;
    let (status, body) = app.patch(&path, &a.api_key, &json!({"devices": [device_b]})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = app.delete(&path, &a.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_restart_loads_the_stored_compiled_plugin_without_compiling_again() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let echo = upload(&app, &tenant, "echo", &[]).await;
    let compiled_at = echo["compiled_at"].clone();
    assert!(compiled_at.is_string(), "{echo}");
    let app = app.restart().await;
    app.wait_for_device_status(&tenant, device, "connected").await;
    app.inbound(device, CUSTOMER, "setelah restart", None).await;
    assert_eq!(wait_outbox(&app, device, 1).await[0]["text"], "echo: setelah restart");
    let after = plugin(&app, &tenant, echo["id"].as_i64().unwrap()).await;
    assert_eq!(after["compiled_at"], compiled_at, "loaded from the stored artefact, not compiled again");
}
