//! Conformance of the `whatsapp-web` session store: every story runs the same operations on
//! whatsapp-rust's own `InMemoryBackend` (the oracle) and on our `SqlxStore`, and compares
//! every answer. Each story runs on SQLite always and on PostgreSQL when
//! `GATEWAY_TEST_POSTGRES_URL` is set, each time in a fresh database.
//!
//! Where the two stores differ on purpose, the story says so and checks our behaviour alone.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use wa_gateway::devices::whatsapp_web::store::{self, SqlxStore};
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::store::device::DEVICE_PROPS;
use whatsapp_rust::wacore::store::traits::*;
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

#[path = "support/postgres.rs"]
mod postgres;

#[macro_use]
#[path = "wa_store/harness.rs"]
mod harness;
#[path = "wa_store/protocol.rs"]
mod protocol;
#[path = "wa_store/signal.rs"]
mod signal;

use harness::{device_list, lid, mac, Pair, TestDb};
use protocol::*;
use signal::*;

async fn device_state_is_created_once_and_saved(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    same!(h, exists());
    assert!(h.store.load().await.unwrap().is_none());
    assert!(!store::has_device(&db.db, ids[0]).await.unwrap());

    // `create` persists fresh keys (both stores make their own random ones).
    h.oracle.create().await.unwrap();
    let id = h.store.create().await.unwrap();
    assert_eq!(i64::from(id), ids[0], "create answers the gateway's device id");
    same!(h, exists());
    let created = h.store.load().await.unwrap().expect("created device loads");
    let oracle_created = h.oracle.load().await.unwrap().unwrap();
    assert!(created.pn.is_none());
    assert!(!store::has_device(&db.db, ids[0]).await.unwrap(), "unpaired keys do not count");
    // Fields that are not serialized come back as on a fresh device.
    assert!(created.device_props == oracle_created.device_props);
    assert!(*created.device_props == *DEVICE_PROPS);
    // A second create keeps the keys of the first.
    h.store.create().await.unwrap();
    let again = h.store.load().await.unwrap().unwrap();
    assert_eq!(json!(again), json!(created));

    // Save and load round-trip every serialized field.
    let mut device = Device::new();
    device.pn = Some("6281200000000:12@s.whatsapp.net".parse().unwrap());
    device.lid = Some("100000012345678:12@lid".parse().unwrap());
    device.push_name = "Toko Budi".into();
    device.account = Some(Arc::new(whatsapp_rust::waproto::whatsapp::ADVSignedDeviceIdentity {
        details: Some(b"details".to_vec()),
        account_signature_key: Some(vec![1; 32]),
        account_signature: Some(vec![2; 64]),
        device_signature: Some(vec![3; 64]),
    }));
    device.next_pre_key_id = 813;
    device.server_has_prekeys = true;
    device.props_hash = Some("hash".into());
    device.edge_routing_info = Some(vec![0, 1, 255]);
    device.login_counter = 7;
    same!(h, save(&device));
    same!(h, load());
    same!(h, exists());
    assert!(store::has_device(&db.db, ids[0]).await.unwrap());
    assert!(SqlxStore::has_device(&db.db, ids[0]).await.unwrap());
    let loaded = h.store.load().await.unwrap().unwrap();
    assert_eq!(loaded.account.as_deref(), device.account.as_deref());

    device.push_name = "Renamed".into();
    device.pn = None;
    same!(h, save(&device));
    same!(h, load());
    assert!(!store::has_device(&db.db, ids[0]).await.unwrap());
    // Its report: nothing held in process memory per session.
    assert_eq!(h.store.resource_report().await.memory_bytes, Some(0));
}

