//! The resources a package limits. A leaf: storage counts them and the limits service checks
//! them, without either depending on the other for the names.

use serde::{Deserialize, Serialize};

/// A limited resource. Its name is what the API reports in `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Devices,
    MessagesPerMonth,
    AutoReplies,
    ScheduledMessages,
    Plugins,
    WebhookEndpoints,
    RequestsPerMinute,
    ApiKeys,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Resource::Devices,
        Resource::MessagesPerMonth,
        Resource::AutoReplies,
        Resource::ScheduledMessages,
        Resource::Plugins,
        Resource::WebhookEndpoints,
        Resource::RequestsPerMinute,
        Resource::ApiKeys,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Devices => "devices",
            Resource::MessagesPerMonth => "messages_per_month",
            Resource::AutoReplies => "auto_replies",
            Resource::ScheduledMessages => "scheduled_messages",
            Resource::Plugins => "plugins",
            Resource::WebhookEndpoints => "webhook_endpoints",
            Resource::RequestsPerMinute => "requests_per_minute",
            Resource::ApiKeys => "api_keys",
        }
    }

    pub fn parse(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
