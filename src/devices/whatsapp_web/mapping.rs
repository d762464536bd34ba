//! Pure translations from `whatsapp-rust` events and messages to the driver's types.
//! Kept free of I/O so each mapping is unit-tested with the library's own protobuf types.

use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::message::MessageInfo;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::Jid;

use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::devices::driver::{
    ContactCard, DriverEvent, InboundBody, InboundMedia, InboundMessage, InboundQuote, Location, PollSpec,
    ReceiptKind, StopReason, Update,
};

/// The phone number (digits) behind a JID, when the JID is a phone-number JID.
fn phone_of(jid: &Jid) -> Option<String> {
    jid.is_pn().then(|| jid.user.to_string())
}

/// The sender as the gateway shows it: the phone number, taken from the alternate JID when
/// WhatsApp addressed the message by LID; the LID JID itself when no number is known.
pub fn sender_of(info: &MessageInfo) -> String {
    let src = &info.source;
    phone_of(&src.sender)
        .or_else(|| src.sender_alt.as_ref().and_then(phone_of))
        .unwrap_or_else(|| src.sender.to_non_ad_string())
}

/// The chat JID: a direct chat addressed by LID is given by its phone-number JID when known,
/// so history and replies use one id per contact.
pub fn chat_of(info: &MessageInfo) -> String {
    let src = &info.source;
    if !src.is_group && src.chat.is_lid() {
        if let Some(alt) = src.sender_alt.as_ref().filter(|j| j.is_pn()).filter(|_| !src.is_from_me) {
            return alt.to_non_ad_string();
        }
    }
    src.chat.to_non_ad_string()
}

/// Where a media message's bytes can be fetched again: its own protobuf (URL, direct path,
/// media key and digests), base64. [`media_message`] reads it back.
fn source_of(m: &impl whatsapp_rust::waproto::buffa::Message) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec())
}

/// The media message a [`source_of`] names, for the library's download, by kind.
pub fn media_message(
    kind: &str,
    source: &str,
) -> Result<Box<dyn whatsapp_rust::wacore::download::Downloadable>, String> {
    use base64::Engine as _;
    use whatsapp_rust::waproto::buffa::Message as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(source)
        .map_err(|_| "the media reference is not base64".to_string())?;
    let bad =
        |e: whatsapp_rust::waproto::buffa::DecodeError| format!("the media reference does not decode: {e}");
    Ok(match kind {
        "image" => Box::new(wa::message::ImageMessage::decode_from_slice(&bytes).map_err(bad)?),
        "video" => Box::new(wa::message::VideoMessage::decode_from_slice(&bytes).map_err(bad)?),
        "audio" | "voice" => Box::new(wa::message::AudioMessage::decode_from_slice(&bytes).map_err(bad)?),
        "document" => Box::new(wa::message::DocumentMessage::decode_from_slice(&bytes).map_err(bad)?),
        "sticker" => Box::new(wa::message::StickerMessage::decode_from_slice(&bytes).map_err(bad)?),
        other => return Err(format!("no media of kind {other:?} can be downloaded")),
    })
}

/// Media metadata of a message, if it carries media. Push-to-talk audio is a voice note.
pub fn media_of(message: &wa::Message) -> Option<InboundMedia> {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let base = message.get_base_message();
    if let Some(m) = base.image_message.as_option() {
        return Some(InboundMedia {
            kind: "image".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: m.caption.clone(),
            source: Some(source_of(m)),
        });
    }
    if let Some(m) = base.video_message.as_option().or_else(|| base.ptv_message.as_option()) {
        return Some(InboundMedia {
            kind: "video".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: m.caption.clone(),
            source: Some(source_of(m)),
        });
    }
    if let Some(m) = base.audio_message.as_option() {
        return Some(InboundMedia {
            kind: if m.ptt == Some(true) { "voice" } else { "audio" }.into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: None,
            source: Some(source_of(m)),
        });
    }
    if let Some(m) = base.document_message.as_option() {
        return Some(InboundMedia {
            kind: "document".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: m.file_name.clone(),
            caption: m.caption.clone(),
            source: Some(source_of(m)),
        });
    }
    if let Some(m) = base.sticker_message.as_option() {
        return Some(InboundMedia {
            kind: "sticker".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: None,
            source: Some(source_of(m)),
        });
    }
    None
}

