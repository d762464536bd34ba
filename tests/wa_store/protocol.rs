//! Stories of the protocol tables: sender-key devices, LID mappings, base keys, device
//! registry, group metadata, tc tokens, sent messages, pending inbound and message secrets.

use wa_gateway::devices::whatsapp_web::store::SqlxStore;
use whatsapp_rust::wacore::store::traits::*;
use whatsapp_rust::wacore::time::now_secs;

use crate::harness::{device_list, lid, secret, Pair, TestDb};

pub async fn protocol_bookkeeping_matches(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let (ga, gb) = ("120363000000000001@g.us", "120363000000000002@g.us");
    let (d1, d2, d3) = ("111:1@lid", "222:3@lid", "333@s.whatsapp.net");

    same!(h, get_sender_key_devices(ga));
    same!(h, set_sender_key_status(ga, &[(d1, true), (d2, false), (d1, false)]));
    same!(h, set_sender_key_status(gb, &[(d1, true), (d3, true)]));
    same!(h, set_sender_key_status(gb, &[]));
    same!(h, get_sender_key_devices(ga));
    same!(h, set_sender_key_status(ga, &[(d2, true)]));
    same!(h, get_sender_key_devices(ga));
    same!(h, delete_sender_key_device_rows(&[d1]));
    same!(h, delete_sender_key_device_rows(&[]));
    same!(h, get_sender_key_devices(ga));
    same!(h, get_sender_key_devices(gb));
    same!(h, clear_sender_key_devices(ga));
    same!(h, get_sender_key_devices(ga));
    same!(h, get_sender_key_devices(gb));
    same!(h, clear_all_sender_key_devices());
    same!(h, get_sender_key_devices(gb));

    same!(h, get_lid_mapping("100"));
    same!(h, get_pn_mapping("628100"));
    same!(h, put_lid_mapping(&lid("100", "628100", 1000)));
    same!(h, get_lid_mapping("100"));
    same!(h, get_pn_mapping("628100"));
    // The LID's number changes: the old number no longer resolves.
    same!(h, put_lid_mapping(&lid("100", "628200", 2000)));
    same!(h, get_pn_mapping("628100"));
    same!(h, get_pn_mapping("628200"));
    same!(h, get_lid_mapping("100"));
    // The old number goes to another LID; a number resolves to its latest LID.
    same!(h, put_lid_mapping(&lid("300", "628100", 3000)));
    same!(h, get_pn_mapping("628100"));
    same!(h, put_lid_mapping(&lid("400", "628100", 4000)));
    same!(h, get_pn_mapping("628100"));
    same!(
        h,
        put_lid_mappings(&[
            lid("500", "628500", 5000),
            lid("600", "628600", 5000),
            lid("500", "628555", 5001)
        ])
    );
    same!(h, put_lid_mappings(&[]));
    same!(h, get_pn_mapping("628500"));
    same!(h, get_pn_mapping("628555"));
    same!(h, get_lid_mapping("500"));
    same!(h, get_all_lid_mappings());

    same!(h, has_same_base_key("111:1@lid", "M1", b"base"));
    same!(h, save_base_key("111:1@lid", "M1", b"base"));
    same!(h, has_same_base_key("111:1@lid", "M1", b"base"));
    same!(h, has_same_base_key("111:1@lid", "M1", b"other"));
    same!(h, has_same_base_key("111:1@lid", "M2", b"base"));
    same!(h, save_base_key("111:1@lid", "M1", b"other"));
    same!(h, has_same_base_key("111:1@lid", "M1", b"other"));
    same!(h, delete_base_key("111:1@lid", "M1"));
    same!(h, has_same_base_key("111:1@lid", "M1", b"other"));

    same!(h, get_devices("628100"));
    same!(h, update_device_list(device_list("628100", &[0, 1], 10)));
    same!(h, get_devices("628100"));
    same!(
        h,
        update_device_lists(vec![
            device_list("628100", &[0, 2, 99], 20),
            device_list("100", &[0], 21),
            device_list("628200", &[], 22),
            device_list("100", &[0, 5], 23),
        ])
    );
    same!(h, update_device_lists(vec![]));
    same!(h, get_devices("628100"));
    same!(h, get_devices("100"));
    same!(h, get_devices("628200"));
    same!(h, delete_devices("628100"));
    same!(h, get_devices("628100"));

    same!(h, get_group_metadata(ga));
    same!(h, put_group_metadata(ga, b"blob-v1"));
    same!(h, put_group_metadata(ga, b"blob-v2"));
    same!(h, get_group_metadata(ga));
    same!(h, delete_group_metadata(ga));
    same!(h, get_group_metadata(ga));
}

