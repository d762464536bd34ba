//! Recipients of messages: phone numbers in any way people write them, WhatsApp user JIDs and
//! group JIDs, parsed once into a [`Recipient`] so the rest of the gateway never re-checks them.
//!
//! Numbers are normalised to E.164 digits without the `+`: separators (spaces, `-`, `.`,
//! parentheses) are dropped, a `+` or `00` prefix marks an international number, a single
//! leading `0` is a national number and gets the default country code, and anything else is
//! taken as already international (`6281234567890`). The result has 8 to 15 digits.

use std::fmt;

/// The fewest digits a normalised number may have.
pub const MIN_DIGITS: usize = 8;
/// The most digits a normalised number may have (E.164).
pub const MAX_DIGITS: usize = 15;
/// The longest group id part accepted (`120363…` ids have 18 digits).
const MAX_GROUP_PART: usize = 32;

const USER_DOMAINS: [&str; 2] = ["s.whatsapp.net", "c.us"];
const GROUP_DOMAIN: &str = "g.us";

/// Why a recipient or a device number was refused. The messages are meant for API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the number is empty")]
    Empty,
    #[error("the number contains letters; write digits only, e.g. 6281234567890")]
    Letters,
    #[error("the number contains the character {0:?}; only digits, spaces, '-', '.', '(', ')' and a leading '+' are allowed")]
    InvalidCharacter(char),
    #[error("'+' may appear only once, before the digits")]
    MisplacedPlus,
    #[error("the number is too short: {0} digits, at least {MIN_DIGITS} are needed with the country code")]
    TooShort(usize),
    #[error("the number is too long: {0} digits, at most {MAX_DIGITS} are allowed (E.164)")]
    TooLong(usize),
    #[error("a country code cannot start with 0")]
    CountryCodeZero,
    #[error("unsupported address @{0}; use a number, @s.whatsapp.net, @c.us or @g.us")]
    UnsupportedDomain(String),
    #[error("invalid group id; expected e.g. 120363012345678901@g.us")]
    InvalidGroup,
    #[error("a group cannot be used here; give a phone number")]
    GroupNotAllowed,
    #[error("invalid default country code {0:?}: 1 to 4 digits, not starting with 0")]
    InvalidCountryCode(String),
}

/// A parsed message recipient: a person (by phone number) or a group. No public fields, so a
/// value always holds a normalised number or a well-formed group JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient(Target);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    /// E.164 digits without `+`.
    Number(String),
    /// The full group JID, `<id>@g.us`.
    Group(String),
}

impl Recipient {
    /// Parses a number as people write it, a user JID (`…@s.whatsapp.net`, `…@c.us`) or a
    /// group JID (`…@g.us`). `default_country_code` (digits, e.g. `62`) replaces a leading `0`.
    pub fn parse(input: &str, default_country_code: &str) -> Result<Recipient, PhoneError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        match input.rsplit_once('@') {
            Some((local, domain)) => parse_jid(local.trim(), domain.trim()),
            None => normalize_number(input, default_country_code).map(|n| Recipient(Target::Number(n))),
        }
    }

    /// The WhatsApp JID to send to: `<digits>@s.whatsapp.net` or the group JID.
    pub fn jid(&self) -> String {
        match &self.0 {
            Target::Number(n) => format!("{n}@s.whatsapp.net"),
            Target::Group(g) => g.clone(),
        }
    }

    /// The phone number's digits, or `None` for a group.
    pub fn number(&self) -> Option<&str> {
        match &self.0 {
            Target::Number(n) => Some(n),
            Target::Group(_) => None,
        }
    }

    /// Whether this is a group chat.
    pub fn is_group(&self) -> bool {
        matches!(self.0, Target::Group(_))
    }

    /// For display and storage: the digits of a number, or the group JID. Parsing this again
    /// gives the same recipient.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Target::Number(s) | Target::Group(s) => s,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user JID of a phone number (digits); a value that is a JID already is kept.
pub fn user_jid(number: &str) -> String {
    if number.contains('@') {
        number.to_string()
    } else {
        format!("{number}@s.whatsapp.net")
    }
}

/// The longest LID user part accepted, in digits.
const MAX_LID_DIGITS: usize = 24;

