//! Webhook endpoints (secret shown once, rotate, enable, delete) and their delivery log with
//! retry, through the endpoint service as the API does.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{as_json, device_list, failure_page, localize, numeric};
use super::session::{Form, Signed, Viewer, Visitor};
use super::{render, ApiFailure};
use crate::api::webhooks::{log_out, webhook_out};
use crate::db::webhooks::{EndpointRow, LogFilter};
use crate::plugins::runtime::PluginKind;
use crate::webhooks::endpoints::EndpointChange;
use crate::webhooks::events::EventType;

/// How many endpoints and log rows the page lists.
const ENDPOINTS_LISTED: i64 = 100;
const LOGS_LISTED: i64 = 25;
/// How many plugins are looked through for transformations.
const TRANSFORMS_LISTED: i64 = 500;

/// The secret to show once, with the endpoint it signs for.
fn shown_secret(row: &EndpointRow, secret: String) -> Value {
    json!({ "id": row.id, "url": row.url, "secret": secret })
}

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
    let tenant = v.tenant(me);
    let mut endpoints = match v.state.endpoints.list(&tenant, ENDPOINTS_LISTED, 0).await {
        Ok((rows, _)) => as_json(rows.into_iter().map(|r| webhook_out(r, None))),
        Err(e) => return failure_page(v, &e.into()),
    };
    localize(&mut endpoints, &["last_success_at", "last_failure_at", "disabled_at", "created_at"], me);
    let webhooks_only = LogFilter { kind: Some("webhook".into()), ..LogFilter::default() };
    let mut logs = match v.state.endpoints.logs(&tenant, &webhooks_only, LOGS_LISTED, 0).await {
        Ok((rows, _)) => as_json(rows.into_iter().map(log_out)),
        Err(e) => return failure_page(v, &e.into()),
    };
    localize(&mut logs, &["created_at"], me);
    // The tenant's transformations, to pick for an endpoint (and to name the one it has).
    let transforms: Vec<Value> = match v.state.plugins.list(&tenant, TRANSFORMS_LISTED, 0).await {
        Ok((rows, _)) => rows
            .into_iter()
            .filter(|p| p.kind == PluginKind::Transform.as_str())
            .map(|p| json!({ "id": p.id, "name": p.name, "enabled": p.enabled }))
            .collect(),
        Err(e) => return failure_page(v, &e.into()),
    };
    let events: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    let values = shown.values.unwrap_or_else(|| json!({ "mode": "notify", "events": events }));
    render(
        v,
        status,
        "webhooks.html",
        context! {
            nav => "webhooks", endpoints, logs, devices, events, transforms, w => values,
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
    let change = EndpointChange {
        url: Some(form.get("url").to_string()),
        mode: Some(form.get("mode").to_string()),
        events: Some(events.clone()),
        device: Some((!device.is_empty()).then(|| device.to_string())),
        description: Some(form.get("description").to_string()),
        enabled: None,
        transform_plugin_id: Some(numeric(form.get("transform_plugin_id"))),
    };
    match v.state.endpoints.create(&v.tenant(&me), change).await {
        Ok((row, secret)) => {
            let secret = shown_secret(&row, secret);
            webhooks_page(v, &me, StatusCode::CREATED, Shown { secret: Some(secret), ..Shown::default() })
                .await
        }
        Err(e) => {
            let f = ApiFailure::from(e);
            let values = json!({
                "url": form.get("url"), "mode": form.get("mode"), "events": events,
                "device_id": numeric(device), "description": form.get("description"),
                "transform_plugin_id": numeric(form.get("transform_plugin_id")),
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
    let tenant = v.tenant(&me);
    let endpoints = &v.state.endpoints;
    let done = match action.as_str() {
        "rotate" => match endpoints.rotate_secret(&tenant, id).await {
            Ok((row, secret)) => {
                let secret = shown_secret(&row, secret);
                return webhooks_page(
                    v,
                    &me,
                    StatusCode::OK,
                    Shown { secret: Some(secret), ..Shown::default() },
                )
                .await;
            }
            Err(e) => Err(e),
        },
        "toggle" => {
            let change =
                EndpointChange { enabled: Some(form.get("enabled") == "true"), ..EndpointChange::default() };
            endpoints.update(&tenant, id, change).await.map(drop)
        }
        "transform" => {
            let change = EndpointChange {
                transform_plugin_id: Some(numeric(form.get("transform_plugin_id"))),
                ..EndpointChange::default()
            };
            endpoints.update(&tenant, id, change).await.map(drop)
        }
        "delete" => endpoints.delete(&tenant, id).await,
        _ => return super::not_found(v),
    };
    match done {
        Ok(()) => Redirect::to("/webhooks").into_response(),
        Err(e) => failure_page(v, &e.into()),
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
    match v.state.endpoints.retry(&v.tenant(&me), id).await.map_err(ApiFailure::from) {
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
