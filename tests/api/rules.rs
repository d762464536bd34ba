//! Keyword auto-replies: the rules API, matching through the real inbound pipeline on the
//! simulator, placeholders, priority, cooldown, the loop guard, limits and hostile regexes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};

/// The tenant's device.
const DEVICE: &str = "6281381830651";
/// Budi, a customer.
const BUDI: &str = "6281234567890";

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

async fn create_rule(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    let (status, rule) = app.post("/api/user/auto-reply", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "create rule {body}: {rule}");
    rule
}

/// A tenant with one connected device.
async fn tenant_with_device(app: &TestApp, package: &str) -> (TestTenant, i64) {
    let tenant = app.create_tenant(package).await;
    let device = app.pair_device(&tenant, DEVICE).await;
    (tenant, device)
}

/// Waits until every stored inbound message went through the pipeline and every reply left
/// the outbound queue, so the simulator's outbox is final.
pub async fn settle(app: &TestApp, tenant: &TestTenant) {
    poll_until(WAIT, || async {
        let pending = app.state.db.unprocessed_inbound(1000).await.expect("the database answers");
        if !pending.is_empty() {
            return None;
        }
        let (status, body) = app.get("/api/user/chat-history?status=queued", &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["total"] == 0).then_some(())
    })
    .await
}

/// The texts the gateway sent through `device` to `phone`, oldest first.
async fn sent_to(app: &TestApp, device: i64, phone: &str) -> Vec<String> {
    let to = jid(phone);
    app.outbox(device)
        .await
        .into_iter()
        .filter(|m| m["to"] == to.as_str())
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn budi_asking_the_price_gets_the_harga_reply_with_his_name() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    let rule = create_rule(
        &app,
        &tenant,
        json!({"keyword": "harga", "match": "contains", "reply": "Harga mulai 10rb, {name}"}),
    )
    .await;
    assert_eq!(rule["match"], "contains");
    assert_eq!(rule["case_sensitive"], false);
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["stop"], true);
    assert_eq!(rule["device"], Value::Null);
    assert_eq!(rule["priority"], 0);
    assert_eq!(rule["cooldown_seconds"], 0);

    app.inbound(device, BUDI, "Berapa HARGA paket?", Some("Budi")).await;
    let outbox = poll_until(WAIT, || async {
        let sent = app.outbox(device).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(outbox[0]["to"], jid(BUDI));
    assert_eq!(outbox[0]["text"], "Harga mulai 10rb, Budi");

    settle(&app, &tenant).await;
    let (status, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["total"], 1, "{history}");
    let reply = &history["data"][0];
    assert_eq!(reply["direction"], "out");
    assert_eq!(reply["source"], "auto_reply");
    assert_eq!(reply["text"], "Harga mulai 10rb, Budi");
    assert_eq!(reply["chat"], jid(BUDI));
    assert_eq!(reply["device"], DEVICE);
    assert_eq!(sent_to(&app, device, BUDI).await.len(), 1, "answered once");
}

#[tokio::test]
async fn each_match_mode_answers_only_what_it_should() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "premium").await;
    create_rule(&app, &tenant, json!({"keyword": "menu", "match": "exact", "reply": "E"})).await;
    create_rule(&app, &tenant, json!({"keyword": "ongkir", "match": "contains", "reply": "C"})).await;
    create_rule(&app, &tenant, json!({"keyword": "order", "match": "starts_with", "reply": "S"})).await;
    create_rule(&app, &tenant, json!({"keyword": r"^resi\s+\d{5}$", "match": "regex", "reply": "R"})).await;

    // Each message comes from its own contact, so the replies are easy to tell apart.
    let cases = [
        ("MENU", Some("E")),
        ("  menu  ", Some("E")),
        ("menu dong", None),
        ("berapa ONGKIR ke Bandung?", Some("C")),
        ("ongki", None),
        ("Order 3 kaos", Some("S")),
        ("mau order", None),
        ("RESI 12345", Some("R")),
        ("resi 1234", None),
        ("resi 12345 ya", None),
    ];
    for (i, (text, _)) in cases.iter().enumerate() {
        app.inbound(device, &format!("62812000000{i:02}"), text, None).await;
    }
    settle(&app, &tenant).await;
    for (i, (text, expected)) in cases.iter().enumerate() {
        let got = sent_to(&app, device, &format!("62812000000{i:02}")).await;
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, expected, "message {text:?}");
    }
}

