//! WebAssembly plugins: the list in run order, upload, enable/disable, order, devices,
//! configuration, a dry run and the latest runs, through the plugin service as the API does.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{as_json, as_value, device_list, failure_page, localize, numeric};
use super::session::{FileForm, Form, Signed, Viewer, Visitor};
use super::{render, ApiFailure};
use crate::api::plugins::{plugin_out, test_out, PluginTestOut};
use crate::api::webhooks::log_out;
use crate::db::webhooks::LogFilter;
use crate::error::{ApiError, ApiResult};
use crate::plugins::manage::{PluginChange, Trial, UploadFields};
use crate::webhooks::EventType;

/// How many plugins the page lists.
const PLUGINS_LISTED: i64 = 100;

/// Runs shown on a plugin's page.
const RUNS_SHOWN: i64 = 25;

/// A 5xx of the API is shown as "not available" rather than as a server fault.
fn shown_status(status: StatusCode) -> StatusCode {
    if status.is_server_error() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    }
}

/// The plugins in the order they run, and the upload form.
pub async fn plugins(Signed { v, me }: Signed) -> Response {
    plugins_page(&v, &me, StatusCode::OK, None, json!({})).await
}

async fn plugins_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    p: Value,
) -> Response {
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    let mut list = match v.state.plugins.list(&v.tenant(me), PLUGINS_LISTED, 0).await {
        Ok((rows, _)) => as_json(rows.into_iter().map(plugin_out)),
        Err(e) => return failure_page(v, &e.into()),
    };
    localize(&mut list, &["last_run_at", "created_at"], me);
    render(v, status, "plugins.html", context! { nav => "plugins", plugins => list, devices, error, p })
}

/// Uploads a component from the page's multipart form; on success, its page.
pub async fn upload_plugin(upload: FileForm) -> Response {
    let form = &upload.form;
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let fields = UploadFields {
        name: Some(form.get("name").to_string()),
        enabled: None,
        devices: form.all("devices").into_iter().map(str::to_string).collect(),
        order: Some(form.get("order").to_string()),
        config: Some(form.get("config").to_string()),
    };
    let uploaded = match upload.file("file") {
        Some(file) => v.state.plugins.upload(&v.tenant(&me), file.bytes.clone(), fields).await,
        None => Err(ApiError::validation("file", "missing the `file` part")),
    };
    match uploaded.map_err(ApiFailure::from) {
        Ok(made) => Redirect::to(&format!("/plugins/{}", made.id)).into_response(),
        Err(f) => {
            let p =
                json!({ "name": form.get("name"), "order": form.get("order"), "config": form.get("config") });
            plugins_page(v, &me, shown_status(f.status), Some(f.text(v)), p).await
        }
    }
}

/// What a plugin's page shows besides the plugin: an error, a dry run's result.
#[derive(Default)]
struct Shown {
    error: Option<String>,
    config: Option<String>,
    /// The allowed hosts as typed, one per line.
    hosts: Option<String>,
    test: Option<PluginTestOut>,
    text: Option<String>,
    /// The event type a transformation's dry run was given.
    event: Option<String>,
}

/// One plugin: settings, dry run, latest runs.
pub async fn plugin(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    plugin_page(&v, &me, id, StatusCode::OK, Shown::default()).await
}

