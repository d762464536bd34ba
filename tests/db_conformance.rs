//! The storage layer's story, told once and run on every configured backend: SQLite always,
//! PostgreSQL when `GATEWAY_TEST_POSTGRES_URL` is set. Each story is an `async fn(&Db)` and
//! gets a fresh, migrated database. To add an aggregate, write its stories below and list
//! them in the `conformance!` call at the end.

use wa_gateway::db::activity::NewActivity;
use wa_gateway::db::dead_letters::NewDeadLetter;
use wa_gateway::db::devices::StatusChange;
use wa_gateway::db::schedules::NewSchedule;
use wa_gateway::db::tenants::{NewApiKey, NewTenant};
use wa_gateway::db::webhooks::{EndpointSettings, NewDelivery};
use wa_gateway::db::{now_ms, Db, DbError, MessageFilter, NewMessage, TenantRow};
use wa_gateway::limits::Resource;

#[path = "support/backend.rs"]
mod backend;
#[path = "support/postgres.rs"]
mod pg_support;

use backend::Backend;

/// Every scope, as a key made before scopes existed may do.
const ALL_SCOPES: &str = r#"["read","send","manage"]"#;

/// A key with every scope, for every device.
fn api_key<'a>(name: &'a str, prefix: &'a str, hash: &'a str) -> NewApiKey<'a> {
    NewApiKey { name, prefix, hash, scopes: ALL_SCOPES, devices: None }
}