#[tokio::test]
async fn case_sensitive_rules_need_the_exact_case_and_others_ignore_it() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "premium").await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": "PROMO", "match": "exact", "case_sensitive": true, "reply": "P"}),
    )
    .await;
    create_rule(&app, &tenant, json!({"keyword": "Çay", "match": "contains", "reply": "T"})).await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": "^Kode[0-9]+$", "match": "regex", "case_sensitive": true, "reply": "K"}),
    )
    .await;
    let cases = [
        ("PROMO", Some("P")),
        ("promo", None),
        ("Promo", None),
        ("satu ÇAY", Some("T")),
        ("satu çay", Some("T")),
        ("Kode42", Some("K")),
        ("kode42", None),
    ];
    for (i, (text, _)) in cases.iter().enumerate() {
        app.inbound(device, &format!("62813000000{i:02}"), text, None).await;
    }
    settle(&app, &tenant).await;
    for (i, (text, expected)) in cases.iter().enumerate() {
        let got = sent_to(&app, device, &format!("62813000000{i:02}")).await;
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, expected, "message {text:?}");
    }
}

#[tokio::test]
async fn placeholders_are_filled_and_sender_text_is_never_expanded() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": "cek", "reply": "Halo {name} ({phone}), pesan: \"{message}\" pada {date} {unknown}"}),
    )
    .await;
    let today = Utc::now().with_timezone(&chrono_tz::Asia::Jakarta).format("%Y-%m-%d").to_string();

    app.inbound(device, BUDI, "cek {name} {date}", Some("Budi")).await;
    app.inbound(device, "6281299990000", "cek stok", None).await;
    settle(&app, &tenant).await;
    assert_eq!(
        sent_to(&app, device, BUDI).await,
        vec![format!("Halo Budi ({BUDI}), pesan: \"cek {{name}} {{date}}\" pada {today} {{unknown}}")]
    );
    assert_eq!(
        sent_to(&app, device, "6281299990000").await,
        vec![format!("Halo 6281299990000 (6281299990000), pesan: \"cek stok\" pada {today} {{unknown}}")],
        "without a push name {{name}} is the number"
    );
}

#[tokio::test]
async fn the_highest_priority_matching_rule_answers_and_device_rules_stay_on_their_device() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let other = app.pair_device(&tenant, "6281381830652").await;
    create_rule(&app, &tenant, json!({"keyword": "info", "reply": "low", "priority": 1})).await;
    create_rule(&app, &tenant, json!({"keyword": "info", "reply": "high", "priority": 10})).await;
    create_rule(&app, &tenant, json!({"keyword": "info", "reply": "high but newer", "priority": 10})).await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": "info", "reply": "disabled", "priority": 99, "enabled": false}),
    )
    .await;
    let on_other = create_rule(
        &app,
        &tenant,
        json!({"keyword": "info", "reply": "other device", "priority": 50, "device": other}),
    )
    .await;
    assert_eq!(on_other["device"], "6281381830652");
    assert_eq!(on_other["device_id"], other);

    let (status, list) = app.get("/api/user/auto-reply", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let order: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|r| r["reply"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["disabled", "other device", "high", "high but newer", "low"],
        "listed in the order tried"
    );

    app.inbound(device, BUDI, "minta info", None).await;
    app.inbound(other, BUDI, "minta info", None).await;
    settle(&app, &tenant).await;
    assert_eq!(sent_to(&app, device, BUDI).await, ["high"]);
    assert_eq!(sent_to(&app, other, BUDI).await, ["other device"]);
}

#[tokio::test]
async fn a_rule_cooling_down_for_a_chat_lets_the_next_rule_answer_and_other_chats_still_get_it() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": "halo", "reply": "Selamat datang!", "priority": 5, "cooldown_seconds": 3600}),
    )
    .await;
    create_rule(&app, &tenant, json!({"keyword": "halo", "reply": "Halo lagi", "priority": 0})).await;
    let budi_again = "6281234567891";

    app.inbound(device, BUDI, "halo", None).await;
    settle(&app, &tenant).await;
    app.inbound(device, BUDI, "halo kak", None).await;
    settle(&app, &tenant).await;
    app.inbound(device, budi_again, "halo", None).await;
    settle(&app, &tenant).await;
    assert_eq!(sent_to(&app, device, BUDI).await, ["Selamat datang!", "Halo lagi"]);
    assert_eq!(sent_to(&app, device, budi_again).await, ["Selamat datang!"]);

    // The cooldown survives a restart: it is kept in the database.
    let app = app.restart().await;
    app.wait_for_device_status(&tenant, device, "connected").await;
    app.inbound(device, BUDI, "halo", None).await;
    settle(&app, &tenant).await;
    assert_eq!(sent_to(&app, device, BUDI).await, ["Halo lagi"]);
}