/// Writes to every table of a device through both stores, with values that depend on `tag`.
async fn populate(h: &Pair, tag: u8) {
    let t = |s: &str| format!("{s}-{tag}");
    let mut device = Device::new();
    device.pn = Some("6281200000000:3@s.whatsapp.net".parse().unwrap());
    device.push_name = t("name");
    same!(h, save(&device));
    same!(h, put_identity("peer@s.whatsapp.net", [tag; 32]));
    same!(h, put_session("peer@s.whatsapp.net", t("session").as_bytes()));
    let prekeys: Vec<(u32, Bytes)> = (1..=20u32).map(|i| (i, Bytes::from(vec![tag; i as usize]))).collect();
    same!(h, store_prekeys_batch(&prekeys, true));
    same!(h, store_signed_prekey(1, &[tag; 8]));
    same!(h, put_sender_key("g@g.us::peer", t("sender-key").as_bytes()));
    same!(
        h,
        set_sync_key(
            b"key",
            AppStateSyncKey { key_data: vec![tag; 32], fingerprint: vec![tag], timestamp: i64::from(tag) }
        )
    );
    let state = HashState { version: u64::from(tag), ..HashState::default() };
    same!(h, set_version("regular", state.clone()));
    same!(h, put_mutation_macs("regular", 1, &[mac(1, tag)]));
    same!(h, save_base_key("peer@s.whatsapp.net", "M", &[tag]));
    same!(h, update_device_list(device_list("peer", &[0, u32::from(tag)], 1)));
    same!(h, put_group_metadata("g@g.us", &[tag; 4]));
    same!(h, put_lid_mapping(&lid("100", &t("62"), 1)));
    same!(h, set_sender_key_status("g@g.us", &[("peer:1@lid", tag.is_multiple_of(2))]));
    same!(h, store_received_tc_token("peer@lid", &[tag], 1000));
    same!(h, store_sent_message("g@g.us", "M", &[tag]));
    same!(h, store_pending_inbound("g@g.us", "peer@lid", "M", &[tag]));
    same!(h, put_msg_secret("g@g.us", "peer@lid", "M", &[tag; 32]));
}

/// Reads every table of a device through both stores (without consuming anything).
async fn probe(h: &Pair) {
    same!(h, exists());
    same!(h, load());
    same!(h, load_identity("peer@s.whatsapp.net"));
    same!(h, get_session("peer@s.whatsapp.net"));
    same!(h, has_signal_state_for_user("peer"));
    same!(h, load_prekeys_batch(&(0..=25).collect::<Vec<u32>>()));
    same!(h, get_max_prekey_id());
    same!(h, load_all_signed_prekeys());
    same!(h, get_sender_key("g@g.us::peer"));
    same!(h, get_sync_key(b"key"));
    same!(h, get_latest_sync_key_id());
    same!(h, get_version("regular"));
    same!(h, get_mutation_mac("regular", &[1; 32]));
    same!(h, has_same_base_key("peer@s.whatsapp.net", "M", &[1]));
    same!(h, has_same_base_key("peer@s.whatsapp.net", "M", &[2]));
    same!(h, get_devices("peer"));
    same!(h, get_group_metadata("g@g.us"));
    same!(h, get_all_lid_mappings());
    same!(h, get_lid_mapping("100"));
    same!(h, get_sender_key_devices("g@g.us"));
    same!(h, get_tc_token("peer@lid"));
    same!(h, get_all_tc_token_jids());
    same!(h, get_pending_inbound("g@g.us", "peer@lid", "M"));
    same!(h, get_msg_secret_with_ts("g@g.us", "peer@lid", "M"));
}

async fn two_devices_never_see_each_others_rows(db: &TestDb) {
    let (_, ids) = db.devices(2).await;
    let (a, b) = (Pair::new(db, ids[0]), Pair::new(db, ids[1]));
    populate(&a, 1).await;
    probe(&b).await;
    populate(&b, 2).await;
    probe(&a).await;
    probe(&b).await;
    // Sweeps of one device leave the other's rows alone...
    same!(b, clear_all_sender_key_devices());
    same!(b, delete_expired_tc_tokens(i64::MAX, i64::MAX));
    same!(b, delete_expired_sent_messages(i64::MAX));
    same!(b, delete_expired_pending_inbound(i64::MAX));
    same!(b, delete_expired_msg_secrets(i64::MAX));
    same!(b, clear_mutation_macs("regular"));
    probe(&a).await;
    probe(&b).await;
    // ...and so do its single deletes and takes (with B's rows back in place).
    populate(&b, 2).await;
    let peer = "peer@s.whatsapp.net";
    same!(a, delete_identity(peer));
    same!(a, delete_session(peer));
    same!(a, remove_prekey(1));
    same!(a, remove_signed_prekey(1));
    same!(a, delete_sender_key("g@g.us::peer"));
    same!(a, delete_mutation_macs("regular", &[vec![1; 32]]));
    same!(a, delete_base_key(peer, "M"));
    same!(a, delete_devices("peer"));
    same!(a, delete_group_metadata("g@g.us"));
    same!(a, delete_sender_key_device_rows(&["peer:1@lid"]));
    same!(a, clear_sender_key_devices("g@g.us"));
    same!(a, delete_tc_token("peer@lid"));
    same!(a, take_sent_message("g@g.us", "M"));
    same!(a, delete_pending_inbound("g@g.us", "peer@lid", "M"));
    probe(&a).await;
    probe(&b).await;
}

