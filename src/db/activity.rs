//! `user_activity_logs`: who did what, to what, from where.

use super::{now_ms, reader, writer, Db, DbResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
}

/// One entry to record.
#[derive(Debug, Clone, Default)]
pub struct NewActivity {
    pub user_id: Option<i64>,
    /// `tenant`, `admin`, `dashboard` or `system`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
}

/// Stores one entry: `$1` user, `$2` actor, `$3` action, `$4` target, `$5` detail, `$6` ip,
/// `$7` when.
pub(crate) const INSERT_ACTIVITY: &str = "INSERT INTO user_activity_logs \
     (user_id, actor, action, target, detail, ip, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl Db {
    pub async fn record_activity(&self, entry: &NewActivity) -> DbResult<()> {
        writer!(self, |p| {
            sqlx::query(INSERT_ACTIVITY)
                .bind(entry.user_id)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.detail)
                .bind(&entry.ip)
                .bind(now_ms())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The tenant's activity, newest first, optionally filtered by action.
    pub async fn list_activity(
        &self,
        tenant: i64,
        action: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ActivityRow>, i64)> {
        let rows = reader!(self, |p| {
            sqlx::query_as(
                "SELECT id, user_id, actor, action, target, detail, ip, created_at FROM user_activity_logs \
             WHERE user_id = $1 AND ($2 IS NULL OR action = $2) ORDER BY id DESC LIMIT $3 OFFSET $4",
            )
            .bind(tenant)
            .bind(action)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await
        })?;
        let total: i64 = reader!(self, |p| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM user_activity_logs WHERE user_id = $1 AND ($2 IS NULL OR action = $2)",
            )
            .bind(tenant)
            .bind(action)
            .fetch_one(p)
            .await
        })?;
        Ok((rows, total))
    }
}
