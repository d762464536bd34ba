//! WhatsApp groups as the driver seam describes them: a group's metadata and members, the
//! changes a device can make, what happened to each participant of a change, and the group
//! events WhatsApp reports (the device joined or left, members changed, settings changed).
//!
//! Participants are named by phone number where one is known and by LID otherwise; both
//! drivers fill in what WhatsApp told them.

pub mod service;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest group subject WhatsApp accepts, in characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// Longest group description WhatsApp accepts, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
/// Most participants one request may name (WhatsApp's groups hold up to 1024 members).
pub const MAX_PARTICIPANTS_PER_REQUEST: usize = 256;

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    /// The group's creator (an admin nobody can demote).
    Superadmin,
}

impl Role {
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Admin | Role::Superadmin)
    }
}

/// One group member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The phone number (digits), when known.
    pub phone: Option<String>,
    /// The LID JID (`…@lid`), when WhatsApp addressed the member by it.
    pub lid: Option<String>,
    pub role: Role,
}

impl Participant {
    /// The phone number, or the LID when no number is known.
    pub fn id(&self) -> &str {
        self.phone.as_deref().or(self.lid.as_deref()).unwrap_or_default()
    }

    /// Whether `who` (digits or a LID JID) names this member.
    pub fn is(&self, who: &str) -> bool {
        self.phone.as_deref() == Some(who) || self.lid.as_deref() == Some(who)
    }
}

/// Who may add members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberAddMode {
    /// Only admins add members.
    Admins,
    /// Every member may add members.
    AllMembers,
}

/// A group's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupSettings {
    /// Only admins may send messages.
    pub announce: bool,
    /// Only admins may change the subject, description and settings.
    pub locked: bool,
    pub member_add_mode: MemberAddMode,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings { announce: false, locked: false, member_add_mode: MemberAddMode::AllMembers }
    }
}

/// A group's metadata as WhatsApp answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group JID (`…@g.us`).
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    /// The creator's phone number (or LID).
    pub owner: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub settings: GroupSettings,
    pub participants: Vec<Participant>,
}

impl GroupInfo {
    /// Whether the account `me` (digits, or its LID) is an admin of the group.
    pub fn is_admin(&self, me: &[&str]) -> bool {
        self.participants.iter().any(|p| p.role.is_admin() && me.iter().any(|m| p.is(m)))
    }
}

/// A change to a group's subject, description or settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `Some("")` deletes the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_add_mode: Option<MemberAddMode>,
}

impl GroupChange {
    pub fn is_empty(&self) -> bool {
        *self == GroupChange::default()
    }

    /// Applies the change to cached metadata.
    pub fn apply(&self, info: &mut GroupInfo) {
        if let Some(s) = &self.subject {
            info.subject = s.clone();
        }
        if let Some(d) = &self.description {
            info.description = Some(d.clone()).filter(|d| !d.is_empty());
        }
        if let Some(a) = self.announce {
            info.settings.announce = a;
        }
        if let Some(l) = self.locked {
            info.settings.locked = l;
        }
        if let Some(m) = self.member_add_mode {
            info.settings.member_add_mode = m;
        }
    }
}

/// What to do to participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
}

impl ParticipantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantAction::Add => "add",
            ParticipantAction::Remove => "remove",
            ParticipantAction::Promote => "promote",
            ParticipantAction::Demote => "demote",
        }
    }

    /// Applies an accepted change of `who` (digits or LID JIDs) to cached members.
    pub fn apply(self, participants: &mut Vec<Participant>, who: &[Participant]) {
        for p in who {
            let existing = participants.iter().position(|m| m.is(p.id()));
            match (self, existing) {
                (ParticipantAction::Add, None) => {
                    participants.push(Participant { role: Role::Member, ..p.clone() })
                }
                (ParticipantAction::Remove, Some(i)) => {
                    participants.remove(i);
                }
                (ParticipantAction::Promote, Some(i)) => participants[i].role = Role::Admin,
                (ParticipantAction::Demote, Some(i)) => participants[i].role = Role::Member,
                _ => {}
            }
        }
    }
}

/// What happened to one participant of a change: `status` is WhatsApp's code (200 done,
/// 403 not allowed (e.g. their privacy settings), 404 not on WhatsApp or not a member, 408
/// they left recently, 409 already a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantOutcome {
    pub participant: Participant,
    pub status: u16,
}

impl ParticipantOutcome {
    pub fn ok(&self) -> bool {
        self.status == 200
    }
}

/// Something that happened to a group the device is in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupEvent {
    /// The group JID.
    pub group: String,
    /// The member who did it (number or LID), when WhatsApp names one.
    pub by: Option<String>,
    pub kind: GroupEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "data")]
pub enum GroupEventKind {
    /// The device was added to a group or created one; its metadata when known.
    Joined(Option<GroupInfo>),
    /// The device left or was removed.
    Left,
    /// Members were added, removed, promoted or demoted.
    Participants { action: ParticipantAction, participants: Vec<Participant> },
    /// The subject, description or settings changed.
    Updated(GroupChange),
}

/// The code of an invite link: the part after `https://chat.whatsapp.com/`, or the link
/// itself. `None` when it is not one (codes are 10 to 64 letters and digits).
pub fn invite_code(input: &str) -> Option<String> {
    let input = input.trim();
    let code = input
        .strip_prefix("https://chat.whatsapp.com/")
        .or_else(|| input.strip_prefix("http://chat.whatsapp.com/"))
        .or_else(|| input.strip_prefix("chat.whatsapp.com/"))
        .unwrap_or(input);
    let code = code.strip_prefix("invite/").unwrap_or(code).trim_end_matches('/');
    ((10..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

/// The invite link of a code.
pub fn invite_link(code: &str) -> String {
    format!("https://chat.whatsapp.com/{code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_links_and_codes_are_read_alike() {
        let code = "AbCdEfGhIj0123456789ab";
        for given in [code.to_string(), invite_link(code), format!("{}/", invite_link(code))] {
            assert_eq!(invite_code(&given).as_deref(), Some(code), "{given}");
        }
        for bad in ["", "short", "https://example.com/AbCdEfGhIj01", "AbCdEf GhIj0123", "a/b/c/d/e/f/g/h"] {
            assert_eq!(invite_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn participant_changes_apply_to_the_cached_members() {
        let member = |phone: &str, role| Participant { phone: Some(phone.into()), lid: None, role };
        let mut members = vec![member("6281", Role::Superadmin), member("6282", Role::Member)];
        ParticipantAction::Add
            .apply(&mut members, &[member("6283", Role::Admin), member("6282", Role::Member)]);
        assert_eq!(members.len(), 3);
        assert_eq!(members[2].role, Role::Member, "an added member starts as a member");
        ParticipantAction::Promote.apply(&mut members, &[member("6283", Role::Member)]);
        assert_eq!(members[2].role, Role::Admin);
        ParticipantAction::Remove.apply(&mut members, &[member("6282", Role::Member)]);
        assert_eq!(members.iter().map(|m| m.id()).collect::<Vec<_>>(), ["6281", "6283"]);
        ParticipantAction::Demote.apply(&mut members, &[member("6283", Role::Admin)]);
        assert_eq!(members[1].role, Role::Member);
    }
}