async fn wipe_removes_one_device_and_leaves_the_other(db: &TestDb) {
    let (tenant, ids) = db.devices(2).await;
    let (a, b) = (Pair::new(db, ids[0]), Pair::new(db, ids[1]));
    populate(&a, 1).await;
    populate(&b, 2).await;
    assert!(store::has_device(&db.db, ids[0]).await.unwrap());
    let before = db.raw_rows(ids[0]).await;
    assert!(before.values().all(|n| *n > 0), "the population touches every table: {before:?}");
    assert_eq!(db.db.wa_row_count(ids[0]).await.unwrap(), before.values().sum::<i64>());

    store::wipe(&db.db, ids[0]).await.unwrap();
    assert!(db.raw_rows(ids[0]).await.values().all(|n| *n == 0));
    assert_eq!(db.db.wa_row_count(ids[0]).await.unwrap(), 0);
    assert!(!store::has_device(&db.db, ids[0]).await.unwrap());
    // The wiped device now answers like a new in-memory store; the other is untouched.
    let fresh = Pair { oracle: InMemoryBackend::new(), store: a.store.clone(), backend: db.name };
    probe(&fresh).await;
    probe(&b).await;
    assert_eq!(db.raw_rows(ids[1]).await, before, "same shape of rows as device A had");
    // Wiping again, or wiping through the associated function, is harmless.
    SqlxStore::wipe(&db.db, ids[0]).await.unwrap();

    // Deleting the device itself takes its session rows along.
    assert!(db.db.delete_device(tenant, ids[1]).await.unwrap());
    assert!(db.raw_rows(ids[1]).await.values().all(|n| *n == 0));
}

// ----- runners -----

/// Generates `sqlite::<story>` and `postgres::<story>` tests (the
/// PostgreSQL ones ignored when the tests were built without a server to run on).
macro_rules! conformance {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $story() {
                    let db = super::TestDb::sqlite().await;
                    super::$story(&db).await;
                    db.db.close().await;
                }
            )*
        }
        mod postgres_runs {
            $(
                #[tokio::test]
                #[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
                async fn $story() {
                    let db = super::TestDb::postgres().await.unwrap_or_else(|| {
                        panic!("{} is not set: this test needs PostgreSQL", super::postgres::ENV)
                    });
                    super::$story(&db).await;
                    db.db.close().await;
                }
            )*
        }
    };
}

conformance!(
    identities_sessions_and_sender_keys_match,
    prekeys_match_including_the_pairing_upload,
    app_state_sync_matches,
    protocol_bookkeeping_matches,
    a_number_keeps_its_latest_lid_when_an_older_lid_moves_away,
    a_guarded_store_writes_nothing_once_its_process_may_not,
    a_leased_store_writes_nothing_once_another_process_took_the_device,
    tc_tokens_follow_the_upsert_rules,
    concurrent_tc_token_writers_converge,
    sent_messages_are_taken_once,
    pending_inbound_is_stored_loaded_and_deleted,
    msg_secrets_merge_like_the_reference,
    device_state_is_created_once_and_saved,
    two_devices_never_see_each_others_rows,
    wipe_removes_one_device_and_leaves_the_other,
);
