//! Contacts through `whatsapp-rust`: a contact's profile (about text, picture, business) and
//! blocking.
//!
//! A profile takes up to three IQs: the number check (the one answer that says "not on
//! WhatsApp"), the user-info usync (about text, picture id, business, LID) and the picture's
//! URL, asked only when the usync did not say there is none. Blocking names the contact by
//! LID and number together, so a contact whose LID the store lacks is looked up first, which
//! stores the pair WhatsApp tells.

use whatsapp_rust::client::Client;
use whatsapp_rust::features::{BlockingError, ContactError, IsOnWhatsAppResult, UserInfo};
use whatsapp_rust::Jid as WaJid;

use super::groups::iq_error;
use crate::devices::driver::{ContactProfile, DriverError, Jid};

/// A person's JID, by number (`…@s.whatsapp.net`) or LID (`…@lid`), without a device.
fn user_jid(contact: &str) -> Result<WaJid, DriverError> {
    let jid = contact
        .parse::<WaJid>()
        .map_err(|e| DriverError::Invalid(format!("not a WhatsApp id: {contact} ({e})")))?;
    if !(jid.is_pn() || jid.is_lid()) || jid.user.is_empty() {
        return Err(DriverError::Invalid(format!("not a person's WhatsApp id: {contact}")));
    }
    Ok(jid.to_non_ad())
}

fn contact_error(e: ContactError) -> DriverError {
    match e {
        ContactError::Iq(e) => iq_error(e),
        ContactError::InvalidJid(m) => DriverError::Invalid(m),
        other => DriverError::Failed(other.to_string()),
    }
}

fn blocking_error(e: BlockingError) -> DriverError {
    match e {
        BlockingError::Iq(e) => iq_error(e),
        BlockingError::InvalidJid(m) => DriverError::Invalid(m),
        other => DriverError::Failed(other.to_string()),
    }
}

/// Whether `jid` names the same person as `wanted` (same user, same address family).
fn same_person(jid: &WaJid, wanted: &WaJid) -> bool {
    jid.user == wanted.user && jid.is_lid() == wanted.is_lid()
}

/// WhatsApp's number check for one contact: `None` when it is not on WhatsApp. The library
/// stores the LID the answer carries.
async fn lookup(client: &Client, jid: &WaJid) -> Result<Option<IsOnWhatsAppResult>, DriverError> {
    let results = client.contacts().is_on_whatsapp(std::slice::from_ref(jid)).await.map_err(contact_error)?;
    Ok(results.into_iter().find(|r| {
        r.is_registered
            && [Some(&r.jid), r.lid.as_ref(), r.pn_jid.as_ref()]
                .into_iter()
                .flatten()
                .any(|j| same_person(j, jid))
    }))
}

/// The LID behind a contact, as `<digits>@lid`, from the number check or the user info.
fn lid_of(found: &IsOnWhatsAppResult, info: Option<&UserInfo>) -> Option<String> {
    let from_info = info.and_then(|i| i.lid.clone().or_else(|| i.jid.is_lid().then(|| i.jid.clone())));
    let from_check = found.lid.clone().or_else(|| found.jid.is_lid().then(|| found.jid.clone()));
    from_info.or(from_check).map(|lid| format!("{}@lid", lid.user))
}

