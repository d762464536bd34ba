//! Stories of the Signal and app-state sync tables.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::store::traits::*;

use crate::harness::{arc, mac, Pair, TestDb};

pub async fn identities_sessions_and_sender_keys_match(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let alice = "5511999990000@s.whatsapp.net";
    let alice_phone = "5511999990000:5@s.whatsapp.net";

    same!(h, load_identity(alice));
    same!(h, put_identity(alice, [1; 32]));
    same!(h, put_identity(alice, [2; 32]));
    same!(h, load_identity(alice));
    same!(
        h,
        put_identities_batch(&[(arc("a@lid"), [3; 32]), (arc("b@lid"), [4; 32]), (arc("a@lid"), [5; 32])])
    );
    same!(h, load_identity("a@lid"));
    same!(h, load_identity("b@lid"));
    same!(h, delete_identity("b@lid"));
    same!(h, delete_identity("never-stored@lid"));
    same!(h, load_identity("b@lid"));

    same!(h, get_session(alice));
    same!(h, has_session(alice));
    same!(h, put_session(alice, b"\x00session\xff"));
    same!(h, get_session(alice));
    same!(h, has_session(alice));
    same!(h, put_session(alice, b"ratcheted"));
    same!(h, get_session(alice));
    // Empty records are records too.
    same!(h, put_session("empty@s.whatsapp.net", b""));
    same!(h, get_session("empty@s.whatsapp.net"));
    same!(h, has_session("empty@s.whatsapp.net"));

    // A flush of 1200 sessions spans several statements; one address twice keeps the last.
    let mut batch: Vec<(Arc<str>, Bytes)> = (0..1200)
        .map(|i| (arc(&format!("62812{i:06}:1@s.whatsapp.net")), Bytes::from(format!("record-{i}"))))
        .collect();
    batch.push((arc("62812000007:1@s.whatsapp.net"), Bytes::from_static(b"second write")));
    same!(h, put_sessions_batch(&batch));
    for i in [0, 7, 499, 500, 501, 1199] {
        same!(h, get_session(&format!("62812{i:06}:1@s.whatsapp.net")));
    }
    same!(h, put_sessions_batch(&[]));
    same!(h, delete_session(alice));
    same!(h, has_session(alice));
    same!(h, get_session(alice));

    // Signal state per user: device 0 is `user@server`, others `user:dev@server`; a longer
    // number that starts with the user's is someone else.
    same!(h, has_signal_state_for_user("5511999990000"));
    same!(h, put_identity(alice_phone, [7; 32]));
    same!(h, has_signal_state_for_user("5511999990000"));
    same!(h, has_signal_state_for_user("551199999000"));
    same!(h, put_session("55119999900001@s.whatsapp.net", b"x"));
    same!(h, has_signal_state_for_user("5511999990000"));
    same!(h, has_signal_state_for_user("55119999900001"));
    same!(h, has_signal_state_for_user("62812000001"));
    same!(h, has_signal_state_for_user("nobody"));

    let group_sender = "120363000000000001@g.us::5511999990000:5@s.whatsapp.net";
    same!(h, get_sender_key(group_sender));
    same!(h, put_sender_key(group_sender, b"sender-key-1"));
    same!(h, put_sender_key(group_sender, b"sender-key-2"));
    same!(h, get_sender_key(group_sender));
    same!(
        h,
        put_sender_keys_batch(&[
            (arc("g1::a"), Bytes::from_static(b"a")),
            (arc("g1::b"), Bytes::from_static(b"b"))
        ])
    );
    same!(h, get_sender_key("g1::a"));
    same!(h, delete_sender_key("g1::a"));
    same!(h, get_sender_key("g1::a"));
    same!(h, get_sender_key("g1::b"));
}

