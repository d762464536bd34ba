//! API keys limited to some devices: such a key sees no other device, nor anything of one
//! (404, as another tenant's), may not act on the whole account (403), and makes keys only
//! within its own devices. Every operation of the OpenAPI document that names an object in its
//! path is walked with a one-device key against the other device's objects.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};

const BUDI: &str = "6281234567890";
const SITI: &str = "6285712345678";

/// A key of `tenant` limited to `devices`, with every scope.
async fn key_for(app: &TestApp, tenant: &TestTenant, devices: Value) -> (String, Value) {
    let (status, body) = app
        .post("/api/user/api-keys", &tenant.api_key, &json!({"name": "one shop", "devices": devices}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (body["api_key"].as_str().unwrap().to_string(), body)
}

async fn created(app: &TestApp, path: &str, key: &str, body: Value) -> i64 {
    let (status, answer) = app.post(path, key, &body).await;
    assert!(status.is_success(), "{path} {body}: {status} {answer}");
    answer["id"].as_i64().unwrap_or_else(|| answer["message_id"].as_i64().expect("an id"))
}

/// Ids in a list answer's `data`.
fn ids(list: &Value, field: &str) -> Vec<i64> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .filter_map(|r| r[field].as_i64())
        .collect()
}

/// The objects of one device, made with the tenant's full key.
struct Objects {
    device: i64,
    sent: i64,
    received: i64,
    schedule: i64,
    rule: i64,
    webhook: i64,
    plugin: i64,
    plugin_log: i64,
    key: i64,
}

async fn objects_of(app: &TestApp, tenant: &TestTenant, device: i64, customer: &str) -> Objects {
    let key = &tenant.api_key;
    let echo = crate::plugins::component("echo");
    let name = format!("echo-{device}");
    let (status, plugin) =
        crate::plugins::upload_form(app, tenant, &name, &echo, &[("devices", &device.to_string())]).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    let plugin = plugin["id"].as_i64().unwrap();
    let sent = created(
        app,
        "/api/send-message",
        key,
        json!({"device": device, "to": customer, "text": "Pesanan siap"}),
    )
    .await;
    app.inbound(device, customer, "halo kak", Some("Budi")).await;
    let received = poll_until(WAIT, || async {
        let (_, list) = app.get(&format!("/api/user/chat-history?device={device}&direction=in"), key).await;
        ids(&list, "id").first().copied()
    })
    .await;
    let plugin_log = poll_until(WAIT, || async {
        let path = format!("/api/user/webhook-logs?kind=plugin&plugin={plugin}");
        let (_, logs) = app.get(&path, key).await;
        ids(&logs, "id").first().copied()
    })
    .await;
    let schedule = created(
        app,
        "/api/user/scheduled-messages",
        key,
        json!({"device": device, "to": customer, "text": "Promo", "send_at": "2099-01-01T09:00:00Z"}),
    )
    .await;
    let rule = created(
        app,
        "/api/user/auto-reply",
        key,
        json!({"device": device, "keyword": "harga", "reply": "10rb"}),
    )
    .await;
    let webhook = created(
        app,
        "/api/user/webhooks",
        key,
        json!({"device": device, "url": "http://127.0.0.1:9/hook", "events": ["message.received"]}),
    )
    .await;
    let (_, made) = app.post("/api/user/api-keys", key, &json!({"devices": [device]})).await;
    Objects {
        device,
        sent,
        received,
        schedule,
        rule,
        webhook,
        plugin,
        plugin_log,
        key: made["id"].as_i64().expect("a key"),
    }
}

/// Every operation with an object in its path, aimed at `o`'s objects, with a body that
/// passes the request's own checks (so only the lookup can refuse it).
fn operations(o: &Objects) -> Vec<(Method, String, &'static str, Option<Value>)> {
    let d = o.device;
    let chat = format!("{BUDI}@s.whatsapp.net");
    let group = "120363000000000001@g.us";
    let get = Method::GET;
    let post = Method::POST;
    let (put, patch, delete) = (Method::PUT, Method::PATCH, Method::DELETE);
    vec![
        (delete.clone(), format!("/api/user/api-keys/{}", o.key), "/api/user/api-keys/{id}", None),
        (get.clone(), format!("/api/user/auto-reply/{}", o.rule), "/api/user/auto-reply/{id}", None),
        (
            put,
            format!("/api/user/auto-reply/{}", o.rule),
            "/api/user/auto-reply/{id}",
            Some(json!({"reply": "x"})),
        ),
        (delete.clone(), format!("/api/user/auto-reply/{}", o.rule), "/api/user/auto-reply/{id}", None),
        (get.clone(), format!("/api/user/chat-history/{}", o.received), "/api/user/chat-history/{id}", None),
        (
            post.clone(),
            format!("/api/user/chats/{chat}/read?device={d}"),
            "/api/user/chats/{chat}/read",
            None,
        ),
        (get.clone(), format!("/api/user/contacts/{chat}?device={d}"), "/api/user/contacts/{jid}", None),
        (
            post.clone(),
            format!("/api/user/contacts/{chat}/block?device={d}"),
            "/api/user/contacts/{jid}/block",
            None,
        ),
        (
            post.clone(),
            format!("/api/user/contacts/{chat}/unblock?device={d}"),
            "/api/user/contacts/{jid}/unblock",
            None,
        ),
        (get.clone(), format!("/api/user/devices/{d}"), "/api/user/devices/{id}", None),
        (
            patch.clone(),
            format!("/api/user/devices/{d}"),
            "/api/user/devices/{id}",
            Some(json!({"name": "x"})),
        ),
        (
            post.clone(),
            format!("/api/user/devices/{d}/check-numbers"),
            "/api/user/devices/{id}/check-numbers",
            Some(json!({"numbers": [BUDI]})),
        ),
        (get.clone(), format!("/api/user/devices/{d}/events"), "/api/user/devices/{id}/events", None),
        (get.clone(), format!("/api/user/devices/{d}/groups"), "/api/user/devices/{id}/groups", None),
        (
            post.clone(),
            format!("/api/user/devices/{d}/groups"),
            "/api/user/devices/{id}/groups",
            Some(json!({"subject": "Toko", "participants": [BUDI]})),
        ),
        (
            post.clone(),
            format!("/api/user/devices/{d}/groups/join"),
            "/api/user/devices/{id}/groups/join",
            Some(json!({"invite": "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"})),
        ),
        (
            get.clone(),
            format!("/api/user/devices/{d}/groups/{group}"),
            "/api/user/devices/{id}/groups/{group}",
            None,
        ),
        (
            patch.clone(),
            format!("/api/user/devices/{d}/groups/{group}"),
            "/api/user/devices/{id}/groups/{group}",
            Some(json!({"subject": "x"})),
        ),
        (
            get.clone(),
            format!("/api/user/devices/{d}/groups/{group}/invite"),
            "/api/user/devices/{id}/groups/{group}/invite",
            None,
        ),
        (
            delete.clone(),
            format!("/api/user/devices/{d}/groups/{group}/invite"),
            "/api/user/devices/{id}/groups/{group}/invite",
            None,
        ),
        (
            post.clone(),
            format!("/api/user/devices/{d}/groups/{group}/leave"),
            "/api/user/devices/{id}/groups/{group}/leave",
            None,
        ),
        (
            post.clone(),
            format!("/api/user/devices/{d}/groups/{group}/participants"),
            "/api/user/devices/{id}/groups/{group}/participants",
            Some(json!({"action": "add", "participants": [BUDI]})),
        ),
        (
            get.clone(),
            format!("/api/user/devices/{d}/lids?phone={BUDI}"),
            "/api/user/devices/{id}/lids",
            None,
        ),
        (
            get.clone(),
            format!("/api/user/devices/{d}/lids/123456789@lid"),
            "/api/user/devices/{id}/lids/{lid}",
            None,
        ),
        (post.clone(), format!("/api/user/devices/{d}/logout"), "/api/user/devices/{id}/logout", None),
        (post.clone(), format!("/api/user/devices/{d}/pair-code"), "/api/user/devices/{id}/pair-code", None),
        (
            post.clone(),
            format!("/api/user/devices/{d}/presence"),
            "/api/user/devices/{id}/presence",
            Some(json!({"state": "available"})),
        ),
        (get.clone(), format!("/api/user/devices/{d}/qr"), "/api/user/devices/{id}/qr", None),
        (get.clone(), format!("/api/user/messages/{}", o.sent), "/api/user/messages/{id}", None),
        (
            patch.clone(),
            format!("/api/user/messages/{}", o.sent),
            "/api/user/messages/{id}",
            Some(json!({"text": "x"})),
        ),
        (
            post.clone(),
            format!("/api/user/messages/{}/forward", o.sent),
            "/api/user/messages/{id}/forward",
            Some(json!({"to": SITI})),
        ),
        (
            get.clone(),
            format!("/api/user/messages/{}/media", o.received),
            "/api/user/messages/{id}/media",
            None,
        ),
        (
            post.clone(),
            format!("/api/user/messages/{}/reaction", o.received),
            "/api/user/messages/{id}/reaction",
            Some(json!({"emoji": "👍"})),
        ),
        (
            post.clone(),
            format!("/api/user/messages/{}/read", o.received),
            "/api/user/messages/{id}/read",
            None,
        ),
        (get.clone(), format!("/api/user/plugins/{}", o.plugin), "/api/user/plugins/{id}", None),
        (
            patch.clone(),
            format!("/api/user/plugins/{}", o.plugin),
            "/api/user/plugins/{id}",
            Some(json!({"order": 2})),
        ),
        (
            post.clone(),
            format!("/api/user/plugins/{}/test", o.plugin),
            "/api/user/plugins/{id}/test",
            Some(json!({})),
        ),
        (
            get.clone(),
            format!("/api/user/scheduled-messages/{}", o.schedule),
            "/api/user/scheduled-messages/{id}",
            None,
        ),
        (
            delete.clone(),
            format!("/api/user/scheduled-messages/{}", o.schedule),
            "/api/user/scheduled-messages/{id}",
            None,
        ),
        (
            get.clone(),
            format!("/api/user/webhook-logs/{}", o.plugin_log),
            "/api/user/webhook-logs/{id}",
            None,
        ),
        (
            post.clone(),
            format!("/api/user/webhook-logs/{}/retry", o.plugin_log),
            "/api/user/webhook-logs/{id}/retry",
            None,
        ),
        (get.clone(), format!("/api/user/webhooks/{}", o.webhook), "/api/user/webhooks/{id}", None),
        (
            patch.clone(),
            format!("/api/user/webhooks/{}", o.webhook),
            "/api/user/webhooks/{id}",
            Some(json!({"description": "x"})),
        ),
        (
            post.clone(),
            format!("/api/user/webhooks/{}/rotate-secret", o.webhook),
            "/api/user/webhooks/{id}/rotate-secret",
            None,
        ),
        // The deletes last: the other operations need the objects.
        (delete.clone(), format!("/api/user/messages/{}", o.sent), "/api/user/messages/{id}", None),
        (delete.clone(), format!("/api/user/plugins/{}", o.plugin), "/api/user/plugins/{id}", None),
        (delete.clone(), format!("/api/user/webhooks/{}", o.webhook), "/api/user/webhooks/{id}", None),
        (delete, format!("/api/user/devices/{d}"), "/api/user/devices/{id}", None),
    ]
}

/// A gateway whose webhooks may aim at this machine (the endpoints are never called).
async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await
}

