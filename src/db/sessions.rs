//! `device_sessions`: opaque per-device session state kept by the WhatsApp driver.
//!
//! The driver owns the keys and their meaning (identity keys, pre-keys, the simulator's
//! `sim:jid`); storage only keeps bytes per `(device_id, key)`, so a restart resumes a paired
//! device without a new QR code. Rows go away with their device (`ON DELETE CASCADE`) or when
//! the device logs out ([`Db::session_delete_all`]).

use super::{reader, writer, Db, DbResult};

impl Db {
    /// The value stored under `key` for the device, if any.
    pub async fn session_get(&self, device_id: i64, key: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT value FROM device_sessions WHERE device_id = $1 AND key = $2"
        )
        .bind(device_id)
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores `value` under `key` for the device, replacing what was there.
    pub async fn session_put(&self, device_id: i64, key: &str, value: &[u8]) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "INSERT INTO device_sessions (device_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value"
        )
        .bind(device_id)
        .bind(key)
        .bind(value)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes all of the device's session state: it must pair again.
    pub async fn session_delete_all(&self, device_id: i64) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM device_sessions WHERE device_id = $1")
            .bind(device_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Whether the device has any session state, i.e. was paired and not logged out.
    pub async fn session_exists(&self, device_id: i64) -> DbResult<bool> {
        let found: Option<i64> = reader!(self, |p| sqlx::query_scalar(
            "SELECT device_id FROM device_sessions WHERE device_id = $1 LIMIT 1"
        )
        .bind(device_id)
        .fetch_optional(p)
        .await)?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use crate::db::tenants::NewTenant;
    use crate::db::{now_ms, writer, Db};

    /// A migrated SQLite file with one tenant and `n` devices; the directory lives as long as
    /// the returned guard.
    async fn db_with_devices(n: usize) -> (tempfile::TempDir, Db, Vec<i64>) {
        let (dir, db) = crate::db::temp_sqlite().await;
        let new = NewTenant { name: "Toko", email: "toko@example.com", package: "free", password_hash: None };
        let tenant = db.create_tenant(&new, "wag_test", "hash").await.expect("tenant");
        let mut ids = Vec::new();
        for i in 0..n {
            let phone = format!("62812000000{i}");
            let id: i64 = writer!(db, |p| sqlx::query_scalar(
                "INSERT INTO devices (user_id, phone, name, created_at, updated_at) \
                 VALUES ($1, $2, 'test', $3, $3) RETURNING id"
            )
            .bind(tenant.id)
            .bind(&phone)
            .bind(now_ms())
            .fetch_one(p)
            .await)
            .expect("device");
            ids.push(id);
        }
        (dir, db, ids)
    }

    #[tokio::test]
    async fn a_stored_value_reads_back_and_a_second_put_replaces_it() {
        let (_dir, db, ids) = db_with_devices(1).await;
        let dev = ids[0];
        assert_eq!(db.session_get(dev, "k").await.unwrap(), None);
        db.session_put(dev, "k", b"\x00first\xff").await.unwrap();
        assert_eq!(db.session_get(dev, "k").await.unwrap().as_deref(), Some(&b"\x00first\xff"[..]));
        db.session_put(dev, "k", b"second").await.unwrap();
        assert_eq!(db.session_get(dev, "k").await.unwrap().as_deref(), Some(&b"second"[..]));
    }

    #[tokio::test]
    async fn exists_follows_puts_and_delete_all_only_touches_one_device() {
        let (_dir, db, ids) = db_with_devices(2).await;
        let (a, b) = (ids[0], ids[1]);
        assert!(!db.session_exists(a).await.unwrap());
        db.session_put(a, "one", b"1").await.unwrap();
        db.session_put(a, "two", b"2").await.unwrap();
        db.session_put(b, "one", b"b").await.unwrap();
        assert!(db.session_exists(a).await.unwrap());

        db.session_delete_all(a).await.unwrap();
        assert!(!db.session_exists(a).await.unwrap());
        assert_eq!(db.session_get(a, "two").await.unwrap(), None);
        assert_eq!(db.session_get(b, "one").await.unwrap().as_deref(), Some(&b"b"[..]));
        // Deleting nothing is not an error.
        db.session_delete_all(a).await.unwrap();
    }

    #[tokio::test]
    async fn an_empty_value_is_kept_and_counts_as_state() {
        let (_dir, db, ids) = db_with_devices(1).await;
        db.session_put(ids[0], "empty", b"").await.unwrap();
        assert_eq!(db.session_get(ids[0], "empty").await.unwrap(), Some(Vec::new()));
        assert!(db.session_exists(ids[0]).await.unwrap());
    }
}
