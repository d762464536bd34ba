//! Webhook transformations through the real server: `slack-notify` attached to an endpoint
//! whose receiver (a real HTTP server on 127.0.0.1) answers like Slack's incoming webhooks and
//! checks the Standard Webhooks signature; skipped events; a failing transformation that sends
//! nothing and is retried once fixed; a retry that sends the same request without running the
//! plugin again; the checks on `transform_plugin_id`; the dry run of a transformation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use super::{runs, setup, upload, wait_outbox, CUSTOMER, DEVICE};
use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::{verifies, Received};

/// What the Slack-like receiver got: the request, and whether it was a well-formed Slack
/// message with a valid signature.
#[derive(Default)]
struct Hook {
    secret: Mutex<Option<String>>,
    got: Mutex<Vec<(Received, Result<(), String>)>>,
    /// Answers 503 to this many requests first (a receiver that is down for a moment).
    fail_first: Mutex<usize>,
}

/// A receiver that answers as Slack's incoming webhooks do (`ok`, or 400 `invalid_payload`)
/// and also verifies the Standard Webhooks signature the gateway adds.
struct SlackHook {
    addr: std::net::SocketAddr,
    hook: Arc<Hook>,
}

impl SlackHook {
    async fn start() -> SlackHook {
        let hook = Arc::new(Hook::default());
        let app = Router::new().fallback(slack).with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        SlackHook { addr, hook }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn verify_with(&self, secret: &str) {
        *self.hook.secret.lock().unwrap() = Some(secret.to_string());
    }

    fn fail_first(&self, n: usize) {
        *self.hook.fail_first.lock().unwrap() = n;
    }

    fn got(&self) -> Vec<(Received, Result<(), String>)> {
        self.hook.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<(Received, Result<(), String>)> {
        poll_until(WAIT, || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn slack(State(hook): State<Arc<Hook>>, request: axum::extract::Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap().to_vec();
    let received = Received { method, path, query, headers, body, at: Instant::now() };
    let secret = hook.secret.lock().unwrap().clone();
    let verdict = check_slack(&received, secret.as_deref());
    hook.got.lock().unwrap().push((received, verdict.clone()));
    {
        let mut fail = hook.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "down for a moment").into_response();
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    match verdict {
        Ok(()) => (StatusCode::OK, headers, "ok").into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, headers, format!("invalid_payload: {why}")).into_response(),
    }
}

/// What Slack accepts from an incoming webhook: a JSON object with a non-empty `text`, and
/// `blocks` (when present) a list of objects with a `type`. Plus the gateway's signature.
fn check_slack(request: &Received, secret: Option<&str>) -> Result<(), String> {
    if request.method != "POST" {
        return Err(format!("method {}", request.method));
    }
    if !request.header("content-type").starts_with("application/json") {
        return Err(format!("content-type {}", request.header("content-type")));
    }
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| format!("not JSON: {e}"))?;
    match body["text"].as_str() {
        Some(text) if !text.trim().is_empty() => {}
        _ => return Err("no text".into()),
    }
    if let Some(blocks) = body.get("blocks") {
        let ok = blocks.as_array().is_some_and(|list| list.iter().all(|b| b["type"].is_string()));
        if !ok {
            return Err("blocks are not a list of typed objects".into());
        }
    }
    let Some(secret) = secret else { return Err("no secret to verify with yet".into()) };
    if !verifies(secret, request) {
        return Err("the signature does not verify".into());
    }
    Ok(())
}

/// The server with loopback webhook targets and a short retry schedule.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.webhooks.retry_schedule = vec![0, 1, 1];
    })
    .await
}

/// Creates a `notify` endpoint; returns its JSON (with the secret).
async fn endpoint(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    let (status, created) = app.post("/api/user/webhooks", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The tenant's `webhook` log rows, newest first, once there are at least `n`.
async fn deliveries(app: &TestApp, tenant: &TestTenant, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let request = app
            .request(Method::GET, "/api/user/webhook-logs")
            .header("x-api-key", &tenant.api_key)
            .query(&[("kind", "webhook")]);
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["data"].as_array().unwrap().clone();
        (rows.len() >= n).then_some(rows)
    })
    .await
}