/// A LID (WhatsApp's account id that hides the phone number) as its JID `<digits>@lid`, from
/// `<digits>`, `<digits>@lid` or a device's `<digits>:<device>@lid`; `None` for anything else.
pub fn lid_jid(input: &str) -> Option<String> {
    let input = input.trim();
    let user = match input.rsplit_once('@') {
        Some((local, domain)) if domain.eq_ignore_ascii_case("lid") => {
            local.split(':').next().unwrap_or(local)
        }
        Some(_) => return None,
        None => input,
    };
    let ok = !user.is_empty() && user.len() <= MAX_LID_DIGITS && user.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("{user}@lid"))
}

/// Whether `jid` is a LID JID (`…@lid`).
pub fn is_lid(jid: &str) -> bool {
    jid.rsplit_once('@').is_some_and(|(_, domain)| domain.eq_ignore_ascii_case("lid"))
}

/// Who a conversation is with, as the chat list, history and contacts name it: a person by
/// number, a group, or a person by LID while the number behind it is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChatAddress {
    Recipient(Recipient),
    /// The LID JID, `<digits>@lid`.
    Lid(String),
}

impl ChatAddress {
    /// Parses a number as people write it, a user JID, a group JID or a LID JID
    /// (`<digits>@lid`; bare digits are a number, never a LID). Errors are the number's.
    pub fn parse(input: &str, default_country_code: &str) -> Result<ChatAddress, PhoneError> {
        if let Some(lid) = lid_jid(input).filter(|_| input.contains('@')) {
            return Ok(ChatAddress::Lid(lid));
        }
        Recipient::parse(input, default_country_code).map(ChatAddress::Recipient)
    }

    /// The chat's JID: `<digits>@s.whatsapp.net`, the group JID or `<digits>@lid`.
    pub fn jid(&self) -> String {
        match self {
            ChatAddress::Recipient(r) => r.jid(),
            ChatAddress::Lid(lid) => lid.clone(),
        }
    }

    /// Whether this is a group chat.
    pub fn is_group(&self) -> bool {
        matches!(self, ChatAddress::Recipient(r) if r.is_group())
    }
}

/// Normalises a device's own phone number (the account the tenant links) to E.164 digits.
/// Groups are refused; JIDs of users are accepted for convenience.
pub fn normalize_device_phone(input: &str, default_country_code: &str) -> Result<String, PhoneError> {
    let recipient = Recipient::parse(input, default_country_code)?;
    match recipient.0 {
        Target::Number(n) => Ok(n),
        Target::Group(_) => Err(PhoneError::GroupNotAllowed),
    }
}

fn parse_jid(local: &str, domain: &str) -> Result<Recipient, PhoneError> {
    if USER_DOMAINS.iter().any(|d| domain.eq_ignore_ascii_case(d)) {
        // A JID already carries the number in international form: no country code rules.
        if local.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some(c) = local.chars().find(|c| !c.is_ascii_digit()) {
            return Err(char_error(c));
        }
        return check_digits(local.to_string()).map(|n| Recipient(Target::Number(n)));
    }
    if domain.eq_ignore_ascii_case(GROUP_DOMAIN) {
        let mut parts = local.split('-');
        let valid_part =
            |p: &str| !p.is_empty() && p.len() <= MAX_GROUP_PART && p.bytes().all(|b| b.is_ascii_digit());
        let ok = match (parts.next(), parts.next(), parts.next()) {
            // `120363012345678901` (current) or `<creator number>-<unix time>` (older groups).
            (Some(id), None, None) => valid_part(id),
            (Some(creator), Some(time), None) => valid_part(creator) && valid_part(time),
            _ => false,
        };
        return if ok {
            Ok(Recipient(Target::Group(format!("{local}@{GROUP_DOMAIN}"))))
        } else {
            Err(PhoneError::InvalidGroup)
        };
    }
    let shown: String = domain.chars().take(40).collect();
    Err(PhoneError::UnsupportedDomain(shown))
}

fn char_error(c: char) -> PhoneError {
    if c.is_alphabetic() {
        PhoneError::Letters
    } else {
        PhoneError::InvalidCharacter(c)
    }
}

/// Written number to E.164 digits (see the module docs for the rules).
fn normalize_number(input: &str, default_country_code: &str) -> Result<String, PhoneError> {
    let mut digits = String::with_capacity(input.len());
    let mut plus = false;
    for c in input.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if !plus && digits.is_empty() => plus = true,
            '+' => return Err(PhoneError::MisplacedPlus),
            '-' | '.' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            c => return Err(char_error(c)),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(national) = digits.strip_prefix('0') {
        let cc = country_code(default_country_code)?;
        format!("{cc}{national}")
    } else {
        digits
    };
    if international.starts_with('0') {
        return Err(PhoneError::CountryCodeZero);
    }
    check_digits(international)
}

