//! Media: the media-connection IQ (`w:m`) and the media host, served in process through the
//! client's `HttpClient` seam (tests hand [`FakeWhatsApp::media_host`] to the gateway as its
//! HTTP client), so no TCP and no TLS are involved.
//!
//! An upload (`POST https://<host>/mms/<kind>/<token>?auth&token`) is checked as the server
//! does: the auth from the media connection, and the token, which must be the base64url
//! SHA-256 of the body (the encrypted file and its MAC). The blob is kept under a fresh direct
//! path, answered as JSON. A download (`GET https://<host><direct_path>?auth&token`) returns
//! the blob. Tests open what a message refers to with [`FakeWhatsApp::open_media`]: the hashes
//! and the MAC are checked and the file decrypted, as a recipient's phone does. A contact's
//! own media is encrypted and stored with [`FakeWhatsApp::upload_media`].

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::wacore::download::{DownloadUtils, MediaType};
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Node, SERVER_JID};
use whatsapp_rust::waproto::whatsapp as wa;

use super::conn::attr;
use super::messaging::MediaRef;
use super::{FakeEvent, FakeWhatsApp};

/// The one media host the fake announces.
pub const MEDIA_HOST: &str = "mmg.fake.test";
/// The auth token of the media connection; requests without it are refused (401).
const MEDIA_AUTH: &str = "fake-media-auth";

/// Blobs stored on the media host, by direct path.
#[derive(Default)]
pub struct Blobs {
    by_path: HashMap<String, Vec<u8>>,
}

/// A file stored on the media host, as a media message refers to it.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: u64,
}

