//! Pure translations from the driver's outgoing messages to `whatsapp-rust`'s protobuf
//! messages. Kept free of I/O so each is unit-tested with the library's own types.
//!
//! `me` is the account's own JID (`…@s.whatsapp.net`, no device): WhatsApp names the author
//! of a message in a key or a quote, and for this account's own messages that is `me`.

use whatsapp_rust::upload::UploadResponse;
use whatsapp_rust::wacore::proto_helpers::{
    build_quote_context, build_reaction_message, MessageBuilderExt, MessageExt,
};
use whatsapp_rust::waproto::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::devices::driver::{ContactCard, Content, Location, MessageKey, Outgoing, PollSpec};

/// The protobuf message of everything but media (which is uploaded first).
pub fn message_of(content: &Content, me: &str) -> Result<wa::Message, String> {
    Ok(match content {
        Content::Text(text) => wa::Message::text(text.as_str()),
        Content::Media(_) => return Err("media is uploaded before it is sent".into()),
        Content::Location(location) => location_message(location),
        Content::Contacts(cards) => contacts_message(cards)?,
        Content::Poll(poll) => poll_message(poll)?,
        Content::Reaction { target, emoji } => {
            build_reaction_message(key_of(target, me), emoji.as_str(), now_ms())
        }
        Content::Edit { target, text } => edit_message(target, text, me),
        Content::Revoke { target } => revoke_message(target),
    })
}

/// `message` with the quote, the mentions and the forwarded mark of `outgoing`. Text with any
/// of them becomes an extended text (a bare `conversation` has no room for them); reactions,
/// edits and deletions carry none.
pub fn with_context(mut message: wa::Message, outgoing: &Outgoing, me: &str) -> wa::Message {
    if matches!(outgoing.content, Content::Reaction { .. } | Content::Edit { .. } | Content::Revoke { .. }) {
        return message;
    }
    if outgoing.reply_to.is_none() && outgoing.mentions.is_empty() && !outgoing.forwarded {
        return message;
    }
    let mut context = match &outgoing.reply_to {
        Some(quote) => {
            // The quote bubble shows the quoted text; the stanza id lets the recipient's app find
            // the original in its chat.
            let quoted = wa::Message::text(quote.text.clone().unwrap_or_default());
            build_quote_context(quote.key.wa_id.as_str(), author_of(&quote.key, me), &quoted)
        }
        None => wa::ContextInfo::default(),
    };
    context.mentioned_jid = outgoing.mentions.clone();
    if outgoing.forwarded {
        context.is_forwarded = Some(true);
        context.forwarding_score = Some(1);
    }
    message.set_context_info(context);
    message
}

