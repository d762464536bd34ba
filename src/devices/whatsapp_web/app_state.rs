//! What the account's phone syncs as app state, from `whatsapp-rust`'s events to the driver's:
//! a chat archived, pinned or muted (`ChatState`) and a contact's address-book name
//! (`ContactName`). The library decrypts and orders the patches; these are pure mappings,
//! unit-tested with the library's own event types.

use chrono::{DateTime, Utc};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::waproto::whatsapp::sync_action_value::{ContactAction, MuteAction};
use whatsapp_rust::Jid;

use crate::devices::driver::{ChatChange, DriverEvent, SavedName};

/// The change a mute action makes: WhatsApp writes the end in milliseconds, `-1` (or no end)
/// for "always", and `muted: false` to unmute.
fn mute_change(action: &MuteAction) -> ChatChange {
    if action.muted != Some(true) {
        return ChatChange::Unmuted;
    }
    let until =
        action.mute_end_timestamp.filter(|&end| end > 0).and_then(DateTime::<Utc>::from_timestamp_millis);
    ChatChange::Muted { until }
}

/// The contact's JID as the gateway keys it: the number's JID when the change names a LID and
/// the address book knows the number behind it.
fn contact_jid(jid: &Jid, action: &ContactAction) -> String {
    if jid.is_lid() {
        let pn = action.pn_jid.as_deref().and_then(|pn| pn.parse::<Jid>().ok()).filter(Jid::is_pn);
        if let Some(pn) = pn {
            return pn.to_non_ad_string();
        }
    }
    jid.to_non_ad_string()
}

/// The app-state change an event reports; `None` for every other event.
pub fn driver_event(event: &Event) -> Option<DriverEvent> {
    let chat_state = |jid: &Jid, change, at: DateTime<Utc>| DriverEvent::ChatState {
        chat: jid.to_non_ad_string(),
        change,
        at,
        ack: None,
    };
    Some(match event {
        Event::ArchiveUpdate(u) => {
            chat_state(&u.jid, ChatChange::Archived(u.action.archived.unwrap_or(false)), u.timestamp)
        }
        Event::PinUpdate(u) => {
            chat_state(&u.jid, ChatChange::Pinned(u.action.pinned.unwrap_or(false)), u.timestamp)
        }
        Event::MuteUpdate(u) => chat_state(&u.jid, mute_change(&u.action), u.timestamp),
        Event::ContactUpdate(u) => DriverEvent::ContactName {
            jid: contact_jid(&u.jid, &u.action),
            name: SavedName {
                full_name: u.action.full_name.clone(),
                first_name: u.action.first_name.clone(),
            },
            ack: None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::types::events::{ArchiveUpdate, ContactUpdate, MuteUpdate, PinUpdate};
    use whatsapp_rust::waproto::whatsapp::sync_action_value::{ArchiveChatAction, PinAction};

    const CHAT: &str = "6281234567890@s.whatsapp.net";

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_780_000_000_000).unwrap()
    }

    fn chat_change(event: Event) -> (String, ChatChange, DateTime<Utc>) {
        match driver_event(&event) {
            Some(DriverEvent::ChatState { chat, change, at, ack: None }) => (chat, change, at),
            other => panic!("not a chat state: {other:?}"),
        }
    }

    fn mute(muted: Option<bool>, end: Option<i64>) -> ChatChange {
        let action = MuteAction { muted, mute_end_timestamp: end, ..Default::default() };
        let update = MuteUpdate::builder()
            .jid(CHAT.parse().unwrap())
            .timestamp(at())
            .action(Box::new(action))
            .from_full_sync(false)
            .build();
        chat_change(Event::MuteUpdate(update)).1
    }

    #[test]
    fn archiving_and_unarchiving_map_to_the_chat_state() {
        for archived in [true, false] {
            let update = ArchiveUpdate::builder()
                .jid("120363012345678901@g.us".parse().unwrap())
                .timestamp(at())
                .action(Box::new(ArchiveChatAction { archived: Some(archived), ..Default::default() }))
                .from_full_sync(true)
                .build();
            let (chat, change, when) = chat_change(Event::ArchiveUpdate(update));
            assert_eq!(chat, "120363012345678901@g.us");
            assert_eq!(change, ChatChange::Archived(archived));
            assert_eq!(when, at());
        }
    }

    #[test]
    fn pinning_maps_to_the_chat_state_without_the_device_part() {
        let update = PinUpdate::builder()
            .jid("6281234567890:5@s.whatsapp.net".parse().unwrap())
            .timestamp(at())
            .action(Box::new(PinAction { pinned: Some(true) }))
            .from_full_sync(false)
            .build();
        let (chat, change, _) = chat_change(Event::PinUpdate(update));
        assert_eq!((chat.as_str(), change), (CHAT, ChatChange::Pinned(true)));
    }

    #[test]
    fn a_mute_has_an_end_in_milliseconds_or_none() {
        let end = 1_790_000_000_000;
        assert_eq!(
            mute(Some(true), Some(end)),
            ChatChange::Muted { until: DateTime::from_timestamp_millis(end) }
        );
        assert_eq!(mute(Some(true), Some(-1)), ChatChange::Muted { until: None });
        assert_eq!(mute(Some(true), None), ChatChange::Muted { until: None });
        assert_eq!(mute(Some(false), Some(0)), ChatChange::Unmuted);
        assert_eq!(mute(None, None), ChatChange::Unmuted);
    }

    #[test]
    fn a_saved_contact_maps_to_its_name_by_number_also_when_named_by_lid() {
        let contact = |jid: &str, pn: Option<&str>| {
            let action = ContactAction {
                full_name: Some("Budi Santoso".into()),
                first_name: Some("Budi".into()),
                pn_jid: pn.map(str::to_string),
                ..Default::default()
            };
            let update = ContactUpdate::builder()
                .jid(jid.parse().unwrap())
                .timestamp(at())
                .action(Box::new(action))
                .from_full_sync(true)
                .build();
            match driver_event(&Event::ContactUpdate(update)) {
                Some(DriverEvent::ContactName { jid, name, ack: None }) => (jid, name),
                other => panic!("not a contact name: {other:?}"),
            }
        };
        let (jid, name) = contact(CHAT, None);
        assert_eq!(jid, CHAT);
        assert_eq!(name.full_name.as_deref(), Some("Budi Santoso"));
        assert_eq!(name.first_name.as_deref(), Some("Budi"));
        assert_eq!(contact("98765432109876@lid", Some(CHAT)).0, CHAT);
        assert_eq!(contact("98765432109876@lid", None).0, "98765432109876@lid");
    }

    #[test]
    fn other_events_are_not_app_state() {
        assert!(driver_event(&Event::Connected(whatsapp_rust::types::events::Connected::builder().build()))
            .is_none());
    }
}
