//! Guest SDK for wa-gateway auto-reply plugins.
//!
//! A plugin is a WebAssembly component for the `auto-reply` world of the WIT package
//! `wa-gateway:plugin@0.3.0` (`wit/v0.3.0/plugin.wit` in the gateway repository). For every
//! inbound message on a device it is attached to, the gateway creates a fresh instance, calls
//! [`Plugin::handle`] once and drops the instance: only the [`kv`] store survives between calls.
//! (The gateway still runs components built for 0.1.0 and 0.2.0; this SDK builds 0.3.0.)
//!
//! With this crate a plugin is a type that implements [`Plugin`] plus one [`export_plugin!`]:
//!
//! ```
//! use wa_gateway_plugin_sdk::{export_plugin, Context, Decision, Message, Plugin, PluginError};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn handle(msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
//!         Ok(match msg.text {
//!             Some(text) => Decision::reply(format!("echo: {text}")),
//!             None => Decision::none(),
//!         })
//!     }
//! }
//!
//! export_plugin!(Echo);
//! ```
//!
//! A [`Message`] says what [`kind`](Message::kind) it is ([`MessageKind`]: text, image, voice,
//! location, contact, poll, …) and carries what that kind has: `text`, `media` (metadata and a
//! download link), `location`, `contacts`, `poll`, the message it quotes (`reply_to`) and its
//! `mentions`. A [`Decision`] lists actions done in order: replies by text, media, location or
//! contact cards (quoting the message with [`Decision::quoting`]), a reaction, a read mark:
//!
//! ```
//! use wa_gateway_plugin_sdk::{Decision, Location, Message, MessageKind};
//!
//! fn answer(msg: &Message) -> Decision {
//!     match (msg.kind, &msg.location) {
//!         (MessageKind::Location, Some(at)) => Decision::react("📍")
//!             .and_reply(format!("Lokasi diterima: {}, {}", at.latitude, at.longitude))
//!             .and_location(Location::new(-6.9175, 107.6191).with_name("Toko Sinar"))
//!             .quoting(),
//!         _ => Decision::none().and_mark_read(),
//!     }
//! }
//! ```
//!
//! The crate is a `cdylib` built for `wasm32-unknown-unknown` and turned into a component;
//! `plugins/build.sh` does both (see `plugins/README.md`). Besides the trait and the macro the
//! SDK offers [`Decision`] builders, the plugin's JSON [`config`], the key-value store ([`kv`]),
//! the bounded logger ([`log`]), the clock ([`now_ms`]) and HTTP requests to the hosts the
//! tenant allowed ([`http`]). Nothing else is reachable from a plugin: no filesystem, sockets
//! or environment.

#![warn(missing_docs)]

pub mod http;
pub mod kv;
pub mod log;

/// The raw bindings `wit-bindgen` generates for the 0.3.0 `auto-reply` world.
///
/// Plugins rarely need this module: the SDK re-exports the types and wraps the imports.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.3.0",
        world: "auto-reply",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "::wa_gateway_plugin_sdk::bindings",
        // Not `Eq`: a location's coordinates are floats.
        additional_derives: [PartialEq],
    });
}

pub use bindings::wa_gateway::plugin::kv::KvError;
pub use bindings::wa_gateway::plugin::log::Level;
pub use bindings::wa_gateway::plugin::types::{
    Action, Contact, Context, Decision, Location, Media, MediaKind, MediaReply, Message, MessageKind,
    PluginError, Poll, Quoted,
};

/// What a plugin implements: the handler for one inbound message.
///
/// Register the implementing type with [`export_plugin!`]. The handler runs in a fresh
/// instance under the gateway's memory, CPU and wall-clock limits; a panic traps the instance
/// and is recorded as `trap`.
pub trait Plugin {
    /// Decides what to do with `msg`, which arrived as described by `ctx`.
    ///
    /// Return [`Decision::none`] to let the message pass untouched, a reply to answer the
    /// chat, or an error ([`PluginError::BadConfig`], [`PluginError::Failed`]) to have the run
    /// recorded as `error` with that reason. Key-value writes are kept only when this returns
    /// `Ok`.
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError>;
}

/// Exports a [`Plugin`] implementation as the component's `handle` function.
///
/// Use it once per plugin crate, at the top level, with the type that implements [`Plugin`]:
/// `export_plugin!(MyPlugin);`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __WaGatewayPluginExport;

            impl $crate::bindings::Guest for __WaGatewayPluginExport {
                fn handle(
                    message: $crate::Message,
                    context: $crate::Context,
                ) -> ::core::result::Result<$crate::Decision, $crate::PluginError> {
                    <$plugin as $crate::Plugin>::handle(message, context)
                }
            }

    $crate::bindings::export!(__WaGatewayPluginExport with_types_in $crate::bindings);
        };
    };
}

