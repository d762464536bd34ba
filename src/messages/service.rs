//! What a tenant does with messages: send text or media (from an upload, base64 or a URL),
//! read its history with filters, one message with its status changes, and export. Sends
//! honour `Idempotency-Key` before anything else: a retry of an accepted send gets the first
//! answer whatever the device or the allowance is now. The API and the dashboard both call
//! this; [`Outbound`] queues and sends.

use chrono::{DateTime, NaiveDate};

use super::check_text;
use super::keeper::{MediaBytes, MediaKeeper, Unavailable};
use super::media::{decode_base64, FetchError, MediaError, MediaFetcher, MediaOptions};
use super::outbound::{Outbound, SendError, SendRequest};
use crate::content::{
    self, check_contacts, check_mentions, check_typing, ContactCard, Details, Location, PollSpec, QuotedRef,
};
use crate::db::{Db, DeviceRow, MessageFilter, MessagePage, MessageRow, StatusEventRow};
use crate::devices::driver::OutboundMedia;
use crate::devices::find_device;
use crate::devices::manager::DeviceManager;
use crate::error::{ApiError, ApiResult};
use crate::phone::{is_lid, lid_jid, user_jid, Recipient};
use crate::tenants::{Tenant, TenantService};

pub(crate) mod actions;
pub mod chats;

/// What every send takes besides its content.
#[derive(Debug, Clone, Default)]
pub struct SendCommon {
    /// Device id or phone number.
    pub device: String,
    /// A phone number in any common form, or a group id.
    pub to: String,
    /// The message to quote: the gateway's message id, or a WhatsApp message id.
    pub reply_to: Option<String>,
    /// Milliseconds of "typing…" to show before the message goes.
    pub typing_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    /// Answer at once with `queued` instead of waiting for the driver.
    pub asynchronous: bool,
}

/// A text to send.
#[derive(Debug, Clone, Default)]
pub struct TextSend {
    pub common: SendCommon,
    pub text: String,
    /// Phone numbers mentioned in the text.
    pub mentions: Vec<String>,
}

/// What a send without media carries besides text.
#[derive(Debug, Clone)]
pub enum Shared {
    Location(Location),
    Contacts(Vec<ContactCard>),
    Poll(PollSpec),
}

/// Where the bytes of a media send come from.
#[derive(Debug, Clone)]
pub enum MediaSource {
    Upload {
        bytes: Vec<u8>,
        filename: Option<String>,
        content_type: Option<String>,
    },
    Url(String),
    /// Plain base64 or a data URL.
    Base64(String),
}

impl MediaSource {
    /// The request field errors about the content point at.
    fn field(&self) -> &'static str {
        match self {
            MediaSource::Upload { .. } => "file",
            MediaSource::Url(_) => "url",
            MediaSource::Base64(_) => "base64",
        }
    }
}

/// Media to send.
#[derive(Debug, Clone)]
pub struct MediaSend {
    pub common: SendCommon,
    pub caption: Option<String>,
    pub filename: Option<String>,
    /// `image`, `video`, `audio` or `document`; detected from the content when absent.
    pub kind: Option<String>,
    pub source: MediaSource,
}

/// History filters as text, the way query strings and forms carry them; empty is no filter.
#[derive(Debug, Clone, Default)]
pub struct HistorySearch {
    /// Device id or phone number.
    pub device: Option<String>,
    /// `in` or `out`.
    pub direction: Option<String>,
    /// A phone number or group id.
    pub chat: Option<String>,
    /// Who sent it: a phone number or a LID (`…@lid`).
    pub sender: Option<String>,
    /// Text to search for.
    pub q: Option<String>,
    pub status: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// The message's `type`.
    pub kind: Option<String>,
}

/// Where and how a checked send goes.
struct Queued {
    device: DeviceRow,
    to: Recipient,
    details: Details,
    idempotency_key: Option<String>,
    asynchronous: bool,
}

