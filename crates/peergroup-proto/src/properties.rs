//! Group properties (`PEER_GROUP_PROPERTIES`) with Microsoft's limits and defaults.

use serde::{Deserialize, Serialize};

use crate::error::{FixedField, PropertiesError, Result, TextField};
use crate::identity::gmc::Role;
use crate::identity::{validate_friendly_name, MAX_CLASSIFIER_CHARS};

/// `PEER_MEMBER_DATA_OPTIONAL`: members publish their data only when they act.
pub const PEER_MEMBER_DATA_OPTIONAL: u32 = 0x1;
/// `PEER_DISABLE_PRESENCE`: no automatic presence records.
pub const PEER_DISABLE_PRESENCE: u32 = 0x2;
/// `PEER_DEFER_EXPIRATION`: records do not expire while the node is offline.
pub const PEER_DEFER_EXPIRATION: u32 = 0x4;
/// Peergroup extension (no such flag in `p2p.h`): members do not relay for each other in this
/// group ([`crate::relay`]). An administrator sets it to keep every member connection direct.
pub const PEERGROUP_DISABLE_RELAYS: u32 = 0x1_0000;
/// `PEER_GROUP_GMC_AUTHENTICATION`.
pub const PEER_GROUP_GMC_AUTHENTICATION: u32 = 0x1;
/// `PEER_GROUP_PASSWORD_AUTHENTICATION` (0x2 per the SDK header; one doc page says 0x1).
pub const PEER_GROUP_PASSWORD_AUTHENTICATION: u32 = 0x2;

/// Default member-data lifetime: 28 days.
pub const DEFAULT_MEMBER_DATA_LIFETIME: u32 = 2_419_200;
/// Shortest member-data lifetime: 8 hours.
pub const MIN_MEMBER_DATA_LIFETIME: u32 = 8 * 3600;
/// Longest member-data lifetime: 10 years.
pub const MAX_MEMBER_DATA_LIFETIME: u32 = 10 * 365 * 24 * 3600;
/// Default (and shortest) presence lifetime: 300 s.
pub const DEFAULT_PRESENCE_LIFETIME: u32 = 300;
/// Longest friendly name and comment, in characters.
pub const MAX_TEXT_CHARS: usize = 255;
/// Longest group password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 255;

const KNOWN_FLAGS: u32 = PEER_MEMBER_DATA_OPTIONAL
    | PEER_DISABLE_PRESENCE
    | PEER_DEFER_EXPIRATION
    | PEERGROUP_DISABLE_RELAYS;
const KNOWN_SCHEMES: u32 = PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION;

/// The properties of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProperties {
    /// `PEER_GROUP_PROPERTY_FLAGS`.
    pub flags: u32,
    /// Cloud name; carried through (there is no PNRP here). Empty means global.
    pub cloud: String,
    /// Classifier of the group peer name.
    pub classifier: String,
    /// The group peer name (set by create; may not be given to it).
    pub group_peer_name: String,
    /// The creator's identity peer name.
    pub creator_peer_name: String,
    /// Display name.
    pub friendly_name: String,
    /// Free text.
    pub comment: String,
    /// Seconds member data lives (0 on input: the largest allowed).
    pub member_data_lifetime: u32,
    /// Seconds presence records live.
    pub presence_lifetime: u32,
    /// `PEER_GROUP_AUTHENTICATION_SCHEME` bits.
    pub authentication_schemes: u32,
    /// The group password, when password authentication is on.
    pub group_password: Option<String>,
    /// The role a password joiner receives.
    #[serde(with = "role_name")]
    pub group_password_role: Role,
}

impl Default for GroupProperties {
    fn default() -> Self {
        GroupProperties {
            flags: 0,
            cloud: String::new(),
            classifier: String::new(),
            group_peer_name: String::new(),
            creator_peer_name: String::new(),
            friendly_name: String::new(),
            comment: String::new(),
            member_data_lifetime: DEFAULT_MEMBER_DATA_LIFETIME,
            presence_lifetime: DEFAULT_PRESENCE_LIFETIME,
            authentication_schemes: PEER_GROUP_GMC_AUTHENTICATION,
            group_password: None,
            group_password_role: Role::Member,
        }
    }
}