async fn plugin_page(v: &Visitor, me: &Viewer, id: i64, status: StatusCode, shown: Shown) -> Response {
    let tenant = v.tenant(me);
    let (mut p, stored_config) = match v.state.plugins.get(&tenant, id).await {
        Ok(row) => {
            let config: Value = serde_json::from_str(&row.config).unwrap_or_default();
            (as_value(plugin_out(row)), config)
        }
        Err(e) => return failure_page(v, &e.into()),
    };
    localize(&mut p, &["last_run_at", "compiled_at", "created_at", "updated_at"], me);
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    let runs_of_this = LogFilter { kind: Some("plugin".into()), plugin_id: Some(id), ..LogFilter::default() };
    let mut runs = match v.state.endpoints.logs(&tenant, &runs_of_this, RUNS_SHOWN, 0).await {
        Ok((rows, _)) => as_json(rows.into_iter().map(log_out)),
        Err(e) => return failure_page(v, &e.into()),
    };
    localize(&mut runs, &["created_at"], me);
    // Each run's HTTP requests, from its logged answer.
    if let Value::Array(rows) = &mut runs {
        for row in rows {
            let calls = row["response"]
                .as_str()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .map(|r| r["http"]["calls"].clone())
                .unwrap_or(Value::Null);
            row["http_calls"] = calls;
        }
    }
    let hosts = p["allowed_hosts"]
        .as_array()
        .map(|h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let hosts = shown.hosts.unwrap_or(hosts);
    let config =
        shown.config.unwrap_or_else(|| serde_json::to_string_pretty(&stored_config).unwrap_or_default());
    let decision = shown
        .test
        .as_ref()
        .and_then(|t| t.decision.as_ref().or(t.transformed.as_ref()))
        .map(|d| serde_json::to_string_pretty(d).unwrap_or_default());
    let events: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    let test = shown.test.map(minijinja::Value::from_serialize);
    render(
        v,
        status,
        "plugin.html",
        context! {
            nav => "plugins", p, devices, runs, config, decision, hosts, events,
            error => shown.error, test, text => shown.text.unwrap_or_else(|| "halo".into()),
            event => shown.event,
        },
    )
}

/// `toggle` (`enabled` = `true` or `false`), `settings` (order, devices, groups, config,
/// allowed hosts, keeping HTTP bodies), `test`
/// (a dry run on `text`), `delete`.
pub async fn plugin_action(Path((id, action)): Path<(String, String)>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let tenant = v.tenant(&me);
    let plugins = &v.state.plugins;
    match action.as_str() {
        "toggle" => {
            let change =
                PluginChange { enabled: Some(form.get("enabled") == "true"), ..PluginChange::default() };
            match plugins.update(&tenant, id, change).await {
                Ok(_) => Redirect::to("/plugins").into_response(),
                Err(e) => failure_page(v, &e.into()),
            }
        }
        "settings" => {
            let config = form.get("config");
            let parsed = if config.trim().is_empty() { Ok(json!({})) } else { serde_json::from_str(config) };
            let parsed = match parsed {
                Ok(c) => c,
                Err(e) => {
                    let error = format!("{} config: {e}", v.lang.t("err_validation_failed"));
                    let shown = Shown {
                        error: Some(error),
                        config: Some(config.into()),
                        hosts: Some(form.get("allowed_hosts").into()),
                        ..Shown::default()
                    };
                    return plugin_page(v, &me, id, StatusCode::UNPROCESSABLE_ENTITY, shown).await;
                }
            };
            let changed = match order_of(form.get("order")) {
                Ok(order) => {
                    let devices = form.all("devices").into_iter().map(str::to_string).collect();
                    let hosts = form
                        .get("allowed_hosts")
                        .split(['\n', ','])
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .map(str::to_string)
                        .collect();
                    let change = PluginChange {
                        devices: Some(devices),
                        config: Some(parsed),
                        order,
                        groups: Some(form.get("groups") == "on"),
                        allowed_hosts: Some(hosts),
                        log_http_bodies: Some(form.get("log_http_bodies") == "on"),
                        ..PluginChange::default()
                    };
                    plugins.update(&tenant, id, change).await
                }
                Err(e) => Err(e),
            };
            match changed.map_err(ApiFailure::from) {
                Ok(_) => Redirect::to(&format!("/plugins/{id}")).into_response(),
                Err(f) if f.status == StatusCode::NOT_FOUND && f.field.is_none() => failure_page(v, &f),
                Err(f) => {
                    let shown = Shown {
                        error: Some(f.text(v)),
                        config: Some(config.into()),
                        hosts: Some(form.get("allowed_hosts").into()),
                        ..Shown::default()
                    };
                    plugin_page(v, &me, id, shown_status(f.status), shown).await
                }
            }
        }
        "test" => {
            let event = Some(form.get("event").to_string()).filter(|e| !e.is_empty());
            let trial =
                Trial { text: Some(form.get("text").to_string()), event: event.clone(), ..Trial::default() };
            let text = Some(form.get("text").to_string());
            match plugins.try_run(&tenant, id, trial).await.map_err(ApiFailure::from) {
                Ok(report) => {
                    let shown = Shown { test: Some(test_out(report)), text, event, ..Shown::default() };
                    plugin_page(v, &me, id, StatusCode::OK, shown).await
                }
                Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
                Err(f) => {
                    let shown = Shown { error: Some(f.text(v)), text, event, ..Shown::default() };
                    plugin_page(v, &me, id, shown_status(f.status), shown).await
                }
            }
        }
        "delete" => match plugins.delete(&tenant, id).await {
            Ok(()) => Redirect::to("/plugins").into_response(),
            Err(e) => failure_page(v, &e.into()),
        },
        _ => super::not_found(v),
    }
}

/// The run order from the form: empty keeps the plugin's.
fn order_of(raw: &str) -> ApiResult<Option<i64>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| ApiError::validation("order", "must be a whole number"))
}
