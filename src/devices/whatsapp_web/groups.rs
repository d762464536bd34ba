//! Groups through `whatsapp-rust`: the group IQs behind the driver seam's group methods, the
//! library's group metadata as the seam's [`GroupInfo`], and its group notifications
//! (`w:gp2`) as the seam's [`GroupEvent`]s.

use chrono::{DateTime, Utc};
use whatsapp_rust::client::Client;
use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError, GroupMetadata, GroupParticipantOptions, GroupSubject,
    MemberAddMode as WaAddMode, ParticipantChangeResponse, ParticipantType, PreviousDescription,
};
use whatsapp_rust::types::events::GroupUpdate;
use whatsapp_rust::wacore::iq::groups::{GroupCreateIq, GroupInfoResponse};
use whatsapp_rust::wacore::iq::spec::IqSpec;
use whatsapp_rust::wacore::request::InfoQuery;
use whatsapp_rust::wacore::stanza::groups::{
    GroupNotificationAction, GroupParticipantInfo, GroupParticipantType,
};
use whatsapp_rust::wacore_binary::NodeRef;
use whatsapp_rust::{IqError, Jid as WaJid};

use crate::devices::driver::{
    DriverError, GroupChange, GroupEvent, GroupEventKind, GroupInfo, Jid, ParticipantAction,
    ParticipantOutcome,
};
use crate::devices::groups::{GroupSettings, MemberAddMode, Participant, Role};

fn parse_jid(jid: &str) -> Result<WaJid, DriverError> {
    jid.parse::<WaJid>().map_err(|e| DriverError::Invalid(format!("not a WhatsApp id: {jid} ({e})")))
}

fn parse_jids(jids: &[Jid]) -> Result<Vec<WaJid>, DriverError> {
    jids.iter().map(|j| parse_jid(j)).collect()
}

/// What WhatsApp's error code (and text) on an IQ (group or contact) means for the caller.
pub(super) fn refusal(code: u16, text: &str) -> DriverError {
    let said = format!("WhatsApp answered {code} {text}");
    match (code, text) {
        (404, _) | (_, "item-not-found" | "not-found") => DriverError::NotFound(said),
        (401 | 403, _) | (_, "forbidden" | "not-authorized") => DriverError::Forbidden(said),
        (400, _) | (_, "bad-request") => DriverError::Invalid(said),
        _ => DriverError::Failed(said),
    }
}

/// An IQ that failed, as the driver seam reports it.
pub(super) fn iq_error(e: IqError) -> DriverError {
    match e {
        IqError::ServerError { code, text, .. } => refusal(code, &text),
        IqError::NotConnected | IqError::Disconnected(_) | IqError::InternalChannelClosed => {
            DriverError::NotConnected
        }
        other => DriverError::Failed(other.to_string()),
    }
}

fn group_error(e: GroupError) -> DriverError {
    match e {
        GroupError::Iq(e) => iq_error(e),
        GroupError::InvalidRequest(m) => DriverError::Invalid(m),
        GroupError::DescriptionConflict => {
            DriverError::Failed("the description was changed meanwhile; try again".into())
        }
        other => DriverError::Failed(other.to_string()),
    }
}

/// The phone number (digits) among the JIDs naming one person, and its LID as `<digits>@lid`.
fn phone_and_lid<'a>(jids: impl IntoIterator<Item = &'a WaJid> + Clone) -> (Option<String>, Option<String>) {
    let phone = jids.clone().into_iter().find(|j| j.is_pn()).map(|j| j.user.to_string());
    let lid = jids.into_iter().find(|j| j.is_lid()).map(|j| format!("{}@lid", j.user));
    (phone, lid)
}

/// A person as the gateway names them: the number, or the LID when no number is known.
fn person(jids: &[Option<&WaJid>]) -> Option<String> {
    let (phone, lid) = phone_and_lid(jids.iter().flatten().copied());
    phone.or(lid)
}

fn role_of(kind: ParticipantType) -> Role {
    match kind {
        ParticipantType::SuperAdmin => Role::Superadmin,
        ParticipantType::Admin => Role::Admin,
        _ => Role::Member,
    }
}

