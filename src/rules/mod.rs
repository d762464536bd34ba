//! Keyword auto-replies: the pure matching engine and the inbound pipeline stage that answers
//! with them (the pipeline's loop guard is `messages::guard`). Tenants manage rules through `service` (called by the API and the dashboard), stored by `db::rules`.
//!
//! Decisions a tenant sees:
//! - rules are tried by `priority`, highest first, then oldest first; the first matching rule
//!   that is not cooling down for the chat answers, and `stop` (default true) ends the chain;
//! - `exact`, `contains` and `starts_with` compare with the trimmed message, `regex` searches
//!   it (anchor with `^…$`); without `case_sensitive` the comparison ignores case (Unicode);
//! - a rule with a device answers only on that device, one without on every device;
//! - `cooldown_seconds` keeps a rule from answering the same chat again that soon;
//! - replies count against the monthly message limit; over it the reply is stored as a failed
//!   outbound message with error `limit_exceeded: messages_per_month` and nothing is sent.

pub mod engine;
pub mod service;
pub mod stage;

pub use stage::RulesStage;
