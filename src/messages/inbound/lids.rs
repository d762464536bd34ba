//! LIDs in an arriving message replaced by the numbers behind them, where the device knows
//! them, before the message is stored: so history, plugins and webhooks see numbers. A LID
//! whose number is not known yet stays; learning it later rewrites the stored message
//! ([`crate::db::Db::learn_lid`]).

use std::collections::HashMap;

use crate::db::Db;
use crate::devices::driver::{DeviceKey, InboundMessage};
use crate::phone::{is_lid, lid_jid, user_jid};

/// Most LIDs of one message looked up (a message may mention many people; beyond this they
/// stay LIDs until their numbers are learned).
const MAX_LOOKUPS: usize = 256;

/// The LID behind `jid`, when it names someone by LID.
fn lid_of(jid: &str) -> Option<String> {
    is_lid(jid).then(|| lid_jid(jid)).flatten()
}

/// The message with every LID it names replaced by the number behind it, where the device
/// knows it: its sender (the LID is kept as `sender_lid`), a direct chat named by the LID (it
/// becomes the number's chat), the people it mentions and the author of the message it quotes.
/// `None` when nothing changes, and when the lookup fails (the message is stored as it came).
pub(super) async fn resolve(db: &Db, device: &DeviceKey, m: &InboundMessage) -> Option<InboundMessage> {
    let sender = (!m.from_me).then(|| lid_of(&m.sender)).flatten();
    let chat = (!m.is_group).then(|| lid_of(&m.chat)).flatten();
    let quoted = m.reply_to.as_ref().and_then(|q| q.sender.as_deref()).and_then(lid_of);
    let mut named: Vec<String> = sender.iter().chain(&chat).chain(&quoted).cloned().collect();
    named.extend(m.mentions.iter().filter_map(|x| lid_of(x)));
    named.sort();
    named.dedup();
    named.truncate(MAX_LOOKUPS);
    if named.is_empty() {
        return None;
    }
    let phones = match db.lid_phones(device.tenant_id, device.device_id, &named).await {
        Ok(phones) if !phones.is_empty() => phones,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(device_id = device.device_id, error = %e, "could not look up LIDs of a message");
            return None;
        }
    };
    Some(rewrite(m, &phones))
}

/// `m` with the LIDs in `phones` (LID → digits) replaced.
fn rewrite(m: &InboundMessage, phones: &HashMap<String, String>) -> InboundMessage {
    let phone_of = |jid: &str| lid_of(jid).and_then(|lid| phones.get(&lid).cloned());
    let mut out = m.clone();
    if !m.from_me {
        if let (Some(lid), Some(phone)) = (lid_of(&m.sender), phone_of(&m.sender)) {
            out.sender = phone;
            out.sender_lid = Some(lid);
        }
    }
    if !m.is_group {
        if let Some(phone) = phone_of(&m.chat) {
            out.chat = user_jid(&phone);
        }
    }
    let mut mentions: Vec<String> = Vec::with_capacity(m.mentions.len());
    for mention in &m.mentions {
        let mention = phone_of(mention).unwrap_or_else(|| mention.clone());
        if !mentions.contains(&mention) {
            mentions.push(mention);
        }
    }
    out.mentions = mentions;
    if let Some(quote) = out.reply_to.as_mut() {
        if let Some(phone) = quote.sender.as_deref().and_then(phone_of) {
            quote.sender = Some(phone);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::driver::InboundQuote;

    fn phones() -> HashMap<String, String> {
        HashMap::from([("11@lid".to_string(), "628111".to_string())])
    }

    #[test]
    fn known_lids_become_numbers_and_unknown_ones_stay() {
        let m = InboundMessage {
            chat: "120363000000000001@g.us".into(),
            sender: "11@lid".into(),
            is_group: true,
            mentions: vec!["11@lid".into(), "628111".into(), "22@lid".into()],
            reply_to: Some(InboundQuote { wa_id: "Q".into(), sender: Some("11@lid".into()), text: None }),
            ..Default::default()
        };
        let out = rewrite(&m, &phones());
        assert_eq!(out.sender, "628111");
        assert_eq!(out.sender_lid.as_deref(), Some("11@lid"));
        assert_eq!(out.chat, m.chat, "a group stays the chat");
        assert_eq!(out.mentions, ["628111", "22@lid"]);
        assert_eq!(out.reply_to.unwrap().sender.as_deref(), Some("628111"));
    }

    #[test]
    fn a_direct_chat_named_by_the_lid_becomes_the_numbers_chat() {
        let m = InboundMessage { chat: "11@lid".into(), sender: "11@lid".into(), ..Default::default() };
        assert_eq!(rewrite(&m, &phones()).chat, "628111@s.whatsapp.net");
        // Sent from the account's phone to the LID: the chat moves, the sender is the device.
        let mine = InboundMessage { chat: "11@lid".into(), sender: "628999".into(), from_me: true, ..m };
        let out = rewrite(&mine, &phones());
        assert_eq!((out.chat.as_str(), out.sender.as_str()), ("628111@s.whatsapp.net", "628999"));
        assert_eq!(out.sender_lid, None);
    }
}
