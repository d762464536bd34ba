//! The OpenAPI document served at `/openapi.json`.
//!
//! Each handler's `#[utoipa::path]` describes its parameters, body, success answer and the
//! errors particular to it (a conflict, a device named in the body that is not found, a package
//! limit). What every operation shares is added here, once, after the routers are merged, so a
//! new handler cannot forget it:
//!
//! - `security`, by path: tenant operations (`/api/user/…` and the seed's `/api/send-message`,
//!   `/api/send-media`, `/api/reset-session`) take an API key (`x-api-key`, a Bearer token or
//!   `?api_key=`); `/api/admin/…` takes the admin token;
//! - the error answers that come from extractors and layers rather than from the handler:
//!   401/403/429 from authentication and the rate limit, 400/413/415/422 from reading a body,
//!   422 from reading the query or a header, 404 for an id in the path, 500, and 503 when the
//!   request outlives `[server] request_timeout`;
//! - list filters read an empty value as no filter (`allowEmptyValue`);
//! - request text: the server refuses U+0000 in any text (422 naming the field), and a `\S`
//!   pattern (what utoipa can take as a literal) is written out as "not blank" in the exact
//!   sense of `str::trim`;
//! - what the derives cannot state: rules across fields (one media source, `send_at` or
//!   `cron`), multipart parts that cannot be `null`, the configured package names.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

pub mod schemas;

/// The document's frame; the routers add the operations and their schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "wa-gateway", description = "Self-hosted, multi-tenant WhatsApp gateway"),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail))
)]
struct ApiDoc;

/// The frame the routers are merged into.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Who may call an operation, decided by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A tenant's API key.
    Tenant,
    /// The operator's admin token.
    Admin,
    /// Anyone.
    Public,
}

/// Tenant operations outside `/api/user/`: the seed's endpoints, kept at their old paths.
const TENANT_PATHS: [&str; 6] = [
    "/api/send-message",
    "/api/send-media",
    "/api/send-location",
    "/api/send-contact",
    "/api/send-poll",
    "/api/reset-session",
];

/// The credentials an operation on `path` needs.
pub fn guard_of(path: &str) -> Guard {
    if path.starts_with("/api/admin/") {
        Guard::Admin
    } else if path.starts_with("/api/user/") || TENANT_PATHS.contains(&path) {
        Guard::Tenant
    } else {
        Guard::Public
    }
}

/// The names of the security schemes that satisfy `guard` (any one of them).
pub fn schemes_of(guard: Guard) -> &'static [&'static str] {
    match guard {
        Guard::Tenant => &["api_key", "api_key_bearer", "api_key_query"],
        Guard::Admin => &["admin_token"],
        Guard::Public => &[],
    }
}

/// Text containing no U+0000: the server refuses it in any request text.
pub const NUL_FREE: &str = r"^[^\u0000]*$";

/// Text with at least one character `str::trim` keeps, and no U+0000. The class is Rust's
/// `char::is_whitespace` written out: `\s` differs between regex dialects (Python counts
/// U+001C–U+001F, ECMAScript U+FEFF).
pub const NOT_BLANK: &str = concat!(
    r"^[^\u0000]*",
    r"[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000]*$"
);

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The merged document as served, with the rules above applied; `packages` are the configured
/// package names.
pub fn finish(doc: &utoipa::openapi::OpenApi, packages: &[String]) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    add_security_schemes(&mut doc);
    cross_field_rules(&mut doc);
    package_names(&mut doc, packages);
    multipart_forms(&mut doc);
    let mut request_refs = BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                finish_operation(path, method, op);
                request_text(op, &mut request_refs);
            }
        }
    }
    request_components(&mut doc, request_refs);
    object(&mut doc["components"], "schemas").insert(NUL_FREE_JSON.into(), nul_free_json());
    doc
}

/// The component for any JSON a request may carry where the server takes free-form JSON
/// (plugin `config`, fields it ignores): anything but text or keys holding U+0000.
const NUL_FREE_JSON: &str = "NulFreeJson";

