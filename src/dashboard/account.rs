//! The tenant's API keys (create, shown once; revoke) and activity log, through the tenant
//! service as the API does.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::Value;

use super::pages::{as_json, as_value, failure_page, localize, numeric, query};
use super::session::{Form, Signed, Viewer, Visitor};
use super::{render, ApiFailure};
use crate::api::account::{ActivityOut, ApiKeyOut};
use crate::api::extract::page;
use crate::tenants::{Devices, Scope, Scopes};

/// How many keys the page lists.
const KEYS_LISTED: i64 = 100;

/// Activity entries per page.
const ACTIVITY_PAGE: i64 = 50;

/// The live API keys with the form for a new one.
pub async fn api_keys(Signed { v, me }: Signed) -> Response {
    keys_page(&v, &me, StatusCode::OK, None, None).await
}

async fn keys_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    created: Option<Value>,
    error: Option<String>,
) -> Response {
    let keys = match v.state.tenants.list_keys(&v.tenant(me), KEYS_LISTED, 0).await {
        Ok((rows, _)) => rows,
        Err(e) => return failure_page(v, &e.into()),
    };
    let devices = match super::pages::device_list(v, me).await {
        Ok(devices) => devices,
        Err(f) => return failure_page(v, &f),
    };
    let mut keys = as_json(keys.into_iter().map(|r| ApiKeyOut::from_row(r, None)));
    localize(&mut keys, &["created_at", "last_used_at"], me);
    render(v, status, "api_keys.html", context! { nav => "api_keys", keys, devices, created, error })
}

/// Creates a key and shows it this once (the page is not cached: see `render`).
pub async fn create_api_key(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    // The page's scope boxes come with `scopes_shown`, so no box ticked is told apart from a
    // form without them (every scope). Unknown names cannot come from the boxes; they are dropped.
    let scopes = (!form.get("scopes_shown").is_empty())
        .then(|| Scopes::of(form.all("scope").into_iter().filter_map(Scope::parse)));
    // `only` limits the key to the ticked devices (none ticked is refused as the API does);
    // anything else gives it every device. A box names one of the tenant's devices by id.
    let tenant = v.tenant(&me);
    let devices = if form.get("device_access") == "only" {
        let mut ids = Vec::new();
        for id in form.all("device") {
            match v.state.devices.find(&tenant, id).await {
                Ok(device) => ids.push(device.id),
                Err(e) => {
                    return keys_page(
                        v,
                        &me,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        None,
                        Some(ApiFailure::from(e).text(v)),
                    )
                    .await
                }
            }
        }
        Some(Devices::only(ids))
    } else {
        None
    };
    match v.state.tenants.create_key(&tenant, form.get("name"), scopes, devices).await {
        Ok((row, secret)) => {
            let key = as_value(ApiKeyOut::from_row(row, Some(secret)));
            keys_page(v, &me, StatusCode::CREATED, Some(key), None).await
        }
        Err(e) => {
            let f = ApiFailure::from(e);
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            keys_page(v, &me, status, None, Some(f.text(v))).await
        }
    }
}

/// Revokes a key at once.
pub async fn revoke_api_key(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    match v.state.tenants.revoke_key(&v.tenant(&me), id).await {
        Ok(()) => Redirect::to("/api-keys").into_response(),
        Err(e) => failure_page(v, &e.into()),
    }
}

/// What was done on the account, newest first, 50 a page, optionally one action only.
pub async fn activity(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let given = |name: &str| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let action = given("action");
    let offset = given("offset").parse::<i64>().unwrap_or(0).max(0);
    let listed = match page(Some(ACTIVITY_PAGE), Some(offset)) {
        Ok((limit, offset)) => {
            let filter = Some(action.as_str()).filter(|a| !a.is_empty());
            v.state.tenants.activity(&v.tenant(&me), filter, limit, offset).await
        }
        Err(e) => Err(e),
    };
    match listed {
        Ok((rows, total)) => {
            let shown = rows.len() as i64;
            let mut entries = as_json(rows.into_iter().map(ActivityOut::from));
            localize(&mut entries, &["created_at"], &me);
            let prev = (offset > 0).then(|| {
                query(&[("action", &action), ("offset", &(offset - ACTIVITY_PAGE).max(0).to_string())])
            });
            let next = (offset + shown < total)
                .then(|| query(&[("action", &action), ("offset", &(offset + ACTIVITY_PAGE).to_string())]));
            render(
                &v,
                StatusCode::OK,
                "activity.html",
                context! { nav => "activity", entries, action, total, prev, next },
            )
        }
        Err(e) => failure_page(&v, &e.into()),
    }
}