/// The library's group metadata as the driver seam describes a group.
pub fn info_of(m: GroupMetadata) -> GroupInfo {
    let participants = m
        .participants
        .iter()
        .map(|p| {
            let (phone, lid) =
                phone_and_lid([Some(&p.jid), p.phone_number.as_ref(), p.lid.as_ref()].into_iter().flatten());
            Participant { phone, lid, role: role_of(p.participant_type) }
        })
        .collect();
    let member_add_mode = match m.member_add_mode {
        Some(WaAddMode::AdminAdd) => MemberAddMode::Admins,
        Some(WaAddMode::AllMemberAdd) => MemberAddMode::AllMembers,
        None => GroupSettings::default().member_add_mode,
    };
    GroupInfo {
        jid: m.id.to_string(),
        subject: m.subject,
        description: m.description.filter(|d| !d.is_empty()),
        owner: person(&[m.creator_pn.as_ref(), m.creator.as_ref()]),
        created_at: m
            .creation_time
            .and_then(|t| i64::try_from(t).ok())
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
        settings: GroupSettings { announce: m.is_announcement, locked: m.is_locked, member_add_mode },
        participants,
    }
}

/// WhatsApp's code for one participant of a change: 200 unless it answered an error.
fn status_of(error: Option<&str>) -> u16 {
    match error {
        None => 200,
        Some(code) => code.parse().unwrap_or(500),
    }
}

fn outcome_of(r: &ParticipantChangeResponse, action: ParticipantAction) -> ParticipantOutcome {
    let (phone, lid) = phone_and_lid([Some(&r.jid), r.phone_number.as_ref()].into_iter().flatten());
    let role = if action == ParticipantAction::Promote { Role::Admin } else { Role::Member };
    ParticipantOutcome {
        participant: Participant { phone, lid, role },
        status: status_of(r.error.as_deref()),
    }
}

pub async fn groups(client: &Client) -> Result<Vec<GroupInfo>, DriverError> {
    let groups = client.groups().get_participating().await.map_err(group_error)?;
    Ok(groups.into_values().map(info_of).collect())
}

pub async fn group(client: &Client, group: &Jid) -> Result<GroupInfo, DriverError> {
    let jid = parse_jid(group)?;
    match client.groups().get_metadata(&jid).await {
        Ok(m) => Ok(info_of(m)),
        // Asking about a group the device is not in is refused: to the device it does not exist.
        Err(GroupError::Iq(IqError::ServerError { code: 401 | 403, text, .. })) => {
            Err(DriverError::NotFound(format!("not a member of the group ({text})")))
        }
        Err(e) => Err(group_error(e)),
    }
}

/// The library's create IQ, also reading what its own parser leaves out: the `error` code
/// WhatsApp puts on each participant it could not add (privacy settings, not on WhatsApp, …).
struct CreateGroup(GroupCreateIq);

impl IqSpec for CreateGroup {
    type Response = (GroupInfoResponse, Vec<(WaJid, u16)>);

    fn build_iq(&self) -> InfoQuery<'static> {
        self.0.build_iq()
    }

    fn parse_response(&self, response: &NodeRef<'_>) -> anyhow::Result<Self::Response> {
        let info = self.0.parse_response(response)?;
        let refused = response
            .get_optional_child("group")
            .and_then(|g| g.children())
            .unwrap_or_default()
            .iter()
            .filter(|p| p.tag == "participant")
            .filter_map(|p| {
                let mut attrs = p.attrs();
                let jid = attrs.optional_jid("jid")?;
                let error = attrs.optional_string("error")?;
                Some((jid, status_of(Some(error.as_ref()))))
            })
            .collect();
        Ok((info, refused))
    }
}

