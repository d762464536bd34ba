//! WebAssembly plugins: the list in run order, upload, enable/disable, order, devices,
//! configuration, a dry run and the latest runs, from the tenant API (`/api/user/plugins`,
//! `/api/user/webhook-logs?kind=plugin`).

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{device_list, failure_page, localize, numeric};
use super::render;
use super::session::{FileForm, Form, Signed, Viewer, Visitor};

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
    let mut list = match v.dash.json(v, me, Method::GET, "/api/user/plugins?limit=100", None).await {
        Ok(mut page) => page["data"].take(),
        Err(f) => return failure_page(v, &f),
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
    let devices = form.all("devices").join(",");
    let texts = [
        ("name", form.get("name")),
        ("order", form.get("order")),
        ("config", form.get("config")),
        ("devices", devices.as_str()),
    ];
    let files: Vec<(&str, _)> = upload.file("file").map(|f| ("file", f)).into_iter().collect();
    match v.dash.upload(v, &me, "/api/user/plugins", &texts, &files).await {
        Ok(made) => Redirect::to(&format!("/plugins/{}", made["id"].as_i64().unwrap_or(0))).into_response(),
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
    test: Option<Value>,
    text: Option<String>,
}

/// One plugin: settings, dry run, latest runs.
pub async fn plugin(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    plugin_page(&v, &me, id, StatusCode::OK, Shown::default()).await
}

async fn plugin_page(v: &Visitor, me: &Viewer, id: i64, status: StatusCode, shown: Shown) -> Response {
    let mut p = match v.dash.json(v, me, Method::GET, &format!("/api/user/plugins/{id}"), None).await {
        Ok(p) => p,
        Err(f) => return failure_page(v, &f),
    };
    localize(&mut p, &["last_run_at", "compiled_at", "created_at", "updated_at"], me);
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    let uri = format!("/api/user/webhook-logs?kind=plugin&plugin={id}&limit={RUNS_SHOWN}");
    let mut runs = match v.dash.json(v, me, Method::GET, &uri, None).await {
        Ok(mut page) => page["data"].take(),
        Err(f) => return failure_page(v, &f),
    };
    localize(&mut runs, &["created_at"], me);
    let config =
        shown.config.unwrap_or_else(|| serde_json::to_string_pretty(&p["config"]).unwrap_or_default());
    let decision = shown
        .test
        .as_ref()
        .and_then(|t| t.get("decision"))
        .filter(|d| !d.is_null())
        .map(|d| serde_json::to_string_pretty(d).unwrap_or_default());
    render(
        v,
        status,
        "plugin.html",
        context! {
            nav => "plugins", p, devices, runs, config, decision,
            error => shown.error, test => shown.test, text => shown.text.unwrap_or_else(|| "halo".into()),
        },
    )
}

/// `toggle` (`enabled` = `true` or `false`), `settings` (order, devices, config), `test`
/// (a dry run on `text`), `delete`.
pub async fn plugin_action(Path((id, action)): Path<(String, String)>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let uri = format!("/api/user/plugins/{id}");
    match action.as_str() {
        "toggle" => {
            let body = json!({ "enabled": form.get("enabled") == "true" });
            match v.dash.json(v, &me, Method::PATCH, &uri, Some(&body)).await {
                Ok(_) => Redirect::to("/plugins").into_response(),
                Err(f) => failure_page(v, &f),
            }
        }
        "settings" => {
            let config = form.get("config");
            let parsed = if config.trim().is_empty() { Ok(json!({})) } else { serde_json::from_str(config) };
            let parsed = match parsed {
                Ok(c) => c,
                Err(e) => {
                    let error = format!("{} config: {e}", v.lang.t("err_validation_failed"));
                    let shown = Shown { error: Some(error), config: Some(config.into()), ..Shown::default() };
                    return plugin_page(v, &me, id, StatusCode::UNPROCESSABLE_ENTITY, shown).await;
                }
            };
            let order = form.get("order").trim();
            let order = if order.is_empty() {
                Value::Null
            } else {
                order.parse::<i64>().map_or(json!(order), Value::from)
            };
            let mut body = json!({ "devices": form.all("devices"), "config": parsed });
            if !order.is_null() {
                body["order"] = order;
            }
            match v.dash.json(v, &me, Method::PATCH, &uri, Some(&body)).await {
                Ok(_) => Redirect::to(&format!("/plugins/{id}")).into_response(),
                Err(f) if f.status == StatusCode::NOT_FOUND && f.field.is_none() => failure_page(v, &f),
                Err(f) => {
                    let shown =
                        Shown { error: Some(f.text(v)), config: Some(config.into()), ..Shown::default() };
                    plugin_page(v, &me, id, shown_status(f.status), shown).await
                }
            }
        }
        "test" => {
            let body = json!({ "text": form.get("text") });
            let answer = v.dash.json(v, &me, Method::POST, &format!("{uri}/test"), Some(&body)).await;
            let text = Some(form.get("text").to_string());
            match answer {
                Ok(result) => {
                    plugin_page(
                        v,
                        &me,
                        id,
                        StatusCode::OK,
                        Shown { test: Some(result), text, ..Shown::default() },
                    )
                    .await
                }
                Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
                Err(f) => {
                    let shown = Shown { error: Some(f.text(v)), text, ..Shown::default() };
                    plugin_page(v, &me, id, shown_status(f.status), shown).await
                }
            }
        }
        "delete" => match v.dash.json(v, &me, Method::DELETE, &uri, None).await {
            Ok(_) => Redirect::to("/plugins").into_response(),
            Err(f) => failure_page(v, &f),
        },
        _ => super::not_found(v),
    }
}
