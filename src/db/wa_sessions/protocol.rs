//! Protocol bookkeeping: sender-key distribution per group device, LID <-> phone number
//! mappings, base keys of retried sessions and the device registry of contacts.

use super::{exec_chunks, last_per_key, params, session_write, values};
use crate::db::{reader, Db, DbResult};

/// A LID <-> phone number mapping to store.
#[derive(Debug, Clone, Copy)]
pub struct WaLidMapping<'a> {
    pub lid: &'a str,
    pub phone_number: &'a str,
    pub created_at: i64,
    pub updated_at: i64,
    pub learning_source: &'a str,
}

/// A stored LID <-> phone number mapping.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WaLidMappingRow {
    pub lid: String,
    pub phone_number: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub learning_source: String,
}

const LID_COLUMNS: &str = "lid, phone_number, created_at, updated_at, learning_source";

impl Db {
    /// `(device_jid, has_key)` for every tracked device of a group, by device JID.
    pub async fn wa_sender_key_devices(
        &self,
        device_id: i64,
        group_jid: &str,
    ) -> DbResult<Vec<(String, bool)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT device_jid, has_key FROM wa_sender_key_devices \
             WHERE device_id = $1 AND group_jid = $2 ORDER BY device_jid"
        )
        .bind(device_id)
        .bind(group_jid)
        .fetch_all(p)
        .await)?)
    }

    /// Sets `(device_jid, has_key)` for devices of a group, in one transaction.
    pub async fn wa_set_sender_key_devices(
        &self,
        device_id: i64,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> DbResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = last_per_key(entries, |(jid, _)| *jid);
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                entries,
                2,
                |n| format!(
                    "INSERT INTO wa_sender_key_devices (device_id, group_jid, device_jid, has_key) \
                     VALUES {} ON CONFLICT (device_id, group_jid, device_jid) \
                     DO UPDATE SET has_key = excluded.has_key",
                    values(n, "$1, $2", 2, 3)
                ),
                [device_id, group_jid],
                |q, (jid, has_key)| q.bind(*jid).bind(*has_key)
            );
        });
        Ok(())
    }

    /// Forgets the sender-key status of every device of one group.
    pub async fn wa_clear_sender_key_devices(&self, device_id: i64, group_jid: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_sender_key_devices WHERE device_id = $1 AND group_jid = $2"
        )
        .bind(device_id)
        .bind(group_jid)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Forgets the sender-key status of these device JIDs in every group, in one transaction.
    pub async fn wa_delete_sender_key_device_rows(
        &self,
        device_id: i64,
        device_jids: &[&str],
    ) -> DbResult<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                device_jids,
                1,
                |n| format!(
                    "DELETE FROM wa_sender_key_devices WHERE device_id = $1 AND device_jid IN ({})",
                    params(n, 2)
                ),
                [device_id],
                |q, jid| q.bind(*jid)
            );
        });
        Ok(())
    }

    /// Forgets the sender-key status of every device in every group.
    pub async fn wa_clear_all_sender_key_devices(&self, device_id: i64) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query("DELETE FROM wa_sender_key_devices WHERE device_id = $1")
            .bind(device_id)
            .execute(&mut *tx)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn wa_lid_mapping(&self, device_id: i64, lid: &str) -> DbResult<Option<WaLidMappingRow>> {
        let sql = format!("SELECT {LID_COLUMNS} FROM wa_lid_pn_mappings WHERE device_id = $1 AND lid = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(device_id).bind(lid).fetch_optional(p).await)?)
    }

    /// The mapping written last among those that map a LID to `phone_number`.
    pub async fn wa_pn_mapping(
        &self,
        device_id: i64,
        phone_number: &str,
    ) -> DbResult<Option<WaLidMappingRow>> {
        let sql = format!(
            "SELECT {LID_COLUMNS} FROM wa_lid_pn_mappings WHERE device_id = $1 AND phone_number = $2 \
             ORDER BY seq DESC LIMIT 1"
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql)
            .bind(device_id)
            .bind(phone_number)
            .fetch_optional(p)
            .await)?)
    }

    /// Every mapping of the device, by LID.
    pub async fn wa_lid_mappings(&self, device_id: i64) -> DbResult<Vec<WaLidMappingRow>> {
        let sql = format!("SELECT {LID_COLUMNS} FROM wa_lid_pn_mappings WHERE device_id = $1 ORDER BY lid");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(device_id).fetch_all(p).await)?)
    }

    /// Stores mappings (replacing those of the same LIDs) in order, in one transaction: a later
    /// mapping of the same phone number wins [`Db::wa_pn_mapping`].
    pub async fn wa_put_lid_mappings(&self, device_id: i64, rows: &[WaLidMapping<'_>]) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_per_key(rows, |m| m.lid);
        session_write!(self, |tx| {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM wa_lid_pn_mappings WHERE device_id = $1")
                    .bind(device_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let first = last.unwrap_or(0) + 1;
            let numbered: Vec<(i64, &WaLidMapping<'_>)> =
                rows.iter().enumerate().map(|(i, m)| (first + i as i64, *m)).collect();
            exec_chunks!(
                tx,
                numbered,
                6,
                |n| format!(
                    "INSERT INTO wa_lid_pn_mappings (device_id, {LID_COLUMNS}, seq) VALUES {} \
                     ON CONFLICT (device_id, lid) DO UPDATE SET phone_number = excluded.phone_number, \
                     created_at = excluded.created_at, updated_at = excluded.updated_at, \
                     learning_source = excluded.learning_source, seq = excluded.seq",
                    values(n, "$1", 6, 2)
                ),
                [device_id],
                |q, (seq, m)| q
                    .bind(m.lid)
                    .bind(m.phone_number)
                    .bind(m.created_at)
                    .bind(m.updated_at)
                    .bind(m.learning_source)
                    .bind(*seq)
            );
        });
        Ok(())
    }

    pub async fn wa_put_base_key(
        &self,
        device_id: i64,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_base_keys (device_id, address, message_id, base_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id, address, message_id) DO UPDATE SET base_key = excluded.base_key"
        )
        .bind(device_id)
        .bind(address)
        .bind(message_id)
        .bind(base_key)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn wa_base_key(
        &self,
        device_id: i64,
        address: &str,
        message_id: &str,
    ) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT base_key FROM wa_base_keys WHERE device_id = $1 AND address = $2 AND message_id = $3"
        )
        .bind(device_id)
        .bind(address)
        .bind(message_id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn wa_delete_base_key(&self, device_id: i64, address: &str, message_id: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_base_keys WHERE device_id = $1 AND address = $2 AND message_id = $3"
        )
        .bind(device_id)
        .bind(address)
        .bind(message_id)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The device list (JSON) known for a contact's user part.
    pub async fn wa_device_list(&self, device_id: i64, user: &str) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT record FROM wa_device_registry WHERE device_id = $1 AND user_part = $2"
        )
        .bind(device_id)
        .bind(user)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores `(user, record JSON)` device lists, replacing existing ones, in one transaction.
    pub async fn wa_put_device_lists(&self, device_id: i64, rows: &[(&str, &str)]) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_per_key(rows, |(user, _)| *user);
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                rows,
                2,
                |n| format!(
                    "INSERT INTO wa_device_registry (device_id, user_part, record) VALUES {} \
                     ON CONFLICT (device_id, user_part) DO UPDATE SET record = excluded.record",
                    values(n, "$1", 2, 2)
                ),
                [device_id],
                |q, (user, record)| q.bind(*user).bind(*record)
            );
        });
        Ok(())
    }

    pub async fn wa_delete_device_list(&self, device_id: i64, user: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_device_registry WHERE device_id = $1 AND user_part = $2"
        )
        .bind(device_id)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }
}
