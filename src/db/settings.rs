//! Gateway-wide settings that live in the database (the admin token hash, generated keys).

use super::{reader, writer, Db, DbResult};

impl Db {
    pub async fn setting(&self, key: &str) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(p)
            .await)?)
    }

    /// Stores `value` under `key` unless the key already has a value; returns the stored value.
    pub async fn setting_insert_once(&self, key: &str, value: &str) -> DbResult<String> {
        writer!(self, |p| sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        )
        .bind(key)
        .bind(value)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(self.setting(key).await?.unwrap_or_else(|| value.to_string()))
    }
}
