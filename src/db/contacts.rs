//! Contacts: the people a device has direct chats with (from `chats`), with what the device
//! learned about them (`contact_profiles`: WhatsApp's profile, fetched on demand, and whether
//! the device blocked them) and the LID behind their number (`lid_mappings`). Every query names
//! the tenant.

use super::{now_ms, reader, writer, Db, DbResult};

/// One contact of a device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactRow {
    pub device_id: i64,
    /// The contact's user JID (`…@s.whatsapp.net`), or its LID (`…@lid`) while the number is
    /// unknown.
    pub jid: String,
    /// The WhatsApp name from the contact's latest message.
    pub name: Option<String>,
    /// When the latest message of the chat was stored; `None` for a contact without a chat.
    pub last_at: Option<i64>,
    pub about: Option<String>,
    pub picture_url: Option<String>,
    pub business: bool,
    pub business_name: Option<String>,
    /// The LID the profile told (the mapping table is read separately).
    pub lid: Option<String>,
    pub blocked: bool,
    pub fetched_at: Option<i64>,
}

/// A profile to store.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub about: Option<String>,
    pub picture_url: Option<String>,
    pub business: bool,
    pub business_name: Option<String>,
    pub lid: Option<String>,
}

const SELECT: &str = "SELECT c.device_id, c.chat AS jid, c.name, c.last_at, p.about, p.picture_url, \
     COALESCE(p.business, FALSE) AS business, p.business_name, p.lid, COALESCE(p.blocked, FALSE) AS blocked, \
     p.fetched_at FROM chats c LEFT JOIN contact_profiles p ON p.device_id = c.device_id AND p.jid = c.chat";

const SELECT_PROFILE: &str = "SELECT p.device_id, p.jid, CAST(NULL AS TEXT) AS name, CAST(NULL AS BIGINT) AS last_at, p.about, p.picture_url, \
     p.business, p.business_name, p.lid, p.blocked, p.fetched_at FROM contact_profiles p";

impl Db {
    /// A page of the device's (or every device's) contacts, the latest chat first, with the
    /// total. `q`: part of the number, JID or name, any case.
    pub async fn list_contacts(
        &self,
        tenant: i64,
        device_id: Option<i64>,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ContactRow>, i64)> {
        let q = q.map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
        let mut cond = String::from("WHERE c.user_id = $1 AND c.is_group = $2");
        let mut n = 2;
        if device_id.is_some() {
            n += 1;
            cond.push_str(&format!(" AND c.device_id = ${n}"));
        }
        if q.is_some() {
            n += 1;
            cond.push_str(&format!(
                " AND (LOWER(c.chat) LIKE ${n} OR LOWER(COALESCE(c.name, '')) LIKE ${n})"
            ));
        }
        let sql =
            format!("{SELECT} {cond} ORDER BY c.last_message_id DESC LIMIT ${} OFFSET ${}", n + 1, n + 2);
        let count = format!("SELECT COUNT(*) FROM chats c {cond}");
        Ok(reader!(self, |p| {
            let mut page = sqlx::query_as(&sql).bind(tenant).bind(false);
            let mut counted = sqlx::query_scalar(&count).bind(tenant).bind(false);
            if let Some(d) = device_id {
                page = page.bind(d);
                counted = counted.bind(d);
            }
            if let Some(q) = &q {
                page = page.bind(q.clone());
                counted = counted.bind(q.clone());
            }
            let rows: Vec<ContactRow> = page.bind(limit).bind(offset).fetch_all(p).await?;
            let total: i64 = counted.fetch_one(p).await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?)
    }

    /// One contact of the tenant's device: from its chat when there is one, else from what was
    /// stored about it (a profile read or a block without a chat).
    pub async fn contact(&self, tenant: i64, device_id: i64, jid: &str) -> DbResult<Option<ContactRow>> {
        let sql = format!("{SELECT} WHERE c.user_id = $1 AND c.device_id = $2 AND c.chat = $3");
        let found: Option<ContactRow> = reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(jid)
            .fetch_optional(p)
            .await)?;
        if found.is_some() {
            return Ok(found);
        }
        let sql = format!(
            "{SELECT_PROFILE} JOIN devices d ON d.id = p.device_id WHERE d.user_id = $1 AND p.device_id = $2 AND p.jid = $3"
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(jid)
            .fetch_optional(p)
            .await)?)
    }

    /// Stores the profile WhatsApp showed for a contact of the tenant's device.
    pub async fn put_profile(
        &self,
        tenant: i64,
        device_id: i64,
        jid: &str,
        p: &ProfileUpdate,
    ) -> DbResult<()> {
        let now = now_ms();
        writer!(self, |pool| {
            sqlx::query(
            "INSERT INTO contact_profiles (device_id, jid, about, picture_url, business, business_name, lid, \
             fetched_at, updated_at) \
             SELECT $2, $3, $4, $5, $6, $7, $8, $9, $9 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
             ON CONFLICT (device_id, jid) DO UPDATE SET about = excluded.about, picture_url = excluded.picture_url, \
             business = excluded.business, business_name = excluded.business_name, lid = excluded.lid, \
             fetched_at = excluded.fetched_at, updated_at = excluded.updated_at"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(jid)
        .bind(&p.about)
        .bind(&p.picture_url)
        .bind(p.business)
        .bind(&p.business_name)
        .bind(&p.lid)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Records that the tenant's device blocked (or unblocked) a contact.
    pub async fn set_blocked(&self, tenant: i64, device_id: i64, jid: &str, blocked: bool) -> DbResult<()> {
        writer!(self, |pool| {
            sqlx::query(
            "INSERT INTO contact_profiles (device_id, jid, blocked, updated_at) \
             SELECT $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
             ON CONFLICT (device_id, jid) DO UPDATE SET blocked = excluded.blocked, updated_at = excluded.updated_at"
        )
        .bind(tenant)
        .bind(device_id)
        .bind(jid)
        .bind(blocked)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// The LIDs of these numbers (digits) as the tenant's device knows them: `(phone, lid)`.
    pub async fn lids_of(
        &self,
        tenant: i64,
        device_id: i64,
        phones: &[String],
    ) -> DbResult<Vec<(String, String)>> {
        let phones: Vec<&String> = phones.iter().filter(|p| p.bytes().all(|b| b.is_ascii_digit())).collect();
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        let list = phones.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT l.phone, l.lid FROM lid_mappings l JOIN devices d ON d.id = l.device_id \
             WHERE d.user_id = $1 AND l.device_id = $2 AND l.phone IN ({list})"
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(device_id).fetch_all(p).await)?)
    }
}
