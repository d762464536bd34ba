//! Auto-reply rules and scheduled messages: lists with their forms.
//!
//! The pages call the rule and schedule services as the logged-in tenant, as the API does:
//! the services check every field, apply the package's limits and record the activity; a page
//! turns its form into the service's input and shows the rows as the API would answer them.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{as_json, as_value, device_list, failure_page, localize, numeric};
use super::session::{Form, Signed, Viewer, Visitor};
use super::{tz_of, ApiFailure};
use crate::api::rules::RuleOut;
use crate::api::schedules::ScheduleOut;
use crate::error::{ApiError, ApiResult};
use crate::rules::service::RuleChange;
use crate::scheduler::service::NewScheduled;

/// How many rules and scheduled messages the pages list.
const LISTED: i64 = 100;

/// The match modes of a rule, in the order the form offers them.
const MATCH_MODES: [&str; 4] = ["contains", "exact", "starts_with", "regex"];

/// A whole number from a form field; empty is `default`.
fn number(form: &Form, field: &str, default: i64) -> ApiResult<i64> {
    let raw = form.get(field).trim();
    if raw.is_empty() {
        return Ok(default);
    }
    raw.parse().map_err(|_| ApiError::validation(field, "must be a whole number"))
}

fn checked(form: &Form, name: &str) -> bool {
    matches!(form.get(name), "on" | "true" | "1")
}

/// The rule a form describes (every field given, so an edit is complete).
fn rule_change(form: &Form) -> ApiResult<RuleChange> {
    let device = form.get("device").trim();
    Ok(RuleChange {
        keyword: Some(form.get("keyword").to_string()),
        match_mode: Some(form.get("match").to_string()),
        reply: Some(form.get("reply").to_string()),
        device: Some((!device.is_empty()).then(|| device.to_string())),
        case_sensitive: Some(checked(form, "case_sensitive")),
        priority: Some(number(form, "priority", 0)?),
        cooldown_seconds: Some(number(form, "cooldown_seconds", 0)?),
        stop: Some(checked(form, "stop")),
        groups: Some(checked(form, "groups")),
        enabled: Some(checked(form, "enabled")),
    })
}

/// What the rule form shows: a stored rule, or what was typed before an error.
fn rule_values(form: &Form) -> Value {
    json!({
        "keyword": form.get("keyword"),
        "match": form.get("match"),
        "reply": form.get("reply"),
        "device_id": numeric(form.get("device")),
        "case_sensitive": checked(form, "case_sensitive"),
        "priority": form.get("priority"),
        "cooldown_seconds": form.get("cooldown_seconds"),
        "stop": checked(form, "stop"),
        "groups": checked(form, "groups"),
        "enabled": checked(form, "enabled"),
    })
}

fn shown_status(f: &ApiFailure) -> StatusCode {
    if f.status.is_server_error() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        f.status
    }
}

/// The auto-reply list with the form for a new rule.
pub async fn auto_replies(Signed { v, me }: Signed) -> Response {
    let fresh = json!({ "match": "contains", "priority": "0", "cooldown_seconds": "0", "stop": true, "enabled": true });
    rules_page(&v, &me, StatusCode::OK, None, fresh).await
}

async fn rules_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    rule: Value,
) -> Response {
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    match v.state.rules.list(&v.tenant(me), LISTED, 0).await {
        Ok((rows, _)) => {
            let mut rules = as_json(rows.into_iter().map(RuleOut::from));
            localize(&mut rules, &["created_at", "updated_at"], me);
            super::render(
                v,
                status,
                "auto_reply.html",
                context! { nav => "auto_reply", rules, devices, error, rule, modes => MATCH_MODES },
            )
        }
        Err(e) => failure_page(v, &e.into()),
    }
}

/// Creates a rule; back to the list, or the form with the error.
pub async fn create_auto_reply(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let created = match rule_change(&form) {
        Ok(change) => v.state.rules.create(&v.tenant(&me), change).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(e) => {
            let f = ApiFailure::from(e);
            rules_page(v, &me, shown_status(&f), Some(f.text(v)), rule_values(&form)).await
        }
    }
}

