//! Endpoint secrets at rest: encrypted with ChaCha20-Poly1305 under the gateway's webhook key.
//!
//! The key is `[webhooks] secret_key` (base64 of 32 bytes) or, when that is empty, a key
//! generated on first start and stored in `settings` (`webhooks_secret_key`). A stored check
//! value (`webhooks_secret_key_check`, a known text encrypted with the key) makes a start with a
//! different key fail loudly instead of leaving every endpoint unable to sign.
//!
//! A sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag) with a random 96-bit nonce. The
//! tenant id is the associated data, so a sealed secret copied into another tenant's row does
//! not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::db::{Db, DbError};

const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;
const KEY_SETTING: &str = "webhooks_secret_key";
const CHECK_SETTING: &str = "webhooks_secret_key_check";
const CHECK_TEXT: &[u8] = b"wa-gateway webhook key check";
/// Associated data of the check value (no tenant has id 0).
const CHECK_TENANT: i64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("`webhooks.secret_key` must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error(
        "`webhooks.secret_key` is not the key the stored webhook secrets were encrypted with; \
         start with the previous key (or an empty value if the gateway generated it)"
    )]
    WrongKey,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A sealed secret did not open: the key changed or the value was tampered with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a stored webhook secret cannot be decrypted")]
pub struct OpenError;

/// Seals and opens endpoint secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    /// A box for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox { cipher: ChaCha20Poly1305::new(Key::from_slice(key)) }
    }

    /// The configured key, or the stored one, or a new one stored now; checked against the
    /// check value of earlier starts.
    pub async fn bootstrap(db: &Db, configured: &str) -> Result<SecretBox, KeyError> {
        let key = if configured.trim().is_empty() {
            match db.setting(KEY_SETTING).await? {
                Some(stored) => decode_key(&stored)?,
                None => {
                    let mut key = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut key);
                    // Another process may have stored its key first; then that one stands.
                    decode_key(&db.setting_insert_once(KEY_SETTING, &STANDARD.encode(key)).await?)?
                }
            }
        } else {
            decode_key(configured)?
        };
        let sealed = SecretBox::new(&key);
        let check = sealed.seal(CHECK_TENANT, CHECK_TEXT);
        let stored = db.setting_insert_once(CHECK_SETTING, &check).await?;
        match sealed.open(CHECK_TENANT, &stored) {
            Ok(text) if text == CHECK_TEXT => Ok(sealed),
            _ => Err(KeyError::WrongKey),
        }
    }

    /// Encrypts `plain` for `tenant`.
    pub fn seal(&self, tenant: i64, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = tenant.to_be_bytes();
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .expect("ChaCha20-Poly1305 encrypts any message of sane size");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    /// Decrypts a value sealed for `tenant`.
    pub fn open(&self, tenant: i64, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let raw = sealed.strip_prefix(VERSION).ok_or(OpenError)?;
        let raw = STANDARD.decode(raw).map_err(|_| OpenError)?;
        if raw.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let aad = tenant.to_be_bytes();
        self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad }).map_err(|_| OpenError)
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::BadKey)?;
    bytes.try_into().map_err(|_| KeyError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_tenant() {
        let a = SecretBox::new(&[7u8; 32]);
        let b = SecretBox::new(&[8u8; 32]);
        let sealed = a.seal(42, b"whsec_secret");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("whsec"));
        assert_eq!(a.open(42, &sealed).unwrap(), b"whsec_secret");
        assert!(a.open(43, &sealed).is_err(), "another tenant's row");
        assert!(b.open(42, &sealed).is_err(), "another key");
        assert_ne!(a.seal(42, b"x"), a.seal(42, b"x"), "fresh nonces");
        let mut tampered = STANDARD.decode(&sealed[3..]).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(a.open(42, &format!("v1:{}", STANDARD.encode(tampered))).is_err());
        assert!(a.open(42, "v1:AAAA").is_err());
        assert!(a.open(42, "plain").is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(decode_key(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(matches!(decode_key(&STANDARD.encode([1u8; 16])), Err(KeyError::BadKey)));
        assert!(matches!(decode_key("not base64"), Err(KeyError::BadKey)));
    }
}
