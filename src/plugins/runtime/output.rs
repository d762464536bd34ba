//! A plugin's decision in the host's types, checked against the output caps.
//!
//! Each world version's decision is first moved into the one [`Decision`] (no check, no copy
//! of its texts), then checked once: every version meets the same caps with the same reasons.

use super::bindings::{transform, v0_1, v0_2};
use super::host::cut;
use super::{Action, Decision, Outcome, Transformed, TransformedRequest};
use crate::content::{check_emoji, ContactCard, Location, CONTACTS_MAX, LABEL_MAX};

/// Longest reaction, in bytes. One emoji is at most a few code points (a flag is 8 bytes, a
/// family with skin tones about 40); anything longer is not one emoji.
pub const EMOJI_MAX_BYTES: usize = 64;
/// Longest phone number on a contact card, in bytes (digits, and the `+`, spaces or dashes a
/// plugin may copy from its configuration).
pub const PHONE_MAX_BYTES: usize = 32;

/// The caps a decision must fit (`[plugins] max_actions`, `max_reply_bytes`, and the fixed
/// caps of the kinds: [`CONTACTS_MAX`] cards, [`EMOJI_MAX_BYTES`], [`LABEL_MAX`] characters
/// for a location's labels).
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    pub max_actions: usize,
    pub max_reply_bytes: usize,
}

impl OutputCaps {
    /// Bytes the host may copy out of the guest for one decision that fits the caps, with
    /// room to spare: a decision over this is over the caps anyway. The host counts a list as
    /// its length times the size of its Rust element, and a string as its bytes.
    pub fn copy_budget(&self) -> usize {
        use std::mem::size_of;
        let text = self.max_reply_bytes;
        let card = size_of::<v0_2::wa_gateway::plugin::types::Contact>() + text + PHONE_MAX_BYTES;
        // The most one action can carry: a media reply's URL, caption and file name, or a
        // full list of contact cards.
        let payload = (3 * text).max(CONTACTS_MAX * card).max(EMOJI_MAX_BYTES);
        let action = size_of::<v0_1::wa_gateway::plugin::types::Action>()
            .max(size_of::<v0_2::wa_gateway::plugin::types::Action>());
        self.max_actions.saturating_add(1).saturating_mul(action + payload).saturating_mul(2)
    }
}

/// A 0.1.0 decision in the host's types.
pub fn from_v0_1(decision: v0_1::Decision) -> Decision {
    use v0_1::wa_gateway::plugin::types::{Action as Wit, MediaKind};
    let actions = decision
        .actions
        .into_iter()
        .map(|action| match action {
            Wit::ReplyText(text) => Action::ReplyText { text },
            Wit::ReplyMedia(media) => Action::ReplyMedia {
                url: media.url,
                kind: match media.kind {
                    MediaKind::Image => "image",
                    MediaKind::Video => "video",
                    MediaKind::Audio => "audio",
                    MediaKind::Document => "document",
                }
                .to_string(),
                caption: media.caption,
                file_name: media.file_name,
            },
        })
        .collect();
    Decision { actions, stop: decision.stop, quote: false }
}

/// A 0.2.0 decision in the host's types.
pub fn from_v0_2(decision: v0_2::Decision) -> Decision {
    use v0_2::wa_gateway::plugin::types::{Action as Wit, MediaKind};
    let actions = decision
        .actions
        .into_iter()
        .map(|action| match action {
            Wit::ReplyText(text) => Action::ReplyText { text },
            Wit::ReplyMedia(media) => Action::ReplyMedia {
                url: media.url,
                kind: match media.kind {
                    MediaKind::Image => "image",
                    MediaKind::Video => "video",
                    MediaKind::Audio => "audio",
                    MediaKind::Voice => "voice",
                    MediaKind::Document => "document",
                    MediaKind::Sticker => "sticker",
                }
                .to_string(),
                caption: media.caption,
                file_name: media.file_name,
            },
            Wit::ReplyLocation(l) => Action::ReplyLocation {
                location: Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    name: l.name,
                    address: l.address,
                },
            },
            Wit::ReplyContacts(cards) => Action::ReplyContacts {
                contacts: cards.into_iter().map(|c| ContactCard { name: c.name, phone: c.phone }).collect(),
            },
            Wit::React(emoji) => Action::React { emoji },
            Wit::MarkRead => Action::MarkRead,
        })
        .collect();
    Decision { actions, stop: decision.stop, quote: decision.quote }
}

