//! The responder side of the transport's Noise handshakes, written from the Noise spec and the
//! initiator in `wacore-noise`:
//!
//! - `XX` (`-> e`, `<- e, ee, s, es`, `-> s, se`) for a device with no cached server key, which
//!   is every unpaired device and the first login after pairing;
//! - `IK` (`<- s` known, `-> e, es, s, ss`, `<- e, ee, se`) for a paired device that cached the
//!   server's static key after an XX;
//! - `XXfallback` when the client's IK hello does not decrypt under our static key (the client
//!   cached an older server key): we answer with an XX-shaped server hello reusing its ephemeral.
//!
//! The server's certificate chain is self-made. The client accepts it only because the tests
//! build `whatsapp-rust` with `danger-skip-cert-chain-verify` (a dev-dependency feature).

use anyhow::{anyhow, bail, Context, Result};
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::wacore::crypto::{calculate_curve_signature, generate_curve_key_pair};
use whatsapp_rust::wacore::handshake::{NoiseCipher, NoiseHandshake};
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use whatsapp_rust::waproto::whatsapp as wa;

/// Which handshake a connection completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Full handshake: new device, or first connect with no cached server key.
    Xx,
    /// Resumed handshake with the server key the client cached.
    Ik,
    /// The client tried IK with a stale server key and was switched to XX mid-handshake.
    XxFallback,
}

/// The fake server's long-lived Noise identity: a static key pair and a certificate chain
/// whose leaf certifies it.
pub struct ServerKeys {
    static_kp: KeyPair,
    static_pub: [u8; 32],
    cert_chain: Vec<u8>,
}

impl ServerKeys {
    pub fn generate() -> ServerKeys {
        let static_kp = generate_curve_key_pair();
        let static_pub = key_bytes(&static_kp);
        let cert_chain = build_cert_chain(&static_pub);
        ServerKeys { static_kp, static_pub, cert_chain }
    }

    pub fn static_pub(&self) -> [u8; 32] {
        self.static_pub
    }
}

fn key_bytes(kp: &KeyPair) -> [u8; 32] {
    kp.public_key.public_key_bytes().try_into().expect("a Curve25519 public key is 32 bytes")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An intermediate certificate (issuer serial 0, i.e. "signed by the WhatsApp root") and a leaf
/// for `static_pub`. The leaf is really signed with the intermediate's key; the intermediate's
/// signature cannot be (we do not hold the root key), which is what the client's
/// `danger-skip-cert-chain-verify` feature forgives. Valid from a day ago for 30 days, so the
/// client's IK selection (which checks the validity window) picks IK on reconnects.
fn build_cert_chain(static_pub: &[u8; 32]) -> Vec<u8> {
    use wa::cert_chain::noise_certificate::Details;
    let now = now_secs();
    let not_before = now.saturating_sub(86_400);
    let not_after = now + 30 * 86_400;
    let intermediate_kp = generate_curve_key_pair();
    let intermediate_details = Details {
        serial: Some(1),
        issuer_serial: Some(0),
        key: Some(key_bytes(&intermediate_kp).to_vec()),
        not_before: Some(not_before),
        not_after: Some(not_after),
    }
    .encode_to_vec();
    let leaf_details = Details {
        serial: Some(2),
        issuer_serial: Some(1),
        key: Some(static_pub.to_vec()),
        not_before: Some(not_before),
        not_after: Some(not_after),
    }
    .encode_to_vec();
    let leaf_signature = calculate_curve_signature(&intermediate_kp.private_key, &leaf_details)
        .map(|s| s.to_vec())
        .unwrap_or_else(|_| vec![0; 64]);
    wa::CertChain {
        leaf: MessageField::some(wa::cert_chain::NoiseCertificate {
            details: Some(leaf_details),
            signature: Some(leaf_signature),
        }),
        intermediate: MessageField::some(wa::cert_chain::NoiseCertificate {
            details: Some(intermediate_details),
            signature: Some(vec![0; 64]),
        }),
    }
    .encode_to_vec()
}

/// The client's first handshake message, parsed.
pub struct ClientHello {
    pub ephemeral: [u8; 32],
    /// Present only in an IK hello: the client's encrypted static key and 0-RTT payload.
    pub ik: Option<(Vec<u8>, Vec<u8>)>,
}

pub fn parse_client_hello(frame: &[u8]) -> Result<ClientHello> {
    let msg = wa::HandshakeMessage::decode_from_slice(frame).context("decode client hello")?;
    let hello =
        msg.client_hello.into_option().ok_or_else(|| anyhow!("handshake message without client hello"))?;
    let ephemeral: [u8; 32] = hello
        .ephemeral
        .ok_or_else(|| anyhow!("client hello without ephemeral"))?
        .try_into()
        .map_err(|_| anyhow!("client ephemeral is not 32 bytes"))?;
    let ik = match (hello.r#static, hello.payload) {
        (Some(s), Some(p)) => Some((s, p)),
        _ => None,
    };
    Ok(ClientHello { ephemeral, ik })
}

/// A finished handshake, from the server's point of view.
pub struct Established {
    pub kind: HandshakeKind,
    /// Decrypts what the client sends.
    pub read: NoiseCipher,
    /// Encrypts what we send.
    pub write: NoiseCipher,
    /// The client's static Noise public key (the `noise_pub` of its QR code).
    pub client_static: [u8; 32],
    /// The client's `ClientPayload` (registration data when unpaired, user and device when
    /// paired).
    pub payload: wa::ClientPayload,
}

/// After our XX-shaped server hello: waiting for the client's finish message.
pub struct AwaitingFinish {
    kind: HandshakeKind,
    noise: NoiseHandshake,
    server_ephemeral: KeyPair,
}

/// What to do with a client hello.
pub enum Step {
    /// IK accepted: send `server_hello`, the handshake is complete.
    Done { server_hello: Vec<u8>, established: Box<Established> },
    /// XX or XXfallback: send `server_hello`, then feed the client's next frame to
    /// [`AwaitingFinish::finish`].
    Continue { server_hello: Vec<u8>, state: Box<AwaitingFinish> },
}

/// Answers a client hello: IK when it carries a static key that decrypts under our static key,
/// XXfallback when it carries one that does not, XX otherwise.
pub fn respond(keys: &ServerKeys, hello: &ClientHello) -> Result<Step> {
    if let Some((enc_static, enc_payload)) = &hello.ik {
        if let Some(done) = try_ik(keys, hello.ephemeral, enc_static, enc_payload)? {
            return Ok(done);
        }
        return xx_server_hello(keys, hello.ephemeral, HandshakeKind::XxFallback);
    }
    xx_server_hello(keys, hello.ephemeral, HandshakeKind::Xx)
}

fn xx_server_hello(keys: &ServerKeys, client_eph: [u8; 32], kind: HandshakeKind) -> Result<Step> {
    let pattern = match kind {
        HandshakeKind::XxFallback => NOISE_PATTERN_XXFALLBACK,
        _ => NOISE_PATTERN_XX,
    };
    let mut noise = NoiseHandshake::new(pattern, &WA_CONN_HEADER)?;
    // -> e
    noise.authenticate(&client_eph);
    // <- e, ee, s, es
    let server_ephemeral = generate_curve_key_pair();
    let server_eph_pub = key_bytes(&server_ephemeral);
    noise.authenticate(&server_eph_pub);
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), &client_eph)?;
    let enc_static = noise.encrypt(&keys.static_pub)?;
    noise.mix_shared_secret(keys.static_kp.private_key.serialize(), &client_eph)?;
    let enc_cert = noise.encrypt(&keys.cert_chain)?;
    let server_hello = server_hello_bytes(server_eph_pub, Some(enc_static), enc_cert);
    Ok(Step::Continue { server_hello, state: Box::new(AwaitingFinish { kind, noise, server_ephemeral }) })
}

