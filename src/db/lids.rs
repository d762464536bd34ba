//! What each device learned about LIDs (`lid_mappings`): the phone number behind a LID, and
//! the history rewritten to that number once it is known. Every query names the tenant and
//! the device.

use std::collections::HashMap;

use super::{now_ms, reader, writer, Db, DbResult};

/// Messages whose details are rewritten per query when a LID's number is learned.
const DETAILS_PAGE: i64 = 200;
/// LIDs looked up per query by [`Db::lid_phones`].
const LOOKUP_CHUNK: usize = 100;

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

/// A name the account's address book gave a LID (stored under the LID while its number was
/// unknown) moves to the number's contact: the number's row takes it unless the address book
/// named the number itself, and the LID's row forgets it, so the contact is listed once.
/// Binds: device, LID, the number's JID.
const MOVE_SAVED_NAME: [&str; 3] = [
    "UPDATE contact_profiles SET \
         saved_name = COALESCE(saved_name, (SELECT l.saved_name FROM contact_profiles l \
                                            WHERE l.device_id = $1 AND l.jid = $2)), \
         saved_first_name = COALESCE(saved_first_name, (SELECT l.saved_first_name FROM contact_profiles l \
                                                        WHERE l.device_id = $1 AND l.jid = $2)), \
         lid = COALESCE(lid, $2) \
     WHERE device_id = $1 AND jid = $3",
    "UPDATE contact_profiles SET jid = $3, lid = $2 \
     WHERE device_id = $1 AND jid = $2 \
       AND NOT EXISTS (SELECT 1 FROM contact_profiles p WHERE p.device_id = $1 AND p.jid = $3)",
    "UPDATE contact_profiles SET saved_name = NULL, saved_first_name = NULL WHERE device_id = $1 AND jid = $2",
];

impl Db {
    /// Records that `lid` (`…@lid`) is `phone` (digits) for the tenant's device, and gives the
    /// device's messages stored under the LID that number: an inbound message whose sender is
    /// the LID gets the number as sender, and a direct chat named by the LID gets the number's
    /// JID; mentions of the LID and quotes of a message it wrote name the number too (see
    /// [`crate::content::Details::resolve_lid`]). One transaction. `true` when the mapping is new or
    /// changed (nothing else to tell otherwise); `false` also when the tenant has no such
    /// device.
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
                for sql in MOVE_SAVED_NAME {
                    sqlx::query(sql).bind(device_id).bind(lid).bind(&phone_jid).execute(&mut *tx).await?;
                }
            }
            // Mentions and quoted authors that name the LID, inside the details JSON: the
            // candidates are the device's messages whose details name any LID (a partial
            // index holds just those) and contain the LID as a JSON string; each is decoded,
            // given the number and written back, a page at a time. Only a plain `<digits>@lid`
            // is looked for, so the LIKE pattern has no wildcard of its own.
            let own: Option<String> = if lid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'@') {
                sqlx::query_scalar("SELECT phone FROM devices WHERE id = $1 AND user_id = $2")
                    .bind(device_id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?
            } else {
                None
            };
            if let Some(own) = own {
                let pattern = format!("%\"{lid}\"%");
                let mut after = 0i64;
                loop {
                    let page: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT id, details FROM messages \
                         WHERE device_id = $2 AND details LIKE '%@lid%' AND details LIKE $3 AND id > $4 \
                         AND user_id = $1 ORDER BY id LIMIT $5",
                    )
                    .bind(tenant)
                    .bind(device_id)
                    .bind(&pattern)
                    .bind(after)
                    .bind(DETAILS_PAGE)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id, json) in &page {
                        // Details this version cannot read are left as they are.
                        let Ok(mut details) = serde_json::from_str::<crate::content::Details>(json) else {
                            continue;
                        };
                        if details.resolve_lid(lid, phone, &own) {
                            sqlx::query("UPDATE messages SET details = $1, updated_at = $2 WHERE id = $3")
                                .bind(details.to_json())
                                .bind(now)
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    match page.last() {
                        Some((last, _)) if page.len() as i64 == DETAILS_PAGE => after = *last,
                        _ => break,
                    }
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

    /// The phone numbers (digits) behind those of `lids` the tenant's device knows, by LID.
    pub async fn lid_phones(
        &self,
        tenant: i64,
        device_id: i64,
        lids: &[String],
    ) -> DbResult<HashMap<String, String>> {
        let mut found = HashMap::new();
        for chunk in lids.chunks(LOOKUP_CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT l.lid, l.phone FROM lid_mappings l JOIN devices d ON d.id = l.device_id \
                 WHERE d.user_id = $1 AND l.device_id = $2 AND l.lid IN ({})",
                marks.join(", ")
            );
            let rows: Vec<(String, String)> = reader!(self, |p| {
                let mut query = sqlx::query_as(&sql).bind(tenant).bind(device_id);
                for lid in chunk {
                    query = query.bind(lid);
                }
                query.fetch_all(p).await
            })?;
            found.extend(rows);
        }
        Ok(found)
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
