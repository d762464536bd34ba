//! What each device learned about LIDs (`lid_mappings`): the phone number behind a LID, and
//! the history rewritten to that number once it is known. Every query names the tenant and
//! the device.

use super::{now_ms, reader, writer, Db, DbResult};

/// One LID and the phone number (digits) behind it, as one device knows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LidMappingRow {
    pub device_id: i64,
    /// The LID JID, `<digits>@lid`.
    pub lid: String,
    /// E.164 digits without `+`.
    pub phone: String,
    pub updated_at: i64,
}

impl Db {
    /// Records that `lid` (`…@lid`) is `phone` (digits) for the tenant's device, and gives the
    /// device's messages stored under the LID that number: an inbound message whose sender is
    /// the LID gets the number as sender, and a direct chat named by the LID gets the number's
    /// JID. One transaction. `true` when the mapping is new or changed (nothing else to tell
    /// otherwise); `false` also when the tenant has no such device.
    pub async fn learn_lid(&self, tenant: i64, device_id: i64, lid: &str, phone: &str) -> DbResult<bool> {
        let now = now_ms();
        let phone_jid = format!("{phone}@s.whatsapp.net");
        let merge = super::chats::merge_chat_sql(self.dialect());
        Ok(writer!(self, |p| {
            let mut tx = p.begin().await?;
            // Only for a device of this tenant (the foreign key alone would accept any device).
            let learned = sqlx::query(
                "INSERT INTO lid_mappings (device_id, lid, phone, updated_at) \
                 SELECT $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
                 ON CONFLICT (device_id, lid) DO UPDATE SET phone = excluded.phone, updated_at = excluded.updated_at \
                 WHERE lid_mappings.phone <> excluded.phone",
            )
            .bind(tenant)
            .bind(device_id)
            .bind(lid)
            .bind(phone)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            // Also when nothing new was learned: a message stored while the mapping was being
            // written still gets the number.
            {
                sqlx::query(
                    "UPDATE messages SET sender = $4, updated_at = $5 \
                     WHERE device_id = $2 AND sender_lid = $3 AND sender = $3 AND user_id = $1 AND direction = 'in'",
                )
                .bind(tenant)
                .bind(device_id)
                .bind(lid)
                .bind(phone)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE messages SET chat = $4, updated_at = $5 \
                     WHERE user_id = $1 AND chat = $3 AND device_id = $2 AND is_group = $6",
                )
                .bind(tenant)
                .bind(device_id)
                .bind(lid)
                .bind(&phone_jid)
                .bind(now)
                .bind(false)
                .execute(&mut *tx)
                .await?;
                for sql in &merge {
                    sqlx::query(sql).bind(device_id).bind(lid).bind(&phone_jid).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            learned
        }))
    }

    /// The phone number behind `lid` for the tenant's device.
    pub async fn lid_mapping(
        &self,
        tenant: i64,
        device_id: i64,
        lid: &str,
    ) -> DbResult<Option<LidMappingRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT l.device_id, l.lid, l.phone, l.updated_at FROM lid_mappings l \
             JOIN devices d ON d.id = l.device_id WHERE d.user_id = $1 AND l.device_id = $2 AND l.lid = $3"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(lid)
        .fetch_optional(p)
        .await)?)
    }

    /// The LIDs the tenant's device knows for `phone` (digits), newest first.
    pub async fn lids_of_phone(
        &self,
        tenant: i64,
        device_id: i64,
        phone: &str,
    ) -> DbResult<Vec<LidMappingRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT l.device_id, l.lid, l.phone, l.updated_at FROM lid_mappings l \
             JOIN devices d ON d.id = l.device_id WHERE d.user_id = $1 AND l.device_id = $2 AND l.phone = $3 \
             ORDER BY l.updated_at DESC, l.lid LIMIT 100"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(phone)
        .fetch_all(p)
        .await)?)
    }

    /// The phone number behind `lid` on any of the tenant's devices (the most recently
    /// learned), for history filters that name no device.
    pub async fn lid_phone_any_device(&self, tenant: i64, lid: &str) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT l.phone FROM lid_mappings l JOIN devices d ON d.id = l.device_id \
             WHERE d.user_id = $1 AND l.lid = $2 ORDER BY l.updated_at DESC LIMIT 1"
        )
        .bind(tenant)
        .bind(lid)
        .fetch_optional(p)
        .await)?)
    }
}
