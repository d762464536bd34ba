//! Tests of the simulator against a temp-file SQLite database, with short timings.

use super::*;
use crate::db::tenants::NewTenant;
use crate::db::{now_ms, writer};
use crate::devices::driver::{DeviceKey, Driver, OutboundMedia, Session};

pub(super) struct World {
    pub(super) _dir: tempfile::TempDir,
    pub(super) db: Db,
    pub(super) devices: Vec<i64>,
}

/// A migrated SQLite file with one tenant owning `n` devices (phones `62812000000<i>`).
pub(super) async fn world(n: usize) -> World {
    let (dir, db) = crate::db::temp_sqlite().await;
    let new = NewTenant { name: "Toko", email: "toko@example.com", package: "free", password_hash: None };
    let tenant = db.create_tenant(&new, "wag_sim", "hash").await.expect("tenant");
    let mut devices = Vec::new();
    for i in 0..n {
        let id: i64 = writer!(db, |p| sqlx::query_scalar(
            "INSERT INTO devices (user_id, phone, name, created_at, updated_at) \
             VALUES ($1, $2, 'sim', $3, $3) RETURNING id"
        )
        .bind(tenant.id)
        .bind(phone(i))
        .bind(now_ms())
        .fetch_one(p)
        .await)
        .expect("device");
        devices.push(id);
    }
    World { _dir: dir, db, devices }
}

pub(super) fn phone(i: usize) -> String {
    format!("62812000000{i}")
}

fn fast() -> SimTiming {
    SimTiming { connect_delay: Duration::from_millis(5), ..SimTiming::default() }
}

async fn open(sim: &Simulator, device_id: i64, i: usize) -> (Arc<dyn Session>, mpsc::Receiver<DriverEvent>) {
    let (tx, rx) = mpsc::channel(64);
    let key = DeviceKey { device_id, tenant_id: 1, phone: phone(i), writes: Default::default() };
    (sim.open(key, tx).await.expect("open"), rx)
}

async fn next(rx: &mut mpsc::Receiver<DriverEvent>) -> DriverEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event in time")
        .expect("the session is still open")
}

/// Opens device `i` as already paired and waits for `Connected`.
async fn connected(w: &World, sim: &Simulator, i: usize) -> (Arc<dyn Session>, mpsc::Receiver<DriverEvent>) {
    let jid = format!("{}@s.whatsapp.net", phone(i));
    w.db.session_put(w.devices[i], JID_KEY, jid.as_bytes()).await.unwrap();
    let (session, mut rx) = open(sim, w.devices[i], i).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Connected));
    (session, rx)
}

async fn assert_quiet(rx: &mut mpsc::Receiver<DriverEvent>) {
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(rx.try_recv().is_err(), "no further event expected");
}

#[tokio::test]
async fn qr_codes_rotate_then_the_round_ends_exhausted() {
    let w = world(1).await;
    let timing = SimTiming {
        first_qr_ttl: Duration::from_millis(40),
        next_qr_ttl: Duration::from_millis(20),
        qr_codes: 3,
        ..fast()
    };
    let sim = Simulator::new(w.db.clone(), timing);
    let (_session, mut rx) = open(&sim, w.devices[0], 0).await;
    let mut codes = Vec::new();
    for ttl in [40, 20, 20] {
        match next(&mut rx).await {
            DriverEvent::Qr { code, ttl: got } => {
                assert_eq!(got, Duration::from_millis(ttl));
                let parts: Vec<&str> = code.split(',').collect();
                assert_eq!(parts.len(), 5, "{code}");
                assert!(parts[0].starts_with("2@") && parts[4] == "1");
                codes.push(code);
            }
            other => panic!("expected a QR code, got {other:?}"),
        }
    }
    assert!(codes[0] != codes[1] && codes[1] != codes[2]);
    assert!(matches!(next(&mut rx).await, DriverEvent::Stopped(StopReason::QrExhausted)));
    assert!(rx.recv().await.is_none(), "the session is over");
    assert!(matches!(sim.scan(w.devices[0]).await, Err(SimError::NotWaitingForScan)));
}

