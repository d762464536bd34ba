//! Answers to what a logged-in client asks the server: just enough for the real client to finish
//! its post-login sequence and reach `Event::Connected`, and to keep the session alive.

use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeValue, SERVER_JID};

use super::conn::attr;

/// What the answering side knows about the connection's account.
pub struct Account<'a> {
    pub phone: &'a str,
    pub device: u16,
    pub lid: &'a str,
}

pub use super::directory::Directory;

/// What a client IQ changes on the server side, besides the answer.
#[derive(Debug, Default)]
pub struct Effects {
    /// Prekeys the client uploaded (`encrypt` set).
    pub prekeys_uploaded: Option<usize>,
    /// The client unlinked itself (`md` remove-companion-device).
    pub removed_companion: bool,
}

/// The stanzas to send back for a client `<iq>`, in order.
pub fn answer_iq(
    account: Option<&Account<'_>>,
    directory: &Directory,
    iq: &Node,
    prekeys_on_server: usize,
) -> (Vec<Node>, Effects) {
    let mut effects = Effects::default();
    let Some(id) = attr(iq, "id") else {
        return (Vec::new(), effects);
    };
    let kind = attr(iq, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        // An answer to something we never asked (or asked and stopped waiting for).
        return (Vec::new(), effects);
    }
    let xmlns = attr(iq, "xmlns").unwrap_or_default();
    let first_child = iq.children().and_then(|c| c.first()).map(|c| c.tag.to_string()).unwrap_or_default();
    let result = |children: Vec<Node>| result_iq(&id, iq, children);

    let answers = match (xmlns.as_str(), first_child.as_str()) {
        // Keepalive: an empty result is the pong.
        ("w:p", _) => vec![result(vec![])],
        // Leaving passive mode: the server then delivers the offline queue and ends it with
        // the marker the client waits for (`delivery.rs`, after this answer).
        ("passive", _) => vec![result(vec![])],
        // App state: every collection answered with a 409 conflict and no patches, which the
        // client takes as "already in sync".
        ("w:sync:app:state", _) => {
            let collections = iq
                .get_optional_child("sync")
                .and_then(|s| s.children())
                .unwrap_or_default()
                .iter()
                .filter(|c| c.tag == "collection")
                .filter_map(|c| attr(c, "name"))
                .map(|name| {
                    NodeBuilder::new("collection")
                        .attr("name", name)
                        .attr("type", "error")
                        .children([NodeBuilder::new("error")
                            .attr("code", "409")
                            .attr("text", "conflict")
                            .build()])
                        .build()
                })
                .collect::<Vec<_>>();
            vec![result(vec![NodeBuilder::new("sync").children(collections).build()])]
        }
        // Prekeys: upload, count, digest.
        ("encrypt", "count") => {
            vec![result(vec![NodeBuilder::new("count").attr("value", prekeys_on_server.to_string()).build()])]
        }
        ("encrypt", _) if kind == "set" => {
            let uploaded =
                iq.get_optional_child("list").and_then(|l| l.children()).map(|c| c.len()).unwrap_or(0);
            effects.prekeys_uploaded = Some(uploaded);
            vec![result(vec![])]
        }
        // Props (A/B experiments): none.
        ("abt", _) | ("w", "props") => vec![result(vec![NodeBuilder::new("props")
            .attr("protocol", "1")
            .attr("hash", "fake")
            .attr("refresh", "86400")
            .build()])],
        ("blocklist", _) => vec![result(vec![NodeBuilder::new("list").build()])],
        ("privacy", _) if kind == "get" => vec![result(vec![privacy_settings()])],
        ("usync", _) => vec![result(vec![usync_answer(account, directory, iq)])],
        ("md", "remove-companion-device") => {
            effects.removed_companion = true;
            vec![result(vec![])]
        }
        _ => vec![result(vec![])],
    };
    (answers, effects)
}

