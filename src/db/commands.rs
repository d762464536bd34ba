//! Commands for a device whose session runs in another gateway process (`device_commands`):
//! the asking process stores one, the holder of the device's lease takes it (fenced by the
//! lease's epoch), does it and stores the answer.

use super::cluster::fence_sql;
use super::{reader, writer, Db, DbResult};

/// How long a command waits for its holder before nobody takes it any more (milliseconds of
/// the database's clock): an answer nobody waits for is not worth a session's work.
const COMMAND_TTL_MS: i64 = 60_000;

/// A command taken for running: its id, device and JSON.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CommandRow {
    pub id: i64,
    pub device_id: i64,
    pub command: String,
}

/// Where a command stands: `pending`, `running`, `done` or `failed`, with the answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CommandState {
    pub status: String,
    pub result: Option<String>,
}

impl Db {
    /// Stores a command for the device's holder; returns its id.
    pub async fn insert_command(&self, device_id: i64, command: &str) -> DbResult<i64> {
        let now = super::cluster::now_sql(self.dialect());
        let sql = format!(
            "INSERT INTO device_commands (device_id, command, created_at) VALUES ($1, $2, {now}) RETURNING id"
        );
        Ok(writer!(self, |p| sqlx::query_scalar(&sql).bind(device_id).bind(command).fetch_one(p).await)?)
    }

    /// The state of a command.
    pub async fn command_state(&self, id: i64) -> DbResult<Option<CommandState>> {
        Ok(reader!(self, |p| sqlx::query_as("SELECT status, result FROM device_commands WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Takes the device's oldest pending command under the lease `(node, epoch)`, if the
    /// lease is valid and the command is recent enough to be waited for.
    pub async fn take_command(&self, device_id: i64, node: &str, epoch: i64) -> DbResult<Option<CommandRow>> {
        let now = super::cluster::now_sql(self.dialect());
        let fence = fence_sql(self.dialect(), "$1", "$2", "$3");
        let sql = format!(
            "UPDATE device_commands SET status = 'running' WHERE id = ( \
                 SELECT id FROM device_commands WHERE device_id = $1 AND status = 'pending' \
                 AND created_at > {now} - $4 ORDER BY id LIMIT 1) \
             AND status = 'pending' AND {fence} RETURNING id, device_id, command"
        );
        Ok(writer!(self, |p| sqlx::query_as(&sql)
            .bind(device_id)
            .bind(node)
            .bind(epoch)
            .bind(COMMAND_TTL_MS)
            .fetch_optional(p)
            .await)?)
    }

    /// Stores a command's answer: `done` with the result or `failed` with the error (JSON).
    pub async fn finish_command(&self, id: i64, ok: bool, result: &str) -> DbResult<()> {
        let now = super::cluster::now_sql(self.dialect());
        let sql =
            format!("UPDATE device_commands SET status = $2, result = $3, finished_at = {now} WHERE id = $1");
        writer!(self, |p| sqlx::query(&sql)
            .bind(id)
            .bind(if ok { "done" } else { "failed" })
            .bind(result)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes commands finished or abandoned long ago; returns how many.
    pub async fn forget_old_commands(&self) -> DbResult<u64> {
        let now = super::cluster::now_sql(self.dialect());
        let sql = format!("DELETE FROM device_commands WHERE created_at < {now} - $1");
        Ok(writer!(self, |p| sqlx::query(&sql)
            .bind(10 * COMMAND_TTL_MS)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// The devices held by `node` with pending commands (the poll that covers lost wake-ups).
    pub async fn devices_with_commands(&self, node: &str) -> DbResult<Vec<i64>> {
        let now = super::cluster::now_sql(self.dialect());
        let sql = format!(
            "SELECT DISTINCT c.device_id FROM device_commands c JOIN device_leases l ON l.device_id = c.device_id \
             WHERE l.node_id = $1 AND c.status = 'pending' AND c.created_at > {now} - $2"
        );
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(node).bind(COMMAND_TTL_MS).fetch_all(p).await)?)
    }
}
