//! What a message carries besides text and media: locations, contact cards, polls, the quoted
//! message, mentions, and what happened to it afterwards (reactions, edits, deletion, votes).
//!
//! One set of types serves storage (`messages.details`, JSON), the driver seam (what a session
//! sends, what arrives), the API and webhook view, and the simulator's outbox. The checks here
//! are the ones every entry point shares, so the API, the dashboard, plugins and the pipeline
//! refuse the same input with the same words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Options a poll may have.
pub const POLL_OPTIONS: std::ops::RangeInclusive<usize> = 2..=12;
/// Longest poll question or option, in characters.
pub const POLL_TEXT_MAX: usize = 255;
/// Contact cards in one message.
pub const CONTACTS_MAX: usize = 10;
/// Longest name, address or contact name, in characters.
pub const LABEL_MAX: usize = 1024;
/// Numbers mentioned in one message.
pub const MENTIONS_MAX: usize = 50;
/// Longest "typing…" shown before a send, in milliseconds.
pub const TYPING_MAX_MS: u64 = 20_000;

/// A point on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Degrees, -90 to 90.
    pub latitude: f64,
    /// Degrees, -180 to 180.
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One contact card: a name and a phone number (the vCard is built from them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactCard {
    pub name: String,
    /// Digits, the country code first.
    pub phone: String,
}

/// A poll as sent: the question, its options and how many may be chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollSpec {
    pub question: String,
    pub options: Vec<String>,
    /// Whether a voter may choose more than one option.
    #[serde(default)]
    pub multiple: bool,
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotedRef {
    /// The gateway's id of the quoted message, when it is stored here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// WhatsApp's id of the quoted message.
    pub wa_id: String,
    /// Who wrote it: a phone number or JID; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Whether this device's account wrote it.
    #[serde(default)]
    pub from_me: bool,
    /// The start of its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One reaction to a message; a sender has at most one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reaction {
    /// The reacting phone number (or JID), or `me` for this device.
    pub from: String,
    pub emoji: String,
    /// RFC 3339.
    pub at: String,
}

/// Everything a message carries besides text and media, and what happened to it since. Stored
/// as JSON in `messages.details`; empty parts are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSpec>,
    /// Poll votes: voter → the options chosen (their latest vote).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub votes: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuotedRef>,
    /// Phone numbers (digits) mentioned in the text; a LID (`<digits>@lid`) while the number
    /// behind it is not known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// RFC 3339, when the text was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// Earlier texts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_texts: Vec<String>,
    /// RFC 3339, when it was deleted for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// RFC 3339, when this device marked it read (inbound messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
    /// Milliseconds of "typing…" shown before an outbound message goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_ms: Option<u64>,
    /// Sent as a forward of another message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// WhatsApp's name for a kind the gateway does not know (`type` is `unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

impl Details {
    pub fn is_empty(&self) -> bool {
        *self == Details::default()
    }

    /// The JSON to store, `None` when there is nothing.
    pub fn to_json(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads the stored JSON; unreadable or absent is empty.
    pub fn from_json(json: Option<&str>) -> Details {
        json.and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default()
    }

    /// Sets `from`'s reaction (an empty emoji removes it). Whether anything changed.
    pub fn react(&mut self, from: &str, emoji: &str, at: &str) -> bool {
        let before = self.reactions.clone();
        self.reactions.retain(|r| r.from != from);
        if !emoji.is_empty() {
            self.reactions.push(Reaction { from: from.into(), emoji: emoji.into(), at: at.into() });
        }
        self.reactions != before
    }

    /// Names the person behind `lid` (`<digits>@lid`) by `phone` (digits) wherever these
    /// details name them by the LID: among the mentions (a number mentioned twice is kept
    /// once) and as the author of the quoted message. `own` is the device's number: a quote
    /// whose author turns out to be it is a quote of the device's own message. Whether
    /// anything changed.
    pub fn resolve_lid(&mut self, lid: &str, phone: &str, own: &str) -> bool {
        let names =
            |who: &str| crate::phone::is_lid(who) && crate::phone::lid_jid(who).as_deref() == Some(lid);
        let mut changed = false;
        if self.mentions.iter().any(|m| names(m)) {
            let mut mentions: Vec<String> = Vec::with_capacity(self.mentions.len());
            for m in self.mentions.drain(..) {
                let m = if names(&m) { phone.to_string() } else { m };
                if !mentions.contains(&m) {
                    mentions.push(m);
                }
            }
            self.mentions = mentions;
            changed = true;
        }
        if let Some(quote) = self.reply_to.as_mut().filter(|q| q.sender.as_deref().is_some_and(names)) {
            quote.sender = Some(phone.to_string());
            quote.from_me = phone == own;
            changed = true;
        }
        changed
    }

    /// Votes per option, in the poll's order (options nobody chose count 0).
    pub fn poll_counts(&self) -> Vec<(String, usize)> {
        let Some(poll) = &self.poll else { return Vec::new() };
        poll.options
            .iter()
            .map(|o| (o.clone(), self.votes.values().filter(|chosen| chosen.contains(o)).count()))
            .collect()
    }
}

/// Why a piece of content was refused: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), message: message.into() }
}

/// A label (name, address) trimmed; blank is none; too long or with control characters is
/// refused.
fn label(value: Option<&str>, field: &str) -> Result<Option<String>, Invalid> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if v.chars().count() > LABEL_MAX {
        return Err(invalid(field, format!("must be at most {LABEL_MAX} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(Some(v.to_string()))
}

impl Location {
    /// Checks the coordinates and tidies the labels.
    pub fn checked(self) -> Result<Location, Invalid> {
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            return Err(invalid("latitude", "must be a number from -90 to 90"));
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(invalid("longitude", "must be a number from -180 to 180"));
        }
        Ok(Location {
            latitude: self.latitude,
            longitude: self.longitude,
            name: label(self.name.as_deref(), "name")?,
            address: label(self.address.as_deref(), "address")?,
        })
    }

    /// A link that opens the point on a map.
    pub fn map_url(&self) -> String {
        format!("https://maps.google.com/?q={},{}", self.latitude, self.longitude)
    }
}

impl ContactCard {
    /// A vCard 3.0 for the card, as WhatsApp clients build them (the `waid` parameter makes
    /// the number tappable as a WhatsApp contact).
    pub fn vcard(&self) -> String {
        let name = vcard_escape(&self.name);
        format!(
            "BEGIN:VCARD\nVERSION:3.0\nN:;{name};;;\nFN:{name}\nTEL;type=CELL;type=VOICE;waid={p}:+{p}\nEND:VCARD",
            p = self.phone
        )
    }
}

fn vcard_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

/// Checks contact cards: 1 to [`CONTACTS_MAX`], each with a name and a phone number (turned
/// into digits by `digits`, which says why a number is refused).
pub fn check_contacts(
    cards: Vec<ContactCard>,
    digits: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<ContactCard>, Invalid> {
    if cards.is_empty() || cards.len() > CONTACTS_MAX {
        return Err(invalid("contacts", format!("must hold 1 to {CONTACTS_MAX} contacts")));
    }
    cards
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let name = label(Some(&c.name), &format!("contacts[{i}].name"))?
                .ok_or_else(|| invalid(&format!("contacts[{i}].name"), "must not be blank"))?;
            let phone = digits(&c.phone).map_err(|m| invalid(&format!("contacts[{i}].phone"), m))?;
            Ok(ContactCard { name, phone })
        })
        .collect()
}

impl PollSpec {
    /// Checks the question and the options: 2 to 12 distinct, non-blank options.
    pub fn checked(self) -> Result<PollSpec, Invalid> {
        let question = self.question.trim().to_string();
        if question.is_empty() || question.chars().count() > POLL_TEXT_MAX {
            return Err(invalid("question", format!("must be 1 to {POLL_TEXT_MAX} characters")));
        }
        if !POLL_OPTIONS.contains(&self.options.len()) {
            return Err(invalid(
                "options",
                format!("must hold {} to {} options", POLL_OPTIONS.start(), POLL_OPTIONS.end()),
            ));
        }
        let mut options: Vec<String> = Vec::with_capacity(self.options.len());
        for (i, o) in self.options.iter().enumerate() {
            let o = o.trim();
            if o.is_empty() || o.chars().count() > POLL_TEXT_MAX {
                return Err(invalid(
                    &format!("options[{i}]"),
                    format!("must be 1 to {POLL_TEXT_MAX} characters"),
                ));
            }
            if options.iter().any(|seen| seen == o) {
                return Err(invalid(&format!("options[{i}]"), "repeats an earlier option"));
            }
            options.push(o.to_string());
        }
        Ok(PollSpec { question, options, multiple: self.multiple })
    }
}

/// Checks a reaction: empty (remove the reaction) or exactly one emoji, which may be a
/// sequence such as a flag, a skin tone or a family joined by zero-width joiners (one
/// grapheme cluster, as Unicode segments text).
pub fn check_emoji(emoji: &str) -> Result<(), Invalid> {
    use unicode_segmentation::UnicodeSegmentation;
    if emoji.is_empty() {
        return Ok(());
    }
    let bad = || invalid("emoji", "must be a single emoji, or empty to remove the reaction");
    let mut clusters = emoji.graphemes(true);
    let (Some(one), None) = (clusters.next(), clusters.next()) else { return Err(bad()) };
    let first = one.chars().next().map_or(0, |c| c as u32);
    let keycap = one.contains('\u{20E3}') && matches!(first, 0x30..=0x39 | 0x23 | 0x2A);
    let flag = (0x1F1E6..=0x1F1FF).contains(&first);
    let allowed = one.chars().all(|c| {
        let cp = c as u32;
        is_pictographic(cp)
            || matches!(cp, 0x200D | 0xFE0E | 0xFE0F | 0x20E3 | 0x1F1E6..=0x1F1FF | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F)
            || (keycap && matches!(cp, 0x30..=0x39 | 0x23 | 0x2A))
    });
    if one.len() <= 64 && allowed && (is_pictographic(first) || flag || keycap) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Code points that are emoji on their own (the pictographic blocks, coarsely).
fn is_pictographic(cp: u32) -> bool {
    matches!(cp,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA | 0x231A..=0x23FF
        | 0x24C2 | 0x25AA..=0x27BF | 0x2934 | 0x2935 | 0x2B05..=0x2B55 | 0x3030 | 0x303D
        | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF)
}

/// Checks mentioned numbers (at most [`MENTIONS_MAX`], each turned into digits by `digits`).
pub fn check_mentions(
    mentions: Vec<String>,
    digits: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, Invalid> {
    if mentions.len() > MENTIONS_MAX {
        return Err(invalid("mentions", format!("must hold at most {MENTIONS_MAX} numbers")));
    }
    let mut out: Vec<String> = Vec::with_capacity(mentions.len());
    for (i, m) in mentions.iter().enumerate() {
        let d = digits(m).map_err(|why| invalid(&format!("mentions[{i}]"), why))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Checks a `typing_ms`: up to [`TYPING_MAX_MS`].
pub fn check_typing(ms: Option<u64>) -> Result<Option<u64>, Invalid> {
    match ms {
        Some(ms) if ms > TYPING_MAX_MS => {
            Err(invalid("typing_ms", format!("must be at most {TYPING_MAX_MS} milliseconds")))
        }
        Some(0) | None => Ok(None),
        other => Ok(other),
    }
}

/// A list's search text as typed: trimmed, none when blank, at most 100 characters.
pub fn search_text(q: Option<&str>) -> Result<Option<&str>, String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 100 || q.contains('\0')) {
        return Err("must be at most 100 characters".into());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_emoji_are_accepted_and_two_are_not() {
        for ok in ["", "👍", "❤️", "🇮🇩", "👍🏽", "👨‍👩‍👧", "1️⃣", "🙏", "😂"]
        {
            assert!(check_emoji(ok).is_ok(), "{ok:?}");
        }
        for bad in ["👍👍", "ok", "a", "1", "🇮🇩🇮🇩", "👍 ", "😂😂😂", "\u{0}"] {
            assert!(check_emoji(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn coordinates_out_of_range_name_the_field() {
        let at = |latitude, longitude| Location { latitude, longitude, name: None, address: None };
        assert_eq!(at(91.0, 0.0).checked().unwrap_err().field, "latitude");
        assert_eq!(at(0.0, -180.5).checked().unwrap_err().field, "longitude");
        assert_eq!(at(f64::NAN, 0.0).checked().unwrap_err().field, "latitude");
        let ok = Location { name: Some("  Toko  ".into()), ..at(-6.2, 106.8) }.checked().unwrap();
        assert_eq!(ok.name.as_deref(), Some("Toko"));
    }

    #[test]
    fn polls_need_two_to_twelve_distinct_options() {
        let poll = |n: usize| PollSpec {
            question: "Kapan?".into(),
            options: (0..n).map(|i| format!("opsi {i}")).collect(),
            multiple: false,
        };
        assert_eq!(poll(1).checked().unwrap_err().field, "options");
        assert_eq!(poll(13).checked().unwrap_err().field, "options");
        assert!(poll(12).checked().is_ok());
        let dup = PollSpec { options: vec!["a".into(), " a ".into()], ..poll(2) };
        assert_eq!(dup.checked().unwrap_err().field, "options[1]");
        let blank = PollSpec { question: "  ".into(), ..poll(2) };
        assert_eq!(blank.checked().unwrap_err().field, "question");
    }

    #[test]
    fn reactions_replace_per_sender_and_empty_removes() {
        let mut d = Details::default();
        assert!(d.react("628111", "👍", "t1"));
        assert!(d.react("628111", "❤️", "t2"));
        assert!(d.react("me", "🙏", "t3"));
        assert_eq!(d.reactions.len(), 2);
        assert!(!d.react("628222", "", "t4"), "removing nothing changes nothing");
        assert!(d.react("628111", "", "t5"));
        assert_eq!(d.reactions, vec![Reaction { from: "me".into(), emoji: "🙏".into(), at: "t3".into() }]);
    }

    #[test]
    fn poll_counts_follow_the_latest_vote_of_each_voter() {
        let mut d = Details {
            poll: Some(PollSpec {
                question: "q".into(),
                options: vec!["a".into(), "b".into()],
                multiple: true,
            }),
            ..Default::default()
        };
        d.votes.insert("1".into(), vec!["a".into()]);
        d.votes.insert("2".into(), vec!["a".into(), "b".into()]);
        assert_eq!(d.poll_counts(), vec![("a".into(), 2), ("b".into(), 1)]);
    }

    #[test]
    fn a_vcard_escapes_the_name_and_carries_the_number() {
        let card = ContactCard { name: "Toko; Budi".into(), phone: "6281234567890".into() };
        let v = card.vcard();
        assert!(v.contains("FN:Toko\\; Budi"), "{v}");
        assert!(v.contains("waid=6281234567890:+6281234567890"), "{v}");
    }

    #[test]
    fn empty_details_store_nothing_and_round_trip() {
        assert_eq!(Details::default().to_json(), None);
        let d = Details { mentions: vec!["628111".into()], ..Default::default() };
        assert_eq!(Details::from_json(d.to_json().as_deref()), d);
    }

    #[test]
    fn a_lid_in_the_mentions_and_the_quote_becomes_the_number() {
        let quote = |sender: &str| QuotedRef {
            id: None,
            wa_id: "Q1".into(),
            sender: Some(sender.into()),
            from_me: false,
            text: None,
        };
        let mut d = Details {
            mentions: vec!["11@lid".into(), "628111".into(), "22@lid".into()],
            reply_to: Some(quote("11@lid")),
            ..Default::default()
        };
        assert!(d.resolve_lid("11@lid", "628111", "628999"));
        assert_eq!(d.mentions, ["628111", "22@lid"], "the number mentioned twice is kept once");
        assert_eq!(d.reply_to.as_ref().unwrap().sender.as_deref(), Some("628111"));
        assert!(!d.reply_to.as_ref().unwrap().from_me);
        assert!(!d.resolve_lid("11@lid", "628111", "628999"), "nothing left to change");
        assert!(!d.resolve_lid("2@lid", "628222", "628999"), "a LID that only starts alike");

        let mut own = Details { reply_to: Some(quote("33@lid")), ..Default::default() };
        assert!(own.resolve_lid("33@lid", "628999", "628999"));
        assert!(own.reply_to.unwrap().from_me, "the device's own message, quoted");
    }
}
