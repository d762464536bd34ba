//! The keyword matching engine: pure functions, no storage, no clock.
//!
//! A rule is parsed once into a [`Matcher`] (the keyword in the form its mode compares, or a
//! compiled regex), so matching a message against a tenant's rules is cheap and cannot fail.
//! Literal modes compare the trimmed message text with the keyword; without case sensitivity
//! both sides are lowercased with Unicode's rules (`HARGA` and `harga`, `ÇAY` and `çay`).
//! Regexes run on the `regex` crate, whose matching time is linear in the text whatever the
//! pattern (no backtracking, so `(a+)+$` cannot hang a worker), with a cap on the compiled size.
//!
//! Replies are templates with `{name}`, `{phone}`, `{message}` and `{date}`; [`render`] replaces
//! them in one pass over the template, so text that comes from the sender (the name, the
//! message) is inserted literally and never expanded again.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// Longest keyword or regex, in characters.
pub const MAX_KEYWORD_CHARS: usize = 500;
/// Longest reply template, in characters.
pub const MAX_REPLY_CHARS: usize = 4096;
/// Longest rendered reply, in characters (WhatsApp's own text limit is about 65,536).
pub const MAX_RENDERED_CHARS: usize = 65_536;
/// Most memory one compiled regex may take, in bytes (and the same for its lazy DFA cache).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of groups and repetitions a regex may have.
pub const REGEX_NEST_LIMIT: u32 = 64;

/// How a rule's keyword is compared with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// The whole message equals the keyword.
    Exact,
    /// The keyword occurs anywhere in the message.
    Contains,
    /// The message begins with the keyword.
    StartsWith,
    /// The regex matches somewhere in the message (anchor it with `^…$` for a full match).
    Regex,
}

impl MatchMode {
    pub const ALL: [MatchMode; 4] =
        [MatchMode::Exact, MatchMode::Contains, MatchMode::StartsWith, MatchMode::Regex];

    /// The API and storage name: `exact`, `contains`, `starts_with`, `regex`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::Contains => "contains",
            MatchMode::StartsWith => "starts_with",
            MatchMode::Regex => "regex",
        }
    }

    pub fn parse(raw: &str) -> Result<MatchMode, RuleError> {
        let raw = raw.trim();
        MatchMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| RuleError::UnknownMode(raw.chars().take(40).collect()))
    }
}

impl fmt::Display for MatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a rule was refused. [`RuleError::field`] names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("must not be empty")]
    EmptyKeyword,
    #[error("must be at most {MAX_KEYWORD_CHARS} characters")]
    KeywordTooLong,
    #[error("not a valid regex: {0}")]
    InvalidRegex(String),
    #[error("the regex is too large once compiled; simplify it")]
    RegexTooLarge,
    #[error("`{0}` is not a match mode; use exact, contains, starts_with or regex")]
    UnknownMode(String),
    #[error("must not be empty")]
    EmptyReply,
    #[error("must be at most {MAX_REPLY_CHARS} characters")]
    ReplyTooLong,
}

impl RuleError {
    pub fn field(&self) -> &'static str {
        match self {
            RuleError::EmptyKeyword
            | RuleError::KeywordTooLong
            | RuleError::InvalidRegex(_)
            | RuleError::RegexTooLarge => "keyword",
            RuleError::UnknownMode(_) => "match",
            RuleError::EmptyReply | RuleError::ReplyTooLong => "reply",
        }
    }
}

/// A keyword in the form its mode compares: lowercased for case-insensitive literal modes, a
/// compiled regex for `regex`. No public fields: a value is always valid.
#[derive(Debug, Clone)]
pub struct Matcher {
    kind: MatcherKind,
    case_sensitive: bool,
}

#[derive(Debug, Clone)]
enum MatcherKind {
    Exact(String),
    Contains(String),
    StartsWith(String),
    Regex(Regex),
}

impl Matcher {
    /// Checks and prepares a keyword. The keyword is trimmed; a regex must compile within
    /// the size and nesting limits.
    pub fn parse(keyword: &str, mode: MatchMode, case_sensitive: bool) -> Result<Matcher, RuleError> {
        let keyword = keyword.trim();
        if keyword.is_empty() {
            return Err(RuleError::EmptyKeyword);
        }
        if keyword.chars().count() > MAX_KEYWORD_CHARS {
            return Err(RuleError::KeywordTooLong);
        }
        let fold = |s: &str| if case_sensitive { s.to_string() } else { fold_case(s) };
        let kind = match mode {
            MatchMode::Exact => MatcherKind::Exact(fold(keyword)),
            MatchMode::Contains => MatcherKind::Contains(fold(keyword)),
            MatchMode::StartsWith => MatcherKind::StartsWith(fold(keyword)),
            MatchMode::Regex => MatcherKind::Regex(compile_regex(keyword, case_sensitive)?),
        };
        Ok(Matcher { kind, case_sensitive })
    }

