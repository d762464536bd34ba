//! Several gateway processes on one database: each device's session runs in exactly one of
//! them (the holder of its lease), sends through any process go out once through the holder,
//! devices spread over the processes and move when one stops or is cut off. The processes
//! share one simulated WhatsApp network, which counts every session opened per device and
//! every session that replaced a live one.
//!
//! On SQLite only one process may serve a database file.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wa_gateway::db::devices::StatusChange;
use wa_gateway::{App, Config};

use crate::helpers::{poll_until, postgres, unique, TestApp, TestTenant, WAIT};
use crate::webhooks::receiver::Receiver;

const BUDI: &str = "6281299990031";

/// Cluster timing short enough for tests: dead after 3 s, renew every 0.5 s, stop sessions
/// 2 s after the last good renewal began, look for devices every 0.2 s.
fn quick(config: &mut Config) {
    config.cluster.node_ttl_ms = 3_000;
    config.cluster.renew_interval_ms = 500;
    config.cluster.renew_deadline_ms = 2_000;
    config.cluster.scan_interval_ms = 200;
    // Webhook receivers listen on 127.0.0.1.
    config.webhooks.allow_private_targets = true;
}

/// A device number unique to this test run.
fn device_phone() -> String {
    format!("62813{:08}", unique() % 100_000_000)
}

fn require_postgres() {
    assert!(postgres::server_url().is_some(), "{} is not set: this test needs PostgreSQL", postgres::ENV);
}

/// The node id of the process holding the device's lease, if a live one does.
async fn holder(app: &TestApp, device: i64) -> Option<String> {
    app.state.db.cluster_holder(device).await.expect("the lease is readable").map(|(node, _)| node)
}

fn node_of(app: &TestApp) -> String {
    app.state.device_manager.node().id().to_string()
}

/// Sessions opened and replaced on the shared simulated network for the device.
fn sessions(app: &TestApp, device: i64) -> (u64, u64) {
    let counts = app.state.simulator.as_ref().expect("the simulator driver").sessions(device);
    (counts.opened, counts.replaced)
}

/// Waits until the process has looked at the devices a few times since now: its node was
/// renewed twice more (renewals and scans share one loop), so a scan had its chance too.
async fn let_it_scan(app: &TestApp) {
    let db = &app.state.db;
    let node = node_of(app);
    let renewed_at = || async {
        let nodes = db.cluster_live_nodes().await.unwrap();
        nodes.into_iter().find(|n| n.node_id == node).map(|n| n.renewed_at)
    };
    // A process registers as it starts running.
    let first = poll_until(WAIT, renewed_at).await;
    poll_until(WAIT, || async {
        let now = renewed_at().await?;
        // Two renewals later (0.5 s apart): at least five scans (0.2 s apart) ran.
        (now >= first + 1_000).then_some(())
    })
    .await;
}

/// Two processes on one database and network, with the test cluster timing; a tenant's
/// device is paired through the first (which holds it) before the second starts.
struct Pair {
    first: TestApp,
    second: TestApp,
    tenant: TestTenant,
    phone: String,
    device: i64,
}

async fn two_processes_with_a_device() -> Pair {
    require_postgres();
    let first = TestApp::spawn_with(quick).await;
    let tenant = first.create_tenant("enterprise").await;
    let phone = device_phone();
    let device = first.pair_device(&tenant, &phone).await;
    let second = first.spawn_second().await;
    Pair { first, second, tenant, phone, device }
}

