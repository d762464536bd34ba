//! Simulator control: plays the phone side when `whatsapp.driver = "simulator"`.
//! Admin-only; every route answers 404 with the real driver.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Admin, ApiJson, ApiQuery, WireJson};
use super::messages::string_or_number;
use crate::content::{ContactCard, Location, PollSpec};
use crate::db::DeviceRow;
use crate::devices::driver::{ChatChange, ReceiptKind, SavedName};
use crate::devices::simulator::{
    SimEdit, SimError, SimInbound, SimInboundMedia, SimPollVote, SimReaction, SimTarget, Simulator,
    OUTBOX_CAP,
};
use crate::error::{ApiError, ApiResult};
use crate::phone::{normalize_device_phone, ChatAddress};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sim_scan))
        .routes(routes!(sim_inbound))
        .routes(routes!(sim_outbox))
        .routes(routes!(sim_disconnect))
        .routes(routes!(sim_receipt))
        .routes(routes!(sim_logout))
        .routes(routes!(sim_lid_mapping))
        .routes(routes!(sim_create_group))
        .routes(routes!(sim_group_participants))
        .routes(routes!(sim_update_group))
        .routes(routes!(sim_contact_profile))
        .routes(routes!(sim_chat_state))
        .routes(routes!(sim_saved_name))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimLidMappingIn {
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// The LID: `<digits>` or `<digits>@lid`.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,24}(@lid)?$")]
    pub lid: String,
    /// The phone number behind it.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub phone: String,
}

/// WhatsApp tells the device the phone number behind a LID. Answers once the gateway stored
/// it (messages stored under the LID then show the number, and `contact.resolved` is emitted
/// when the mapping is new or changed).
#[utoipa::path(post, path = "/api/admin/simulator/lid-mapping", tag = "simulator", request_body = SimLidMappingIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device is not connected, or the gateway did not store the mapping.")))]
async fn sim_lid_mapping(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimLidMappingIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    let phone = normalize_device_phone(&body.phone, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation("phone", e.to_string()))?;
    sim.lid_mapping(device.id, &body.lid, &phone).await?;
    let lid = crate::phone::lid_jid(&body.lid).unwrap_or(body.lid);
    Ok(Json(serde_json::json!({ "device": device.id, "lid": lid, "phone": phone })))
}

/// A number as people write it, to digits; a validation error naming `field` otherwise.
fn number(state: &AppState, field: &str, input: &str) -> ApiResult<String> {
    normalize_device_phone(input, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation(field, e.to_string()))
}

fn numbers(state: &AppState, field: &str, inputs: &[String]) -> ApiResult<Vec<String>> {
    inputs.iter().map(|n| number(state, field, n)).collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimCreateGroupIn {
    /// The contact who creates the group (its superadmin).
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub creator: String,
    #[schema(min_length = 1, max_length = 100)]
    pub subject: String,
    /// The other members: contacts, and devices' numbers (those devices join the group).
    #[schema(max_items = 256)]
    pub members: Vec<String>,
}

/// A contact creates a group on the simulated network; member devices hear `group.joined`.
#[utoipa::path(post, path = "/api/admin/simulator/groups", tag = "simulator", request_body = SimCreateGroupIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 422, description = "A number or the subject is not valid.")))]
async fn sim_create_group(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimCreateGroupIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let creator = number(&state, "creator", &body.creator)?;
    let members = numbers(&state, "members", &body.members)?;
    let group = sim.create_group(&creator, &body.subject, &members)?;
    Ok(Json(serde_json::json!({ "group": group })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimGroupParticipantsIn {
    /// The group id (`…@g.us`).
    pub group: String,
    /// The member acting (a contact's number); removing only itself, it leaves.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub by: String,
    pub action: crate::devices::groups::ParticipantAction,
    #[schema(min_items = 1, max_items = 256)]
    pub participants: Vec<String>,
}

/// A group member adds, removes, promotes or demotes members (or leaves); member devices hear
/// `group.participants` (`group.joined` / `group.left` for the device itself).
#[utoipa::path(post, path = "/api/admin/simulator/groups/participants", tag = "simulator",
    request_body = SimGroupParticipantsIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 422, description = "No such group with that member, not allowed, or a number that is not valid.")))]
