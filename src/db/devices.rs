//! WhatsApp devices. Tenant calls take the tenant id first; the `system_*` calls are for the
//! device supervisor and the simulator control API, which act across tenants.

use super::{insert_within_limit, now_ms, reader, writer, Db, DbError, DbResult};
use crate::resource::Resource;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub user_id: i64,
    pub phone: String,
    pub name: String,
    pub status: String,
    pub status_detail: Option<String>,
    pub jid: Option<String>,
    pub paired: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, phone, name, status, status_detail, jid, paired, created_at, updated_at";

/// A device's new live status: `paired` and `jid` change only when given.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub status: &'a str,
    pub detail: Option<&'a str>,
    pub paired: Option<bool>,
    pub jid: Option<&'a str>,
}

impl Db {
    /// Creates a device unless the tenant already has `limit` devices (`None` = unlimited; the
    /// answer is `None` at the limit). A phone number the tenant already uses is
    /// `DbError::Conflict`.
    pub async fn create_device(
        &self,
        tenant: i64,
        phone: &str,
        name: &str,
        limit: Option<i64>,
    ) -> DbResult<Option<DeviceRow>> {
        let insert = format!(
            "INSERT INTO devices (user_id, phone, name, status, created_at, updated_at) \
             VALUES ($1, $2, $3, 'disconnected', $4, $4) RETURNING {COLUMNS}"
        );
        insert_within_limit!(self, tenant, Resource::Devices, limit, |tx| {
            sqlx::query_as(&insert)
                .bind(tenant)
                .bind(phone)
                .bind(name)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match DbError::from(e) {
                    DbError::Conflict(_) => {
                        DbError::Conflict("you already have a device with this phone number".into())
                    }
                    other => other,
                })?
        })
    }

    pub async fn device(&self, tenant: i64, id: i64) -> DbResult<Option<DeviceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1 AND id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    pub async fn device_by_phone(&self, tenant: i64, phone: &str) -> DbResult<Option<DeviceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1 AND phone = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(phone).fetch_optional(p).await)?)
    }

    /// A page of the tenant's devices (of `devices` only, when given), with the total.
    pub async fn list_devices(
        &self,
        tenant: i64,
        devices: Option<&[i64]>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<DeviceRow>, i64)> {
        let scope = super::device_scope("id", devices, false);
        let sql =
            format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1{scope} ORDER BY id LIMIT $2 OFFSET $3");
        let rows =
            reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(limit).bind(offset).fetch_all(p).await)?;
        let count = format!("SELECT COUNT(*) FROM devices WHERE user_id = $1{scope}");
        let total: i64 = reader!(self, |p| sqlx::query_scalar(&count).bind(tenant).fetch_one(p).await)?;
        Ok((rows, total))
    }

    pub async fn rename_device(&self, tenant: i64, id: i64, name: &str) -> DbResult<Option<DeviceRow>> {
        let sql = format!(
            "UPDATE devices SET name = $3, updated_at = $4 WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
        );
        Ok(writer!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(id)
            .bind(name)
            .bind(now_ms())
            .fetch_optional(p)
            .await)?)
    }

    /// Deletes a device with its messages and session. False when the tenant has no such device.
    pub async fn delete_device(&self, tenant: i64, id: i64) -> DbResult<bool> {
        let n = writer!(self, |p| sqlx::query("DELETE FROM devices WHERE user_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Records a device's live status (supervisor) and queues `events` (the deliveries of its
    /// `device.status` event) in the same transaction. With a `fence` `(node, epoch)`, nothing
    /// is written unless that lease still holds the device: false then.
    pub async fn system_set_device_status(
        &self,
        id: i64,
        change: StatusChange<'_>,
        fence: Option<(&str, i64)>,
        events: &[super::webhooks::NewDelivery],
    ) -> DbResult<bool> {
        let StatusChange { status, detail, paired, jid } = change;
        let (node, epoch) = fence.map_or((None, None), |(n, e)| (Some(n), Some(e)));
        let fenced = super::cluster::fence_sql(self.dialect(), "$1", "$7", "$8");
        let sql = format!(
            "UPDATE devices SET status = $2, status_detail = $3, paired = COALESCE($4, paired), \
             jid = COALESCE($5, jid), updated_at = $6 WHERE id = $1 AND ($7 IS NULL OR {fenced})"
        );
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let written = sqlx::query(&sql)
                .bind(id)
                .bind(status)
                .bind(detail)
                .bind(paired)
                .bind(jid)
                .bind(now)
                .bind(node)
                .bind(epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if written != 1 {
                return Ok(false);
            }
            super::webhooks::deliveries::insert_deliveries!(tx, events, now);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Paired devices, oldest first.
    pub async fn system_paired_devices(&self) -> DbResult<Vec<DeviceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE paired = $1 ORDER BY id");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(true).fetch_all(p).await)?)
    }

    /// A device by id whatever its tenant (supervisor, simulator control).
    pub async fn system_device(&self, id: i64) -> DbResult<Option<DeviceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
    }

    /// Devices with this phone number across tenants (simulator control).
    pub async fn system_devices_by_phone(&self, phone: &str) -> DbResult<Vec<DeviceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE phone = $1 ORDER BY id");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(phone).fetch_all(p).await)?)
    }
}