#[tokio::test]
async fn the_loop_guard_answers_a_chat_at_most_n_times_a_minute() {
    let app = TestApp::spawn_with(|c| c.rules.max_replies_per_chat_per_minute = 3).await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(&app, &tenant, json!({"keyword": "bot", "reply": "Saya bot"})).await;
    for i in 0..6 {
        app.inbound(device, BUDI, &format!("bot {i}"), None).await;
    }
    app.inbound(device, "6281234567892", "bot?", None).await;
    settle(&app, &tenant).await;
    assert_eq!(sent_to(&app, device, BUDI).await.len(), 3, "three replies, then the guard holds");
    assert_eq!(sent_to(&app, device, "6281234567892").await.len(), 1, "another chat has its own allowance");
}

#[tokio::test]
async fn the_gateway_does_not_answer_its_own_text_echoed_back() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(
        &app,
        &tenant,
        json!({"keyword": ".", "match": "regex", "reply": "Terima kasih, pesan diterima"}),
    )
    .await;
    app.inbound(device, BUDI, "hello", None).await;
    settle(&app, &tenant).await;
    // Budi's phone runs an echo bot: our reply comes straight back.
    app.inbound(device, BUDI, "Terima kasih, pesan diterima", None).await;
    settle(&app, &tenant).await;
    app.inbound(device, BUDI, "hello again", None).await;
    settle(&app, &tenant).await;
    assert_eq!(sent_to(&app, device, BUDI).await.len(), 2, "the echo was not answered");
}

#[tokio::test]
async fn two_gateway_devices_with_rules_do_not_talk_to_each_other_forever() {
    let app = TestApp::spawn().await;
    let shop = app.create_tenant("basic").await;
    let shop_device = app.pair_device(&shop, DEVICE).await;
    let supplier = app.create_tenant("basic").await;
    let supplier_phone = "6285700000001";
    let supplier_device = app.pair_device(&supplier, supplier_phone).await;
    // Both answer everything, echoing what they got.
    for tenant in [&shop, &supplier] {
        create_rule(&app, tenant, json!({"keyword": ".", "match": "regex", "reply": "ok: {message}"})).await;
    }
    // The shop writes to the supplier; the simulator plays the network between the two.
    let (status, body) = app
        .post(
            "/api/send-message",
            &shop.api_key,
            &json!({"device": DEVICE, "to": supplier_phone, "text": "stok ada?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.inbound(supplier_device, DEVICE, "stok ada?", None).await;
    settle(&app, &supplier).await;
    let answer = sent_to(&app, supplier_device, DEVICE).await;
    assert_eq!(answer, ["ok: stok ada?"], "the supplier's rule answered a person's text");
    app.inbound(shop_device, supplier_phone, &answer[0], None).await;
    settle(&app, &shop).await;
    assert_eq!(
        sent_to(&app, shop_device, supplier_phone).await,
        ["stok ada?"],
        "the shop did not answer the bot"
    );
}

#[tokio::test]
async fn the_eleventh_rule_on_basic_is_over_the_limit_even_when_created_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let creates = (0..16).map(|i| {
        let body = json!({"keyword": format!("k{i}"), "reply": "r"});
        let key = tenant.api_key.clone();
        let app = &app;
        async move { app.post("/api/user/auto-reply", &key, &body).await }
    });
    let results = futures::future::join_all(creates).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 10, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
        assert_eq!(body["error"]["limit"], "auto_replies", "{body}");
    }
    let (status, body) =
        app.post("/api/user/auto-reply", &tenant.api_key, &json!({"keyword": "x", "reply": "y"})).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
    assert_eq!(body["error"]["limit"], "auto_replies");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["auto_replies"], 10, "{limits}");
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let cases = [
        (json!({"keyword": "(unclosed", "match": "regex", "reply": "r"}), "keyword"),
        (json!({"keyword": r"\w{1000}\w{1000}", "match": "regex", "reply": "r"}), "keyword"),
        (
            json!({"keyword": "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))", "match": "regex", "reply": "r"}),
            "keyword",
        ),
        (json!({"keyword": "  ", "reply": "r"}), "keyword"),
        (json!({"keyword": "k".repeat(501), "reply": "r"}), "keyword"),
        (json!({"reply": "r"}), "keyword"),
        (json!({"keyword": "k", "match": "fuzzy", "reply": "r"}), "match"),
        (json!({"keyword": "k"}), "reply"),
        (json!({"keyword": "k", "reply": ""}), "reply"),
        (json!({"keyword": "k", "reply": "r".repeat(4097)}), "reply"),
        (json!({"keyword": "k", "reply": "r", "cooldown_seconds": -1}), "cooldown_seconds"),
        (json!({"keyword": "k", "reply": "r", "priority": "high"}), "priority"),
        (json!({"keyword": "k", "reply": "r", "colour": "red"}), "colour"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/user/auto-reply", &tenant.api_key, &body).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "k", "reply": "r", "device": "999"}),
        )
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get("/api/user/auto-reply", &tenant.api_key).await;
    assert_eq!(list["total"], 0, "nothing was stored: {list}");
}

#[tokio::test]
async fn a_pathological_regex_neither_hangs_the_pipeline_nor_the_server() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(&app, &tenant, json!({"keyword": "^(a+)+$", "match": "regex", "reply": "all a"})).await;
    create_rule(&app, &tenant, json!({"keyword": "(x+x+)+y", "match": "regex", "reply": "xy"})).await;

    let started = Instant::now();
    let evil_a = format!("{}b", "a".repeat(60_000));
    let evil_x = "x".repeat(60_000);
    let health = async {
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let (status, _) = app.send(app.request(Method::GET, "/healthz")).await;
            assert_eq!(status, StatusCode::OK);
            worst = worst.max(t.elapsed());
        }
        worst
    };
    let messages = async {
        for i in 0..5 {
            app.inbound(device, BUDI, &evil_a, None).await;
            app.inbound(device, &format!("62812345600{i:02}"), &evil_x, None).await;
        }
    };
    let (worst, ()) = tokio::join!(health, messages);
    assert!(worst < Duration::from_secs(2), "/healthz took {worst:?} while hostile texts were matched");
    app.inbound(device, "6289900000000", "aaaa", None).await;
    settle(&app, &tenant).await;
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(sent_to(&app, device, BUDI).await.is_empty(), "the hostile texts do not match");
    assert_eq!(sent_to(&app, device, "6289900000000").await, ["all a"], "the regex still works");
}

