//! The API reference at `/docs/`: Swagger UI rendering `/openapi.json`, served from files
//! compiled into the binary (the `vendored` Swagger UI of `utoipa-swagger-ui`), so it works
//! with no network beyond the gateway itself.

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

use crate::error::ApiError;

fn config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                Config::from("/openapi.json")
                    .try_it_out_enabled(true)
                    .persist_authorization(true)
                    .display_request_duration(true)
                    .filter(true)
                    .doc_expansion("none")
                    // Otherwise the page asks swagger.io to validate the document.
                    .validator_url("none"),
            )
        })
        .clone()
}

/// `/docs`: the page's files are addressed relative to `/docs/`.
pub async fn docs_root() -> Redirect {
    Redirect::permanent("/docs/")
}

/// `/docs/`: the page.
pub async fn docs_index() -> Response {
    file("")
}

/// `/docs/{file}`: its scripts and styles.
pub async fn docs_file(Path(path): Path<String>) -> Response {
    file(&path)
}

fn file(path: &str) -> Response {
    match utoipa_swagger_ui::serve(path, config()) {
        Ok(Some(file)) => {
            ([(header::CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response()
        }
        Ok(None) => ApiError::NotFound("no such file of the API reference".into()).into_response(),
        Err(e) => ApiError::Internal(anyhow::anyhow!("the API reference: {e}")).into_response(),
    }
}
