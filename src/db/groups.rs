//! The groups cache (`device_groups`): per device, each group's metadata as WhatsApp last told it,
//! as JSON. Written when the device lists or reads groups and on group events; read when the
//! device is offline and for names in the chat list. Every query names the tenant.

use super::{now_ms, reader, writer, Db, DbResult};

/// One cached group: its JID, subject and metadata JSON (a `GroupInfo`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupRow {
    pub device_id: i64,
    pub jid: String,
    pub subject: String,
    pub info: String,
    pub updated_at: i64,
}

impl Db {
    /// Stores the metadata of one group of the tenant's device (replacing what was cached).
    pub async fn put_group(
        &self,
        tenant: i64,
        device_id: i64,
        jid: &str,
        subject: &str,
        info: &str,
    ) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "INSERT INTO device_groups (device_id, jid, subject, info, updated_at) \
             SELECT $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
             ON CONFLICT (device_id, jid) DO UPDATE SET subject = excluded.subject, info = excluded.info, \
             updated_at = excluded.updated_at"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(jid)
        .bind(subject)
        .bind(info)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Replaces the device's whole cache with `groups` (`(jid, subject, info)`): groups the
    /// device is no longer in go.
    pub async fn replace_groups(
        &self,
        tenant: i64,
        device_id: i64,
        groups: &[(String, String, String)],
    ) -> DbResult<()> {
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let owned: Option<i64> =
                sqlx::query_scalar("SELECT id FROM devices WHERE id = $1 AND user_id = $2")
                    .bind(device_id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owned.is_some() {
                sqlx::query("DELETE FROM device_groups WHERE device_id = $1")
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                for (jid, subject, info) in groups {
                    // An upsert: a group event may have cached one of these since the delete
                    // (on PostgreSQL a concurrent transaction's row is not seen by it).
                    sqlx::query(
                        "INSERT INTO device_groups (device_id, jid, subject, info, updated_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (device_id, jid) DO UPDATE SET subject = excluded.subject, info = excluded.info, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(device_id)
                    .bind(jid)
                    .bind(subject)
                    .bind(info)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// One cached group of the tenant's device.
    pub async fn group(&self, tenant: i64, device_id: i64, jid: &str) -> DbResult<Option<GroupRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT g.device_id, g.jid, g.subject, g.info, g.updated_at FROM device_groups g \
             JOIN devices d ON d.id = g.device_id WHERE d.user_id = $1 AND g.device_id = $2 AND g.jid = $3"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(jid)
        .fetch_optional(p)
        .await)?)
    }

    /// The device's cached groups, by subject.
    pub async fn groups(&self, tenant: i64, device_id: i64) -> DbResult<Vec<GroupRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT g.device_id, g.jid, g.subject, g.info, g.updated_at FROM device_groups g \
             JOIN devices d ON d.id = g.device_id WHERE d.user_id = $1 AND g.device_id = $2 \
             ORDER BY g.subject, g.jid"
        )
        .bind(tenant)
        .bind(device_id)
        .fetch_all(p)
        .await)?)
    }

    /// Forgets a group of the tenant's device (it left).
    pub async fn delete_group(&self, tenant: i64, device_id: i64, jid: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "DELETE FROM device_groups WHERE device_id = $2 AND jid = $3 \
             AND EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1)"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(jid)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