/// A LID that moves to another number must not take away the number's newer owner: the
/// in-memory store drops the reverse entry of the old number even when it points at another
/// LID by then; ours still resolves the number to the LID mapped to it last.
pub async fn a_number_keeps_its_latest_lid_when_an_older_lid_moves_away(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let s = SqlxStore::new(db.db.clone(), ids[0]);
    s.put_lid_mapping(&lid("100", "628100", 1)).await.unwrap();
    s.put_lid_mapping(&lid("200", "628100", 2)).await.unwrap();
    s.put_lid_mapping(&lid("100", "628999", 3)).await.unwrap();
    let found = s.get_pn_mapping("628100").await.unwrap().expect("still mapped");
    assert_eq!(found.lid, "200");
    s.put_lid_mapping(&lid("200", "628888", 4)).await.unwrap();
    assert!(s.get_pn_mapping("628100").await.unwrap().is_none());
}

/// A store whose process lost the right to write (past its lease deadline) refuses every
/// write and leaves the rows the new holder wrote as they are; reads still work.
pub async fn a_guarded_store_writes_nothing_once_its_process_may_not(db: &TestDb) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use wa_gateway::devices::driver::WriteGuard;

    let (_, ids) = db.devices(1).await;
    let allowed = Arc::new(AtomicBool::new(true));
    let flag = allowed.clone();
    let stale =
        SqlxStore::new(db.db.clone(), ids[0]).guarded(WriteGuard::new(move || flag.load(Ordering::SeqCst)));
    let holder = SqlxStore::new(db.db.clone(), ids[0]);
    stale.put_identity("628111.0", [1; 32]).await.unwrap();
    stale.put_lid_mapping(&lid("100", "628100", 1)).await.unwrap();

    allowed.store(false, Ordering::SeqCst);
    holder.put_identity("628111.0", [2; 32]).await.unwrap();
    let refused = stale.put_identity("628111.0", [3; 32]).await.unwrap_err();
    let why = std::error::Error::source(&refused).map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("may no longer write"), "{refused}: {why}");
    assert!(stale.put_session("628111.0", b"late").await.is_err());
    assert!(stale.put_lid_mapping(&lid("100", "628999", 2)).await.is_err());
    assert!(stale.delete_identity("628111.0").await.is_err());

    assert_eq!(stale.load_identity("628111.0").await.unwrap(), Some([2; 32]), "the holder's key stays");
    assert!(holder.get_session("628111.0").await.unwrap().is_none());
    assert_eq!(holder.get_lid_mapping("100").await.unwrap().expect("mapped").phone_number, "628100");
}

