//! Webhook transformations: the request a delivery sends when its endpoint names a plugin of
//! the `transform` world.
//!
//! The plugin runs once per delivery, before its first attempt; what it returns is kept on
//! the delivery (`webhook_deliveries.transformed`), so every retry (and a manual retry of a
//! log row) sends the same request under the same `webhook-id` without running it again. The
//! run is recorded like any plugin run (a `plugin` log row, the failure tally,
//! `plugin.failed`). A skip finishes the delivery as `skipped`; a failed run finishes it as
//! `failed` without sending anything; both leave a `webhook` log row (outcome `skipped` or
//! `transform_failed`) that can be retried once the plugin is fixed, and neither counts for
//! or against the endpoint's health.

use reqwest::Url;

use super::Webhooks;
use crate::db::webhooks::{DeliveryRow, EndpointRow};
use crate::plugins::runtime::{
    Outcome, PluginKind, TransformContext, TransformEvent, TransformInput, Transformed, TransformedRequest,
};
use crate::plugins::service::RunAbout;

/// What a delivery sends.
pub(super) enum Shaped {
    /// The standard signed JSON body.
    Standard,
    /// The transformation's request.
    Transformed(TransformedRequest),
    /// Nothing: the transformation skipped the event (`None`) or failed (why).
    Unsent(Option<String>),
    /// Not now: the tenant's plugin runs were all busy, or the plugin could not be read.
    Later,
}

impl Webhooks {
    /// What `delivery` sends to `endpoint`: runs the endpoint's transformation once and keeps
    /// its answer on the delivery.
    pub(super) async fn shape(&self, endpoint: &EndpointRow, delivery: &DeliveryRow) -> Shaped {
        let Some(plugin_id) = endpoint.transform_plugin_id else {
            return Shaped::Standard;
        };
        if let Some(Transformed::Send(request)) =
            delivery.transformed.as_deref().and_then(|t| serde_json::from_str(t).ok())
        {
            return Shaped::Transformed(request);
        }
        let db = &self.inner.db;
        let Some(plugins) = self.inner.plugins.get() else {
            return Shaped::Unsent(Some("this process runs no plugins".into()));
        };
        let row = match db.plugin(endpoint.user_id, plugin_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Shaped::Unsent(Some(format!(
                    "the transformation plugin {plugin_id} no longer exists"
                )))
            }
            Err(e) => {
                tracing::warn!(delivery_id = delivery.id, error = %e, "cannot read a transformation plugin");
                return Shaped::Later;
            }
        };
        if row.kind != PluginKind::Transform.as_str() {
            return Shaped::Unsent(Some(format!(
                "plugin {plugin_id} (`{}`) is not a transformation",
                row.name
            )));
        }
        let input = TransformInput {
            event: event_of(delivery),
            context: TransformContext {
                tenant_id: endpoint.user_id,
                endpoint_id: endpoint.id,
                url: endpoint.url.clone(),
                plugin_id,
                config: row.config.clone(),
            },
        };
        let about = RunAbout {
            event: delivery.event.clone(),
            message_id: delivery.message_id,
            device_id: delivery.device_id,
            endpoint_id: Some(endpoint.id),
            delivery_id: Some(delivery.id),
            webhook_id: Some(delivery.webhook_id.clone()),
        };
        let report = plugins.transform(&row, input, about, false).await;
        match (report.outcome, report.transformed) {
            (Outcome::Success, Some(Transformed::Send(request))) => {
                let kept = serde_json::to_string(&Transformed::Send(request.clone())).unwrap_or_default();
                if let Err(e) = db.system_store_transformed(delivery.id, &kept).await {
                    // Sent anyway; a retry runs the transformation again.
                    tracing::warn!(delivery_id = delivery.id, error = %e, "cannot keep a transformed request");
                }
                Shaped::Transformed(request)
            }
            (Outcome::Success, _) => Shaped::Unsent(None),
            (Outcome::Busy, _) => Shaped::Later,
            (outcome, _) => Shaped::Unsent(Some(format!(
                "the transformation `{}` failed ({outcome}): {}",
                row.name,
                report.error.unwrap_or_default()
            ))),
        }
    }
}

/// The event of a delivery as a transformation sees it, from the standard body it stores.
fn event_of(delivery: &DeliveryRow) -> TransformEvent {
    let body: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap_or_default();
    TransformEvent {
        id: delivery.webhook_id.clone(),
        kind: delivery.event.clone(),
        timestamp: body["timestamp"].as_str().unwrap_or_default().to_string(),
        data: body.get("data").map_or_else(|| "{}".to_string(), |d| d.to_string()),
    }
}

/// The endpoint's URL with a transformation's `path` (a path, a query, or both; checked by
/// the plugin host) appended: the path after the URL's own path, the query after its own.
pub(super) fn target_url(url: &str, path: Option<&str>) -> Result<String, String> {
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Ok(url.to_string());
    };
    let mut target = Url::parse(url).map_err(|e| format!("the endpoint's URL: {e}"))?;
    let (route, query) = match path.split_once('?') {
        Some((route, query)) => (route, Some(query)),
        None => (path, None),
    };
    if !route.is_empty() {
        let joined = format!("{}{route}", target.path().trim_end_matches('/'));
        target.set_path(&joined);
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let joined = match target.query().filter(|q| !q.is_empty()) {
            Some(own) => format!("{own}&{query}"),
            None => query.to_string(),
        };
        target.set_query(Some(&joined));
    }
    Ok(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_and_a_query_are_appended_to_the_endpoint_url() {
        let url = "https://hooks.slack.com/services";
        assert_eq!(target_url(url, None).unwrap(), url);
        assert_eq!(target_url(url, Some("")).unwrap(), url);
        assert_eq!(target_url(url, Some("/T0/B0/XX")).unwrap(), "https://hooks.slack.com/services/T0/B0/XX");
        assert_eq!(target_url("https://a.id/x/", Some("/y")).unwrap(), "https://a.id/x/y");
        assert_eq!(target_url("https://a.id", Some("/y")).unwrap(), "https://a.id/y");
        assert_eq!(target_url("https://a.id/h?k=1", Some("?c=2")).unwrap(), "https://a.id/h?k=1&c=2");
        assert_eq!(target_url("https://a.id/h", Some("/t?c=2")).unwrap(), "https://a.id/h/t?c=2");
        assert_eq!(target_url("https://a.id:8443/h", Some("/t")).unwrap(), "https://a.id:8443/h/t");
    }

    #[test]
    fn the_event_comes_from_the_stored_body() {
        let delivery = DeliveryRow {
            id: 1,
            user_id: 2,
            endpoint_id: 3,
            webhook_id: "msg_1".into(),
            event: "message.received".into(),
            message_id: Some(9),
            payload: r#"{"type":"message.received","timestamp":"2026-12-07T09:30:00.000Z","data":{"id":9}}"#
                .into(),
            status: "pending".into(),
            attempts: 0,
            max_attempts: 8,
            next_attempt_at: None,
            lease_until: None,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            device_id: None,
            transformed: None,
        };
        let event = event_of(&delivery);
        assert_eq!(event.id, "msg_1");
        assert_eq!(event.kind, "message.received");
        assert_eq!(event.timestamp, "2026-12-07T09:30:00.000Z");
        assert_eq!(event.data, r#"{"id":9}"#);
    }
}
