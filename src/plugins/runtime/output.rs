//! A plugin's decision checked against the output caps and turned into the host's types.

use super::bindings;
use super::bindings::wa_gateway::plugin::types as wit;
use super::host::cut;
use super::{Action, Decision, Outcome};

/// The caps a decision must fit (`[plugins] max_actions`, `max_reply_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    pub max_actions: usize,
    pub max_reply_bytes: usize,
}

impl OutputCaps {
    /// Bytes the host may copy out of the guest for one decision that fits the caps, with
    /// room to spare: a decision over this is over the caps anyway.
    pub fn copy_budget(&self) -> usize {
        let per_action = std::mem::size_of::<wit::Action>() + 3 * self.max_reply_bytes;
        self.max_actions.saturating_add(1).saturating_mul(per_action).saturating_mul(2)
    }
}

/// The decision, or the outcome and reason it was refused for. A refused decision is
/// dropped whole.
pub fn check(decision: bindings::Decision, caps: OutputCaps) -> Result<Decision, (Outcome, String)> {
    if decision.actions.len() > caps.max_actions {
        return Err((
            Outcome::OutputTooLarge,
            format!("{} actions, the limit is {}", decision.actions.len(), caps.max_actions),
        ));
    }
    let too_large = |what: &str, i: usize, len: usize| {
        Err((
            Outcome::OutputTooLarge,
            format!("action {i}: the {what} is {len} bytes, the limit is {}", caps.max_reply_bytes),
        ))
    };
    let mut actions = Vec::with_capacity(decision.actions.len());
    for (i, action) in decision.actions.into_iter().enumerate() {
        let i = i + 1;
        match action {
            wit::Action::ReplyText(text) => {
                if text.len() > caps.max_reply_bytes {
                    return too_large("reply text", i, text.len());
                }
                if text.trim().is_empty() {
                    return Err((Outcome::InvalidOutput, format!("action {i}: the reply text is empty")));
                }
                actions.push(Action::ReplyText { text });
            }
            wit::Action::ReplyMedia(media) => {
                for (what, value) in [
                    ("URL", Some(&media.url)),
                    ("caption", media.caption.as_ref()),
                    ("file name", media.file_name.as_ref()),
                ] {
                    if let Some(value) = value.filter(|v| v.len() > caps.max_reply_bytes) {
                        return too_large(what, i, value.len());
                    }
                }
                if !is_web_url(&media.url) {
                    return Err((
                        Outcome::InvalidOutput,
                        format!("action {i}: the media URL `{}` is not an http(s) URL", cut(&media.url, 200)),
                    ));
                }
                let kind = match media.kind {
                    wit::MediaKind::Image => "image",
                    wit::MediaKind::Video => "video",
                    wit::MediaKind::Audio => "audio",
                    wit::MediaKind::Document => "document",
                };
                actions.push(Action::ReplyMedia {
                    url: media.url,
                    kind: kind.to_string(),
                    caption: media.caption,
                    file_name: media.file_name,
                });
            }
        }
    }
    Ok(Decision { actions, stop: decision.stop })
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

    const CAPS: OutputCaps = OutputCaps { max_actions: 2, max_reply_bytes: 20 };

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

    fn decide(actions: Vec<wit::Action>) -> Result<Decision, (Outcome, String)> {
        check(bindings::Decision { actions, stop: true }, CAPS)
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
    }

    #[test]
    fn too_many_actions_or_long_replies_are_too_large() {
        let over = |r: Result<Decision, (Outcome, String)>| r.unwrap_err().0 == Outcome::OutputTooLarge;
        assert!(over(decide(vec![text("a"), text("b"), text("c")])));
        assert!(over(decide(vec![text(&"x".repeat(21))])));
        assert!(decide(vec![text(&"x".repeat(20))]).is_ok());
        // The cap counts bytes, not characters.
        assert!(over(decide(vec![text(&"é".repeat(11))])));
        assert!(over(decide(vec![media("https://x.id/123456789", None)])));
        assert!(over(decide(vec![media("https://x.id/a", Some(&"c".repeat(21)))])));
    }

    #[test]
    fn empty_texts_and_non_web_urls_are_invalid() {
        let invalid = |r: Result<Decision, (Outcome, String)>| r.unwrap_err().0 == Outcome::InvalidOutput;
        assert!(invalid(decide(vec![text("")])));
        assert!(invalid(decide(vec![text("  \n")])));
        assert!(invalid(decide(vec![media("ftp://x.id/a", None)])));
        assert!(invalid(decide(vec![media("file:///etc", None)])));
        assert!(invalid(decide(vec![media("x.id/a", None)])));
    }

    #[test]
    fn the_copy_budget_covers_the_largest_decision_that_fits() {
        let largest = CAPS.max_actions * (std::mem::size_of::<wit::Action>() + 3 * CAPS.max_reply_bytes);
        assert!(CAPS.copy_budget() >= largest);
    }
}
