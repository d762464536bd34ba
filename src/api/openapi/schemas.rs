//! Field schemas the derives cannot write from a type and literal attributes: a field that takes
//! a string or a number, a pattern built from constants, a map keyed by the known limits. Used
//! as `#[schema(value_type = …)]` (the named ones), `#[schema(schema_with = …)]` and
//! `#[param(schema_with = …)]`.

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{KnownFormat, RefOr};

use crate::limits::Resource;
use crate::phone::{MAX_DIGITS, MIN_DIGITS};

/// Rust's `char::is_whitespace`, as a regex class body (see [`super::NOT_BLANK`]).
const SPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The canonical ways to write a phone number: international digits (a leading `+` allowed)
/// or a user JID. The server also takes separators, `00…` and national `0…` numbers; this is
/// the form every client can rely on.
fn phone_pattern() -> String {
    let digits = format!("[1-9][0-9]{{{},{}}}", MIN_DIGITS - 1, MAX_DIGITS - 1);
    format!(r"^(\+?{digits}|{digits}@(s\.whatsapp\.net|c\.us))$")
}

/// A phone number, or a group JID (`<digits>@g.us`, `<creator>-<time>@g.us`).
fn recipient_pattern() -> String {
    let phone = phone_pattern();
    let phone = phone.trim_start_matches('^').trim_end_matches('$');
    format!(r"^({phone}|[0-9]{{1,32}}(-[0-9]{{1,32}})?@g\.us)$")
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A phone number as a JSON number: 8 to 15 digits.
fn phone_number() -> ObjectBuilder {
    let low = 10_i64.pow(MIN_DIGITS as u32 - 1);
    let high = 10_i64.pow(MAX_DIGITS as u32) - 1;
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(low)).maximum(Some(high))
}

fn either(first: ObjectBuilder, second: ObjectBuilder, description: &str) -> Schema {
    OneOfBuilder::new().item(first).item(second).description(Some(description)).into()
}

/// Named schemas for fields that take a string or a number. A field names one with
/// `#[schema(value_type = …)]`, which keeps the field's own description (`schema_with` would
/// drop it).
macro_rules! named_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

named_schema! {
    /// The phone number of a WhatsApp account, as a string or a number.
    PhoneNumber => either(
        string().pattern(Some(phone_pattern())),
        phone_number(),
        "A phone number with its country code (`6281234567890`, `+6281234567890`) or a user \
         JID. Separators, `00…` and national `0…` numbers (with the configured country code) \
         are accepted too.",
    )
}

named_schema! {
    /// A message recipient: a phone number, or a group JID.
    Recipient => either(
        string().pattern(Some(recipient_pattern())),
        phone_number(),
        "A phone number with its country code (`6281234567890`, `+62…`; separators, `00…` and \
         national `0…` numbers are accepted too), a user JID, or a group id ending `@g.us`.",
    )
}

named_schema! {
    /// One of the tenant's devices, by id or phone number (404 when there is no such device).
    DeviceRef => either(
        string(),
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u64::MAX)),
        "A device: its id or its phone number.",
    )
}

named_schema! {
    /// A message to quote: the gateway's message id, or a WhatsApp message id.
    MessageRef => either(
        string().pattern(Some(r"^[!-~]{1,128}$".to_string())),
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u64::MAX)),
        "The gateway's id of a message in the same chat, or a WhatsApp message id (1 to 128 \
         visible ASCII characters).",
    )
}

/// A message's sender as a filter: a phone number or a LID (`<digits>@lid`).
pub fn sender_text() -> Object {
    let phone = phone_pattern();
    let phone = phone.trim_start_matches('^').trim_end_matches('$');
    string()
        .pattern(Some(format!(r"^({phone}|[0-9]{{1,32}}@lid)$")))
        .description(Some("A phone number with its country code, or a LID (`…@lid`)."))
        .build()
}

/// A recipient as text (a form field or a query parameter): a phone number or a group id.
pub fn recipient_text() -> Object {
    string()
        .pattern(Some(recipient_pattern()))
        .description(Some("A phone number with its country code, or a group id (`…@g.us`)."))
        .build()
}

/// A chat: a phone number, a user JID, a LID (`…@lid`) or a group id.
pub fn chat_text() -> Object {
    let recipient = recipient_pattern();
    let recipient = recipient.trim_start_matches('^').trim_end_matches('$');
    string()
        .pattern(Some(format!(r"^({recipient}|[0-9]{{1,32}}@lid)$")))
        .description(Some(
            "A phone number with its country code, a user JID, a LID (`…@lid`) or a group id (`…@g.us`).",
        ))
        .build()
}

/// A group id, with or without `@g.us`.
pub fn group_text() -> Object {
    string()
        .pattern(Some(r"^[0-9]{1,32}(-[0-9]{1,32})?(@g\.us)?$".to_string()))
        .description(Some("The group id (`120363…@g.us`, or without `@g.us`)."))
        .build()
}

/// An email address as the server checks it: no whitespace inside, one `@`, a domain with a
/// dot not at either end, at most 254 characters.
pub fn email() -> Object {
    let part = format!("[^@{SPACE}\\u0000]");
    let edge = format!("[^@.{SPACE}\\u0000]");
    string()
        .pattern(Some(format!("^[{SPACE}]*{part}+@{edge}{part}*\\.{part}*{edge}[{SPACE}]*$")))
        .max_length(Some(254))
        .description(Some("The tenant's email address (dashboard login); stored in lower case."))
        .build()
}

/// A time filter: an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
fn time_filter(description: &str) -> Schema {
    AnyOfBuilder::new()
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .description(Some(description))
        .into()
}

/// The start of a time range, included.
pub fn since() -> Schema {
    time_filter("From this RFC 3339 time or date (`2026-11-25`, midnight UTC), included.")
}

/// The end of a time range, left out.
pub fn until() -> Schema {
    time_filter("Before this RFC 3339 time or date (`2026-11-25`, midnight UTC).")
}

/// Per-tenant limit overrides, one key per known limit: a number sets the limit, `null` makes
/// it unlimited, `"package"` goes back to the package's value. Keys left out do not change.
pub fn limit_overrides() -> Object {
    // `null`, like leaving it out, changes no override.
    let mut map = ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(
            "Limit overrides merged into the stored ones: a number sets a limit, `null` makes it \
             unlimited, and `\"package\"` goes back to the package's value.",
        ));
    for resource in Resource::ALL {
        let value = OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(i64::MAX)))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(string().enum_values(Some(["package"])));
        map = map.property(resource.name(), value);
    }
    map.build()
}