/// Whether a decrypted message is something a person sent or did (a message, or a reaction,
/// edit or deletion of one), rather than protocol traffic between devices (the phone's
/// app-state key share, history-sync notices, ...) or a message with nothing in it: those
/// reach the durability hook too, and are not history.
pub fn is_chat_message(message: &wa::Message) -> bool {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let base = message.get_base_message();
    if let Some(protocol) = base.protocol_message.as_option() {
        return matches!(protocol.r#type, Some(ProtocolType::REVOKE | ProtocolType::MESSAGE_EDIT));
    }
    match body_of(message) {
        InboundBody::Plain => has_text_or_media(message),
        _ => true,
    }
}

fn has_text_or_media(message: &wa::Message) -> bool {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    message.text_content().is_some() || media_of(message).is_some()
}

/// What a message is besides text and media: a location, contact cards, a poll, a change to
/// another message, or a kind the gateway does not know (by WhatsApp's name for it).
pub fn body_of(message: &wa::Message) -> InboundBody {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let base = message.get_base_message();
    if let Some(protocol) = base.protocol_message.as_option() {
        let target = protocol.key.as_option().and_then(|k| k.id.clone()).unwrap_or_default();
        return match protocol.r#type {
            Some(ProtocolType::REVOKE) => InboundBody::Update(Update::Revoke { target }),
            Some(ProtocolType::MESSAGE_EDIT) => match protocol
                .edited_message
                .as_option()
                .and_then(|m| m.text_content().or_else(|| m.get_caption()).map(str::to_string))
            {
                Some(text) => InboundBody::Update(Update::Edit { target, text }),
                None => InboundBody::Unsupported("protocolMessage".into()),
            },
            _ => InboundBody::Unsupported("protocolMessage".into()),
        };
    }
    if let Some(reaction) = base.reaction_message.as_option() {
        return InboundBody::Update(Update::Reaction {
            target: reaction.key.as_option().and_then(|k| k.id.clone()).unwrap_or_default(),
            emoji: reaction.text.clone().unwrap_or_default(),
        });
    }
    if let Some(l) = base.location_message.as_option() {
        return InboundBody::Location(Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone().filter(|n| !n.is_empty()),
            address: l.address.clone().filter(|a| !a.is_empty()),
        });
    }
    if let Some(l) = base.live_location_message.as_option() {
        return InboundBody::Location(Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.caption.clone().filter(|c| !c.is_empty()),
            address: None,
        });
    }
    if let Some(c) = base.contact_message.as_option() {
        return InboundBody::Contacts(vec![card_of(c)]);
    }
    if let Some(a) = base.contacts_array_message.as_option() {
        return InboundBody::Contacts(a.contacts.iter().map(card_of).collect());
    }
    if let Some(p) = [
        &base.poll_creation_message,
        &base.poll_creation_message_v2,
        &base.poll_creation_message_v3,
        &base.poll_creation_message_v5,
        &base.poll_creation_message_v6,
    ]
    .into_iter()
    .find_map(|p| p.as_option())
    {
        return InboundBody::Poll(PollSpec {
            question: p.name.clone().unwrap_or_default(),
            options: p.options.iter().filter_map(|o| o.option_name.clone()).collect(),
            // 0 means any number of options.
            multiple: p.selectable_options_count != Some(1),
        });
    }
    if has_text_or_media(message) {
        return InboundBody::Plain;
    }
    match other_kind(base) {
        Some(kind) => InboundBody::Unsupported(kind),
        None => InboundBody::Plain,
    }
}

/// WhatsApp's (protobuf) name of the content field set in `base` (a message carries one), for
/// a kind the gateway does not map; `None` when the message carries nothing but key material
/// and metadata. Found through the protobuf types' serde form, where unset fields are null.
fn other_kind(base: &wa::Message) -> Option<String> {
    // An empty text is nothing either.
    const NOT_CONTENT: [&str; 4] = [
        "conversation",
        "message_context_info",
        "sender_key_distribution_message",
        "fast_ratchet_key_sender_key_distribution_message",
    ];
    let serde_json::Value::Object(fields) = serde_json::to_value(base).ok()? else { return None };
    let field =
        fields.iter().find(|(name, value)| !value.is_null() && !NOT_CONTENT.contains(&name.as_str()))?.0;
    // snake_case field name → the proto's lowerCamelCase name.
    let mut name = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                name.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => name.push(c),
        }
    }
    Some(name)
}

