//! Auto-reply rules and scheduled messages: lists with their forms.
//!
//! Like the other pages these call the tenant API (`/api/user/auto-reply`,
//! `/api/user/scheduled-messages`); the API checks every field, the page only turns form fields
//! into its JSON and shows its answer.

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{device_list, failure_page, localize, numeric};
use super::session::{Form, Signed, Viewer, Visitor};
use super::{tz_of, ApiFailure};

/// The match modes of a rule, in the order the form offers them.
const MATCH_MODES: [&str; 4] = ["contains", "exact", "starts_with", "regex"];

/// A whole number from a form field as JSON; anything else goes to the API as text, which
/// refuses it with its own message.
fn number(raw: &str, default: i64) -> Value {
    let raw = raw.trim();
    if raw.is_empty() {
        return json!(default);
    }
    raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn checked(form: &Form, name: &str) -> bool {
    matches!(form.get(name), "on" | "true" | "1")
}

/// The rule a form describes, as the API's JSON (every field given, so an edit is complete).
fn rule_body(form: &Form) -> Value {
    let device = form.get("device").trim();
    json!({
        "keyword": form.get("keyword"),
        "match": form.get("match"),
        "reply": form.get("reply"),
        "device": if device.is_empty() { Value::Null } else { Value::String(device.to_string()) },
        "case_sensitive": checked(form, "case_sensitive"),
        "priority": number(form.get("priority"), 0),
        "cooldown_seconds": number(form.get("cooldown_seconds"), 0),
        "stop": checked(form, "stop"),
        "enabled": checked(form, "enabled"),
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
    match v.dash.json(v, me, Method::GET, "/api/user/auto-reply?limit=100", None).await {
        Ok(mut page) => {
            localize(&mut page["data"], &["created_at", "updated_at"], me);
            let rules = page["data"].take();
            super::render(
                v,
                status,
                "auto_reply.html",
                context! { nav => "auto_reply", rules, devices, error, rule, modes => MATCH_MODES },
            )
        }
        Err(f) => failure_page(v, &f),
    }
}

/// Creates a rule; back to the list, or the form with the API's error.
pub async fn create_auto_reply(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    match v.dash.json(v, &me, Method::POST, "/api/user/auto-reply", Some(&rule_body(&form))).await {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(f) => rules_page(v, &me, shown_status(&f), Some(f.text(v)), rule_values(&form)).await,
    }
}

/// One rule in its edit form.
pub async fn auto_reply(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    match v.dash.json(&v, &me, Method::GET, &format!("/api/user/auto-reply/{id}"), None).await {
        Ok(rule) => edit_page(&v, &me, StatusCode::OK, None, id, rule).await,
        Err(f) => failure_page(&v, &f),
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
    let uri = format!("/api/user/auto-reply/{id}");
    match v.dash.json(v, &me, Method::PUT, &uri, Some(&rule_body(&form))).await {
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
    let body = json!({ "enabled": form.get("enabled") == "true" });
    match v.dash.json(v, &me, Method::PUT, &format!("/api/user/auto-reply/{id}"), Some(&body)).await {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(f) => failure_page(v, &f),
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
    match v.dash.json(v, &me, Method::DELETE, &format!("/api/user/auto-reply/{id}"), None).await {
        Ok(_) => Redirect::to("/auto-reply").into_response(),
        Err(f) => failure_page(v, &f),
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
    match v.dash.json(v, me, Method::GET, "/api/user/scheduled-messages?limit=100", None).await {
        Ok(mut page) => {
            localize(&mut page["data"], &["send_at", "next_run_at", "last_run_at", "created_at"], me);
            let schedules = page["data"].take();
            super::render(
                v,
                status,
                "scheduled.html",
                context! { nav => "scheduled", schedules, devices, error, s => values },
            )
        }
        Err(f) => failure_page(v, &f),
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
    let body = json!({
        "device": form.get("device"),
        "to": form.get("to"),
        "text": form.get("text"),
        "send_at": if cron { Value::Null } else { Value::String(form.get("send_at").to_string()) },
        "cron": if cron { Value::String(form.get("cron").to_string()) } else { Value::Null },
        "timezone": tz_of(&me).name(),
    });
    match v.dash.json(v, &me, Method::POST, "/api/user/scheduled-messages", Some(&body)).await {
        Ok(_) => Redirect::to("/scheduled").into_response(),
        Err(f) => {
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
    let uri = format!("/api/user/scheduled-messages/{id}");
    match v.dash.json(v, &me, Method::DELETE, &uri, None).await {
        Ok(_) => Redirect::to("/scheduled").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) => scheduled_page(v, &me, shown_status(&f), Some(f.text(v)), json!({ "kind": "once" })).await,
    }
}
