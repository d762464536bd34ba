//! A device's WhatsApp groups: list, read, create, change, participants, invite links, join
//! and leave, under `/api/user/devices/{id}/groups`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Page, Tenant};
use super::messages::string_or_number;
use super::ts;
use crate::devices::groups::service::{Group, ParticipantsChanged};
use crate::devices::groups::{
    GroupChange, GroupSettings, MemberAddMode, Participant, ParticipantAction, ParticipantOutcome, Role,
};
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(join_group))
        .routes(routes!(get_group, patch_group))
        .routes(routes!(change_participants))
        .routes(routes!(get_invite, revoke_invite))
        .routes(routes!(leave_group))
}

/// The group of a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documents the path; read by `Path`.
struct GroupPath {
    #[param(schema_with = super::openapi::schemas::group_text)]
    group: String,
}

/// A group member.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ParticipantOut {
    /// The phone number (digits), when known.
    pub phone: Option<String>,
    /// The LID JID (`…@lid`), when WhatsApp named the member by it.
    pub lid: Option<String>,
    pub role: Role,
    pub is_admin: bool,
}

impl From<Participant> for ParticipantOut {
    fn from(p: Participant) -> Self {
        ParticipantOut { is_admin: p.role.is_admin(), phone: p.phone, lid: p.lid, role: p.role }
    }
}

/// A group as the device sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupOut {
    pub device_id: i64,
    /// The group id (`…@g.us`): send to it like to a phone number.
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    /// The creator's phone number (or LID).
    pub owner: Option<String>,
    pub created_at: Option<String>,
    pub settings: GroupSettings,
    /// Members, admins included.
    pub size: usize,
    /// Whether this device's account is an admin.
    pub is_admin: bool,
    /// The members (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ParticipantOut>>,
    /// Set when the device is offline and the answer comes from what it last knew: when
    /// that was (RFC 3339).
    pub cached_at: Option<String>,
}

impl GroupOut {
    fn of(g: Group, with_members: bool) -> Self {
        let info = g.info;
        GroupOut {
            device_id: g.device.id,
            size: info.participants.len(),
            participants: with_members.then(|| info.participants.into_iter().map(Into::into).collect()),
            jid: info.jid,
            subject: info.subject,
            description: info.description,
            owner: info.owner,
            created_at: info.created_at.map(crate::time::rfc3339),
            settings: info.settings,
            is_admin: g.is_admin,
            cached_at: g.cached_at.map(ts),
        }
    }
}

/// What happened to one participant of a change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ParticipantResultOut {
    pub phone: Option<String>,
    pub lid: Option<String>,
    /// WhatsApp's code: 200 done, 403 not allowed (e.g. their privacy settings), 404 not on
    /// WhatsApp (or not a member), 408 left recently, 409 already a member.
    pub status: u16,
    /// `added`, `removed`, `promoted`, `demoted`, `not_allowed`, `not_on_whatsapp`,
    /// `not_a_member`, `left_recently`, `already_a_member` or `failed`.
    pub result: &'static str,
}

fn result_of(action: ParticipantAction, o: ParticipantOutcome) -> ParticipantResultOut {
    let result = match (o.status, action) {
        (200, ParticipantAction::Add) => "added",
        (200, ParticipantAction::Remove) => "removed",
        (200, ParticipantAction::Promote) => "promoted",
        (200, ParticipantAction::Demote) => "demoted",
        (403, _) => "not_allowed",
        (404, ParticipantAction::Add) => "not_on_whatsapp",
        (404, _) => "not_a_member",
        (408, _) => "left_recently",
        (409, _) => "already_a_member",
        _ => "failed",
    };
    ParticipantResultOut { phone: o.participant.phone, lid: o.participant.lid, status: o.status, result }
}

/// The groups the device is in, by subject (without members). While the device is offline,
/// what it last knew (`cached_at` set).
#[utoipa::path(get, path = "/api/user/devices/{id}/groups", tag = "groups",
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = Page<GroupOut>), (status = 404, description = "No such device."),
              (status = 503, description = "WhatsApp failed.")))]
async fn list_groups(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(device): Path<String>,
) -> ApiResult<Json<Page<GroupOut>>> {
    let groups = state.groups.list(&tenant, &device).await?;
    let data: Vec<GroupOut> = groups.into_iter().map(|g| GroupOut::of(g, false)).collect();
    let total = data.len() as i64;
    Ok(Json(Page { data, total, limit: total, offset: 0 }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateGroupIn {
    /// 1 to 100 characters.
    #[schema(pattern = r"\S", max_length = 100)]
    pub subject: String,
    /// Phone numbers to add (1 to 256), as for sending.
    #[serde(deserialize_with = "numbers")]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 256)]
    pub participants: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedGroupOut {
    pub group: GroupOut,
    /// What happened to each participant asked for.
    pub participants: Vec<ParticipantResultOut>,
}

/// Creates a group of the device and the participants; the device is its admin.
#[utoipa::path(post, path = "/api/user/devices/{id}/groups", tag = "groups", request_body = CreateGroupIn,
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 201, body = CreatedGroupOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "A blank subject or a participant that is not a phone number.")))]
async fn create_group(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(device): Path<String>,
    ApiJson(body): ApiJson<CreateGroupIn>,
) -> ApiResult<(StatusCode, Json<CreatedGroupOut>)> {
    let (group, outcomes) = state.groups.create(&tenant, &device, &body.subject, &body.participants).await?;
    let participants = outcomes.into_iter().map(|o| result_of(ParticipantAction::Add, o)).collect();
    Ok((StatusCode::CREATED, Json(CreatedGroupOut { group: GroupOut::of(group, true), participants })))
}