async fn call(
    app: &TestApp,
    key: &str,
    method: &Method,
    path: &str,
    body: &Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.request(method.clone(), path).header("x-api-key", key);
    if let Some(body) = body {
        request = request.json(body);
    }
    app.send(request).await
}

#[tokio::test]
async fn a_one_device_key_finds_nothing_of_the_other_device_on_any_operation() {
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let shop = app.pair_device(&tenant, "6281381830658").await;
    let other = app.pair_device(&tenant, "6281381830659").await;
    let mine = objects_of(&app, &tenant, shop, BUDI).await;
    let theirs = objects_of(&app, &tenant, other, SITI).await;
    let (key, made) = key_for(&app, &tenant, json!([shop])).await;
    assert_eq!(made["devices"], json!([shop]), "{made}");

    // The walk must cover every operation that names an object in its path.
    let walked: Vec<(Method, String, &str, Option<Value>)> = operations(&theirs);
    let (_, doc) = app.send(app.request(Method::GET, "/openapi.json")).await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/user/") || !path.contains('{') {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            assert!(
                walked.iter().any(|(m, _, template, _)| *m == method && template == path),
                "{method} {path} is not walked"
            );
        }
    }

    for (method, path, template, body) in &walked {
        let (status, answer) = call(&app, &key, method, path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {template}: {answer}");
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    }
    // Aimed at the key's own device's objects, the reads find them.
    let own = operations(&mine);
    for (method, path, template, body) in own.iter().filter(|(m, ..)| *m == Method::GET) {
        // Not stored objects: a group, a contact and a LID WhatsApp does not know, media a
        // text has not, and a stream that does not end.
        let unknown = ["{group}", "{jid}", "{lid}", "/media", "/events"];
        if unknown.iter().any(|u| template.contains(u)) {
            continue;
        }
        let (status, answer) = call(&app, &key, method, path, body).await;
        assert!(
            status.is_success() || status == StatusCode::CONFLICT || status == StatusCode::GONE,
            "{method} {path}: {status} {answer}"
        );
    }

    // Nothing of the other device is named from a different angle either: sends, schedules
    // and reset through it, or replies quoting its message.
    let sends = [
        ("/api/send-message", json!({"device": other, "to": BUDI, "text": "x"})),
        ("/api/send-location", json!({"device": other, "to": BUDI, "latitude": -6.2, "longitude": 106.8})),
        ("/api/send-poll", json!({"device": other, "to": BUDI, "question": "?", "options": ["a", "b"]})),
        (
            "/api/send-contact",
            json!({"device": other, "to": BUDI, "contacts": [{"name": "Ana", "phone": SITI}]}),
        ),
        ("/api/send-media", json!({"device": other, "to": BUDI, "base64": "aGFsbw==", "type": "document"})),
        ("/api/reset-session", json!({"device": other})),
        (
            "/api/user/scheduled-messages",
            json!({"device": other, "to": BUDI, "text": "x", "send_at": "2099-01-01T09:00:00Z"}),
        ),
    ];
    for (path, body) in sends {
        let (status, answer) = app.post(path, &key, &body).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
        assert!(answer.to_string().contains("device"), "{path}: {answer}");
    }
    let quoting = json!({"device": shop, "to": BUDI, "text": "x", "reply_to": theirs.received.to_string()});
    let (status, answer) = app.post("/api/send-message", &key, &quoting).await;
    let (full_status, full_answer) = app.post("/api/send-message", &tenant.api_key, &quoting).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["message"], "no message with this id", "as for no message at all: {answer}");
    assert_eq!(full_status, StatusCode::UNPROCESSABLE_ENTITY, "{full_answer}");
    assert_ne!(full_answer["error"]["message"], answer["error"]["message"], "the full key is told why");
}

