-- Webhook transformations. A plugin is either an auto-reply plugin (runs for inbound
-- messages) or a transformation (shapes the events of the endpoints that name it): `kind`,
-- found from the component at upload; every plugin made before is an auto-reply plugin.
ALTER TABLE plugins ADD COLUMN kind TEXT NOT NULL DEFAULT 'auto_reply';
-- The transformation a `notify` endpoint's events go through; none: the standard body.
ALTER TABLE webhook_endpoints ADD COLUMN transform_plugin_id BIGINT;
-- What the transformation returned for a delivery (JSON: body, content type, headers,
-- path), kept so every retry sends the same request without running it again.
ALTER TABLE webhook_deliveries ADD COLUMN transformed TEXT;