/// A store whose process does not know yet that it lost the device (its own clock still says
/// it is within its deadline) is stopped by the database: every write checks the lease in its
/// transaction, so once another process took the device over, the stale one writes nothing,
/// each refusal is reported, and the new holder's writes go ahead.
pub async fn a_leased_store_writes_nothing_once_another_process_took_the_device(db: &TestDb) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use wa_gateway::cluster::Fence;
    use wa_gateway::devices::driver::WriteGuard;

    let (_, ids) = db.devices(1).await;
    let device = ids[0];
    let leased = |node: &str, epoch: i64, refusals: &Arc<AtomicU64>| {
        let refusals = refusals.clone();
        let fence = Fence { node: node.into(), epoch };
        let guard = WriteGuard::leased(
            fence,
            || true,
            move || {
                refusals.fetch_add(1, Ordering::SeqCst);
            },
        );
        SqlxStore::new(db.db.clone(), device).guarded(guard)
    };
    db.db.cluster_register("node-a", "a", "test", 60_000).await.unwrap();
    let first = db.db.cluster_acquire(device, "node-a").await.unwrap().expect("a free lease");
    let stale_refusals = Arc::new(AtomicU64::new(0));
    let stale = leased("node-a", first, &stale_refusals);
    stale.put_identity("628111.0", [1; 32]).await.unwrap();
    stale.put_lid_mapping(&lid("100", "628100", 1)).await.unwrap();

    // Process A is declared dead (its row expires) and B takes the device under a new epoch.
    assert!(db.db.cluster_renew("node-a", -1_000).await.unwrap());
    db.db.cluster_register("node-b", "b", "test", 60_000).await.unwrap();
    let second = db.db.cluster_acquire(device, "node-b").await.unwrap().expect("a dead holder's lease");
    assert!(second > first, "a takeover grows the epoch");
    let holder_refusals = Arc::new(AtomicU64::new(0));
    let holder = leased("node-b", second, &holder_refusals);
    holder.put_identity("628111.0", [2; 32]).await.unwrap();

    let refused = stale.put_identity("628111.0", [3; 32]).await.unwrap_err();
    let why = std::error::Error::source(&refused).map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("no longer held"), "{refused}: {why}");
    assert!(stale.put_session("628111.0", b"late").await.is_err());
    assert!(stale.put_lid_mapping(&lid("100", "628999", 2)).await.is_err());
    assert!(stale.delete_identity("628111.0").await.is_err());
    assert_eq!(stale_refusals.load(Ordering::SeqCst), 4, "every refused write is reported");

    assert_eq!(holder.load_identity("628111.0").await.unwrap(), Some([2; 32]), "the holder's key stays");
    assert!(holder.get_session("628111.0").await.unwrap().is_none());
    assert_eq!(holder.get_lid_mapping("100").await.unwrap().expect("mapped").phone_number, "628100");
    holder.put_session("628111.0", b"fresh").await.unwrap();
    assert_eq!(holder_refusals.load(Ordering::SeqCst), 0);
}

pub async fn tc_tokens_follow_the_upsert_rules(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let entry = |token: &[u8], ts: i64, sender: Option<i64>| TcTokenEntry {
        token: token.to_vec(),
        token_timestamp: ts,
        sender_timestamp: sender,
    };
    same!(h, get_tc_token("u1"));
    // Issuing creates a byte-less placeholder; a later real token keeps the sender time.
    same!(h, touch_tc_token_sender_timestamp("u1", 1000));
    same!(h, get_tc_token("u1"));
    same!(h, put_tc_token("u1", &entry(&[7, 8, 9], 2000, None)));
    same!(h, touch_tc_token_sender_timestamp("u1", 3000));
    same!(h, get_tc_token("u1"));
    // The sender time never goes back.
    same!(h, touch_tc_token_sender_timestamp("u1", 2500));
    same!(h, get_tc_token("u1"));
    // A received token keeps the sender time; without a row, there is none.
    same!(h, touch_tc_token_sender_timestamp("u2", 5000));
    same!(h, store_received_tc_token("u2", &[1, 2, 3], 4000));
    same!(h, get_tc_token("u2"));
    same!(h, store_received_tc_token("u3", &[9], 4000));
    same!(h, get_tc_token("u3"));
    // Newer wins, equal wins, older loses.
    same!(h, store_received_tc_token("c", &[1, 1, 1], 5000));
    same!(h, store_received_tc_token("c", &[2, 2, 2], 3000));
    same!(h, get_tc_token("c"));
    same!(h, store_received_tc_token("c", &[3, 3, 3], 5000));
    same!(h, get_tc_token("c"));
    same!(h, store_received_tc_token("c", &[4, 4, 4], 7000));
    same!(h, get_tc_token("c"));
    // A placeholder never blocks the first real token, even an older one.
    same!(h, touch_tc_token_sender_timestamp("p", 9000));
    same!(h, store_received_tc_token("p", &[4, 4, 4], 6000));
    same!(h, get_tc_token("p"));
    // put replaces the whole entry, including the sender time.
    same!(h, put_tc_token("p", &entry(&[5], 1, None)));
    same!(h, get_tc_token("p"));
    same!(h, get_all_tc_token_jids());
    same!(h, delete_tc_token("u3"));
    same!(h, delete_tc_token("never"));
    same!(h, get_all_tc_token_jids());

    // Pruning keeps a row while its token or its sender time is live.
    same!(h, touch_tc_token_sender_timestamp("recent_ph", 2500));
    same!(h, touch_tc_token_sender_timestamp("stale_ph", 100));
    same!(h, put_tc_token("expired_tok_live_sender", &entry(&[1], 1, Some(2500))));
    same!(h, put_tc_token("orphan_expired", &entry(&[2], 1, None)));
    same!(h, put_tc_token("fresh_tok", &entry(&[3], 5000, None)));
    same!(h, put_tc_token("empty_fresh", &entry(&[], 5000, None)));
    same!(h, delete_expired_tc_tokens(1000, 2000));
    same!(h, get_all_tc_token_jids());
    same!(h, delete_expired_tc_tokens(1000, 2000));
}

