//! The simulated primary phone: reads a companion's QR code and vouches for the companion with
//! the account's key (the ADV "device identity" the client verifies at `<pair-success>`).

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::crypto::calculate_curve_signature;
use whatsapp_rust::wacore::libsignal::crypto::hmac_sha256;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PublicKey};
use whatsapp_rust::waproto::whatsapp as wa;

/// ADV signature prefixes (E2EE accounts): what the account key signs, and what the companion
/// signs back.
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];

/// A QR code shown by a companion: `ref,noise_pub,identity_pub,adv_secret[,platform]`, each key
/// in standard base64.
#[derive(Debug, Clone)]
pub struct QrCode {
    pub pairing_ref: String,
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub adv_secret: [u8; 32],
    pub platform: Option<String>,
}

impl QrCode {
    pub fn parse(qr: &str) -> Result<QrCode> {
        let body = match qr.find('#') {
            Some(i) if qr.starts_with("https://") => &qr[i + 1..],
            _ => qr,
        };
        let parts: Vec<&str> = body.trim().split(',').collect();
        if parts.len() < 4 || parts[..4].iter().any(|p| p.is_empty()) {
            bail!("not a WhatsApp pairing QR code: {qr:?}");
        }
        let key = |i: usize, what: &str| -> Result<[u8; 32]> {
            base64::engine::general_purpose::STANDARD
                .decode(parts[i])
                .with_context(|| format!("QR {what} is not base64"))?
                .try_into()
                .map_err(|_| anyhow!("QR {what} is not 32 bytes"))
        };
        Ok(QrCode {
            pairing_ref: parts[0].to_string(),
            noise_pub: key(1, "noise key")?,
            identity_pub: key(2, "identity key")?,
            adv_secret: key(3, "ADV secret")?,
            platform: parts.get(4).map(|p| p.to_string()),
        })
    }
}

/// The `<device-identity>` payload of `<pair-success>`: an `ADVDeviceIdentity` signed by the
/// account key together with the companion's identity key, wrapped in an HMAC keyed by the ADV
/// secret from the QR code.
pub fn device_identity(account_key: &KeyPair, qr: &QrCode, key_index: u32, raw_id: u32) -> Result<Vec<u8>> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(raw_id),
        timestamp: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
        key_index: Some(key_index),
        ..Default::default()
    }
    .encode_to_vec();
    let mut signed_message = ACCOUNT_SIGNATURE_PREFIX.to_vec();
    signed_message.extend_from_slice(&details);
    signed_message.extend_from_slice(&qr.identity_pub);
    let account_signature = calculate_curve_signature(&account_key.private_key, &signed_message)
        .map_err(|e| anyhow!("account signature: {e}"))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account_key.public_key.public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let hmac = hmac_sha256(&qr.adv_secret, &signed);
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac.to_vec()),
        ..Default::default()
    }
    .encode_to_vec())
}

/// Checks the companion's `<pair-device-sign>`: the identity it returns must carry our account
/// signature unchanged and a device signature by the companion's identity key.
pub fn verify_device_sign(account_key: &KeyPair, qr: &QrCode, signed_identity: &[u8]) -> Result<()> {
    let signed = wa::ADVSignedDeviceIdentity::decode_from_slice(signed_identity)
        .context("pair-device-sign is not an ADVSignedDeviceIdentity")?;
    let details = signed.details.as_deref().unwrap_or_default();
    let account_pub = account_key.public_key.public_key_bytes();
    if signed.account_signature_key.as_deref() != Some(account_pub) {
        bail!("pair-device-sign carries another account key");
    }
    let device_signature = signed
        .device_signature
        .as_deref()
        .ok_or_else(|| anyhow!("pair-device-sign without device signature"))?;
    let mut message = DEVICE_SIGNATURE_PREFIX.to_vec();
    message.extend_from_slice(details);
    message.extend_from_slice(&qr.identity_pub);
    message.extend_from_slice(account_pub);
    let companion = PublicKey::from_djb_public_key_bytes(&qr.identity_pub)
        .map_err(|e| anyhow!("companion identity key: {e}"))?;
    if !companion.verify_signature(&message, device_signature) {
        bail!("companion device signature does not verify");
    }
    Ok(())
}
