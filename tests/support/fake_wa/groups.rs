//! Groups addressed by phone number (`addressing_mode="pn"`): metadata for the client's
//! `w:g2` query, group messages from the client decrypted by every member contact, and group
//! messages members send.
//!
//! A client's group message carries, pairwise for each member device that does not have it
//! yet, a sender-key distribution message (SKDM) in `<participants><to jid><enc>`, and the
//! content once, as an `skmsg` under the sender key. Each member's peer decrypts its SKDM,
//! stores the client's sender key (named after the group and the sending companion), then
//! decrypts the `skmsg`. A member sending does the same in reverse: its SKDM, pairwise to the
//! companion, then the `skmsg`; later messages carry only the `skmsg`.
//!
//! The group IQs a client sends (list, create, participants, settings, invites, leave) and the
//! notifications of changes contacts make are in `group_admin.rs`.
//!
//! Not modelled: LID-addressed groups, `phash` checks, membership approval, communities.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::wacore::libsignal::protocol::{
    create_sender_key_distribution_message, group_decrypt, group_encrypt,
    process_sender_key_distribution_message, SenderKeyDistributionMessage,
};
use whatsapp_rust::wacore::messages::MessageUtils;
use whatsapp_rust::wacore::types::jid::{make_sender_key_name, JidExt as _};
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node};
use whatsapp_rust::waproto::whatsapp as wa;

use super::conn::attr;
use super::directory::Who;
use super::inbound::ContactSent;
use super::messaging::{pairwise_copies, Content, Received};
use super::peer::{decode_padded, EncKind, Peer};
use super::stanza::bytes_of;
use super::{new_message_id, unix_now, FakeEvent, FakeWhatsApp};

/// A group on the fake network.
#[derive(Debug, Clone)]
pub struct Group {
    pub jid: Jid,
    pub subject: String,
    /// Members by phone number: the account's and its contacts'.
    pub members: Vec<String>,
    pub created: u64,
    /// Who created it (phone number).
    pub creator: String,
    /// The creator until they leave (or are removed): an admin nobody demotes.
    pub superadmin: Option<String>,
    /// Members promoted to admin.
    pub admins: Vec<String>,
    /// The description's id and text.
    pub description: Option<(String, String)>,
    /// Only admins send.
    pub announce: bool,
    /// Only admins change the subject and description.
    pub locked: bool,
    /// Only admins add members.
    pub admin_add: bool,
    /// The code of its invite link.
    pub invite: String,
}

impl Group {
    pub fn new(jid: Jid, subject: &str, members: Vec<String>) -> Group {
        Group {
            jid,
            subject: subject.to_string(),
            creator: members[0].clone(),
            superadmin: Some(members[0].clone()),
            members,
            created: unix_now(),
            admins: Vec::new(),
            description: None,
            announce: false,
            locked: false,
            admin_add: false,
            invite: super::group_admin::new_invite_code(),
        }
    }

    pub fn is_admin(&self, phone: &str) -> bool {
        self.superadmin.as_deref() == Some(phone) || self.admins.iter().any(|a| a == phone)
    }

    /// `phone` leaves (or is removed), with any role they had.
    pub fn remove_member(&mut self, phone: &str) {
        self.members.retain(|m| m != phone);
        self.admins.retain(|m| m != phone);
        if self.superadmin.as_deref() == Some(phone) {
            self.superadmin = None;
        }
    }

    /// The `<group>` node of metadata answers: members by phone number with their roles.
    pub fn node(&self) -> Node {
        let mut children: Vec<Node> = self
            .members
            .iter()
            .map(|m| {
                let builder = NodeBuilder::new("participant").attr("jid", Jid::pn(m.clone()));
                match (self.superadmin.as_ref() == Some(m), self.admins.contains(m)) {
                    (true, _) => builder.attr("type", "superadmin"),
                    (false, true) => builder.attr("type", "admin"),
                    (false, false) => builder,
                }
                .build()
            })
            .collect();
        if let Some((id, text)) = &self.description {
            children.push(
                NodeBuilder::new("description")
                    .attr("id", id.clone())
                    .children([NodeBuilder::new("body").string_content(text.clone()).build()])
                    .build(),
            );
        }
        if self.announce {
            children.push(NodeBuilder::new("announcement").build());
        }
        if self.locked {
            children.push(NodeBuilder::new("locked").build());
        }
        let add_mode = if self.admin_add { "admin_add" } else { "all_member_add" };
        children.push(NodeBuilder::new("member_add_mode").string_content(add_mode).build());
        NodeBuilder::new("group")
            .attr("id", self.jid.user.to_string())
            .attr("subject", self.subject.clone())
            .attr("addressing_mode", "pn")
            .attr("creation", self.created.to_string())
            .attr("creator", Jid::pn(self.creator.clone()))
            .attr("size", self.members.len().to_string())
            .children(children)
            .build()
    }
}

