//! State that several gateway processes on one database share so that a limit holds for all
//! of them together: operator logins (`admin_sessions`), failed dashboard logins
//! (`login_failures`) and the request-rate token buckets (`rate_buckets`).
//!
//! Times are Unix milliseconds from the caller's clock, as for dashboard sessions.

use super::{now_ms, reader, writer, Db, DbError, DbResult};

/// A failure count after an attempt was added to it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailureRow {
    pub key: String,
    pub failures: i64,
    /// When the counted window began (the first failure in it).
    pub since: i64,
}

/// What one process took from an owner's bucket since it last published.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpent {
    pub owner: String,
    /// Zero to only read the level.
    pub spent: i64,
    /// The owner's allowance: the bucket holds at most this and refills this much a minute.
    pub per_minute: f64,
}

/// The buckets after a publish: each owner's level now, and how many gateway processes are
/// alive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLevels {
    pub levels: Vec<(String, f64)>,
    pub processes: i64,
}

impl Db {
    /// Stores an operator login, dropping expired ones on the way.
    pub async fn admin_session_create(
        &self,
        token_hash: &str,
        admin_token_hash: &str,
        expires_at: i64,
    ) -> DbResult<()> {
        let now = now_ms();
        writer!(self, |p| sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        writer!(self, |p| sqlx::query(
            "INSERT INTO admin_sessions (token_hash, admin_token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)"
        )
        .bind(token_hash)
        .bind(admin_token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The admin token hash an unexpired operator login was opened with.
    pub async fn admin_session(&self, token_hash: &str) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT admin_token_hash FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2"
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(p)
        .await)?)
    }

    /// Ends one operator login.
    pub async fn admin_session_delete(&self, token_hash: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Adds one failure to each of `keys` in one statement and returns the counts with it. A
    /// count whose window began at or before `stale_before` starts again at one from `now`.
    /// Concurrent calls on one key are serialised by the row, so each sees its own number.
    pub async fn login_failures_add(
        &self,
        keys: &[String],
        now: i64,
        stale_before: i64,
    ) -> DbResult<Vec<FailureRow>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<String> = (0..keys.len()).map(|i| format!("(${}, 1, $1)", i + 3)).collect();
        let sql = format!(
            "INSERT INTO login_failures (key, failures, since) VALUES {} \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_failures.since <= $2 THEN 1 ELSE login_failures.failures + 1 END, \
               since = CASE WHEN login_failures.since <= $2 THEN excluded.since ELSE login_failures.since END \
             RETURNING key, failures, since",
            rows.join(", ")
        );
        Ok(writer!(self, |p| {
            let mut q = sqlx::query_as::<_, FailureRow>(&sql).bind(now).bind(stale_before);
            for key in keys {
                q = q.bind(key);
            }
            q.fetch_all(p).await
        })?)
    }

    /// Takes one failure back from each of `keys` (never below zero).
    pub async fn login_failures_take_back(&self, keys: &[String]) -> DbResult<()> {
        for key in keys {
            writer!(self, |p| sqlx::query(
                "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0"
            )
            .bind(key)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Forgets the count of `key`.
    pub async fn login_failures_forget(&self, key: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes counts whose window began at or before `stale_before`.
    pub async fn login_failures_prune(&self, stale_before: i64) -> DbResult<u64> {
        Ok(writer!(self, |p| sqlx::query("DELETE FROM login_failures WHERE since <= $1")
            .bind(stale_before)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Takes what each process spent from the owners' shared buckets and returns every
    /// named owner's level now (a missing bucket is full), with the number of live gateway
    /// processes: one statement on PostgreSQL. A bucket never goes below `-per_minute`. A
    /// SQLite database has one process and no shared buckets, so it is refused there.
    pub async fn rate_publish(&self, spent: &[RateSpent]) -> DbResult<RateLevels> {
        let pool = self.postgres_pool().ok_or_else(not_shared)?;
        if spent.is_empty() {
            let sql = format!("SELECT COUNT(*) FROM gateway_nodes WHERE expires_at > {PG_NOW}");
            let processes: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await?;
            return Ok(RateLevels { levels: Vec::new(), processes });
        }
        let owners: Vec<&str> = spent.iter().map(|s| s.owner.as_str()).collect();
        let taken: Vec<i64> = spent.iter().map(|s| s.spent).collect();
        let per_minute: Vec<f64> = spent.iter().map(|s| s.per_minute).collect();
        // A new row is a full bucket minus what was spent. An existing one refills for the time
        // since it was last touched (capped at full), then loses what was spent; `excluded`
        // carries the allowance and, as `per_minute - tokens`, what was spent. `taken` holds
        // the new levels of the rows this statement changed; the outer query's read of
        // `rate_buckets` sees the rows from before it, which are current for the rest.
        let sql = format!(
            "WITH batch AS ( \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::float8[]) AS b(owner, spent, per_minute) \
             ), clock AS (SELECT {PG_NOW} AS now), taken AS ( \
                 INSERT INTO rate_buckets (owner, tokens, per_minute, updated_at) \
                 SELECT owner, per_minute - spent, per_minute, clock.now \
                 FROM batch, clock WHERE spent > 0 \
                 ON CONFLICT (owner) DO UPDATE SET \
                     tokens = GREATEST( \
                         LEAST(excluded.per_minute, rate_buckets.tokens \
                             + GREATEST(excluded.updated_at - rate_buckets.updated_at, 0) \
                               * excluded.per_minute / 60000.0) \
                         - (excluded.per_minute - excluded.tokens), \
                         -excluded.per_minute), \
                     per_minute = excluded.per_minute, \
                     updated_at = excluded.updated_at \
                 RETURNING owner, tokens \
             ) \
             SELECT b.owner, COALESCE(t.tokens, \
                     LEAST(b.per_minute, r.tokens + GREATEST(clock.now - r.updated_at, 0) * b.per_minute / 60000.0), \
                     b.per_minute) AS level, \
                 (SELECT COUNT(*) FROM gateway_nodes WHERE expires_at > clock.now) AS processes \
             FROM batch b CROSS JOIN clock \
             LEFT JOIN taken t ON t.owner = b.owner \
             LEFT JOIN rate_buckets r ON r.owner = b.owner"
        );
        let rows: Vec<(String, f64, i64)> =
            sqlx::query_as(&sql).bind(&owners).bind(&taken).bind(&per_minute).fetch_all(pool).await?;
        let processes = rows.first().map_or(0, |r| r.2);
        Ok(RateLevels { levels: rows.into_iter().map(|(o, l, _)| (o, l)).collect(), processes })
    }

    /// Deletes the buckets nobody spent from in `idle_ms` (full again by then).
    pub async fn rate_prune(&self, idle_ms: i64) -> DbResult<u64> {
        let pool = self.postgres_pool().ok_or_else(not_shared)?;
        let sql = format!("DELETE FROM rate_buckets WHERE updated_at < {PG_NOW} - $1");
        Ok(sqlx::query(&sql).bind(idle_ms).execute(pool).await?.rows_affected())
    }
}

/// PostgreSQL's clock in Unix milliseconds, as an SQL expression.
const PG_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

fn not_shared() -> DbError {
    DbError::Sqlx(sqlx::Error::Configuration("request counts are shared on PostgreSQL only".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_add_up_per_key_and_start_again_after_the_window() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let keys = vec!["a".to_string(), "b".to_string()];
        let first = db.login_failures_add(&keys, 1_000, 0).await.unwrap();
        assert!(first.iter().all(|r| r.failures == 1 && r.since == 1_000), "{first:?}");
        let second = db.login_failures_add(&keys[..1], 2_000, 0).await.unwrap();
        assert_eq!(second, vec![FailureRow { key: "a".into(), failures: 2, since: 1_000 }]);
        // The window of "a" began at 1 000; with everything up to 1 000 stale it starts again.
        let fresh = db.login_failures_add(&keys[..1], 5_000, 1_000).await.unwrap();
        assert_eq!(fresh, vec![FailureRow { key: "a".into(), failures: 1, since: 5_000 }]);
        db.login_failures_take_back(&keys).await.unwrap();
        db.login_failures_take_back(&keys).await.unwrap();
        let back = db.login_failures_add(&keys, 6_000, 1_000).await.unwrap();
        assert!(back.iter().all(|r| r.failures == 1), "never below zero: {back:?}");
        db.login_failures_forget("a").await.unwrap();
        assert_eq!(db.login_failures_prune(1_000).await.unwrap(), 0, "b's window began at 1 000: kept");
        assert_eq!(db.login_failures_prune(1_000_000).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_operator_login_reads_back_until_it_expires_or_ends() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        db.admin_session_create("live", "admin-hash", now_ms() + 60_000).await.unwrap();
        db.admin_session_create("old", "admin-hash", now_ms() - 1).await.unwrap();
        assert_eq!(db.admin_session("live").await.unwrap().as_deref(), Some("admin-hash"));
        assert_eq!(db.admin_session("old").await.unwrap(), None);
        db.admin_session_delete("live").await.unwrap();
        assert_eq!(db.admin_session("live").await.unwrap(), None);
    }

    #[tokio::test]
    async fn request_counts_are_not_shared_on_sqlite() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        assert!(db.rate_publish(&[]).await.is_err());
    }
}