fn nul_free_json() -> Value {
    let this = json!({ "$ref": format!("#/components/schemas/{NUL_FREE_JSON}") });
    json!({
        "description": "Any JSON value whose texts and keys do not contain U+0000.",
        "anyOf": [
            { "type": ["null", "boolean", "number"] },
            { "type": "string", "pattern": NUL_FREE },
            { "type": "array", "items": this },
            { "type": "object", "propertyNames": { "pattern": NUL_FREE }, "additionalProperties": this }
        ]
    })
}

fn add_security_schemes(doc: &mut Value) {
    let schemes = json!({
        "api_key": {
            "type": "apiKey", "in": "header", "name": "x-api-key",
            "description": "A tenant API key (`wag_…`). It may also be given as \
                `Authorization: Bearer <key>` or as the query parameter `api_key`."
        },
        "api_key_bearer": {
            "type": "http", "scheme": "bearer",
            "description": "A tenant API key as a Bearer token."
        },
        "api_key_query": {
            "type": "apiKey", "in": "query", "name": "api_key",
            "description": "A tenant API key as a query parameter, for clients that cannot set \
                headers (it ends up in access logs; prefer the header)."
        },
        "admin_token": {
            "type": "http", "scheme": "bearer",
            "description": "The operator's admin token (`[admin] token`)."
        }
    });
    object(doc, "components");
    let target = object(&mut doc["components"], "securitySchemes");
    if let Value::Object(schemes) = schemes {
        target.extend(schemes);
    }
}

/// Rules across the fields of a request, which the derives cannot state.
fn cross_field_rules(doc: &mut Value) {
    let given = |field: &str| {
        if field == "file" {
            json!({ "required": [field] })
        } else {
            json!({ "required": [field], "properties": { field: { "type": "string", "pattern": NOT_BLANK } } })
        }
    };
    let rules = [
        // The media comes from exactly one source (blank counts as not given).
        ("SendMediaIn", "oneOf", json!([given("url"), given("base64")])),
        ("SendMediaForm", "oneOf", json!([given("file"), given("url"), given("base64")])),
        // Once at `send_at` or recurring by `cron`; a message without media needs a text.
        ("ScheduleIn", "oneOf", json!([given("send_at"), given("cron")])),
        ("ScheduleIn", "anyOf", json!([given("text"), given("media_url")])),
    ];
    for (schema, keyword, rule) in rules {
        if let Some(target) = doc.pointer_mut(&format!("/components/schemas/{schema}")) {
            target[keyword] = rule;
        }
    }
}

/// A part of a multipart form is text or a file, never JSON `null` (a part left out is "not
/// given"), and its name travels in a header, which cannot carry control characters (tab
/// aside; CR and LF are escaped by encoders).
fn multipart_forms(doc: &mut Value) {
    let mut forms = BTreeSet::new();
    for item in doc.get("paths").and_then(Value::as_object).into_iter().flat_map(|p| p.values()) {
        for op in item.as_object().into_iter().flat_map(|ops| ops.values()) {
            let form = op.pointer("/requestBody/content/multipart~1form-data/schema/$ref");
            if let Some(name) =
                form.and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                forms.insert(name.to_string());
            }
        }
    }
    for name in forms {
        let Some(form) = doc.pointer_mut(&format!("/components/schemas/{name}")) else { continue };
        form["propertyNames"] = json!({ "pattern": r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$" });
        for property in form.get_mut("properties").and_then(Value::as_object_mut).into_iter().flatten() {
            drop_null(property.1);
        }
    }
}

fn drop_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            schema["type"] = only.clone();
        }
    }
    if let Some(Value::Array(branches)) = schema.get_mut("oneOf") {
        branches.retain(|b| b.get("type") != Some(&json!("null")));
    }
}

/// The admin API's `package` fields take a configured package.
fn package_names(doc: &mut Value, packages: &[String]) {
    for schema in ["TenantIn", "TenantPatch"] {
        if let Some(p) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/package")) {
            let mut names: Vec<Value> = packages.iter().map(|p| json!(p)).collect();
            names.push(Value::Null);
            p["enum"] = Value::Array(names);
        }
    }
}

/// `value[key]` as an object, created when missing.
fn object<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !value.get(key).is_some_and(Value::is_object) {
        value[key] = json!({});
    }
    value[key].as_object_mut().expect("just made an object")
}