impl Peer {
    /// Stores the sender key `sender` distributes for `group` (an SKDM it sent this peer).
    pub async fn process_sender_key(&self, group: &Jid, sender: &Jid, skdm: &[u8]) -> Result<()> {
        let skdm = SenderKeyDistributionMessage::try_from(skdm).context("not an SKDM")?;
        let name = make_sender_key_name(group, &sender.to_protocol_address());
        let mut stores = self.stores().await;
        process_sender_key_distribution_message(&name, &skdm, &mut stores.sender_key_store).await?;
        Ok(())
    }

    /// Decrypts `sender`'s group message (an `skmsg`) with the sender key it distributed.
    pub async fn group_decrypt(&self, group: &Jid, sender: &Jid, skmsg: &[u8]) -> Result<wa::Message> {
        let name = make_sender_key_name(group, &sender.to_protocol_address());
        let mut stores = self.stores().await;
        let plaintext = group_decrypt(skmsg, &mut stores.sender_key_store, &name).await?;
        decode_padded(&plaintext)
    }

    /// This peer's sender-key distribution message for `group` (creating its sender key on
    /// first use), and `message` encrypted under that key.
    pub async fn group_encrypt(&self, group: &Jid, message: &wa::Message) -> Result<(Vec<u8>, Vec<u8>)> {
        let name = make_sender_key_name(group, &self.jid.to_protocol_address());
        let mut rng = rand10::make_rng::<rand10::rngs::StdRng>();
        let mut stores = self.stores().await;
        let skdm =
            create_sender_key_distribution_message(&name, &mut stores.sender_key_store, &mut rng).await?;
        let plaintext = MessageUtils::pad_message_v2(message.encode_to_vec());
        let skmsg = group_encrypt(&mut stores.sender_key_store, &name, &plaintext, &mut rng).await?;
        Ok((skdm.serialized().to_vec(), skmsg.serialized().to_vec()))
    }
}

impl FakeWhatsApp {
    /// Creates a group of the account `phone` and `contacts` (digits); returns its JID.
    pub fn create_group(&self, subject: &str, phone: &str, contacts: &[&str]) -> Jid {
        let mut members = vec![phone.to_string()];
        members.extend(contacts.iter().map(|c| c.to_string()));
        self.add_group(subject, members)
    }

    /// Records a new group of `members` (the creator first); returns its JID.
    pub(super) fn add_group(&self, subject: &str, members: Vec<String>) -> Jid {
        let jid = Jid::group(format!("120363{:012}", rand::random::<u64>() % 1_000_000_000_000));
        let group = Group::new(jid.clone(), subject, members);
        self.state.lock().unwrap().groups.insert(jid.user.to_string(), group);
        self.bump();
        jid
    }

    /// The group `jid` as the fake has it now.
    pub fn group(&self, jid: &Jid) -> Option<Group> {
        self.state.lock().unwrap().groups.get(jid.user.as_str()).cloned()
    }

    /// The groups `phone` (an account or a contact) is a member of.
    pub fn groups_of(&self, phone: &str) -> Vec<Group> {
        let state = self.state.lock().unwrap();
        state.groups.values().filter(|g| g.members.iter().any(|m| m == phone)).cloned().collect()
    }

