//! Contacts: the list, one contact with its WhatsApp profile, block and unblock.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiQuery, Page, PageQuery, Tenant};
use super::ts;
use crate::devices::contacts::Contact;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact))
        .routes(routes!(block_contact))
        .routes(routes!(unblock_contact))
}

/// A contact of a device.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactOut {
    pub device_id: i64,
    /// The user JID (`…@s.whatsapp.net`), or the LID (`…@lid`) while the number is unknown.
    pub jid: String,
    /// The number (digits), when known.
    pub phone: Option<String>,
    /// The LID (`…@lid`), when the device knows it.
    pub lid: Option<String>,
    /// The name to show: the saved name, else the WhatsApp name.
    pub display_name: Option<String>,
    /// The name the account saved the contact under in its address book (full name, else
    /// first name), as WhatsApp syncs it from the phone.
    pub saved_name: Option<String>,
    /// The first name saved with it, when the address book has one.
    pub saved_first_name: Option<String>,
    /// The WhatsApp name (push name) from the contact's latest message.
    pub name: Option<String>,
    /// The "about" text, when the contact shows it (read when the contact is fetched).
    pub about: Option<String>,
    /// WhatsApp's URL of the profile picture (valid for a while), when there is one to see.
    pub picture_url: Option<String>,
    pub business: bool,
    /// The business's verified name.
    pub business_name: Option<String>,
    /// Whether this device blocked the contact (through the gateway).
    pub blocked: bool,
    /// When the latest message of the chat was stored.
    pub last_at: Option<String>,
    /// When the profile was read from WhatsApp (null: never).
    pub fetched_at: Option<String>,
}

impl From<Contact> for ContactOut {
    fn from(c: Contact) -> Self {
        let r = c.row;
        ContactOut {
            device_id: r.device_id,
            jid: r.jid,
            phone: c.phone,
            lid: c.lid,
            display_name: r.saved_name.clone().or_else(|| r.name.clone()),
            saved_name: r.saved_name,
            saved_first_name: r.saved_first_name,
            name: r.name,
            about: r.about,
            picture_url: r.picture_url,
            business: r.business,
            business_name: r.business_name,
            blocked: r.blocked,
            last_at: r.last_at.map(ts),
            fetched_at: r.fetched_at.map(ts),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactsQuery {
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// Device id or phone number; every device of the tenant when left out.
    pub device: Option<String>,
    /// Part of the number, JID, WhatsApp name or saved name (any case, up to 100 characters).
    pub q: Option<String>,
}

/// The tenant's contacts: people with a direct chat, the latest chat first, then the people of
/// the account's address book (as WhatsApp syncs it) without a chat.
#[utoipa::path(get, path = "/api/user/contacts", tag = "contacts", params(PageQuery, ContactsQuery),
    responses((status = 200, body = Page<ContactOut>), (status = 404, description = "No such device.")))]
async fn list_contacts(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<ContactsQuery>,
) -> ApiResult<Json<Page<ContactOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (contacts, total) =
        state.contacts.list(&tenant, q.device.as_deref(), q.q.as_deref(), limit, offset).await?;
    Ok(Json(Page { data: contacts.into_iter().map(Into::into).collect(), total, limit, offset }))
}

/// The contact of a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documents the path; read by `Path`.
struct ContactPath {
    /// A phone number, a user JID or a LID.
    #[param(schema_with = super::openapi::schemas::sender_text)]
    jid: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// The device (id or phone number) that asks.
    pub device: String,
    /// Read the profile from WhatsApp again even if it was read in the last day.
    #[serde(default, deserialize_with = "super::chats::flag")]
    pub refresh: Option<bool>,
}

/// One contact with its WhatsApp profile (about text, picture, business), read through the
/// device when not read in the last day.
#[utoipa::path(get, path = "/api/user/contacts/{jid}", tag = "contacts", params(ContactPath, ContactQuery),
    responses((status = 200, body = ContactOut), (status = 404, description = "No such device, or the number is not on WhatsApp."),
              (status = 409, description = "The device is not connected and knows nothing of the contact."),
              (status = 422, description = "Not a phone number, user JID or LID.")))]
async fn get_contact(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(jid): Path<String>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<Json<ContactOut>> {
    let contact = state.contacts.get(&tenant, &q.device, &jid, q.refresh.unwrap_or(false)).await?;
    Ok(Json(contact.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// The device (id or phone number) that blocks or unblocks.
    pub device: String,
}

/// Blocks a contact: WhatsApp stops delivering its messages to the account.
#[utoipa::path(post, path = "/api/user/contacts/{jid}/block", tag = "contacts", params(ContactPath, DeviceQuery),
    responses((status = 200, body = ContactOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a phone number, user JID or LID.")))]
async fn block_contact(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(jid): Path<String>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<ContactOut>> {
    Ok(Json(state.contacts.block(&tenant, &q.device, &jid, true).await?.into()))
}

/// Unblocks a contact.
#[utoipa::path(post, path = "/api/user/contacts/{jid}/unblock", tag = "contacts", params(ContactPath, DeviceQuery),
    responses((status = 200, body = ContactOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a phone number, user JID or LID.")))]
async fn unblock_contact(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(jid): Path<String>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<ContactOut>> {
    Ok(Json(state.contacts.block(&tenant, &q.device, &jid, false).await?.into()))
}
