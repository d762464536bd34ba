//! `ProtocolStore`: sender-key distribution, LID <-> phone number mappings, base keys, the
//! device registry, group metadata, trusted-contact tokens, sent messages kept for retries
//! and the pending-inbound buffer of the durability hook.

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore, TcTokenEntry,
};
use whatsapp_rust::wacore::time::now_secs;

use super::{count, db_err, json_err, SqlxStore};
use crate::db::wa_sessions::{WaBlobTable, WaLidMapping, WaLidMappingRow, WaPendingInbound, WaTcTokenRow};

fn lid_entry(row: WaLidMappingRow) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: row.lid,
        phone_number: row.phone_number,
        created_at: row.created_at,
        updated_at: row.updated_at,
        learning_source: row.learning_source,
    }
}

fn lid_row(entry: &LidPnMappingEntry) -> WaLidMapping<'_> {
    WaLidMapping {
        lid: &entry.lid,
        phone_number: &entry.phone_number,
        created_at: entry.created_at,
        updated_at: entry.updated_at,
        learning_source: &entry.learning_source,
    }
}

#[async_trait]
impl ProtocolStore for SqlxStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.db.wa_sender_key_devices(self.device_id, group_jid).await.map_err(db_err)
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.writable()?.wa_set_sender_key_devices(self.device_id, group_jid, entries).await.map_err(db_err)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.writable()?.wa_clear_sender_key_devices(self.device_id, group_jid).await.map_err(db_err)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        self.writable()?.wa_delete_sender_key_device_rows(self.device_id, device_jids).await.map_err(db_err)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.writable()?.wa_clear_all_sender_key_devices(self.device_id).await.map_err(db_err)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        Ok(self.db.wa_lid_mapping(self.device_id, lid).await.map_err(db_err)?.map(lid_entry))
    }

    /// The mapping stored last among those whose LID currently maps to `phone`.
    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        Ok(self.db.wa_pn_mapping(self.device_id, phone).await.map_err(db_err)?.map(lid_entry))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.writable()?.wa_put_lid_mappings(self.device_id, &[lid_row(entry)]).await.map_err(db_err)?;
        self.report_lids(&[(&entry.lid, &entry.phone_number)]);
        Ok(())
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let rows: Vec<WaLidMapping<'_>> = entries.iter().map(lid_row).collect();
        self.writable()?.wa_put_lid_mappings(self.device_id, &rows).await.map_err(db_err)?;
        let pairs: Vec<(&str, &str)> =
            entries.iter().map(|e| (e.lid.as_str(), e.phone_number.as_str())).collect();
        self.report_lids(&pairs);
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        Ok(self
            .db
            .wa_lid_mappings(self.device_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(lid_entry)
            .collect())
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.writable()?.wa_put_base_key(self.device_id, address, message_id, base_key).await.map_err(db_err)
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let stored = self.db.wa_base_key(self.device_id, address, message_id).await.map_err(db_err)?;
        Ok(stored.is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.writable()?.wa_delete_base_key(self.device_id, address, message_id).await.map_err(db_err)
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let json = records
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(json_err)?;
        let rows: Vec<(&str, &str)> =
            records.iter().zip(&json).map(|(record, json)| (record.user.as_str(), json.as_str())).collect();
        self.writable()?.wa_put_device_lists(self.device_id, &rows).await.map_err(db_err)
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        match self.db.wa_device_list(self.device_id, user).await.map_err(db_err)? {
            Some(json) => serde_json::from_str(&json).map(Some).map_err(json_err),
            None => Ok(None),
        }
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.writable()?.wa_delete_device_list(self.device_id, user).await.map_err(db_err)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.blob(WaBlobTable::GroupMetadata, group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put_blobs(WaBlobTable::GroupMetadata, &[(group_jid, blob)]).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete_blob(WaBlobTable::GroupMetadata, group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        Ok(self.db.wa_tc_token(self.device_id, jid).await.map_err(db_err)?.map(|row| TcTokenEntry {
            token: row.token,
            token_timestamp: row.token_timestamp,
            sender_timestamp: row.sender_timestamp,
        }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let row = WaTcTokenRow {
            token: entry.token.clone(),
            token_timestamp: entry.token_timestamp,
            sender_timestamp: entry.sender_timestamp,
        };
        self.writable()?.wa_put_tc_token(self.device_id, jid, &row).await.map_err(db_err)
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.writable()?.wa_delete_tc_token(self.device_id, jid).await.map_err(db_err)
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.db.wa_tc_token_jids(self.device_id).await.map_err(db_err)
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.writable()?
            .wa_delete_expired_tc_tokens(self.device_id, token_cutoff, sender_cutoff)
            .await
            .map(count)
            .map_err(db_err)
    }

    /// One upsert: the sender time only moves forward and the token bytes stay.
    async fn touch_tc_token_sender_timestamp(&self, jid: &str, sender_timestamp: i64) -> Result<()> {
        self.writable()?.wa_touch_tc_token_sender(self.device_id, jid, sender_timestamp).await.map_err(db_err)
    }

    /// One upsert: newer-wins over a real token, a placeholder always yields, and the sender
    /// time stays.
    async fn store_received_tc_token(&self, jid: &str, token: &[u8], token_timestamp: i64) -> Result<()> {
        self.writable()?
            .wa_store_received_tc_token(self.device_id, jid, token, token_timestamp)
            .await
            .map_err(db_err)
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.writable()?
            .wa_put_sent_message(self.device_id, chat_jid, message_id, payload, now_secs())
            .await
            .map_err(db_err)
    }

    /// `DELETE … RETURNING`: a payload is handed out once.
    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.writable()?.wa_take_sent_message(self.device_id, chat_jid, message_id).await.map_err(db_err)
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.writable()?
            .wa_delete_sent_messages_before(self.device_id, cutoff_timestamp)
            .await
            .map(count)
            .map_err(db_err)
    }

    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        let row = WaPendingInbound { chat, sender, id, message };
        self.writable()?.wa_put_pending_inbound(self.device_id, &[row], now_secs()).await.map_err(db_err)
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        self.db.wa_pending_inbound(self.device_id, chat, sender, id).await.map_err(db_err)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.writable()?
            .wa_delete_pending_inbound(self.device_id, &[(chat, sender, id)])
            .await
            .map_err(db_err)
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.writable()?
            .wa_delete_pending_inbound_before(self.device_id, cutoff_timestamp)
            .await
            .map(count)
            .map_err(db_err)
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let rows: Vec<WaPendingInbound<'_>> = rows
            .iter()
            .map(|r| WaPendingInbound { chat: r.chat, sender: r.sender, id: r.id, message: r.message })
            .collect();
        self.writable()?.wa_put_pending_inbound(self.device_id, &rows, now_secs()).await.map_err(db_err)
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        let keys: Vec<(&str, &str, &str)> = keys.iter().map(|k| (k.chat, k.sender, k.id)).collect();
        self.writable()?.wa_delete_pending_inbound(self.device_id, &keys).await.map_err(db_err)
    }
}