#[tokio::test]
async fn scanning_pairs_connects_and_persists_and_a_restart_reconnects_without_qr() {
    let w = world(1).await;
    let dev = w.devices[0];
    let sim = Simulator::new(w.db.clone(), fast());
    let (_session, mut rx) = open(&sim, dev, 0).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Qr { .. }));
    assert!(!sim.is_paired(dev).await.unwrap());

    sim.scan(dev).await.unwrap();
    match next(&mut rx).await {
        DriverEvent::Paired { jid } => assert_eq!(jid, "628120000000@s.whatsapp.net"),
        other => panic!("expected Paired, got {other:?}"),
    }
    assert!(matches!(next(&mut rx).await, DriverEvent::Connected));
    assert!(sim.is_connected(dev));
    assert!(sim.is_paired(dev).await.unwrap());
    assert!(matches!(sim.scan(dev).await, Err(SimError::NotWaitingForScan)));

    // The process restarts: a new simulator over the same database.
    let restarted = Simulator::new(w.db.clone(), fast());
    let (_session, mut rx) = open(&restarted, dev, 0).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Connected));
    assert!(restarted.is_connected(dev));
    assert_quiet(&mut rx).await;
}

#[tokio::test]
async fn a_pair_code_replaces_the_qr_codes_and_a_scan_completes_it() {
    let w = world(1).await;
    let sim = Simulator::new(w.db.clone(), fast());
    let (session, mut rx) = open(&sim, w.devices[0], 0).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Qr { .. }));
    assert!(session.request_pair_code("12").await.is_err());
    let code = session.request_pair_code("+6285550001111").await.unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");
    assert!(code.bytes().filter(|&b| b != b'-').all(|b| PAIR_ALPHABET.contains(&b)));
    match next(&mut rx).await {
        DriverEvent::PairCode { code: got, ttl } => {
            assert_eq!((got, ttl), (code, PAIR_CODE_TTL))
        }
        other => panic!("expected PairCode, got {other:?}"),
    }
    sim.scan(w.devices[0]).await.unwrap();
    assert!(
        matches!(next(&mut rx).await, DriverEvent::Paired { jid } if jid == "6285550001111@s.whatsapp.net")
    );
    assert!(matches!(next(&mut rx).await, DriverEvent::Connected));
    assert!(session.request_pair_code("6285550001111").await.is_err());
}

#[tokio::test]
async fn disconnect_emits_disconnected_then_connection_lost_and_ends_the_session() {
    let w = world(1).await;
    let sim = Simulator::new(w.db.clone(), fast());
    let (session, mut rx) = connected(&w, &sim, 0).await;
    sim.disconnect(w.devices[0]).unwrap();
    assert!(matches!(next(&mut rx).await, DriverEvent::Disconnected { .. }));
    assert!(matches!(next(&mut rx).await, DriverEvent::Stopped(StopReason::ConnectionLost(_))));
    assert!(rx.recv().await.is_none(), "no reconnect by itself");
    assert!(!sim.is_connected(w.devices[0]));
    let to = "6281234567890@s.whatsapp.net".to_string();
    assert!(matches!(session.send_text(&to, "hi", "3EB0A1").await, Err(DriverError::NotConnected)));
    assert!(matches!(sim.disconnect(w.devices[0]), Err(SimError::NoSession)));
    // Still paired: the supervisor's next open connects again.
    let (_session, mut rx) = open(&sim, w.devices[0], 0).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Connected));
}

