//! Keyword auto-reply rules: `GET|POST /api/user/auto-reply`, `GET|PUT|DELETE /api/user/auto-reply/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::messages::opt_string_or_number;
use super::ts;
use crate::db::rules::RuleRow;
use crate::error::{ApiError, ApiResult};
use crate::rules::service::RuleChange;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, create_rule)).routes(routes!(
        get_rule,
        update_rule,
        delete_rule
    ))
}

/// An auto-reply rule.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RuleOut {
    pub id: i64,
    /// The word, phrase or regex to look for.
    pub keyword: String,
    /// `exact`, `contains`, `starts_with` or `regex`.
    #[serde(rename = "match")]
    pub match_mode: String,
    /// The answer; `{name}`, `{phone}`, `{message}` and `{date}` are filled in.
    pub reply: String,
    /// The device's phone number, or `null` for every device of the tenant.
    pub device: Option<String>,
    pub device_id: Option<i64>,
    pub case_sensitive: bool,
    /// Rules are tried highest priority first (then oldest first).
    pub priority: i64,
    pub enabled: bool,
    /// Seconds before the rule answers the same chat again (0: every time).
    pub cooldown_seconds: i64,
    /// Stop the inbound pipeline (plugins, webhooks) after this rule answered.
    pub stop: bool,
    /// Whether the rule also answers messages in groups (otherwise direct chats only).
    pub groups: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<RuleRow> for RuleOut {
    fn from(r: RuleRow) -> Self {
        RuleOut {
            id: r.id,
            keyword: r.keyword,
            match_mode: r.match_mode,
            reply: r.reply,
            device: r.device_phone,
            device_id: r.device_id,
            case_sensitive: r.case_sensitive,
            priority: r.priority,
            enabled: r.enabled,
            cooldown_seconds: r.cooldown_seconds,
            stop: r.stop_chain,
            groups: r.in_groups,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

/// The fields to change (`PUT`; fields left out or `null` keep their value). A rule to create
/// (`POST`) is parsed the same way and checked to have `keyword` and `reply`; [`RuleCreate`]
/// documents it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    /// The word, phrase or regex to look for (1 to 500 characters).
    #[schema(pattern = r"\S", max_length = 500)]
    pub keyword: Option<String>,
    /// Alias `match_mode`.
    #[serde(rename = "match", alias = "match_mode")]
    #[schema(value_type = Option<MatchModeIn>)]
    pub match_mode: Option<String>,
    /// The answer (1 to 4,096 characters) with placeholders `{name}` (the sender's WhatsApp
    /// name, else the number), `{phone}`, `{message}` and `{date}` (today in your time zone).
    #[schema(pattern = r"\S", max_length = 4096)]
    pub reply: Option<String>,
    /// Device id or phone number to answer on; `null`: every device.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<super::openapi::schemas::DeviceRef>)]
    pub device: Option<Option<String>>,
    pub case_sensitive: Option<bool>,
    /// Higher goes first.
    #[serde(default, deserialize_with = "super::messages::opt_whole_i64")]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    /// Seconds before the rule answers the same chat again; at most a year.
    #[serde(default, deserialize_with = "super::messages::opt_whole_i64")]
    #[schema(minimum = 0, maximum = 31_622_400)]
    pub cooldown_seconds: Option<i64>,
    /// Default true: later pipeline stages do not see a message this rule answered.
    #[serde(alias = "stop_chain")]
    pub stop: Option<bool>,
    /// Default false: the rule answers direct chats only; true answers in groups too.
    pub groups: Option<bool>,
}

/// A rule to create: the body of `POST /api/user/auto-reply` (for the OpenAPI document; it is
/// parsed as [`RuleIn`]).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RuleCreate {
    /// The word, phrase or regex to look for (1 to 500 characters). A regex must compile
    /// within the size limit.
    #[schema(pattern = r"\S", max_length = 500)]
    pub keyword: String,
    /// Default `contains`. Alias `match_mode`.
    #[serde(rename = "match")]
    #[schema(value_type = Option<MatchModeIn>)]
    pub match_mode: Option<String>,
    /// The answer (1 to 4,096 characters) with placeholders `{name}` (the sender's WhatsApp
    /// name, else the number), `{phone}`, `{message}` and `{date}` (today in your time zone).
    #[schema(pattern = r"\S", max_length = 4096)]
    pub reply: String,
    /// Device id or phone number to answer on; `null` or left out: every device.
    #[schema(value_type = Option<super::openapi::schemas::DeviceRef>)]
    pub device: Option<String>,
    /// Default false.
    pub case_sensitive: Option<bool>,
    /// Default 0; higher goes first.
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub priority: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default 0 (no cooldown); at most a year.
    #[schema(minimum = 0, maximum = 31_622_400)]
    pub cooldown_seconds: Option<i64>,
    /// Default true: later pipeline stages do not see a message this rule answered. Alias
    /// `stop_chain`.
    pub stop: Option<bool>,
    /// Default false: the rule answers direct chats only; true answers in groups too.
    pub groups: Option<bool>,
}

/// How a keyword matches (any case).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `match`, parsed by `MatchMode::parse`.
pub enum MatchModeIn {
    Exact,
    Contains,
    StartsWith,
    Regex,
}

/// A field that may be given as `null` (`Some(None)`) as opposed to left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    opt_string_or_number(d).map(Some)
}