/// A contact card from a shared contact: the name shown, and the number from the vCard (the
/// `waid` parameter WhatsApp adds, else the first telephone number's digits).
fn card_of(contact: &wa::message::ContactMessage) -> ContactCard {
    let vcard = contact.vcard.as_deref().unwrap_or_default();
    // Unfolded lines (a line starting with a space continues the previous one).
    let unfolded = vcard.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "");
    let lines: Vec<&str> = unfolded.lines().map(|l| l.trim_end_matches('\r')).collect();
    // Property names may carry a group prefix (`item1.TEL`).
    let property = |line: &str, name: &str| {
        let head = line.split([':', ';']).next().unwrap_or_default();
        head.rsplit('.').next().is_some_and(|p| p.eq_ignore_ascii_case(name))
    };
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let tel = lines.iter().find(|l| property(l, "TEL"));
    let phone = tel
        .and_then(|line| {
            let (params, value) = line.split_once(':')?;
            let waid = params.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("waid").then(|| digits(v))
            });
            waid.filter(|w| !w.is_empty()).or_else(|| Some(digits(value)))
        })
        .unwrap_or_default();
    let formatted =
        lines.iter().find(|l| property(l, "FN")).and_then(|l| l.split_once(':')).map(|(_, v)| {
            v.replace("\\,", ",").replace("\\;", ";").replace("\\n", " ").replace("\\\\", "\\")
        });
    let name =
        contact.display_name.clone().filter(|n| !n.trim().is_empty()).or(formatted).unwrap_or_default();
    ContactCard { name: name.trim().to_string(), phone }
}

/// The context (quote, mentions) of the message's content, whatever kind it is.
fn context_of(base: &wa::Message) -> Option<&wa::ContextInfo> {
    macro_rules! first_context {
        ($($field:ident),+ $(,)?) => {
            None$(.or_else(|| base.$field.as_option().and_then(|m| m.context_info.as_option())))+
        };
    }
    first_context!(
        extended_text_message,
        image_message,
        video_message,
        ptv_message,
        audio_message,
        document_message,
        sticker_message,
        location_message,
        live_location_message,
        contact_message,
        contacts_array_message,
        poll_creation_message,
        poll_creation_message_v2,
        poll_creation_message_v3,
        poll_creation_message_v5,
        poll_creation_message_v6,
    )
}

/// A JID as the gateway shows a person: the phone number for a phone-number JID, else the JID.
fn person_of(jid: &str) -> String {
    match jid.parse::<Jid>() {
        Ok(j) => phone_of(&j).unwrap_or_else(|| j.to_non_ad_string()),
        Err(_) => jid.to_string(),
    }
}

/// The message `message` quotes, if it is a reply.
pub fn reply_to_of(message: &wa::Message) -> Option<InboundQuote> {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let context = context_of(message.get_base_message())?;
    let wa_id = context.stanza_id.clone().filter(|id| !id.is_empty())?;
    let quoted = context.quoted_message.as_option();
    Some(InboundQuote {
        wa_id,
        sender: context.participant.as_deref().filter(|p| !p.is_empty()).map(person_of),
        text: quoted.and_then(|q| q.text_content().or_else(|| q.get_caption())).map(str::to_string),
    })
}

/// Who the message mentions: phone numbers, or JIDs when no number is known.
pub fn mentions_of(message: &wa::Message) -> Vec<String> {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let Some(context) = context_of(message.get_base_message()) else { return Vec::new() };
    let mut mentions: Vec<String> = Vec::new();
    for person in context.mentioned_jid.iter().map(|j| person_of(j)) {
        if !mentions.contains(&person) {
            mentions.push(person);
        }
    }
    mentions
}

/// Maps one decrypted message to the gateway's inbound message.
pub fn inbound_message(message: &wa::Message, info: &MessageInfo) -> InboundMessage {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let text = message.text_content().or_else(|| message.get_caption()).map(str::to_string);
    let push_name = Some(info.push_name.clone()).filter(|n| !n.is_empty());
    let sender_lid = info.source.sender.is_lid().then(|| info.source.sender.to_non_ad_string());
    InboundMessage {
        wa_id: info.id.to_string(),
        chat: chat_of(info),
        sender: sender_of(info),
        sender_lid,
        push_name,
        is_group: info.source.is_group,
        text,
        media: media_of(message),
        body: body_of(message),
        reply_to: reply_to_of(message),
        mentions: mentions_of(message),
        timestamp: info.timestamp,
        from_me: info.source.is_from_me,
    }
}