/// Concurrent issuance and notification writers on one contact converge: the newest received
/// token and the latest sender time, whatever the interleaving.
pub async fn concurrent_tc_token_writers_converge(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            // Timestamps interleave out of order.
            let ts = 1000 + (i * 7919) % 40;
            if i % 2 == 0 {
                store.touch_tc_token_sender_timestamp("c", ts).await
            } else {
                store.store_received_tc_token("c", &ts.to_be_bytes(), ts).await
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let got = h.store.get_tc_token("c").await.unwrap().unwrap();
    let received: Vec<i64> = (0..40i64).filter(|i| i % 2 == 1).map(|i| 1000 + (i * 7919) % 40).collect();
    let touched: Vec<i64> = (0..40i64).filter(|i| i % 2 == 0).map(|i| 1000 + (i * 7919) % 40).collect();
    let newest = *received.iter().max().unwrap();
    assert_eq!(got.token, newest.to_be_bytes().to_vec());
    assert_eq!(got.token_timestamp, newest);
    assert_eq!(got.sender_timestamp, touched.iter().max().copied());
}

pub async fn sent_messages_are_taken_once(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    same!(h, take_sent_message("chat@g.us", "M1"));
    same!(h, store_sent_message("chat@g.us", "M1", b"payload-1"));
    same!(h, store_sent_message("chat@g.us", "M1", b"payload-1b"));
    same!(h, store_sent_message("other@g.us", "M1", b"payload-other"));
    same!(h, store_sent_message("chat@g.us", "M2", b"payload-2"));
    same!(h, take_sent_message("chat@g.us", "M1"));
    same!(h, take_sent_message("chat@g.us", "M1"));
    same!(h, take_sent_message("other@g.us", "M1"));
    same!(h, delete_expired_sent_messages(now_secs() - 3600));
    same!(h, store_sent_message("chat@g.us", "M3", b"payload-3"));
    same!(h, delete_expired_sent_messages(now_secs() + 3600));
    same!(h, take_sent_message("chat@g.us", "M2"));
    same!(h, take_sent_message("chat@g.us", "M3"));

    // Two retry receipts racing for one payload: exactly one gets it.
    h.store.store_sent_message("race@g.us", "R", b"once").await.unwrap();
    let (a, b) = tokio::join!(
        h.store.take_sent_message("race@g.us", "R"),
        h.store.take_sent_message("race@g.us", "R")
    );
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![b"once".to_vec()]);
}

