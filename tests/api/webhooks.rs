//! Webhooks: endpoints, signed durable delivery, retries, disabling, rotation, private targets,
//! reply mode and the log — against a real HTTP receiver on 127.0.0.1. Endpoints and the log
//! here; delivery and reply mode in the files next to this one.

mod delivery;
pub mod receiver;
mod reply;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wa_gateway::Config;

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use receiver::{Answer, Received, Receiver};

const DEVICE: &str = "6281381830651";
const CUSTOMER: &str = "6281234567890";

/// Test defaults: loopback receivers allowed, a short retry schedule and timeouts.
fn fast(c: &mut Config) {
    c.webhooks.allow_private_targets = true;
    c.webhooks.retry_schedule = vec![0, 1, 1];
    c.webhooks.timeout = 5;
    c.webhooks.reply_timeout = 2;
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(fast).await
}

/// Registers an endpoint; returns its JSON (with `secret`).
async fn create(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    let (status, created) = app.post("/api/user/webhooks", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// A tenant with a paired device and an endpoint for `events` at `url`: (tenant, device id,
/// endpoint id, secret).
async fn setup(app: &TestApp, url: &str, events: &[&str]) -> (TestTenant, i64, i64, String) {
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let endpoint = create(app, &tenant, json!({ "url": url, "events": events })).await;
    let secret = endpoint["secret"].as_str().expect("a secret").to_string();
    (tenant, device, endpoint["id"].as_i64().unwrap(), secret)
}

async fn logs(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)]) -> Value {
    let request =
        app.request(Method::GET, "/api/user/webhook-logs").header("x-api-key", &tenant.api_key).query(query);
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the log holds `n` rows matching `query`; returns them (newest first).
async fn wait_logs(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)], n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let body = logs(app, tenant, query).await;
        let rows = body["data"].as_array().unwrap().clone();
        (rows.len() >= n).then_some(rows)
    })
    .await
}