/// Maps a library event to what the supervisor needs; `None` for events the gateway ignores.
/// Inbound messages do not pass here: the durability hook hands them over before they are
/// acknowledged.
pub fn driver_event(event: &Event) -> Option<DriverEvent> {
    Some(match event {
        Event::PairingQrCode(qr) => DriverEvent::Qr { code: qr.code.clone(), ttl: qr.timeout },
        Event::PairingCode(pc) => DriverEvent::PairCode { code: pc.code.clone(), ttl: pc.timeout },
        Event::PairSuccess(ok) => DriverEvent::Paired { jid: ok.id.to_non_ad_string() },
        Event::Connected(_) => DriverEvent::Connected,
        Event::Disconnected(d) => DriverEvent::Disconnected { reason: d.reason.to_string() },
        Event::LoggedOut(l) => {
            DriverEvent::Stopped(StopReason::LoggedOut(format!("logged out ({:?})", l.reason)))
        }
        Event::StreamReplaced(_) => DriverEvent::Stopped(StopReason::StreamReplaced),
        Event::TemporaryBan(b) => DriverEvent::Stopped(StopReason::Refused(format!(
            "temporarily banned by WhatsApp for {} minutes ({:?})",
            b.expire.num_minutes().max(1),
            b.code
        ))),
        Event::ConnectFailure(f) if f.reason.is_logged_out() => DriverEvent::Stopped(StopReason::LoggedOut(
            format!("WhatsApp refused the session ({:?})", f.reason),
        )),
        Event::ConnectFailure(f) if !f.reason.should_reconnect() => {
            DriverEvent::Stopped(StopReason::Refused(format!(
                "WhatsApp refused the connection ({:?}{})",
                f.reason,
                f.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            )))
        }
        Event::ConnectFailure(f) => {
            DriverEvent::Disconnected { reason: format!("connect failure ({:?})", f.reason) }
        }
        Event::ClientOutdated(_) => {
            DriverEvent::Stopped(StopReason::Refused("WhatsApp says this client version is outdated".into()))
        }
        Event::PairingQrCodesExhausted(_) => DriverEvent::Stopped(StopReason::QrExhausted),
        Event::Receipt(r) => {
            use whatsapp_rust::types::presence::ReceiptType;
            let kind = match r.r#type {
                ReceiptType::Delivered => ReceiptKind::Delivered,
                ReceiptType::Read | ReceiptType::Played => ReceiptKind::Read,
                ReceiptType::ServerError => ReceiptKind::Error,
                _ => return None,
            };
            DriverEvent::Receipt { wa_ids: r.message_ids.iter().map(|id| id.to_string()).collect(), kind }
        }
        Event::ServerAck(ack) => DriverEvent::Receipt {
            wa_ids: vec![ack.id.clone()],
            kind: if ack.error.is_some() { ReceiptKind::Error } else { ReceiptKind::Server },
        },
        // Without the account's own ids a change naming it reads as any member's change;
        // `driver_event_knowing` tells joining and leaving apart.
        Event::GroupUpdate(update) => DriverEvent::Group(super::groups::group_event(update, &[])?),
        Event::ArchiveUpdate(_) | Event::PinUpdate(_) | Event::MuteUpdate(_) | Event::ContactUpdate(_) => {
            super::app_state::driver_event(event)?
        }
        _ => return None,
    })
}