pub async fn prekeys_match_including_the_pairing_upload(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    same!(h, get_max_prekey_id());
    same!(h, load_prekey(1));

    // The upload at pairing: 812 one-time pre-keys in one batch.
    let keys: Vec<(u32, Bytes)> =
        (1..=812u32).map(|id| (id, Bytes::from(id.to_be_bytes().repeat(10)))).collect();
    h.oracle.store_prekeys_batch(&keys, false).await.unwrap();
    let started = Instant::now();
    h.store.store_prekeys_batch(&keys, false).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("{}: store_prekeys_batch of 812 pre-keys took {elapsed:?}", db.name);
    assert!(elapsed < Duration::from_secs(10), "812 pre-keys took {elapsed:?}");

    same!(h, get_max_prekey_id());
    for id in [1, 2, 500, 501, 812, 813, 0] {
        same!(h, load_prekey(id));
    }
    // Batch loads answer in the order asked, skip missing ids and repeat repeated ones.
    same!(h, load_prekeys_batch(&[812, 3, 9999, 1, 3]));
    let all: Vec<u32> = (1..=900).rev().collect();
    same!(h, load_prekeys_batch(&all));
    same!(h, load_prekeys_batch(&[]));

    same!(h, remove_prekey(2));
    same!(h, remove_prekey(2));
    // Marking uploaded never resurrects a consumed key.
    same!(h, mark_prekeys_uploaded(&[1, 2, 3]));
    same!(h, mark_prekeys_uploaded(&[]));
    same!(h, load_prekey(2));
    same!(h, load_prekey(3));
    same!(h, store_prekey(5000, b"late key", true));
    same!(h, get_max_prekey_id());
    same!(h, store_prekey(5000, b"replaced", false));
    same!(h, load_prekey(5000));
    same!(h, remove_prekey(5000));
    same!(h, get_max_prekey_id());
    // u32 ids above i32::MAX survive the BIGINT column.
    same!(h, store_prekey(u32::MAX, b"max", false));
    same!(h, load_prekey(u32::MAX));
    same!(h, get_max_prekey_id());

    same!(h, load_all_signed_prekeys());
    same!(h, load_signed_prekey(1));
    same!(h, store_signed_prekey(1, b"signed-1"));
    same!(h, store_signed_prekey(2, b"signed-2"));
    same!(h, store_signed_prekey(3, b"signed-3"));
    same!(h, store_signed_prekey(2, b"signed-2b"));
    same!(h, load_signed_prekey(2));
    same!(h, load_all_signed_prekeys());
    same!(h, remove_signed_prekey(1));
    same!(h, load_signed_prekey(1));
    same!(h, load_all_signed_prekeys());
}

pub async fn app_state_sync_matches(db: &TestDb) {
    let (_, ids) = db.devices(1).await;
    let h = Pair::new(db, ids[0]);
    let key = |fill: u8, ts: i64| AppStateSyncKey {
        key_data: vec![fill; 32],
        fingerprint: vec![fill, 1, 2],
        timestamp: ts,
    };
    same!(h, get_latest_sync_key_id());
    same!(h, get_sync_key(b"k1"));
    same!(h, set_sync_key(b"k1", key(1, 100)));
    same!(h, set_sync_key(b"k2", key(2, 200)));
    same!(h, get_latest_sync_key_id());
    same!(h, get_sync_key(b"k1"));
    same!(h, set_sync_key(b"k1", key(3, 300)));
    same!(h, get_latest_sync_key_id());
    same!(h, get_sync_key(b"k1"));
    same!(h, get_sync_key(b"k2"));

    same!(h, get_version("regular"));
    let mut state = HashState {
        version: 42,
        hash: [9; 128],
        index_value_map: [("aW5kZXg=".to_string(), vec![1, 2, 3]), ("b3RoZXI=".to_string(), vec![])].into(),
        mac_mismatch_fatal: true,
    };
    same!(h, set_version("regular", state.clone()));
    same!(h, get_version("regular"));
    same!(h, get_version("critical_block"));
    state.version = 43;
    state.index_value_map.clear();
    same!(h, set_version("regular", state.clone()));
    same!(h, get_version("regular"));

    same!(h, put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20), mac(1, 11)]));
    same!(h, put_mutation_macs("critical", 1, &[mac(1, 30)]));
    same!(h, put_mutation_macs("regular", 2, &[mac(3, 40)]));
    same!(h, put_mutation_macs("regular", 3, &[]));
    same!(h, get_mutation_mac("regular", &[1; 32]));
    same!(h, get_mutation_mac("critical", &[1; 32]));
    same!(h, get_mutation_mac("regular", &[7; 32]));
    same!(h, get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32], [7; 32]]));
    same!(h, get_mutation_macs("regular", &[]));
    same!(h, delete_mutation_macs("regular", &[vec![2; 32], vec![8; 32]]));
    same!(h, delete_mutation_macs("regular", &[]));
    same!(h, get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]]));
    same!(h, clear_mutation_macs("regular"));
    same!(h, get_mutation_macs("regular", &[[1; 32], [3; 32]]));
    same!(h, get_mutation_mac("critical", &[1; 32]));
}
