//! Pure translations from `whatsapp-rust` events and messages to the driver's types.
//! Kept free of I/O so each mapping is unit-tested with the library's own protobuf types.

use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::message::MessageInfo;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::Jid;

use crate::devices::driver::{DriverEvent, InboundMedia, InboundMessage, ReceiptKind, StopReason};

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

/// Media metadata of a message, if it carries media.
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
        });
    }
    if let Some(m) = base.video_message.as_option() {
        return Some(InboundMedia {
            kind: "video".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: m.caption.clone(),
        });
    }
    if let Some(m) = base.audio_message.as_option() {
        return Some(InboundMedia {
            kind: "audio".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: None,
        });
    }
    if let Some(m) = base.document_message.as_option() {
        return Some(InboundMedia {
            kind: "document".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: m.file_name.clone(),
            caption: m.caption.clone(),
        });
    }
    if let Some(m) = base.sticker_message.as_option() {
        return Some(InboundMedia {
            kind: "sticker".into(),
            mime: m.mimetype.clone(),
            size: m.file_length,
            filename: None,
            caption: None,
        });
    }
    None
}

/// Maps one decrypted message to the gateway's inbound message.
pub fn inbound_message(message: &wa::Message, info: &MessageInfo) -> InboundMessage {
    use whatsapp_rust::wacore::proto_helpers::MessageExt;
    let text = message.text_content().or_else(|| message.get_caption()).map(str::to_string);
    let push_name = Some(info.push_name.clone()).filter(|n| !n.is_empty());
    InboundMessage {
        wa_id: info.id.to_string(),
        chat: chat_of(info),
        sender: sender_of(info),
        push_name,
        is_group: info.source.is_group,
        text,
        media: media_of(message),
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
        _ => return None,
    })
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
        // Without the alternate JID the LID itself is kept.
        let m = inbound_message(&msg, &info("123456789012345@lid", "123456789012345@lid", false, false));
        assert_eq!(m.sender, "123456789012345@lid");
    }

    #[test]
    fn an_own_message_is_marked_from_me() {
        let msg = wa::Message { conversation: Some("dari hp".into()), ..Default::default() };
        let m = inbound_message(&msg, &info("628111@s.whatsapp.net", "628999@s.whatsapp.net", false, true));
        assert!(m.from_me);
    }
}
