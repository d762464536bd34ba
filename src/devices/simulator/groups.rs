//! Groups on the simulated network: one registry shared by every simulated device, changed by
//! the devices' sessions (create, change, participants, invite, join, leave) and by the
//! simulator's control calls (a contact creates a group, members come and go, a member changes
//! the subject). Every change is reported as a `DriverEvent::Group` to each connected device
//! whose account is a member before or after it, as WhatsApp notifies every member.
//!
//! The simulated rules: a number is on WhatsApp unless it ends in `0000` (as `check_numbers`
//! answers); only admins change a locked group's settings, add members in an admins-only
//! group, remove, promote or demote; the creator is the superadmin.

use chrono::Utc;
use rand::Rng;

use super::{phone_digits, Inner, SimError, Simulator};
use crate::devices::driver::DriverEvent;
use crate::devices::groups::{
    GroupChange, GroupEvent, GroupEventKind, GroupInfo, GroupSettings, MemberAddMode, Participant,
    ParticipantAction, ParticipantOutcome, Role, MAX_SUBJECT_CHARS,
};

/// A group on the simulated network.
#[derive(Debug, Clone)]
pub(super) struct SimGroup {
    pub info: GroupInfo,
    pub invite: String,
}

impl SimGroup {
    fn role_of(&self, phone: &str) -> Option<Role> {
        self.info.participants.iter().find(|p| p.is(phone)).map(|p| p.role)
    }
}

/// Why a group operation was refused, in the driver's terms.
#[derive(Debug)]
pub(super) enum GroupRefusal {
    NotFound(String),
    Forbidden(String),
    Invalid(String),
}

impl From<GroupRefusal> for SimError {
    fn from(r: GroupRefusal) -> Self {
        match r {
            GroupRefusal::NotFound(m) | GroupRefusal::Forbidden(m) | GroupRefusal::Invalid(m) => {
                SimError::Invalid(m)
            }
        }
    }
}

fn on_whatsapp(phone: &str) -> bool {
    !phone.ends_with("0000")
}

fn member(phone: &str, role: Role) -> Participant {
    Participant { phone: Some(phone.to_string()), lid: None, role }
}

fn new_group_jid() -> String {
    format!("120363{:012}@g.us", rand::thread_rng().gen_range(0..1_000_000_000_000u64))
}

fn new_invite_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..22).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// The digits of a user JID (`<digits>@s.whatsapp.net`) or of a bare number.
fn user_digits(jid: &str) -> Option<String> {
    phone_digits(jid.strip_suffix("@s.whatsapp.net").unwrap_or(jid))
}

impl Inner {
    fn groups(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, SimGroup>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every connected device whose account is in `audience` about `event`; a device
    /// named in `joined` gets `Joined` with the group's metadata, one in `left` gets `Left`.
    fn notify(&self, audience: &[String], event: GroupEvent, joined: &[String], left: &[String]) {
        let info = self.groups().get(&event.group).map(|g| g.info.clone());
        let devices = self.lock();
        for device in devices.values() {
            let Some(live) = device.live.as_ref().filter(|l| l.is_connected()) else { continue };
            if !audience.contains(&live.phone) {
                continue;
            }
            let kind = if joined.contains(&live.phone) {
                GroupEventKind::Joined(info.clone())
            } else if left.contains(&live.phone) {
                GroupEventKind::Left
            } else {
                event.kind.clone()
            };
            live.emit(DriverEvent::Group(GroupEvent { kind, ..event.clone() }));
        }
    }

    /// The groups `me` is in.
    pub(super) fn groups_of(&self, me: &str) -> Vec<GroupInfo> {
        let mut groups: Vec<GroupInfo> =
            self.groups().values().filter(|g| g.role_of(me).is_some()).map(|g| g.info.clone()).collect();
        groups.sort_by(|a, b| a.jid.cmp(&b.jid));
        groups
    }

    /// One group, if `me` is in it.
    pub(super) fn group_of(&self, me: &str, jid: &str) -> Result<GroupInfo, GroupRefusal> {
        self.groups()
            .get(jid)
            .filter(|g| g.role_of(me).is_some())
            .map(|g| g.info.clone())
            .ok_or_else(|| GroupRefusal::NotFound(format!("no group {jid} with this device in it")))
    }

    /// `creator` creates a group of itself and `others` (digits); answers its metadata and
    /// what happened to each of the others.
    pub(super) fn create_group(
        &self,
        creator: &str,
        subject: &str,
        others: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), GroupRefusal> {
        let subject = subject.trim();
        if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(GroupRefusal::Invalid(format!(
                "the subject must be 1 to {MAX_SUBJECT_CHARS} characters"
            )));
        }
        let mut participants = vec![member(creator, Role::Superadmin)];
        let mut outcomes = Vec::new();
        for phone in others {
            let status = if !on_whatsapp(phone) {
                404
            } else if participants.iter().any(|p| p.is(phone)) {
                409
            } else {
                participants.push(member(phone, Role::Member));
                200
            };
            outcomes.push(ParticipantOutcome { participant: member(phone, Role::Member), status });
        }
        let info = GroupInfo {
            jid: new_group_jid(),
            subject: subject.to_string(),
            description: None,
            owner: Some(creator.to_string()),
            created_at: Some(Utc::now()),
            settings: GroupSettings::default(),
            participants,
        };
        self.groups().insert(info.jid.clone(), SimGroup { info: info.clone(), invite: new_invite_code() });
        let audience: Vec<String> = info.participants.iter().map(|p| p.id().to_string()).collect();
        // Every member is new: each member device hears `Joined`.
        let event = GroupEvent {
            group: info.jid.clone(),
            by: Some(creator.to_string()),
            kind: GroupEventKind::Joined(None),
        };
        self.notify(&audience, event, &audience, &[]);
        Ok((info, outcomes))
    }

