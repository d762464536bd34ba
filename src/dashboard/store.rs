//! `dashboard_sessions`: one row per dashboard login, keyed by the SHA-256 of its token.

use crate::db::{now_ms, reader, writer, Db, DbResult};

/// A live dashboard login.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub language: String,
    pub expires_at: i64,
}

/// A login to store.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub language: &'a str,
    pub expires_at: i64,
}

impl Db {
    /// Stores a login, dropping expired ones on the way.
    pub async fn dashboard_session_create(&self, s: &NewSession<'_>) -> DbResult<()> {
        let now = now_ms();
        writer!(self, |p| sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        writer!(self, |p| {
            sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, language, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(s.token_hash)
        .bind(s.user_id)
        .bind(s.csrf_token)
        .bind(s.language)
        .bind(now)
        .bind(s.expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The unexpired login with this token hash.
    pub async fn dashboard_session(&self, token_hash: &str) -> DbResult<Option<SessionRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT user_id, csrf_token, language, expires_at FROM dashboard_sessions \
             WHERE token_hash = $1 AND expires_at > $2"
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(p)
        .await)?)
    }

    /// Remembers the language chosen in this login.
    pub async fn dashboard_session_set_language(&self, token_hash: &str, language: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("UPDATE dashboard_sessions SET language = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(language)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends one login.
    pub async fn dashboard_session_delete(&self, token_hash: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends every other login of the tenant (after a password change).
    pub async fn dashboard_sessions_delete_others(&self, tenant: i64, keep_hash: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "DELETE FROM dashboard_sessions WHERE user_id = $1 AND token_hash <> $2"
        )
        .bind(tenant)
        .bind(keep_hash)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The stored argon2 hash of the tenant's dashboard password, if one is set.
    pub async fn dashboard_password_hash(&self, tenant: i64) -> DbResult<Option<String>> {
        let hash: Option<Option<String>> =
            reader!(self, |p| sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(tenant)
                .fetch_optional(p)
                .await)?;
        Ok(hash.flatten())
    }
}