fn finish_operation(path: &str, method: &str, op: &mut Value) {
    let guard = guard_of(path);
    let requirement: Vec<Value> = schemes_of(guard).iter().map(|s| json!({ *s: [] })).collect();
    op["security"] = Value::Array(requirement);
    // A path parameter is always required (a parameter documented through `schema_with` loses
    // the flag utoipa would otherwise derive from its type).
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut().filter(|p| p["in"] == "path") {
            p["required"] = Value::Bool(true);
        }
    }

    let params: Vec<(String, String, bool)> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("name"), s("in"), p.get("required").and_then(Value::as_bool).unwrap_or(false))
        })
        .collect();
    let has_body = op.get("requestBody").is_some();
    let in_path = params.iter().any(|(_, place, _)| place == "path");
    let in_query_or_header = params.iter().any(|(_, place, _)| place == "query" || place == "header");

    let mut errors: Vec<(u16, &str)> = Vec::new();
    match guard {
        Guard::Tenant => errors.extend([
            (401, "No API key, or not a valid one."),
            (403, "The account is suspended, the API key lacks the scope this request needs (`read`, `send` or `manage`; the message names it), or the key is limited to some devices and the request reaches beyond them (the whole account, or an object for every device)."),
            (
                429,
                "The API key's rate limit (`requests_per_minute`; `Retry-After` says when to try \
                 again), or a limit of the package (`error.limit` names it).",
            ),
        ]),
        Guard::Admin => errors.push((401, "No admin token, or not the right one.")),
        Guard::Public => {}
    }
    if has_body {
        errors.extend([
            (400, "The body is not well-formed (JSON or multipart)."),
            (413, "The body is larger than `[server] body_limit`, or than the cap of its kind."),
            (415, "The body's content type is not one this operation takes."),
        ]);
    }
    if has_body || in_query_or_header {
        errors.push((422, "A field or parameter is not valid; `error.field` names it."));
    }
    if in_path {
        errors.push((404, "Nothing with this id (among this tenant's own)."));
    }
    errors.extend([
        (500, "Internal error (details in the server's log)."),
        (503, "The request took longer than `[server] request_timeout`, or WhatsApp is unavailable."),
    ]);

    let responses = object(op, "responses");
    for &(status, description) in &errors {
        responses.entry(status.to_string()).or_insert_with(|| json!({ "description": description }));
        if status == 429 && guard == Guard::Tenant {
            responses["429"]["headers"] = json!({
                "Retry-After": {
                    "description": "Seconds until the rate limit allows another request.",
                    "schema": { "type": "integer", "minimum": 1 }
                }
            });
        }
    }
    for (status, response) in responses.iter_mut() {
        let Ok(code) = status.parse::<u16>() else { continue };
        if code < 400 {
            continue;
        }
        if response.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            let common = errors.iter().find(|(s, _)| *s == code).map(|(_, d)| *d);
            response["description"] = json!(common.unwrap_or_else(|| default_description(code)));
        }
        if response.get("content").is_none() {
            response["content"] = json!({
                "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
            });
        }
    }

    query_values(op);
    if method == "get" {
        mark_empty_filters(op);
    }
}

/// A query parameter is text in the URL: it is given or left out, never JSON `null`.
fn query_values(op: &mut Value) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for p in params.iter_mut().filter(|p| p["in"] == "query") {
        if let Some(schema) = p.get_mut("schema") {
            drop_null(schema);
        }
    }
}

/// What an error status means when the handler's annotation says nothing more.
fn default_description(code: u16) -> &'static str {
    match code {
        400 => "The request is not well-formed.",
        404 => "Not found.",
        409 => "The request conflicts with the current state.",
        422 => "A field or parameter is not valid; `error.field` names it.",
        503 => "Unavailable; try again later.",
        _ => "Error.",
    }
}

/// Optional query parameters of a `GET`, other than paging, are filters: the server reads an
/// empty value (`?status=`, as HTML forms send) as no filter. utoipa's `Parameter` has no
/// `allowEmptyValue`, hence this.
fn mark_empty_filters(op: &mut Value) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for p in params {
        let is_filter = p["in"] == "query"
            && p["required"] != true
            && !matches!(p["name"].as_str(), Some("limit" | "offset"));
        if is_filter {
            p["allowEmptyValue"] = json!(true);
        }
    }
}