#[tokio::test]
async fn a_reply_over_the_monthly_limit_is_not_sent_and_shows_as_failed() {
    let app = TestApp::spawn().await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    create_rule(&app, &tenant, json!({"keyword": "harga", "reply": "Harga mulai 10rb"})).await;
    app.set_limits(&tenant, json!({"messages_per_month": 0})).await;
    app.inbound(device, BUDI, "harga?", Some("Budi")).await;
    settle(&app, &tenant).await;
    assert!(app.outbox(device).await.is_empty(), "nothing was sent");
    let (_, history) = app.get("/api/user/chat-history?direction=out", &tenant.api_key).await;
    assert_eq!(history["total"], 1, "{history}");
    let reply = &history["data"][0];
    assert_eq!(reply["status"], "failed");
    assert_eq!(reply["source"], "auto_reply");
    assert_eq!(reply["error"], "limit_exceeded: messages_per_month");
    assert_eq!(reply["text"], "Harga mulai 10rb");
}

#[tokio::test]
async fn rules_can_be_read_changed_and_deleted_by_their_tenant_only() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let intruder = app.create_tenant("basic").await;
    let rule = create_rule(
        &app,
        &tenant,
        json!({"keyword": " jam buka ", "match": "starts_with", "reply": "08.00-17.00", "device": DEVICE, "stop": false}),
    )
    .await;
    let id = rule["id"].as_i64().unwrap();
    assert_eq!(rule["keyword"], "jam buka", "the keyword is trimmed");
    assert_eq!(rule["device"], DEVICE);
    assert_eq!(rule["stop"], false);
    let path = format!("/api/user/auto-reply/{id}");

    let (status, got) = app.get(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, rule);

    let put = |body: Value| {
        let request = app.request(Method::PUT, &path).header("x-api-key", &tenant.api_key).json(&body);
        app.send(request)
    };
    let (status, changed) =
        put(json!({"reply": "08.00-21.00", "priority": 3, "device": null, "enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["reply"], "08.00-21.00");
    assert_eq!(changed["keyword"], "jam buka", "fields left out keep their value");
    assert_eq!(changed["match"], "starts_with");
    assert_eq!(changed["priority"], 3);
    assert_eq!(changed["device"], Value::Null);
    assert_eq!(changed["enabled"], false);
    let (status, answer) = put(json!({"keyword": "(", "match": "regex"})).await;
    assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(answer["error"]["field"], "keyword");

    // A disabled rule does not answer.
    app.inbound(device, BUDI, "jam buka?", None).await;
    settle(&app, &tenant).await;
    assert!(app.outbox(device).await.is_empty());

    for (method, body) in
        [(Method::GET, None), (Method::PUT, Some(json!({"reply": "x"}))), (Method::DELETE, None)]
    {
        let mut request = app.request(method.clone(), &path).header("x-api-key", &intruder.api_key);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let (status, answer) = app.send(request).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = app.get("/api/user/auto-reply", &intruder.api_key).await;
    assert_eq!(list["total"], 0);

    for i in 0..4 {
        create_rule(&app, &tenant, json!({"keyword": format!("k{i}"), "reply": "r"})).await;
    }
    let (_, page) = app.get("/api/user/auto-reply?limit=2&offset=1", &tenant.api_key).await;
    assert_eq!(page["total"], 5, "{page}");
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);

    let (status, _) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = app.get(&path, &tenant.api_key).await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (status, answer) = app.delete(&path, &tenant.api_key).await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");

    let (_, log) = app.get("/api/user/activity-logs?limit=100", &tenant.api_key).await;
    let mut actions: HashMap<String, usize> = HashMap::new();
    for entry in log["data"].as_array().unwrap() {
        if entry["target"] == format!("auto_reply:{id}") {
            *actions.entry(entry["action"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(actions.get("auto_reply.create"), Some(&1), "{log}");
    assert_eq!(actions.get("auto_reply.update"), Some(&1), "{log}");
    assert_eq!(actions.get("auto_reply.delete"), Some(&1), "{log}");

    let (_, doc) = app.send(app.request(Method::GET, "/openapi.json")).await;
    for path in ["/api/user/auto-reply", "/api/user/auto-reply/{id}", "/api/user/scheduled-messages/{id}"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

#[tokio::test]
async fn a_rule_edited_disabled_or_deleted_counts_from_the_next_message() {
    let app = TestApp::spawn_with(|c| c.rules.max_replies_per_chat_per_minute = 100).await;
    let (tenant, device) = tenant_with_device(&app, "basic").await;
    let rule = create_rule(&app, &tenant, json!({"keyword": "menu", "reply": "Menu lama"})).await;
    let path = format!("/api/user/auto-reply/{}", rule["id"]);
    let put = |body: Value| {
        let request = app.request(Method::PUT, &path).header("x-api-key", &tenant.api_key).json(&body);
        app.send(request)
    };
    // Each step's answer is read only after the message before it was answered, so the rules
    // the pipeline holds in memory are always the ones of the step before.
    let answer = |n: usize, text: &'static str| {
        let app = &app;
        let tenant = &tenant;
        async move {
            app.inbound(device, BUDI, text, None).await;
            settle(app, tenant).await;
            let sent = sent_to(app, device, BUDI).await;
            assert_eq!(sent.len(), n, "{sent:?}");
            sent.last().cloned()
        }
    };
    assert_eq!(answer(1, "menu 1").await.as_deref(), Some("Menu lama"));

    let (status, body) = put(json!({"reply": "Menu baru"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(2, "menu 2").await.as_deref(), Some("Menu baru"), "the edit counts at once");

    let (status, body) = put(json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(2, "menu 3").await.as_deref(), Some("Menu baru"), "a disabled rule is silent");

    let (status, body) = put(json!({"enabled": true, "keyword": "katalog"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(2, "menu 4").await.as_deref(), Some("Menu baru"), "the old keyword is gone");
    assert_eq!(answer(3, "katalog").await.as_deref(), Some("Menu baru"));

    let (status, _) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    create_rule(&app, &tenant, json!({"keyword": "promo", "reply": "Promo hari ini"})).await;
    assert_eq!(answer(3, "katalog lagi").await.as_deref(), Some("Menu baru"), "a deleted rule is silent");
    assert_eq!(answer(4, "promo?").await.as_deref(), Some("Promo hari ini"), "a new rule counts at once");
}