fn country_code(cc: &str) -> Result<&str, PhoneError> {
    let cc = cc.trim();
    let cc = cc.strip_prefix('+').unwrap_or(cc);
    if cc.is_empty() || cc.len() > 4 || cc.starts_with('0') || !cc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::InvalidCountryCode(cc.chars().take(8).collect()));
    }
    Ok(cc)
}

fn check_digits(digits: String) -> Result<String, PhoneError> {
    if digits.starts_with('0') {
        return Err(PhoneError::CountryCodeZero);
    }
    match digits.len() {
        n if n < MIN_DIGITS => Err(PhoneError::TooShort(n)),
        n if n > MAX_DIGITS => Err(PhoneError::TooLong(n)),
        _ => Ok(digits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_chat_address_is_a_number_a_group_or_a_lid() {
        let jid = |s: &str| ChatAddress::parse(s, "62").map(|c| (c.jid(), c.is_group()));
        assert_eq!(jid("0812-3456-7890"), Ok(("6281234567890@s.whatsapp.net".into(), false)));
        assert_eq!(jid("6281234567890@c.us"), Ok(("6281234567890@s.whatsapp.net".into(), false)));
        assert_eq!(jid("120363012345678901@g.us"), Ok(("120363012345678901@g.us".into(), true)));
        assert_eq!(jid("12345678901234:3@lid"), Ok(("12345678901234@lid".into(), false)));
        // Bare digits are a number, not a LID.
        assert_eq!(jid("12345678901234"), Ok(("12345678901234@s.whatsapp.net".into(), false)));
        assert_eq!(jid("abc@lid"), Err(PhoneError::UnsupportedDomain("lid".into())));
        assert_eq!(jid("x@g.us"), Err(PhoneError::InvalidGroup));
    }

    #[test]
    fn lids_are_written_as_their_jid() {
        assert_eq!(lid_jid("123456789012345").as_deref(), Some("123456789012345@lid"));
        assert_eq!(lid_jid(" 123456789012345@lid ").as_deref(), Some("123456789012345@lid"));
        assert_eq!(lid_jid("123456789012345:7@lid").as_deref(), Some("123456789012345@lid"));
        for bad in ["", "@lid", "12a@lid", "6281234567890@s.whatsapp.net", "1234567890123456789012345"] {
            assert_eq!(lid_jid(bad), None, "{bad:?}");
        }
        assert!(is_lid("1@lid") && !is_lid("62812@s.whatsapp.net") && !is_lid("62812"));
    }

    fn digits(input: &str) -> Result<String, PhoneError> {
        Recipient::parse(input, "62").map(|r| r.as_str().to_string())
    }

    #[test]
    fn the_ways_people_write_numbers_all_parse_to_e164_digits() {
        let want = "6281234567890";
        for input in [
            "6281234567890",
            "+62 812-3456-7890",
            "(0812) 3456 7890",
            "081234567890",
            "0812.3456.7890",
            "006281234567890",
            "  +62 (812) 3456.7890 ",
            "6281234567890@s.whatsapp.net",
            "6281234567890@c.us",
            "6281234567890@S.WhatsApp.Net",
        ] {
            assert_eq!(digits(input).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(digits("+1 (555) 123-4567").as_deref(), Ok("15551234567"));
        assert_eq!(Recipient::parse("0555 123 4567", "1").unwrap().as_str(), "15551234567");
    }

    #[test]
    fn groups_keep_their_jid_and_have_no_number() {
        for jid in ["120363012345678901@g.us", "6281234567890-1600000000@g.us"] {
            let r = Recipient::parse(jid, "62").unwrap();
            assert!(r.is_group());
            assert_eq!(r.number(), None);
            assert_eq!(r.jid(), jid);
            assert_eq!(r.to_string(), jid);
        }
        let person = Recipient::parse("081234567890", "62").unwrap();
        assert!(!person.is_group());
        assert_eq!(person.number(), Some("6281234567890"));
        assert_eq!(person.jid(), "6281234567890@s.whatsapp.net");
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert_eq!(digits(""), Err(PhoneError::Empty));
        assert_eq!(digits("  "), Err(PhoneError::Empty));
        assert_eq!(digits("+ - ()"), Err(PhoneError::Empty));
        assert_eq!(digits("0812abc4567"), Err(PhoneError::Letters));
        assert_eq!(digits("0812#4567"), Err(PhoneError::InvalidCharacter('#')));
        assert_eq!(digits("62+81234567890"), Err(PhoneError::MisplacedPlus));
        assert_eq!(digits("++6281234567890"), Err(PhoneError::MisplacedPlus));
        assert_eq!(digits("081234"), Err(PhoneError::TooShort(7)));
        assert_eq!(digits("+1234567890123456"), Err(PhoneError::TooLong(16)));
        assert_eq!(digits("+0812345678"), Err(PhoneError::CountryCodeZero));
        assert_eq!(digits("000812345678"), Err(PhoneError::CountryCodeZero));
        assert_eq!(digits("62812@lid"), Err(PhoneError::UnsupportedDomain("lid".into())));
        assert_eq!(digits("a@example.com"), Err(PhoneError::UnsupportedDomain("example.com".into())));
        assert_eq!(digits("0812 3456@s.whatsapp.net"), Err(PhoneError::InvalidCharacter(' ')));
        assert_eq!(digits("@s.whatsapp.net"), Err(PhoneError::Empty));
        assert_eq!(digits("abc@c.us"), Err(PhoneError::Letters));
        for bad in ["@g.us", "12-@g.us", "1-2-3@g.us", "abc@g.us"] {
            assert_eq!(digits(bad), Err(PhoneError::InvalidGroup), "{bad}");
        }
        assert_eq!(Recipient::parse("0812345678", "0x"), Err(PhoneError::InvalidCountryCode("0x".into())));
        assert!(PhoneError::TooShort(5).to_string().contains("at least 8"));
    }

    #[test]
    fn device_numbers_are_numbers_only() {
        assert_eq!(normalize_device_phone("0812-3456-7890", "62").as_deref(), Ok("6281234567890"));
        assert_eq!(normalize_device_phone("120363012345678901@g.us", "62"), Err(PhoneError::GroupNotAllowed));
        assert_eq!(normalize_device_phone("", "62"), Err(PhoneError::Empty));
    }

    /// A valid international number (country code 1-3 digits, 8-15 digits in all).
    fn valid_number() -> impl Strategy<Value = String> {
        ("[1-9][0-9]{0,2}", "[1-9][0-9]{6,11}")
            .prop_map(|(cc, rest)| format!("{cc}{rest}"))
            .prop_filter("E.164 length", |n| (MIN_DIGITS..=MAX_DIGITS).contains(&n.len()))
    }

    /// Writes `digits` the way a person might: separators between digits, maybe a `+`.
    fn formatted(digits: String) -> impl Strategy<Value = (String, String)> {
        let n = digits.len();
        (
            proptest::collection::vec(
                proptest::sample::select(vec!["", " ", "-", ".", "(", ")", " - ", ") "]),
                n,
            ),
            any::<bool>(),
            "[ ]{0,2}",
        )
            .prop_map(move |(seps, plus, pad)| {
                let mut s = pad.clone();
                if plus {
                    s.push('+');
                }
                for (c, sep) in digits.chars().zip(seps) {
                    s.push(c);
                    s.push_str(sep);
                }
                s.push_str(&pad);
                (s, digits.clone())
            })
    }

    proptest! {
        #[test]
        fn formatting_a_valid_number_does_not_change_its_digits(
            (written, want) in valid_number().prop_flat_map(formatted)
        ) {
            let r = Recipient::parse(&written, "62").unwrap();
            prop_assert_eq!(r.number(), Some(want.as_str()));
        }

        #[test]
        fn a_national_number_gets_the_default_country_code(
            national in "[1-9][0-9]{7,10}", cc in "[1-9][0-9]{0,2}"
        ) {
            let r = Recipient::parse(&format!("0{national}"), &cc).unwrap();
            prop_assert_eq!(r.as_str(), format!("{cc}{national}"));
        }

        #[test]
        fn parsing_is_idempotent(
            input in prop_oneof![
                "[+0-9 ()\\-.@a-z]{0,30}",
                "[+0]?[0-9 ]{6,18}",
                "[0-9]{6,18}(-[0-9]{1,10})?@(g\\.us|c\\.us|s\\.whatsapp\\.net)",
            ],
            cc in "[0-9]{0,4}",
        ) {
            if let Ok(r) = Recipient::parse(&input, &cc) {
                prop_assert_eq!(Recipient::parse(r.as_str(), &cc), Ok(r.clone()));
                prop_assert_eq!(Recipient::parse(&r.jid(), &cc), Ok(r));
            }
        }

        #[test]
        fn no_input_panics(input in any::<String>(), cc in any::<String>()) {
            let _ = Recipient::parse(&input, &cc);
            let _ = normalize_device_phone(&input, &cc);
        }
    }
}