async fn send_sync(app: &TestApp, tenant: &TestTenant, device: &str, text: &str) -> serde_json::Value {
    let (status, body) = app
        .post("/api/send-message", &tenant.api_key, &json!({"device": device, "to": BUDI, "text": text}))
        .await;
    assert_eq!(status, StatusCode::OK, "send through {}: {body}", app.base_url);
    body
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn a_second_process_leaves_the_first_ones_device_alone_and_sends_through_it_once() {
    let Pair { first, mut second, tenant, phone, device } = two_processes_with_a_device().await;
    let_it_scan(&second).await;

    assert_eq!(holder(&first, device).await, Some(node_of(&first)), "the first process still holds it");
    // One session, the first's pairing one, never replaced: the second opened none.
    assert_eq!(sessions(&first, device), (1, 0), "the second process opened no session of the device");
    assert!(second.state.device_manager.fence_of(device).is_none());

    // Answered as connected by either process, sent once, by the holder.
    for app in [&first, &second] {
        let (_, body) = app.get(&format!("/api/user/devices/{device}"), &tenant.api_key).await;
        assert_eq!(body["status"], "connected", "{}: {body}", app.base_url);
    }
    let sent = send_sync(&second, &tenant, &phone, "lewat proses kedua").await;
    assert_eq!(sent["status"], "sent", "the synchronous send waited for the holder: {sent}");
    let queued: Vec<i64> = futures::future::join_all((0..10).map(|i| {
        let body = json!({"device": phone, "to": BUDI, "text": format!("async {i}"), "async": true});
        let (app, key) = (&second, tenant.api_key.clone());
        async move {
            let (status, body) = app.post("/api/send-message", &key, &body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["id"].as_i64().expect("a message id")
        }
    }))
    .await;
    for id in &queued {
        first.wait_for_message_status(&tenant, *id, "sent").await;
    }
    let outbox = first.outbox(device).await;
    assert_eq!(outbox.len(), 11, "each message once: {outbox:?}");
    let ids: HashSet<&str> = outbox.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 11, "eleven WhatsApp ids");
    assert!(ids.contains(sent["wa_id"].as_str().expect("the sent message has its WhatsApp id")));
    assert_eq!(sessions(&first, device), (1, 0), "still the one session");
    second.stop().await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn devices_spread_over_the_processes_and_move_when_one_stops() {
    require_postgres();
    let mut first = TestApp::spawn_with_lasting_network(quick).await;
    let tenant = first.create_tenant("enterprise").await;
    let phones: Vec<String> = (0..4).map(|_| device_phone()).collect();
    let mut devices = Vec::new();
    for phone in &phones {
        devices.push(first.pair_device(&tenant, phone).await);
    }
    let second = first.spawn_second().await;
    let (a, b) = (node_of(&first), node_of(&second));

    // The newcomer gets its share (two of four) from the first, which closes each session
    // before the newcomer opens it.
    poll_until(WAIT, || async {
        let mut held = (0, 0);
        for &d in &devices {
            match holder(&first, d).await {
                Some(n) if n == a => held.0 += 1,
                Some(n) if n == b => held.1 += 1,
                _ => {}
            }
        }
        (held == (2, 2)).then_some(())
    })
    .await;
    let (_, view) = second.admin_get("/api/admin/cluster").await;
    let counts: Vec<(String, i64)> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().into(), n["devices"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts, [(a.clone(), 2), (b.clone(), 2)], "the cluster view: {view}");
    for &d in &devices {
        let app = if holder(&first, d).await == Some(b.clone()) { &second } else { &first };
        app.wait_for_device_status(&tenant, d, "connected").await;
        assert_eq!(sessions(&first, d).1, 0, "device {d}: no session was replaced");
    }
    for phone in &phones {
        assert_eq!(send_sync(&first, &tenant, phone, "sebelum").await["status"], "sent");
    }

    // A graceful stop gives the devices up at once: the second takes all four.
    first.stop().await;
    poll_until(WAIT, || async {
        let mut all = true;
        for &d in &devices {
            all &= holder(&second, d).await == Some(b.clone());
        }
        all.then_some(())
    })
    .await;
    for (phone, &d) in phones.iter().zip(&devices) {
        second.wait_for_device_status(&tenant, d, "connected").await;
        assert_eq!(send_sync(&second, &tenant, phone, "sesudah").await["status"], "sent");
        let texts: Vec<String> =
            second.outbox(d).await.iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
        assert_eq!(texts, ["sebelum", "sesudah"], "device {d}");
        assert_eq!(sessions(&second, d).1, 0, "device {d}: no session was replaced");
    }
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn a_process_cut_off_from_the_database_stops_before_another_takes_its_devices() {
    let Pair { first, mut second, tenant, phone, device } = two_processes_with_a_device().await;
    let (_, epoch_before) = first.state.db.cluster_holder(device).await.unwrap().expect("held");
    let_it_scan(&second).await;
    assert_eq!(holder(&first, device).await, Some(node_of(&first)));

    // The first cannot renew any more: it closes the session at its deadline, and the second
    // takes the device over once the first's lease expired, under a higher epoch.
    let cut_at = tokio::time::Instant::now();
    let first_node = node_of(&first);
    first.state.device_manager.node().cut_off(true);
    let sim = first.state.simulator.clone().expect("the simulator");
    poll_until(WAIT, || async { (!sim.is_connected(device)).then_some(()) }).await;
    let closed_after = cut_at.elapsed();
    let b = node_of(&second);
    let (node, epoch) = poll_until(WAIT, || async {
        let held = second.state.db.cluster_holder(device).await.unwrap()?;
        (held.0 == b).then_some(held)
    })
    .await;
    let taken_after = cut_at.elapsed();
    assert_eq!(node, b);
    assert!(epoch > epoch_before, "a takeover raises the epoch: {epoch_before} -> {epoch}");
    eprintln!("cut off: session closed after {closed_after:?}, device taken over after {taken_after:?}");
    assert!(closed_after < taken_after, "closed after {closed_after:?}, taken over after {taken_after:?}");
    // Not before the first's lease expired: its last renewal was at most 0.5 s before the cut.
    assert!(taken_after >= Duration::from_millis(2_400), "taken over after {taken_after:?}");
    second.wait_for_device_status(&tenant, device, "connected").await;
    assert_eq!(sessions(&second, device).1, 0, "the two sessions never overlapped");

    // The stale holder's writes are refused; its API still takes sends, which the new holder
    // sends.
    let stale = first.state.db.cluster_holds(device, &first_node, epoch_before).await.unwrap();
    assert!(!stale, "the old lease no longer holds");
    let moved = first
        .state
        .db
        .system_set_device_status(
            device,
            StatusChange { status: "disconnected", detail: None, paired: None, jid: None },
            Some((&first_node, epoch_before)),
            &[],
        )
        .await
        .unwrap();
    assert!(!moved, "a status write under the old lease is refused");
    // What a send through the first checks: the device connected under a live holder. On a
    // loaded machine the second's renewal can lag its 3 s lease for a moment; wait it out.
    poll_until(WAIT, || async { first.state.db.cluster_online(device).await.unwrap().then_some(()) }).await;
    let sent = send_sync(&first, &tenant, &phone, "setelah pindah").await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(second.outbox(device).await.len(), 1);

    // Back in touch, the first joins again under a new id and the devices are shared again
    // (one device: it stays where it is).
    first.state.device_manager.node().cut_off(false);
    let rejoined = poll_until(WAIT, || async {
        let id = node_of(&first);
        (id != first_node).then_some(id)
    })
    .await;
    let_it_scan(&first).await;
    assert_ne!(holder(&second, device).await, Some(rejoined), "a device with a live holder is not taken");
    assert_eq!(sessions(&second, device).1, 0, "no session was replaced");
    second.stop().await;
}

#[tokio::test]
async fn a_second_gateway_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_toml("").unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.database.url = format!("sqlite:{}", dir.path().join("gateway.db").display());
    config.media.path = dir.path().join("media");
    let first = App::build(config.clone()).await.expect("the first gateway builds");
    let refused = App::build(config.clone()).await.err().expect("the second is refused").to_string();
    assert!(refused.contains("another gateway process already serves the SQLite database"), "{refused}");
    drop(first);
    App::build(config).await.expect("once the first is gone, a gateway starts on the file");
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn session_commands_through_the_other_process_reach_the_devices_holder() {
    let Pair { first, mut second, tenant, device, .. } = two_processes_with_a_device().await;
    let_it_scan(&second).await;
    let sim = first.state.simulator.clone().expect("the simulator");

    // A number check needs the live session: answered through the holder.
    let (status, body) = second
        .post(
            &format!("/api/user/devices/{device}/check-numbers"),
            &tenant.api_key,
            &json!({"numbers": [BUDI, "6281200000000", "not a number"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers = body["data"].as_array().unwrap();
    assert_eq!(answers[0]["on_whatsapp"], true, "{body}");
    assert_eq!(answers[1]["on_whatsapp"], false, "numbers ending 0000 are not on WhatsApp: {body}");
    assert!(answers[2]["error"].is_string(), "{body}");

    // A new device pairing on the first: its QR and a pair code asked through the second come
    // from the first's pairing round.
    let (status, created) =
        first.post("/api/user/devices", &tenant.api_key, &json!({"phone": device_phone()})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pairing = created["id"].as_i64().unwrap();
    let (status, qr_first) = first.get(&format!("/api/user/devices/{pairing}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{qr_first}");
    let (status, qr_second) = second.get(&format!("/api/user/devices/{pairing}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{qr_second}");
    assert_eq!(qr_second["qr"], qr_first["qr"], "one pairing round, in the first process");
    let (status, code) =
        second.post(&format!("/api/user/devices/{pairing}/pair-code"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{code}");
    assert!(code["code"].as_str().is_some_and(|c| !c.is_empty()), "{code}");
    assert_eq!(sessions(&first, pairing), (1, 0), "the second opened no session of the pairing device");

    // Logout through the second logs the device out where its session runs; its
    // device.status event is sent once, by the holder.
    let receiver = Receiver::start().await;
    let (status, body) = first
        .post(
            "/api/user/webhooks",
            &tenant.api_key,
            &json!({"url": receiver.url("/hook"), "events": ["device.status"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(sim.is_connected(device));
    let (status, body) =
        second.post(&format!("/api/user/devices/{device}/logout"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "logged_out", "{body}");
    assert!(!sim.is_connected(device), "the holder's session ended");
    assert_eq!(holder(&first, device).await, None, "a logged-out device is held by nobody");
    let (_, body) = first.get(&format!("/api/user/devices/{device}"), &tenant.api_key).await;
    assert_eq!(body["status"], "logged_out", "{body}");
    assert_eq!(sessions(&first, device).1, 0, "no session was replaced");
    let logged_out = || {
        receiver
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|e| e["data"]["device_id"] == device && e["data"]["status"] == "logged_out")
            .count()
    };
    poll_until(WAIT, || async { (logged_out() > 0).then_some(()) }).await;
    let_it_scan(&second).await;
    let_it_scan(&first).await;
    assert_eq!(logged_out(), 1, "one device.status event for the logout");
    second.stop().await;
}

#[tokio::test]
async fn a_pipeline_that_never_ran_runs_when_a_process_takes_the_device() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    let phone = device_phone();
    let device = app.pair_device(&tenant, &phone).await;
    let (status, body) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "halo", "match": "exact", "reply": "hai"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Stored, as a crash right after storing leaves it: its pipeline never ran.
    let stored = app
        .state
        .db
        .insert_inbound(&wa_gateway::db::NewMessage {
            user_id: tenant.id,
            device_id: device,
            direction: "in".into(),
            chat: format!("{BUDI}@s.whatsapp.net"),
            sender: BUDI.into(),
            recipient: phone.clone(),
            text: Some("halo".into()),
            kind: "text".into(),
            status: "received".into(),
            wa_id: Some(format!("3EB0{:016X}", unique())),
            source: "whatsapp".into(),
            ..Default::default()
        })
        .await
        .expect("stored")
        .expect("a new message");

    // The process that takes the device (here: the same one, started again) runs it, once.
    let app = app.restart().await;
    let texts = poll_until(WAIT, || async {
        let sent: Vec<String> =
            app.outbox(device).await.iter().map(|m| m["text"].as_str().unwrap_or("").to_string()).collect();
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(texts, ["hai"]);
    poll_until(WAIT, || async {
        let pending = app.state.db.unprocessed_inbound(100).await.unwrap();
        (!pending.iter().any(|(_, id)| *id == stored.id)).then_some(())
    })
    .await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn a_devices_live_events_reach_a_stream_served_by_another_process() {
    require_postgres();
    let first = TestApp::spawn_with(quick).await;
    let tenant = first.create_tenant("enterprise").await;
    let (status, created) =
        first.post("/api/user/devices", &tenant.api_key, &json!({"phone": device_phone()})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let device = created["id"].as_i64().unwrap();
    let mut second = first.spawn_second().await;
    let mut events = crate::pairing::EventStream::open(&second, &tenant, device).await;

    // Paired in the first process (it holds the device); the second's stream hears it.
    let (status, body) = first.get(&format!("/api/user/devices/{device}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = first.admin_post("/api/admin/simulator/scan", &json!({"device": device})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let connected = events.until(|kind, data| kind == "status" && data["status"] == "connected").await;
    assert_eq!(connected["device_id"], device);
    assert!(second.state.device_manager.fence_of(device).is_none(), "the device runs in the first process");
    second.stop().await;
}

#[tokio::test]
async fn the_operator_sees_the_processes_and_who_holds_which_device() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("enterprise").await;
    let device = app.pair_device(&tenant, &device_phone()).await;
    let (status, view) = app.admin_get("/api/admin/cluster").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let me = view["this_node"].as_str().expect("the answering process").to_string();
    assert_eq!(me, node_of(&app));
    let nodes = view["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{view}");
    assert_eq!(nodes[0]["id"], me);
    assert_eq!(nodes[0]["devices"], 1, "{view}");
    assert_eq!(view["leases_total"], 1, "{view}");
    let lease = &view["leases"][0];
    assert_eq!(lease["device_id"], device);
    assert_eq!(lease["node"], me);
    assert_eq!(lease["live"], true);
    assert!(view["stats"]["leases_taken"].as_u64().unwrap() >= 1, "{view}");

    let (status, _) = app.get("/api/admin/cluster", &tenant.api_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tenants do not see the cluster");
    let (status, body) = app.admin_get("/api/admin/cluster?limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn reactions_presence_groups_and_profiles_through_the_other_process_run_on_the_holder() {
    let Pair { first, second, tenant, phone, device } = two_processes_with_a_device().await;
    let sent = send_sync(&second, &tenant, &phone, "pesanan siap").await;
    let key = &tenant.api_key;

    let (status, reacted) = second
        .post(&format!("/api/user/messages/{}/reaction", sent["id"]), key, &json!({"emoji": "👍"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reacted}");
    assert_eq!(reacted["reactions"][0]["emoji"], "👍", "{reacted}");
    let presence = json!({"chat": BUDI, "state": "typing"});
    let (status, body) = second.post(&format!("/api/user/devices/{device}/presence"), key, &presence).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let groups = format!("/api/user/devices/{device}/groups");
    let (status, created) =
        second.post(&groups, key, &json!({"subject": "Pelanggan setia", "participants": [BUDI]})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, listed) = second.get(&groups, key).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed["data"].as_array().or(listed.as_array()).cloned().unwrap_or_default();
    assert!(
        listed.iter().any(|g| g["subject"] == "Pelanggan setia"),
        "the holder answered the list: {listed:?}"
    );
    let contact = format!("/api/user/contacts/{BUDI}?device={phone}&refresh=true");
    let (status, profile) = second.get(&contact, key).await;
    assert_eq!(status, StatusCode::OK, "{profile}");

    // All of it went out through the holder's one session; the second process opened none.
    let outbox = first.outbox(device).await;
    let kinds: Vec<&str> = outbox.iter().filter_map(|m| m["type"].as_str()).collect();
    assert!(kinds.contains(&"reaction") && kinds.contains(&"presence"), "{outbox:?}");
    assert!(second.state.device_manager.fence_of(device).is_none());
    assert_eq!(sessions(&first, device), (1, 0), "still the holder's one session");
    assert!(
        second.state.device_manager.node().stats().commands_sent.load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    );
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn a_key_revoked_or_a_tenant_changed_in_one_process_counts_in_the_other_at_once() {
    require_postgres();
    let first = TestApp::spawn_with(quick).await;
    let tenant = first.create_tenant("basic").await;
    let second = first.spawn_second().await;
    let (status, created) =
        first.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "kasir"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["api_key"].as_str().unwrap().to_string();
    // The second process has read (and keeps) the key, the tenant and its limits.
    assert_eq!(second.get("/api/user/info", &key).await.0, StatusCode::OK);
    let (status, limits) = second.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_ne!(limits["limits"]["devices"], 7, "{limits}");

    // Well within the cache's lifetime: only the change's notification can make these pass.
    let soon = Duration::from_secs(3);
    let path = format!("/api/admin/tenants/{}", tenant.id);
    let (status, body) = first.admin_patch(&path, &json!({"limits": {"devices": 7}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    poll_until(soon, || async {
        let (_, limits) = second.get("/api/user/limits", &tenant.api_key).await;
        (limits["limits"]["devices"] == 7).then_some(())
    })
    .await;

    let (status, _) = first.delete(&format!("/api/user/api-keys/{}", created["id"]), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    poll_until(soon, || async {
        (second.get("/api/user/info", &key).await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    let (status, body) = first.admin_patch(&path, &json!({"status": "suspended"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    poll_until(soon, || async {
        (second.get("/api/user/info", &tenant.api_key).await.0 == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
}
