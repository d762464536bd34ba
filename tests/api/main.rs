//! API tests: the real gateway on 127.0.0.1:0, spoken to over HTTP. One binary, one file per
//! topic; `helpers` is the harness they share.

mod account;
mod auth;
mod devices;
mod errors;
mod health;
mod helpers;
mod history;
mod limits;
mod media;
mod messages;
mod pairing;
mod plugins;
mod rate_limit;
mod rules;
mod schedules;
mod webhooks;
mod whatsapp_web;