/// One group with its members. While the device is offline, what it last knew.
#[utoipa::path(get, path = "/api/user/devices/{id}/groups/{group}", tag = "groups",
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = GroupOut), (status = 404, description = "No such device or group."),
              (status = 422, description = "Not a group id.")))]
async fn get_group(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
) -> ApiResult<Json<GroupOut>> {
    Ok(Json(GroupOut::of(state.groups.get(&tenant, &device, &group).await?, true)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchGroupIn {
    #[schema(min_length = 1, max_length = 100)]
    pub subject: Option<String>,
    /// Up to 2048 characters; empty deletes the description.
    #[schema(max_length = 2048)]
    pub description: Option<String>,
    /// Only admins may send messages.
    pub announce: Option<bool>,
    /// Only admins may change the subject, description and settings.
    pub locked: Option<bool>,
    pub member_add_mode: Option<MemberAddMode>,
}

/// Changes the subject, description or settings (admins; in an unlocked group any member may
/// change the subject and description).
#[utoipa::path(patch, path = "/api/user/devices/{id}/groups/{group}", tag = "groups", request_body = PatchGroupIn,
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = GroupOut), (status = 403, description = "The device is not an admin."),
              (status = 404, description = "No such device or group."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Nothing to change, or a value out of range.")))]
async fn patch_group(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
    ApiJson(b): ApiJson<PatchGroupIn>,
) -> ApiResult<Json<GroupOut>> {
    let change = GroupChange {
        subject: b.subject,
        description: b.description,
        announce: b.announce,
        locked: b.locked,
        member_add_mode: b.member_add_mode,
    };
    Ok(Json(GroupOut::of(state.groups.update(&tenant, &device, &group, change).await?, true)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ParticipantsIn {
    pub action: ParticipantAction,
    /// Phone numbers (1 to 256), as for sending.
    #[serde(deserialize_with = "numbers")]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 256)]
    pub participants: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ParticipantsOut {
    pub action: ParticipantAction,
    pub participants: Vec<ParticipantResultOut>,
}

/// Adds, removes, promotes or demotes participants, answering for each what happened (a
/// participant WhatsApp refused does not fail the others).
#[utoipa::path(post, path = "/api/user/devices/{id}/groups/{group}/participants", tag = "groups",
    request_body = ParticipantsIn,
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = ParticipantsOut), (status = 403, description = "The device is not an admin."),
              (status = 404, description = "No such device or group."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a group id, or a participant that is not a phone number.")))]
async fn change_participants(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
    ApiJson(b): ApiJson<ParticipantsIn>,
) -> ApiResult<Json<ParticipantsOut>> {
    let ParticipantsChanged { action, outcomes } =
        state.groups.participants_change(&tenant, &device, &group, b.action, &b.participants).await?;
    let participants = outcomes.into_iter().map(|o| result_of(action, o)).collect();
    Ok(Json(ParticipantsOut { action, participants }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteOut {
    /// `https://chat.whatsapp.com/<code>`.
    pub invite_link: String,
}

/// The group's invite link (admins).
#[utoipa::path(get, path = "/api/user/devices/{id}/groups/{group}/invite", tag = "groups",
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = InviteOut), (status = 403, description = "The device is not an admin."),
              (status = 404, description = "No such device or group."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a group id, or a participant that is not a phone number.")))]
async fn get_invite(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
) -> ApiResult<Json<InviteOut>> {
    Ok(Json(InviteOut { invite_link: state.groups.invite(&tenant, &device, &group, false).await? }))
}

/// Revokes the invite link; answers the new one.
#[utoipa::path(delete, path = "/api/user/devices/{id}/groups/{group}/invite", tag = "groups",
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = InviteOut), (status = 403, description = "The device is not an admin."),
              (status = 404, description = "No such device or group."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a group id, or a participant that is not a phone number.")))]
async fn revoke_invite(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
) -> ApiResult<Json<InviteOut>> {
    Ok(Json(InviteOut { invite_link: state.groups.invite(&tenant, &device, &group, true).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct JoinIn {
    /// An invite link `https://chat.whatsapp.com/<code>`, or the code.
    pub invite: String,
}

/// Joins a group by invite link.
#[utoipa::path(post, path = "/api/user/devices/{id}/groups/join", tag = "groups", request_body = JoinIn,
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = GroupOut), (status = 404, description = "No such device, or no group has this link."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not an invite link.")))]
async fn join_group(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(device): Path<String>,
    ApiJson(b): ApiJson<JoinIn>,
) -> ApiResult<Json<GroupOut>> {
    Ok(Json(GroupOut::of(state.groups.join(&tenant, &device, &b.invite).await?, true)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeftOut {
    pub group: String,
    pub left: bool,
}

/// Leaves a group.
#[utoipa::path(post, path = "/api/user/devices/{id}/groups/{group}/leave", tag = "groups",
    params(("id" = String, Path, description = "The device's id or phone number."),
           GroupPath),
    responses((status = 200, body = LeftOut), (status = 404, description = "No such device or group."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a group id, or a participant that is not a phone number.")))]
async fn leave_group(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((device, group)): Path<(String, String)>,
) -> ApiResult<Json<LeftOut>> {
    state.groups.leave(&tenant, &device, &group).await?;
    Ok(Json(LeftOut { group: crate::devices::groups::service::group_jid(&group, "group")?, left: true }))
}

/// A list of phone numbers given as strings or JSON numbers.
fn numbers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Number(#[serde(deserialize_with = "string_or_number")] String);
    Ok(Vec::<Number>::deserialize(d)?.into_iter().map(|n| n.0).collect())
}