/// Message kinds, for the history filter, in the order a filter offers them.
pub const KINDS: [&str; 11] = [
    "text",
    "image",
    "video",
    "audio",
    "voice",
    "document",
    "sticker",
    "location",
    "contact",
    "poll",
    "unsupported",
];

/// Statuses a message can have, for the history filter.
const STATUSES: [&str; 6] = ["queued", "sent", "delivered", "read", "failed", "received"];

#[derive(Clone)]
pub struct MessageService {
    db: Db,
    outbound: Outbound,
    keeper: MediaKeeper,
    device_manager: DeviceManager,
    tenants: TenantService,
    media: MediaFetcher,
    country_code: String,
}

/// Media errors: too large is 413, the rest 422 on the field at fault (`source` for empty
/// media).
pub fn media_error(e: MediaError, source: &str) -> ApiError {
    match e {
        MediaError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        other => ApiError::validation(other.field().unwrap_or(source), other.to_string()),
    }
}

impl MessageService {
    pub fn new(
        db: Db,
        outbound: Outbound,
        keeper: MediaKeeper,
        device_manager: DeviceManager,
        tenants: TenantService,
        media: MediaFetcher,
        country_code: &str,
    ) -> Self {
        MessageService {
            db,
            outbound,
            keeper,
            device_manager,
            tenants,
            media,
            country_code: country_code.to_string(),
        }
    }

    fn recipient(&self, raw: &str, field: &str) -> ApiResult<Recipient> {
        Recipient::parse(raw, &self.country_code).map_err(|e| ApiError::validation(field, e.to_string()))
    }

    /// The first answer to a send made again with the same key, if there was one.
    async fn replay(&self, tenant: &Tenant, key: Option<&str>) -> ApiResult<Option<MessageRow>> {
        let Some(key) = key else { return Ok(None) };
        match self.outbound.replay(tenant.id, key).await? {
            // Keys are the account's: one a device this API key does not see used stays taken,
            // without showing that device's message.
            Some(row) if !tenant.sees(row.device_id) => Err(ApiError::Conflict(
                "this Idempotency-Key was used for a message of a device this API key does not see".into(),
            )),
            found => Ok(found),
        }
    }

    /// The tenant's message `id`, unless it is of a device the acting key does not see.
    pub(super) async fn own_message(&self, tenant: &Tenant, id: i64) -> ApiResult<Option<MessageRow>> {
        Ok(self.db.message(tenant.id, id).await?.filter(|m| tenant.sees(m.device_id)))
    }

    /// The device, recipient and details every send starts from, after the replay check:
    /// `Err(row)` is the first answer to a repeated idempotency key.
    async fn prepare(&self, tenant: &Tenant, common: &SendCommon) -> ApiResult<Result<Queued, MessageRow>> {
        if let Some(row) = self.replay(tenant, common.idempotency_key.as_deref()).await? {
            return Ok(Err(row));
        }
        let device = find_device(&self.db, &self.country_code, tenant, &common.device).await?;
        let to = self.recipient(&common.to, "to")?;
        let typing_ms = check_typing(common.typing_ms).map_err(invalid)?;
        let reply_to = match common.reply_to.as_deref() {
            Some(r) => Some(self.quoted(tenant, &device, &to, r).await?),
            None => None,
        };
        let details = Details { reply_to, typing_ms, ..Default::default() };
        Ok(Ok(Queued {
            device,
            to,
            details,
            idempotency_key: common.idempotency_key.clone(),
            asynchronous: common.asynchronous,
        }))
    }