    pub fn mode(&self) -> MatchMode {
        match self.kind {
            MatcherKind::Exact(_) => MatchMode::Exact,
            MatcherKind::Contains(_) => MatchMode::Contains,
            MatcherKind::StartsWith(_) => MatchMode::StartsWith,
            MatcherKind::Regex(_) => MatchMode::Regex,
        }
    }

    /// Whether the message matches. `text` is what [`Text::new`] prepared.
    pub fn is_match(&self, text: &Text) -> bool {
        let subject = if self.case_sensitive { text.trimmed.as_str() } else { text.folded.as_str() };
        match &self.kind {
            MatcherKind::Exact(k) => subject == k,
            MatcherKind::Contains(k) => subject.contains(k.as_str()),
            MatcherKind::StartsWith(k) => subject.starts_with(k.as_str()),
            // Case-insensitivity is compiled into the regex: it sees the text as written.
            MatcherKind::Regex(re) => re.is_match(&text.trimmed),
        }
    }
}

/// Compiles a tenant's regex with the engine's limits.
pub fn compile_regex(pattern: &str, case_sensitive: bool) -> Result<Regex, RuleError> {
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => RuleError::RegexTooLarge,
            other => RuleError::InvalidRegex(first_line(&other.to_string())),
        })
}

/// The regex crate's messages draw the pattern with a caret under the fault over several
/// lines; the last line says what is wrong.
fn first_line(message: &str) -> String {
    let reason = message.lines().rev().find(|l| l.trim_start().starts_with("error:")).unwrap_or(message);
    reason.trim().trim_start_matches("error:").trim().chars().take(200).collect()
}

/// Lowercases character by character with Unicode's mappings. Unlike `str::to_lowercase` it
/// ignores context (Greek final sigma), so folding a text folds each of its substrings the same
/// way and a keyword found in a text is still found once both are folded.
pub fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// An inbound message's text prepared for matching: trimmed, and lowercased once for the
/// case-insensitive rules.
#[derive(Debug, Clone)]
pub struct Text {
    trimmed: String,
    folded: String,
}

impl Text {
    pub fn new(raw: &str) -> Text {
        let trimmed = raw.trim().to_string();
        let folded = fold_case(&trimmed);
        Text { trimmed, folded }
    }

    pub fn as_str(&self) -> &str {
        &self.trimmed
    }
}

/// One enabled rule, ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    /// Higher goes first; equal priorities go by id (older first).
    pub priority: i64,
    /// `None`: every device of the tenant.
    pub device_id: Option<i64>,
    pub matcher: Matcher,
    pub reply: String,
    /// Stop the pipeline after this rule answered.
    pub stop: bool,
    /// Seconds before the rule answers the same chat again (0: no cooldown).
    pub cooldown_seconds: i64,
}

/// The rules for `device_id` that match `text`, best first (priority descending, then id
/// ascending). The first is the one that answers; the rest are the fallbacks when it is
/// cooling down for the chat.
pub fn matching<'a>(rules: &'a [Rule], device_id: i64, text: &Text) -> Vec<&'a Rule> {
    let mut found: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.device_id.is_none_or(|d| d == device_id))
        .filter(|r| r.matcher.is_match(text))
        .collect();
    found.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    found
}

/// The rule that answers `text` on `device_id`, if any.
pub fn first_match<'a>(rules: &'a [Rule], device_id: i64, text: &Text) -> Option<&'a Rule> {
    matching(rules, device_id, text).into_iter().next()
}

/// What the placeholders of a reply stand for.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The sender's WhatsApp push name, if they have one.
    pub name: Option<&'a str>,
    /// The sender's phone number (digits).
    pub phone: &'a str,
    /// The message text as received.
    pub message: &'a str,
    /// Today in the tenant's time zone, `YYYY-MM-DD`.
    pub date: &'a str,
}

/// Fills the placeholders of a reply template: `{name}` (the push name, else the phone),
/// `{phone}`, `{message}`, `{date}`. Anything else in braces stays as written. One pass over
/// the template: inserted values are never scanned for placeholders. The result is cut at
/// [`MAX_RENDERED_CHARS`].
pub fn render(template: &str, vars: &Vars<'_>) -> String {
    let name = vars.name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(vars.phone);
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let value = match &after[..close] {
                "name" => name,
                "phone" => vars.phone,
                "message" => vars.message,
                "date" => vars.date,
                _ => return None,
            };
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    truncate_chars(out, MAX_RENDERED_CHARS)
}

fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        s.truncate(cut);
    }
    s
}

/// Checks a reply template's length (the placeholders are filled at send time).
pub fn check_reply(reply: &str) -> Result<(), RuleError> {
    if reply.trim().is_empty() {
        return Err(RuleError::EmptyReply);
    }
    if reply.chars().count() > MAX_REPLY_CHARS {
        return Err(RuleError::ReplyTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
