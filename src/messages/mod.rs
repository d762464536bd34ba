//! Messages: the send path, media, history and the inbound pipeline (recipients are `crate::phone`).

/// Largest text message, in characters (WhatsApp's own limit is about 65,536).
pub const MAX_TEXT_CHARS: usize = 65_536;

/// Checks the text of a message to send: not blank, at most [`MAX_TEXT_CHARS`].
pub fn check_text(text: &str) -> crate::error::ApiResult<()> {
    use crate::error::ApiError;
    if text.trim().is_empty() {
        return Err(ApiError::validation("text", "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::validation("text", format!("must be at most {MAX_TEXT_CHARS} characters")));
    }
    Ok(())
}

pub mod feed;
pub mod guard;
pub mod inbound;
pub mod keeper;
pub mod media;
pub mod outbound;
pub mod service;
pub mod view;