impl GroupProperties {
    /// True when members may join with the group password.
    pub fn password_enabled(&self) -> bool {
        self.authentication_schemes & PEER_GROUP_PASSWORD_AUTHENTICATION != 0
    }

    /// Checks the properties and fills defaults, as `PeerGroupCreate` does. A group peer name
    /// may not be given: create generates it.
    pub fn normalized_for_create(mut self) -> Result<Self> {
        if !self.group_peer_name.is_empty() {
            return Err(PropertiesError::GroupNameGiven.into());
        }
        self.validate_changeable()?;
        let chars = self.classifier.chars().count();
        if chars > MAX_CLASSIFIER_CHARS {
            return Err(PropertiesError::Classifier {
                chars,
                why: format!("{chars} characters, the limit is {MAX_CLASSIFIER_CHARS}"),
            }
            .into());
        }
        crate::identity::peer_name::validate_classifier(&self.classifier).map_err(|e| {
            PropertiesError::Classifier {
                chars,
                why: e.to_string(),
            }
        })?;
        if self.member_data_lifetime == 0 {
            self.member_data_lifetime = MAX_MEMBER_DATA_LIFETIME;
        }
        if self.presence_lifetime == 0 {
            self.presence_lifetime = DEFAULT_PRESENCE_LIFETIME;
        }
        if self.authentication_schemes == 0 {
            self.authentication_schemes = PEER_GROUP_GMC_AUTHENTICATION;
        }
        Ok(self)
    }

