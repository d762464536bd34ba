//! The group IQs (`xmlns="w:g2"`) a client sends, answered the way the library's IQ parsers
//! read them, and the `w:gp2` notifications of changes contacts make.
//!
//! - `<participating>` lists the groups the account is in (`<groups><group>…`);
//! - `<query>` reads one group: 404 for a group nobody has, 403 for one the account is not in;
//! - `<create>` makes a group of the account (superadmin) and the contacts it names; one not
//!   on WhatsApp is listed with `error="404"` and is not a member;
//! - `<add>`, `<remove>`, `<promote>`, `<demote>` answer per participant (`error` 403, 404,
//!   409 as WhatsApp does); only admins may, or any member adds when the group lets them;
//! - `<subject>`, `<description>`, `<announcement>`/`<not_announcement>`,
//!   `<locked>`/`<unlocked>`, `<member_add_mode>` change the group (settings: admins only;
//!   subject and description: admins only in a locked group);
//! - `<invite>` to a group answers its code (a `set` makes a new one); `<invite code>` to
//!   `@g.us` joins the group with that code; `<leave>` leaves groups.
//!
//! A change the client makes is not notified back to it; a contact's change
//! ([`FakeWhatsApp::member_leaves`], [`FakeWhatsApp::member_adds`]) is pushed to the online
//! companions of every account in the group, as WhatsApp does, and not redelivered later.

use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node};

use super::conn::attr;
use super::directory::Who;
use super::groups::Group;
use super::{new_message_id, unix_now, FakeWhatsApp};

/// A fresh invite code (22 letters and digits, like WhatsApp's).
pub fn new_invite_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..22).map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char).collect()
}

fn answer(iq: &Node, children: Vec<Node>) -> Node {
    let mut builder = NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "result")
        .attr("from", attr(iq, "to").unwrap_or_else(|| "g.us".to_string()));
    if !children.is_empty() {
        builder = builder.children(children);
    }
    builder.build()
}

fn refuse(iq: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(iq, "id").unwrap_or_default())
        .attr("type", "error")
        .attr("from", attr(iq, "to").unwrap_or_else(|| "g.us".to_string()))
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_string())
            .build()])
        .build()
}

/// The `<participant jid>` children of `node`, as JIDs.
fn participant_jids(node: &Node) -> Vec<Jid> {
    node.children()
        .unwrap_or_default()
        .iter()
        .filter(|p| p.tag == "participant")
        .filter_map(|p| attr(p, "jid")?.parse().ok())
        .collect()
}

fn participant(jid: &Jid, error: Option<u16>) -> Node {
    let builder = NodeBuilder::new("participant").attr("jid", jid.clone());
    match error {
        Some(code) => builder.attr("error", code.to_string()),
        None => builder,
    }
    .build()
}

