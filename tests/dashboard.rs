//! Dashboard tests: the real gateway on 127.0.0.1:0, driven with plain HTTP (`http`) and with a
//! real headless Chromium through WebDriver (`browser`).

#[path = "api/helpers.rs"]
mod helpers;

#[path = "dashboard/agent.rs"]
mod agent;
#[path = "dashboard/browser.rs"]
mod browser;
#[path = "dashboard/http.rs"]
mod http;
