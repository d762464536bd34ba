//! Dashboard tests: the real gateway on 127.0.0.1:0, driven with plain HTTP (`http`) and with a
//! real headless Chromium through WebDriver (`browser`).

#[path = "api/helpers.rs"]
mod helpers;

#[path = "dashboard/account.rs"]
mod account;
#[path = "dashboard/admin.rs"]
mod admin;
#[path = "dashboard/agent.rs"]
mod agent;
#[path = "dashboard/browser.rs"]
mod browser;
#[path = "dashboard/contacts.rs"]
mod contacts;
#[path = "dashboard/http.rs"]
mod http;
#[path = "dashboard/inbox.rs"]
mod inbox;
#[path = "dashboard/inbox_browser.rs"]
mod inbox_browser;
#[path = "dashboard/kinds.rs"]
mod kinds;
#[path = "dashboard/live.rs"]
mod live;
#[path = "dashboard/pages.rs"]
mod pages;
#[path = "dashboard/plugins.rs"]
mod plugins;
#[path = "api/webhooks/receiver.rs"]
#[allow(dead_code)]
mod receiver;
#[path = "dashboard/shared.rs"]
mod shared;
#[path = "dashboard/webhooks.rs"]
mod webhooks;