/// Generates, for each story, `sqlite::<story>` and `postgres::<story>` tests; the
/// PostgreSQL ones are ignored when the tests were built without a server to run on.
macro_rules! conformance {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $story() {
                    let backend = super::Backend::sqlite().await;
                    super::$story(&backend.db).await;
                    backend.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
                async fn $story() {
                    let backend = super::Backend::postgres().await.unwrap_or_else(|| {
                        panic!("{} is not set: this test needs PostgreSQL", super::pg_support::ENV)
                    });
                    super::$story(&backend.db).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

// ----- helpers shared by the stories -----

async fn new_tenant(db: &Db, email: &str, package: &str) -> TenantRow {
    db.create_tenant(
        &NewTenant { name: "Toko", email, package, password_hash: None },
        &format!("wag_{}", &email[..4.min(email.len())]),
        &format!("hash-of-first-key-{email}"),
    )
    .await
    .expect("the tenant is created")
}

fn activity(tenant: i64, action: &str, target: &str) -> NewActivity {
    NewActivity {
        user_id: Some(tenant),
        actor: "tenant".into(),
        action: action.into(),
        target: Some(target.into()),
        detail: None,
        ip: Some("203.0.113.7".into()),
    }
}

// ----- tenants -----

async fn tenants_are_created_read_listed_and_updated(db: &Db) {
    let budi = new_tenant(db, "budi@example.com", "basic").await;
    let sari = new_tenant(db, "sari@example.com", "premium").await;
    assert!(sari.id > budi.id);
    assert_eq!(budi.status, "active");
    assert_eq!(budi.package, "basic");
    assert!(budi.created_at > 0 && budi.updated_at >= budi.created_at);

    let read = db.tenant(budi.id).await.unwrap().expect("found");
    assert_eq!(read.email, "budi@example.com");
    assert_eq!(read.name, "Toko");
    assert!(db.tenant(budi.id + 1000).await.unwrap().is_none());
    let (by_email, hash) = db.tenant_by_email("sari@example.com").await.unwrap().expect("found by email");
    assert_eq!(by_email.id, sari.id);
    assert!(hash.is_none());

    let (rows, total) = db.list_tenants(10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [sari.id, budi.id], "newest first");
    let (page, total) = db.list_tenants(1, 1).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(page[0].id, budi.id);

    let updated = db
        .update_tenant(budi.id, Some("Toko Budi"), Some("premium"), Some("suspended"), None)
        .await
        .unwrap()
        .expect("updated");
    assert_eq!(updated.name, "Toko Budi");
    assert_eq!(updated.package, "premium");
    assert_eq!(updated.status, "suspended");
    // None leaves a field as it is.
    let same =
        db.update_tenant(budi.id, None, None, Some("active"), Some("argon-hash")).await.unwrap().unwrap();
    assert_eq!((same.name.as_str(), same.package.as_str()), ("Toko Budi", "premium"));
    assert_eq!(same.status, "active");
    let (_, hash) = db.tenant_by_email("budi@example.com").await.unwrap().unwrap();
    assert_eq!(hash.as_deref(), Some("argon-hash"));
    assert!(db.update_tenant(9999, Some("x"), None, None, None).await.unwrap().is_none());
}

async fn a_duplicate_email_is_a_conflict(db: &Db) {
    new_tenant(db, "budi@example.com", "basic").await;
    let err = db
        .create_tenant(
            &NewTenant { name: "Other", email: "budi@example.com", package: "basic", password_hash: None },
            "wag_other",
            "another-hash",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Conflict(_)), "{err:?}");
    // Nothing of the failed tenant stays behind.
    assert_eq!(db.list_tenants(10, 0).await.unwrap().1, 1);
    assert!(db.auth_by_key_hash("another-hash").await.unwrap().is_none());
}

// ----- API keys -----

async fn api_keys_authenticate_until_revoked(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    let first = db
        .auth_by_key_hash("hash-of-first-key-budi@example.com")
        .await
        .unwrap()
        .expect("the first key authenticates");
    assert_eq!(first.user_id, t.id);
    assert_eq!(first.status, "active");
    assert_eq!(first.package, "basic");
    assert_eq!(first.overrides, "{}");
    assert!(first.last_used_at.is_none());

    let key =
        db.create_api_key(t.id, &api_key("laptop", "wag_1234abcd", "hash-2"), None).await.unwrap().unwrap();
    assert_eq!((key.user_id, key.name.as_str()), (t.id, "laptop"));
    assert_eq!(key.prefix, "wag_1234abcd");
    assert!(key.revoked_at.is_none());
    let auth = db.auth_by_key_hash("hash-2").await.unwrap().unwrap();
    assert_eq!(auth.key_id, key.id);
    assert!(db.auth_by_key_hash("hash-unknown").await.unwrap().is_none());

    db.touch_api_key(key.id).await.unwrap();
    let auth = db.auth_by_key_hash("hash-2").await.unwrap().unwrap();
    assert!(auth.last_used_at.is_some());

    let (keys, total) = db.list_api_keys(t.id, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(keys[0].id, key.id, "newest first");

    assert!(db.revoke_api_key(t.id, key.id).await.unwrap());
    assert!(db.auth_by_key_hash("hash-2").await.unwrap().is_none());
    assert!(!db.revoke_api_key(t.id, key.id).await.unwrap(), "only once");
    let (keys, total) = db.list_api_keys(t.id, 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert!(keys.iter().all(|k| k.id != key.id));

    // A second key with the same hash cannot exist.
    let dup = db.create_api_key(t.id, &api_key("again", "wag_x", "hash-2"), None).await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");

    // Within a limit: the tenant holds one key (the revoked one does not count).
    let second = db.create_api_key(t.id, &api_key("second", "wag_2", "hash-3"), Some(2)).await.unwrap();
    assert!(second.is_some(), "the second of two");
    let third = db.create_api_key(t.id, &api_key("third", "wag_3", "hash-4"), Some(2)).await.unwrap();
    assert!(third.is_none(), "over the limit of two");
    assert!(db.auth_by_key_hash("hash-4").await.unwrap().is_none(), "nothing stored over the limit");

    // A key for some devices keeps them; one for every device stores none.
    let shop = NewApiKey { devices: Some("[5,7]"), ..api_key("shop", "wag_5", "hash-5") };
    let shop = db.create_api_key(t.id, &shop, None).await.unwrap().unwrap();
    assert_eq!(shop.devices.as_deref(), Some("[5,7]"));
    assert_eq!(db.auth_by_key_hash("hash-5").await.unwrap().unwrap().devices.as_deref(), Some("[5,7]"));
    assert_eq!(db.api_key(t.id, shop.id).await.unwrap().unwrap().devices.as_deref(), Some("[5,7]"));
    assert!(db.auth_by_key_hash("hash-3").await.unwrap().unwrap().devices.is_none());
}

async fn tenant_scoped_calls_never_touch_another_tenants_rows(db: &Db) {
    let budi = new_tenant(db, "budi@example.com", "basic").await;
    let sari = new_tenant(db, "sari@example.com", "basic").await;
    let budis =
        db.create_api_key(budi.id, &api_key("k", "wag_b", "hash-budi-2"), None).await.unwrap().unwrap();

    assert!(!db.revoke_api_key(sari.id, budis.id).await.unwrap());
    assert!(db.auth_by_key_hash("hash-budi-2").await.unwrap().is_some());
    let (sari_keys, total) = db.list_api_keys(sari.id, 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert!(sari_keys.iter().all(|k| k.user_id == sari.id));

    db.record_activity(&activity(budi.id, "api_key.create", "api_key:1")).await.unwrap();
    db.record_activity(&activity(sari.id, "api_key.revoke", "api_key:2")).await.unwrap();
    // An entry of nobody (a system event) is nobody's to read.
    db.record_activity(&NewActivity {
        user_id: None,
        actor: "system".into(),
        action: "admin_token.generate".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let (rows, total) = db.list_activity(budi.id, None, 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(rows[0].user_id, Some(budi.id));
    assert_eq!(rows[0].action, "api_key.create");
    assert_eq!(rows[0].ip.as_deref(), Some("203.0.113.7"));
    let (rows, _) = db.list_activity(sari.id, None, 10, 0).await.unwrap();
    assert!(rows.iter().all(|r| r.user_id == Some(sari.id)));

    db.set_limit_overrides(budi.id, r#"{"devices":3}"#).await.unwrap();
    assert_eq!(db.limits_row(sari.id).await.unwrap().overrides, "{}");
}

async fn the_activity_log_is_newest_first_paged_and_filtered(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    for (i, action) in ["a.one", "a.two", "a.one", "a.three"].iter().enumerate() {
        db.record_activity(&activity(t.id, action, &format!("x:{i}"))).await.unwrap();
    }
    let (rows, total) = db.list_activity(t.id, None, 2, 1).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(rows.iter().map(|r| r.target.clone().unwrap()).collect::<Vec<_>>(), ["x:2", "x:1"]);
    let (rows, total) = db.list_activity(t.id, Some("a.one"), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert!(rows.iter().all(|r| r.action == "a.one"));
    assert!(rows[0].created_at >= rows[1].created_at && rows[0].id > rows[1].id);
}

// ----- limits -----

async fn limit_overrides_round_trip(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    let row = db.limits_row(t.id).await.unwrap();
    assert_eq!(row.overrides, "{}");
    assert_eq!(row.messages_used, 0);
    let json = r#"{"devices":3,"messages_per_month":null}"#;
    db.set_limit_overrides(t.id, json).await.unwrap();
    assert_eq!(db.limits_row(t.id).await.unwrap().overrides, json);
    let auth = db.auth_by_key_hash("hash-of-first-key-budi@example.com").await.unwrap().unwrap();
    assert_eq!(auth.overrides, json, "authentication sees the overrides");
    assert!(matches!(db.limits_row(t.id + 1000).await, Err(DbError::NotFound)));
}

async fn message_reservations_count_within_the_limit_and_reset_each_period(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    let used = |db: &Db| {
        let db = db.clone();
        async move { db.limits_row(t.id).await.unwrap() }
    };

    assert!(db.reserve_messages(t.id, "2026-01", 2, Some(3)).await.unwrap());
    assert!(!db.reserve_messages(t.id, "2026-01", 2, Some(3)).await.unwrap());
    assert!(db.reserve_messages(t.id, "2026-01", 1, Some(3)).await.unwrap());
    assert!(!db.reserve_messages(t.id, "2026-01", 1, Some(3)).await.unwrap());
    let row = used(db).await;
    assert_eq!((row.messages_period.as_str(), row.messages_used), ("2026-01", 3));

    db.release_messages(t.id, "2026-01", 2).await.unwrap();
    assert_eq!(used(db).await.messages_used, 1);
    // Releasing more than was used stops at zero; another period's release changes nothing.
    db.release_messages(t.id, "2026-01", 5).await.unwrap();
    assert_eq!(used(db).await.messages_used, 0);
    assert!(db.reserve_messages(t.id, "2026-01", 3, Some(3)).await.unwrap());
    db.release_messages(t.id, "2025-12", 3).await.unwrap();
    assert_eq!(used(db).await.messages_used, 3);

    // A new period starts from zero.
    assert!(db.reserve_messages(t.id, "2026-02", 3, Some(3)).await.unwrap());
    let row = used(db).await;
    assert_eq!((row.messages_period.as_str(), row.messages_used), ("2026-02", 3));
    // Even the first reservation of a period must fit.
    assert!(!db.reserve_messages(t.id, "2026-03", 4, Some(3)).await.unwrap());
    assert_eq!(used(db).await.messages_period, "2026-02");

    // No limit is unlimited; a zero limit refuses everything.
    assert!(db.reserve_messages(t.id, "2026-02", 1_000_000, None).await.unwrap());
    assert_eq!(used(db).await.messages_used, 1_000_003);
    let other = new_tenant(db, "sari@example.com", "basic").await;
    assert!(!db.reserve_messages(other.id, "2026-02", 1, Some(0)).await.unwrap());
    assert_eq!(db.limits_row(other.id).await.unwrap().messages_used, 0);
    // A reservation for a tenant that does not exist is not granted.
    assert!(!db.reserve_messages(t.id + 1000, "2026-02", 1, None).await.unwrap());
}

async fn concurrent_reservations_never_overshoot(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.reserve_messages(t.id, "2026-05", 1, Some(7)).await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            granted += 1;
        }
    }
    assert_eq!(granted, 7);
    assert_eq!(db.limits_row(t.id).await.unwrap().messages_used, 7);
}

async fn resource_counts_start_at_zero(db: &Db) {
    let t = new_tenant(db, "budi@example.com", "basic").await;
    let counts = db.resource_counts(t.id).await.unwrap();
    assert!(!counts.is_empty());
    // Only the key the tenant was created with.
    let expected = |r: &Resource| if *r == Resource::ApiKeys { 1 } else { 0 };
    assert!(counts.iter().all(|(r, n)| *n == expected(r)), "{counts:?}");
}

// ----- history paging and dead letters -----

/// A tenant with a device and `n` inbound messages; returns (tenant, device id).
async fn tenant_with_history(db: &Db, email: &str, n: usize) -> (TenantRow, i64) {
    let t = new_tenant(db, email, "basic").await;
    let device = match db.create_device(t.id, "6281100000001", "d", None).await.unwrap() {
        Some(d) => d.id,
        None => panic!("no limit was given"),
    };
    for i in 0..n {
        let m = NewMessage {
            user_id: t.id,
            device_id: device,
            direction: "in".into(),
            chat: "6281200000001@s.whatsapp.net".into(),
            sender: "6281200000001".into(),
            recipient: "6281100000001".into(),
            text: Some(format!("pesan nomor {i}")),
            kind: "text".into(),
            status: "received".into(),
            wa_id: Some(format!("WA{i}")),
            source: "whatsapp".into(),
            ..Default::default()
        };
        db.insert_inbound(&m).await.unwrap().expect("stored");
    }
    (t, device)
}

/// Whatever limit and offset reach the storage layer (the API refuses most of these), a
/// history page is an answer, never an arithmetic overflow or a database error.
async fn history_pages_at_extreme_bounds_never_fail(db: &Db) {
    let (t, _) = tenant_with_history(db, "budi@example.com", 3).await;
    let extremes = [i64::MIN, -1, 0, 1, 3, 499, 500, 501, 100_000, 100_001, i64::MAX - 1, i64::MAX];
    let filters = [
        MessageFilter::default(),
        MessageFilter { q: Some("nomor".into()), ..Default::default() },
        MessageFilter { q: Some("no".into()), direction: Some("in".into()), ..Default::default() },
    ];
    for filter in &filters {
        for limit in extremes {
            for offset in extremes {
                let page = db
                    .list_messages(t.id, filter, limit, offset)
                    .await
                    .unwrap_or_else(|e| panic!("limit {limit}, offset {offset}, {filter:?}: {e}"));
                assert!(page.rows.len() <= 3 && page.total <= 3, "limit {limit}, offset {offset}");
                if (1..=500).contains(&limit) && offset <= 0 {
                    let expected = limit.min(3) as usize;
                    assert_eq!(page.rows.len(), expected, "limit {limit}, offset {offset}, {filter:?}");
                }
            }
        }
    }
}

async fn a_dead_letter_is_recorded_once_with_its_history_row(db: &Db) {
    let (t, device) = tenant_with_history(db, "budi@example.com", 0).await;
    let (other, _) = tenant_with_history(db, "sari@example.com", 0).await;
    let placeholder = NewMessage {
        user_id: t.id,
        device_id: device,
        direction: "in".into(),
        chat: "6281200000001@s.whatsapp.net".into(),
        sender: "6281200000001".into(),
        recipient: "6281100000001".into(),
        kind: "text".into(),
        status: "failed".into(),
        wa_id: Some("DEAD1".into()),
        source: "whatsapp".into(),
        error: Some("could not store".into()),
        ..Default::default()
    };
    let letter = NewDeadLetter {
        user_id: t.id,
        device_id: device,
        wa_id: "DEAD1".into(),
        chat: placeholder.chat.clone(),
        sender: placeholder.sender.clone(),
        payload: r#"{"text":"nul\u0000"}"#.into(),
        reason: "refused".into(),
        attempts: 3,
    };
    let first = db.record_dead_letter(&letter, &placeholder).await.unwrap();
    let again =
        db.record_dead_letter(&NewDeadLetter { attempts: 5, ..letter.clone() }, &placeholder).await.unwrap();
    assert_eq!(first.id, again.id, "once per message");
    assert_eq!(again.attempts, 3);
    assert_eq!(first.payload, letter.payload);
    let message = db.message(t.id, first.message_id.expect("a history row")).await.unwrap().unwrap();
    assert_eq!((message.status.as_str(), message.text.as_deref()), ("failed", None));
    let (all, total) = db.list_dead_letters(None, 10, 0).await.unwrap();
    assert_eq!((all.len(), total), (1, 1));
    let (theirs, total) = db.list_dead_letters(Some(other.id), 10, 0).await.unwrap();
    assert!(theirs.is_empty() && total == 0, "another tenant has none");
    let (mine, _) = db.list_dead_letters(Some(t.id), 10, 0).await.unwrap();
    assert_eq!(mine[0].id, first.id);
}

// ----- settings -----

async fn a_setting_is_inserted_once(db: &Db) {
    assert_eq!(db.setting("admin_token_hash").await.unwrap(), None);
    assert_eq!(db.setting_insert_once("admin_token_hash", "first").await.unwrap(), "first");
    assert_eq!(
        db.setting_insert_once("admin_token_hash", "second").await.unwrap(),
        "first",
        "the first value stands"
    );
    assert_eq!(db.setting("admin_token_hash").await.unwrap().as_deref(), Some("first"));
    assert_eq!(db.setting("other").await.unwrap(), None);
}

async fn the_database_answers_pings_and_migrations_are_idempotent(db: &Db) {
    db.ping().await.unwrap();
    db.migrate().await.expect("running migrations again is a no-op");
    db.ping().await.unwrap();
}

// ----- process and device leases -----

/// A tenant with `n` paired devices; returns their ids.
async fn paired_devices(db: &Db, email: &str, n: usize) -> Vec<i64> {
    let t = new_tenant(db, email, "enterprise").await;
    let mut ids = Vec::new();
    for i in 0..n {
        let device = db.create_device(t.id, &format!("62811000002{i:02}"), "d", None).await.unwrap().unwrap();
        let change = StatusChange { status: "connected", detail: None, paired: Some(true), jid: None };
        db.system_set_device_status(device.id, change, None, &[]).await.unwrap();
        ids.push(device.id);
    }
    ids
}

async fn one_live_node_holds_a_device_and_a_dead_nodes_devices_are_taken_over(db: &Db) {
    let devices = paired_devices(db, "lease@example.com", 2).await;
    let (d1, d2) = (devices[0], devices[1]);
    let before = db.cluster_now().await.unwrap();
    db.cluster_register("node-a", "a", "1", 60_000).await.unwrap();
    db.cluster_register("node-b", "b", "1", 60_000).await.unwrap();
    assert!(db.cluster_register("node-a", "a", "1", 60_000).await.is_err(), "a node id is never reused");
    let nodes = db.cluster_live_nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(), ["node-a", "node-b"]);
    assert!(nodes[0].expires_at >= before + 60_000 && !nodes[0].draining, "{nodes:?}");
    assert_eq!(db.cluster_unheld_devices(10).await.unwrap(), [d1, d2]);

    // The first taker wins; holding it already keeps the epoch.
    assert_eq!(db.cluster_acquire(d1, "node-a").await.unwrap(), Some(1));
    assert_eq!(db.cluster_acquire(d1, "node-b").await.unwrap(), None, "a live node holds it");
    assert_eq!(db.cluster_acquire(d1, "node-a").await.unwrap(), Some(1));
    assert_eq!(db.cluster_holder(d1).await.unwrap(), Some(("node-a".to_string(), 1)));
    assert!(db.cluster_holds(d1, "node-a", 1).await.unwrap());
    assert!(!db.cluster_holds(d1, "node-b", 1).await.unwrap());
    assert_eq!(db.cluster_unheld_devices(10).await.unwrap(), [d2]);

    // Released, it is free again and the next holder gets a higher epoch.
    assert!(!db.cluster_release(d1, "node-b", 1).await.unwrap(), "only the holder releases");
    assert!(db.cluster_release(d1, "node-a", 1).await.unwrap());
    assert_eq!(db.cluster_holder(d1).await.unwrap(), None);
    assert_eq!(db.cluster_acquire(d1, "node-b").await.unwrap(), Some(2));
    assert!(!db.cluster_holds(d1, "node-a", 1).await.unwrap(), "the old token is fenced out");

    // node-b dies (its renewal lapses): node-a takes its device over with a new epoch, and
    // node-b cannot renew itself back to life nor take anything.
    assert!(db.cluster_renew("node-b", 0).await.unwrap(), "a live node renews");
    assert!(!db.cluster_renew("node-b", 60_000).await.unwrap(), "an expired node stays dead");
    assert_eq!(db.cluster_holder(d1).await.unwrap(), None, "a dead node holds nothing");
    assert!(!db.cluster_holds(d1, "node-b", 2).await.unwrap());
    assert_eq!(db.cluster_acquire(d2, "node-b").await.unwrap(), None, "a dead node cannot take");
    assert_eq!(db.cluster_acquire(d1, "node-a").await.unwrap(), Some(3));
    assert!(!db.cluster_release(d1, "node-b", 2).await.unwrap(), "the stale holder cannot release");
    assert_eq!(db.cluster_leases_of("node-a").await.unwrap().len(), 1);
    assert!(db.cluster_leases_of("node-b").await.unwrap().is_empty());
    assert_eq!(db.cluster_live_nodes().await.unwrap().len(), 1);

    // The dead node's row goes after a grace period; a clean stop leaves at once.
    assert_eq!(db.cluster_forget_dead(3_600_000).await.unwrap(), 0);
    assert_eq!(db.cluster_forget_dead(-1).await.unwrap(), 1);
    db.cluster_set_draining("node-a", true).await.unwrap();
    assert!(db.cluster_live_nodes().await.unwrap()[0].draining);
    db.cluster_leave("node-a").await.unwrap();
    assert!(db.cluster_live_nodes().await.unwrap().is_empty());
    assert_eq!(db.cluster_holder(d1).await.unwrap(), None);
    assert_eq!(db.cluster_unheld_devices(10).await.unwrap(), [d1, d2]);
}

async fn concurrent_takers_of_one_device_get_it_exactly_once(db: &Db) {
    let devices = paired_devices(db, "race@example.com", 8).await;
    let nodes: Vec<String> = (0..4).map(|i| format!("racer-{i}")).collect();
    for node in &nodes {
        db.cluster_register(node, node, "1", 60_000).await.unwrap();
    }
    for &device in &devices {
        let takers = nodes.iter().map(|node| {
            let db = db.clone();
            let node = node.clone();
            tokio::spawn(async move {
                db.cluster_acquire(device, &node).await.unwrap().map(|epoch| (node, epoch))
            })
        });
        let won: Vec<(String, i64)> =
            futures::future::join_all(takers).await.into_iter().filter_map(|r| r.unwrap()).collect();
        assert_eq!(won.len(), 1, "device {device}: {won:?}");
        assert_eq!(won[0].1, 1);
        assert_eq!(db.cluster_holder(device).await.unwrap(), Some(won[0].clone()));
    }
    // Deleting a device drops its lease with it.
    let (tenant, _) = db.tenant_by_email("race@example.com").await.unwrap().unwrap();
    assert!(db.delete_device(tenant.id, devices[0]).await.unwrap());
    assert_eq!(db.cluster_holder(devices[0]).await.unwrap(), None);
    let held: usize = {
        let mut n = 0;
        for node in &nodes {
            n += db.cluster_leases_of(node).await.unwrap().len();
        }
        n
    };
    assert_eq!(held, devices.len() - 1);
}

/// A device's status and the deliveries of its `device.status` event are one transaction:
/// the holder's change is stored with its event, a change under a lease that moved on is
/// refused and queues nothing.
async fn a_device_status_is_stored_with_its_event_or_not_at_all(db: &Db) {
    let t = new_tenant(db, "status@example.com", "enterprise").await;
    let settings = EndpointSettings {
        url: "https://hooks.example.com/status".into(),
        description: String::new(),
        events: r#"["device.status"]"#.into(),
        mode: "notify".into(),
        device_id: None,
        transform_plugin_id: None,
        enabled: true,
    };
    let endpoint = db.create_webhook(t.id, &settings, "sealed", None).await.unwrap().unwrap();
    let device = db.create_device(t.id, "6281100000777", "d", None).await.unwrap().unwrap();
    let event = |payload: &str| NewDelivery {
        user_id: t.id,
        endpoint_id: endpoint.id,
        webhook_id: format!("msg_{payload}"),
        event: "device.status".into(),
        message_id: None,
        device_id: None,
        payload: payload.into(),
        max_attempts: 3,
        due: now_ms(),
    };
    let change = |status| StatusChange { status, detail: None, paired: None, jid: None };
    let queued = || async { db.system_due_webhooks(now_ms() + 60_000, 10).await.unwrap() };

    db.cluster_register("node-a", "a", "test", 60_000).await.unwrap();
    let first = db.cluster_acquire(device.id, "node-a").await.unwrap().expect("a free lease");
    assert!(db.cluster_renew("node-a", -1_000).await.unwrap(), "node-a expires");
    db.cluster_register("node-b", "b", "test", 60_000).await.unwrap();
    let second = db.cluster_acquire(device.id, "node-b").await.unwrap().expect("a dead holder's lease");

    let stale = db
        .system_set_device_status(device.id, change("connected"), Some(("node-a", first)), &[event("stale")])
        .await
        .unwrap();
    assert!(!stale, "the old holder's change is refused");
    assert!(queued().await.is_empty(), "and its event is not queued");
    assert_eq!(db.system_device(device.id).await.unwrap().unwrap().status, "disconnected");

    let stored = db
        .system_set_device_status(device.id, change("connected"), Some(("node-b", second)), &[event("fresh")])
        .await
        .unwrap();
    assert!(stored);
    assert_eq!(queued().await, [endpoint.id], "the holder's change queues its event");
    assert_eq!(db.system_device(device.id).await.unwrap().unwrap().status, "connected");
}

// ----- work several processes share: claimed on the database's clock -----

/// How far the clock of the process in the stories below is off the database's.
const SKEW_MS: i64 = 3_600_000;
/// The lease the stories ask for.
const LEASE_MS: i64 = 30_000;

async fn webhook_deliveries_are_claimed_on_the_databases_clock(db: &Db) {
    let t = new_tenant(db, "hooks@example.com", "enterprise").await;
    let settings = EndpointSettings {
        url: "https://hooks.example.com/in".into(),
        description: String::new(),
        events: r#"["message.sent"]"#.into(),
        mode: "notify".into(),
        device_id: None,
        transform_plugin_id: None,
        enabled: true,
    };
    let endpoint = db.create_webhook(t.id, &settings, "sealed", None).await.unwrap().unwrap();
    let delivery = NewDelivery {
        user_id: t.id,
        endpoint_id: endpoint.id,
        webhook_id: "msg_clock".into(),
        event: "message.sent".into(),
        message_id: None,
        device_id: None,
        payload: "{}".into(),
        max_attempts: 3,
        due: now_ms(),
    };
    db.enqueue_deliveries(&[delivery]).await.unwrap();

    // A process whose clock is an hour behind sees the delivery due and takes it; the lease
    // runs from the database's now, not from the caller's.
    let behind = now_ms() - SKEW_MS;
    assert_eq!(db.system_due_webhooks(behind, 10).await.unwrap(), [endpoint.id]);
    let before = db.cluster_now().await.unwrap();
    let taken = db.system_claim_deliveries(endpoint.id, behind, behind + LEASE_MS, 10, 10).await.unwrap();
    let after = db.cluster_now().await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let lease = taken[0].lease_until.expect("leased");
    assert!((before + LEASE_MS..=after + LEASE_MS).contains(&lease), "{before} {lease} {after}");

    // A process whose clock is an hour ahead does not take it while the lease runs.
    let ahead = now_ms() + SKEW_MS;
    assert!(db.system_due_webhooks(ahead, 10).await.unwrap().is_empty());
    let again = db.system_claim_deliveries(endpoint.id, ahead, ahead + LEASE_MS, 10, 10).await.unwrap();
    assert!(again.is_empty(), "taken twice: {again:?}");

    // Given back due in a minute, it falls due a minute from the database's now, which the
    // caller hears on its own clock.
    db.system_release_delivery(taken[0].id, now_ms() + 60_000).await.unwrap();
    assert!(db.system_due_webhooks(ahead, 10).await.unwrap().is_empty(), "not due for a minute");
    let next = db.system_next_delivery_at(behind).await.unwrap().expect("a delivery is pending");
    assert!((behind + 50_000..=behind + 70_000).contains(&next), "{behind} {next}");
}

async fn scheduled_runs_are_claimed_on_the_databases_clock(db: &Db) {
    let device = paired_devices(db, "sched@example.com", 1).await[0];
    let (tenant, _) = db.tenant_by_email("sched@example.com").await.unwrap().unwrap();
    let due = db.cluster_now().await.unwrap() - 1_000;
    let schedule = NewSchedule {
        device_id: device,
        recipient: "6281234567890".into(),
        text: Some("Selamat pagi".into()),
        media: None,
        send_at: Some(due),
        cron: None,
        timezone: "UTC".into(),
        next_run_at: due,
    };
    let row = db.create_schedule(tenant.id, &schedule, None).await.unwrap().unwrap();

    // Due by the database's clock: a process an hour behind takes it, leased from the
    // database's now.
    let behind = now_ms() - SKEW_MS;
    let before = db.cluster_now().await.unwrap();
    assert_eq!(db.system_claim_due_schedules(behind, behind + LEASE_MS, 10).await.unwrap(), [row.id]);
    let after = db.cluster_now().await.unwrap();
    let claimed = db.system_schedule(row.id).await.unwrap().unwrap();
    let lease = claimed.claimed_until.expect("claimed");
    assert!((before + LEASE_MS..=after + LEASE_MS).contains(&lease), "{before} {lease} {after}");

    // A process an hour ahead does not take it over while the lease runs.
    let ahead = now_ms() + SKEW_MS;
    assert!(db.system_claim_due_schedules(ahead, ahead + LEASE_MS, 10).await.unwrap().is_empty());
}

conformance!(
    a_device_status_is_stored_with_its_event_or_not_at_all,
    tenants_are_created_read_listed_and_updated,
    a_duplicate_email_is_a_conflict,
    api_keys_authenticate_until_revoked,
    tenant_scoped_calls_never_touch_another_tenants_rows,
    the_activity_log_is_newest_first_paged_and_filtered,
    limit_overrides_round_trip,
    message_reservations_count_within_the_limit_and_reset_each_period,
    concurrent_reservations_never_overshoot,
    resource_counts_start_at_zero,
    a_setting_is_inserted_once,
    the_database_answers_pings_and_migrations_are_idempotent,
    history_pages_at_extreme_bounds_never_fail,
    a_dead_letter_is_recorded_once_with_its_history_row,
    one_live_node_holds_a_device_and_a_dead_nodes_devices_are_taken_over,
    concurrent_takers_of_one_device_get_it_exactly_once,
    webhook_deliveries_are_claimed_on_the_databases_clock,
    scheduled_runs_are_claimed_on_the_databases_clock,
);
