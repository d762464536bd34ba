//! API tests: the real gateway on 127.0.0.1:0, spoken to over HTTP. One binary, one file per
//! topic; `helpers` is the harness they share.

mod account;
mod auth;
mod chats;
mod cluster;
mod contacts;
mod device_keys;
mod devices;
mod docs;
mod errors;
mod groups;
mod health;
mod helpers;
mod history;
mod inbound;
mod kinds;
mod lids;
mod limits;
mod media;
mod media_store;
mod messages;
mod metrics;
mod openapi;
mod pairing;
mod pipeline;
mod plugins;
mod rate_limit;
mod retention;
mod rules;
mod schedules;
mod scopes;
mod webhooks;
mod whatsapp_web;