fn result_iq(id: &str, request: &Node, children: Vec<Node>) -> Node {
    let from = request.attrs.get("to").cloned().unwrap_or_else(|| NodeValue::from(SERVER_JID));
    let mut builder =
        NodeBuilder::new("iq").attr("id", id.to_string()).attr("type", "result").attr("from", from);
    if !children.is_empty() {
        builder = builder.children(children);
    }
    builder.build()
}

fn privacy_settings() -> Node {
    let categories = [
        ("last", "all"),
        ("online", "all"),
        ("profile", "all"),
        ("status", "all"),
        ("groupadd", "all"),
        ("readreceipts", "all"),
        ("calladd", "all"),
    ];
    NodeBuilder::new("privacy")
        .children(categories.iter().map(|(name, value)| {
            NodeBuilder::new("category").attr("name", *name).attr("value", *value).build()
        }))
        .build()
}

/// A usync answer: every queried user is a WhatsApp user whose only device is the phone
/// (device 0), unless the directory says the number is not on WhatsApp. When the query asks
/// for LIDs, users with a known LID (contacts given one, our own account) carry `<lid val>`.
/// A user queried by LID is answered under that LID when the directory knows it.
fn usync_answer(account: Option<&Account<'_>>, directory: &Directory, iq: &Node) -> Node {
    let Some(usync) = iq.get_optional_child("usync") else {
        return NodeBuilder::new("usync").build();
    };
    let wants_lid = usync.get_optional_child("query").and_then(|q| q.get_optional_child("lid")).is_some();
    let lid_of = |jid: &Jid| -> Option<String> {
        if !jid.is_pn() {
            return None;
        }
        match account {
            Some(a) if a.phone == jid.user.as_str() => Some(a.lid.to_string()),
            _ => directory.lid_of(&jid.user).map(str::to_string),
        }
    };
    let registered = |jid: &Jid| -> bool {
        if jid.is_lid() {
            account.is_some_and(|a| a.lid == jid.user.as_str()) || directory.phone_of_lid(&jid.user).is_some()
        } else {
            directory.is_registered(&jid.user)
        }
    };
    let users = usync
        .get_optional_child("list")
        .and_then(|l| l.children())
        .unwrap_or_default()
        .iter()
        .filter(|u| u.tag == "user")
        .filter_map(|u| {
            let jid = match attr(u, "jid") {
                Some(jid) => jid.parse::<Jid>().ok()?,
                None => {
                    let contact = u.get_optional_child("contact")?.content_as_string()?;
                    let digits: String = contact.chars().filter(|c| c.is_ascii_digit()).collect();
                    if digits.is_empty() {
                        return None;
                    }
                    Jid::pn(digits)
                }
            };
            Some(jid.to_non_ad())
        })
        .map(|jid| {
            if !registered(&jid) {
                return NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children([
                        NodeBuilder::new("contact").attr("type", "out").build(),
                        NodeBuilder::new("devices")
                            .children([NodeBuilder::new("device-list").build()])
                            .build(),
                    ])
                    .build();
            }
            let mut children = vec![
                NodeBuilder::new("contact").attr("type", "in").build(),
                NodeBuilder::new("devices")
                    .children([NodeBuilder::new("device-list")
                        .children([NodeBuilder::new("device").attr("id", "0").build()])
                        .build()])
                    .build(),
            ];
            if let Some(lid) = lid_of(&jid).filter(|_| wants_lid) {
                children.push(NodeBuilder::new("lid").attr("val", Jid::lid(lid)).build());
            }
            NodeBuilder::new("user").attr("jid", jid).children(children).build()
        })
        .collect::<Vec<_>>();
    let mut builder = NodeBuilder::new("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(v) = attr(usync, key) {
            builder = builder.attr(key, v);
        }
    }
    builder
        .children([NodeBuilder::new("result").build(), NodeBuilder::new("list").children(users).build()])
        .build()
}