type Refused = (Outcome, String);

/// Largest body a transformation may return, in bytes.
pub const TRANSFORM_BODY_MAX: usize = 512 * 1024;
/// Most extra headers a transformation may return.
pub const TRANSFORM_HEADERS_MAX: usize = 20;
/// Longest path a transformation may append to the endpoint's URL, in bytes.
pub const TRANSFORM_PATH_MAX: usize = 1024;
/// Headers the gateway sets on a transformed request: the signature's, the body's type, and
/// what the client derives from the URL and the body.
const TRANSFORM_OWN_HEADERS: [&str; 8] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// A transformation's answer in the host's types.
pub fn from_transform(outcome: transform::Outcome) -> Transformed {
    match outcome {
        transform::Outcome::Skip => Transformed::Skip,
        transform::Outcome::Send(r) => Transformed::Send(TransformedRequest {
            body: r.body,
            content_type: r.content_type.unwrap_or_default(),
            headers: r.headers,
            path: r.path,
        }),
    }
}

/// The transformation's answer within the caps and well formed (header names lower-cased, the
/// default content type filled in), or the outcome and reason it was refused for.
pub fn check_transform(transformed: Transformed) -> Result<Transformed, Refused> {
    let Transformed::Send(request) = transformed else {
        return Ok(Transformed::Skip);
    };
    let invalid = |why: String| Err((Outcome::InvalidOutput, why));
    if request.body.len() > TRANSFORM_BODY_MAX {
        return Err((
            Outcome::OutputTooLarge,
            format!("the body is {} bytes, the limit is {TRANSFORM_BODY_MAX}", request.body.len()),
        ));
    }
    if request.headers.len() > TRANSFORM_HEADERS_MAX {
        return Err((
            Outcome::OutputTooLarge,
            format!("{} headers, the limit is {TRANSFORM_HEADERS_MAX}", request.headers.len()),
        ));
    }
    let content_type = match request.content_type.trim() {
        "" => "application/json".to_string(),
        given => given.to_string(),
    };
    if reqwest::header::HeaderValue::from_str(&content_type).is_err() {
        return invalid(format!("the content type `{}` is not a header value", cut(&content_type, 64)));
    }
    let mut headers = Vec::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let Ok(parsed) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
            return invalid(format!("`{}` is not a header name", cut(&name, 64)));
        };
        let name = parsed.as_str().to_string();
        if TRANSFORM_OWN_HEADERS.contains(&name.as_str()) {
            return invalid(format!("the header `{name}` is set by the gateway"));
        }
        if reqwest::header::HeaderValue::from_str(&value).is_err() {
            return invalid(format!("the value of `{name}` is not a header value"));
        }
        headers.push((name, value));
    }
    let path = match request.path {
        Some(path) if !path.is_empty() => Some(check_path(path)?),
        _ => None,
    };
    Ok(Transformed::Send(TransformedRequest { body: request.body, content_type, headers, path }))
}

