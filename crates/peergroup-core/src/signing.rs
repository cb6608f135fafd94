//! Signed group properties: an administrator signs them with its member key; every member
//! checks the signer's chain and role before it applies them.

use crate::clock::unix_now;
use crate::error::{AuthorizationError, CoreError, Result};
use crate::identity::gmc::{GmcChain, GroupRootCertificate, Role};
use crate::identity::Identity;
use crate::properties::GroupProperties;
use crate::wire::SignedProperties;

/// Signs properties with a member's key, as an administrator publishes them.
pub(crate) fn sign_properties(
    identity: &Identity,
    chain: &GmcChain,
    version: u64,
    props: &GroupProperties,
) -> Result<SignedProperties> {
    let body = serde_json::to_vec(props).expect("plain data serialises");
    let signature = identity
        .private_key()
        .sign(&SignedProperties::signed_bytes(version, &body))?;
    Ok(SignedProperties {
        version,
        body,
        signer_chain: chain.to_bytes(),
        signature,
    })
}

/// Checks signed properties from a peer: an administrator of this group signed them.
pub(crate) fn verify_properties(
    grc: &GroupRootCertificate,
    signed: &SignedProperties,
) -> Result<GroupProperties> {
    let chain = GmcChain::from_bytes(&signed.signer_chain)?;
    let signer = chain.validate(grc, unix_now())?;
    if !signer.has_role(Role::Admin) {
        return Err(AuthorizationError::PropertiesNotByAdmin.into());
    }
    crate::identity::keys::verify_signature(
        signer.public_key_der(),
        &SignedProperties::signed_bytes(signed.version, &signed.body),
        &signed.signature,
    )?;
    serde_json::from_slice(&signed.body)
        .map_err(|e| CoreError::Protocol(format!("properties: {e}")))
}
