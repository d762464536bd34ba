//! `AppSyncStore`: app-state sync keys, collection versions and mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{db_err, json_err, SqlxStore};
use crate::db::wa_sessions::WaSyncKeyRow;

#[async_trait]
impl AppSyncStore for SqlxStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        Ok(self.db.wa_sync_key(self.device_id, key_id).await.map_err(db_err)?.map(|row| AppStateSyncKey {
            key_data: row.key_data,
            fingerprint: row.fingerprint,
            timestamp: row.key_timestamp,
        }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let row = WaSyncKeyRow {
            key_data: key.key_data,
            fingerprint: key.fingerprint,
            key_timestamp: key.timestamp,
        };
        self.writable()?.wa_put_sync_key(self.device_id, key_id, &row).await.map_err(db_err)
    }

    /// The stored state of a collection, or the empty state when none is stored.
    async fn get_version(&self, name: &str) -> Result<HashState> {
        match self.db.wa_app_state_version(self.device_id, name).await.map_err(db_err)? {
            Some(json) => serde_json::from_str(&json).map_err(json_err),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let json = serde_json::to_string(&state).map_err(json_err)?;
        self.writable()?.wa_put_app_state_version(self.device_id, name, &json).await.map_err(db_err)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Validation(format!("app-state version {version} is out of range")))?;
        let macs: Vec<(&[u8], &[u8])> =
            mutations.iter().map(|m| (m.index_mac.as_slice(), m.value_mac.as_slice())).collect();
        self.writable()?.wa_put_mutation_macs(self.device_id, name, version, &macs).await.map_err(db_err)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.wa_mutation_mac(self.device_id, name, index_mac).await.map_err(db_err)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let wanted: Vec<&[u8]> = index_macs.iter().map(|m| m.as_slice()).collect();
        let rows = self.db.wa_mutation_macs(self.device_id, name, &wanted).await.map_err(db_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|(index, value)| Some((<[u8; 32]>::try_from(index.as_slice()).ok()?, value)))
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let macs: Vec<&[u8]> = index_macs.iter().map(Vec::as_slice).collect();
        self.writable()?.wa_delete_mutation_macs(self.device_id, name, &macs).await.map_err(db_err)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.writable()?.wa_clear_mutation_macs(self.device_id, name).await.map_err(db_err)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.db.wa_latest_sync_key_id(self.device_id).await.map_err(db_err)
    }
}