/// A sticker message from an upload (the library has builders for the other media kinds).
pub fn sticker_message(upload: UploadResponse, mimetype: Option<String>) -> wa::Message {
    wa::Message {
        sticker_message: MessageField::some(wa::message::StickerMessage {
            url: Some(upload.url),
            direct_path: Some(upload.direct_path),
            media_key: Some(upload.media_key.to_vec()),
            file_sha256: Some(upload.file_sha256.to_vec()),
            file_enc_sha256: Some(upload.file_enc_sha256.to_vec()),
            file_length: Some(upload.file_length),
            media_key_timestamp: Some(upload.media_key_timestamp),
            mimetype: Some(mimetype.unwrap_or_else(|| "image/webp".into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Who wrote the message `key` names: the group member it says, this account for its own
/// messages, else the other side of the direct chat.
fn author_of(key: &MessageKey, me: &str) -> String {
    match &key.participant {
        Some(participant) => participant.clone(),
        None if key.from_me => me.to_string(),
        None => key.chat.clone(),
    }
}

/// WhatsApp's key of a message, for a reaction: in a group it names the author (this account
/// for its own messages); in a direct chat `from_me` says who wrote it.
fn key_of(target: &MessageKey, me: &str) -> wa::MessageKey {
    let group = target.chat.ends_with("@g.us");
    wa::MessageKey {
        remote_jid: Some(target.chat.clone()),
        from_me: Some(target.from_me),
        id: Some(target.wa_id.clone()),
        participant: if group { Some(author_of(target, me)) } else { target.participant.clone() },
    }
}

fn location_message(location: &Location) -> wa::Message {
    wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(location.latitude),
            degrees_longitude: Some(location.longitude),
            name: location.name.clone(),
            address: location.address.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One card as a contact message; several as one contacts-array message, as the apps send a
/// multiple-contact share.
fn contacts_message(cards: &[ContactCard]) -> Result<wa::Message, String> {
    let contact = |card: &ContactCard| wa::message::ContactMessage {
        display_name: Some(card.name.clone()),
        vcard: Some(card.vcard()),
        ..Default::default()
    };
    Ok(match cards {
        [] => return Err("a contact message needs at least one contact".into()),
        [card] => wa::Message { contact_message: MessageField::some(contact(card)), ..Default::default() },
        [first, rest @ ..] => wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                display_name: Some(format!(
                    "{} and {} other contact{}",
                    first.name,
                    rest.len(),
                    if rest.len() == 1 { "" } else { "s" }
                )),
                contacts: cards.iter().map(contact).collect(),
                ..Default::default()
            }),
            ..Default::default()
        },
    })
}

/// A poll as WhatsApp Web creates one: version 3 when one option may be chosen, version 1 when
/// several may, with a fresh message secret. Voters encrypt their votes with keys derived from
/// that secret; the library keeps it (under the chat, this account and the message id) when
/// it sends the message, so the votes can be opened later.
fn poll_message(poll: &PollSpec) -> Result<wa::Message, String> {
    if poll.options.len() < 2 {
        return Err("a poll needs at least two options".into());
    }
    let selectable = if poll.multiple { poll.options.len() as u32 } else { 1 };
    let creation = wa::message::PollCreationMessage {
        name: Some(poll.question.clone()),
        options: poll
            .options
            .iter()
            .map(|o| wa::message::poll_creation_message::Option {
                option_name: Some(o.clone()),
                option_hash: None,
            })
            .collect(),
        selectable_options_count: Some(selectable),
        poll_content_type: Some(wa::message::PollContentType::TEXT),
        ..Default::default()
    };
    let mut message = if poll.multiple {
        wa::Message { poll_creation_message: MessageField::some(creation), ..Default::default() }
    } else {
        wa::Message { poll_creation_message_v3: MessageField::some(creation), ..Default::default() }
    };
    message.message_context_info = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(whatsapp_rust::wacore::reporting_token::generate_message_secret().to_vec()),
        ..Default::default()
    });
    Ok(message)
}

/// A new text for a message this account sent: the protocol message WhatsApp Web sends (the
/// library's own `edit_message` builds the same, but sends it under an id of its choosing).
fn edit_message(target: &MessageKey, text: &str, me: &str) -> wa::Message {
    let group = target.chat.ends_with("@g.us");
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(wa::MessageKey {
                remote_jid: Some(target.chat.clone()),
                from_me: Some(true),
                id: Some(target.wa_id.clone()),
                participant: group.then(|| me.to_string()),
            }),
            r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
            edited_message: MessageField::some(wa::Message::text(text)),
            timestamp_ms: Some(now_ms()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deletes a message for everyone: the protocol message of the library's `revoke_message`
/// (the sender's own deletion names no participant; the key's `from_me` says it is theirs).
fn revoke_message(target: &MessageKey) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(wa::MessageKey {
                remote_jid: Some(target.chat.clone()),
                from_me: Some(target.from_me),
                id: Some(target.wa_id.clone()),
                participant: if target.from_me { None } else { target.participant.clone() },
            }),
            r#type: Some(wa::message::protocol_message::Type::REVOKE),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::driver::Quote;

    const ME: &str = "6281381830651@s.whatsapp.net";
    const BUDI: &str = "6281234567890@s.whatsapp.net";
    const GROUP: &str = "120363012345678901@g.us";

    fn key(chat: &str, from_me: bool, participant: Option<&str>) -> MessageKey {
        MessageKey {
            chat: chat.into(),
            wa_id: "3EB0AAAA".into(),
            from_me,
            participant: participant.map(str::to_string),
        }
    }

    fn built(content: Content) -> wa::Message {
        message_of(&content, ME).unwrap()
    }

    #[test]
    fn plain_text_is_a_conversation() {
        let m = built(Content::Text("halo".into()));
        assert_eq!(m.conversation.as_deref(), Some("halo"));
        let m = with_context(m, &Outgoing::text("halo"), ME);
        assert_eq!(m.conversation.as_deref(), Some("halo"), "no context: left as it is");
    }

    #[test]
    fn a_quoted_reply_with_mentions_becomes_extended_text() {
        let mut out = Outgoing::text("siap @6281234567890");
        out.reply_to = Some(Quote { key: key(BUDI, false, None), text: Some("jam berapa?".into()) });
        out.mentions = vec![BUDI.into()];
        let m = with_context(message_of(&out.content, ME).unwrap(), &out, ME);
        assert!(m.conversation.is_none());
        let ext = m.extended_text_message.as_option().expect("extended text");
        assert_eq!(ext.text.as_deref(), Some("siap @6281234567890"));
        let ctx = ext.context_info.as_option().expect("context");
        assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0AAAA"));
        assert_eq!(ctx.participant.as_deref(), Some(BUDI), "the other side wrote it");
        assert_eq!(
            ctx.quoted_message.as_option().and_then(|q| q.conversation.as_deref()),
            Some("jam berapa?")
        );
        assert_eq!(ctx.mentioned_jid, vec![BUDI.to_string()]);
        assert_eq!(ctx.is_forwarded, None);
    }

    #[test]
    fn a_quote_of_an_own_message_names_this_account_and_of_a_member_names_the_member() {
        let mut out = Outgoing::text("ya");
        out.reply_to = Some(Quote { key: key(BUDI, true, None), text: None });
        let m = with_context(built(Content::Text("ya".into())), &out, ME);
        let ctx = m.extended_text_message.as_option().unwrap().context_info.as_option().unwrap().clone();
        assert_eq!(ctx.participant.as_deref(), Some(ME));
        out.reply_to = Some(Quote { key: key(GROUP, false, Some(BUDI)), text: None });
        let m = with_context(built(Content::Text("ya".into())), &out, ME);
        let ctx = m.extended_text_message.as_option().unwrap().context_info.as_option().unwrap().clone();
        assert_eq!(ctx.participant.as_deref(), Some(BUDI));
    }

    #[test]
    fn context_goes_on_the_content_message_and_forwarded_is_marked() {
        let location = Location { latitude: -6.2, longitude: 106.8, name: None, address: None };
        let mut out = Outgoing::new(Content::Location(location));
        out.forwarded = true;
        let m = with_context(message_of(&out.content, ME).unwrap(), &out, ME);
        let ctx = m.location_message.as_option().unwrap().context_info.as_option().expect("context");
        assert_eq!(ctx.is_forwarded, Some(true));
        assert!(ctx.stanza_id.is_none());
    }

    #[test]
    fn a_location_carries_coordinates_name_and_address() {
        let m = built(Content::Location(Location {
            latitude: -6.175392,
            longitude: 106.827153,
            name: Some("Monas".into()),
            address: Some("Gambir, Jakarta Pusat".into()),
        }));
        let l = m.location_message.as_option().expect("location");
        assert_eq!((l.degrees_latitude, l.degrees_longitude), (Some(-6.175392), Some(106.827153)));
        assert_eq!((l.name.as_deref(), l.address.as_deref()), (Some("Monas"), Some("Gambir, Jakarta Pusat")));
    }

    #[test]
    fn one_contact_is_a_contact_message_and_several_an_array() {
        let budi = ContactCard { name: "Budi".into(), phone: "6281234567890".into() };
        let sari = ContactCard { name: "Sari".into(), phone: "6281111111111".into() };
        let m = built(Content::Contacts(vec![budi.clone()]));
        let c = m.contact_message.as_option().expect("contact");
        assert_eq!(c.display_name.as_deref(), Some("Budi"));
        assert_eq!(c.vcard.as_deref(), Some(budi.vcard().as_str()));
        let m = built(Content::Contacts(vec![budi, sari.clone()]));
        let a = m.contacts_array_message.as_option().expect("contacts array");
        assert_eq!(a.contacts.len(), 2);
        assert_eq!(a.contacts[1].vcard.as_deref(), Some(sari.vcard().as_str()));
        assert_eq!(a.display_name.as_deref(), Some("Budi and 1 other contact"));
        assert!(message_of(&Content::Contacts(vec![]), ME).is_err());
    }

    #[test]
    fn a_poll_carries_its_options_and_a_secret() {
        let single = PollSpec {
            question: "Kapan?".into(),
            options: vec!["Senin".into(), "Selasa".into()],
            multiple: false,
        };
        let m = built(Content::Poll(single.clone()));
        let p = m.poll_creation_message_v3.as_option().expect("single choice: v3");
        assert_eq!(p.name.as_deref(), Some("Kapan?"));
        let names: Vec<_> = p.options.iter().map(|o| o.option_name.clone().unwrap()).collect();
        assert_eq!(names, ["Senin", "Selasa"]);
        assert_eq!(p.selectable_options_count, Some(1));
        let secret = m.message_context_info.as_option().and_then(|c| c.message_secret.clone()).unwrap();
        assert_eq!(secret.len(), 32);
        let again = built(Content::Poll(single.clone()));
        assert_ne!(again.message_context_info.as_option().unwrap().message_secret, Some(secret), "fresh");

        let m = built(Content::Poll(PollSpec { multiple: true, ..single }));
        let p = m.poll_creation_message.as_option().expect("multiple choice: v1");
        assert_eq!(p.selectable_options_count, Some(2));
    }

    #[test]
    fn a_reaction_keys_the_target_and_names_the_author_in_groups() {
        let m = built(Content::Reaction { target: key(BUDI, false, None), emoji: "👍".into() });
        let r = m.reaction_message.as_option().expect("reaction");
        assert_eq!(r.text.as_deref(), Some("👍"));
        assert!(r.sender_timestamp_ms.is_some());
        let k = r.key.as_option().unwrap();
        assert_eq!(
            (k.remote_jid.as_deref(), k.from_me, k.id.as_deref(), k.participant.as_deref()),
            (Some(BUDI), Some(false), Some("3EB0AAAA"), None)
        );
        let m = built(Content::Reaction { target: key(GROUP, true, None), emoji: "".into() });
        let r = m.reaction_message.as_option().unwrap();
        assert_eq!(r.text.as_deref(), Some(""), "empty removes the reaction");
        assert_eq!(r.key.as_option().unwrap().participant.as_deref(), Some(ME), "own message in a group");
        let m = built(Content::Reaction { target: key(GROUP, false, Some(BUDI)), emoji: "❤️".into() });
        assert_eq!(
            m.reaction_message.as_option().unwrap().key.as_option().unwrap().participant.as_deref(),
            Some(BUDI)
        );
    }

    #[test]
    fn an_edit_is_a_message_edit_protocol_message_with_the_new_text() {
        let m = built(Content::Edit { target: key(BUDI, true, None), text: "harga baru".into() });
        let p = m.protocol_message.as_option().expect("protocol message");
        assert_eq!(p.r#type, Some(wa::message::protocol_message::Type::MESSAGE_EDIT));
        let k = p.key.as_option().unwrap();
        assert_eq!(
            (k.remote_jid.as_deref(), k.from_me, k.id.as_deref()),
            (Some(BUDI), Some(true), Some("3EB0AAAA"))
        );
        assert_eq!(k.participant, None);
        assert_eq!(p.edited_message.as_option().and_then(|e| e.conversation.as_deref()), Some("harga baru"));
        assert!(p.timestamp_ms.is_some());
        let m = built(Content::Edit { target: key(GROUP, true, None), text: "x".into() });
        let k = m.protocol_message.as_option().unwrap().key.as_option().unwrap().clone();
        assert_eq!(k.participant.as_deref(), Some(ME), "in a group the key names the author");
        // Quotes and mentions do not apply to an edit.
        let mut out = Outgoing::new(Content::Edit { target: key(BUDI, true, None), text: "x".into() });
        out.mentions = vec![BUDI.into()];
        let m = with_context(message_of(&out.content, ME).unwrap(), &out, ME);
        assert!(m.extended_text_message.is_unset() && m.protocol_message.is_set());
    }

    #[test]
    fn a_revoke_is_a_revoke_protocol_message_for_the_key() {
        let m = built(Content::Revoke { target: key(BUDI, true, None) });
        let p = m.protocol_message.as_option().expect("protocol message");
        assert_eq!(p.r#type, Some(wa::message::protocol_message::Type::REVOKE));
        let k = p.key.as_option().unwrap();
        assert_eq!(
            (k.remote_jid.as_deref(), k.from_me, k.id.as_deref(), k.participant.as_deref()),
            (Some(BUDI), Some(true), Some("3EB0AAAA"), None)
        );
        assert!(p.edited_message.is_unset());
    }

    #[test]
    fn media_is_not_built_here() {
        let media = crate::devices::driver::OutboundMedia {
            kind: crate::devices::driver::MediaKind::Image,
            bytes: std::sync::Arc::new(vec![1]),
            mime: "image/png".into(),
            filename: None,
            caption: None,
        };
        assert!(message_of(&Content::Media(media), ME).is_err());
    }
}