#[tokio::test]
async fn a_one_device_key_lists_only_its_device_and_cannot_act_on_the_whole_account() {
    let app = spawn().await;
    let tenant = app.create_tenant("premium").await;
    let shop = app.pair_device(&tenant, "6281381830658").await;
    let other = app.pair_device(&tenant, "6281381830659").await;
    let mine = objects_of(&app, &tenant, shop, BUDI).await;
    let theirs = objects_of(&app, &tenant, other, SITI).await;
    let everywhere =
        created(&app, "/api/user/auto-reply", &tenant.api_key, json!({"keyword": "jam", "reply": "08-17"}))
            .await;
    let (key, _) = key_for(&app, &tenant, json!(["+62 813-8183-0658"])).await;

    let lists = [
        ("/api/user/devices", "id", vec![shop], vec![other]),
        ("/api/user/devices/status", "id", vec![shop], vec![other]),
        ("/api/user/chat-history", "id", vec![mine.sent, mine.received], vec![theirs.sent, theirs.received]),
        ("/api/user/chat-history?q=halo", "id", vec![mine.received], vec![theirs.received]),
        ("/api/user/chats", "device_id", vec![shop], vec![other]),
        ("/api/user/contacts", "device_id", vec![shop], vec![other]),
        ("/api/user/scheduled-messages", "id", vec![mine.schedule], vec![theirs.schedule]),
        ("/api/user/auto-reply", "id", vec![mine.rule, everywhere], vec![theirs.rule]),
        ("/api/user/webhooks", "id", vec![mine.webhook], vec![theirs.webhook]),
        ("/api/user/plugins", "id", vec![mine.plugin], vec![theirs.plugin]),
        ("/api/user/webhook-logs", "id", vec![mine.plugin_log], vec![theirs.plugin_log]),
        ("/api/user/api-keys", "id", vec![mine.key], vec![theirs.key]),
    ];
    for (path, field, present, absent) in lists {
        let (status, list) = app.get(path, &key).await;
        assert_eq!(status, StatusCode::OK, "{path}: {list}");
        let found = ids(&list, field);
        for id in present {
            assert!(found.contains(&id), "{path} lists {id}: {list}");
        }
        for id in absent {
            assert!(!found.contains(&id), "{path} hides {id}: {list}");
        }
        assert_eq!(list["total"].as_i64(), Some(found.len() as i64), "{path} counts what it shows: {list}");
        let (_, full) = app.get(path, &tenant.api_key).await;
        assert!(full["total"].as_i64() > list["total"].as_i64(), "{path}: the full key sees more: {full}");
    }
    let export = app.request(Method::GET, "/api/user/chat-history/export.csv").header("x-api-key", &key);
    let csv = export.send().await.unwrap().text().await.unwrap();
    assert!(csv.contains(BUDI) && !csv.contains(SITI), "the shop's customer only: {csv}");

    // The whole account, or objects for every device: refused, naming why.
    let refused = [
        (Method::GET, "/api/user/activity-logs".to_string(), None),
        (Method::POST, "/api/user/devices".to_string(), Some(json!({"phone": "6281381830660"}))),
        (Method::POST, "/api/user/auto-reply".to_string(), Some(json!({"keyword": "a", "reply": "b"}))),
        (Method::PUT, format!("/api/user/auto-reply/{}", mine.rule), Some(json!({"device": null}))),
        (Method::PUT, format!("/api/user/auto-reply/{everywhere}"), Some(json!({"reply": "x"}))),
        (Method::DELETE, format!("/api/user/auto-reply/{everywhere}"), None),
        (Method::POST, "/api/user/webhooks".to_string(), Some(json!({"url": "http://127.0.0.1:9/all"}))),
        (Method::PATCH, format!("/api/user/plugins/{}", mine.plugin), Some(json!({"devices": []}))),
        (Method::POST, "/api/user/api-keys".to_string(), Some(json!({"devices": [shop, other]}))),
    ];
    for (method, path, body) in &refused {
        let (status, answer) = call(&app, &key, method, path, body).await;
        if path.ends_with("/api-keys") {
            // The other device is not one this key sees: not found, as a send through it.
            assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
            continue;
        }
        assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
        assert!(answer.to_string().contains("limited to some devices"), "{method} {path}: {answer}");
    }
    // The tenant-wide rule is still read, and still there.
    let (status, _) = app.get(&format!("/api/user/auto-reply/{everywhere}"), &key).await;
    assert_eq!(status, StatusCode::OK);

    // Within its device the key manages: a rule, a key of its own devices (the default).
    let path = format!("/api/user/auto-reply/{}", mine.rule);
    let (status, answer) = call(&app, &key, &Method::PUT, &path, &Some(json!({"reply": "12rb"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, child) = app.post("/api/user/api-keys", &key, &json!({"name": "kasir"})).await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert_eq!(child["devices"], json!([shop]), "a key made by a limited key inherits its devices: {child}");
    let (status, answer) = app.delete(&format!("/api/user/api-keys/{}", child["id"]), &key).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");

    // Its device deleted, the key sees no device at all, never every device.
    let (status, answer) = app.delete(&format!("/api/user/devices/{shop}"), &key).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, list) = app.get("/api/user/devices", &key).await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, history) = app.get("/api/user/chat-history", &key).await;
    assert_eq!(history["total"], 0, "{history}");
}