/// One rule in its edit form.
pub async fn auto_reply(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    match v.state.rules.get(&v.tenant(&me), id).await {
        Ok(rule) => edit_page(&v, &me, StatusCode::OK, None, id, as_value(RuleOut::from(rule))).await,
        Err(e) => failure_page(&v, &e.into()),
    }
}

async fn edit_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    id: i64,
    rule: Value,
) -> Response {
    match device_list(v, me).await {
        Ok(devices) => super::render(
            v,
            status,
            "auto_reply_edit.html",
            context! { nav => "auto_reply", id, rule, devices, error, modes => MATCH_MODES },
        ),
        Err(f) => failure_page(v, &f),
    }
}

/// Saves the edit form (every field, so unchecked boxes turn off).
pub async fn update_auto_reply(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let updated = match rule_change(&form) {
        Ok(change) => v.state.rules.update(&v.tenant(&me), id, change).await,
        Err(e) => Err(e),
    };
    match updated.map_err(ApiFailure::from) {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) => edit_page(v, &me, shown_status(&f), Some(f.text(v)), id, rule_values(&form)).await,
    }
}

/// Turns a rule on or off (`enabled` = `true` or `false`).
pub async fn toggle_auto_reply(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let change = RuleChange { enabled: Some(form.get("enabled") == "true"), ..RuleChange::default() };
    match v.state.rules.update(&v.tenant(&me), id, change).await {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(e) => failure_page(v, &e.into()),
    }
}

/// Deletes a rule.
pub async fn delete_auto_reply(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    match v.state.rules.delete(&v.tenant(&me), id).await {
        Ok(()) => Redirect::to("/auto-reply").into_response(),
        Err(e) => failure_page(v, &e.into()),
    }
}

/// Scheduled messages with their status, and the form for a new one.
pub async fn scheduled(Signed { v, me }: Signed) -> Response {
    let fresh = json!({ "kind": "once" });
    scheduled_page(&v, &me, StatusCode::OK, None, fresh).await
}

async fn scheduled_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    values: Value,
) -> Response {
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    match v.state.schedules.list(&v.tenant(me), None, LISTED, 0).await {
        Ok((rows, _)) => {
            let mut schedules = as_json(rows.into_iter().map(ScheduleOut::from));
            localize(&mut schedules, &["send_at", "next_run_at", "last_run_at", "created_at"], me);
            super::render(
                v,
                status,
                "scheduled.html",
                context! { nav => "scheduled", schedules, devices, error, s => values },
            )
        }
        Err(e) => failure_page(v, &e.into()),
    }
}

/// Schedules a message: once at a local time of the tenant's zone, or by a cron expression.
pub async fn create_scheduled(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let cron = form.get("kind") == "cron";
    let input = NewScheduled {
        device: form.get("device").to_string(),
        to: form.get("to").to_string(),
        text: Some(form.get("text").to_string()),
        send_at: (!cron).then(|| form.get("send_at").to_string()),
        cron: cron.then(|| form.get("cron").to_string()),
        timezone: Some(tz_of(&me).name().to_string()),
        ..NewScheduled::default()
    };
    match v.state.schedules.create(&v.tenant(&me), input).await {
        Ok(_) => Redirect::to("/scheduled").into_response(),
        Err(e) => {
            let f = ApiFailure::from(e);
            let values = json!({
                "kind": if cron { "cron" } else { "once" },
                "device_id": numeric(form.get("device")),
                "to": form.get("to"), "text": form.get("text"),
                "send_at": form.get("send_at"), "cron": form.get("cron"),
            });
            scheduled_page(v, &me, shown_status(&f), Some(f.text(v)), values).await
        }
    }
}

/// Cancels a pending scheduled message.
pub async fn cancel_scheduled(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    match v.state.schedules.cancel(&v.tenant(&me), id).await.map_err(ApiFailure::from) {
        Ok(_) => Redirect::to("/scheduled").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) => scheduled_page(v, &me, shown_status(&f), Some(f.text(v)), json!({ "kind": "once" })).await,
    }
}