    /// The message `reply_to` names: the gateway's id of a message of this tenant in the same
    /// chat, or a WhatsApp id (looked up on the device, else quoted by id alone).
    async fn quoted(
        &self,
        tenant: &Tenant,
        device: &DeviceRow,
        to: &Recipient,
        raw: &str,
    ) -> ApiResult<QuotedRef> {
        let row = match raw.parse::<i64>() {
            Ok(id) if id > 0 => {
                let row = self.own_message(tenant, id).await?;
                Some(row.ok_or_else(|| ApiError::validation("reply_to", "no message with this id"))?)
            }
            _ => {
                if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ApiError::validation(
                        "reply_to",
                        "must be a message id, or a WhatsApp message id of 1 to 128 visible characters",
                    ));
                }
                match self.db.message_id_by_wa_id(device.id, raw).await? {
                    Some(id) => self.own_message(tenant, id).await?,
                    None => None,
                }
            }
        };
        let Some(row) = row else {
            return Ok(QuotedRef {
                id: None,
                wa_id: raw.to_string(),
                sender: None,
                from_me: false,
                text: None,
            });
        };
        if row.device_id != device.id || row.chat != to.jid() {
            return Err(ApiError::validation("reply_to", "the message is not in this chat of this device"));
        }
        let Some(wa_id) = row.wa_id.clone() else {
            return Err(ApiError::validation("reply_to", "the message has not reached WhatsApp yet"));
        };
        let from_me = row.direction == "out";
        Ok(QuotedRef {
            id: Some(row.id),
            wa_id,
            sender: (!from_me).then(|| row.sender.clone()),
            from_me,
            text: row.text.as_deref().map(|t| crate::webhooks::truncate(t, 200)),
        })
    }

    /// Digits of a phone number given in any common form (contact cards, mentions).
    fn digits(&self, raw: &str) -> Result<String, String> {
        match Recipient::parse(raw, &self.country_code) {
            Ok(r) => {
                r.number().map(str::to_string).ok_or_else(|| "must be a phone number, not a group".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends a text through a connected device; waits until the driver took it unless
    /// `asynchronous`.
    pub async fn send_text(&self, tenant: &Tenant, send: TextSend) -> ApiResult<MessageRow> {
        let mut q = match self.prepare(tenant, &send.common).await? {
            Ok(q) => q,
            Err(first) => return Ok(first),
        };
        check_text(&send.text)?;
        q.details.mentions = check_mentions(send.mentions, |m| self.digits(m)).map_err(invalid)?;
        self.queue(tenant, q, Some(send.text), None, "message.send").await
    }

    /// Sends a location, contact cards or a poll through a connected device.
    pub async fn send_shared(
        &self,
        tenant: &Tenant,
        common: SendCommon,
        shared: Shared,
    ) -> ApiResult<MessageRow> {
        let mut q = match self.prepare(tenant, &common).await? {
            Ok(q) => q,
            Err(first) => return Ok(first),
        };
        let action = match shared {
            Shared::Location(l) => {
                q.details.location = Some(l.checked().map_err(invalid)?);
                "message.send_location"
            }
            Shared::Contacts(c) => {
                q.details.contacts = check_contacts(c, |p| self.digits(p)).map_err(invalid)?;
                "message.send_contact"
            }
            Shared::Poll(p) => {
                q.details.poll = Some(p.checked().map_err(invalid)?);
                "message.send_poll"
            }
        };
        let text = summary(&q.details);
        self.queue(tenant, q, text, None, action).await
    }

    /// Sends media through a connected device. A URL is downloaded only once the request is
    /// known to be sendable.
    pub async fn send_media(&self, tenant: &Tenant, send: MediaSend) -> ApiResult<MessageRow> {
        let q = match self.prepare(tenant, &send.common).await? {
            Ok(q) => q,
            Err(first) => return Ok(first),
        };
        let options = MediaOptions::parse(send.kind.as_deref(), send.caption, send.filename.as_deref())
            .map_err(|e| media_error(e, "type"))?;
        // Checked again by the send; checking first spares a download that cannot be sent.
        if self.device_manager.session(q.device.id).await.is_none() {
            return Err(SendError::DeviceNotConnected.into());
        }
        let field = send.source.field();
        let (bytes, declared, source_name) = match send.source {
            MediaSource::Upload { bytes, filename, content_type } => (bytes, content_type, filename),
            MediaSource::Base64(text) => {
                let decoded = decode_base64(&text).map_err(|e| media_error(e, "base64"))?;
                (decoded.bytes, decoded.mime, None)
            }
            MediaSource::Url(url) => match self.media.download(&url, &options).await {
                Ok(got) => (got.bytes, got.content_type, got.filename),
                Err(FetchError::Media(e)) => return Err(media_error(e, "url")),
                Err(e @ FetchError::Net(_)) => return Err(ApiError::validation("url", e.to_string())),
            },
        };
        let media = options
            .build(bytes, declared.as_deref(), source_name.as_deref(), self.media.whatsapp())
            .map_err(|e| media_error(e, field))?;
        self.queue(tenant, q, media.caption.clone(), Some(media), "message.send_media").await
    }

    /// Hands a checked API send to the device's queue and records it as `action`.
    async fn queue(
        &self,
        tenant: &Tenant,
        q: Queued,
        text: Option<String>,
        media: Option<OutboundMedia>,
        action: &str,
    ) -> ApiResult<MessageRow> {
        let row = self
            .outbound
            .send(SendRequest {
                tenant: tenant.id,
                package: tenant.package.clone(),
                device: q.device,
                to: q.to,
                text,
                media,
                details: q.details,
                source: "api",
                idempotency_key: q.idempotency_key,
                asynchronous: q.asynchronous,
                require_connected: true,
                activity: Some(tenant.activity(action, None)),
            })
            .await?;
        Ok(row)
    }

    /// The stored filter for history filters given as text.
    pub async fn filter(&self, tenant: &Tenant, q: &HistorySearch) -> ApiResult<MessageFilter> {
        let mut f =
            MessageFilter { devices: tenant.devices.ids().map(<[i64]>::to_vec), ..MessageFilter::default() };
        if let Some(d) = given(&q.device) {
            f.device_id = Some(find_device(&self.db, &self.country_code, tenant, d).await?.id);
        }
        if let Some(d) = given(&q.direction) {
            if d != "in" && d != "out" {
                return Err(ApiError::validation("direction", "must be `in` or `out`"));
            }
            f.direction = Some(d.to_string());
        }
        if let Some(c) = given(&q.chat) {
            f.chat = Some(if is_lid(c) {
                self.lid_chat(tenant, f.device_id, c).await?
            } else {
                self.recipient(c, "chat")?.jid()
            });
        }
        if let Some(s) = given(&q.sender) {
            f.sender = Some(if is_lid(s) {
                let lid = lid_jid(s)
                    .ok_or_else(|| ApiError::validation("sender", "not a valid LID; expected digits@lid"))?;
                self.lid_phone(tenant, f.device_id, &lid).await?.unwrap_or(lid)
            } else {
                self.recipient(s, "sender")?
                    .number()
                    .ok_or_else(|| {
                        ApiError::validation("sender", "a group cannot send; give a phone number or a LID")
                    })?
                    .to_string()
            });
        }
        if let Some(s) = given(&q.status) {
            if !STATUSES.contains(&s) {
                return Err(ApiError::validation(
                    "status",
                    format!("must be one of {}", STATUSES.join(", ")),
                ));
            }
            f.status = Some(s.to_string());
        }
        if let Some(k) = given(&q.kind) {
            if !KINDS.contains(&k) {
                return Err(ApiError::validation("type", format!("must be one of {}", KINDS.join(", "))));
            }
            f.kind = Some(k.to_string());
        }
        f.q = given(&q.q).map(str::to_string);
        if let Some(s) = given(&q.since) {
            f.since = Some(parse_time(s, "since")?);
        }
        if let Some(s) = given(&q.until) {
            f.until = Some(parse_time(s, "until")?);
        }
        Ok(f)
    }

    /// The chat a LID names in a history filter: the number's chat when the device (or, without
    /// one, any of the tenant's devices) knows the number behind it, since messages stored
    /// under the LID move to the number once it is known; else the LID's own chat.
    async fn lid_chat(&self, tenant: &Tenant, device: Option<i64>, chat: &str) -> ApiResult<String> {
        let lid = lid_jid(chat)
            .ok_or_else(|| ApiError::validation("chat", "not a valid LID; expected digits@lid"))?;
        let phone = self.lid_phone(tenant, device, &lid).await?;
        Ok(phone.map(|p| user_jid(&p)).unwrap_or(lid))
    }

    /// The number behind `lid` on the device, or without one on any of the tenant's devices.
    async fn lid_phone(&self, tenant: &Tenant, device: Option<i64>, lid: &str) -> ApiResult<Option<String>> {
        Ok(match device {
            Some(device) => self.db.lid_mapping(tenant.id, device, lid).await?.map(|m| m.phone),
            None => self.db.lid_phone_any_device(tenant.id, lid).await?,
        })
    }

    /// A page of the tenant's messages, newest first.
    pub async fn history(
        &self,
        tenant: &Tenant,
        q: &HistorySearch,
        limit: i64,
        offset: i64,
    ) -> ApiResult<MessagePage> {
        let filter = self.filter(tenant, q).await?;
        Ok(self.db.list_messages(tenant.id, &filter, limit, offset).await?)
    }

    /// One message with every status it went through, oldest first.
    pub async fn message(&self, tenant: &Tenant, id: i64) -> ApiResult<(MessageRow, Vec<StatusEventRow>)> {
        let row = self.own_message(tenant, id).await?.ok_or_else(|| ApiError::not_found("message"))?;
        let history = self.db.message_status_history(tenant.id, id).await?;
        Ok((row, history))
    }

    /// The bytes of a message's media (inbound or sent), while they are kept.
    pub async fn media(&self, tenant: &Tenant, id: i64) -> ApiResult<MediaBytes> {
        let row = self.own_message(tenant, id).await?.ok_or_else(|| ApiError::not_found("message"))?;
        self.keeper.bytes(&row).await.map_err(unavailable)
    }

    /// The bytes behind a signed download link, checked against its signature and expiry.
    pub async fn media_by_link(&self, id: i64, expires: i64, signature: &str) -> ApiResult<MediaBytes> {
        let now = crate::db::now_ms() / 1000;
        if !self.keeper.links().verify(id, expires, signature, now) {
            return Err(ApiError::Forbidden("the link is not valid, or it has expired".into()));
        }
        let row = self.db.message_any_tenant(id).await?.ok_or_else(|| ApiError::not_found("message"))?;
        self.keeper.bytes(&row).await.map_err(unavailable)
    }

    /// The filter of an export, recorded in the activity log (the caller streams the rows).
    pub async fn export(&self, tenant: &Tenant, q: &HistorySearch) -> ApiResult<MessageFilter> {
        let filter = self.filter(tenant, q).await?;
        self.tenants.record(tenant.activity("message.export", None)).await;
        Ok(filter)
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::DeviceNotConnected => ApiError::DeviceNotConnected(
                "the device is not connected; pair it or wait for it to reconnect".into(),
            ),
            SendError::Limit(l) => l.into(),
            SendError::Db(d) => d.into(),
        }
    }
}

/// A content check's refusal as the API's validation error.
pub fn invalid(e: content::Invalid) -> ApiError {
    ApiError::validation(e.field, e.message)
}

/// The text a location, contact or poll message is stored and searched with.
fn summary(d: &Details) -> Option<String> {
    if let Some(l) = &d.location {
        let label: Vec<&str> = [l.name.as_deref(), l.address.as_deref()].into_iter().flatten().collect();
        return (!label.is_empty()).then(|| label.join(", "));
    }
    if !d.contacts.is_empty() {
        return Some(d.contacts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    d.poll.as_ref().map(|p| p.question.clone())
}

/// Why media cannot be served, as the API's error.
fn unavailable(e: Unavailable) -> ApiError {
    match e {
        Unavailable::None => ApiError::not_found("media"),
        Unavailable::Expired => ApiError::Gone(e.to_string()),
        Unavailable::Store(m) => ApiError::Unavailable(m),
        Unavailable::Pending | Unavailable::Failed(_) | Unavailable::Skipped => {
            ApiError::Conflict(e.to_string())
        }
    }
}

/// A filter's value, unless it is empty.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn parse_time(raw: &str, field: &str) -> ApiResult<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis());
    }
    Err(ApiError::validation(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}