impl FakeWhatsApp {
    /// The answer to a client's `w:g2` IQ from account `phone`; `None` for what the fake does
    /// not model (the generic empty result answers it).
    pub(super) fn group_iq(&self, phone: Option<&str>, iq: &Node) -> Option<Node> {
        let phone = phone?;
        let first = iq.children()?.first()?.clone();
        let kind = attr(iq, "type").unwrap_or_default();
        // Addressed to a group, or to the groups server (`@g.us`).
        let to = attr(iq, "to").and_then(|t| t.parse::<Jid>().ok()).filter(|j| !j.user.is_empty());
        let answer = if let Some(to) = to {
            let mut state = self.state.lock().unwrap();
            let Some(group) = state.groups.get_mut(to.user.as_str()) else {
                return Some(refuse(iq, 404, "item-not-found"));
            };
            if !group.members.iter().any(|m| m == phone) {
                return Some(refuse(iq, 403, "forbidden"));
            }
            let admin = group.is_admin(phone);
            let changed = match first.tag.as_ref() {
                "query" => return Some(answer(iq, vec![group.node()])),
                "invite" if !admin => return Some(refuse(iq, 401, "not-authorized")),
                "invite" => {
                    if kind == "set" {
                        group.invite = new_invite_code();
                    }
                    let code = NodeBuilder::new("invite").attr("code", group.invite.clone()).build();
                    return Some(answer(iq, vec![code]));
                }
                "add" | "remove" | "promote" | "demote" => {
                    let may = admin || (first.tag == "add" && !group.admin_add);
                    if !may {
                        return Some(refuse(iq, 403, "forbidden"));
                    }
                    let who: Vec<(Jid, Who)> =
                        participant_jids(&first).into_iter().map(|j| (j.clone(), state.who(&j))).collect();
                    let group = state.groups.get_mut(to.user.as_str()).expect("checked above");
                    let results =
                        who.iter().map(|(jid, who)| participant(jid, change(group, &first.tag, who)));
                    let node = NodeBuilder::new_dynamic(first.tag.to_string()).children(results).build();
                    drop(state);
                    self.bump();
                    return Some(answer(iq, vec![node]));
                }
                "subject" | "description" if group.locked && !admin => {
                    return Some(refuse(iq, 403, "forbidden"))
                }
                "subject" => {
                    group.subject = text_of(&first).unwrap_or_default();
                    true
                }
                "description" => {
                    let id = attr(&first, "id").unwrap_or_default();
                    group.description = match first.get_optional_child("body").and_then(text_of) {
                        Some(text) if attr(&first, "delete").is_none() => Some((id, text)),
                        _ => None,
                    };
                    true
                }
                "announcement" | "not_announcement" | "locked" | "unlocked" | "member_add_mode" if !admin => {
                    return Some(refuse(iq, 403, "forbidden"))
                }
                "announcement" | "not_announcement" => {
                    group.announce = first.tag == "announcement";
                    true
                }
                "locked" | "unlocked" => {
                    group.locked = first.tag == "locked";
                    true
                }
                "member_add_mode" => {
                    group.admin_add = text_of(&first).as_deref() == Some("admin_add");
                    true
                }
                _ => false,
            };
            drop(state);
            if !changed {
                return None;
            }
            self.bump();
            answer(iq, Vec::new())
        } else {
            match first.tag.as_ref() {
                "participating" => self.participating(phone, iq),
                "create" => self.create(phone, iq, &first),
                "invite" => self.join(phone, iq, &first),
                "leave" => self.leave(phone, iq, &first),
                _ => return None,
            }
        };
        Some(answer)
    }

    fn participating(&self, phone: &str, iq: &Node) -> Node {
        let groups = self.groups_of(phone).iter().map(Group::node).collect::<Vec<_>>();
        answer(iq, vec![NodeBuilder::new("groups").children(groups).build()])
    }

    /// A new group of the account and the participants it names that are on WhatsApp; the
    /// others are listed with `error="404"`.
    fn create(&self, phone: &str, iq: &Node, create: &Node) -> Node {
        let subject = attr(create, "subject").unwrap_or_default();
        let asked = participant_jids(create);
        let mut members = vec![phone.to_string()];
        let mut refused = Vec::new();
        {
            let state = self.state.lock().unwrap();
            for jid in &asked {
                match state.who(jid) {
                    Who::Contact { phone: p } | Who::Account { phone: p, device: 0 } => {
                        if !members.contains(&p) {
                            members.push(p);
                        }
                    }
                    _ => refused.push(jid.clone()),
                }
            }
        }
        let jid = self.add_group(&subject, members);
        let mut node = self.group(&jid).expect("just added").node();
        if let Some(whatsapp_rust::wacore_binary::NodeContent::Nodes(children)) = node.content.as_mut() {
            children.extend(refused.iter().map(|j| participant(j, Some(404))));
        }
        self.note(format!("{phone} created group {jid} ({} refused)", refused.len()));
        answer(iq, vec![node])
    }

    fn join(&self, phone: &str, iq: &Node, invite: &Node) -> Node {
        let Some(code) = attr(invite, "code") else { return refuse(iq, 400, "bad-request") };
        let joined = {
            let mut state = self.state.lock().unwrap();
            state.groups.values_mut().find(|g| g.invite == code).map(|g| {
                if !g.members.iter().any(|m| m == phone) {
                    g.members.push(phone.to_string());
                }
                g.jid.clone()
            })
        };
        match joined {
            Some(jid) => {
                self.bump();
                answer(iq, vec![NodeBuilder::new("group").attr("jid", jid).build()])
            }
            None => refuse(iq, 404, "item-not-found"),
        }
    }

