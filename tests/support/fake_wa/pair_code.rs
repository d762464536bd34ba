//! Phone-number linking ("link with phone number instead"), the server's and the primary
//! phone's side of it.
//!
//! 1. The companion asks for a code: `<iq xmlns="md"><link_code_companion_reg
//!    stage="companion_hello">` with its ephemeral key wrapped with the code (PBKDF2 of the code,
//!    AES-CTR), its Noise key, its platform and a nonce. The fake checks the fields and answers
//!    with a pairing ref; the companion shows the 8-character code.
//! 2. [`FakeWhatsApp::enter_pair_code`] plays the user typing that code on the phone: the
//!    primary unwraps the companion's ephemeral key with the code, wraps its own ephemeral key
//!    the same way, and the server sends `<notification type="link_code_companion_reg">`
//!    (`primary_hello`) with it and the primary's identity key.
//! 3. The companion answers `companion_finish`: its identity key in a bundle sealed (AES-GCM)
//!    under a key derived from the ephemeral agreement. The primary opens it and derives the
//!    same ADV secret the companion stored (HKDF of both agreements and the bundle's random
//!    bytes), then links the companion exactly as after a QR scan (`<pair-success>`, 515).
//!
//! A wrong code yields unrelated ephemeral keys on both sides: the bundle does not open and
//! the phone gives up, as a real one does; the companion may be given the right code after.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::oneshot;
use whatsapp_rust::wacore::crypto::{generate_curve_key_pair, hkdf_sha256_into};
use whatsapp_rust::wacore::libsignal::crypto::aes_256_gcm_decrypt;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PublicKey};
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Node, SERVER_JID};

use super::conn::{attr, Conn};
use super::phone::QrCode;
use super::{content_bytes, render, unix_now, FakeEvent, FakeWhatsApp, PairedPhone, ScanOptions};

/// How long the phone waits for the companion's `companion_finish` (it runs a PBKDF2 first).
const FINISH_TIMEOUT: Duration = Duration::from_secs(15);

/// A `companion_hello` the server accepted: what the companion sent, and the ref it got.
#[derive(Debug, Clone)]
pub struct PairCodeRequest {
    /// The connection it came on (an unpaired client showing QR codes).
    pub conn: u64,
    /// The number the code is for, digits only (from the `jid` attribute).
    pub phone: String,
    /// The ref the server answered with; the companion echoes it in `companion_finish`.
    pub pairing_ref: Vec<u8>,
    /// `companion_platform_id` and `companion_platform_display` (shown on the phone).
    pub platform_id: String,
    pub platform_display: String,
    /// `should_show_push_notification`.
    pub push_notification: bool,
    noise_pub: [u8; 32],
    wrapped_ephemeral: [u8; 80],
}

/// The companion's `companion_finish`.
struct CompanionFinish {
    wrapped_bundle: Vec<u8>,
    identity_pub: [u8; 32],
}

/// The server's pair-code bookkeeping.
#[derive(Default)]
pub(super) struct Registry {
    /// The latest accepted request per phone number (the server routes the phone's
    /// `primary_hello` by number).
    requests: HashMap<String, PairCodeRequest>,
    /// A phone waiting for the companion's `companion_finish`, by pairing ref.
    finishing: HashMap<Vec<u8>, oneshot::Sender<CompanionFinish>>,
}

impl Registry {
    /// Forgets what belonged to a closed connection.
    pub(super) fn connection_closed(&mut self, conn: u64) {
        let refs: Vec<Vec<u8>> =
            self.requests.values().filter(|r| r.conn == conn).map(|r| r.pairing_ref.clone()).collect();
        self.requests.retain(|_, r| r.conn != conn);
        for r in refs {
            self.finishing.remove(&r);
        }
    }
}

fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    node.get_optional_child(tag).and_then(content_bytes)
}

fn child_array<const N: usize>(node: &Node, tag: &str) -> Result<[u8; N]> {
    let bytes = child_bytes(node, tag).ok_or_else(|| anyhow!("no <{tag}> bytes"))?;
    bytes.try_into().map_err(|_| anyhow!("<{tag}> is {} bytes, not {N}", bytes.len()))
}

