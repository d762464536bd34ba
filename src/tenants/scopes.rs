//! What an API key may do: `read` (history, lists, media, the account), `send` (sending and
//! acting on messages), `manage` (devices, groups, contacts' blocking, rules, schedules,
//! webhooks, plugins, keys). Which one a request needs is the API's to say
//! (`api::scopes::required`).

use std::fmt;

/// One thing a key may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Send,
    Manage,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Send, Scope::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Send => "send",
            Scope::Manage => "manage",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The scopes of a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope: keys made before scopes existed, the dashboard's own requests.
    pub const ALL: Scopes = Scopes(0b111);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `other` is one of these.
    pub fn covers(self, other: Scopes) -> bool {
        other.0 & !self.0 == 0
    }

    /// Exactly these scopes.
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// The scopes named in `names`; the first unknown name is the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut bits = 0;
        for name in names {
            bits |= Scope::parse(name.trim()).ok_or_else(|| name.to_string())?.bit();
        }
        Ok(Scopes(bits))
    }

    /// As stored: a JSON array of names. Unreadable or empty text counts as every scope, the
    /// meaning of the column's default.
    pub fn from_stored(json: &str) -> Scopes {
        match serde_json::from_str::<Vec<String>>(json) {
            Ok(names) if !names.is_empty() => {
                Scopes::parse(names.iter().map(String::as_str)).unwrap_or(Scopes(0))
            }
            _ => Scopes::ALL,
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL.into_iter().filter(|s| self.contains(*s)).map(Scope::as_str).collect()
    }

    pub fn to_stored(self) -> String {
        serde_json::to_string(&self.names()).unwrap_or_else(|_| "[]".into())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_names_are_named() {
        let s = Scopes::parse(["read", "send"]).unwrap();
        assert!(s.contains(Scope::Read) && s.contains(Scope::Send) && !s.contains(Scope::Manage));
        assert_eq!(Scopes::from_stored(&s.to_stored()), s);
        assert_eq!(Scopes::from_stored(""), Scopes::ALL);
        assert_eq!(Scopes::parse(["read", "admin"]).unwrap_err(), "admin");
        assert!(Scopes::ALL.covers(s) && !s.covers(Scopes::ALL));
    }
}
