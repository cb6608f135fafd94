//! The member calls of an open group (`PeerGroupEnumMembers`, `PeerGroupIssueCredentials`),
//! the driver's [`Publisher`], and the adoption of credentials an administrator published.

use crate::clock::unix_now;
use crate::error::{AdminCall, AuthorizationError, CoreError, Result};
use crate::group::LocalGroup;
use crate::identity::gmc::{issue_gmc_at, Role, Subject};
use crate::identity::PeerName;
use crate::invitation::Credential;
use crate::records::record::{derive_id, Record};

use crate::members::duties::MemberSettings;
use crate::members::list::{newest_chains, Member};
use crate::members::{MEMBER_DATA_TYPE, PEER_GROUP_STORE_CREDENTIALS, PEER_MEMBER_PRESENT};
use crate::values::CredentialSpec;

impl LocalGroup {
    /// `PeerGroupEnumMembers`: the members this member knows, the local one first (with no
    /// `identity`). `flags` is 0 (every known member) or [`PEER_MEMBER_PRESENT`] (those
    /// online). With `identity`, that member alone: `PEER_E_IDENTITY_NOT_FOUND` when it is
    /// not known (or not present, with [`PEER_MEMBER_PRESENT`]). Unknown flags are
    /// `E_INVALIDARG`.
    pub fn members(&self, flags: u32, identity: Option<&PeerName>) -> Result<Vec<Member>> {
        if flags & !PEER_MEMBER_PRESENT != 0 {
            return Err(CoreError::InvalidArgument(format!(
                "unknown member flags {flags:#x}"
            )));
        }
        let chain = self.live()?.chain.clone();
        let mut list = self.inner().member_list(&chain)?;
        if flags & PEER_MEMBER_PRESENT != 0 {
            list.retain(|m| m.is_present());
        }
        if let Some(who) = identity {
            let who = who.to_string();
            list.retain(|m| m.identity == who);
            if list.is_empty() {
                return Err(CoreError::MemberNotFound(who));
            }
        }
        Ok(list)
    }

    /// `PeerGroupIssueCredentials`: an administrator mints a new membership certificate for
    /// `subject`, with the roles and end given in `info`, or (`None`) with the roles of the
    /// member's stored member data and the issuer's remaining lifetime
    /// (`PEER_E_IDENTITY_NOT_FOUND` when none is stored). With
    /// [`PEER_GROUP_STORE_CREDENTIALS`] in `flags` the new chain is published as the
    /// member's member data (the subject adopts it when it sees it); either way the
    /// credentials come back as invitation XML. Errors: `PEER_E_NOT_AUTHORIZED` (not an
    /// administrator), `PEER_E_GROUP_NOT_READY`, `E_INVALIDARG` (unknown flags), and the
    /// identity layer's for a key that is not the subject's or a bad validity.
    pub fn issue_credentials(
        &self,
        subject: &PeerName,
        info: Option<&CredentialSpec>,
        flags: u32,
    ) -> Result<String> {
        if flags & !PEER_GROUP_STORE_CREDENTIALS != 0 {
            return Err(CoreError::InvalidArgument(format!(
                "unknown credential flags {flags:#x}"
            )));
        }
        let inner = self.inner();
        let st = self.live()?;
        if !st.member.has_role(Role::Admin) {
            return Err(AuthorizationError::AdminsOnly(AdminCall::IssueCredentials).into());
        }
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        let (who, roles, not_after) = match info {
            Some(info) => (
                Subject::new(subject.clone(), &info.friendly_name, &info.public_key_der)?,
                info.roles.clone(),
                info.not_after,
            ),
            None => {
                let now = crate::clock::unix_now_ms();
                let data = inner.with_records(|db| db.list(Some(MEMBER_DATA_TYPE), now))?;
                let chains = newest_chains(&data);
                let chain = chains
                    .get(&subject.to_string())
                    .ok_or_else(|| CoreError::MemberNotFound(subject.to_string()))?;
                let leaf = chain.leaf();
                (
                    Subject::new(
                        leaf.peer_name().clone(),
                        leaf.friendly_name(),
                        leaf.public_key_der(),
                    )?,
                    leaf.roles().to_vec(),
                    None,
                )
            }
        };
        let chain = issue_gmc_at(
            inner.identity.private_key(),
            &st.chain,
            who,
            &roles,
            not_after,
            unix_now(),
        )?;
        let invitation = self
            .invitation(&st, Credential::Gmc(chain.clone()), roles)
            .to_xml();
        if flags & PEER_GROUP_STORE_CREDENTIALS == 0 {
            return Ok(invitation);
        }
        let now = crate::clock::unix_now_ms();
        let me = inner.key.0.to_string();
        let lifetime =
            MemberSettings::from_properties(&st.config.properties).member_data_lifetime_ms;
        let expires = now
            .saturating_add(lifetime)
            .min(chain.leaf().not_after().saturating_mul(1000));
        let nonce = crate::handle::records::new_id_nonce()?;
        let mut record = Record {
            record_type: MEMBER_DATA_TYPE,
            id: derive_id(&me, &MEMBER_DATA_TYPE, now, &nonce),
            id_nonce: nonce,
            version: 1,
            flags: 0,
            creator: me.clone(),
            modifier: me,
            attributes: String::new(),
            created: now,
            expires,
            modified: now,
            data: chain.to_bytes(),
            security: Vec::new(),
        };
        record.sign(inner.identity.private_key(), &st.chain)?;
        inner.write_records(|db| db.put(&record))?;
        drop(st);
        self.publish_local(std::slice::from_ref(&record));
        Ok(invitation)
    }
}
