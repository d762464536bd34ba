//! `wa-gateway backup` while messages flow, `restore` on a second gateway: the restored
//! gateway reconnects the paired device from the keys in the copy, without a QR code.

use std::time::Instant;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_made_while_sending_restores_on_a_new_gateway_whose_device_reconnects_without_a_qr() {
    let fake = FakeWhatsApp::new();
    let mut app = spawn(&fake).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let copy = dir.path().join("copy.db");
    if app.on_postgres() {
        let err = wa_gateway::backup::backup(&app.config.database.url, &copy).await.unwrap_err().to_string();
        assert!(err.contains("pg_dump"), "PostgreSQL users are sent to pg_dump: {err}");
        return;
    }
    let tenant = app.create_tenant("premium").await;
    let id = paired_device(&app, &tenant, &fake, PHONE).await;

    // Sends keep going while the copy is made.
    let (before, _) = send_text(&app, &tenant, id, "6281299990000", "sebelum").await;
    assert_eq!(before, StatusCode::OK);
    let sending = {
        let (client, url, key) =
            (reqwest::Client::new(), app.url("/api/send-message"), tenant.api_key.clone());
        tokio::spawn(async move {
            for n in 0..20 {
                let body = json!({"device": id, "to": "6281299990000", "text": format!("selama {n}"), "async": true});
                let r = client.post(&url).header("x-api-key", &key).json(&body).send().await.expect("sent");
                assert_eq!(r.status(), StatusCode::OK);
            }
        })
    };
    let t = Instant::now();
    let summary = wa_gateway::backup::backup(&app.config.database.url, &copy).await.expect("the backup");
    report("backup while sending", t);
    sending.await.expect("the sends");
    assert!(summary.bytes > 0 && summary.devices == 1 && summary.tenants == 1, "{summary}");
    assert!((1..=21).contains(&summary.messages), "the API send before the copy is in it: {summary}");
    let again = wa_gateway::backup::backup(&app.config.database.url, &copy).await.unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");

    // Not while a gateway serves the target database.
    let err = wa_gateway::backup::restore(&app.config.database.url, &copy).await.unwrap_err();
    assert!(format!("{err:#}").contains("stop the gateway"), "{err:#}");

    // A second gateway on a new file restored from the copy.
    app.stop().await;
    let restored_dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite:{}", restored_dir.path().join("data").join("gateway.db").display());
    let restored = wa_gateway::backup::restore(&url, &copy).await.expect("the restore");
    assert_eq!(restored.summary.messages, summary.messages);
    assert!(restored.previous.is_none());
    let journal_mark = fake.journal().len();
    let t = Instant::now();
    let mut second = spawn_with(&fake, |c| c.database.url = url.clone()).await;
    let seen = updates_until(&mut second.updates, id, DeviceStatus::Connected, LOGIN).await;
    report("restored gateway → connected", t);
    assert!(!seen.iter().any(|s| s.starts_with("qr")), "no QR after a restore: {seen:?}");
    assert_eq!(pairing_rounds_since(&fake, journal_mark), 0, "{}", fake.journal_text());
    assert_eq!(last_login_handshake(&fake, PHONE), Some(HandshakeKind::Ik), "a resumed handshake");
    fake.wait_settled(PHONE, 2, STEP).await.expect("the post-login queries");
    let (status, body) = send_text(&second, &tenant, id, "6281299990000", "setelah pemulihan").await;
    assert_eq!(status, StatusCode::OK, "the tenant's key and device work: {body}");

    // Restoring over an existing database keeps the one it replaces.
    second.stop().await;
    let restored = wa_gateway::backup::restore(&url, &copy).await.expect("the second restore");
    let previous = restored.previous.expect("the replaced database is kept");
    assert!(previous.exists(), "{}", previous.display());
}