pub async fn pending_inbound_is_stored_loaded_and_deleted(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let (chat, alice, bob) = ("120363000000000001@g.us", "111@lid", "222@lid");
    same!(h, get_pending_inbound(chat, alice, "M1"));
    same!(h, store_pending_inbound(chat, alice, "M1", b"first"));
    same!(h, store_pending_inbound(chat, alice, "M1", b"again"));
    same!(h, get_pending_inbound(chat, alice, "M1"));
    // Stanza ids are unique only per (chat, sender).
    same!(h, get_pending_inbound(chat, bob, "M1"));
    let rows = [
        PendingInboundRow { chat, sender: bob, id: "M1", message: b"bob-1" },
        PendingInboundRow { chat: alice, sender: alice, id: "M1", message: b"direct" },
        PendingInboundRow { chat, sender: bob, id: "M2", message: b"bob-2" },
        PendingInboundRow { chat, sender: bob, id: "M1", message: b"bob-1b" },
    ];
    same!(h, store_pending_inbound_batch(&rows));
    same!(h, store_pending_inbound_batch(&[]));
    for (c, s, id) in [(chat, bob, "M1"), (alice, alice, "M1"), (chat, bob, "M2"), (chat, alice, "M1")] {
        same!(h, get_pending_inbound(c, s, id));
    }
    same!(h, delete_pending_inbound(chat, alice, "M1"));
    same!(h, delete_pending_inbound(chat, alice, "M1"));
    same!(h, get_pending_inbound(chat, alice, "M1"));
    let keys = [
        PendingInboundKey { chat, sender: bob, id: "nope" },
        PendingInboundKey { chat, sender: bob, id: "M1" },
        PendingInboundKey { chat: alice, sender: alice, id: "M1" },
    ];
    same!(h, delete_pending_inbound_batch(&keys));
    same!(h, delete_pending_inbound_batch(&[]));
    for (c, s, id) in [(chat, bob, "M1"), (alice, alice, "M1"), (chat, bob, "M2")] {
        same!(h, get_pending_inbound(c, s, id));
    }
    same!(h, delete_expired_pending_inbound(now_secs() - 3600));
    same!(h, delete_expired_pending_inbound(now_secs() + 3600));
    same!(h, get_pending_inbound(chat, bob, "M2"));
}

pub async fn msg_secrets_merge_like_the_reference(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    same!(h, get_msg_secret("chat", "sender", "M1"));
    same!(h, put_msg_secret("chat", "sender", "M1", &[1; 32]));
    same!(h, get_msg_secret("chat", "sender", "M1"));
    same!(h, get_msg_secret_with_ts("chat", "sender", "M1"));
    // Keyed by all three columns.
    same!(h, put_msg_secret("chat", "other", "M1", &[2; 32]));
    same!(h, put_msg_secret("chatB", "sender", "M1", &[3; 32]));
    same!(h, get_msg_secret("chat", "sender", "M1"));
    same!(h, get_msg_secret("chatB", "sender", "M1"));

    same!(
        h,
        put_msg_secrets(vec![
            secret("c", "s", "A", 1, 100, 50),
            secret("c", "s", "B", 2, 100, 0),
            secret("c", "s", "C", 3, 0, 70),
            // A later copy of A in the same batch: a never-expiring deadline, unknown time.
            secret("c", "s", "A", 4, 0, 0),
        ])
    );
    same!(h, get_msg_secret_with_ts("c", "s", "A"));
    same!(
        h,
        put_msg_secrets(vec![
            secret("c", "s", "E", 9, 200, 90),
            secret("c", "s", "B", 5, 200, 10),
            secret("c", "s", "C", 6, 300, 20),
            secret("c", "s", "D", 7, 150, 0),
            // Within one batch the merge applies too: E keeps 200 and 90, takes the new secret.
            secret("c", "s", "E", 10, 100, 0),
        ])
    );
    same!(h, put_msg_secrets(vec![secret("c", "s", "B", 8, 120, 5)]));
    same!(h, put_msg_secrets(vec![]));
    for id in ["A", "B", "C", "D", "E"] {
        same!(h, get_msg_secret_with_ts("c", "s", id));
    }
    // B and E expire at 200, D at 150; A, C and M1 never.
    same!(h, delete_expired_msg_secrets(149));
    same!(h, delete_expired_msg_secrets(150));
    same!(h, get_msg_secret("c", "s", "D"));
    same!(h, delete_expired_msg_secrets(10_000));
    for id in ["A", "B", "C", "E"] {
        same!(h, get_msg_secret("c", "s", id));
    }
    same!(h, get_msg_secret("chat", "sender", "M1"));
}