impl Uploaded {
    /// An image message referring to this file, as a phone sends it.
    pub fn image_message(&self, mimetype: &str, caption: Option<&str>) -> wa::Message {
        wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url: Some(self.url.clone()),
                direct_path: Some(self.direct_path.clone()),
                media_key: Some(self.media_key.clone()),
                file_sha256: Some(self.file_sha256.clone()),
                file_enc_sha256: Some(self.file_enc_sha256.clone()),
                file_length: Some(self.file_length),
                mimetype: Some(mimetype.to_string()),
                caption: caption.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The media host, as the client's `HttpClient`. Any other request fails, as a test with no
/// network should.
#[derive(Clone)]
pub struct FakeMediaHost {
    fake: Arc<FakeWhatsApp>,
}

fn respond(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse { status_code: status, body: body.into() }
}

#[whatsapp_rust::async_trait]
impl HttpClient for FakeMediaHost {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        let Some(rest) = request.url.strip_prefix(&format!("https://{MEDIA_HOST}")) else {
            bail!("unexpected HTTP request in a fake-server test: {}", request.url)
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        if params.get("auth") != Some(&MEDIA_AUTH) {
            return Ok(respond(401, "bad auth"));
        }
        Ok(match request.method.as_str() {
            "POST" if path.starts_with("/mms/") => {
                let body = request.body.map(|b| b.to_vec()).unwrap_or_default();
                if params.contains_key("resume") {
                    // Nothing was uploaded before: start from the first byte.
                    return Ok(respond(200, r#"{"resume":"0"}"#));
                }
                let token = path.rsplit('/').next().unwrap_or_default();
                if URL_SAFE_NO_PAD.encode(Sha256::digest(&body)) != token {
                    return Ok(respond(400, "the token is not the hash of the body"));
                }
                let direct_path = self.fake.store_blob(body);
                let url = format!("https://{MEDIA_HOST}{direct_path}");
                self.fake.record(FakeEvent::MediaUploaded {
                    path: path.to_string(),
                    direct_path: direct_path.clone(),
                });
                respond(200, serde_json::json!({ "url": url, "direct_path": direct_path }).to_string())
            }
            "GET" => match self.fake.media_blob(path) {
                Some(blob) => respond(200, blob),
                None => respond(404, "no such media"),
            },
            _ => respond(405, "not a media request"),
        })
    }
}

/// The media type of a media reference's kind.
pub fn media_type(kind: &str) -> Result<MediaType> {
    Ok(match kind {
        "image" => MediaType::Image,
        "video" => MediaType::Video,
        "audio" | "voice" => MediaType::Audio,
        "document" => MediaType::Document,
        "sticker" => MediaType::Sticker,
        other => bail!("no media type for {other:?}"),
    })
}

impl FakeWhatsApp {
    /// The answer to `<iq xmlns="w:m"><media_conn/>`: the fake's media host and its auth.
    pub(super) fn media_conn_answer(&self, iq: &Node) -> Node {
        let conn = NodeBuilder::new("media_conn")
            .attr("auth", MEDIA_AUTH)
            .attr("ttl", "21600")
            .attr("auth_ttl", "21600")
            .attr("max_buckets", "12")
            .children([NodeBuilder::new("host").attr("hostname", MEDIA_HOST).attr("type", "primary").build()])
            .build();
        NodeBuilder::new("iq")
            .attr("id", attr(iq, "id").unwrap_or_default())
            .attr("type", "result")
            .attr("from", SERVER_JID)
            .children([conn])
            .build()
    }

    /// The media host as an HTTP client for the client under test.
    pub fn media_host(self: &Arc<Self>) -> FakeMediaHost {
        FakeMediaHost { fake: self.clone() }
    }

    fn store_blob(&self, blob: Vec<u8>) -> String {
        let direct_path = format!("/v/t62.7118-24/{}.enc", hex::encode(rand::random::<[u8; 12]>()));
        self.state.lock().unwrap().media.by_path.insert(direct_path.clone(), blob);
        direct_path
    }

    /// The blob stored under `direct_path` (the query, if any, ignored).
    pub fn media_blob(&self, direct_path: &str) -> Option<Vec<u8>> {
        let path = direct_path.split('?').next().unwrap_or(direct_path);
        self.state.lock().unwrap().media.by_path.get(path).cloned()
    }

    /// Opens the file a media message refers to, as its recipient does: the stored blob must
    /// hash to the message's `file_enc_sha256`, its MAC must verify under the media key, and
    /// the decrypted file must hash to `file_sha256` and have `file_length` bytes.
    pub fn open_media(&self, media: &MediaRef) -> Result<Vec<u8>> {
        let path = media.direct_path.as_deref().ok_or_else(|| anyhow!("no direct path"))?;
        let blob = self.media_blob(path).ok_or_else(|| anyhow!("nothing stored at {path}"))?;
        ensure!(
            Sha256::digest(&blob).as_slice() == media.file_enc_sha256,
            "file_enc_sha256 does not match the upload"
        );
        let plain = DownloadUtils::verify_and_decrypt(&blob, &media.media_key, media_type(media.kind)?)
            .map_err(|e| anyhow!("the upload does not verify and decrypt: {e:?}"))?;
        ensure!(
            Sha256::digest(&plain).as_slice() == media.file_sha256,
            "file_sha256 does not match the file"
        );
        ensure!(media.file_length == Some(plain.len() as u64), "file_length does not match the file");
        Ok(plain)
    }

    /// Encrypts `plaintext` as a phone does before sending it and stores it on the media host.
    pub fn upload_media(&self, plaintext: &[u8], media_type: MediaType) -> Result<Uploaded> {
        let encrypted = whatsapp_rust::wacore::upload::encrypt_media(plaintext, media_type)
            .context("encrypt the media")?;
        let direct_path = self.store_blob(encrypted.data_to_upload);
        Ok(Uploaded {
            url: format!("https://{MEDIA_HOST}{direct_path}"),
            direct_path,
            media_key: encrypted.media_key.to_vec(),
            file_sha256: encrypted.file_sha256.to_vec(),
            file_enc_sha256: encrypted.file_enc_sha256.to_vec(),
            file_length: plaintext.len() as u64,
        })
    }
}