async fn sim_group_participants(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimGroupParticipantsIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let by = number(&state, "by", &body.by)?;
    let who = numbers(&state, "participants", &body.participants)?;
    let outcomes = sim.group_participants(&body.group, &by, body.action, &who)?;
    let results: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| serde_json::json!({ "participant": o.participant.id(), "status": o.status }))
        .collect();
    Ok(Json(serde_json::json!({ "group": body.group, "participants": results })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimUpdateGroupIn {
    pub group: String,
    /// The member making the change.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub by: String,
    #[schema(min_length = 1, max_length = 100)]
    pub subject: Option<String>,
    #[schema(max_length = 2048)]
    pub description: Option<String>,
    pub announce: Option<bool>,
    pub locked: Option<bool>,
    pub member_add_mode: Option<crate::devices::groups::MemberAddMode>,
}

/// A group member changes the subject, description or settings; member devices hear
/// `group.updated`.
#[utoipa::path(post, path = "/api/admin/simulator/groups/update", tag = "simulator", request_body = SimUpdateGroupIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 422, description = "No such group with that member, or not allowed.")))]
async fn sim_update_group(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<SimUpdateGroupIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let by = number(&state, "by", &b.by)?;
    let change = crate::devices::groups::GroupChange {
        subject: b.subject,
        description: b.description,
        announce: b.announce,
        locked: b.locked,
        member_add_mode: b.member_add_mode,
    };
    sim.update_group(&b.group, &by, &change)?;
    Ok(Json(serde_json::json!({ "group": b.group })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimContactIn {
    /// The contact's number.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub phone: String,
    /// The "about" text it shows.
    #[schema(max_length = 500)]
    pub about: Option<String>,
    /// Its profile picture's URL.
    #[schema(max_length = 2048)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub business: bool,
    #[schema(max_length = 200)]
    pub business_name: Option<String>,
}

/// A contact sets what it shows of itself (about text, picture, business); devices read it
/// through `GET /api/user/contacts/{jid}`.
#[utoipa::path(post, path = "/api/admin/simulator/contacts", tag = "simulator", request_body = SimContactIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 422, description = "Not a phone number.")))]
async fn sim_contact_profile(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<SimContactIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let phone = number(&state, "phone", &b.phone)?;
    for (field, value, max) in [
        ("about", &b.about, 500),
        ("picture_url", &b.picture_url, 2048),
        ("business_name", &b.business_name, 200),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(ApiError::validation(field, format!("must be at most {max} characters")));
        }
    }
    let profile = crate::devices::driver::ContactProfile {
        about: b.about,
        picture_url: b.picture_url,
        business: b.business,
        business_name: b.business_name,
        lid: None,
    };
    sim.set_profile(&phone, profile)?;
    Ok(Json(serde_json::json!({ "phone": phone })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimChatStateIn {
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// The chat: a phone number, a user JID, a LID (`…@lid`) or a group id (`…@g.us`).
    #[schema(schema_with = super::openapi::schemas::chat_text)]
    pub chat: String,
    /// Archives (`true`) or unarchives the chat.
    pub archived: Option<bool>,
    /// Pins (`true`) or unpins the chat.
    pub pinned: Option<bool>,
    /// Mutes the chat with no end (`true`) or unmutes it.
    pub muted: Option<bool>,
    /// Mutes the chat until then (RFC 3339; a past time leaves it unmuted); wins over `muted`.
    pub muted_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The account's phone archives, pins or mutes a chat (each field given is one change, synced
/// to the device as WhatsApp's app state does). Answers once the gateway stored every change;
/// `GET /api/user/chats` then shows it.
#[utoipa::path(post, path = "/api/admin/simulator/chat-state", tag = "simulator", request_body = SimChatStateIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device is not connected, or the gateway did not store the change."),
              (status = 422, description = "Not a chat.")))]
async fn sim_chat_state(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<SimChatStateIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &b.device).await?;
    let chat = ChatAddress::parse(&b.chat, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation("chat", e.to_string()))?
        .jid();
    let muted = match (b.muted_until, b.muted) {
        (Some(until), _) => Some(ChatChange::Muted { until: Some(until) }),
        (None, Some(true)) => Some(ChatChange::Muted { until: None }),
        (None, Some(false)) => Some(ChatChange::Unmuted),
        (None, None) => None,
    };
    let changes = [b.archived.map(ChatChange::Archived), b.pinned.map(ChatChange::Pinned), muted];
    for change in changes.into_iter().flatten() {
        sim.chat_state(device.id, &chat, change).await?;
    }
    Ok(Json(serde_json::json!({ "device": device.id, "chat": chat })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimSavedNameIn {
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// The contact: a phone number, a user JID or a LID (`…@lid`).
    #[schema(schema_with = super::openapi::schemas::sender_text)]
    pub contact: String,
    /// The full name it is saved under.
    #[schema(max_length = 200)]
    pub full_name: Option<String>,
    /// The first name it is saved under.
    #[schema(max_length = 200)]
    pub first_name: Option<String>,
}

/// The account saves a contact in its phone's address book (synced to the device as
/// WhatsApp's app state does). Answers once the gateway stored it; the contacts list then
/// shows it as `saved_name`.
#[utoipa::path(post, path = "/api/admin/simulator/saved-name", tag = "simulator", request_body = SimSavedNameIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device is not connected, or the gateway did not store the name."),
              (status = 422, description = "Not a phone number, user JID or LID, or a name too long.")))]
async fn sim_saved_name(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<SimSavedNameIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &b.device).await?;
    let contact = ChatAddress::parse(&b.contact, &state.config.whatsapp.default_country_code)
        .ok()
        .filter(|c| !c.is_group())
        .ok_or_else(|| ApiError::validation("contact", "must be a phone number, a user JID or a LID"))?
        .jid();
    for (field, value) in [("full_name", &b.full_name), ("first_name", &b.first_name)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(ApiError::validation(field, "must be at most 200 characters"));
        }
    }
    let name = SavedName { full_name: b.full_name, first_name: b.first_name };
    sim.saved_name(device.id, &contact, name).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "contact": contact })))
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Storage(d) => d.into(),
            SimError::UnknownMessage(_) => ApiError::NotFound(e.to_string()),
            SimError::Invalid(m) => ApiError::validation("body", m),
            other => ApiError::Conflict(other.to_string()),
        }
    }
}