async fn endpoint(app: &TestApp, tenant: &TestTenant, id: i64) -> Value {
    let (status, body) = app.get(&format!("/api/user/webhooks/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn event_types(requests: &[Received]) -> Vec<String> {
    requests.iter().map(|r| r.json()["type"].as_str().unwrap_or_default().to_string()).collect()
}

// --- Endpoints -----------------------------------------------------------------------------

#[tokio::test]
async fn endpoints_are_created_listed_changed_and_deleted_and_the_secret_shows_only_twice() {
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let created =
        create(&app, &tenant, json!({"url": "http://127.0.0.1:9/hook", "description": "CRM"})).await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.decode(&secret[6..]).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(created["mode"], "notify");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["device"], Value::Null);
    assert_eq!(created["events"].as_array().unwrap().len(), 16, "all events by default: {created}");

    let (status, list) = app.get("/api/user/webhooks", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert!(list["data"][0].get("secret").is_none(), "no secret in lists: {list}");
    let got = endpoint(&app, &tenant, id).await;
    assert!(got.get("secret").is_none(), "no secret in reads: {got}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["webhook_endpoints"], 1, "{limits}");
    assert_eq!(got["description"], "CRM");

    let (status, changed) = app
        .patch(
            &format!("/api/user/webhooks/{id}"),
            &tenant.api_key,
            &json!({"events": ["message.received", "message.received"], "mode": "reply", "device": DEVICE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["events"], json!(["message.received"]));
    assert_eq!(changed["mode"], "reply");
    assert_eq!(changed["device"], DEVICE);
    assert_eq!(changed["device_id"], device);
    assert_eq!(changed["url"], "http://127.0.0.1:9/hook", "unchanged fields stay");
    assert!(changed.get("secret").is_none());

    let (status, off) = app
        .patch(
            &format!("/api/user/webhooks/{id}"),
            &tenant.api_key,
            &json!({"enabled": false, "device": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!((off["enabled"].clone(), off["device"].clone()), (json!(false), Value::Null));
    assert_eq!(off["disabled_reason"], "disabled by you");
    let (_, on) =
        app.patch(&format!("/api/user/webhooks/{id}"), &tenant.api_key, &json!({"enabled": true})).await;
    assert_eq!((on["enabled"].clone(), on["disabled_reason"].clone()), (json!(true), Value::Null), "{on}");

    let (status, rotated) =
        app.post(&format!("/api/user/webhooks/{id}/rotate-secret"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    let other = app.create_tenant("premium").await;
    let (status, body) = app.get(&format!("/api/user/webhooks/{id}"), &other.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&format!("/api/user/webhooks/{id}"), &other.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (status, _) = app.delete(&format!("/api/user/webhooks/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/api/user/webhooks/{id}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (_, activity) = app.get("/api/user/activity-logs", &tenant.api_key).await;
    let actions: Vec<&str> =
        activity["data"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    for action in ["webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn invalid_endpoints_are_refused_with_the_field_named() {
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let cases = [
        (json!({}), "url"),
        (json!({"url": "ftp://127.0.0.1/x"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://127.0.0.1/x", "events": []}), "events"),
        (json!({"url": "http://127.0.0.1/x", "events": ["message.deleted"]}), "events"),
        (json!({"url": "http://127.0.0.1/x", "mode": "pull"}), "mode"),
        (json!({"url": "http://127.0.0.1/x", "mode": "reply", "events": ["message.sent"]}), "events"),
        (json!({"url": "http://127.0.0.1/x", "secret": "whsec_x"}), "secret"),
        (json!({"url": "http://127.0.0.1/x", "description": "x".repeat(201)}), "description"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/user/webhooks", &tenant.api_key, &body).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    let (status, answer) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": "http://127.0.0.1/x", "device": "999"}))
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (status, reply) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": "http://127.0.0.1/x", "mode": "reply"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["events"], json!(["message.received"]), "reply mode defaults to message.received");
}

#[tokio::test]
async fn the_endpoint_limit_holds_under_concurrency() {
    let app = spawn().await;
    let tenant = app.create_tenant("basic").await; // webhook_endpoints = 2
    let tries = (0..8).map(|i| {
        let body = json!({"url": format!("http://127.0.0.1:9/{i}")});
        let request =
            app.request(Method::POST, "/api/user/webhooks").header("x-api-key", &tenant.api_key).json(&body);
        app.send(request)
    });
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 2, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
        assert_eq!(body["error"]["limit"], "webhook_endpoints");
    }
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let mut urls: Vec<String> = [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
        "http://0x7f.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ]
    .map(String::from)
    .to_vec();
    // A name other than `localhost` that resolves to loopback: this machine's own host name,
    // when /etc/hosts points it at 127.0.x.x (as Debian does).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let resolves_to_loopback = match tokio::net::lookup_host((host.as_str(), 80)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    };
    if resolves_to_loopback && host != "localhost" {
        urls.push(format!("http://{host}:8080/hook"));
    } else {
        eprintln!("note: the host name `{host}` does not resolve to loopback here; that case is skipped");
    }
    for url in &urls {
        let (status, body) = app.post("/api/user/webhooks", &tenant.api_key, &json!({ "url": url })).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], "url", "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not allowed"), "{url}: {body}");
    }
    let (_, list) = app.get("/api/user/webhooks", &tenant.api_key).await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn a_target_that_became_private_is_blocked_at_delivery() {
    let receiver = Receiver::start().await;
    let app = spawn().await;
    let (tenant, device, id, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    // The operator turns private targets off: the registered loopback URL may no longer be
    // reached, and the resolver refuses `localhost` names the same way.
    let app = app.restart_with(|c| c.webhooks.allow_private_targets = false).await;
    app.wait_for_device_status(&tenant, device, "connected").await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    let rows = wait_logs(&app, &tenant, &[("webhook", &id.to_string())], 1).await;
    assert_eq!(rows[0]["outcome"], "blocked", "{rows:?}");
    assert!(rows[0]["error"].as_str().unwrap().contains("not allowed"), "{rows:?}");
    assert!(receiver.requests().is_empty(), "nothing reached the receiver");
}

// --- Logs -----------------------------------------------------------------------------------

#[tokio::test]
async fn logs_are_filtered_and_a_row_is_retried_with_the_same_id() {
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    other.answer(Answer::status(500));
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.retry_schedule = vec![0];
    })
    .await;
    let (tenant, device, good, _) = setup(&app, &receiver.url("/hook"), &["message.received"]).await;
    let failing =
        create(&app, &tenant, json!({"url": other.url("/hook"), "events": ["message.received"]})).await;
    let failing = failing["id"].as_i64().unwrap();
    let before = chrono::Utc::now().to_rfc3339();
    app.inbound(device, CUSTOMER, "halo", None).await;
    wait_logs(&app, &tenant, &[], 2).await;

    let by_endpoint = logs(&app, &tenant, &[("webhook", &failing.to_string())]).await;
    assert_eq!(by_endpoint["total"], 1);
    let row = by_endpoint["data"][0].clone();
    assert_eq!(row["outcome"], "failure");
    assert_eq!(logs(&app, &tenant, &[("outcome", "success")]).await["total"], 1);
    let by_good = logs(&app, &tenant, &[("webhook", &good.to_string())]).await;
    assert_eq!(
        (by_good["total"].clone(), by_good["data"][0]["outcome"].clone()),
        (json!(1), json!("success"))
    );
    assert_eq!(logs(&app, &tenant, &[("event", "message.received")]).await["total"], 2);
    assert_eq!(logs(&app, &tenant, &[("event", "device.qr")]).await["total"], 0);
    assert_eq!(logs(&app, &tenant, &[("since", &before)]).await["total"], 2);
    assert_eq!(logs(&app, &tenant, &[("since", "2100-01-01")]).await["total"], 0);
    assert_eq!(logs(&app, &tenant, &[("plugin", "1")]).await["total"], 0, "the plugin filter is accepted");
    let request = app
        .request(Method::GET, "/api/user/webhook-logs")
        .header("x-api-key", &tenant.api_key)
        .query(&[("since", "yesterday")]);
    let (status, body) = app.send(request).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let stranger = app.create_tenant("basic").await;
    assert_eq!(logs(&app, &stranger, &[]).await["total"], 0, "another tenant sees none");
    let (status, body) =
        app.post(&format!("/api/user/webhook-logs/{}/retry", row["id"]), &stranger.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // The receiver is fixed; the failed attempt is sent again, with the same webhook-id.
    other.answer(Answer::json(json!({})));
    let (status, retry) =
        app.post(&format!("/api/user/webhook-logs/{}/retry", row["id"]), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retry}");
    assert_eq!(retry["webhook_id"], row["webhook_id"]);
    assert_eq!(retry["attempt"], 2);
    let got = other.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    let rows =
        wait_logs(&app, &tenant, &[("webhook", &failing.to_string()), ("outcome", "success")], 1).await;
    assert_eq!(rows[0]["attempt"], 2);
    assert_eq!(rows[0]["webhook_id"], row["webhook_id"]);
}