/// Like [`driver_event`], knowing the account's own JIDs (`own`: its number and LID), so the
/// account added to a group reads as `Joined` and removed from one as `Left`.
pub fn driver_event_knowing(event: &Event, own: &[Jid]) -> Option<DriverEvent> {
    match event {
        Event::GroupUpdate(update) => super::groups::group_event(update, own).map(DriverEvent::Group),
        other => driver_event(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::types::message::MessageSource;
    use whatsapp_rust::waproto::buffa::MessageField;

    fn info(chat: &str, sender: &str, group: bool, from_me: bool) -> MessageInfo {
        MessageInfo {
            source: MessageSource {
                chat: chat.parse().unwrap(),
                sender: sender.parse().unwrap(),
                is_from_me: from_me,
                is_group: group,
                ..Default::default()
            },
            id: "3EB0ABCDEF".into(),
            push_name: "Budi".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_text_message_maps_to_text_and_sender() {
        let msg = wa::Message { conversation: Some("halo".into()), ..Default::default() };
        let m = inbound_message(
            &msg,
            &info("6281234567890@s.whatsapp.net", "6281234567890@s.whatsapp.net", false, false),
        );
        assert_eq!(m.text.as_deref(), Some("halo"));
        assert_eq!(m.sender, "6281234567890");
        assert_eq!(m.chat, "6281234567890@s.whatsapp.net");
        assert_eq!(m.push_name.as_deref(), Some("Budi"));
        assert_eq!(m.wa_id, "3EB0ABCDEF");
        assert!(!m.is_group && !m.from_me && m.media.is_none());
    }

    #[test]
    fn extended_text_is_the_text() {
        let msg = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("lihat https://contoh.id".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = inbound_message(&msg, &info("628111@s.whatsapp.net", "628111@s.whatsapp.net", false, false));
        assert_eq!(m.text.as_deref(), Some("lihat https://contoh.id"));
    }

    #[test]
    fn an_image_with_a_caption_has_media_and_the_caption_as_text() {
        let msg = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("foto produk".into()),
                mimetype: Some("image/jpeg".into()),
                file_length: Some(2048),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = inbound_message(&msg, &info("628111@s.whatsapp.net", "628111@s.whatsapp.net", false, false));
        assert_eq!(m.text.as_deref(), Some("foto produk"));
        let media = m.media.unwrap();
        assert_eq!(
            (media.kind.as_str(), media.mime.as_deref(), media.size),
            ("image", Some("image/jpeg"), Some(2048))
        );
    }

    #[test]
    fn a_document_keeps_its_file_name() {
        let msg = wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                file_name: Some("invoice.pdf".into()),
                mimetype: Some("application/pdf".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = inbound_message(&msg, &info("628111@s.whatsapp.net", "628111@s.whatsapp.net", false, false));
        let media = m.media.unwrap();
        assert_eq!(media.kind, "document");
        assert_eq!(media.filename.as_deref(), Some("invoice.pdf"));
        assert_eq!(m.text, None);
    }

    #[test]
    fn a_group_message_has_the_group_as_chat_and_the_member_as_sender() {
        let msg = wa::Message { conversation: Some("rapat jam 3".into()), ..Default::default() };
        let m = inbound_message(
            &msg,
            &info("120363012345678901@g.us", "6281234567890@s.whatsapp.net", true, false),
        );
        assert!(m.is_group);
        assert_eq!(m.chat, "120363012345678901@g.us");
        assert_eq!(m.sender, "6281234567890");
    }

    #[test]
    fn a_lid_sender_is_resolved_to_the_phone_number_when_known() {
        let mut i = info("123456789012345@lid", "123456789012345@lid", false, false);
        i.source.sender_alt = Some("6281234567890@s.whatsapp.net".parse().unwrap());
        let msg = wa::Message { conversation: Some("x".into()), ..Default::default() };
        let m = inbound_message(&msg, &i);
        assert_eq!(m.sender, "6281234567890");
        assert_eq!(m.chat, "6281234567890@s.whatsapp.net");
        assert_eq!(m.sender_lid.as_deref(), Some("123456789012345@lid"), "the LID is kept alongside");
        // Without the alternate JID the LID itself is kept.
        let m = inbound_message(&msg, &info("123456789012345@lid", "123456789012345@lid", false, false));
        assert_eq!(m.sender, "123456789012345@lid");
    }

    #[test]
    fn protocol_messages_between_devices_are_not_chat_messages() {
        let key_share = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::AppStateSyncKeyShare),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!is_chat_message(&key_share));
        assert!(is_chat_message(&wa::Message { conversation: Some("halo".into()), ..Default::default() }));
    }

    fn direct() -> MessageInfo {
        info("628111@s.whatsapp.net", "628111@s.whatsapp.net", false, false)
    }

    fn protocol(kind: ProtocolType, edited: Option<wa::Message>) -> wa::Message {
        wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(wa::MessageKey {
                    remote_jid: Some("628999@s.whatsapp.net".into()),
                    from_me: Some(true),
                    id: Some("3EB0TARGET".into()),
                    participant: None,
                }),
                r#type: Some(kind),
                edited_message: edited.map(MessageField::some).unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_location_maps_to_its_coordinates_and_labels() {
        let msg = wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(-6.175392),
                degrees_longitude: Some(106.827153),
                name: Some("Monas".into()),
                address: Some("Gambir".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = inbound_message(&msg, &direct());
        assert_eq!(
            m.body,
            InboundBody::Location(Location {
                latitude: -6.175392,
                longitude: 106.827153,
                name: Some("Monas".into()),
                address: Some("Gambir".into())
            })
        );
        assert_eq!((m.text, m.media), (None, None));
        assert!(is_chat_message(&msg));

        let live = wa::Message {
            live_location_message: MessageField::some(wa::message::LiveLocationMessage {
                degrees_latitude: Some(1.5),
                degrees_longitude: Some(2.5),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            body_of(&live),
            InboundBody::Location(Location { latitude: 1.5, longitude: 2.5, name: None, address: None })
        );
    }

    #[test]
    fn shared_contacts_take_the_number_from_the_vcard() {
        let card = ContactCard { name: "Budi; Toko".into(), phone: "6281234567890".into() };
        let msg = wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some("Budi; Toko".into()),
                vcard: Some(card.vcard()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(body_of(&msg), InboundBody::Contacts(vec![card]));

        // No waid: the digits of the first number; no display name: the vCard's FN.
        let vcard = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Sari\\, CS\r\nitem1.TEL;type=CELL:+62 811-1111-111\r\n\
                     TEL:+62 822\r\nEND:VCARD";
        let msg = wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                display_name: Some("2 kontak".into()),
                contacts: vec![
                    wa::message::ContactMessage { vcard: Some(vcard.into()), ..Default::default() },
                    wa::message::ContactMessage {
                        display_name: Some("Andi".into()),
                        vcard: Some("BEGIN:VCARD\nTEL;waid=6285555:+62 855 55\nEND:VCARD".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            body_of(&msg),
            InboundBody::Contacts(vec![
                ContactCard { name: "Sari, CS".into(), phone: "628111111111".into() },
                ContactCard { name: "Andi".into(), phone: "6285555".into() },
            ])
        );
    }

    #[test]
    fn polls_of_every_version_map_to_question_and_options() {
        let creation = |count| wa::message::PollCreationMessage {
            name: Some("Kapan rapat?".into()),
            options: ["Senin", "Selasa"]
                .iter()
                .map(|o| wa::message::poll_creation_message::Option {
                    option_name: Some(o.to_string()),
                    option_hash: None,
                })
                .collect(),
            selectable_options_count: Some(count),
            ..Default::default()
        };
        let v3 =
            wa::Message { poll_creation_message_v3: MessageField::some(creation(1)), ..Default::default() };
        let spec = |multiple| PollSpec {
            question: "Kapan rapat?".into(),
            options: vec!["Senin".into(), "Selasa".into()],
            multiple,
        };
        assert_eq!(body_of(&v3), InboundBody::Poll(spec(false)));
        let v1 = wa::Message { poll_creation_message: MessageField::some(creation(0)), ..Default::default() };
        assert_eq!(body_of(&v1), InboundBody::Poll(spec(true)));
        let v2 =
            wa::Message { poll_creation_message_v2: MessageField::some(creation(2)), ..Default::default() };
        assert_eq!(body_of(&v2), InboundBody::Poll(spec(true)));
    }

    #[test]
    fn a_reaction_is_an_update_of_its_target() {
        let msg = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(wa::MessageKey {
                    id: Some("3EB0TARGET".into()),
                    ..Default::default()
                }),
                text: Some("👍".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_chat_message(&msg));
        assert_eq!(
            inbound_message(&msg, &direct()).body,
            InboundBody::Update(Update::Reaction { target: "3EB0TARGET".into(), emoji: "👍".into() })
        );
    }

    #[test]
    fn edits_and_revokes_pass_as_updates_and_other_protocol_messages_do_not() {
        let edit = protocol(
            ProtocolType::MESSAGE_EDIT,
            Some(wa::Message { conversation: Some("harga baru".into()), ..Default::default() }),
        );
        assert!(is_chat_message(&edit));
        let m = inbound_message(&edit, &direct());
        assert_eq!(
            m.body,
            InboundBody::Update(Update::Edit { target: "3EB0TARGET".into(), text: "harga baru".into() })
        );
        assert_eq!(m.text, None, "the new text belongs to the target");

        let revoke = protocol(ProtocolType::REVOKE, None);
        assert!(is_chat_message(&revoke));
        assert_eq!(body_of(&revoke), InboundBody::Update(Update::Revoke { target: "3EB0TARGET".into() }));

        assert!(!is_chat_message(&protocol(ProtocolType::HISTORY_SYNC_NOTIFICATION, None)));
        assert!(!is_chat_message(&protocol(ProtocolType::EPHEMERAL_SETTING, None)));
    }

    #[test]
    fn a_push_to_talk_audio_is_a_voice_note() {
        let audio = |ptt| wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                mimetype: Some("audio/ogg; codecs=opus".into()),
                ptt,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(media_of(&audio(Some(true))).unwrap().kind, "voice");
        assert_eq!(media_of(&audio(Some(false))).unwrap().kind, "audio");
        assert_eq!(media_of(&audio(None)).unwrap().kind, "audio");
        assert_eq!(body_of(&audio(Some(true))), InboundBody::Plain);
    }

    #[test]
    fn a_reply_names_the_quoted_message_and_the_mentions() {
        let msg = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("@6281234567890 siap".into()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("3EB0QUOTED".into()),
                    participant: Some("6281234567890@s.whatsapp.net".into()),
                    quoted_message: MessageField::some(wa::Message {
                        conversation: Some("jam berapa?".into()),
                        ..Default::default()
                    }),
                    mentioned_jid: vec![
                        "6281234567890@s.whatsapp.net".into(),
                        "123456789012345@lid".into(),
                        "6281234567890@s.whatsapp.net".into(),
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = inbound_message(&msg, &direct());
        assert_eq!(
            m.reply_to,
            Some(InboundQuote {
                wa_id: "3EB0QUOTED".into(),
                sender: Some("6281234567890".into()),
                text: Some("jam berapa?".into())
            })
        );
        assert_eq!(m.mentions, ["6281234567890", "123456789012345@lid"]);
        assert_eq!(m.body, InboundBody::Plain);

        // The quote of an image reply sits on the image; a LID author stays a JID.
        let image = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("3EB0IMG".into()),
                    participant: Some("123456789012345@lid".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let quote = reply_to_of(&image).unwrap();
        assert_eq!(
            (quote.wa_id.as_str(), quote.sender.as_deref(), quote.text),
            ("3EB0IMG", Some("123456789012345@lid"), None)
        );
        assert_eq!(reply_to_of(&wa::Message { conversation: Some("x".into()), ..Default::default() }), None);
    }

    #[test]
    fn an_unknown_kind_is_unsupported_by_its_name_and_an_empty_message_is_nothing() {
        let vote = wa::Message {
            poll_update_message: MessageField::some(wa::message::PollUpdateMessage::default()),
            message_context_info: MessageField::some(wa::MessageContextInfo::default()),
            ..Default::default()
        };
        assert!(is_chat_message(&vote));
        assert_eq!(body_of(&vote), InboundBody::Unsupported("pollUpdateMessage".into()));
        let invite = wa::Message {
            group_invite_message: MessageField::some(wa::message::GroupInviteMessage::default()),
            ..Default::default()
        };
        assert_eq!(body_of(&invite), InboundBody::Unsupported("groupInviteMessage".into()));
        let empty = wa::Message {
            message_context_info: MessageField::some(wa::MessageContextInfo::default()),
            ..Default::default()
        };
        assert!(!is_chat_message(&empty));
        assert!(!is_chat_message(&wa::Message { conversation: Some(String::new()), ..Default::default() }));
    }

    #[test]
    fn an_own_message_is_marked_from_me() {
        let msg = wa::Message { conversation: Some("dari hp".into()), ..Default::default() };
        let m = inbound_message(&msg, &info("628111@s.whatsapp.net", "628999@s.whatsapp.net", false, true));
        assert!(m.from_me);
    }
}