/// What WhatsApp shows of a contact; `NotFound` for a number not on WhatsApp.
pub async fn contact_profile(client: &Client, contact: &Jid) -> Result<ContactProfile, DriverError> {
    let jid = user_jid(contact)?;
    let found = lookup(client, &jid)
        .await?
        .ok_or_else(|| DriverError::NotFound(format!("{contact} is not on WhatsApp")))?;
    // One user asked: whatever user the answer holds is that contact (WhatsApp may answer a
    // number under its LID).
    let info = client.contacts().get_user_info(std::slice::from_ref(&jid)).await.map_err(contact_error)?;
    let info = info.into_values().next();
    let no_picture = info.as_ref().is_some_and(|i| {
        i.picture_id.is_none() && i.picture_error.as_ref().is_some_and(|e| matches!(e.code, Some(401 | 404)))
    });
    let picture_url = if no_picture {
        None
    } else {
        client
            .contacts()
            .get_profile_picture(&jid, false)
            .await
            .map_err(contact_error)?
            .map(|p| p.url)
            .filter(|u| !u.is_empty())
    };
    let verified = info.as_ref().and_then(|i| i.verified_name.as_ref()).or(found.verified_name.as_ref());
    Ok(ContactProfile {
        about: info.as_ref().and_then(|i| i.status.clone()).filter(|s| !s.is_empty()),
        picture_url,
        business: found.is_business || info.as_ref().is_some_and(|i| i.is_business),
        business_name: verified.and_then(|v| v.name.clone()).filter(|n| !n.is_empty()),
        lid: lid_of(&found, info.as_ref()),
    })
}

/// Blocks or unblocks a contact; `NotFound` for a number not on WhatsApp.
pub async fn block(client: &Client, contact: &Jid, blocked: bool) -> Result<(), DriverError> {
    let jid = user_jid(contact)?;
    // Unblocking by LID needs nothing else; every other change needs the LID↔number pair.
    let needs_pair = blocked || !jid.is_lid();
    if needs_pair && !knows_pair(client, &jid).await? {
        if lookup(client, &jid).await?.is_none() {
            return Err(DriverError::NotFound(format!("{contact} is not on WhatsApp")));
        }
        if !knows_pair(client, &jid).await? {
            return Err(DriverError::Failed(format!(
                "WhatsApp did not tell both the number and the LID of {contact}, which blocking needs"
            )));
        }
    }
    let blocking = client.blocking();
    let done = if blocked { blocking.block(&jid).await } else { blocking.unblock(&jid).await };
    done.map_err(blocking_error)
}

/// Whether the library's store has the LID↔number pair of `jid`.
async fn knows_pair(client: &Client, jid: &WaJid) -> Result<bool, DriverError> {
    client
        .get_lid_pn_entry(jid)
        .await
        .map(|entry| entry.is_some())
        .map_err(|e| DriverError::Failed(format!("reading the LID of {jid}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::IqError;

    #[test]
    fn a_person_is_named_by_number_or_lid_without_a_device() {
        assert_eq!(
            user_jid("628123456789@s.whatsapp.net").unwrap().to_string(),
            "628123456789@s.whatsapp.net"
        );
        assert_eq!(
            user_jid("628123456789:3@s.whatsapp.net").unwrap().to_string(),
            "628123456789@s.whatsapp.net"
        );
        assert_eq!(user_jid("100000012345678@lid").unwrap().to_string(), "100000012345678@lid");
        for other in ["120363000000000000@g.us", "status@broadcast", "@s.whatsapp.net"] {
            assert!(matches!(user_jid(other), Err(DriverError::Invalid(_))), "{other}");
        }
    }

    #[test]
    fn whatsapp_refusals_keep_their_meaning() {
        let server = |code, text: &str| IqError::ServerError {
            code,
            text: text.to_string(),
            error_type: None,
            backoff: None,
        };
        assert!(matches!(iq_error(server(404, "item-not-found")), DriverError::NotFound(_)));
        assert!(matches!(iq_error(server(403, "forbidden")), DriverError::Forbidden(_)));
        assert!(matches!(iq_error(server(400, "bad-request")), DriverError::Invalid(_)));
        assert!(matches!(iq_error(server(500, "internal-server-error")), DriverError::Failed(_)));
        assert!(matches!(iq_error(IqError::NotConnected), DriverError::NotConnected));
        assert!(matches!(contact_error(ContactError::InvalidJid("x".into())), DriverError::Invalid(_)));
        assert!(matches!(
            blocking_error(BlockingError::Iq(IqError::InternalChannelClosed)),
            DriverError::NotConnected
        ));
    }
}
