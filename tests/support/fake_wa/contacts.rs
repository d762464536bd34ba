//! What a client asks about contacts: their profiles and the account's blocklist.
//!
//! - a user-info usync (a query naming `<status/>` or `<picture/>`) answers, for each queried
//!   contact on WhatsApp, the protocols the query names: `<status>` with the about text,
//!   `<picture id>` (or a 404 error when there is none), `<business>` with the verified name
//!   for a business, `<lid val>` once the contact has a LID, and its one device; a number not
//!   on WhatsApp is left out of the list;
//! - `w:profile:picture` answers the picture's URL for the `target`, or the IQ error 404 a
//!   contact without a picture (or a number not on WhatsApp) gets;
//! - `blocklist`: a `get` lists the contacts the account blocked (by LID); a `set` blocks,
//!   naming the contact by LID with its number as `pn_jid` as WhatsApp wants (400 otherwise),
//!   or unblocks (LID or number); someone the directory does not know is 404.
//!
//! Tests set what a contact shows with [`FakeWhatsApp::set_contact_profile`] and read the
//! account's blocklist with [`FakeWhatsApp::blocklist`].

use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, SERVER_JID};

use super::conn::attr;
use super::directory::Who;
use super::{unix_now, FakeWhatsApp};

/// What a contact shows of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactProfile {
    /// The "about" text.
    pub about: Option<String>,
    /// The URL of its profile picture.
    pub picture_url: Option<String>,
    /// A WhatsApp Business account.
    pub business: bool,
    /// The business's verified name.
    pub verified_name: Option<String>,
}

impl ContactProfile {
    /// The picture's id: WhatsApp numbers each picture; this one follows the URL.
    fn picture_id(&self) -> Option<u64> {
        let url = self.picture_url.as_ref()?;
        // FNV-1a, kept below 2^53 so it looks like WhatsApp's ids.
        let hash = url
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Some(hash % (1 << 53))
    }
}

fn result(iq: &Node, children: Vec<Node>) -> Node {
    let mut builder = NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "result")
        .attr("from", SERVER_JID);
    if !children.is_empty() {
        builder = builder.children(children);
    }
    builder.build()
}

fn refuse(iq: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "error")
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_string())
            .build()])
        .build()
}

fn error_node(tag: &'static str, code: u16, text: &str) -> Node {
    NodeBuilder::new(tag)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_string())
            .build()])
        .build()
}

impl FakeWhatsApp {
    /// Sets what contact `phone` shows: about text, profile picture, business.
    pub fn set_contact_profile(&self, phone: &str, profile: ContactProfile) {
        self.state.lock().unwrap().directory.contact(phone).profile = profile;
    }

    /// The contacts (phone numbers) account `phone` has blocked, in number order.
    pub fn blocklist(&self, phone: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.directory.contacts().filter(|c| c.blocked_by.contains(phone)).map(|c| c.phone.clone()).collect()
    }

    /// Whether `iq` is a usync asking for profiles (about text or picture), which
    /// [`Self::profile_usync`] answers.
    pub(super) fn is_profile_usync(iq: &Node) -> bool {
        let query = iq.get_optional_child("usync").and_then(|u| u.get_optional_child("query"));
        query.is_some_and(|q| {
            q.get_optional_child("status").is_some() || q.get_optional_child("picture").is_some()
        })
    }