fn simulator(state: &AppState) -> ApiResult<&Simulator> {
    state.simulator.as_deref().ok_or_else(|| {
        ApiError::NotFound("the simulator runs only with whatsapp.driver = \"simulator\"".into())
    })
}

/// A device by id or phone, across tenants (a phone shared by two tenants is ambiguous).
async fn find_device(state: &AppState, reference: &str) -> ApiResult<DeviceRow> {
    if let Ok(id) = reference.trim().parse::<i64>() {
        if let Some(d) = state.db.system_device(id).await? {
            return Ok(d);
        }
    }
    let phone = normalize_device_phone(reference, &state.config.whatsapp.default_country_code)
        .map_err(|_| ApiError::not_found("device"))?;
    let mut found = state.db.system_devices_by_phone(&phone).await?;
    match found.len() {
        0 => Err(ApiError::not_found("device")),
        1 => Ok(found.remove(0)),
        _ => {
            Err(ApiError::Conflict("several tenants have a device with this phone; use the device id".into()))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimDeviceIn {
    /// Device id or phone number.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
}

/// What a simulator action did (the fields depend on the action).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the `json!` answers below.
pub struct SimOut {
    /// The device's id.
    pub device: Option<i64>,
    /// `inbound`: WhatsApp's id of the message.
    pub id: Option<String>,
    pub scanned: Option<bool>,
    pub disconnected: Option<bool>,
    pub logged_out: Option<bool>,
    /// `receipt`: the message as given, and the receipt.
    pub message_id: Option<String>,
    pub status: Option<String>,
    /// `lid-mapping`: the LID (`…@lid`) and the phone number stored for it.
    pub lid: Option<String>,
    pub phone: Option<String>,
}

/// What the gateway sent through a simulated device.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents `sim_outbox`'s answer.
pub struct SimOutboxOut {
    /// The messages, oldest first; each has `seq`, its place among everything the device sent.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Value>,
}

const NOT_SIMULATOR: &str = "No such device, or the driver is not the simulator.";

/// The phone scans the device's current QR code; the device becomes `connected`.
#[utoipa::path(post, path = "/api/admin/simulator/scan", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "No QR code to scan, or several tenants have a device with this phone.")))]
async fn sim_scan(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.scan(device.id).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "scanned": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimInboundIn {
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// The sender's phone number; may be left out when `from_lid` is given (the number stays
    /// hidden, as WhatsApp does for LID senders).
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(value_type = Option<super::openapi::schemas::PhoneNumber>)]
    pub from: String,
    /// The sender's LID (`<digits>` or `<digits>@lid`): the message is addressed by LID, with
    /// the number beside it when `from` is given too.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,24}(@lid)?$")]
    pub from_lid: Option<String>,
    /// The text (or the caption of `media`); required unless another kind's field is given.
    #[serde(default)]
    pub text: Option<String>,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`, `location`,
    /// `contact`, `poll`, `reaction`, `edit`, `revoke` or `poll_vote`; taken from the field
    /// given when left out.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `{kind, mime, base64, filename?, caption?}`.
    #[serde(default)]
    pub media: Option<SimInboundMedia>,
    /// `{latitude, longitude, name?, address?}`.
    #[serde(default)]
    pub location: Option<Location>,
    /// `{name, phone}`.
    #[serde(default)]
    pub contact: Option<ContactCard>,
    /// `{question, options, multiple?}`.
    #[serde(default)]
    pub poll: Option<PollSpec>,
    /// `{message, emoji}`: `message` is the target's WhatsApp id.
    #[serde(default)]
    pub reaction: Option<SimReaction>,
    /// `{message, text}`.
    #[serde(default)]
    pub edit: Option<SimEdit>,
    /// `{message}`.
    #[serde(default)]
    pub revoke: Option<SimTarget>,
    /// `{message, options}`: the options' texts.
    #[serde(default)]
    pub poll_vote: Option<SimPollVote>,
    /// The WhatsApp id of the message this one quotes.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub reply_to: Option<String>,
    /// Who wrote the quoted message: a phone number or a LID (`<digits>@lid`).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub reply_to_from: Option<String>,
    /// Phone numbers (or LIDs, `<digits>@lid`) mentioned in the text.
    #[serde(default)]
    pub mentions: Vec<String>,
    pub push_name: Option<String>,
    /// WhatsApp message id, up to 128 characters (random when absent or blank); sending the
    /// same id twice stores it once.
    #[schema(max_length = 128)]
    pub id: Option<String>,
    /// A group id (`…@g.us`, or just its digits) when the message is posted in a group.
    #[schema(pattern = r"^[0-9]{1,32}(-[0-9]{1,31})?(@g\.us)?$")]
    pub group: Option<String>,
}

/// A message arrives at the device. Answers once the gateway has stored it.
#[utoipa::path(post, path = "/api/admin/simulator/inbound", tag = "simulator", request_body = SimInboundIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device is not connected, or the gateway did not store the message.")))]
async fn sim_inbound(
    State(state): State<AppState>,
    _admin: Admin,
    WireJson(body): WireJson<SimInboundIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    let from = if body.from.trim().is_empty() && body.from_lid.is_some() {
        String::new()
    } else {
        normalize_device_phone(&body.from, &state.config.whatsapp.default_country_code)
            .map_err(|e| ApiError::validation("from", e.to_string()))?
    };
    let inbound = SimInbound {
        from,
        from_lid: body.from_lid,
        text: body.text,
        kind: body.kind,
        media: body.media,
        location: body.location,
        contact: body.contact,
        poll: body.poll,
        reaction: body.reaction,
        edit: body.edit,
        revoke: body.revoke,
        poll_vote: body.poll_vote,
        reply_to: body.reply_to,
        reply_to_from: body.reply_to_from,
        mentions: body.mentions,
        push_name: body.push_name,
        id: body.id,
        group: body.group,
    };
    let wa_id = sim.inbound(device.id, inbound).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "id": wa_id })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Device id or phone number.
    pub device: String,
    /// Only entries whose `seq` is above this (the last `seq` seen), to follow the outbox;
    /// empty or absent: from the oldest kept.
    #[param(value_type = Option<u64>, minimum = 0)]
    pub after: Option<String>,
    /// At most this many entries, 1 to 10000 (default all).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// What the gateway sent through the device, oldest first.
#[utoipa::path(get, path = "/api/admin/simulator/outbox", tag = "simulator", params(OutboxQuery),
    responses((status = 200, body = SimOutboxOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "Several tenants have a device with this phone.")))]
async fn sim_outbox(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = q.limit.unwrap_or(OUTBOX_CAP);
    if !(1..=OUTBOX_CAP).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 10000"));
    }
    let after = match q.after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::validation("after", "must be a whole number, 0 or more"))?,
    };
    let sim = simulator(&state)?;
    let device = find_device(&state, &q.device).await?;
    Ok(Json(serde_json::json!({ "data": sim.outbox_after(device.id, after, limit) })))
}

/// The connection drops; the gateway reconnects by itself.
#[utoipa::path(post, path = "/api/admin/simulator/disconnect", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device has no session.")))]
async fn sim_disconnect(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.disconnect(device.id)?;
    Ok(Json(serde_json::json!({ "device": device.id, "disconnected": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimReceiptIn {
    /// The gateway's message id, or WhatsApp's id of the message.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub message_id: String,
    #[schema(value_type = ReceiptStatus)]
    pub status: String,
}

/// What the recipient's phone reports.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `SimReceiptIn::status`.
pub enum ReceiptStatus {
    Delivered,
    Read,
}

/// The recipient's phone reports a message delivered or read.
#[utoipa::path(post, path = "/api/admin/simulator/receipt", tag = "simulator", request_body = SimReceiptIn,
    responses((status = 200, body = SimOut), (status = 404, description = "No such message, or the driver is not the simulator."),
              (status = 409, description = "The message has not been sent yet.")))]
async fn sim_receipt(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimReceiptIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let kind = match body.status.as_str() {
        "delivered" => ReceiptKind::Delivered,
        "read" => ReceiptKind::Read,
        _ => return Err(ApiError::validation("status", "must be `delivered` or `read`")),
    };
    let wa_id = match body.message_id.parse::<i64>() {
        Ok(id) => match state.db.system_message_wa_id(id).await? {
            Some((_, Some(wa))) => wa,
            Some((_, None)) => return Err(ApiError::Conflict("that message has not been sent yet".into())),
            None => body.message_id.clone(),
        },
        Err(_) => body.message_id.clone(),
    };
    sim.receipt(&wa_id, kind)?;
    Ok(Json(serde_json::json!({ "message_id": body.message_id, "status": body.status })))
}

/// The phone unlinks the device; its status becomes `logged_out`.
#[utoipa::path(post, path = "/api/admin/simulator/logout", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200, body = SimOut), (status = 404, description = NOT_SIMULATOR),
              (status = 409, description = "The device has no session.")))]
async fn sim_logout(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.logout(device.id).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "logged_out": true })))
}