pub async fn create_group(
    client: &Client,
    subject: &str,
    participants: &[Jid],
) -> Result<(GroupInfo, Vec<ParticipantOutcome>), DriverError> {
    let subject = GroupSubject::new(subject).map_err(|e| DriverError::Invalid(e.to_string()))?;
    let mut options = Vec::with_capacity(participants.len());
    for jid in parse_jids(participants)? {
        // WhatsApp wants the number of a member named by LID, when the device knows it.
        let number = if jid.is_lid() {
            client.get_lid_pn_entry(&jid).await.ok().flatten().map(|e| WaJid::pn(e.phone_number.to_string()))
        } else {
            None
        };
        options.push(match number {
            Some(pn) => GroupParticipantOptions::new(jid).with_phone_number(pn),
            None => GroupParticipantOptions::new(jid),
        });
    }
    let create = GroupCreateOptions::new(subject.as_str()).with_participants(options.clone());
    let (answer, refused) =
        client.execute(CreateGroup(GroupCreateIq::new(create))).await.map_err(iq_error)?;
    let mut info = info_of(GroupMetadata::from(answer));
    let refused_here = |p: &Participant| {
        refused.iter().find(|(jid, _)| {
            p.is(&jid.user) || p.lid.as_deref() == Some(format!("{}@lid", jid.user).as_str())
        })
    };
    let outcomes = options
        .iter()
        .map(|o| {
            let (phone, lid) = phone_and_lid([Some(&o.jid), o.phone_number.as_ref()].into_iter().flatten());
            let participant = Participant { phone, lid, role: Role::Member };
            let listed = info.participants.iter().any(|m| m.is(participant.id()));
            let status = match refused_here(&participant) {
                Some((_, code)) => *code,
                None if listed => 200,
                // Neither added nor refused by name: WhatsApp left it out.
                None => 404,
            };
            ParticipantOutcome { participant, status }
        })
        .collect();
    // Those WhatsApp could not add are listed with their error, and are not members.
    info.participants.retain(|p| refused_here(p).is_none());
    Ok((info, outcomes))
}

pub async fn update_group(client: &Client, group: &Jid, change: &GroupChange) -> Result<(), DriverError> {
    let jid = parse_jid(group)?;
    let groups = client.groups();
    if let Some(subject) = &change.subject {
        let subject = GroupSubject::new(subject.as_str()).map_err(|e| DriverError::Invalid(e.to_string()))?;
        groups.set_subject(jid.clone(), subject).await.map_err(group_error)?;
    }
    if let Some(description) = &change.description {
        let description = match description.as_str() {
            "" => None,
            text => Some(GroupDescription::new(text).map_err(|e| DriverError::Invalid(e.to_string()))?),
        };
        groups
            .set_description(jid.clone(), description, PreviousDescription::Resolve)
            .await
            .map_err(group_error)?;
    }
    if let Some(announce) = change.announce {
        groups.set_announce(jid.clone(), announce).await.map_err(group_error)?;
    }
    if let Some(locked) = change.locked {
        groups.set_locked(jid.clone(), locked).await.map_err(group_error)?;
    }
    if let Some(mode) = change.member_add_mode {
        let mode = match mode {
            MemberAddMode::Admins => WaAddMode::AdminAdd,
            MemberAddMode::AllMembers => WaAddMode::AllMemberAdd,
        };
        groups.set_member_add_mode(jid, mode).await.map_err(group_error)?;
    }
    Ok(())
}

pub async fn group_participants(
    client: &Client,
    group: &Jid,
    action: ParticipantAction,
    participants: &[Jid],
) -> Result<Vec<ParticipantOutcome>, DriverError> {
    let jid = parse_jid(group)?;
    let who = parse_jids(participants)?;
    let groups = client.groups();
    let answered = match action {
        ParticipantAction::Add => groups.add_participants(jid, &who).await,
        ParticipantAction::Remove => groups.remove_participants(jid, &who).await,
        ParticipantAction::Promote => groups.promote_participants(jid, &who).await,
        ParticipantAction::Demote => groups.demote_participants(jid, &who).await,
    }
    .map_err(group_error)?;
    Ok(answered.iter().map(|r| outcome_of(r, action)).collect())
}

pub async fn group_invite(client: &Client, group: &Jid, reset: bool) -> Result<String, DriverError> {
    let jid = parse_jid(group)?;
    let link = client.groups().get_invite_link(jid, reset).await.map_err(group_error)?;
    // The library answers the link; the seam wants its code.
    Ok(link.rsplit('/').next().unwrap_or(&link).to_string())
}