/// A path (and query) to append to an endpoint's URL: it may not leave the endpoint's
/// origin nor climb above its path.
fn check_path(path: String) -> Result<String, Refused> {
    let invalid = |why: &str| Err((Outcome::InvalidOutput, format!("the path {why}")));
    if path.len() > TRANSFORM_PATH_MAX {
        return Err((
            Outcome::OutputTooLarge,
            format!("the path is {} bytes, the limit is {TRANSFORM_PATH_MAX}", path.len()),
        ));
    }
    if !path.starts_with('/') && !path.starts_with('?') {
        return invalid("must start with `/` or `?`");
    }
    if path.starts_with("//") {
        return invalid("may not start with `//`");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\') {
        return invalid("may hold only printable ASCII without spaces, `#` or `\\`");
    }
    let route = path.split('?').next().unwrap_or_default();
    if route
        .split('/')
        .any(|segment| segment == ".." || segment == "." || segment.eq_ignore_ascii_case("%2e%2e"))
    {
        return invalid("may not hold `.` or `..` segments");
    }
    Ok(path)
}

/// The decision, or the outcome and reason it was refused for. A refused decision is
/// dropped whole.
pub fn check(decision: Decision, caps: OutputCaps) -> Result<Decision, Refused> {
    if decision.actions.len() > caps.max_actions {
        return Err((
            Outcome::OutputTooLarge,
            format!("{} actions, the limit is {}", decision.actions.len(), caps.max_actions),
        ));
    }
    let mut actions = Vec::with_capacity(decision.actions.len());
    for (i, action) in decision.actions.into_iter().enumerate() {
        actions.push(check_action(i + 1, action, caps)?);
    }
    Ok(Decision { actions, ..decision })
}

/// Action `i` (from 1) within the caps and well formed.
fn check_action(i: usize, action: Action, caps: OutputCaps) -> Result<Action, Refused> {
    let max = caps.max_reply_bytes;
    let too_large = |what: &str, len: usize, limit: usize| {
        Err((Outcome::OutputTooLarge, format!("action {i}: the {what} is {len} bytes, the limit is {limit}")))
    };
    let invalid = |why: String| Err((Outcome::InvalidOutput, format!("action {i}: {why}")));
    match action {
        Action::ReplyText { text } => {
            if text.len() > max {
                return too_large("reply text", text.len(), max);
            }
            if text.trim().is_empty() {
                return invalid("the reply text is empty".into());
            }
            Ok(Action::ReplyText { text })
        }
        Action::ReplyMedia { url, kind, caption, file_name } => {
            for (what, value) in
                [("URL", Some(&url)), ("caption", caption.as_ref()), ("file name", file_name.as_ref())]
            {
                if let Some(value) = value.filter(|v| v.len() > max) {
                    return too_large(what, value.len(), max);
                }
            }
            if !is_web_url(&url) {
                return invalid(format!("the media URL `{}` is not an http(s) URL", cut(&url, 200)));
            }
            Ok(Action::ReplyMedia { url, kind, caption, file_name })
        }
        Action::ReplyLocation { location } => {
            for (what, value) in [("location name", &location.name), ("location address", &location.address)]
            {
                let Some(value) = value else { continue };
                if value.len() > max {
                    return too_large(what, value.len(), max);
                }
                let chars = value.chars().count();
                if chars > LABEL_MAX {
                    return Err((
                        Outcome::OutputTooLarge,
                        format!("action {i}: the {what} is {chars} characters, the limit is {LABEL_MAX}"),
                    ));
                }
            }
            match location.checked() {
                Ok(location) => Ok(Action::ReplyLocation { location }),
                Err(why) => invalid(format!("the location is not valid: {why}")),
            }
        }
        Action::ReplyContacts { contacts } => {
            if contacts.len() > CONTACTS_MAX {
                return Err((
                    Outcome::OutputTooLarge,
                    format!("action {i}: {} contact cards, the limit is {CONTACTS_MAX}", contacts.len()),
                ));
            }
            if contacts.is_empty() {
                return invalid("the contact reply has no cards".into());
            }
            for (j, card) in contacts.iter().enumerate() {
                let j = j + 1;
                if card.name.len() > max {
                    return too_large(&format!("name of contact {j}"), card.name.len(), max);
                }
                if card.phone.len() > PHONE_MAX_BYTES {
                    return too_large(
                        &format!("phone number of contact {j}"),
                        card.phone.len(),
                        PHONE_MAX_BYTES,
                    );
                }
                if card.name.trim().is_empty() {
                    return invalid(format!("contact {j} has no name"));
                }
                if !card.phone.chars().any(|c| c.is_ascii_digit()) {
                    return invalid(format!("contact {j} has no phone number"));
                }
            }
            Ok(Action::ReplyContacts { contacts })
        }
        Action::React { emoji } => {
            if emoji.len() > EMOJI_MAX_BYTES {
                return too_large("reaction", emoji.len(), EMOJI_MAX_BYTES);
            }
            match check_emoji(&emoji) {
                Ok(()) => Ok(Action::React { emoji }),
                Err(why) => invalid(format!("the reaction is not valid: {}", why.message)),
            }
        }
        Action::MarkRead => Ok(Action::MarkRead),
    }
}

