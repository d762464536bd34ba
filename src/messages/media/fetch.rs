//! Media sent by URL (API sends, rule and webhook replies, scheduled messages): one hardened
//! client for all of them, built once when the gateway starts.

use std::sync::Arc;
use std::time::Duration;

use super::{filename_from_url, MediaError, MediaOptions};
use crate::config::{Config, WhatsappConfig};
use crate::devices::driver::OutboundMedia;
use crate::net::{HttpClient, HttpOptions, NetError};

/// Downloads media to send, within the size cap of its kind, refusing private addresses
/// unless `[webhooks] allow_private_targets` allows them.
#[derive(Clone)]
pub struct MediaFetcher {
    http: HttpClient,
    whatsapp: Arc<WhatsappConfig>,
}

/// Why media from a URL cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The content is not acceptable media (too large for its kind, the wrong kind, empty).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The URL could not be fetched (refused address, timeout, an HTTP error).
    #[error("cannot fetch the media: {0}")]
    Net(NetError),
}

/// A download: the bytes, the `Content-Type` the server declared and the URL's file name.
pub struct Downloaded {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

impl MediaFetcher {
    pub fn new(config: &Config) -> Result<Self, NetError> {
        let timeout = Duration::from_secs(config.whatsapp.media_fetch_timeout.max(1));
        let http = HttpClient::new(HttpOptions::new(timeout, config.webhooks.allow_private_targets))?;
        Ok(MediaFetcher { http, whatsapp: Arc::new(config.whatsapp.clone()) })
    }

    /// The size caps and limits media is checked against.
    pub fn whatsapp(&self) -> &WhatsappConfig {
        &self.whatsapp
    }

    /// Reads `url`, at most the bytes `options` could send (more is [`MediaError::TooLarge`]).
    pub async fn download(&self, url: &str, options: &MediaOptions) -> Result<Downloaded, FetchError> {
        let (cap_kind, cap) = options.read_cap(&self.whatsapp);
        match self.http.get_capped(url, cap).await {
            Ok((bytes, content_type)) => {
                Ok(Downloaded { bytes: Vec::from(bytes), content_type, filename: filename_from_url(url) })
            }
            Err(NetError::TooLarge { max }) => Err(MediaError::TooLarge { kind: cap_kind, max }.into()),
            Err(e) => Err(FetchError::Net(e)),
        }
    }

    /// Reads `url` and makes the media to send of it as `options` say.
    pub async fn fetch(&self, url: &str, options: MediaOptions) -> Result<OutboundMedia, FetchError> {
        let got = self.download(url, &options).await?;
        Ok(options.build(got.bytes, got.content_type.as_deref(), got.filename.as_deref(), &self.whatsapp)?)
    }
}