#[tokio::test]
async fn sending_needs_a_connection_and_is_recorded_in_order() {
    let w = world(1).await;
    let sim = Simulator::new(w.db.clone(), fast());
    let to = "6281234567890@s.whatsapp.net".to_string();
    let (pairing, _rx) = open(&sim, w.devices[0], 0).await;
    assert!(matches!(pairing.send_text(&to, "too early", "3EB0A2").await, Err(DriverError::NotConnected)));
    assert!(matches!(pairing.check_numbers(&[]).await, Err(DriverError::NotConnected)));

    let (session, _rx) = connected(&w, &sim, 0).await;
    assert!(matches!(
        pairing.send_text(&to, "replaced session", "3EB0A3").await,
        Err(DriverError::NotConnected)
    ));
    assert!(matches!(
        session.send_text(&"not-a-jid".to_string(), "x", "3EB0A4").await,
        Err(DriverError::Invalid(_))
    ));
    let first = session.new_message_id();
    session.send_text(&to, "one", &first).await.unwrap();
    let media = OutboundMedia {
        kind: MediaKind::Image,
        bytes: Arc::new(vec![1, 2, 3]),
        mime: "image/png".into(),
        filename: Some("a.png".into()),
        caption: Some("look".into()),
    };
    let group = "120363012345678901@g.us".to_string();
    let second = session.new_message_id();
    session.send_media(&group, &media, &second).await.unwrap();
    let third = session.new_message_id();
    session.send_text(&to, "three", &third).await.unwrap();
    for id in [&first, &second, &third] {
        assert!(id.starts_with("3EB0") && id.len() == 20, "{id}");
    }
    let outbox = sim.outbox(w.devices[0]);
    let ids: Vec<&str> = outbox.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [&first, &second, &third]);
    assert_eq!(outbox[0].text.as_deref(), Some("one"));
    assert_eq!(outbox[1].to, group);
    let sent_media = outbox[1].media.as_ref().unwrap();
    assert_eq!((sent_media.size, sent_media.caption.as_deref()), (3, Some("look")));
    let json = serde_json::to_value(&outbox[1]).unwrap();
    assert_eq!(json["media"]["kind"], "image");
    assert!(json.get("at").is_some() && json.get("text").is_some());

    // The cursor: entries after a `seq`, at most `limit`, still right once the outbox is full
    // and drops its oldest.
    assert_eq!(outbox.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let after: Vec<u64> = sim.outbox_after(w.devices[0], 1, 1).iter().map(|s| s.seq).collect();
    assert_eq!(after, [2]);
    assert!(sim.outbox_after(w.devices[0], 3, 10).is_empty());
    for n in 0..OUTBOX_CAP {
        session.send_text(&to, &format!("more {n}"), &session.new_message_id()).await.unwrap();
    }
    let total = OUTBOX_CAP as u64 + 3;
    assert_eq!(sim.outbox(w.devices[0]).first().map(|s| s.seq), Some(4));
    let tail = sim.outbox_after(w.devices[0], total - 2, 10);
    assert_eq!(tail.iter().map(|s| s.seq).collect::<Vec<_>>(), [total - 1, total]);
    assert_eq!(tail[1].text, Some(format!("more {}", OUTBOX_CAP - 1)));
    assert_eq!(sim.outbox_after(w.devices[0], 0, 1)[0].seq, 4, "older entries are gone");
}

#[tokio::test]
async fn check_numbers_follows_the_documented_rule() {
    let w = world(1).await;
    let sim = Simulator::new(w.db.clone(), fast());
    let (session, _rx) = connected(&w, &sim, 0).await;
    let numbers: Vec<String> =
        ["6281234567890", "6281234560000", "1234567", "62812abc45678"].map(String::from).to_vec();
    let checks = session.check_numbers(&numbers).await.unwrap();
    let on: Vec<bool> = checks.iter().map(|c| c.on_whatsapp).collect();
    assert_eq!(on, [true, false, false, false]);
    assert_eq!(checks[0].jid.as_deref(), Some("6281234567890@s.whatsapp.net"));
    assert_eq!(checks[1].jid, None);
}

#[tokio::test]
async fn a_receipt_reaches_only_the_device_that_sent_the_message() {
    let w = world(2).await;
    let sim = Simulator::new(w.db.clone(), fast());
    let (_a, mut rx_a) = connected(&w, &sim, 0).await;
    let (b, mut rx_b) = connected(&w, &sim, 1).await;
    let id = b.new_message_id();
    b.send_text(&"6281234567890@s.whatsapp.net".to_string(), "hi", &id).await.unwrap();
    sim.receipt(&id, ReceiptKind::Read).unwrap();
    match next(&mut rx_b).await {
        DriverEvent::Receipt { wa_ids, kind } => {
            assert_eq!((wa_ids, kind), (vec![id], ReceiptKind::Read))
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    assert_quiet(&mut rx_a).await;
    assert!(matches!(sim.receipt("3EB0UNKNOWN", ReceiptKind::Delivered), Err(SimError::UnknownMessage(_))));
}

#[tokio::test]
async fn a_phone_side_logout_wipes_the_session() {
    let w = world(1).await;
    let dev = w.devices[0];
    let sim = Simulator::new(w.db.clone(), fast());
    let (_session, mut rx) = connected(&w, &sim, 0).await;
    sim.logout(dev).await.unwrap();
    assert!(matches!(
        next(&mut rx).await,
        DriverEvent::Stopped(StopReason::LoggedOut(why)) if why == "unlinked from the phone"
    ));
    assert!(!sim.is_paired(dev).await.unwrap());
    assert!(!sim.is_connected(dev));
    assert!(matches!(sim.logout(dev).await, Err(SimError::NotLinked)));
    // Opening again starts a new pairing round.
    let (_session, mut rx) = open(&sim, dev, 0).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Qr { .. }));
}

