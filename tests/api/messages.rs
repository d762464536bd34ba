//! Sending and receiving: the seed's send-message, number forms, async sends, receipts,
//! idempotency, the monthly limit under concurrency, the durable queue, inbound messages.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};

/// The seed's example sender.
const DEVICE: &str = "6281381830651";

async fn send(app: &TestApp, tenant: &TestTenant, body: Value) -> (StatusCode, Value) {
    app.post("/api/send-message", &tenant.api_key, &body).await
}

async fn history(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)]) -> Value {
    let request =
        app.request(Method::GET, "/api/user/chat-history").header("x-api-key", &tenant.api_key).query(query);
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn the_seed_example_is_sent_and_shows_in_the_outbox_and_the_history() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let (status, body) = send(
        &app,
        &tenant,
        json!({"pengirim": "6281381830651", "nomor": "6281234567890", "pesan": "Hello World!"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    assert_eq!(body["device"], DEVICE);
    assert_eq!(body["direction"], "out");
    assert_eq!(body["to"], "6281234567890");
    assert_eq!(body["from"], DEVICE);
    assert_eq!(body["chat"], "6281234567890@s.whatsapp.net");
    assert_eq!(body["text"], "Hello World!");
    assert_eq!(body["type"], "text");
    let id = body["id"].as_i64().expect("an id");

    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["to"], "6281234567890@s.whatsapp.net");
    assert_eq!(outbox[0]["text"], "Hello World!");
    assert_eq!(body["wa_id"], outbox[0]["id"], "the message knows WhatsApp's id");

    let list = history(&app, &tenant, &[]).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["data"][0]["status"], "sent");
    assert_eq!(list["data"][0]["text"], "Hello World!");
    let (status, detail) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["status"], "sent");
}

#[tokio::test]
async fn the_english_field_names_and_numbers_as_json_numbers_work_too() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let bodies = [
        json!({"from": DEVICE, "to": "6281234567890", "text": "one"}),
        json!({"device": device, "to": "6281234567890", "text": "two"}),
        json!({"device": DEVICE, "to": "6281234567890", "text": "three"}),
        json!({"pengirim": 6281381830651_u64, "nomor": 6281234567890_u64, "pesan": "four"}),
        json!({"device": device, "to": 6281234567890_u64, "text": "five"}),
    ];
    for body in &bodies {
        let (status, answer) = send(&app, &tenant, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        assert_eq!(answer["status"], "sent", "{answer}");
        assert_eq!(answer["chat"], "6281234567890@s.whatsapp.net", "{answer}");
        assert_eq!(answer["device_id"], device);
    }
    let texts: Vec<Value> = app.outbox(device).await.iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, ["one", "two", "three", "four", "five"]);
}

#[tokio::test]
async fn numbers_in_local_and_international_forms_reach_the_same_chat() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    for to in ["+62 812-3456-7890", "081234567890", "6281234567890", "(0812) 3456.7890"] {
        let (status, body) = send(&app, &tenant, json!({"device": device, "to": to, "text": to})).await;
        assert_eq!(status, StatusCode::OK, "{to}: {body}");
        assert_eq!(body["chat"], "6281234567890@s.whatsapp.net", "{to}: {body}");
        assert_eq!(body["to"], "6281234567890", "{to}: {body}");
    }
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|m| m["to"] == "6281234567890@s.whatsapp.net"), "{outbox:?}");
    let chat = history(&app, &tenant, &[("chat", "081234567890")]).await;
    assert_eq!(chat["total"], 4, "{chat}");
}

#[tokio::test]
async fn a_group_id_is_a_recipient() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let group = "120363012345678901@g.us";
    let (status, body) =
        send(&app, &tenant, json!({"device": device, "to": group, "text": "rapat jam 3"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    assert_eq!(body["chat"], group);
    assert_eq!(body["is_group"], true);
    let outbox = app.outbox(device).await;
    assert_eq!(outbox[0]["to"], group);
}

#[tokio::test]
async fn bad_numbers_are_refused_naming_the_recipient_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    for to in ["abc", "123", "1234567890123456", "62812345678901234567", "", "62812@x.com", "12@g.us@g.us"] {
        for field in ["to", "nomor"] {
            let mut body = json!({"device": device, "text": "x"});
            body[field] = json!(to);
            let (status, answer) = send(&app, &tenant, body).await;
            assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(answer["error"]["field"], "to", "{to:?}: {answer}");
        }
    }
    let (status, answer) = send(&app, &tenant, json!({"device": device, "text": "x"})).await;
    assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(answer["error"]["field"], "to", "{answer}");
    assert!(app.outbox(device).await.is_empty());
    assert_eq!(history(&app, &tenant, &[]).await["total"], 0);
}

#[tokio::test]
async fn a_message_without_text_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    for body in [
        json!({"device": device, "to": "6281234567890"}),
        json!({"device": device, "to": "6281234567890", "text": ""}),
        json!({"device": device, "to": "6281234567890", "text": "   \n"}),
        json!({"pengirim": DEVICE, "nomor": "6281234567890", "pesan": ""}),
        json!({"device": device, "to": "6281234567890", "text": null}),
    ] {
        let (status, answer) = send(&app, &tenant, body.clone()).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], "text", "{body}: {answer}");
    }
    let (status, answer) = send(&app, &tenant, json!({"to": "6281234567890", "text": "no device"})).await;
    assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(app.outbox(device).await.is_empty());
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 0, "refused sends cost nothing: {limits}");
}

