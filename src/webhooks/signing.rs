//! Standard Webhooks signing (v1.0.0, symmetric scheme), pure functions.
//!
//! Every delivery carries three headers: `webhook-id` (the event's id, the same on every
//! retry, which receivers use to drop duplicates), `webhook-timestamp` (Unix seconds of this
//! attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! one entry per secret that currently signs, separated by spaces (during the 24 hours after a
//! rotation both the new and the old secret sign). Secrets are presented as `whsec_` + base64
//! of the key bytes; the gateway makes 32-byte keys and accepts the specification's 24 to 64.
//! A receiver accepts a message when any `v1` entry matches, compared in constant time, and its
//! timestamp is within its tolerance (the reference libraries use five minutes either way).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How a secret is presented to tenants.
pub const SECRET_PREFIX: &str = "whsec_";
/// The tolerance receivers are told to apply to `webhook-timestamp`, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;
/// Bytes of a secret the gateway generates.
pub const SECRET_LEN: usize = 32;
const MIN_SECRET_LEN: usize = 24;
const MAX_SECRET_LEN: usize = 64;

/// A signing secret: the raw key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret or a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the secret must be `whsec_` followed by base64 of 24 to 64 bytes")]
    BadSecret,
    #[error("the `{0}` header is missing or not readable")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the tolerance (too old or too far in the future)")]
    OutsideTolerance,
    #[error("no signature matches")]
    NoMatch,
}

impl Secret {
    /// 32 fresh random bytes.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Secret(key)
    }

    /// Parses `whsec_<base64>` (the prefix may be left out).
    pub fn parse(text: &str) -> Result<Secret, SignError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD.decode(encoded).map_err(|_| SignError::BadSecret)?;
        Secret::from_bytes(key)
    }

    /// A secret from raw key bytes (24 to 64 of them).
    pub fn from_bytes(key: Vec<u8>) -> Result<Secret, SignError> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
            Ok(Secret(key))
        } else {
            Err(SignError::BadSecret)
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The form shown to tenants: `whsec_` + base64.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// One signature: `v1,<base64>`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(secret.mac(id, timestamp, body)))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| sign(s, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Checks a received message as a receiver does: the timestamp within `tolerance_secs` of
/// `now` (either way) and any `v1` entry of `signature` made by any of `secrets`.
pub fn verify(
    secrets: &[Secret],
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| SignError::BadTimestamp)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(SignError::OutsideTolerance);
    }
    let expected: Vec<[u8; 32]> = secrets.iter().map(|s| s.mac(id, ts, body)).collect();
    let matches = signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .any(|given| expected.iter().any(|e| bool::from(e.as_slice().ct_eq(&given))));
    if matches {
        Ok(())
    } else {
        Err(SignError::NoMatch)
    }
}