pub async fn join_group(client: &Client, code: &str) -> Result<Jid, DriverError> {
    use whatsapp_rust::features::JoinGroupResult;
    match client.groups().join_with_invite_code(code).await {
        Ok(JoinGroupResult::Joined(jid)) => Ok(jid.to_string()),
        Ok(JoinGroupResult::PendingApproval(jid)) => Err(DriverError::Forbidden(format!(
            "{jid} admits members after an admin's approval; the request to join was sent"
        ))),
        // A code that was never valid, or was reset.
        Err(GroupError::Iq(IqError::ServerError { code: 404 | 406 | 410, text, .. })) => {
            Err(DriverError::NotFound(format!("no group has this invite code ({text})")))
        }
        Err(GroupError::Iq(IqError::ServerError { code: 304, .. })) => {
            Err(DriverError::Invalid("the device is a member of this group already".into()))
        }
        Err(e) => Err(group_error(e)),
    }
}

pub async fn leave_group(client: &Client, group: &Jid) -> Result<(), DriverError> {
    let jid = parse_jid(group)?;
    client.groups().leave(jid).await.map_err(group_error)
}

/// Whether one of `own` (the account's number and LID) names this participant.
fn is_own(p: &GroupParticipantInfo, own: &[WaJid]) -> bool {
    [Some(&p.jid), p.phone_number.as_ref(), p.lid.as_ref()]
        .into_iter()
        .flatten()
        .any(|j| own.iter().any(|o| o.user == j.user && o.server == j.server))
}

fn participants_of(list: &[GroupParticipantInfo]) -> Vec<Participant> {
    list.iter()
        .map(|p| {
            let (phone, lid) =
                phone_and_lid([Some(&p.jid), p.phone_number.as_ref(), p.lid.as_ref()].into_iter().flatten());
            let role = match p.r#type {
                Some(GroupParticipantType::SuperAdmin) => Role::Superadmin,
                Some(GroupParticipantType::Admin) => Role::Admin,
                _ => Role::Member,
            };
            Participant { phone, lid, role }
        })
        .collect()
}

