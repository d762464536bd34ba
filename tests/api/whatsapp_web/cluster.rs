//! Two gateway processes on one PostgreSQL database and one (fake) WhatsApp network, with the
//! real whatsapp-rust client: only the holder of a device's lease logs in, a send through the
//! other process goes out once through the holder's connection (and so does presence), and a graceful stop hands the
//! device over with one new login and no fight over the connection.

use reqwest::StatusCode;

use super::fake_wa::FakeWhatsApp;
use super::{paired_device, send_text, spawn_with, STEP};
use crate::helpers::{poll_until, postgres, TestApp};

const CONTACT: &str = "6281299990311";

/// Waits until the process renewed its lease twice more (scans run in the same loop, more
/// often): it has had its chance to take devices.
async fn let_it_scan(app: &TestApp) {
    let node = app.state.device_manager.node().id().to_string();
    let renewed = || async {
        let nodes = app.state.db.cluster_live_nodes().await.unwrap();
        nodes.into_iter().find(|n| n.node_id == node).map(|n| n.renewed_at)
    };
    let first = poll_until(STEP, renewed).await;
    poll_until(STEP, || async { renewed().await.filter(|&r| r >= first + 1_000) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn whatsapp_web_two_processes_share_a_device_without_fighting_over_it() {
    assert!(postgres::server_url().is_some(), "{} is not set: this test needs PostgreSQL", postgres::ENV);
    let fake = FakeWhatsApp::new();
    let mut first = spawn_with(&fake, |c| {
        c.cluster.node_ttl_ms = 3_000;
        c.cluster.renew_interval_ms = 500;
        c.cluster.renew_deadline_ms = 2_000;
        c.cluster.scan_interval_ms = 200;
    })
    .await;
    let tenant = first.create_tenant("premium").await;
    let phone = "6281381830671";
    let id = paired_device(&first, &tenant, &fake, phone).await;
    assert_eq!(fake.login_count(phone), 1);

    let mut second = first.spawn_second().await;
    let_it_scan(&second).await;
    assert_eq!(fake.login_count(phone), 1, "the second process did not log the device in");
    let connections = fake.connections().iter().filter(|c| c.phone.as_deref() == Some(phone)).count();
    assert_eq!(connections, 1);

    // Sent through the second process, on the first's connection, once.
    let (status, body) = send_text(&second, &tenant, id, CONTACT, "lewat proses kedua").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The fake's delivery receipt may have arrived already.
    assert!(body["status"] == "sent" || body["status"] == "delivered", "{body}");
    let wa_id = body["wa_id"].as_str().expect("a WhatsApp id").to_string();
    let sent: Vec<_> = fake.sent(phone).into_iter().filter(|(_, id)| *id == wa_id).collect();
    assert_eq!(sent.len(), 1, "one message on the wire: {sent:?}");

    // Session calls through the second process run on the first's connection too.
    let typing = serde_json::json!({"chat": CONTACT, "state": "typing"});
    let (status, body) =
        second.post(&format!("/api/user/devices/{id}/presence"), &tenant.api_key, &typing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let to = format!("{CONTACT}@s.whatsapp.net");
    fake.wait_chat_state(phone, &to, "composing", STEP).await.expect("the holder showed typing");
    assert_eq!(fake.login_count(phone), 1, "still the first process's one login");

    // A graceful stop hands the device over: one new login, by the second process.
    first.stop().await;
    fake.wait_login_count(phone, 2, STEP).await.expect("the second process logged the device in");
    let holder = second.state.db.cluster_holder(id).await.unwrap().map(|(n, _)| n);
    assert_eq!(holder.as_deref(), Some(&*second.state.device_manager.node().id()));
    poll_until(STEP, || async {
        let (_, body) = second.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
        (body["status"] == "connected").then_some(())
    })
    .await;
    let (status, body) = send_text(&second, &tenant, id, CONTACT, "setelah pindah").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["status"] == "sent" || body["status"] == "delivered", "{body}");
    let_it_scan(&second).await;
    assert_eq!(fake.login_count(phone), 2, "no further logins: nobody fights over the connection");
    second.stop().await;
}