    /// Checks what `PeerGroupSetProperties` may change.
    pub fn validate_changeable(&self) -> Result<()> {
        let bad = |e: PropertiesError| Err(e.into());
        if self.flags & !KNOWN_FLAGS != 0 {
            return bad(PropertiesError::UnknownFlags(self.flags & !KNOWN_FLAGS));
        }
        if self.authentication_schemes & !KNOWN_SCHEMES != 0 {
            return bad(PropertiesError::UnknownSchemes(
                self.authentication_schemes & !KNOWN_SCHEMES,
            ));
        }
        validate_friendly_name(&self.friendly_name, true).map_err(PropertiesError::FriendlyName)?;
        for (field, text) in [
            (TextField::Comment, &self.comment),
            (TextField::Cloud, &self.cloud),
        ] {
            if text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
                return bad(PropertiesError::Text(field));
            }
        }
        if self.member_data_lifetime != 0
            && !(MIN_MEMBER_DATA_LIFETIME..=MAX_MEMBER_DATA_LIFETIME)
                .contains(&self.member_data_lifetime)
        {
            return bad(PropertiesError::MemberDataLifetime {
                seconds: self.member_data_lifetime,
            });
        }
        if self.presence_lifetime != 0 && self.presence_lifetime < DEFAULT_PRESENCE_LIFETIME {
            return bad(PropertiesError::PresenceLifetime {
                seconds: self.presence_lifetime,
            });
        }
        if self.password_enabled() {
            match &self.group_password {
                None => return bad(PropertiesError::NoPassword),
                Some(p) if p.is_empty() || p.chars().count() > MAX_PASSWORD_CHARS => {
                    return bad(PropertiesError::PasswordPolicy {
                        chars: p.chars().count(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Applies a `PeerGroupSetProperties` request: the fields that identify the group
    /// (classifier, cloud, group and creator peer names) cannot change.
    pub fn apply_update(&self, update: &GroupProperties) -> Result<GroupProperties> {
        let fixed = |field: FixedField, a: &str, b: &str| {
            if !b.is_empty() && a != b {
                Err(PropertiesError::Fixed(field))
            } else {
                Ok(())
            }
        };
        fixed(FixedField::Classifier, &self.classifier, &update.classifier)?;
        fixed(FixedField::Cloud, &self.cloud, &update.cloud)?;
        fixed(
            FixedField::GroupPeerName,
            &self.group_peer_name,
            &update.group_peer_name,
        )?;
        fixed(
            FixedField::CreatorPeerName,
            &self.creator_peer_name,
            &update.creator_peer_name,
        )?;
        let mut next = update.clone();
        next.classifier = self.classifier.clone();
        next.cloud = self.cloud.clone();
        next.group_peer_name = self.group_peer_name.clone();
        next.creator_peer_name = self.creator_peer_name.clone();
        if next.member_data_lifetime == 0 {
            next.member_data_lifetime = MAX_MEMBER_DATA_LIFETIME;
        }
        if next.presence_lifetime == 0 {
            next.presence_lifetime = DEFAULT_PRESENCE_LIFETIME;
        }
        if next.password_enabled() && next.group_password.is_none() {
            next.group_password = self.group_password.clone();
        }
        next.validate_changeable()?;
        Ok(next)
    }
}

/// Roles in stored JSON, by name.
mod role_name {
    use super::Role;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match role {
            Role::Admin => "admin",
            Role::InvitingMember => "inviting-member",
            Role::Member => "member",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        match String::deserialize(d)?.as_str() {
            "admin" => Ok(Role::Admin),
            "inviting-member" => Ok(Role::InvitingMember),
            "member" => Ok(Role::Member),
            other => Err(serde::de::Error::custom(format!("unknown role {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult::*;

    fn props() -> GroupProperties {
        GroupProperties {
            classifier: "chat".into(),
            friendly_name: "Chat".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_limits() {
        let p = GroupProperties {
            member_data_lifetime: 0,
            presence_lifetime: 0,
            authentication_schemes: 0,
            ..props()
        }
        .normalized_for_create()
        .unwrap();
        assert_eq!(p.member_data_lifetime, MAX_MEMBER_DATA_LIFETIME);
        assert_eq!(p.presence_lifetime, 300);
        assert_eq!(p.authentication_schemes, PEER_GROUP_GMC_AUTHENTICATION);
        let code = |p: GroupProperties| p.normalized_for_create().unwrap_err().hresult();
        assert_eq!(
            code(GroupProperties {
                group_peer_name: "0.x".into(),
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                classifier: "a b".into(),
                ..props()
            }),
            PEER_E_INVALID_CLASSIFIER
        );
        assert_eq!(
            code(GroupProperties {
                classifier: "c".repeat(150),
                ..props()
            }),
            PEER_E_INVALID_CLASSIFIER
        );
        assert_eq!(
            code(GroupProperties {
                friendly_name: "f".repeat(256),
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                presence_lifetime: 10,
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                member_data_lifetime: 60,
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                flags: 0x80,
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                authentication_schemes: PEER_GROUP_PASSWORD_AUTHENTICATION,
                ..props()
            }),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        assert_eq!(
            code(GroupProperties {
                authentication_schemes: PEER_GROUP_PASSWORD_AUTHENTICATION,
                group_password: Some(String::new()),
                ..props()
            }),
            PEER_E_PASSWORD_DOES_NOT_MEET_POLICY
        );
    }

    #[test]
    fn updates_keep_identifying_fields() {
        let p = GroupProperties {
            group_peer_name: String::new(),
            ..props()
        }
        .normalized_for_create()
        .unwrap();
        let p = GroupProperties {
            group_peer_name: "0.g".into(),
            creator_peer_name: "0.c".into(),
            ..p
        };
        let mut u = p.clone();
        u.comment = "new".into();
        assert_eq!(p.apply_update(&u).unwrap().comment, "new");
        u.classifier = "other".into();
        assert_eq!(
            p.apply_update(&u).unwrap_err().hresult(),
            PEER_E_INVALID_GROUP_PROPERTIES
        );
        let u = GroupProperties {
            classifier: String::new(),
            group_peer_name: String::new(),
            ..p.clone()
        };
        assert_eq!(p.apply_update(&u).unwrap().group_peer_name, "0.g");
    }
}
