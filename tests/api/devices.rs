//! Devices: create within the package's limit, read, rename, delete, live status, and the
//! rule that another tenant's device does not exist.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, TestTenant};

async fn create(app: &TestApp, tenant: &TestTenant, body: Value) -> (StatusCode, Value) {
    app.post("/api/user/devices", &tenant.api_key, &body).await
}

#[tokio::test]
async fn creating_a_device_normalises_its_phone_number() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;

    let (status, body) =
        create(&app, &tenant, json!({"phone": "0812-3456-7890", "name": "Toko pusat"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phone"], "6281234567890", "{body}");
    assert_eq!(body["name"], "Toko pusat");
    assert!(body["id"].as_i64().is_some(), "{body}");
    assert!(body["created_at"].as_str().is_some(), "{body}");
    let status_now = body["status"].as_str().unwrap();
    assert!(
        ["disconnected", "connecting", "qr"].contains(&status_now),
        "a new device is not connected: {body}"
    );

    // A number as a JSON number; the name defaults to the number.
    let (status, body) = create(&app, &tenant, json!({"phone": 6289876543210_u64})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phone"], "6289876543210");
    assert_eq!(body["name"], "6289876543210");

    // The same number twice for one tenant is a conflict, in any spelling.
    let (status, body) = create(&app, &tenant, json!({"phone": "+62 812 3456 7890"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    for bad in ["abc", "123", "12345678901234567", ""] {
        let (status, body) = create(&app, &tenant, json!({"phone": bad})).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], "phone", "{bad}: {body}");
    }
    let (status, body) = create(&app, &tenant, json!({"name": "no phone"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "phone", "{body}");

    let (_, list) = app.get("/api/user/devices", &tenant.api_key).await;
    assert_eq!(list["total"], 2, "{list}");
}

#[tokio::test]
async fn a_basic_tenant_cannot_add_a_second_device() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;

    let (status, body) = create(&app, &tenant, json!({"phone": "6281111111111"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create(&app, &tenant, json!({"phone": "6282222222222"})).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
    assert_eq!(body["error"]["limit"], "devices", "{body}");

    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["limits"]["devices"], 1, "{limits}");
    assert_eq!(limits["usage"]["devices"], 1, "{limits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_room_for_three_make_exactly_three() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.set_limits(&tenant, json!({"devices": 3})).await;

    let creates = (0..20).map(|i| {
        let app = &app;
        let tenant = &tenant;
        async move { create(app, tenant, json!({"phone": format!("62811000000{i:02}")})).await }
    });
    let answers = futures::future::join_all(creates).await;
    let mut created = 0;
    for (status, body) in &answers {
        if *status == StatusCode::CREATED {
            created += 1;
        } else {
            assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
            assert_eq!(body["error"]["limit"], "devices");
        }
    }
    assert_eq!(created, 3);
    let (_, list) = app.get("/api/user/devices", &tenant.api_key).await;
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_device_can_be_read_renamed_and_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (_, device) = create(&app, &tenant, json!({"phone": "081234567890", "name": "Kasir"})).await;
    let id = device["id"].as_i64().unwrap();
    let path = format!("/api/user/devices/{id}");

    let (status, got) = app.get(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        (got["id"].as_i64(), &got["phone"], &got["name"]),
        (Some(id), &json!("6281234567890"), &json!("Kasir"))
    );
    // A device may be named by its phone number in the path as well.
    let (status, by_phone) = app.get("/api/user/devices/6281234567890", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{by_phone}");
    assert_eq!(by_phone["id"], id);

    let (status, renamed) = app.patch(&path, &tenant.api_key, &json!({"name": "Kasir 2"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Kasir 2");
    let (_, got) = app.get(&path, &tenant.api_key).await;
    assert_eq!(got["name"], "Kasir 2");
    let (status, body) = app.patch(&path, &tenant.api_key, &json!({"name": "  "})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "name");
    let (status, body) = app.patch(&path, &tenant.api_key, &json!({"phone": "6280000000000"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let (_, list) = app.get("/api/user/devices", &tenant.api_key).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["id"], id);

    let (status, body) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get(&path, &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&path, &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get("/api/user/devices", &tenant.api_key).await;
    assert_eq!(list["total"], 0);

    // The slot is free again.
    let (status, body) = create(&app, &tenant, json!({"phone": "6289999999999"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn deleting_a_connected_device_ends_its_session() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, "6281234567890").await;

    let (status, _) = app.delete(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .post(
            "/api/send-message",
            &tenant.api_key,
            &json!({"device": id, "to": "6281111111111", "text": "x"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // The simulator no longer knows a connected session for it.
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": id, "from": "6281111111111", "text": "x"}),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn the_live_status_of_each_device_is_listed() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let paired = app.pair_device(&tenant, "6281111111111").await;
    let (_, waiting) = create(&app, &tenant, json!({"phone": "6282222222222"})).await;
    let waiting = waiting["id"].as_i64().unwrap();
    let (status, _) = app.get(&format!("/api/user/devices/{waiting}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get("/api/user/devices/status", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    let of = |id: i64| body["data"].as_array().unwrap().iter().find(|d| d["id"] == id).cloned().unwrap();
    assert_eq!(of(paired)["status"], "connected", "{body}");
    assert_eq!(of(paired)["phone"], "6281111111111");
    assert_eq!(of(waiting)["status"], "qr", "{body}");
    assert!(chrono::DateTime::parse_from_rfc3339(of(paired)["since"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn another_tenants_device_is_not_found_anywhere() {
    let app = TestApp::spawn().await;
    let owner = app.create_tenant("basic").await;
    let other = app.create_tenant("premium").await;
    let phone = "6281381830651";
    let id = app.pair_device(&owner, phone).await;
    // The other tenant has a connected device of its own, so sends are otherwise possible.
    let own = app.pair_device(&other, "6285555555555").await;
    let key = &other.api_key;

    for path in [format!("/api/user/devices/{id}"), format!("/api/user/devices/{phone}")] {
        let (status, body) = app.get(&path, key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.patch(&path, key, &json!({"name": "mine now"})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.delete(&path, key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.get(&format!("{path}/qr"), key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.post(&format!("{path}/pair-code"), key, &json!({})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.get(&format!("{path}/events"), key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.post(&format!("{path}/logout"), key, &json!({})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    for body in [json!({"device": id}), json!({"pengirim": phone}), json!({"device": phone})] {
        let (status, answer) = app.post("/api/reset-session", key, &body).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    }
    for body in [
        json!({"pengirim": phone, "nomor": "6281234567890", "pesan": "hi"}),
        json!({"pengirim": id, "nomor": "6281234567890", "pesan": "hi"}),
        json!({"device": id, "to": "6281234567890", "text": "hi"}),
        json!({"from": phone, "to": "6281234567890", "text": "hi"}),
    ] {
        let (status, answer) = app.post("/api/send-message", key, &body).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    }
    for query in [format!("device={id}"), format!("device={phone}")] {
        let (status, body) = app.get(&format!("/api/user/chat-history?{query}"), key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let response = app
            .request(Method::GET, &format!("/api/user/chat-history/export.csv?{query}"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::json_of(response).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = app.get("/api/user/devices", key).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["id"], own);
    let (_, statuses) = app.get("/api/user/devices/status", key).await;
    assert_eq!(statuses["total"], 1, "{statuses}");

    // Nothing the other tenant tried touched the device.
    let device = app.wait_for_device_status(&owner, id, "connected").await;
    assert_eq!(device["name"], format!("Device {phone}"));
    assert!(app.outbox(id).await.is_empty());
}