impl Decision {
    /// No actions and the chain goes on: the message is left to later plugins and webhooks.
    pub fn none() -> Self {
        Decision { actions: Vec::new(), stop: false, quote: false }
    }

    /// One text reply to the chat the message came from.
    pub fn reply(text: impl Into<String>) -> Self {
        Decision::none().and_reply(text)
    }

    /// One media reply (fetched by the gateway from its URL) to the chat.
    pub fn reply_media(media: MediaReply) -> Self {
        Decision::none().and_media(media)
    }

    /// One location reply to the chat.
    pub fn reply_location(location: Location) -> Self {
        Decision::none().and_location(location)
    }

    /// One reply with contact cards (1 to 10) to the chat.
    pub fn reply_contacts(contacts: Vec<Contact>) -> Self {
        Decision::none().and_contacts(contacts)
    }

    /// A reaction to the message: one emoji, or `""` to remove the reaction.
    pub fn react(emoji: impl Into<String>) -> Self {
        Decision::none().and_react(emoji)
    }

    /// Adds a text reply after the actions already in the decision.
    pub fn and_reply(self, text: impl Into<String>) -> Self {
        self.and(Action::ReplyText(text.into()))
    }

    /// Adds a media reply.
    pub fn and_media(self, media: MediaReply) -> Self {
        self.and(Action::ReplyMedia(media))
    }

    /// Adds a location reply.
    pub fn and_location(self, location: Location) -> Self {
        self.and(Action::ReplyLocation(location))
    }

    /// Adds a reply with contact cards (1 to 10, sent as one message).
    pub fn and_contacts(self, contacts: Vec<Contact>) -> Self {
        self.and(Action::ReplyContacts(contacts))
    }

    /// Adds a reaction to the message: one emoji, or `""` to remove the reaction. A reaction
    /// is not a message: it does not count against the monthly limit.
    pub fn and_react(self, emoji: impl Into<String>) -> Self {
        self.and(Action::React(emoji.into()))
    }

    /// Marks the message read (blue ticks for its sender).
    pub fn and_mark_read(self) -> Self {
        self.and(Action::MarkRead)
    }

    /// Adds an action after the actions already in the decision.
    pub fn and(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// The replies quote the message they answer (WhatsApp's "reply"); reactions and read
    /// marks are about that message anyway.
    pub fn quoting(mut self) -> Self {
        self.quote = true;
        self
    }

    /// Stops the chain: later plugins and the reply webhooks do not see the message.
    pub fn stop(mut self) -> Self {
        self.stop = true;
        self
    }
}

impl Location {
    /// A point at `latitude` (-90 to 90) and `longitude` (-180 to 180) degrees, without name
    /// or address.
    pub fn new(latitude: f64, longitude: f64) -> Self {
        Location { latitude, longitude, name: None, address: None }
    }

    /// Sets the place's name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the place's address.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }
}

impl Contact {
    /// A card with `name` and `phone` (digits with the country code first, `628…`).
    pub fn new(name: impl Into<String>, phone: impl Into<String>) -> Self {
        Contact { name: name.into(), phone: phone.into() }
    }
}

impl MessageKind {
    /// The kind as the gateway's API names it (`text`, `image`, …, `unsupported`), the
    /// message's `type` in the chat history.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Video => "video",
            MessageKind::Audio => "audio",
            MessageKind::Voice => "voice",
            MessageKind::Document => "document",
            MessageKind::Sticker => "sticker",
            MessageKind::Location => "location",
            MessageKind::Contact => "contact",
            MessageKind::Poll => "poll",
            MessageKind::Unsupported => "unsupported",
        }
    }

    /// Whether the message carries media (`Message::media`).
    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageKind::Image
                | MessageKind::Video
                | MessageKind::Audio
                | MessageKind::Voice
                | MessageKind::Document
                | MessageKind::Sticker
        )
    }
}

impl Default for Decision {
    /// The same as [`Decision::none`].
    fn default() -> Self {
        Decision::none()
    }
}

impl MediaReply {
    /// A media reply of `kind` from `url` (`http` or `https`), without caption or file name.
    pub fn new(kind: MediaKind, url: impl Into<String>) -> Self {
        MediaReply { url: url.into(), kind, caption: None, file_name: None }
    }

