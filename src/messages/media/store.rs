//! Where media bytes are kept: a folder or any S3-compatible service, behind `object_store`,
//! and the signed links that fetch one message's media without an API key.
//!
//! Objects are named `<tenant>/<message id>` (under the configured S3 prefix), so one tenant's
//! media never shares a name with another's and deleting a message's media needs no lookup.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use sha2::Sha256;

use crate::config::{MediaConfig, MediaStoreKind};
use crate::db::{Db, DbError};

/// The setting holding the key that signs download links (generated on first start).
const LINK_KEY_SETTING: &str = "media_link_key";

/// The media store. Cheap to clone.
#[derive(Clone)]
pub struct MediaStore {
    objects: Arc<dyn ObjectStore>,
    prefix: String,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore").field("objects", &self.objects.to_string()).finish()
    }
}

impl MediaStore {
    /// Opens the configured store (creating the folder of a filesystem store).
    pub fn open(config: &MediaConfig) -> Result<MediaStore, String> {
        match config.store {
            MediaStoreKind::Filesystem => {
                std::fs::create_dir_all(&config.path)
                    .map_err(|e| format!("cannot create the media folder {}: {e}", config.path.display()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&config.path)
                    .map_err(|e| format!("cannot open the media folder {}: {e}", config.path.display()))?;
                Ok(MediaStore { objects: Arc::new(fs), prefix: String::new() })
            }
            MediaStoreKind::S3 => {
                let s3 = &config.s3;
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if !s3.endpoint.is_empty() {
                    builder = builder.with_endpoint(&s3.endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key);
                }
                let store = builder.build().map_err(|e| format!("cannot open the S3 media store: {e}"))?;
                let prefix = s3.prefix.trim_matches('/').to_string();
                Ok(MediaStore { objects: Arc::new(store), prefix })
            }
        }
    }

    /// The object name of a message's media.
    pub fn key_of(tenant: i64, message_id: i64) -> String {
        format!("{tenant}/{message_id}")
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.objects
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| format!("the media store refused the bytes: {e}"))
    }

    /// The bytes under `key`; `None` when there are none (deleted, or never stored).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self.objects.get(&self.path(key)).await {
            Ok(found) => match found.bytes().await {
                Ok(bytes) => Ok(Some(bytes.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(format!("the media store could not be read: {e}")),
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(format!("the media store could not be read: {e}")),
        }
    }

    /// Deletes the bytes under `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        match self.objects.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("the media store could not delete: {e}")),
        }
    }
}

/// Signs and checks download links: `<public_url>/media/<id>?expires=<unix s>&signature=<hex>`,
/// where the signature is HMAC-SHA256 over the id and the expiry. A link opens that one
/// message's media until it expires, without an API key. Cheap to clone.
#[derive(Clone)]
pub struct MediaLinks {
    key: Arc<[u8; 32]>,
    base: String,
    ttl: Duration,
}

impl std::fmt::Debug for MediaLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLinks").field("base", &self.base).field("ttl", &self.ttl).finish()
    }
}

impl MediaLinks {
    /// The links of this gateway: its key is generated once and kept in the database, so every
    /// process and every restart signs alike.
    pub async fn bootstrap(db: &Db, public_url: &str, ttl: Duration) -> Result<MediaLinks, DbError> {
        let fresh: [u8; 32] = rand::random();
        let stored = db.setting_insert_once(LINK_KEY_SETTING, &hex::encode(fresh)).await?;
        let mut key = [0u8; 32];
        match hex::decode(&stored) {
            Ok(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
            _ => {
                return Err(DbError::Conflict(format!("the stored `{LINK_KEY_SETTING}` is not 32 hex bytes")))
            }
        }
        Ok(MediaLinks::new(key, public_url, ttl))
    }

    pub fn new(key: [u8; 32], public_url: &str, ttl: Duration) -> MediaLinks {
        MediaLinks { key: Arc::new(key), base: public_url.trim_end_matches('/').to_string(), ttl }
    }

    fn signature(&self, id: i64, expires: i64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice()).expect("any key length");
        mac.update(format!("media:{id}:{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The API path of a message's media (needs an API key).
    pub fn api_url(&self, id: i64) -> String {
        format!("{}/api/user/messages/{id}/media", self.base)
    }

    /// A signed link to a message's media, valid for the configured time from `now_s`.
    pub fn signed_url(&self, id: i64, now_s: i64) -> String {
        let expires = now_s + self.ttl.as_secs() as i64;
        format!("{}/media/{id}?expires={expires}&signature={}", self.base, self.signature(id, expires))
    }

    /// Whether `signature` signs `id` and `expires`, and `expires` is not past `now_s`.
    pub fn verify(&self, id: i64, expires: i64, signature: &str, now_s: i64) -> bool {
        use subtle::ConstantTimeEq;
        expires >= now_s && bool::from(self.signature(id, expires).as_bytes().ct_eq(signature.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_own_message_until_it_expires() {
        let links = MediaLinks::new([7; 32], "https://gw.example/", Duration::from_secs(3600));
        let url = links.signed_url(42, 1_000);
        assert!(url.starts_with("https://gw.example/media/42?expires=4600&signature="), "{url}");
        let signature = url.rsplit('=').next().unwrap();
        assert!(links.verify(42, 4600, signature, 4600));
        assert!(!links.verify(42, 4600, signature, 4601), "expired");
        assert!(!links.verify(43, 4600, signature, 1_000), "another message");
        assert!(!links.verify(42, 9999, signature, 1_000), "another expiry");
        let other = MediaLinks::new([8; 32], "https://gw.example", Duration::from_secs(3600));
        assert!(!other.verify(42, 4600, signature, 1_000), "another gateway's key");
    }
}