    /// `by` changes a group's subject, description or settings.
    pub(super) fn update_group(&self, by: &str, jid: &str, change: &GroupChange) -> Result<(), GroupRefusal> {
        let audience = {
            let mut groups = self.groups();
            let group = groups
                .get_mut(jid)
                .filter(|g| g.role_of(by).is_some())
                .ok_or_else(|| GroupRefusal::NotFound(format!("no group {jid} with this member in it")))?;
            let admin = group.role_of(by).is_some_and(Role::is_admin);
            let settings =
                change.announce.is_some() || change.locked.is_some() || change.member_add_mode.is_some();
            if (settings || group.info.settings.locked) && !admin {
                return Err(GroupRefusal::Forbidden("only a group admin may change this".into()));
            }
            change.apply(&mut group.info);
            group.info.participants.iter().map(|p| p.id().to_string()).collect::<Vec<_>>()
        };
        let event = GroupEvent {
            group: jid.to_string(),
            by: Some(by.to_string()),
            kind: GroupEventKind::Updated(change.clone()),
        };
        self.notify(&audience, event, &[], &[]);
        Ok(())
    }

    /// `by` adds, removes, promotes or demotes `who` (digits). A member removing itself
    /// leaves; anything else needs an admin, except adding in a group where all members may.
    pub(super) fn change_participants(
        &self,
        by: &str,
        jid: &str,
        action: ParticipantAction,
        who: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupRefusal> {
        let (outcomes, before, after) = {
            let mut groups = self.groups();
            let group = groups
                .get_mut(jid)
                .filter(|g| g.role_of(by).is_some())
                .ok_or_else(|| GroupRefusal::NotFound(format!("no group {jid} with this member in it")))?;
            let admin = group.role_of(by).is_some_and(Role::is_admin);
            let leaving = action == ParticipantAction::Remove && who.len() == 1 && who[0] == by;
            let allowed = admin
                || leaving
                || (action == ParticipantAction::Add
                    && group.info.settings.member_add_mode == MemberAddMode::AllMembers);
            if !allowed {
                return Err(GroupRefusal::Forbidden("only a group admin may do this".into()));
            }
            let before: Vec<String> = group.info.participants.iter().map(|p| p.id().to_string()).collect();
            let mut outcomes = Vec::new();
            for phone in who {
                let present = group.role_of(phone);
                let status = match (action, present) {
                    (ParticipantAction::Add, _) if !on_whatsapp(phone) => 404,
                    (ParticipantAction::Add, Some(_)) => 409,
                    (ParticipantAction::Add, None) => 200,
                    (_, None) => 404,
                    (ParticipantAction::Remove | ParticipantAction::Demote, Some(Role::Superadmin))
                        if phone != by =>
                    {
                        403
                    }
                    _ => 200,
                };
                let participant = member(phone, present.unwrap_or(Role::Member));
                if status == 200 {
                    action.apply(&mut group.info.participants, std::slice::from_ref(&participant));
                }
                outcomes.push(ParticipantOutcome { participant, status });
            }
            let after: Vec<String> = group.info.participants.iter().map(|p| p.id().to_string()).collect();
            (outcomes, before, after)
        };
        let changed: Vec<Participant> =
            outcomes.iter().filter(|o| o.ok()).map(|o| o.participant.clone()).collect();
        if !changed.is_empty() {
            let mut audience = before.clone();
            audience.extend(after.iter().filter(|a| !before.contains(a)).cloned());
            let joined: Vec<String> = after.iter().filter(|a| !before.contains(a)).cloned().collect();
            let left: Vec<String> = before.iter().filter(|b| !after.contains(b)).cloned().collect();
            let event = GroupEvent {
                group: jid.to_string(),
                by: Some(by.to_string()),
                kind: GroupEventKind::Participants { action, participants: changed },
            };
            self.notify(&audience, event, &joined, &left);
        }
        if action == ParticipantAction::Remove && after.is_empty() {
            self.groups().remove(jid);
        }
        Ok(outcomes)
    }

    /// The group's invite code (a new one when `reset`); admins only.
    pub(super) fn group_invite(&self, by: &str, jid: &str, reset: bool) -> Result<String, GroupRefusal> {
        let mut groups = self.groups();
        let group = groups
            .get_mut(jid)
            .filter(|g| g.role_of(by).is_some())
            .ok_or_else(|| GroupRefusal::NotFound(format!("no group {jid} with this device in it")))?;
        if !group.role_of(by).is_some_and(Role::is_admin) {
            return Err(GroupRefusal::Forbidden(
                "only a group admin may see or reset the invite link".into(),
            ));
        }
        if reset {
            group.invite = new_invite_code();
        }
        Ok(group.invite.clone())
    }

    /// `who` joins the group behind an invite code; answers its JID.
    pub(super) fn join_group(&self, who: &str, code: &str) -> Result<String, GroupRefusal> {
        let jid = self.groups().values().find(|g| g.invite == code).map(|g| g.info.jid.clone()).ok_or_else(
            || GroupRefusal::NotFound("no group has this invite link (revoked or mistyped)".into()),
        )?;
        let already = self.groups().get(&jid).is_some_and(|g| g.role_of(who).is_some());
        if !already {
            self.join(who, &jid);
        }
        Ok(jid)
    }

    /// Adds `who` to `jid` as the group's own doing (an invite link), and tells the members.
    fn join(&self, who: &str, jid: &str) {
        let before = {
            let mut groups = self.groups();
            let Some(group) = groups.get_mut(jid) else { return };
            let before: Vec<String> = group.info.participants.iter().map(|p| p.id().to_string()).collect();
            group.info.participants.push(member(who, Role::Member));
            before
        };
        let mut audience = before;
        audience.push(who.to_string());
        let event = GroupEvent {
            group: jid.to_string(),
            by: Some(who.to_string()),
            kind: GroupEventKind::Participants {
                action: ParticipantAction::Add,
                participants: vec![member(who, Role::Member)],
            },
        };
        self.notify(&audience, event, &[who.to_string()], &[]);
    }
}

impl Simulator {
    /// A contact `creator` (digits) creates a group with `members` (digits; the devices'
    /// numbers among them join it). Answers the group's JID.
    pub fn create_group(&self, creator: &str, subject: &str, members: &[String]) -> Result<String, SimError> {
        let creator = phone_digits(creator)
            .ok_or_else(|| SimError::Invalid("`creator` must be a phone number of 8 to 15 digits".into()))?;
        let members = digits_of(members, "members")?;
        let (info, _) = self.inner.create_group(&creator, subject, &members)?;
        Ok(info.jid)
    }

