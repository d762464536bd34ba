//! The storage layer's story, told once and run on every configured backend: SQLite always,
//! PostgreSQL when `GATEWAY_TEST_POSTGRES_URL` is set. Each story is an `async fn(&Db)` and
//! gets a fresh, migrated database. To add an aggregate, write its stories below and list
//! them in the `conformance!` call at the end.

use wa_gateway::db::activity::NewActivity;
use wa_gateway::db::tenants::NewTenant;
use wa_gateway::db::{Db, DbError, TenantRow};

#[path = "support/backend.rs"]
mod backend;
#[path = "support/postgres.rs"]
mod pg_support;

use backend::Backend;

/// Generates, for each story, `sqlite::<story>` and `postgres::<story>` (which passes as skipped without a server) tests.
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
                async fn $story() {
                    let Some(backend) = super::Backend::postgres().await else {
                        eprintln!("skipped: {} is not set", super::pg_support::ENV);
                        return;
                    };
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

    let key = db.create_api_key(t.id, "laptop", "wag_1234abcd", "hash-2").await.unwrap();
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
    let dup = db.create_api_key(t.id, "again", "wag_x", "hash-2").await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");
}

async fn tenant_scoped_calls_never_touch_another_tenants_rows(db: &Db) {
    let budi = new_tenant(db, "budi@example.com", "basic").await;
    let sari = new_tenant(db, "sari@example.com", "basic").await;
    let budis = db.create_api_key(budi.id, "k", "wag_b", "hash-budi-2").await.unwrap();

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
    assert!(counts.iter().all(|(_, n)| *n == 0), "{counts:?}");
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

conformance!(
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
);