    /// Sets the caption shown under an image, video or document.
    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// Sets the file name of a document.
    pub fn with_file_name(mut self, file_name: impl Into<String>) -> Self {
        self.file_name = Some(file_name.into());
        self
    }
}

impl PluginError {
    /// The plugin's configuration is not what it expects.
    pub fn bad_config(reason: impl Into<String>) -> Self {
        PluginError::BadConfig(reason.into())
    }

    /// Any other failure.
    pub fn failed(reason: impl Into<String>) -> Self {
        PluginError::Failed(reason.into())
    }
}

impl From<KvError> for PluginError {
    /// A store failure becomes [`PluginError::Failed`], so `?` works on [`kv`] calls.
    fn from(err: KvError) -> Self {
        let reason = match err {
            KvError::InvalidKey(why) => format!("kv: invalid key: {why}"),
            KvError::QuotaExceeded(why) => format!("kv: quota exceeded: {why}"),
            KvError::Unavailable(why) => format!("kv: unavailable: {why}"),
        };
        PluginError::Failed(reason)
    }
}

/// The plugin's configuration (`ctx.config`, JSON set by the tenant) parsed into `T`.
///
/// An empty configuration reads as `{}`, so a `T` whose fields all have serde defaults works
/// without one. A document that does not fit `T` is [`PluginError::BadConfig`] with serde's
/// reason.
///
/// ```
/// # use wa_gateway_plugin_sdk::{config, Context};
/// #[derive(serde::Deserialize)]
/// struct Config {
///     #[serde(default)]
///     greeting: Option<String>,
/// }
/// # let ctx = Context { tenant_id: 1, device_id: 1, device_phone: "62".into(), plugin_id: 1,
/// #     config: r#"{"greeting": "halo"}"#.into() };
/// let cfg: Config = config(&ctx)?;
/// # assert_eq!(cfg.greeting.as_deref(), Some("halo"));
/// # Ok::<(), wa_gateway_plugin_sdk::PluginError>(())
/// ```
pub fn config<T: serde::de::DeserializeOwned>(ctx: &Context) -> Result<T, PluginError> {
    let text = if ctx.config.trim().is_empty() { "{}" } else { ctx.config.as_str() };
    serde_json::from_str(text).map_err(|err| PluginError::BadConfig(format!("config: {err}")))
}

/// The current time in Unix milliseconds, from the gateway's clock (the only clock a plugin
/// has).
pub fn now_ms() -> i64 {
    bindings::wa_gateway::plugin::clock::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(config: &str) -> Context {
        Context {
            tenant_id: 1,
            device_id: 2,
            device_phone: "6281200000000".into(),
            plugin_id: 3,
            config: config.into(),
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Cfg {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn an_empty_config_reads_as_an_empty_object() {
        assert_eq!(config::<Cfg>(&ctx("")).unwrap(), Cfg { n: 0 });
        assert_eq!(config::<Cfg>(&ctx("{\"n\": 4}")).unwrap(), Cfg { n: 4 });
    }

    #[test]
    fn a_config_of_the_wrong_shape_is_bad_config() {
        assert!(matches!(config::<Cfg>(&ctx("{\"n\": \"x\"}")), Err(PluginError::BadConfig(_))));
    }

    #[test]
    fn decisions_are_built_in_order() {
        let d = Decision::reply("a").and_reply("b").stop();
        assert_eq!(d.actions, vec![Action::ReplyText("a".into()), Action::ReplyText("b".into())]);
        assert!(d.stop);
        assert!(!d.quote);
        assert_eq!(Decision::default(), Decision::none());
    }

    #[test]
    fn every_action_has_a_builder() {
        let at = Location::new(-6.2, 106.8).with_name("Toko").with_address("Jl. Merdeka 1");
        let d = Decision::react("👍")
            .and_location(at.clone())
            .and_contacts(vec![Contact::new("Ani", "6281234567890")])
            .and_mark_read()
            .quoting();
        assert!(d.quote);
        assert_eq!(
            d.actions,
            vec![
                Action::React("👍".into()),
                Action::ReplyLocation(at),
                Action::ReplyContacts(vec![Contact { name: "Ani".into(), phone: "6281234567890".into() }]),
                Action::MarkRead,
            ]
        );
    }

    #[test]
    fn kinds_are_named_as_the_api_names_them() {
        assert_eq!(MessageKind::Voice.as_str(), "voice");
        assert!(MessageKind::Sticker.is_media());
        assert!(!MessageKind::Location.is_media());
    }
}
