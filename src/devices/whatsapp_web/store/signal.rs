//! `SignalStore`: identities, sessions, pre-keys, signed pre-keys and sender keys.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::{db_err, to_u32, SqlxStore};
use crate::db::wa_sessions::WaBlobTable;

/// `(key, bytes)` rows borrowed from the library's batch shape.
fn blob_rows<V: AsRef<[u8]>>(rows: &[(Arc<str>, V)]) -> Vec<(&str, &[u8])> {
    rows.iter().map(|(key, value)| (key.as_ref(), value.as_ref())).collect()
}

impl SqlxStore {
    pub(super) async fn blob(&self, table: WaBlobTable, key: &str) -> Result<Option<Vec<u8>>> {
        self.db.wa_blob(table, self.device_id, key).await.map_err(db_err)
    }

    pub(super) async fn put_blobs(&self, table: WaBlobTable, rows: &[(&str, &[u8])]) -> Result<()> {
        self.writable()?.wa_put_blobs(table, self.device_id, rows).await.map_err(db_err)
    }

    pub(super) async fn delete_blob(&self, table: WaBlobTable, key: &str) -> Result<()> {
        self.writable()?.wa_delete_blob(table, self.device_id, key).await.map_err(db_err)
    }
}

#[async_trait]
impl SignalStore for SqlxStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_blobs(WaBlobTable::Identities, &[(address, &key[..])]).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.put_blobs(WaBlobTable::Identities, &blob_rows(identities)).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let Some(key) = self.blob(WaBlobTable::Identities, address).await? else {
            return Ok(None);
        };
        let len = key.len();
        key.try_into().map(Some).map_err(|_| {
            StoreError::Validation(format!("stored identity key of {address} has {len} bytes, not 32"))
        })
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete_blob(WaBlobTable::Identities, address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.blob(WaBlobTable::SignalSessions, address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_blobs(WaBlobTable::SignalSessions, &[(address, session)]).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_blobs(WaBlobTable::SignalSessions, &blob_rows(sessions)).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete_blob(WaBlobTable::SignalSessions, address).await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.db.wa_blob_exists(WaBlobTable::SignalSessions, self.device_id, address).await.map_err(db_err)
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        self.db.wa_has_signal_state_for_user(self.device_id, user).await.map_err(db_err)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.writable()?
            .wa_put_prekeys(self.device_id, &[(i64::from(id), record)], uploaded)
            .await
            .map_err(db_err)
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let rows: Vec<(i64, &[u8])> =
            keys.iter().map(|(id, record)| (i64::from(*id), record.as_ref())).collect();
        self.writable()?.wa_put_prekeys(self.device_id, &rows, uploaded).await.map_err(db_err)
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.db.wa_prekey(self.device_id, i64::from(id)).await.map_err(db_err)?.map(Bytes::from))
    }

    /// In the order of `ids`, leaving out the ids that are not stored.
    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let wanted: Vec<i64> = ids.iter().map(|id| i64::from(*id)).collect();
        let found: HashMap<i64, Bytes> = self
            .db
            .wa_prekeys(self.device_id, &wanted)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(id, record)| (id, Bytes::from(record)))
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| found.get(&i64::from(*id)).map(|record| (*id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let ids: Vec<i64> = ids.iter().map(|id| i64::from(*id)).collect();
        self.writable()?.wa_mark_prekeys_uploaded(self.device_id, &ids).await.map_err(db_err)
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.writable()?.wa_delete_prekey(self.device_id, i64::from(id)).await.map_err(db_err)
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let max = self.db.wa_max_prekey_id(self.device_id).await.map_err(db_err)?;
        to_u32(max, "pre-key id")
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.writable()?.wa_put_signed_prekey(self.device_id, i64::from(id), record).await.map_err(db_err)
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.db.wa_signed_prekey(self.device_id, i64::from(id)).await.map_err(db_err)
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        self.db
            .wa_signed_prekeys(self.device_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(id, record)| Ok((to_u32(id, "signed pre-key id")?, record)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.writable()?.wa_delete_signed_prekey(self.device_id, i64::from(id)).await.map_err(db_err)
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_blobs(WaBlobTable::SenderKeys, &[(address, record)]).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_blobs(WaBlobTable::SenderKeys, &blob_rows(sender_keys)).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.blob(WaBlobTable::SenderKeys, address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete_blob(WaBlobTable::SenderKeys, address).await
    }
}