    fn leave(&self, phone: &str, iq: &Node, leave: &Node) -> Node {
        let groups: Vec<Jid> =
            leave.children().unwrap_or_default().iter().filter_map(|g| attr(g, "id")?.parse().ok()).collect();
        {
            let mut state = self.state.lock().unwrap();
            for jid in &groups {
                if let Some(group) = state.groups.get_mut(jid.user.as_str()) {
                    group.remove_member(phone);
                }
            }
        }
        self.bump();
        answer(iq, Vec::new())
    }

    /// Contact `member` leaves `group`: the account's online companions get the `<remove>`.
    pub fn member_leaves(&self, group: &Jid, member: &str) {
        let notify = self.group_notification(group, member, "remove", &[member]);
        if let Some(g) = self.state.lock().unwrap().groups.get_mut(group.user.as_str()) {
            g.remove_member(member);
        }
        self.bump();
        self.push_notification(notify);
    }

    /// Member `by` adds `added` (contacts' numbers) to `group`: the account's online companions
    /// get the `<add>`.
    pub fn member_adds(&self, group: &Jid, by: &str, added: &[&str]) {
        if let Some(g) = self.state.lock().unwrap().groups.get_mut(group.user.as_str()) {
            for a in added {
                if !g.members.iter().any(|m| m == a) {
                    g.members.push(a.to_string());
                }
            }
        }
        let notify = self.group_notification(group, by, "add", added);
        self.bump();
        self.push_notification(notify);
    }

    /// A `w:gp2` notification of `action` on `participants` by `by`, and the accounts in the
    /// group (who receive it).
    fn group_notification(
        &self,
        group: &Jid,
        by: &str,
        action: &'static str,
        participants: &[&str],
    ) -> (Vec<String>, Node) {
        let accounts: Vec<String> = {
            let state = self.state.lock().unwrap();
            let members =
                state.groups.get(group.user.as_str()).map(|g| g.members.clone()).unwrap_or_default();
            members.into_iter().filter(|m| state.accounts.contains_key(m)).collect()
        };
        let changed = participants.iter().map(|p| participant(&Jid::pn(p.to_string()), None));
        let node = NodeBuilder::new("notification")
            .attr("type", "w:gp2")
            .attr("from", group.clone())
            .attr("id", new_message_id())
            .attr("t", unix_now().to_string())
            .attr("participant", Jid::pn(by.to_string()))
            .children([NodeBuilder::new(action).children(changed).build()])
            .build();
        (accounts, node)
    }

    /// Sends a notification to every online companion of the accounts.
    fn push_notification(&self, (accounts, node): (Vec<String>, Node)) {
        for phone in accounts {
            for device in self.companions(&phone) {
                let conn = self.state.lock().unwrap().online_conn(&phone, device);
                match conn {
                    Some(conn) if conn.send_node(&node).is_ok() => {
                        self.note(format!("group notification to {phone}:{device}: {}", super::render(&node)))
                    }
                    _ => self.note(format!("{phone}:{device} is offline: group notification dropped")),
                }
            }
        }
    }
}

/// Applies one participant change; answers the participant's error code, if any.
fn change(group: &mut Group, action: &str, who: &Who) -> Option<u16> {
    let phone = match who {
        Who::Contact { phone } | Who::Account { phone, device: 0 } => phone.clone(),
        _ => return Some(404),
    };
    let member = group.members.contains(&phone);
    match (action, member) {
        ("add", true) => Some(409),
        ("add", false) => {
            group.members.push(phone);
            None
        }
        (_, false) => Some(404),
        ("remove", true) => {
            group.remove_member(&phone);
            None
        }
        ("promote", true) => {
            if !group.admins.contains(&phone) {
                group.admins.push(phone);
            }
            None
        }
        ("demote", true) => {
            group.admins.retain(|m| *m != phone);
            None
        }
        _ => Some(400),
    }
}

fn text_of(node: &Node) -> Option<String> {
    match node.content.as_ref()? {
        whatsapp_rust::wacore_binary::NodeContent::String(s) => Some(s.to_string()),
        whatsapp_rust::wacore_binary::NodeContent::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}