#[tokio::test]
async fn gateway_logout_close_and_a_second_open_end_sessions_with_their_reasons() {
    let w = world(1).await;
    let dev = w.devices[0];
    let sim = Simulator::new(w.db.clone(), fast());
    let (first, mut rx1) = connected(&w, &sim, 0).await;
    let (second, mut rx2) = open(&sim, dev, 0).await;
    assert!(matches!(next(&mut rx1).await, DriverEvent::Stopped(StopReason::StreamReplaced)));
    first.close().await; // a stale handle does not touch the new session
    assert!(matches!(next(&mut rx2).await, DriverEvent::Connected));
    second.logout().await.unwrap();
    assert!(matches!(
        next(&mut rx2).await,
        DriverEvent::Stopped(StopReason::LoggedOut(why)) if why == "logged out by the gateway"
    ));
    assert!(!sim.is_paired(dev).await.unwrap());

    let (third, mut rx3) = open(&sim, dev, 0).await;
    assert!(matches!(next(&mut rx3).await, DriverEvent::Qr { .. }));
    third.close().await;
    assert!(matches!(next(&mut rx3).await, DriverEvent::Stopped(StopReason::Closed)));
    sim.forget(dev).await.unwrap();
}

#[tokio::test]
async fn inbound_waits_for_the_gateway_to_store_the_message() {
    let w = world(1).await;
    let dev = w.devices[0];
    let sim = Simulator::new(w.db.clone(), fast());
    let direct = SimInbound {
        from: "+6281234567890".into(),
        text: Some("halo".into()),
        push_name: Some("Budi".into()),
        ..SimInbound::default()
    };
    assert!(matches!(sim.inbound(dev, direct.clone()).await, Err(SimError::NotConnected)));
    let (_session, mut rx) = connected(&w, &sim, 0).await;

    let task = tokio::spawn({
        let sim = sim.clone();
        async move { sim.inbound(dev, direct).await }
    });
    let DriverEvent::Messages { messages, ack } = next(&mut rx).await else {
        panic!("expected messages");
    };
    let m = &messages[0];
    assert_eq!(m.chat, "6281234567890@s.whatsapp.net");
    assert_eq!((m.sender.as_str(), m.is_group), ("6281234567890", false));
    assert_eq!(m.text.as_deref(), Some("halo"));
    assert!(m.wa_id.starts_with("3EB0") && !m.from_me);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!task.is_finished(), "inbound returns only after the ack");
    ack.expect("an ack").send(true);
    assert_eq!(task.await.unwrap().unwrap(), m.wa_id);

    let in_group = SimInbound {
        from: "6281234567890".into(),
        text: Some("rapat".into()),
        id: Some("ABC123".into()),
        group: Some("120363012345678901@g.us".into()),
        ..SimInbound::default()
    };
    let task = tokio::spawn({
        let sim = sim.clone();
        async move { sim.inbound(dev, in_group).await }
    });
    let DriverEvent::Messages { messages, ack } = next(&mut rx).await else {
        panic!("expected messages");
    };
    assert_eq!(messages[0].chat, "120363012345678901@g.us");
    assert!(messages[0].is_group && messages[0].wa_id == "ABC123");
    ack.expect("an ack").send(false);
    assert!(matches!(task.await.unwrap(), Err(SimError::NotStored)));

    let bad = SimInbound { from: "budi".into(), ..SimInbound::default() };
    assert!(matches!(sim.inbound(dev, bad).await, Err(SimError::Invalid(_))));
}
