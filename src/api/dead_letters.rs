//! The operator's list of inbound messages the gateway gave up storing (dead letters).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, Admin, ApiQuery, Page, PageQuery};
use super::ts;
use crate::db::dead_letters::DeadLetterRow;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_dead_letters))
}

/// An inbound message that could not be stored after several attempts. It was acknowledged to
/// WhatsApp; the tenant's history has a `failed` row in its place (`message_id`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetterOut {
    pub id: i64,
    pub tenant_id: i64,
    pub device_id: i64,
    /// WhatsApp's id of the message.
    pub wa_id: String,
    pub chat: String,
    pub sender: String,
    /// The message as it arrived (text, media, push name, time).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Why it could not be stored.
    pub reason: String,
    /// Attempts to store it.
    pub attempts: i64,
    /// The `failed` row in the tenant's history, when it could be stored.
    pub message_id: Option<i64>,
    pub created_at: String,
}

impl From<DeadLetterRow> for DeadLetterOut {
    fn from(r: DeadLetterRow) -> Self {
        DeadLetterOut {
            id: r.id,
            tenant_id: r.user_id,
            device_id: r.device_id,
            wa_id: r.wa_id,
            chat: r.chat,
            sender: r.sender,
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
            reason: r.reason,
            attempts: r.attempts,
            message_id: r.message_id,
            created_at: ts(r.created_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only this tenant's (its id; empty: every tenant's).
    #[param(value_type = Option<i64>)]
    pub tenant: Option<String>,
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
}

/// Dead letters, newest first.
#[utoipa::path(get, path = "/api/admin/dead-letters", tag = "admin", params(PageQuery, DeadLetterQuery),
    responses((status = 200, body = Page<DeadLetterOut>)))]
async fn list_dead_letters(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> ApiResult<Json<Page<DeadLetterOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let tenant = match q.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| ApiError::validation("tenant", "must be a tenant id"))?),
    };
    let (rows, total) = state.db.list_dead_letters(tenant, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(Into::into).collect(), total, limit, offset }))
}
