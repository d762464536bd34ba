//! Webhook endpoints (secret shown once, rotate, enable, delete) and their delivery log with
//! retry, from the tenant API (`/api/user/webhooks`, `/api/user/webhook-logs`).

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{device_list, failure_page, localize, numeric};
use super::render;
use super::session::{Form, Signed, Viewer, Visitor};
use crate::webhooks::events::EventType;

/// What the page shows besides the lists: a new secret, an error, the typed form.
#[derive(Default)]
struct Shown {
    secret: Option<Value>,
    error: Option<String>,
    values: Option<Value>,
}

/// Endpoints, the form for a new one and the latest delivery attempts.
pub async fn webhooks(Signed { v, me }: Signed) -> Response {
    webhooks_page(&v, &me, StatusCode::OK, Shown::default()).await
}

async fn webhooks_page(v: &Visitor, me: &Viewer, status: StatusCode, shown: Shown) -> Response {
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    let mut endpoints = match v.dash.json(v, me, Method::GET, "/api/user/webhooks?limit=100", None).await {
        Ok(mut p) => p["data"].take(),
        Err(f) => return failure_page(v, &f),
    };
    localize(&mut endpoints, &["last_success_at", "last_failure_at", "disabled_at", "created_at"], me);
    let uri = "/api/user/webhook-logs?kind=webhook&limit=25";
    let mut logs = match v.dash.json(v, me, Method::GET, uri, None).await {
        Ok(mut p) => p["data"].take(),
        Err(f) => return failure_page(v, &f),
    };
    localize(&mut logs, &["created_at"], me);
    let events: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    let values = shown.values.unwrap_or_else(|| json!({ "mode": "notify", "events": events }));
    render(
        v,
        status,
        "webhooks.html",
        context! {
            nav => "webhooks", endpoints, logs, devices, events, w => values,
            secret => shown.secret, error => shown.error,
        },
    )
}

fn shown_status(status: StatusCode) -> StatusCode {
    if status.is_server_error() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    }
}

/// Creates an endpoint and shows its signing secret this once.
pub async fn create_webhook(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let events: Vec<String> = form.all("events").into_iter().map(str::to_string).collect();
    let device = form.get("device").trim();
    let body = json!({
        "url": form.get("url"),
        "mode": form.get("mode"),
        "events": events,
        "device": if device.is_empty() { Value::Null } else { Value::String(device.to_string()) },
        "description": form.get("description"),
    });
    match v.dash.json(v, &me, Method::POST, "/api/user/webhooks", Some(&body)).await {
        Ok(made) => {
            let secret = json!({ "id": made["id"], "url": made["url"], "secret": made["secret"] });
            webhooks_page(v, &me, StatusCode::CREATED, Shown { secret: Some(secret), ..Shown::default() })
                .await
        }
        Err(f) => {
            let values = json!({
                "url": form.get("url"), "mode": form.get("mode"), "events": events,
                "device_id": numeric(device), "description": form.get("description"),
            });
            let shown = Shown { error: Some(f.text(v)), values: Some(values), ..Shown::default() };
            webhooks_page(v, &me, shown_status(f.status), shown).await
        }
    }
}

/// `rotate` (shows the new secret once), `toggle` (`enabled` = `true` or `false`), `delete`.
pub async fn webhook_action(Path((id, action)): Path<(String, String)>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let uri = format!("/api/user/webhooks/{id}");
    let answer = match action.as_str() {
        "rotate" => v.dash.json(v, &me, Method::POST, &format!("{uri}/rotate-secret"), None).await,
        "toggle" => {
            let body = json!({ "enabled": form.get("enabled") == "true" });
            v.dash.json(v, &me, Method::PATCH, &uri, Some(&body)).await
        }
        "delete" => v.dash.json(v, &me, Method::DELETE, &uri, None).await,
        _ => return super::not_found(v),
    };
    match answer {
        Ok(rotated) if action == "rotate" => {
            let secret = json!({ "id": rotated["id"], "url": rotated["url"], "secret": rotated["secret"] });
            webhooks_page(v, &me, StatusCode::OK, Shown { secret: Some(secret), ..Shown::default() }).await
        }
        Ok(_) => Redirect::to("/webhooks").into_response(),
        Err(f) => failure_page(v, &f),
    }
}

/// Sends a logged delivery again.
pub async fn retry_delivery(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let uri = format!("/api/user/webhook-logs/{id}/retry");
    match v.dash.json(v, &me, Method::POST, &uri, None).await {
        Ok(_) => Redirect::to("/webhooks").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) => {
            webhooks_page(
                v,
                &me,
                shown_status(f.status),
                Shown { error: Some(f.text(v)), ..Shown::default() },
            )
            .await
        }
    }
}