#[tokio::test]
async fn a_send_through_a_device_that_is_not_connected_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) = app.post("/api/user/devices", &tenant.api_key, &json!({"phone": DEVICE})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) =
        send(&app, &tenant, json!({"pengirim": DEVICE, "nomor": "6281234567890", "pesan": "x"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    let (status, body) =
        send(&app, &tenant, json!({"pengirim": "6289999999999", "nomor": "6281234567890", "pesan": "x"}))
            .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 0, "{limits}");
}

#[tokio::test]
async fn an_async_send_answers_queued_and_is_then_sent() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let (status, body) =
        send(&app, &tenant, json!({"device": device, "to": "6281234567890", "text": "nanti", "async": true}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    let id = body["id"].as_i64().unwrap();

    let sent = app.wait_for_message_status(&tenant, id, "sent").await;
    assert!(sent["wa_id"].as_str().is_some(), "{sent}");
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["id"], sent["wa_id"]);
}

#[tokio::test]
async fn receipts_move_a_message_to_delivered_and_then_read() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let (_, body) =
        send(&app, &tenant, json!({"device": device, "to": "6281234567890", "text": "cek"})).await;
    assert_eq!(body["status"], "sent", "{body}");
    let id = body["id"].as_i64().unwrap();

    let (status, answer) = app
        .admin_post("/api/admin/simulator/receipt", &json!({"message_id": id, "status": "delivered"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    app.wait_for_message_status(&tenant, id, "delivered").await;
    // By WhatsApp's id as well.
    let wa_id = body["wa_id"].as_str().unwrap();
    let (status, answer) =
        app.admin_post("/api/admin/simulator/receipt", &json!({"message_id": wa_id, "status": "read"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let read = app.wait_for_message_status(&tenant, id, "read").await;

    let statuses: Vec<&str> = read["status_history"]
        .as_array()
        .expect("a status history")
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "sent", "delivered", "read"], "{read}");
    assert!(read["status_history"].as_array().unwrap().iter().all(|h| h["at"].is_string()));

    // A late `delivered` does not move a read message backwards.
    let (status, _) = app
        .admin_post("/api/admin/simulator/receipt", &json!({"message_id": id, "status": "delivered"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, detail) = app.get(&format!("/api/user/chat-history/{id}"), &tenant.api_key).await;
    assert_eq!(detail["status"], "read", "{detail}");
    let (status, _) =
        app.admin_post("/api/admin/simulator/receipt", &json!({"message_id": id, "status": "lost"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_idempotency_key_sends_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let post = |key: &'static str, text: &'static str| {
        let request = app
            .request(Method::POST, "/api/send-message")
            .header("x-api-key", &tenant.api_key)
            .header("Idempotency-Key", key)
            .json(&json!({"device": device, "to": "6281234567890", "text": text}));
        app.send(request)
    };

    let (status, first) = post("order-1001", "Pesanan Anda dikirim").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = post("order-1001", "Pesanan Anda dikirim").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], "sent");
    // A repeat with another body still returns the first result.
    let (_, changed) = post("order-1001", "something else").await;
    assert_eq!(changed["id"], first["id"]);
    assert_eq!(changed["text"], "Pesanan Anda dikirim");

    // Concurrent repeats of a new key: one message.
    let answers = futures::future::join_all((0..8).map(|_| post("order-1002", "paralel"))).await;
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");

    poll_until(WAIT, || async { (app.outbox(device).await.len() >= 2).then_some(()) }).await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert_eq!(history(&app, &tenant, &[]).await["total"], 2);
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 2, "repeats are not counted: {limits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_sends_with_ten_left_in_the_month_accept_exactly_ten() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    app.set_limits(&tenant, json!({"messages_per_month": 10})).await;

    let sends = (0..30).map(|i| {
        send(&app, &tenant, json!({"device": device, "to": "6281234567890", "text": format!("promo {i}")}))
    });
    let answers = futures::future::join_all(sends).await;
    let mut accepted = 0;
    for (status, body) in &answers {
        if *status == StatusCode::OK {
            assert_eq!(body["status"], "sent", "{body}");
            accepted += 1;
        } else {
            assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
            assert_eq!(body["error"]["limit"], "messages_per_month", "{body}");
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(app.outbox(device).await.len(), 10);
    assert_eq!(history(&app, &tenant, &[]).await["total"], 10);
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 10, "{limits}");
    assert_eq!(limits["limits"]["messages_per_month"], 10, "{limits}");
}

#[tokio::test]
async fn a_queued_message_is_still_sent_after_a_restart() {
    // A long gap after each send keeps the second message waiting in the queue.
    let app = TestApp::spawn_with(|c| c.whatsapp.send_min_gap_ms = 600_000).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let mut ids = Vec::new();
    for text in ["pertama", "kedua"] {
        let (status, body) = send(
            &app,
            &tenant,
            json!({"device": device, "to": "6281234567890", "text": text, "async": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "queued");
        ids.push(body["id"].as_i64().unwrap());
    }
    app.wait_for_message_status(&tenant, ids[0], "sent").await;
    let (_, second) = app.get(&format!("/api/user/chat-history/{}", ids[1]), &tenant.api_key).await;
    assert_eq!(second["status"], "queued", "the gap holds the second one back: {second}");
    assert_eq!(app.outbox(device).await.len(), 1);

    let app = app.restart_with(|c| c.whatsapp.send_min_gap_ms = 0).await;
    let sent = app.wait_for_message_status(&tenant, ids[1], "sent").await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1, "only the queued one goes out after the restart: {outbox:?}");
    assert_eq!(outbox[0]["text"], "kedua");
    assert_eq!(outbox[0]["id"], sent["wa_id"]);
    let (_, first) = app.get(&format!("/api/user/chat-history/{}", ids[0]), &tenant.api_key).await;
    assert_eq!(first["status"], "sent", "the first is not sent twice: {first}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 2, "{limits}");
}

#[tokio::test]
async fn an_inbound_message_is_stored_and_shows_in_the_history() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let answer = app.inbound(device, "6289876543210", "Halo, toko buka?", Some("Budi")).await;
    let wa_id = answer["id"].as_str().expect("WhatsApp's id").to_string();

    let list = history(&app, &tenant, &[]).await;
    assert_eq!(list["total"], 1, "{list}");
    let m = &list["data"][0];
    assert_eq!(m["direction"], "in", "{m}");
    assert_eq!(m["status"], "received");
    assert_eq!(m["push_name"], "Budi");
    assert_eq!(m["chat"], "6289876543210@s.whatsapp.net");
    assert_eq!(m["from"], "6289876543210");
    assert_eq!(m["to"], DEVICE);
    assert_eq!(m["device"], DEVICE);
    assert_eq!(m["text"], "Halo, toko buka?");
    assert_eq!(m["is_group"], false);
    assert_eq!(m["wa_id"], wa_id.as_str());
    let (status, detail) = app.get(&format!("/api/user/chat-history/{}", m["id"]), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["status_history"][0]["status"], "received", "{detail}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["messages_per_month"], 0, "inbound is free: {limits}");
}

#[tokio::test]
async fn the_same_inbound_message_id_is_stored_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    for _ in 0..2 {
        let (status, body) = app
            .admin_post(
                "/api/admin/simulator/inbound",
                &json!({"device": device, "from": "6289876543210", "text": "sekali", "id": "3EB0AAAABBBBCCCCDDDD"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], "3EB0AAAABBBBCCCCDDDD");
    }
    let list = history(&app, &tenant, &[]).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["wa_id"], "3EB0AAAABBBBCCCCDDDD");
    // Another id is another message.
    app.inbound(device, "6289876543210", "sekali", None).await;
    assert_eq!(history(&app, &tenant, &[]).await["total"], 2);
}

#[tokio::test]
async fn a_group_message_is_marked_as_a_group() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let group = "120363012345678901@g.us";
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": "6289876543210", "text": "halo grup", "push_name": "Sari", "group": group}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = history(&app, &tenant, &[]).await;
    let m = &list["data"][0];
    assert_eq!(m["is_group"], true, "{m}");
    assert_eq!(m["chat"], group);
    assert_eq!(m["from"], "6289876543210");
    assert_eq!(m["push_name"], "Sari");
    assert_eq!(history(&app, &tenant, &[("chat", group)]).await["total"], 1);
    assert_eq!(history(&app, &tenant, &[("chat", "6289876543210")]).await["total"], 0);
}

#[tokio::test]
async fn malformed_json_and_a_wrong_content_type_get_json_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let raw = |content_type: &'static str, body: &'static str| {
        app.request(Method::POST, "/api/send-message")
            .header("x-api-key", &tenant.api_key)
            .header("content-type", content_type)
            .body(body)
    };

    let (status, body) = app.send(raw("application/json", "{\"pengirim\": \"6281381830651\", ")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = app.send(raw("application/json", "")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = app
        .send(raw(
            "text/plain",
            "{\"pengirim\": \"6281381830651\", \"nomor\": \"6281234567890\", \"pesan\": \"x\"}",
        ))
        .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let (status, body) = app
        .send(raw("application/x-www-form-urlencoded", "pengirim=6281381830651&nomor=6281234567890&pesan=x"))
        .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // Wrong types name the field.
    let (status, body) =
        send(&app, &tenant, json!({"device": device, "to": ["6281234567890"], "text": "x"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "to", "{body}");
    let (status, body) =
        send(&app, &tenant, json!({"device": device, "to": "6281234567890", "text": 5})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "text", "{body}");
    assert!(app.outbox(device).await.is_empty());
}

#[tokio::test]
async fn idempotency_keys_of_different_tenants_do_not_collide() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("basic").await;
    let second = app.create_tenant("basic").await;
    let first_device = app.pair_device(&first, DEVICE).await;
    let second_device = app.pair_device(&second, "6285555555555").await;
    let post = |tenant: &TestTenant, device: i64| {
        let request = app
            .request(Method::POST, "/api/send-message")
            .header("x-api-key", &tenant.api_key)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"device": device, "to": "6281234567890", "text": "halo"}));
        app.send(request)
    };

    let (status, a) = post(&first, first_device).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (status, b) = post(&second, second_device).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["device_id"], second_device);
    assert_eq!(app.outbox(first_device).await.len(), 1);
    assert_eq!(app.outbox(second_device).await.len(), 1);
}

/// A client that retries a send it is not sure went through gets the first answer, even when
/// the device went offline or the month's allowance ran out since: the point of the key.
#[tokio::test]
async fn a_retried_send_gets_its_first_answer_after_the_device_went_offline_or_the_allowance_ran_out() {
    // A dropped connection stays down for the test.
    let app = TestApp::spawn_with(|c| {
        c.whatsapp.reconnect_min_ms = 600_000;
        c.whatsapp.reconnect_max_ms = 600_000;
    })
    .await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"messages_per_month": 2})).await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let send = |key: &'static str, path: &'static str, body: Value| {
        let request = app
            .request(Method::POST, path)
            .header("x-api-key", &tenant.api_key)
            .header("Idempotency-Key", key)
            .json(&body);
        app.send(request)
    };
    let text = json!({"device": device, "to": "6281234567890", "text": "Pesanan dikirim"});
    let media =
        json!({"device": device, "to": "6281234567890", "base64": crate::media::b64(crate::media::PNG)});
    let (status, first_text) = send("retry-text", "/api/send-message", text.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first_text}");
    let (status, first_media) = send("retry-media", "/api/send-media", media.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first_media}");

    let (status, body) = send("retry-new", "/api/send-message", text.clone()).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
    for (key, path, body, first) in [
        ("retry-text", "/api/send-message", &text, &first_text),
        ("retry-media", "/api/send-media", &media, &first_media),
    ] {
        let (status, again) = send(key, path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "over the allowance, {key}: {again}");
        assert_eq!(again["id"], first["id"]);
    }

    let (status, body) = app.admin_post("/api/admin/simulator/disconnect", &json!({"device": device})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_device_status(&tenant, device, "connecting").await;
    let (status, body) = send("retry-new", "/api/send-message", text.clone()).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    for (key, path, body, first) in [
        ("retry-text", "/api/send-message", &text, &first_text),
        ("retry-media", "/api/send-media", &media, &first_media),
    ] {
        let (status, again) = send(key, path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "offline, {key}: {again}");
        assert_eq!((&again["id"], &again["status"]), (&first["id"], &first["status"]));
    }
    assert_eq!(app.outbox(device).await.len(), 2, "nothing sent twice");
}