impl From<RuleIn> for RuleChange {
    fn from(r: RuleIn) -> Self {
        RuleChange {
            keyword: r.keyword,
            match_mode: r.match_mode,
            reply: r.reply,
            device: r.device,
            case_sensitive: r.case_sensitive,
            priority: r.priority,
            enabled: r.enabled,
            cooldown_seconds: r.cooldown_seconds,
            stop: r.stop,
            groups: r.groups,
        }
    }
}

fn rule_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("auto-reply rule"))
}

/// The tenant's auto-reply rules in the order they are tried.
#[utoipa::path(get, path = "/api/user/auto-reply", tag = "auto-reply", params(PageQuery),
    responses((status = 200, body = Page<RuleOut>)))]
async fn list_rules(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<RuleOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state.rules.list(&tenant, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(RuleOut::from).collect(), total, limit, offset }))
}

/// Creates a rule (within the package's `auto_replies` limit). A `regex` keyword must compile
/// within the size limit (422 on `keyword` otherwise).
#[utoipa::path(post, path = "/api/user/auto-reply", tag = "auto-reply", request_body = RuleCreate,
    responses((status = 201, body = RuleOut), (status = 404, description = "No such device."),
              (status = 429, description = "The package's `auto_replies` limit is reached, or the rate limit.")))]
async fn create_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    let row = state.rules.create(&tenant, body.into()).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One rule.
#[utoipa::path(get, path = "/api/user/auto-reply/{id}", tag = "auto-reply",
    params(("id" = i64, Path, description = "The rule's id.")),
    responses((status = 200, body = RuleOut)))]
async fn get_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleOut>> {
    Ok(Json(state.rules.get(&tenant, rule_id(&id)?).await?.into()))
}

/// Changes a rule: the fields given replace the current ones, the others stay. The rule's
/// cooldowns start over.
#[utoipa::path(put, path = "/api/user/auto-reply/{id}", tag = "auto-reply", request_body = RuleIn,
    params(("id" = i64, Path, description = "The rule's id.")),
    responses((status = 200, body = RuleOut), (status = 404, description = "No such rule or device.")))]
async fn update_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<Json<RuleOut>> {
    Ok(Json(state.rules.update(&tenant, rule_id(&id)?, body.into()).await?.into()))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/user/auto-reply/{id}", tag = "auto-reply",
    params(("id" = i64, Path, description = "The rule's id.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.rules.delete(&tenant, rule_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