    /// Member `by` (digits) adds, removes, promotes or demotes `who` (digits) in a group;
    /// `by` removing itself leaves. Answers what happened to each.
    pub fn group_participants(
        &self,
        group: &str,
        by: &str,
        action: ParticipantAction,
        who: &[String],
    ) -> Result<Vec<ParticipantOutcome>, SimError> {
        let by = phone_digits(by)
            .ok_or_else(|| SimError::Invalid("`by` must be a phone number of 8 to 15 digits".into()))?;
        let who = digits_of(who, "participants")?;
        let jid = super::group_jid(group)?;
        Ok(self.inner.change_participants(&by, &jid, action, &who)?)
    }

    /// Member `by` (digits) changes a group's subject, description or settings.
    pub fn update_group(&self, group: &str, by: &str, change: &GroupChange) -> Result<(), SimError> {
        let by = phone_digits(by)
            .ok_or_else(|| SimError::Invalid("`by` must be a phone number of 8 to 15 digits".into()))?;
        let jid = super::group_jid(group)?;
        Ok(self.inner.update_group(&by, &jid, change)?)
    }
}

/// Phone numbers to digits, or an error naming `field`.
fn digits_of(numbers: &[String], field: &str) -> Result<Vec<String>, SimError> {
    numbers
        .iter()
        .map(|n| {
            user_digits(n).ok_or_else(|| SimError::Invalid(format!("`{field}`: {n:?} is not a phone number")))
        })
        .collect()
}

/// The digits behind user JIDs a session was given.
pub(super) fn jid_digits(jids: &[String]) -> Result<Vec<String>, String> {
    jids.iter().map(|j| user_digits(j).ok_or_else(|| format!("{j:?} is not a phone number's JID"))).collect()
}