fn child_text(node: &Node, tag: &str) -> Result<String> {
    let bytes = child_bytes(node, tag).ok_or_else(|| anyhow!("no <{tag}> bytes"))?;
    let text = String::from_utf8(bytes.to_vec()).with_context(|| format!("<{tag}> is not text"))?;
    if text.trim().is_empty() {
        bail!("<{tag}> is empty");
    }
    Ok(text)
}

/// The digits of `jid` when it is a plain phone-number JID.
fn phone_of(jid: &str) -> Result<String> {
    match jid.strip_suffix("@s.whatsapp.net") {
        Some(user) if !user.is_empty() && user.chars().all(|c| c.is_ascii_digit()) => Ok(user.to_string()),
        _ => bail!("jid {jid:?} is not a phone number JID"),
    }
}

fn error_iq(iq: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "error")
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_string())
            .build()])
        .build()
}

fn result_iq(iq: &Node, children: Vec<Node>) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "result")
        .attr("from", SERVER_JID)
        .children(children)
        .build()
}

/// Checks a `companion_hello` and turns it into a request with a fresh ref.
fn parse_hello(conn: &Conn, iq: &Node, reg: &Node) -> Result<PairCodeRequest> {
    if attr(iq, "xmlns").as_deref() != Some("md") || attr(iq, "type").as_deref() != Some("set") {
        bail!("companion_hello must be an md set IQ");
    }
    let info = conn.info();
    if info.phone.is_some() {
        bail!("companion_hello on a connection that is already paired");
    }
    let phone = phone_of(&attr(reg, "jid").unwrap_or_default())?;
    let push_notification = match attr(reg, "should_show_push_notification").as_deref() {
        Some("true") => true,
        Some("false") => false,
        other => bail!("should_show_push_notification is {other:?}"),
    };
    let wrapped_ephemeral = child_array::<80>(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")?;
    let noise_pub = child_array::<32>(reg, "companion_server_auth_key_pub")?;
    if info.client_static != Some(noise_pub) {
        bail!("companion_server_auth_key_pub is not the connection's Noise key");
    }
    let platform_id = child_text(reg, "companion_platform_id")?;
    if !platform_id.chars().all(|c| c.is_ascii_digit()) {
        bail!("companion_platform_id {platform_id:?} is not a number");
    }
    let platform_display = child_text(reg, "companion_platform_display")?;
    if child_bytes(reg, "link_code_pairing_nonce") != Some(&[0u8][..]) {
        bail!("link_code_pairing_nonce must be a single zero byte");
    }
    Ok(PairCodeRequest {
        conn: conn.id,
        phone,
        pairing_ref: format!("2@{}", hex::encode(rand::random::<[u8; 16]>())).into_bytes(),
        platform_id,
        platform_display,
        push_notification,
        noise_pub,
        wrapped_ephemeral,
    })
}

/// Opens the companion's key bundle (`salt(32) ‖ iv(12) ‖ AES-GCM(identity ‖ primary identity
/// ‖ random(32))`) and derives the ADV secret the companion stored.
fn open_bundle(
    primary_ephemeral: &KeyPair,
    primary_identity: &KeyPair,
    companion_ephemeral: &[u8; 32],
    finish: &CompanionFinish,
) -> Result<[u8; 32]> {
    let companion_ephemeral = PublicKey::from_djb_public_key_bytes(companion_ephemeral)
        .map_err(|e| anyhow!("companion ephemeral key: {e}"))?;
    let ephemeral_shared = primary_ephemeral
        .calculate_agreement(&companion_ephemeral)
        .map_err(|e| anyhow!("ephemeral agreement: {e}"))?;
    let wrapped = &finish.wrapped_bundle;
    if wrapped.len() != 32 + 12 + 96 + 16 {
        bail!("the key bundle is {} bytes, not 156", wrapped.len());
    }
    let (salt, rest) = wrapped.split_at(32);
    let (iv, sealed) = rest.split_at(12);
    let mut key = [0u8; 32];
    hkdf_sha256_into(&ephemeral_shared, Some(salt), b"link_code_pairing_key_bundle_encryption_key", &mut key)
        .map_err(|e| anyhow!("bundle key: {e}"))?;
    let iv: [u8; 12] = iv.try_into().expect("12 bytes");
    let mut bundle = Vec::with_capacity(96);
    aes_256_gcm_decrypt(&key, &iv, b"", sealed, &mut bundle)
        .map_err(|_| anyhow!("the companion's key bundle does not open with this code"))?;
    let primary_pub = primary_identity.public_key.public_key_bytes();
    if bundle[..32] != finish.identity_pub || bundle[32..64] != *primary_pub {
        bail!("the key bundle names other identity keys than the stanza");
    }
    let companion_identity = PublicKey::from_djb_public_key_bytes(&finish.identity_pub)
        .map_err(|e| anyhow!("companion identity key: {e}"))?;
    let identity_shared = primary_identity
        .calculate_agreement(&companion_identity)
        .map_err(|e| anyhow!("identity agreement: {e}"))?;
    let mut secret_input = Vec::with_capacity(96);
    secret_input.extend_from_slice(&ephemeral_shared);
    secret_input.extend_from_slice(&identity_shared);
    secret_input.extend_from_slice(&bundle[64..96]);
    let mut adv_secret = [0u8; 32];
    hkdf_sha256_into(&secret_input, None, b"adv_secret", &mut adv_secret)
        .map_err(|e| anyhow!("ADV secret: {e}"))?;
    Ok(adv_secret)
}

impl FakeWhatsApp {
    /// Answers a client `<iq>` carrying `<link_code_companion_reg>` (both stages).
    pub(super) fn link_code_iq(&self, conn: &Conn, iq: &Node, reg: &Node) {
        let answer = match attr(reg, "stage").as_deref() {
            Some("companion_hello") => match parse_hello(conn, iq, reg) {
                Ok(request) => {
                    let pairing_ref = request.pairing_ref.clone();
                    self.record(FakeEvent::PairCodeRequested {
                        conn: conn.id,
                        phone: request.phone.clone(),
                        platform_id: request.platform_id.clone(),
                        platform_display: request.platform_display.clone(),
                    });
                    self.state.lock().unwrap().pair_codes.requests.insert(request.phone.clone(), request);
                    self.bump();
                    result_iq(
                        iq,
                        vec![NodeBuilder::new("link_code_companion_reg")
                            .attr("stage", "companion_hello")
                            .children([NodeBuilder::new("link_code_pairing_ref").bytes(pairing_ref).build()])
                            .build()],
                    )
                }
                Err(e) => {
                    self.note(format!("companion_hello refused: {e:#}: {}", render(iq)));
                    error_iq(iq, 400, "bad-request")
                }
            },
            Some("companion_finish") => match self.companion_finish(conn, reg) {
                Ok(()) => result_iq(iq, vec![]),
                Err(e) => {
                    self.note(format!("companion_finish refused: {e:#}: {}", render(iq)));
                    error_iq(iq, 400, "bad-request")
                }
            },
            other => {
                self.note(format!("link_code_companion_reg with stage {other:?}: {}", render(iq)));
                error_iq(iq, 400, "bad-request")
            }
        };
        let _ = conn.send_node(&answer);
    }

    /// Hands a `companion_finish` to the phone waiting for it.
    fn companion_finish(&self, conn: &Conn, reg: &Node) -> Result<()> {
        let phone = phone_of(&attr(reg, "jid").unwrap_or_default())?;
        let pairing_ref =
            child_bytes(reg, "link_code_pairing_ref").ok_or_else(|| anyhow!("no ref"))?.to_vec();
        let finish = CompanionFinish {
            wrapped_bundle: child_bytes(reg, "link_code_pairing_wrapped_key_bundle")
                .ok_or_else(|| anyhow!("no key bundle"))?
                .to_vec(),
            identity_pub: child_array::<32>(reg, "companion_identity_public")?,
        };
        let mut state = self.state.lock().unwrap();
        let known = state
            .pair_codes
            .requests
            .get(&phone)
            .is_some_and(|r| r.conn == conn.id && r.pairing_ref == pairing_ref);
        if !known {
            bail!("no pair-code request of {phone} with this ref on connection {}", conn.id);
        }
        let waiter =
            state.pair_codes.finishing.remove(&pairing_ref).ok_or_else(|| anyhow!("no phone waits"))?;
        let _ = waiter.send(finish);
        Ok(())
    }

    /// The latest accepted pair-code request for `phone` (digits), if any.
    pub fn pair_code_request(&self, phone: &str) -> Option<PairCodeRequest> {
        self.state.lock().unwrap().pair_codes.requests.get(phone).cloned()
    }

    /// The user types `code` on the phone of `phone` (digits), which asked for a code: the
    /// pair-code exchange, then the same linking as [`FakeWhatsApp::scan_as`]. Fails when no
    /// code was requested for the number or when `code` is not the companion's code.
    pub async fn enter_pair_code(&self, phone: &str, code: &str) -> Result<PairedPhone> {
        self.enter_pair_code_with(code, ScanOptions::phone(phone)).await
    }

    pub async fn enter_pair_code_with(&self, code: &str, options: ScanOptions) -> Result<PairedPhone> {
        let phone = options.phone.clone();
        let (request, conn) = {
            let state = self.state.lock().unwrap();
            let request = state
                .pair_codes
                .requests
                .get(&phone)
                .cloned()
                .ok_or_else(|| anyhow!("no pair code was requested for {phone}"))?;
            let conn =
                state.conns.get(&request.conn).cloned().ok_or_else(|| {
                    anyhow!("connection {} that asked for the code is closed", request.conn)
                })?;
            (request, conn)
        };
        let primary_identity = self.account_key(&phone);
        let primary_ephemeral = generate_curve_key_pair();
        let primary_ephemeral_pub: [u8; 32] =
            primary_ephemeral.public_key.public_key_bytes().try_into().expect("32 bytes");
        // Two PBKDF2 runs of 2^17 rounds: off the async workers.
        let (companion_ephemeral, wrapped_primary) = {
            let code = code.to_uppercase();
            let wrapped = request.wrapped_ephemeral;
            tokio::task::spawn_blocking(move || {
                let companion = PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped, &code);
                (companion, PairCodeUtils::encrypt_ephemeral_pub(&primary_ephemeral_pub, &code))
            })
            .await?
        };
        let companion_ephemeral = companion_ephemeral.map_err(|e| anyhow!("companion ephemeral key: {e}"))?;

        let (finished, finish) = oneshot::channel();
        self.state.lock().unwrap().pair_codes.finishing.insert(request.pairing_ref.clone(), finished);
        let notification = NodeBuilder::new("notification")
            .attr("from", SERVER_JID)
            .attr("type", "link_code_companion_reg")
            .attr("id", self.next_iq_id())
            .attr("t", unix_now().to_string())
            .children([NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                        .bytes(wrapped_primary.to_vec())
                        .build(),
                    NodeBuilder::new("primary_identity_pub")
                        .bytes(primary_identity.public_key.public_key_bytes().to_vec())
                        .build(),
                    NodeBuilder::new("link_code_pairing_ref").bytes(request.pairing_ref.clone()).build(),
                ])
                .build()])
            .build();
        conn.send_node(&notification)?;
        let finish = tokio::time::timeout(FINISH_TIMEOUT, finish)
            .await
            .with_context(|| format!("no companion_finish within {FINISH_TIMEOUT:?} of primary_hello"))?
            .context("the connection closed before companion_finish")?;
        let opened = open_bundle(&primary_ephemeral, &primary_identity, &companion_ephemeral, &finish);
        self.record(FakeEvent::PairCodeEntered {
            conn: conn.id,
            phone: phone.clone(),
            accepted: opened.is_ok(),
        });
        let adv_secret = opened?;
        let companion = QrCode {
            pairing_ref: String::from_utf8_lossy(&request.pairing_ref).into_owned(),
            noise_pub: request.noise_pub,
            identity_pub: finish.identity_pub,
            adv_secret,
            platform: Some(request.platform_id.clone()),
        };
        self.state.lock().unwrap().pair_codes.requests.remove(&phone);
        self.link(conn, &companion, &options).await
    }
}
