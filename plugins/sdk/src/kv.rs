//! The plugin's key-value store, scoped to (tenant, plugin).
//!
//! Two plugins, or one plugin of two tenants, never see each other's keys. Writes are applied
//! when the call returns `Ok`; a call that traps, times out or returns an error leaves the store
//! as it was. Reads see the call's own earlier writes. The operator limits keys (256 bytes by
//! default), values (64 KiB) and the plugin's total (1 MiB); going over is
//! [`KvError::QuotaExceeded`].
//!
//! Every function returns [`KvError`], which converts into [`crate::PluginError`], so `?`
//! works inside [`crate::Plugin::handle`].

use crate::bindings::wa_gateway::plugin::kv as raw;
use crate::{KvError, PluginError};

/// The value under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    raw::get(key)
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    raw::set(key, value)
}

/// Removes `key`; removing a missing key is not an error.
pub fn delete(key: &str) -> Result<(), KvError> {
    raw::delete(key)
}

/// The value under `key` as text, if any (bytes that are not UTF-8 are replaced by `�`).
pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
    Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Stores the text `value` under `key`.
pub fn set_string(key: &str, value: &str) -> Result<(), KvError> {
    set(key, value.as_bytes())
}

/// Adds one to the counter under `key` and returns the new count (1 the first time).
///
/// The counter is stored as decimal text, so `get_string(key)` reads it too. A value under
/// `key` that is not such a counter is [`PluginError::Failed`] rather than overwritten.
pub fn increment(key: &str) -> Result<u64, PluginError> {
    let current = match get(key)? {
        None => 0,
        Some(bytes) => parse_counter(&bytes)
            .ok_or_else(|| PluginError::Failed(format!("kv: `{key}` does not hold a counter")))?,
    };
    let next = current.saturating_add(1);
    set(key, next.to_string().as_bytes())?;
    Ok(next)
}

fn parse_counter(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_counter;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter(b"41"), Some(41));
        assert_eq!(parse_counter(b"x"), None);
        assert_eq!(parse_counter(&[0xff]), None);
    }
}
