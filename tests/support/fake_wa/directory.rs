//! Who is who on the fake network: the contacts (everyone who is not one of the fake's
//! accounts), found by phone number or by LID, and what the fake knows about them.
//!
//! A contact is created on first mention (a prekey fetch, a usync query, a test call) with a
//! phone number only. A test may give it a LID ([`super::FakeWhatsApp::set_contact_lid`]);
//! from then on usync answers carry the LID and both addresses reach the same contact, the
//! same Signal peer and the same inbox.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use whatsapp_rust::wacore_binary::Jid;

use super::contacts::ContactProfile;
use super::messaging::Received;
use super::peer::Peer;

/// One contact: a person with a phone (device 0) on the fake network.
pub struct Contact {
    pub phone: String,
    pub lid: Option<String>,
    /// The `notify` name on messages it sends.
    pub push_name: String,
    /// Its phone as a Signal peer, created on first use.
    pub peer: Arc<tokio::sync::OnceCell<Arc<Peer>>>,
    /// Every message the client sent it that the fake decrypted, in arrival order (a resent
    /// message appears once per copy).
    pub inbox: Vec<Received>,
    /// What it shows of itself: about text, picture, business (`contacts.rs`).
    pub profile: ContactProfile,
    /// The accounts (phone numbers) that blocked it.
    pub blocked_by: HashSet<String>,
}

/// Who a JID on the wire stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A device of one of the fake's accounts (device 0 is the account's phone).
    Account { phone: String, device: u16 },
    /// A contact's phone.
    Contact { phone: String },
    /// A number that is not on WhatsApp, or a device nobody has.
    Nobody,
}

#[derive(Default)]
pub struct Directory {
    contacts: BTreeMap<String, Contact>,
    /// LID user → phone number of contacts.
    lids: HashMap<String, String>,
    /// Numbers (digits) that are not on WhatsApp.
    pub unregistered: HashSet<String>,
}

impl Directory {
    /// The contact with this phone number, created when first asked for.
    pub fn contact(&mut self, phone: &str) -> &mut Contact {
        self.contacts.entry(phone.to_string()).or_insert_with(|| Contact {
            phone: phone.to_string(),
            lid: None,
            push_name: format!("Contact {}", &phone[phone.len().saturating_sub(4)..]),
            peer: Arc::new(tokio::sync::OnceCell::new()),
            inbox: Vec::new(),
            profile: ContactProfile::default(),
            blocked_by: HashSet::new(),
        })
    }

    pub fn get(&self, phone: &str) -> Option<&Contact> {
        self.contacts.get(phone)
    }

    /// Every contact, in number order.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values()
    }

    /// Gives a contact a LID (replacing any earlier one).
    pub fn set_lid(&mut self, phone: &str, lid: &str) {
        if let Some(old) = self.contact(phone).lid.replace(lid.to_string()) {
            self.lids.remove(&old);
        }
        self.lids.insert(lid.to_string(), phone.to_string());
    }

    /// The phone number of the contact with this LID.
    pub fn phone_of_lid(&self, lid: &str) -> Option<&str> {
        self.lids.get(lid).map(String::as_str)
    }

    /// The LID of the contact with this phone number, if it has one.
    pub fn lid_of(&self, phone: &str) -> Option<&str> {
        self.contacts.get(phone).and_then(|c| c.lid.as_deref())
    }

    /// Whether `phone` is on WhatsApp.
    pub fn is_registered(&self, phone: &str) -> bool {
        !self.unregistered.contains(phone)
    }

    /// Resolves a contact's JID (PN or LID form) to its phone number; `None` for numbers not
    /// on WhatsApp, unknown LIDs and other servers. Contacts have one device, the phone.
    pub fn contact_phone(&self, jid: &Jid) -> Option<String> {
        if jid.device != 0 {
            return None;
        }
        if jid.is_lid() {
            return self.phone_of_lid(&jid.user).map(str::to_string);
        }
        (jid.is_pn() && self.is_registered(&jid.user)).then(|| jid.user.to_string())
    }
}