/// Applies the text rules to an operation's parameters and inline body schemas, and collects
/// the components its body refers to.
fn request_text(op: &mut Value, refs: &mut BTreeSet<String>) {
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            if let Some(schema) = p.get_mut("schema") {
                text_rules(schema, refs);
            }
        }
    }
    if let Some(content) = op.pointer_mut("/requestBody/content").and_then(Value::as_object_mut) {
        for media in content.values_mut() {
            if let Some(schema) = media.get_mut("schema") {
                text_rules(schema, refs);
            }
        }
    }
}

/// Applies the text rules to the component schemas requests use (and the ones they use).
fn request_components(doc: &mut Value, mut pending: BTreeSet<String>) {
    let mut done = BTreeSet::new();
    while let Some(name) = pending.pop_first() {
        if !done.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            text_rules(schema, &mut pending);
        }
    }
}

/// Walks a schema: strings get the text rules, `$ref`s to components are collected, and
/// free-form JSON (any value, an object's other properties) becomes [`NUL_FREE_JSON`].
fn text_rules(schema: &mut Value, refs: &mut BTreeSet<String>) {
    let free_form = |s: &Value| s == &Value::Bool(true) || s.as_object().is_some_and(|o| o.is_empty());
    if free_form(schema) {
        *schema = json!({ "$ref": format!("#/components/schemas/{NUL_FREE_JSON}") });
        return;
    }
    let Some(obj) = schema.as_object_mut() else { return };
    // Only declared objects: the branches of a cross-field rule list properties without a type.
    let is_object = match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    };
    // Multipart forms name their parts themselves (and the server skips parts it does not know).
    if is_object && !obj.contains_key("propertyNames") {
        obj.insert("propertyNames".into(), json!({ "pattern": NUL_FREE }));
        if obj.get("additionalProperties").is_none_or(|a| a != &Value::Bool(false)) {
            let inner = obj.entry("additionalProperties").or_insert(Value::Bool(true));
            if free_form(inner) {
                *inner = json!({ "$ref": format!("#/components/schemas/{NUL_FREE_JSON}") });
            }
        }
    }
    if let Some(name) = obj.get("$ref").and_then(Value::as_str) {
        if let Some(name) = name.strip_prefix("#/components/schemas/") {
            refs.insert(name.to_string());
        }
    }
    let is_string = match obj.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let free_text = !["enum", "const", "format"].iter().any(|k| obj.contains_key(*k));
    if is_string && free_text {
        match obj.get("pattern").and_then(Value::as_str) {
            None => {
                obj.insert("pattern".into(), json!(NUL_FREE));
            }
            Some(r"\S") => {
                obj.insert("pattern".into(), json!(NOT_BLANK));
            }
            // Hand-written patterns are anchored and exclude U+0000 themselves.
            Some(_) => {}
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(inner) = obj.get_mut(key) {
            text_rules(inner, refs);
        }
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for inner in props.values_mut() {
            text_rules(inner, refs);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
            for inner in list {
                text_rules(inner, refs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decide_the_guard() {
        assert_eq!(guard_of("/api/user/devices"), Guard::Tenant);
        assert_eq!(guard_of("/api/send-media"), Guard::Tenant);
        assert_eq!(guard_of("/api/admin/tenants/{id}"), Guard::Admin);
        assert_eq!(guard_of("/healthz"), Guard::Public);
    }

    #[test]
    fn not_blank_is_what_trim_keeps() {
        let re = regex::Regex::new(NOT_BLANK).unwrap();
        for blank in ["", " ", "\t\n", "\u{a0}\u{3000}", "\u{2028}"] {
            assert!(!re.is_match(blank), "{blank:?}");
            assert!(blank.trim().is_empty());
        }
        for text in ["a", " a ", "\u{1c}", "\u{feff}"] {
            assert!(re.is_match(text), "{text:?}");
            assert!(!text.trim().is_empty());
        }
        assert!(!re.is_match("a\u{0}b"));
        assert!(!regex::Regex::new(NUL_FREE).unwrap().is_match("\u{0}"));
    }
}