    /// The answer to a user-info usync.
    pub(super) fn profile_usync(&self, iq: &Node) -> Node {
        let usync = iq.get_optional_child("usync").expect("checked by is_profile_usync");
        let query = usync.get_optional_child("query");
        let wants = |tag: &str| query.is_some_and(|q| q.get_optional_child(tag).is_some());
        let jids: Vec<Jid> = usync
            .get_optional_child("list")
            .and_then(|l| l.children())
            .unwrap_or_default()
            .iter()
            .filter(|u| u.tag == "user")
            .filter_map(|u| attr(u, "jid")?.parse::<Jid>().ok())
            .map(|j| j.to_non_ad())
            .collect();
        let state = self.state.lock().unwrap();
        let users = jids
            .into_iter()
            .filter_map(|jid| {
                let (profile, lid) = match state.who(&jid) {
                    Who::Contact { phone } => {
                        let contact = state.directory.get(&phone);
                        (
                            contact.map(|c| c.profile.clone()).unwrap_or_default(),
                            contact.and_then(|c| c.lid.clone()),
                        )
                    }
                    Who::Account { phone, .. } => {
                        (ContactProfile::default(), state.accounts.get(&phone).map(|a| a.lid.clone()))
                    }
                    Who::Nobody => return None,
                };
                let mut children = Vec::new();
                if let Some(lid) = lid.filter(|_| wants("lid") && jid.is_pn()) {
                    children.push(NodeBuilder::new("lid").attr("val", Jid::lid(lid)).build());
                }
                if wants("status") {
                    let status = NodeBuilder::new("status").attr("t", unix_now().to_string());
                    children.push(match &profile.about {
                        Some(about) => status.string_content(about.clone()).build(),
                        None => status.build(),
                    });
                }
                if wants("picture") {
                    children.push(match profile.picture_id() {
                        Some(id) => NodeBuilder::new("picture").attr("id", id.to_string()).build(),
                        None => error_node("picture", 404, "item-not-found"),
                    });
                }
                if wants("business") && profile.business {
                    let mut verified = NodeBuilder::new("verified_name");
                    if let Some(name) = &profile.verified_name {
                        verified = verified.attr("name", name.clone());
                    }
                    children.push(NodeBuilder::new("business").children([verified.build()]).build());
                }
                if wants("devices") {
                    children.push(
                        NodeBuilder::new("devices")
                            .children([NodeBuilder::new("device-list")
                                .children([NodeBuilder::new("device").attr("id", "0").build()])
                                .build()])
                            .build(),
                    );
                }
                Some(NodeBuilder::new("user").attr("jid", jid).children(children).build())
            })
            .collect::<Vec<_>>();
        let mut builder = NodeBuilder::new("usync");
        for key in ["sid", "mode", "context", "index", "last"] {
            if let Some(v) = attr(usync, key) {
                builder = builder.attr(key, v);
            }
        }
        let usync = builder
            .children([NodeBuilder::new("result").build(), NodeBuilder::new("list").children(users).build()]);
        result(iq, vec![usync.build()])
    }

    /// The answer to a `w:profile:picture` get; `None` for a `set` (not modelled).
    pub(super) fn picture_iq(&self, iq: &Node) -> Option<Node> {
        if attr(iq, "type").as_deref() != Some("get") {
            return None;
        }
        let Some(target) = attr(iq, "target").and_then(|t| t.parse::<Jid>().ok()) else {
            return Some(refuse(iq, 400, "bad-request"));
        };
        let state = self.state.lock().unwrap();
        let profile = match state.who(&target.to_non_ad()) {
            Who::Contact { phone } => {
                state.directory.get(&phone).map(|c| c.profile.clone()).unwrap_or_default()
            }
            _ => ContactProfile::default(),
        };
        Some(match (profile.picture_id(), &profile.picture_url) {
            (Some(id), Some(url)) => result(
                iq,
                vec![NodeBuilder::new("picture")
                    .attr("id", id.to_string())
                    .attr("url", url.clone())
                    .attr("direct_path", format!("/v/t61/{id}.jpg"))
                    .attr("type", "image")
                    .build()],
            ),
            _ => refuse(iq, 404, "item-not-found"),
        })
    }

    /// The answer to a `blocklist` IQ of account `phone`.
    pub(super) fn blocklist_iq(&self, phone: &str, iq: &Node) -> Node {
        if attr(iq, "type").as_deref() == Some("get") {
            let state = self.state.lock().unwrap();
            let items = state
                .directory
                .contacts()
                .filter(|c| c.blocked_by.contains(phone))
                .map(|c| {
                    let jid = match &c.lid {
                        Some(lid) => Jid::lid(lid.clone()),
                        None => Jid::pn(c.phone.clone()),
                    };
                    NodeBuilder::new("item").attr("jid", jid).build()
                })
                .collect::<Vec<_>>();
            return result(iq, vec![NodeBuilder::new("list").children(items).build()]);
        }
        let Some(item) = iq.get_optional_child("item") else {
            return refuse(iq, 400, "bad-request");
        };
        let jid = attr(item, "jid").and_then(|j| j.parse::<Jid>().ok());
        let pn = attr(item, "pn_jid").and_then(|j| j.parse::<Jid>().ok());
        let answer = {
            let mut state = self.state.lock().unwrap();
            let contact = jid.as_ref().and_then(|j| state.directory.contact_phone(&j.to_non_ad()));
            match (attr(item, "action").as_deref(), &jid, contact) {
                (_, _, None) => Err((404, "item-not-found")),
                (Some("block"), Some(jid), Some(contact)) => {
                    let pn_matches = pn.as_ref().is_some_and(|p| p.is_pn() && p.user.as_str() == contact);
                    if !jid.is_lid() || !pn_matches {
                        Err((400, "bad-request"))
                    } else {
                        state.directory.contact(&contact).blocked_by.insert(phone.to_string());
                        Ok(())
                    }
                }
                (Some("unblock"), _, Some(contact)) => {
                    state.directory.contact(&contact).blocked_by.remove(phone);
                    Ok(())
                }
                _ => Err((400, "bad-request")),
            }
        };
        match answer {
            Ok(()) => {
                self.bump();
                result(iq, vec![])
            }
            Err((code, text)) => refuse(iq, code, text),
        }
    }
}
