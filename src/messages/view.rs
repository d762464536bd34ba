//! The one view of a message that leaves the gateway: API answers, webhook events and the
//! dashboard all show a stored message this way.

use serde::{Deserialize, Serialize};

use crate::content::{ContactCard, Location, QuotedRef, Reaction};
use crate::db::MessageRow;
use crate::messages::media::store::MediaLinks;
use crate::time::rfc3339_ms;

/// Status-history entries that record a change to a message rather than a status; each is a
/// webhook event of its own.
pub const CHANGE_REACTION: &str = "reaction";
pub const CHANGE_EDITED: &str = "edited";
pub const CHANGE_REVOKED: &str = "revoked";
pub const CHANGE_POLL_VOTE: &str = "poll_vote";
/// This device marked the message read (no event: the tenant did it).
pub const CHANGE_READ_MARK: &str = "read_mark";

/// Whether a status-history entry records a change rather than a status.
pub fn is_change(status: &str) -> bool {
    [CHANGE_REACTION, CHANGE_EDITED, CHANGE_REVOKED, CHANGE_POLL_VOTE, CHANGE_READ_MARK].contains(&status)
}

/// A poll with its votes counted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PollOut {
    pub question: String,
    pub options: Vec<PollOptionOut>,
    /// Whether a voter may choose more than one option.
    pub multiple: bool,
}

/// One poll option and the number of voters who chose it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PollOptionOut {
    pub name: String,
    pub votes: usize,
}

/// A message as tenants see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct MessageOut {
    /// The gateway's message id (as in `/api/user/chat-history/{id}`).
    pub id: i64,
    /// The device's phone number.
    pub device: String,
    pub device_id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// The chat's WhatsApp id (`…@s.whatsapp.net`, or a group's `…@g.us`).
    pub chat: String,
    /// Who sent it: a phone number (digits) when known, else the sender's LID (`…@lid`).
    pub from: String,
    /// The sender's LID (`…@lid`) when WhatsApp addressed an inbound message by LID, also once
    /// `from` is the number behind it.
    #[serde(default)]
    pub sender_lid: Option<String>,
    pub to: String,
    pub text: Option<String>,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`, `location`,
    /// `contact`, `poll` or `unsupported`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `queued`, `sent`, `delivered`, `read`, `failed` or `received` (in an event: the status
    /// the event reports).
    pub status: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// Media details (`kind`, `mime`, `size`, `filename`, `caption`, `sha256`), where the
    /// bytes are (`state`: `pending`, `stored`, `failed` with `error`, `expired`, `skipped`),
    /// and links to them: `url` (with an API key) and `download_url` (signed, no key needed,
    /// until it expires).
    #[schema(value_type = Option<Object>)]
    pub media: Option<serde_json::Value>,
    pub error: Option<String>,
    /// What produced it: `whatsapp` (inbound), `api`, `auto_reply`, `plugin`, `webhook`,
    /// `scheduled`, `phone`.
    pub source: String,
    /// WhatsApp's id of the message.
    pub wa_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The point of a `location` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The cards of a `contact` message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactCard>,
    /// The question, options and vote counts of a `poll` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollOut>,
    /// The message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuotedRef>,
    /// Phone numbers mentioned in the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// Reactions, one per sender (`me` is this device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// When the text was last edited (RFC 3339); `previous_texts` holds the earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_texts: Vec<String>,
    /// When it was deleted for everyone (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// When this device marked it read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
    /// Sent as a forward of another message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// WhatsApp's name for the kind of an `unsupported` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// In a `message.reaction`, `.edited`, `.revoked` or `.poll_vote` event: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub change: Option<serde_json::Value>,
}

impl MessageOut {
    /// The message as it is stored now.
    pub fn of(row: &MessageRow) -> MessageOut {
        let media = row.media_meta().map(|m| {
            let mut value = serde_json::to_value(m).unwrap_or_default();
            if let Some(fields) = value.as_object_mut() {
                // Where the gateway keeps the bytes is its own business.
                for internal in ["blob_id", "key", "source"] {
                    fields.remove(internal);
                }
                if let Some(state) = &row.media_state {
                    fields.insert("state".into(), state.clone().into());
                }
            }
            value
        });
        MessageOut {
            id: row.id,
            device: row.device_phone.clone(),
            device_id: row.device_id,
            direction: row.direction.clone(),
            chat: row.chat.clone(),
            from: row.sender.clone(),
            sender_lid: row.sender_lid.clone(),
            to: row.recipient.clone(),
            text: row.text.clone(),
            kind: row.kind.clone(),
            status: row.status.clone(),
            push_name: row.push_name.clone(),
            is_group: row.is_group,
            media,
            error: row.error.clone(),
            source: row.source.clone(),
            wa_id: row.wa_id.clone(),
            created_at: rfc3339_ms(row.created_at),
            updated_at: rfc3339_ms(row.updated_at),
            ..MessageOut::details_of(row)
        }
    }

    /// The view with links to the media's bytes: `media.url` (the API path, with an API key)
    /// and `media.download_url` (signed, without a key, until it expires).
    pub fn with_links(mut self, links: &MediaLinks) -> MessageOut {
        let id = self.id;
        if let Some(fields) = self.media.as_mut().and_then(|m| m.as_object_mut()) {
            fields.insert("url".into(), links.api_url(id).into());
            fields.insert("download_url".into(), links.signed_url(id, crate::db::now_ms() / 1000).into());
        }
        self
    }

    /// The parts of the view that come from the message's details (the rest left empty).
    fn details_of(row: &MessageRow) -> MessageOut {
        let d = row.details();
        let poll = d.poll.as_ref().map(|p| PollOut {
            question: p.question.clone(),
            options: d.poll_counts().into_iter().map(|(name, votes)| PollOptionOut { name, votes }).collect(),
            multiple: p.multiple,
        });
        MessageOut {
            id: 0,
            device: String::new(),
            device_id: 0,
            direction: String::new(),
            chat: String::new(),
            from: String::new(),
            sender_lid: None,
            to: String::new(),
            text: None,
            kind: String::new(),
            status: String::new(),
            push_name: None,
            is_group: false,
            media: None,
            error: None,
            source: String::new(),
            wa_id: None,
            created_at: String::new(),
            updated_at: String::new(),
            location: d.location,
            contacts: d.contacts,
            poll,
            reply_to: d.reply_to,
            mentions: d.mentions,
            reactions: d.reactions,
            edited_at: d.edited_at,
            previous_texts: d.previous_texts,
            revoked_at: d.revoked_at,
            read_at: d.read_at,
            forwarded: d.forwarded,
            unsupported: d.unsupported,
            change: None,
        }
    }

    /// The message reporting one status change: `status`, with `detail` as the error when it
    /// is `failed` (and no error otherwise). A change (a reaction, an edit, ...) keeps the
    /// message's status and carries its detail as `change`.
    pub fn reporting(row: &MessageRow, status: &str, detail: Option<&str>) -> MessageOut {
        let mut view = MessageOut::of(row);
        if is_change(status) {
            view.change = detail.and_then(|d| serde_json::from_str(d).ok());
            return view;
        }
        view.error = if status == "failed" { detail.map(str::to_string).or(view.error) } else { None };
        view.status = status.to_string();
        view
    }
}