/// An absolute `http` or `https` URL with a host.
fn is_web_url(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(url) => matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v0_2::wa_gateway::plugin::types as wit;

    const CAPS: OutputCaps = OutputCaps { max_actions: 2, max_reply_bytes: 20 };

    fn request(body: &str, headers: &[(&str, &str)], path: Option<&str>) -> Transformed {
        Transformed::Send(TransformedRequest {
            body: body.into(),
            content_type: String::new(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            path: path.map(str::to_string),
        })
    }

    fn refused(t: Transformed) -> (Outcome, String) {
        check_transform(t).expect_err("refused")
    }

    #[test]
    fn a_transformed_request_gets_defaults_and_lower_case_header_names() {
        let checked = check_transform(request("{}", &[("X-Team", "sales")], Some("/T0/B0?x=1"))).unwrap();
        let Transformed::Send(r) = checked else { panic!("a request") };
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.headers, vec![("x-team".to_string(), "sales".to_string())]);
        assert_eq!(r.path.as_deref(), Some("/T0/B0?x=1"));
        assert_eq!(check_transform(Transformed::Skip), Ok(Transformed::Skip));
        let Transformed::Send(r) = check_transform(request("", &[], Some(""))).unwrap() else { panic!() };
        assert_eq!(r.path, None, "an empty path appends nothing");
    }

    #[test]
    fn a_transformed_request_may_not_forge_the_signature_nor_leave_the_endpoint() {
        for name in
            ["webhook-signature", "Webhook-Id", "webhook-timestamp", "content-type", "host", "Content-Length"]
        {
            let (outcome, why) = refused(request("{}", &[(name, "x")], None));
            assert_eq!(outcome, Outcome::InvalidOutput, "{name}");
            assert!(why.contains("set by the gateway"), "{name}: {why}");
        }
        assert_eq!(refused(request("{}", &[("bad name", "x")], None)).0, Outcome::InvalidOutput);
        assert_eq!(refused(request("{}", &[("x-a", "line\nbreak")], None)).0, Outcome::InvalidOutput);
        for path in [
            "T0/B0",
            "//evil.example/x",
            "/a/../b",
            "/..",
            "/./a",
            "/a b",
            "/a#frag",
            "/a\\b",
            "/%2E%2E/x",
            "/é",
        ] {
            let (outcome, why) = refused(request("{}", &[], Some(path)));
            assert_eq!(outcome, Outcome::InvalidOutput, "{path}: {why}");
        }
        assert!(
            check_transform(request("{}", &[], Some("/a/..b/c?next=../x"))).is_ok(),
            "`..` inside a name or a query is fine"
        );
    }

    #[test]
    fn a_transformed_request_is_held_to_its_caps() {
        let big = "x".repeat(TRANSFORM_BODY_MAX + 1);
        assert_eq!(refused(request(&big, &[], None)).0, Outcome::OutputTooLarge);
        assert!(check_transform(request(&big[1..], &[], None)).is_ok());
        let many: Vec<(String, String)> =
            (0..=TRANSFORM_HEADERS_MAX).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(refused(request("{}", &many, None)).0, Outcome::OutputTooLarge);
        let long = format!("/{}", "a".repeat(TRANSFORM_PATH_MAX));
        assert_eq!(refused(request("{}", &[], Some(&long))).0, Outcome::OutputTooLarge);
        let Transformed::Send(mut r) = request("{}", &[], None) else { panic!() };
        r.content_type = "text/plain\r\nx: y".into();
        assert_eq!(refused(Transformed::Send(r)).0, Outcome::InvalidOutput);
    }

    fn text(t: &str) -> wit::Action {
        wit::Action::ReplyText(t.into())
    }

    fn media(url: &str, caption: Option<&str>) -> wit::Action {
        wit::Action::ReplyMedia(wit::MediaReply {
            url: url.into(),
            kind: wit::MediaKind::Document,
            caption: caption.map(Into::into),
            file_name: Some("a.pdf".into()),
        })
    }

    fn location(latitude: f64, name: Option<&str>) -> wit::Action {
        wit::Action::ReplyLocation(wit::Location {
            latitude,
            longitude: 106.8,
            name: name.map(Into::into),
            address: None,
        })
    }

    fn cards(n: usize) -> wit::Action {
        wit::Action::ReplyContacts(
            (0..n).map(|i| wit::Contact { name: format!("C{i}"), phone: "6281234567890".into() }).collect(),
        )
    }

    fn decide(actions: Vec<wit::Action>) -> Result<Decision, Refused> {
        check(from_v0_2(v0_2::Decision { actions, stop: true, quote: false }), CAPS)
    }

    fn over(r: Result<Decision, Refused>) -> bool {
        r.unwrap_err().0 == Outcome::OutputTooLarge
    }

    fn invalid(r: Result<Decision, Refused>) -> bool {
        r.unwrap_err().0 == Outcome::InvalidOutput
    }

    #[test]
    fn a_decision_within_the_caps_is_kept() {
        let d = decide(vec![text("halo"), media("https://x.id/a", Some("cap"))]).unwrap();
        assert!(d.stop);
        assert_eq!(d.actions[0], Action::ReplyText { text: "halo".into() });
        assert_eq!(
            d.actions[1],
            Action::ReplyMedia {
                url: "https://x.id/a".into(),
                kind: "document".into(),
                caption: Some("cap".into()),
                file_name: Some("a.pdf".into())
            }
        );
        assert!(decide(vec![]).unwrap().actions.is_empty());
        let d = decide(vec![location(-6.2, Some(" Toko ")), wit::Action::React("👍".into())]).unwrap();
        let tidy = Location { latitude: -6.2, longitude: 106.8, name: Some("Toko".into()), address: None };
        assert_eq!(d.actions[0], Action::ReplyLocation { location: tidy });
        assert_eq!(d.actions[1], Action::React { emoji: "👍".into() });
        let d = decide(vec![cards(10), wit::Action::MarkRead]).unwrap();
        assert!(matches!(&d.actions[0], Action::ReplyContacts { contacts } if contacts.len() == 10));
        assert_eq!(d.actions[1], Action::MarkRead);
        assert!(decide(vec![wit::Action::React(String::new())]).is_ok(), "an empty reaction removes it");
    }

    #[test]
    fn both_versions_make_the_same_decision() {
        use v0_1::wa_gateway::plugin::types as old;
        let old = v0_1::Decision {
            actions: vec![
                old::Action::ReplyText("halo".into()),
                old::Action::ReplyMedia(old::MediaReply {
                    url: "https://x.id/a".into(),
                    kind: old::MediaKind::Document,
                    caption: Some("cap".into()),
                    file_name: Some("a.pdf".into()),
                }),
            ],
            stop: true,
        };
        let new = v0_2::Decision {
            actions: vec![text("halo"), media("https://x.id/a", Some("cap"))],
            stop: true,
            quote: false,
        };
        assert_eq!(from_v0_1(old), from_v0_2(new));
        let quoting = from_v0_2(v0_2::Decision { actions: vec![text("a")], stop: false, quote: true });
        assert!(quoting.quote);
    }

    #[test]
    fn too_many_actions_or_long_replies_are_too_large() {
        assert!(over(decide(vec![text("a"), text("b"), text("c")])));
        assert!(over(decide(vec![text(&"x".repeat(21))])));
        assert!(decide(vec![text(&"x".repeat(20))]).is_ok());
        // The cap counts bytes, not characters.
        assert!(over(decide(vec![text(&"é".repeat(11))])));
        assert!(over(decide(vec![media("https://x.id/123456789", None)])));
        assert!(over(decide(vec![media("https://x.id/a", Some(&"c".repeat(21)))])));
    }

    #[test]
    fn the_new_actions_have_caps_too() {
        let name = decide(vec![location(0.0, Some(&"n".repeat(21)))]).unwrap_err();
        assert_eq!(name.0, Outcome::OutputTooLarge);
        assert_eq!(name.1, "action 1: the location name is 21 bytes, the limit is 20");
        let wide = OutputCaps { max_actions: 2, max_reply_bytes: 8192 };
        let long = check(
            from_v0_2(v0_2::Decision {
                actions: vec![location(0.0, Some(&"n".repeat(1025)))],
                stop: false,
                quote: false,
            }),
            wide,
        );
        assert!(long.unwrap_err().1.contains("1025 characters, the limit is 1024"));
        let eleven = decide(vec![cards(11)]).unwrap_err();
        assert_eq!(eleven, (Outcome::OutputTooLarge, "action 1: 11 contact cards, the limit is 10".into()));
        let long_name =
            wit::Action::ReplyContacts(vec![wit::Contact { name: "n".repeat(21), phone: "62812".into() }]);
        assert!(over(decide(vec![long_name])));
        let long_phone =
            wit::Action::ReplyContacts(vec![wit::Contact { name: "Ani".into(), phone: "6".repeat(33) }]);
        assert!(over(decide(vec![long_phone])));
        assert!(over(decide(vec![wit::Action::React("👍".repeat(17))])));
    }

    #[test]
    fn malformed_actions_are_invalid() {
        assert!(invalid(decide(vec![text("")])));
        assert!(invalid(decide(vec![text("  \n")])));
        assert!(invalid(decide(vec![media("ftp://x.id/a", None)])));
        assert!(invalid(decide(vec![media("file:///etc", None)])));
        assert!(invalid(decide(vec![media("x.id/a", None)])));
        assert!(invalid(decide(vec![location(91.0, None)])));
        assert!(invalid(decide(vec![location(f64::NAN, None)])));
        assert!(invalid(decide(vec![cards(0)])));
        let blank =
            wit::Action::ReplyContacts(vec![wit::Contact { name: " ".into(), phone: "62812".into() }]);
        assert!(invalid(decide(vec![blank])));
        let no_number =
            wit::Action::ReplyContacts(vec![wit::Contact { name: "Ani".into(), phone: "-".into() }]);
        assert!(invalid(decide(vec![no_number])));
        assert!(invalid(decide(vec![wit::Action::React("ok".into())])));
        assert!(invalid(decide(vec![wit::Action::React("👍👍".into())])));
    }

    #[test]
    fn the_copy_budget_covers_the_largest_decision_that_fits() {
        use std::mem::size_of;
        let card = size_of::<wit::Contact>() + CAPS.max_reply_bytes + PHONE_MAX_BYTES;
        let largest = CAPS.max_actions * (size_of::<wit::Action>() + CONTACTS_MAX * card);
        assert!(CAPS.copy_budget() >= largest);
        let media = CAPS.max_actions * (size_of::<wit::Action>() + 3 * CAPS.max_reply_bytes);
        assert!(CAPS.copy_budget() >= media);
    }
}