async fn patch_plugin(app: &TestApp, tenant: &TestTenant, id: i64, body: Value) {
    let (status, answer) = app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn slack_notify_sends_a_signed_slack_message_and_skips_what_it_is_not_set_for() {
    let hook = SlackHook::start().await;
    hook.fail_first(1);
    let app = spawn().await;
    let (tenant, device) = setup(&app).await;
    let plugin = upload(&app, &tenant, "slack-notify", &[]).await;
    assert_eq!(plugin["kind"], "transform", "{plugin}");
    let plugin_id = plugin["id"].as_i64().unwrap();
    let created = endpoint(
        &app,
        &tenant,
        json!({
            "url": hook.url("/services/T0/B0/XYZ"),
            "events": ["message.received", "message.sent"],
            "transform_plugin_id": plugin_id,
        }),
    )
    .await;
    assert_eq!(created["transform_plugin_id"], plugin_id, "{created}");
    hook.verify_with(created["secret"].as_str().unwrap());

    // A message arrives: the first attempt meets a receiver that is down, the retry gets
    // through; both carry the same transformed request under the same id.
    app.inbound(device, CUSTOMER, "halo, stok <kopi> ada?", Some("Budi")).await;
    let got = hook.wait_for(2).await;
    let (first, _) = &got[0];
    let (second, verdict) = &got[1];
    assert_eq!(
        *verdict,
        Ok(()),
        "Slack and the signature accept it: {:?}",
        String::from_utf8_lossy(&second.body)
    );
    assert_eq!((second.path.as_str(), second.query.as_str()), ("/services/T0/B0/XYZ", ""));
    let body = second.json();
    assert_eq!(body["text"], format!("*Budi* (+{CUSTOMER}): halo, stok &lt;kopi&gt; ada?"), "{body}");
    assert_eq!(body["blocks"][0]["text"]["text"], body["text"]);
    assert!(
        body["blocks"][1]["elements"][0]["text"].as_str().unwrap().contains(&format!("+{DEVICE}")),
        "{body}"
    );
    assert_eq!(first.body, second.body, "a retry sends the same request");
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    assert!(second.header("webhook-id").starts_with("msg_"));

    let rows = deliveries(&app, &tenant, 2).await;
    assert_eq!(rows[0]["outcome"], "success", "{}", rows[0]);
    assert_eq!(rows[1]["outcome"], "failure", "{}", rows[1]);
    assert_eq!(rows[0]["event"], "message.received");
    assert!(rows[0]["request"].as_str().unwrap().contains("halo, stok"), "the log shows what was sent");
    // The plugin ran once for the two attempts, and its run row points at the delivery.
    let runs_now = runs(&app, &tenant, plugin_id, 1).await;
    assert_eq!(runs_now.len(), 1, "{runs_now:?}");
    assert_eq!(runs_now[0]["outcome"], "success");
    assert_eq!(runs_now[0]["event"], "message.received");
    assert_eq!(runs_now[0]["webhook"], created["id"]);
    assert_eq!(runs_now[0]["webhook_id"], rows[0]["webhook_id"]);
    assert!(runs_now[0]["response"].as_str().unwrap().contains("\"transformed\""), "{}", runs_now[0]);

    // A message sent through the API: the endpoint hears `message.sent`, which the plugin is
    // not set for; nothing goes to Slack and the delivery is `skipped`.
    let (status, sent) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({"device": DEVICE, "to": CUSTOMER, "text": "Siap kak"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let rows = deliveries(&app, &tenant, 3).await;
    assert_eq!(rows[0]["event"], "message.sent");
    assert_eq!(rows[0]["outcome"], "skipped", "{}", rows[0]);
    assert_eq!(hook.got().len(), 2, "nothing more reached the receiver");
    // A skip is not a failure of the endpoint.
    let (_, endpoint_now) = app.get(&format!("/api/user/webhooks/{}", created["id"]), &tenant.api_key).await;
    assert_eq!(endpoint_now["failing_since"], Value::Null, "{endpoint_now}");

    // Set for `message.sent` too, the next one goes out as one line naming the event.
    patch_plugin(
        &app,
        &tenant,
        plugin_id,
        json!({"config": {"events": ["message.received", "message.sent"]}}),
    )
    .await;
    let (status, _) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({"device": DEVICE, "to": CUSTOMER, "text": "Terima kasih"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = hook.wait_for(3).await;
    assert_eq!(got[2].1, Ok(()));
    let text = got[2].0.json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("`message.sent`") && text.contains("status: sent"), "{text}");
    let _ = wait_outbox(&app, device, 2).await;
}

#[tokio::test]
async fn a_failing_transformation_sends_nothing_and_its_delivery_is_retried_once_fixed() {
    let hook = SlackHook::start().await;
    let app = spawn().await;
    let (tenant, device) = setup(&app).await;
    let plugin = upload(&app, &tenant, "slack-notify", &[("config", r#"{"events": 5}"#)]).await;
    let plugin_id = plugin["id"].as_i64().unwrap();
    let created = endpoint(
        &app,
        &tenant,
        json!({"url": hook.url("/hook"), "events": ["message.received"], "transform_plugin_id": plugin_id}),
    )
    .await;
    hook.verify_with(created["secret"].as_str().unwrap());

    app.inbound(device, CUSTOMER, "pesan pertama", None).await;
    let rows = deliveries(&app, &tenant, 1).await;
    assert_eq!(rows[0]["outcome"], "transform_failed", "{}", rows[0]);
    let error = rows[0]["error"].as_str().unwrap();
    assert!(
        error.contains("slack-notify") && error.contains("bad config") && error.contains("events"),
        "{error}"
    );
    let run = runs(&app, &tenant, plugin_id, 1).await;
    assert_eq!(run[0]["outcome"], "error", "{}", run[0]);
    assert!(hook.got().is_empty(), "nothing was sent");
    let (_, endpoint_now) = app.get(&format!("/api/user/webhooks/{}", created["id"]), &tenant.api_key).await;
    assert_eq!(endpoint_now["failing_since"], Value::Null, "the receiver is not to blame: {endpoint_now}");
    assert_eq!(endpoint_now["enabled"], true);

    // Fixed, the logged delivery is retried: the plugin runs again and the message goes out.
    patch_plugin(&app, &tenant, plugin_id, json!({"config": {}})).await;
    let row = rows[0]["id"].as_i64().unwrap();
    let (status, retried) =
        app.post(&format!("/api/user/webhook-logs/{row}/retry"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].1, Ok(()), "{:?}", String::from_utf8_lossy(&got[0].0.body));
    assert!(got[0].0.json()["text"].as_str().unwrap().ends_with(": pesan pertama"));
    assert_eq!(got[0].0.header("webhook-id"), rows[0]["webhook_id"].as_str().unwrap());
    let rows = deliveries(&app, &tenant, 2).await;
    assert_eq!(rows[0]["outcome"], "success", "{}", rows[0]);
}

#[tokio::test]
async fn transform_plugin_id_must_name_a_transformation_of_the_tenant_for_a_notify_endpoint() {
    let app = spawn().await;
    let (tenant, device) = setup(&app).await;
    let echo = upload(&app, &tenant, "echo", &[]).await;
    assert_eq!(echo["kind"], "auto_reply");
    let slack = upload(&app, &tenant, "slack-notify", &[]).await;
    let (echo_id, slack_id) = (echo["id"].as_i64().unwrap(), slack["id"].as_i64().unwrap());
    let url = "http://127.0.0.1:9/hook";

    let (status, body) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": url, "transform_plugin_id": echo_id}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("auto-reply"), "{body}");
    let (status, body) = app
        .post("/api/user/webhooks", &tenant.api_key, &json!({"url": url, "transform_plugin_id": 999_999}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let reply = json!({"url": url, "mode": "reply", "transform_plugin_id": slack_id});
    let (status, body) = app.post("/api/user/webhooks", &tenant.api_key, &reply).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Another tenant's transformation is not one of yours.
    let other = app.create_tenant("premium").await;
    let (status, body) = app
        .post("/api/user/webhooks", &other.api_key, &json!({"url": url, "transform_plugin_id": slack_id}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // In use, the transformation cannot be deleted; removed from the endpoint (`null`), it can.
    let created = endpoint(&app, &tenant, json!({"url": url, "transform_plugin_id": slack_id})).await;
    let id = created["id"].as_i64().unwrap();
    let (status, body) = app.delete(&format!("/api/user/plugins/{slack_id}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = app
        .patch(&format!("/api/user/webhooks/{id}"), &tenant.api_key, &json!({"description": "Slack"}))
        .await;
    assert_eq!(body["transform_plugin_id"], slack_id, "a PATCH without it keeps it: {body}");
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .patch(&format!("/api/user/webhooks/{id}"), &tenant.api_key, &json!({"transform_plugin_id": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transform_plugin_id"], Value::Null);
    let (status, _) = app.delete(&format!("/api/user/plugins/{slack_id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A transformation never runs for inbound messages: echo answers, and only echo ran.
    let slack = upload(&app, &tenant, "slack-notify", &[]).await;
    app.inbound(device, CUSTOMER, "halo", None).await;
    wait_outbox(&app, device, 1).await;
    runs(&app, &tenant, echo_id, 1).await;
    let request = app
        .request(Method::GET, "/api/user/webhook-logs")
        .header("x-api-key", &tenant.api_key)
        .query(&[("kind", "plugin"), ("plugin", &slack["id"].to_string())]);
    let (_, body) = app.send(request).await;
    assert_eq!(body["data"], json!([]), "{body}");
}

#[tokio::test]
async fn a_dry_run_shows_the_request_a_transformation_would_send() {
    let app = spawn().await;
    let (tenant, _) = setup(&app).await;
    let slack = upload(&app, &tenant, "slack-notify", &[]).await;
    let id = slack["id"].as_i64().unwrap();
    let dry_run = |body: Value| {
        let app = &app;
        let key = tenant.api_key.clone();
        async move {
            let request = app
                .request(Method::POST, &format!("/api/user/plugins/{id}/test"))
                .header("x-api-key", key)
                .json(&body);
            app.send(request).await
        }
    };
    let (status, answer) = dry_run(json!({"text": "ada promo?", "push_name": "Sari"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "success", "{answer}");
    assert_eq!(answer["transformed"]["action"], "send", "{answer}");
    assert_eq!(answer["transformed"]["content_type"], "application/json");
    let body: Value = serde_json::from_str(answer["transformed"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["text"], "*Sari* (+6281234567890): ada promo?");
    assert!(answer["logs"][0]["message"].as_str().unwrap().contains("→ Slack"), "{answer}");

    let (_, answer) =
        dry_run(json!({"event": "device.status", "data": {"device": DEVICE, "status": "connected"}})).await;
    assert_eq!(answer["transformed"], json!({"action": "skip"}), "{answer}");
    let (_, answer) = dry_run(json!({
        "event": "device.status",
        "data": {"device": DEVICE, "status": "connected"},
        "config": {"events": ["device.status"]},
    }))
    .await;
    let body: Value = serde_json::from_str(answer["transformed"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["text"], "`device.status` · status: connected", "{answer}");
    let (status, answer) = dry_run(json!({"event": "message.unknown"})).await;
    assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // A dry run records nothing.
    let (_, plugin) = app.get(&format!("/api/user/plugins/{id}"), &tenant.api_key).await;
    assert_eq!(plugin["runs"], 0, "{plugin}");
}