    /// A client's group message: every member peer takes the sender key distributed to it,
    /// then decrypts the content. Returns the members that got this id for the first time.
    pub(super) async fn on_client_group_message(
        &self,
        sender: &Jid,
        group: &Jid,
        node: &Node,
    ) -> Vec<String> {
        let id = attr(node, "id").unwrap_or_default();
        for (target, kind, bytes) in pairwise_copies(node, group) {
            let who = self.state.lock().unwrap().who(&target);
            let peer = match &who {
                Who::Contact { phone } => self.contact_peer(phone).await,
                Who::Account { phone, device: 0 } => self.phone_peer(phone).await,
                _ => continue,
            };
            let by = target.user.to_string();
            let taken = async {
                let peer = peer?;
                let message = peer.decrypt(sender, kind, &bytes).await?;
                let skdm = message
                    .sender_key_distribution_message
                    .as_option()
                    .and_then(|d| d.axolotl_sender_key_distribution_message.clone())
                    .ok_or_else(|| anyhow!("no sender key in the pairwise part"))?;
                peer.process_sender_key(group, sender, &skdm).await
            }
            .await;
            match taken {
                Ok(()) => self.record(FakeEvent::Decrypted {
                    by,
                    from: sender.to_string(),
                    id: id.clone(),
                    enc: kind,
                }),
                Err(e) => self.record(FakeEvent::DecryptFailed {
                    by,
                    from: sender.to_string(),
                    id: id.clone(),
                    error: format!("{e:#}"),
                }),
            }
        }
        let Some(skmsg) = node
            .children()
            .unwrap_or_default()
            .iter()
            .find(|e| e.tag == "enc" && attr(e, "type").as_deref() == Some("skmsg"))
            .and_then(bytes_of)
            .map(<[u8]>::to_vec)
        else {
            return Vec::new();
        };
        let members = self.state.lock().unwrap().groups.get(group.user.as_str()).map(|g| g.members.clone());
        let mut fresh = Vec::new();
        for member in members.unwrap_or_default() {
            if !matches!(self.state.lock().unwrap().who(&Jid::pn(member.clone())), Who::Contact { .. }) {
                continue;
            }
            let decrypted = match self.contact_peer(&member).await {
                Ok(peer) => peer.group_decrypt(group, sender, &skmsg).await,
                Err(e) => Err(e),
            };
            match decrypted {
                Ok(message) => {
                    let received = Received {
                        id: id.clone(),
                        from: sender.clone(),
                        to: group.to_string(),
                        enc: EncKind::Skmsg,
                        content: Content::of(&message),
                        message,
                    };
                    let first = {
                        let mut state = self.state.lock().unwrap();
                        let inbox = &mut state.directory.contact(&member).inbox;
                        let first = !inbox.iter().any(|r| r.id == id);
                        inbox.push(received);
                        first
                    };
                    self.record(FakeEvent::Decrypted {
                        by: member.clone(),
                        from: sender.to_string(),
                        id: id.clone(),
                        enc: EncKind::Skmsg,
                    });
                    if first {
                        fresh.push(member);
                    }
                }
                Err(e) => self.record(FakeEvent::DecryptFailed {
                    by: member.clone(),
                    from: sender.to_string(),
                    id: id.clone(),
                    error: format!("{e:#}"),
                }),
            }
        }
        fresh
    }

    /// Member `member` (a contact, digits) sends `message` to `group`: to each companion of the
    /// account `phone`, its sender key pairwise (every time: a companion that has it ignores
    /// it) and the content as an `skmsg`.
    pub async fn member_sends(
        &self,
        phone: &str,
        group: &Jid,
        member: &str,
        message: &wa::Message,
    ) -> Result<ContactSent> {
        let peer: Arc<Peer> = self.contact_peer(member).await?;
        let push_name = self.state.lock().unwrap().directory.contact(member).push_name.clone();
        let (skdm, skmsg) = peer.group_encrypt(group, message).await?;
        let distribution = wa::Message {
            sender_key_distribution_message: MessageField::some(wa::message::SenderKeyDistributionMessage {
                group_id: Some(group.to_string()),
                axolotl_sender_key_distribution_message: Some(skdm),
            }),
            ..Default::default()
        };
        let id = new_message_id();
        let mut first_enc = None;
        for device in self.companions(phone) {
            let pairwise = self.encrypt_to_companion(&peer, phone, device, &distribution).await?;
            first_enc.get_or_insert(super::inbound::enc_kind(&pairwise));
            let content =
                NodeBuilder::new("enc").attr("v", "2").attr("type", "skmsg").bytes(skmsg.clone()).build();
            let stanza = NodeBuilder::new("message")
                .attr("from", group.clone())
                .attr("participant", Jid::pn(member.to_string()))
                .attr("id", id.clone())
                .attr("t", unix_now().to_string())
                .attr("type", "text")
                .attr("notify", push_name.clone())
                .children([pairwise, content])
                .build();
            self.deliver(phone, device, stanza);
        }
        let enc = first_enc.ok_or_else(|| anyhow!("{phone} has no linked companion"))?;
        self.record(FakeEvent::ContactSent {
            contact: member.to_string(),
            phone: phone.to_string(),
            id: id.clone(),
            enc,
        });
        Ok(ContactSent { id, enc })
    }
}
