//! Keyword auto-reply rules: `GET|POST /api/user/auto-reply`, `GET|PUT|DELETE /api/user/auto-reply/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::resolve_device;
use super::extract::{ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::messages::opt_string_or_number;
use super::ts;
use crate::app::AppState;
use crate::db::page;
use crate::db::rules::{CreateRule, NewRule, RuleRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, Resource};
use crate::rules::engine::{check_reply, MatchMode, Matcher, RuleError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, create_rule)).routes(routes!(
        get_rule,
        update_rule,
        delete_rule
    ))
}

/// Longest cooldown, in seconds (a year).
const MAX_COOLDOWN_SECONDS: i64 = 366 * 24 * 3600;
/// Priorities range over ±1,000,000.
const MAX_PRIORITY: i64 = 1_000_000;

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        ApiError::validation(e.field(), e.to_string())
    }
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
    pub created_at: String,
    pub updated_at: String,
}

fn rule_out(r: RuleRow) -> RuleOut {
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
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// A rule to create (`POST`), or the fields to change (`PUT`: fields left out keep their value).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    /// The word, phrase or regex to look for (1 to 500 characters).
    pub keyword: Option<String>,
    /// `exact`, `contains` (default), `starts_with` or `regex`.
    #[serde(rename = "match", alias = "match_mode")]
    pub match_mode: Option<String>,
    /// The answer (1 to 4,096 characters) with placeholders `{name}` (the sender's WhatsApp
    /// name, else the number), `{phone}`, `{message}` and `{date}` (today in your time zone).
    pub reply: Option<String>,
    /// Device id or phone number to answer on; `null` or absent on create: every device.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub device: Option<Option<String>>,
    /// Default false.
    pub case_sensitive: Option<bool>,
    /// Default 0; higher goes first.
    pub priority: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default 0 (no cooldown); at most a year.
    pub cooldown_seconds: Option<i64>,
    /// Default true: later pipeline stages do not see a message this rule answered.
    #[serde(alias = "stop_chain")]
    pub stop: Option<bool>,
}

/// A field that may be given as `null` (`Some(None)`) as opposed to left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    opt_string_or_number(d).map(Some)
}

/// Merges the request into the current rule (or the defaults) and checks every field.
async fn build_rule(
    state: &AppState,
    tenant: &Tenant,
    current: Option<&RuleRow>,
    body: RuleIn,
) -> ApiResult<NewRule> {
    let keyword = body.keyword.or_else(|| current.map(|c| c.keyword.clone()));
    let keyword = keyword.ok_or_else(|| ApiError::validation("keyword", "missing field `keyword`"))?;
    let reply = body.reply.or_else(|| current.map(|c| c.reply.clone()));
    let reply = reply.ok_or_else(|| ApiError::validation("reply", "missing field `reply`"))?;
    let mode = match body.match_mode {
        Some(m) => MatchMode::parse(&m)?,
        None => current.map_or(Ok(MatchMode::Contains), |c| MatchMode::parse(&c.match_mode))?,
    };
    let case_sensitive = body.case_sensitive.or(current.map(|c| c.case_sensitive)).unwrap_or(false);
    let matcher = Matcher::parse(&keyword, mode, case_sensitive)?;
    check_reply(&reply)?;
    let device_id = match body.device {
        Some(Some(d)) if !d.trim().is_empty() => Some(resolve_device(state, tenant.id, &d).await?.id),
        Some(_) => None,
        None => current.and_then(|c| c.device_id),
    };
    let priority = body.priority.or(current.map(|c| c.priority)).unwrap_or(0);
    if priority.abs() > MAX_PRIORITY {
        return Err(ApiError::validation(
            "priority",
            format!("must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
        ));
    }
    let cooldown_seconds = body.cooldown_seconds.or(current.map(|c| c.cooldown_seconds)).unwrap_or(0);
    if !(0..=MAX_COOLDOWN_SECONDS).contains(&cooldown_seconds) {
        return Err(ApiError::validation("cooldown_seconds", format!("must be 0 to {MAX_COOLDOWN_SECONDS}")));
    }
    Ok(NewRule {
        device_id,
        keyword: keyword.trim().to_string(),
        match_mode: matcher.mode().as_str().to_string(),
        reply,
        case_sensitive,
        priority,
        enabled: body.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
        stop_chain: body.stop.or(current.map(|c| c.stop_chain)).unwrap_or(true),
        cooldown_seconds,
    })
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
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_rules(tenant.id, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(rule_out).collect(), total, limit, offset }))
}

/// Creates a rule (within the package's `auto_replies` limit). A `regex` keyword must compile
/// within the size limit (422 on `keyword` otherwise).
#[utoipa::path(post, path = "/api/user/auto-reply", tag = "auto-reply", request_body = RuleIn,
    responses((status = 201, body = RuleOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn create_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    let rule = build_rule(&state, &tenant, None, body).await?;
    let limit = state.limits.limits(tenant.id, &tenant.package).await?.get(Resource::AutoReplies);
    let row = match state.db.create_rule(tenant.id, &rule, limit).await? {
        CreateRule::Created(row) => row,
        CreateRule::OverLimit => return Err(LimitError::Exceeded { limit: Resource::AutoReplies }.into()),
    };
    state.tenants.record(tenant.activity("auto_reply.create", format!("auto_reply:{}", row.id))).await;
    Ok((StatusCode::CREATED, Json(rule_out(row))))
}

/// One rule.
#[utoipa::path(get, path = "/api/user/auto-reply/{id}", tag = "auto-reply",
    responses((status = 200, body = RuleOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleOut>> {
    let row = state
        .db
        .rule(tenant.id, rule_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("auto-reply rule"))?;
    Ok(Json(rule_out(row)))
}

/// Changes a rule: the fields given replace the current ones, the others stay. The rule's
/// cooldowns start over.
#[utoipa::path(put, path = "/api/user/auto-reply/{id}", tag = "auto-reply", request_body = RuleIn,
    responses((status = 200, body = RuleOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
async fn update_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<Json<RuleOut>> {
    let id = rule_id(&id)?;
    let current =
        state.db.rule(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("auto-reply rule"))?;
    let rule = build_rule(&state, &tenant, Some(&current), body).await?;
    let row = state
        .db
        .update_rule(tenant.id, id, &rule)
        .await?
        .ok_or_else(|| ApiError::not_found("auto-reply rule"))?;
    state.tenants.record(tenant.activity("auto_reply.update", format!("auto_reply:{id}"))).await;
    Ok(Json(rule_out(row)))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/user/auto-reply/{id}", tag = "auto-reply",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = rule_id(&id)?;
    if !state.db.delete_rule(tenant.id, id).await? {
        return Err(ApiError::not_found("auto-reply rule"));
    }
    state.tenants.record(tenant.activity("auto_reply.delete", format!("auto_reply:{id}"))).await;
    Ok(StatusCode::NO_CONTENT)
}
