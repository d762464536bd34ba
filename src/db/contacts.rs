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
    /// The name the account saved the contact under (its full name, else its first name).
    pub saved_name: Option<String>,
    /// The first name saved with it, when the address book has one.
    pub saved_first_name: Option<String>,
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

/// The profile columns of a contact, `p` being its `contact_profiles` row (possibly absent).
const PROFILE_COLUMNS: &str =
    "p.about, p.picture_url, COALESCE(p.business, FALSE) AS business, p.business_name, \
     p.lid, COALESCE(p.blocked, FALSE) AS blocked, p.fetched_at, p.saved_name, p.saved_first_name";

/// A contact from its chat: `last_at` is unknown while the chat holds no message yet.
const FROM_CHAT: &str = "SELECT c.device_id, c.chat AS jid, c.name, \
     CASE WHEN c.last_message_id > 0 THEN c.last_at END AS last_at";

const SELECT_PROFILE: &str =
    "SELECT p.device_id, p.jid, CAST(NULL AS TEXT) AS name, CAST(NULL AS BIGINT) AS last_at";

impl Db {
    /// A page of the device's (or every device's) contacts with the total: the direct chats,
    /// the latest first, then the address-book contacts without a message (by JID). `q`: part of
    /// the number, JID, WhatsApp name or saved name, any case.
    pub async fn list_contacts(
        &self,
        tenant: i64,
        device_id: Option<i64>,
        devices: Option<&[i64]>,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ContactRow>, i64)> {
        let q = q.map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
        let (mut chat_device, mut book_device) = if device_id.is_some() {
            (" AND c.device_id = $3".to_string(), " AND b.device_id = $3".to_string())
        } else {
            (String::new(), String::new())
        };
        chat_device.push_str(&super::device_scope("c.device_id", devices, false));
        book_device.push_str(&super::device_scope("b.device_id", devices, false));
        // Both halves name the tenant; the second keeps to saved contacts whose chat has no
        // message (a chat with one is in the first half).
        let listed = format!(
            "SELECT c.device_id, c.chat AS jid, c.name, c.last_at, c.last_message_id AS ord FROM chats c \
             WHERE c.user_id = $1 AND c.is_group = $2 AND c.last_message_id > 0{chat_device} \
             UNION ALL SELECT b.device_id, b.jid, CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(0 AS BIGINT) \
             FROM contact_profiles b JOIN devices d ON d.id = b.device_id \
             WHERE d.user_id = $1 AND b.saved_name IS NOT NULL{book_device} AND NOT EXISTS \
             (SELECT 1 FROM chats e WHERE e.device_id = b.device_id AND e.chat = b.jid AND e.last_message_id > 0)"
        );
        let from = format!(
            "({listed}) x LEFT JOIN contact_profiles p ON p.device_id = x.device_id AND p.jid = x.jid"
        );
        let n = if device_id.is_some() { 3 } else { 2 };
        let cond = match q {
            Some(_) => format!(
                "WHERE (LOWER(x.jid) LIKE ${0} OR LOWER(COALESCE(x.name, '')) LIKE ${0} \
                 OR LOWER(COALESCE(p.saved_name, '')) LIKE ${0})",
                n + 1
            ),
            None => String::new(),
        };
        let n = if q.is_some() { n + 1 } else { n };
        let sql = format!(
            "SELECT x.device_id, x.jid, x.name, x.last_at, {PROFILE_COLUMNS} FROM {from} {cond} \
             ORDER BY x.ord DESC, x.jid LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let count = format!("SELECT COUNT(*) FROM {from} {cond}");
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
        let sql = format!(
            "{FROM_CHAT}, {PROFILE_COLUMNS} FROM chats c LEFT JOIN contact_profiles p \
             ON p.device_id = c.device_id AND p.jid = c.chat WHERE c.user_id = $1 AND c.device_id = $2 AND c.chat = $3"
        );
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
            "{SELECT_PROFILE}, {PROFILE_COLUMNS} FROM contact_profiles p JOIN devices d ON d.id = p.device_id \
             WHERE d.user_id = $1 AND p.device_id = $2 AND p.jid = $3"
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

    /// Stores the name the account saved a contact under (from its address book).
    pub async fn set_saved_name(
        &self,
        tenant: i64,
        device_id: i64,
        jid: &str,
        full_name: Option<&str>,
        first_name: Option<&str>,
    ) -> DbResult<()> {
        let sql = profile_upsert(&["saved_name", "saved_first_name"]);
        writer!(self, |pool| sqlx::query(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(jid)
            .bind(full_name)
            .bind(first_name)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Records that the tenant's device blocked (or unblocked) a contact.
    pub async fn set_blocked(&self, tenant: i64, device_id: i64, jid: &str, blocked: bool) -> DbResult<()> {
        let sql = profile_upsert(&["blocked"]);
        writer!(self, |pool| sqlx::query(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(jid)
            .bind(blocked)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ()))?;
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

/// Sets `columns` of a contact's profile row (created when missing) for a device of the tenant
/// (nothing for another tenant's device). Binds: `$1` tenant, `$2` device, `$3` JID, then one
/// value per column, then the time.
fn profile_upsert(columns: &[&str]) -> String {
    let values: Vec<String> = (0..columns.len()).map(|i| format!("${}", i + 4)).collect();
    let now = columns.len() + 4;
    let updates: String = columns.iter().map(|c| format!("{c} = excluded.{c}, ")).collect();
    format!(
        "INSERT INTO contact_profiles (device_id, jid, {cols}, updated_at) \
         SELECT $2, $3, {values}, ${now} WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
         ON CONFLICT (device_id, jid) DO UPDATE SET {updates}updated_at = excluded.updated_at",
        cols = columns.join(", "),
        values = values.join(", "),
    )
}