/// A new `webhook-id`: `msg_` + a ULID (48 bits of milliseconds, 80 random bits, Crockford
/// base32), so ids sort by creation time and never contain the `.` the signature uses.
pub fn new_message_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u128 & ((1 << 48) - 1);
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let value = (millis << 80) | random.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut out = String::with_capacity(30);
    out.push_str("msg_");
    for i in (0..26).rev() {
        out.push(ALPHABET[((value >> (i * 5)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The known-answer vector of the specification's reference Rust library
    /// (standard-webhooks `libraries/rust/src/lib.rs`, `test_sign`).
    const KAT_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const KAT_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const KAT_TIMESTAMP: i64 = 1649367553;
    const KAT_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const KAT_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        let secret = Secret::parse(KAT_SECRET).unwrap();
        assert_eq!(sign(&secret, KAT_ID, KAT_TIMESTAMP, KAT_BODY), KAT_SIGNATURE);
        let ts = KAT_TIMESTAMP.to_string();
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                KAT_ID,
                &ts,
                KAT_SIGNATURE,
                KAT_BODY,
                KAT_TIMESTAMP + 10,
                300
            ),
            Ok(())
        );
        // Among other entries, and with an unknown version before it.
        let header = format!("v1a,abc v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU= {KAT_SIGNATURE}");
        assert_eq!(verify(&[secret], KAT_ID, &ts, &header, KAT_BODY, KAT_TIMESTAMP, 300), Ok(()));
    }

    #[test]
    fn tampering_and_stale_timestamps_are_refused() {
        let secret = Secret::parse(KAT_SECRET).unwrap();
        let ts = KAT_TIMESTAMP.to_string();
        let s = [secret];
        let body2 = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert_eq!(
            verify(&s, KAT_ID, &ts, KAT_SIGNATURE, body2, KAT_TIMESTAMP, 300),
            Err(SignError::NoMatch)
        );
        assert_eq!(
            verify(&s, "msg_other", &ts, KAT_SIGNATURE, KAT_BODY, KAT_TIMESTAMP, 300),
            Err(SignError::NoMatch)
        );
        assert_eq!(
            verify(&s, KAT_ID, &ts, KAT_SIGNATURE, KAT_BODY, KAT_TIMESTAMP + 301, 300),
            Err(SignError::OutsideTolerance)
        );
        assert_eq!(
            verify(&s, KAT_ID, &ts, KAT_SIGNATURE, KAT_BODY, KAT_TIMESTAMP - 301, 300),
            Err(SignError::OutsideTolerance)
        );
        assert_eq!(
            verify(&s, KAT_ID, "soon", KAT_SIGNATURE, KAT_BODY, KAT_TIMESTAMP, 300),
            Err(SignError::BadTimestamp)
        );
        let v2 = KAT_SIGNATURE.replacen("v1,", "v2,", 1);
        assert_eq!(verify(&s, KAT_ID, &ts, &v2, KAT_BODY, KAT_TIMESTAMP, 300), Err(SignError::NoMatch));
    }

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes() {
        let s = Secret::generate();
        let shown = s.to_whsec();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&shown[6..]).unwrap().len(), 32);
        assert_eq!(Secret::parse(&shown).unwrap(), s);
        assert_ne!(Secret::generate(), s);
        assert_eq!(Secret::parse("whsec_c2hvcnQ="), Err(SignError::BadSecret));
        assert_eq!(Secret::parse("whsec_not base64!"), Err(SignError::BadSecret));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn message_ids_are_ulids_without_dots() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 30);
        assert!(a.starts_with("msg_") && !a.contains('.'));
        assert!(a[4..].bytes().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    proptest! {
        #[test]
        fn what_one_signs_the_other_verifies(
            key in prop::collection::vec(any::<u8>(), 24..=64),
            other in prop::collection::vec(any::<u8>(), 24..=64),
            id in "msg_[A-Za-z0-9]{1,40}",
            ts in 0i64..4_000_000_000,
            skew in -300i64..=300,
            body in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let secret = Secret::from_bytes(key.clone()).unwrap();
            let rotated = Secret::from_bytes(other.clone()).unwrap();
            let header = signature_header(&[rotated.clone(), secret.clone()], &id, ts, &body);
            prop_assert_eq!(header.split(' ').count(), 2);
            let now = ts + skew;
            prop_assert_eq!(verify(std::slice::from_ref(&secret), &id, &ts.to_string(), &header, &body, now, 300), Ok(()));
            prop_assert_eq!(verify(&[rotated], &id, &ts.to_string(), &header, &body, now, 300), Ok(()));
            if key != other {
                let single = sign(&secret, &id, ts, &body);
                let wrong = Secret::from_bytes(other).unwrap();
                prop_assert_eq!(verify(&[wrong], &id, &ts.to_string(), &single, &body, now, 300), Err(SignError::NoMatch));
            }
            let mut flipped = body.clone();
            flipped.push(b'x');
            prop_assert_eq!(verify(&[secret], &id, &ts.to_string(), &header, &flipped, now, 300), Err(SignError::NoMatch));
        }
    }
}