/// A group notification as the seam's group event; `None` for what the gateway does not
/// report (ephemeral timers, invite links, membership requests, communities, …).
///
/// `own` holds the account's number and LID JIDs: the account added to a group is `Joined`,
/// removed (or leaving) is `Left`. With `own` empty every change reads as `Participants`.
pub fn group_event(update: &GroupUpdate, own: &[WaJid]) -> Option<GroupEvent> {
    use GroupNotificationAction as A;
    let change = |c: GroupChange| GroupEventKind::Updated(c);
    let members = |action, list: &[GroupParticipantInfo]| GroupEventKind::Participants {
        action,
        participants: participants_of(list),
    };
    let kind = match &update.action {
        A::Add { participants, .. } if participants.iter().any(|p| is_own(p, own)) => {
            GroupEventKind::Joined(None)
        }
        A::Remove { participants, .. } if participants.iter().any(|p| is_own(p, own)) => GroupEventKind::Left,
        A::Add { participants, .. } => members(ParticipantAction::Add, participants),
        A::Remove { participants, .. } => members(ParticipantAction::Remove, participants),
        A::Promote { participants } => members(ParticipantAction::Promote, participants),
        A::Demote { participants } => members(ParticipantAction::Demote, participants),
        A::Create { .. } => GroupEventKind::Joined(None),
        A::Delete { .. } => GroupEventKind::Left,
        A::Subject { subject, .. } => {
            change(GroupChange { subject: Some(subject.clone()), ..Default::default() })
        }
        A::Description { description, .. } => change(GroupChange {
            description: Some(description.clone().unwrap_or_default()),
            ..Default::default()
        }),
        A::Locked { .. } => change(GroupChange { locked: Some(true), ..Default::default() }),
        A::Unlocked => change(GroupChange { locked: Some(false), ..Default::default() }),
        A::Announce => change(GroupChange { announce: Some(true), ..Default::default() }),
        A::NotAnnounce => change(GroupChange { announce: Some(false), ..Default::default() }),
        A::MemberAddMode { mode } => {
            let mode = match mode.as_str() {
                "admin_add" => MemberAddMode::Admins,
                "all_member_add" => MemberAddMode::AllMembers,
                _ => return None,
            };
            change(GroupChange { member_add_mode: Some(mode), ..Default::default() })
        }
        _ => return None,
    };
    Some(GroupEvent {
        group: update.group_jid.to_string(),
        by: person(&[update.participant_pn.as_ref(), update.participant.as_ref()]),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::wacore::protocol::ProtocolNode;
    use whatsapp_rust::wacore_binary::builder::NodeBuilder;

    const GROUP: &str = "120363012345678901@g.us";

    fn member(jid: &str, phone: Option<&str>) -> GroupParticipantInfo {
        GroupParticipantInfo {
            jid: jid.parse().unwrap(),
            phone_number: phone.map(|p| p.parse().unwrap()),
            display_name: None,
            r#type: Some(GroupParticipantType::Participant),
            lid: None,
            username: None,
            join_time: None,
            group_history_sent_state: None,
        }
    }

    fn update(by: &str, action: GroupNotificationAction) -> GroupUpdate {
        GroupUpdate::builder()
            .group_jid(GROUP.parse().unwrap())
            .participant(by.parse().unwrap())
            .timestamp(Utc::now())
            .is_lid_addressing_mode(false)
            .action(action)
            .build()
    }

    #[test]
    fn a_member_leaving_is_a_removal_by_that_member() {
        let leaves = update(
            "6281299990701@s.whatsapp.net",
            GroupNotificationAction::Remove {
                participants: vec![member("6281299990701@s.whatsapp.net", None)],
                reason: None,
            },
        );
        let event = group_event(&leaves, &[]).unwrap();
        assert_eq!(event.group, GROUP);
        assert_eq!(event.by.as_deref(), Some("6281299990701"));
        assert_eq!(
            event.kind,
            GroupEventKind::Participants {
                action: ParticipantAction::Remove,
                participants: vec![Participant {
                    phone: Some("6281299990701".into()),
                    lid: None,
                    role: Role::Member
                }],
            }
        );
    }

    #[test]
    fn a_member_named_by_lid_keeps_the_number_the_notification_carries() {
        let added = update(
            "6281299990701@s.whatsapp.net",
            GroupNotificationAction::Add {
                participants: vec![member("123456789012345@lid", Some("6281299990702@s.whatsapp.net"))],
                reason: None,
            },
        );
        let GroupEventKind::Participants { participants, .. } = group_event(&added, &[]).unwrap().kind else {
            panic!("participants")
        };
        assert_eq!(participants[0].phone.as_deref(), Some("6281299990702"));
        assert_eq!(participants[0].lid.as_deref(), Some("123456789012345@lid"));
    }

    #[test]
    fn the_account_added_or_removed_joins_or_leaves() {
        let own: Vec<WaJid> =
            vec!["6281381830801@s.whatsapp.net".parse().unwrap(), "100000000000001@lid".parse().unwrap()];
        let added = update(
            "6281299990701@s.whatsapp.net",
            GroupNotificationAction::Add {
                participants: vec![member("100000000000001@lid", None)],
                reason: None,
            },
        );
        assert_eq!(group_event(&added, &own).unwrap().kind, GroupEventKind::Joined(None));
        let removed = update(
            "6281299990701@s.whatsapp.net",
            GroupNotificationAction::Remove {
                participants: vec![member("6281381830801@s.whatsapp.net", None)],
                reason: None,
            },
        );
        assert_eq!(group_event(&removed, &own).unwrap().kind, GroupEventKind::Left);
        // Without the account's ids it is an ordinary change of members.
        assert!(matches!(group_event(&removed, &[]).unwrap().kind, GroupEventKind::Participants { .. }));
    }

    #[test]
    fn subject_description_and_settings_changes_are_updates() {
        let cases = [
            (
                GroupNotificationAction::Subject {
                    subject: "Baru".into(),
                    subject_owner: None,
                    subject_time: None,
                },
                GroupChange { subject: Some("Baru".into()), ..Default::default() },
            ),
            (
                GroupNotificationAction::Description { id: "AB".into(), description: None },
                GroupChange { description: Some(String::new()), ..Default::default() },
            ),
            (GroupNotificationAction::Announce, GroupChange { announce: Some(true), ..Default::default() }),
            (GroupNotificationAction::Unlocked, GroupChange { locked: Some(false), ..Default::default() }),
            (
                GroupNotificationAction::MemberAddMode { mode: "admin_add".into() },
                GroupChange { member_add_mode: Some(MemberAddMode::Admins), ..Default::default() },
            ),
        ];
        for (action, want) in cases {
            let event = group_event(&update("6281299990701@s.whatsapp.net", action), &[]).unwrap();
            assert_eq!(event.kind, GroupEventKind::Updated(want));
        }
        let ignored = update("6281299990701@s.whatsapp.net", GroupNotificationAction::RevokeInvite);
        assert_eq!(group_event(&ignored, &[]), None);
    }

    #[test]
    fn metadata_maps_roles_numbers_lids_settings_and_owner() {
        let node = NodeBuilder::new("group")
            .attr("id", "120363012345678901")
            .attr("subject", "Toko")
            .attr("addressing_mode", "lid")
            .attr("creation", "1700000000")
            .attr("creator", "100000000000001@lid")
            .attr("creator_pn", "6281381830801@s.whatsapp.net")
            .children([
                NodeBuilder::new("participant")
                    .attr("jid", "100000000000001@lid")
                    .attr("phone_number", "6281381830801@s.whatsapp.net")
                    .attr("type", "superadmin")
                    .build(),
                NodeBuilder::new("participant")
                    .attr("jid", "6281299990701@s.whatsapp.net")
                    .attr("type", "admin")
                    .build(),
                NodeBuilder::new("participant").attr("jid", "100000000000002@lid").build(),
                NodeBuilder::new("announcement").build(),
                NodeBuilder::new("member_add_mode").string_content("admin_add").build(),
                NodeBuilder::new("description")
                    .attr("id", "AB")
                    .children([NodeBuilder::new("body").string_content("Grosir").build()])
                    .build(),
            ])
            .build();
        let parsed = GroupInfoResponse::try_from_node(&node).unwrap();
        let info = info_of(GroupMetadata::from(parsed));
        assert_eq!(info.jid, GROUP);
        assert_eq!((info.subject.as_str(), info.description.as_deref()), ("Toko", Some("Grosir")));
        assert_eq!(info.owner.as_deref(), Some("6281381830801"));
        assert_eq!(info.created_at.map(|t| t.timestamp()), Some(1_700_000_000));
        assert_eq!(
            info.settings,
            GroupSettings { announce: true, locked: false, member_add_mode: MemberAddMode::Admins }
        );
        let members: Vec<(Option<&str>, Option<&str>, Role)> =
            info.participants.iter().map(|p| (p.phone.as_deref(), p.lid.as_deref(), p.role)).collect();
        assert_eq!(
            members,
            [
                (Some("6281381830801"), Some("100000000000001@lid"), Role::Superadmin),
                (Some("6281299990701"), None, Role::Admin),
                (None, Some("100000000000002@lid"), Role::Member),
            ]
        );
    }

    #[test]
    fn refusals_map_by_code_and_text() {
        assert!(matches!(refusal(404, "item-not-found"), DriverError::NotFound(_)));
        assert!(matches!(refusal(403, "forbidden"), DriverError::Forbidden(_)));
        assert!(matches!(refusal(401, "not-authorized"), DriverError::Forbidden(_)));
        assert!(matches!(refusal(400, "bad-request"), DriverError::Invalid(_)));
        assert!(matches!(refusal(500, "internal-server-error"), DriverError::Failed(_)));
        assert_eq!((status_of(None), status_of(Some("403")), status_of(Some("x"))), (200, 403, 500));
    }
}
