//! What an API key may do: `read` (history, lists, media, the account), `send` (sending and
//! acting on messages), `manage` (devices, groups, contacts' blocking, rules, schedules,
//! webhooks, plugins, keys). Which one a request needs is the API's to say
//! (`api::scopes::required`). A key may also be limited to some of the tenant's devices
//! ([`Devices`]).

use std::fmt;
use std::sync::Arc;

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

    /// As stored: a JSON array of names. Text that cannot be read grants nothing.
    pub fn from_stored(json: &str) -> Scopes {
        serde_json::from_str::<Vec<String>>(json)
            .ok()
            .and_then(|names| Scopes::parse(names.iter().map(String::as_str)).ok())
            .unwrap_or(Scopes(0))
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

/// The devices a key may see and act through. A device outside them is not found, as another
/// tenant's is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Devices {
    /// Every device of the tenant, present and future: keys made without a limit, the
    /// dashboard.
    #[default]
    All,
    /// Only these device ids. Ids are never reused, so a deleted device's id that stays here
    /// grants nothing, and a key whose devices were all deleted sees none rather than all.
    Only(Arc<[i64]>),
}

impl Devices {
    /// Limited to exactly these ids.
    pub fn only(ids: impl IntoIterator<Item = i64>) -> Devices {
        let mut ids: Vec<i64> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        Devices::Only(ids.into())
    }

    pub fn allows(&self, device: i64) -> bool {
        match self {
            Devices::All => true,
            Devices::Only(ids) => ids.binary_search(&device).is_ok(),
        }
    }

    /// The ids when limited; `None` for every device.
    pub fn ids(&self) -> Option<&[i64]> {
        match self {
            Devices::All => None,
            Devices::Only(ids) => Some(ids),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Devices::All)
    }

    /// Whether every device `other` allows is one of these.
    pub fn covers(&self, other: &Devices) -> bool {
        match (self, other) {
            (Devices::All, _) => true,
            (Devices::Only(_), Devices::All) => false,
            (Devices::Only(_), Devices::Only(theirs)) => theirs.iter().all(|id| self.allows(*id)),
        }
    }

    /// As stored: NULL for every device, else a JSON array of ids. Text that cannot be read
    /// allows no device.
    pub fn from_stored(stored: Option<&str>) -> Devices {
        match stored {
            None => Devices::All,
            Some(json) => Devices::only(serde_json::from_str::<Vec<i64>>(json).unwrap_or_default()),
        }
    }

    pub fn to_stored(&self) -> Option<String> {
        self.ids().map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
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
        assert!(Scopes::from_stored("").is_empty() && Scopes::from_stored("[\"admin\"]").is_empty());
        assert_eq!(Scopes::parse(["read", "admin"]).unwrap_err(), "admin");
        assert!(Scopes::ALL.covers(s) && !s.covers(Scopes::ALL));
    }

    #[test]
    fn a_device_limit_is_kept_and_never_widens() {
        let two = Devices::only([7, 3, 7]);
        assert_eq!(two.ids(), Some(&[3, 7][..]));
        assert!(two.allows(3) && !two.allows(4) && Devices::All.allows(4));
        assert_eq!(Devices::from_stored(two.to_stored().as_deref()), two);
        assert_eq!(Devices::from_stored(None), Devices::All);
        // Unreadable or empty: no device, never all of them.
        assert_eq!(Devices::from_stored(Some("garbage")).ids(), Some(&[][..]));
        assert_eq!(Devices::from_stored(Some("[]")).ids(), Some(&[][..]));
        assert!(Devices::All.covers(&two) && !two.covers(&Devices::All));
        assert!(two.covers(&Devices::only([3])) && !two.covers(&Devices::only([3, 4])));
    }
}