impl AwaitingFinish {
    /// `-> s, se` plus the client payload.
    pub fn finish(mut self, frame: &[u8]) -> Result<Established> {
        let msg = wa::HandshakeMessage::decode_from_slice(frame).context("decode client finish")?;
        let finish = msg
            .client_finish
            .into_option()
            .ok_or_else(|| anyhow!("handshake message without client finish"))?;
        let enc_static = finish.r#static.ok_or_else(|| anyhow!("client finish without static"))?;
        let enc_payload = finish.payload.ok_or_else(|| anyhow!("client finish without payload"))?;
        let client_static: [u8; 32] = self
            .noise
            .decrypt(&enc_static)?
            .try_into()
            .map_err(|_| anyhow!("client static is not 32 bytes"))?;
        self.noise.mix_shared_secret(self.server_ephemeral.private_key.serialize(), &client_static)?;
        let payload = self.noise.decrypt(&enc_payload)?;
        let payload = wa::ClientPayload::decode_from_slice(&payload).context("client payload")?;
        let (client_write, client_read) = self.noise.finish()?;
        Ok(Established { kind: self.kind, read: client_write, write: client_read, client_static, payload })
    }
}

/// `None` when the client's static key does not decrypt: it used a server key we do not hold.
fn try_ik(
    keys: &ServerKeys,
    client_eph: [u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<Option<Step>> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
    // <- s (pre-message)
    noise.authenticate(&keys.static_pub);
    // -> e, es, s, ss
    noise.authenticate(&client_eph);
    noise.mix_shared_secret(keys.static_kp.private_key.serialize(), &client_eph)?;
    let Ok(client_static) = noise.decrypt(enc_static) else {
        return Ok(None);
    };
    let client_static: [u8; 32] = match client_static.try_into() {
        Ok(k) => k,
        Err(_) => bail!("client static is not 32 bytes"),
    };
    noise.mix_shared_secret(keys.static_kp.private_key.serialize(), &client_static)?;
    let Ok(payload) = noise.decrypt(enc_payload) else {
        return Ok(None);
    };
    let payload = wa::ClientPayload::decode_from_slice(&payload).context("client payload")?;
    // <- e, ee, se
    let server_ephemeral = generate_curve_key_pair();
    let server_eph_pub = key_bytes(&server_ephemeral);
    noise.authenticate(&server_eph_pub);
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), &client_eph)?;
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), &client_static)?;
    let enc_cert = noise.encrypt(&keys.cert_chain)?;
    let server_hello = server_hello_bytes(server_eph_pub, None, enc_cert);
    let (client_write, client_read) = noise.finish()?;
    Ok(Some(Step::Done {
        server_hello,
        established: Box::new(Established {
            kind: HandshakeKind::Ik,
            read: client_write,
            write: client_read,
            client_static,
            payload,
        }),
    }))
}

fn server_hello_bytes(ephemeral: [u8; 32], enc_static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static: enc_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}
