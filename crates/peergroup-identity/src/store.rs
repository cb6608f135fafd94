//! The identity store on disk.
//!
//! ```text
//! $PEERGROUP_HOME/
//!   default-identity                  peer name of the default identity
//!   identities/<dir>/                 one directory per identity (mode 0700)
//!     identity.json                   format, peer name, friendly name, certificate
//!     key.p8                          PKCS#8 private key (mode 0600)
//!     groups/<dir>/group.json         one per group the identity belongs to
//! ```
//!
//! Every change is crash-safe: a new identity is written into a staging directory, made
//! durable and renamed into place; a change of one file is a temp file, fsync and rename;
//! a deletion renames the directory away before removing it. `<dir>` is the peer name with
//! every byte that is not an ASCII letter, digit, `-` or `_` percent-encoded.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::cert::IdentityCertificate;
use crate::documents;
use crate::error::{IdentityError, Result};
use crate::export::{self, ExportPayload, SealedExport};
use crate::fsutil::{self, StagingDir, PRIVATE_FILE_MODE};
use crate::identity::{Identity, NamePair};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::peer_name::{validate_classifier, PeerName};

/// Longest friendly name, in characters (Windows: 256 including the NUL).
pub const MAX_FRIENDLY_NAME_CHARS: usize = 255;

const IDENTITIES: &str = "identities";
const DEFAULT_FILE: &str = "default-identity";
const META_FILE: &str = "identity.json";
const KEY_FILE: &str = "key.p8";
const GROUPS: &str = "groups";
const GROUP_FILE: &str = "group.json";
const META_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    peer_name: String,
    friendly_name: String,
    certificate: String,
}

#[derive(Serialize, Deserialize)]
struct GroupEntry {
    peer_name: String,
    friendly_name: String,
}

/// The identities of one user, under one home directory.
#[derive(Clone, Debug)]
pub struct IdentityStore {
    home: PathBuf,
}

impl IdentityStore {
    /// Opens (creating if needed, mode 0700) the store under `home`.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self> {
        let home = home.into();
        fsutil::ensure_private_dir(&home.join(IDENTITIES))?;
        Ok(IdentityStore { home })
    }

    /// Opens the store the environment names: `$PEERGROUP_HOME`, else
    /// `$XDG_DATA_HOME/peergroup`, else `$HOME/.local/share/peergroup`.
    pub fn from_env() -> Result<Self> {
        Self::open(default_home()?)
    }

    /// The home directory of this store.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Creates and stores a new identity (`PeerIdentityCreate`).
    ///
    /// With no key a new ECDSA P-256 key is generated. With no (or an empty) friendly name
    /// the peer name is used, as on Windows. Creating a name that exists (same key and
    /// classifier) is [`IdentityError::AlreadyExists`].
    pub fn create(
        &self,
        classifier: Option<&str>,
        friendly_name: Option<&str>,
        key: Option<&PrivateKey>,
    ) -> Result<PeerName> {
        let classifier = classifier.unwrap_or("");
        validate_classifier(classifier)?;
        if let Some(f) = friendly_name {
            validate_friendly_name(f, true)?;
        }
        let key = match key {
            Some(k) => k.clone(),
            None => PrivateKey::generate(KeyAlgorithm::default())?,
        };
        let name = PeerName::new(key.authority(), classifier)?;
        if self.identity_dir(&name).exists() {
            return Err(IdentityError::AlreadyExists(name.to_string()));
        }
        let friendly = match friendly_name {
            Some(f) if !f.is_empty() => f.to_owned(),
            _ => name.to_string(),
        };
        let cert = IdentityCertificate::issue(&key, classifier, &friendly)?;
        self.install(&cert, &key, &friendly).map_err(|e| match e {
            IdentityError::KeyExists(n) => IdentityError::AlreadyExists(n),
            other => other,
        })?;
        tracing::info!(identity = %name, "identity created");
        Ok(name)
    }

    /// Every identity in the store, sorted by peer name (`PeerEnumIdentities`).
    pub fn list(&self) -> Result<Vec<NamePair>> {
        let dir = self.home.join(IDENTITIES);
        let mut out = Vec::new();
        for entry in read_dir_entries(&dir)? {
            match read_meta(&entry) {
                Ok(meta) => out.push(NamePair {
                    peer_name: meta.peer_name,
                    friendly_name: meta.friendly_name,
                }),
                Err(e) => {
                    tracing::warn!(path = %entry.display(), error = %e, "skipping unreadable identity")
                }
            }
        }
        out.sort_by(|a, b| a.peer_name.cmp(&b.peer_name));
        Ok(out)
    }

    /// True when an identity of this name is stored.
    pub fn exists(&self, name: &PeerName) -> bool {
        self.identity_dir(name).join(META_FILE).exists()
    }

    /// Loads an identity with its key.
    pub fn load(&self, name: &PeerName) -> Result<Identity> {
        let dir = self.existing_dir(name)?;
        let meta = read_meta(&dir)?;
        let cert = cert_of(&dir, &meta)?;
        let key_path = dir.join(KEY_FILE);
        let pkcs8 = zeroize::Zeroizing::new(fs::read(&key_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                IdentityError::NoKey(name.to_string())
            } else {
                IdentityError::io("read", &key_path, e)
            }
        })?);
        let key = PrivateKey::from_pkcs8(&pkcs8)?;
        if key.public_key_der() != cert.public_key_der() {
            return Err(IdentityError::BadKey(format!(
                "the stored key of {name} does not match its certificate"
            )));
        }
        Ok(Identity {
            certificate: cert,
            key,
            friendly_name: meta.friendly_name,
        })
    }

    /// The friendly name of an identity (`PeerIdentityGetFriendlyName`).
    pub fn friendly_name(&self, name: &PeerName) -> Result<String> {
        Ok(read_meta(&self.existing_dir(name)?)?.friendly_name)
    }

    /// Renames an identity (`PeerIdentitySetFriendlyName`); the certificate is re-issued so
    /// that the public XML carries the new name.
    pub fn set_friendly_name(&self, name: &PeerName, friendly_name: &str) -> Result<()> {
        validate_friendly_name(friendly_name, false)?;
        let identity = self.load(name)?;
        let cert = IdentityCertificate::issue(&identity.key, name.classifier(), friendly_name)?;
        let dir = self.existing_dir(name)?;
        write_meta(&dir, &cert, friendly_name)?;
        tracing::info!(identity = %name, "identity renamed");
        Ok(())
    }

    /// Deletes an identity (`PeerIdentityDelete`): refused while it belongs to groups.
    pub fn delete(&self, name: &PeerName) -> Result<()> {
        let dir = self.existing_dir(name)?;
        if !read_dir_entries(&dir.join(GROUPS))?.is_empty() {
            return Err(IdentityError::GroupsExist(name.to_string()));
        }
        if self.stored_default()?.as_ref() == Some(name) {
            let p = self.home.join(DEFAULT_FILE);
            fs::remove_file(&p).map_err(|e| IdentityError::io("remove", &p, e))?;
        }
        let trash = self
            .home
            .join(IDENTITIES)
            .join(format!(".trash-{}", fsutil::unique_suffix()));
        fs::rename(&dir, &trash).map_err(|e| IdentityError::io("rename", &dir, e))?;
        fsutil::fsync_dir(&self.home.join(IDENTITIES))?;
        fs::remove_dir_all(&trash).map_err(|e| IdentityError::io("remove", &trash, e))?;
        tracing::info!(identity = %name, "identity deleted");
        Ok(())
    }

    /// The default identity (`PeerIdentityGetDefault`); created, with an empty classifier,
    /// the first time it is asked for, as Windows does.
    pub fn default_identity(&self) -> Result<PeerName> {
        if let Some(name) = self.stored_default()? {
            if self.exists(&name) {
                return Ok(name);
            }
        }
        let user = std::env::var("USER").unwrap_or_default();
        let friendly = if user.is_empty() {
            None
        } else {
            Some(user.as_str())
        };
        let name = self.create(None, friendly, None)?;
        fsutil::write_atomic(
            &self.home.join(DEFAULT_FILE),
            name.to_string().as_bytes(),
            PRIVATE_FILE_MODE,
        )?;
        Ok(name)
    }

    /// A peer name for an identity's authority and another classifier (`PeerCreatePeerName`).
    ///
    /// With no identity the name is unsecured (`0.classifier`); with no classifier it is the
    /// identity's own name; one of the two must be given.
    pub fn create_peer_name(
        &self,
        identity: Option<&PeerName>,
        classifier: Option<&str>,
    ) -> Result<PeerName> {
        match (identity, classifier) {
            (None, None) => Err(IdentityError::InvalidPeerName(
                "an identity or a classifier is needed".into(),
            )),
            (Some(id), None) => {
                self.existing_dir(id)?;
                Ok(id.clone())
            }
            (Some(id), Some(c)) => {
                self.existing_dir(id)?;
                id.with_classifier(c)
            }
            (None, Some(c)) => PeerName::new(crate::peer_name::Authority::Unsecured, c),
        }
    }

    /// The public identity document (`PeerIdentityGetXML`).
    pub fn public_xml(&self, name: &PeerName) -> Result<String> {
        let dir = self.existing_dir(name)?;
        let meta = read_meta(&dir)?;
        Ok(documents::identity_info_xml(&cert_of(&dir, &meta)?))
    }

    /// Exports an identity with its key, encrypted under `password` (`PeerIdentityExport`).
    pub fn export(&self, name: &PeerName, password: &str) -> Result<String> {
        self.export_with_rounds(name, password, export::DEFAULT_ITERATIONS)
    }

    /// [`IdentityStore::export`] with a chosen number of PBKDF2 rounds (tests use the minimum).
    pub fn export_with_rounds(
        &self,
        name: &PeerName,
        password: &str,
        rounds: u32,
    ) -> Result<String> {
        if password.is_empty() {
            return Err(IdentityError::MalformedDocument(
                "an export needs a password".into(),
            ));
        }
        let identity = self.load(name)?;
        let payload = ExportPayload {
            friendly_name: identity.friendly_name.clone(),
            certificate_der: identity.certificate.der().to_vec(),
            pkcs8: zeroize::Zeroizing::new(identity.key.pkcs8_der().to_vec()),
        };
        let blob = export::seal(&name.to_string(), &payload, password, rounds)?;
        Ok(documents::export_xml(name, &blob))
    }

    /// Imports an exported identity (`PeerIdentityImport`). Nothing in the store changes
    /// unless the whole import succeeds.
    pub fn import(&self, xml: &str, password: &str) -> Result<PeerName> {
        let (name, blob) = documents::parse_export(xml)?;
        let payload = SealedExport::decode(&blob)?.open(&name.to_string(), password)?;
        let cert = IdentityCertificate::from_der(&payload.certificate_der)?;
        let key = PrivateKey::from_pkcs8(&payload.pkcs8)?;
        if cert.public_key_der() != key.public_key_der() {
            return Err(IdentityError::BadKey(
                "the exported key does not match the exported certificate".into(),
            ));
        }
        if cert.peer_name() != &name {
            return Err(IdentityError::Tampered);
        }
        validate_friendly_name(&payload.friendly_name, false)?;
        self.install(&cert, &key, &payload.friendly_name)?;
        tracing::info!(identity = %name, "identity imported");
        Ok(name)
    }

    /// The groups an identity belongs to (`PeerEnumGroups`), sorted by peer name.
    pub fn groups(&self, name: &PeerName) -> Result<Vec<NamePair>> {
        let dir = self.existing_dir(name)?.join(GROUPS);
        let mut out = Vec::new();
        for entry in read_dir_entries(&dir)? {
            let path = entry.join(GROUP_FILE);
            let bytes = fs::read(&path).map_err(|e| IdentityError::io("read", &path, e))?;
            let g: GroupEntry =
                serde_json::from_slice(&bytes).map_err(|e| IdentityError::StoreCorrupted {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })?;
            out.push(NamePair {
                peer_name: g.peer_name,
                friendly_name: g.friendly_name,
            });
        }
        out.sort_by(|a, b| a.peer_name.cmp(&b.peer_name));
        Ok(out)
    }

    /// The directory where the group layer keeps an identity's data for one group, created
    /// (with its `group.json` entry) if missing. Listed by [`IdentityStore::groups`].
    pub fn register_group(
        &self,
        name: &PeerName,
        group: &PeerName,
        friendly_name: &str,
    ) -> Result<PathBuf> {
        let groups = self.existing_dir(name)?.join(GROUPS);
        fsutil::ensure_private_dir(&groups)?;
        let dir = groups.join(dir_name(group));
        fsutil::ensure_private_dir(&dir)?;
        let entry = GroupEntry {
            peer_name: group.to_string(),
            friendly_name: friendly_name.to_owned(),
        };
        let json = serde_json::to_vec_pretty(&entry).expect("plain struct serialises");
        fsutil::write_atomic(&dir.join(GROUP_FILE), &json, PRIVATE_FILE_MODE)?;
        Ok(dir)
    }

    /// Removes an identity's data for one group (the storage half of `PeerGroupDelete`).
    pub fn unregister_group(&self, name: &PeerName, group: &PeerName) -> Result<()> {
        let groups = self.existing_dir(name)?.join(GROUPS);
        let dir = groups.join(dir_name(group));
        if !dir.exists() {
            return Err(IdentityError::NotFound(group.to_string()));
        }
        let trash = groups.join(format!(".trash-{}", fsutil::unique_suffix()));
        fs::rename(&dir, &trash).map_err(|e| IdentityError::io("rename", &dir, e))?;
        fsutil::fsync_dir(&groups)?;
        fs::remove_dir_all(&trash).map_err(|e| IdentityError::io("remove", &trash, e))
    }

    fn install(&self, cert: &IdentityCertificate, key: &PrivateKey, friendly: &str) -> Result<()> {
        let name = cert.peer_name();
        let parent = self.home.join(IDENTITIES);
        let dest = self.identity_dir(name);
        if dest.exists() {
            return Err(IdentityError::KeyExists(name.to_string()));
        }
        let staging = StagingDir::new(&parent)?;
        fsutil::write_new_durable(
            &staging.path().join(KEY_FILE),
            key.pkcs8_der(),
            PRIVATE_FILE_MODE,
        )?;
        write_meta(staging.path(), cert, friendly)?;
        staging.commit(&dest).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty => {
                IdentityError::KeyExists(name.to_string())
            }
            _ => IdentityError::io("rename", &dest, e),
        })?;
        fsutil::fsync_dir(&parent)
    }

    fn identity_dir(&self, name: &PeerName) -> PathBuf {
        self.home.join(IDENTITIES).join(dir_name(name))
    }

    fn existing_dir(&self, name: &PeerName) -> Result<PathBuf> {
        let dir = self.identity_dir(name);
        if dir.join(META_FILE).exists() {
            Ok(dir)
        } else {
            Err(IdentityError::NotFound(name.to_string()))
        }
    }

    fn stored_default(&self) -> Result<Option<PeerName>> {
        let p = self.home.join(DEFAULT_FILE);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IdentityError::io("read", &p, e)),
        }
    }
}

/// The home directory the environment names (see [`IdentityStore::from_env`]).
pub fn default_home() -> Result<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(h) = nonempty("PEERGROUP_HOME") {
        return Ok(h);
    }
    if let Some(x) = nonempty("XDG_DATA_HOME") {
        return Ok(x.join("peergroup"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(h.join(".local/share/peergroup"));
    }
    Err(IdentityError::io(
        "find home",
        Path::new("$PEERGROUP_HOME"),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "set PEERGROUP_HOME, XDG_DATA_HOME or HOME",
        ),
    ))
}

/// Checks a friendly name: at most [`MAX_FRIENDLY_NAME_CHARS`], no control characters.
pub fn validate_friendly_name(name: &str, allow_empty: bool) -> Result<()> {
    let chars = name.chars().count();
    if chars > MAX_FRIENDLY_NAME_CHARS {
        return Err(IdentityError::InvalidFriendlyName(format!(
            "{chars} characters, the limit is {MAX_FRIENDLY_NAME_CHARS}"
        )));
    }
    if !allow_empty && name.is_empty() {
        return Err(IdentityError::InvalidFriendlyName("empty".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(IdentityError::InvalidFriendlyName(
            "holds a control character".into(),
        ));
    }
    Ok(())
}

fn dir_name(name: &PeerName) -> String {
    let mut out = String::new();
    for b in name.to_string().bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_dir_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let iter = match fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IdentityError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry.map_err(|e| IdentityError::io("list", dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn read_meta(dir: &Path) -> Result<Meta> {
    let path = dir.join(META_FILE);
    let bytes = fs::read(&path).map_err(|e| IdentityError::io("read", &path, e))?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| IdentityError::StoreCorrupted {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    if meta.format != META_FORMAT {
        return Err(IdentityError::UnsupportedVersion(format!(
            "identity store format {}",
            meta.format
        )));
    }
    Ok(meta)
}

fn cert_of(dir: &Path, meta: &Meta) -> Result<IdentityCertificate> {
    let corrupted = |why: String| IdentityError::StoreCorrupted {
        path: dir.join(META_FILE).display().to_string(),
        why,
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(&meta.certificate)
        .map_err(|e| corrupted(e.to_string()))?;
    let cert = IdentityCertificate::from_der(&der).map_err(|e| corrupted(e.to_string()))?;
    if cert.peer_name().to_string() != meta.peer_name {
        return Err(corrupted("certificate and peer name disagree".into()));
    }
    Ok(cert)
}

fn write_meta(dir: &Path, cert: &IdentityCertificate, friendly: &str) -> Result<()> {
    let meta = Meta {
        format: META_FORMAT,
        peer_name: cert.peer_name().to_string(),
        friendly_name: friendly.to_owned(),
        certificate: base64::engine::general_purpose::STANDARD.encode(cert.der()),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("plain struct serialises");
    fsutil::write_atomic(&dir.join(META_FILE), &json, PRIVATE_FILE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hresult::*;
    use std::os::unix::fs::PermissionsExt;

    fn store() -> (tempfile::TempDir, IdentityStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::open(dir.path().join("home")).unwrap();
        (dir, store)
    }

    #[test]
    fn create_list_rename_delete() {
        let (_d, s) = store();
        let a = s.create(Some("chat"), Some("Alice"), None).unwrap();
        let b = s.create(None, None, None).unwrap();
        assert_eq!(a.classifier(), "chat");
        assert_eq!(
            s.friendly_name(&b).unwrap(),
            b.to_string(),
            "no name falls back to the peer name"
        );
        let list = s.list().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list
            .iter()
            .any(|p| p.peer_name == a.to_string() && p.friendly_name == "Alice"));
        s.set_friendly_name(&a, "Alicia").unwrap();
        assert_eq!(s.friendly_name(&a).unwrap(), "Alicia");
        let info = documents::parse_identity_info(&s.public_xml(&a).unwrap()).unwrap();
        assert_eq!(
            info.friendly_name(),
            "Alicia",
            "certificate re-issued with the new name"
        );
        assert_eq!(info.peer_name(), &a);
        s.delete(&a).unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
        assert_eq!(s.delete(&a).unwrap_err().hresult(), PEER_E_NOT_FOUND);
        assert_eq!(s.friendly_name(&a).unwrap_err().hresult(), PEER_E_NOT_FOUND);
    }

    #[test]
    fn private_key_is_mode_0600_and_dirs_0700() {
        let (_d, s) = store();
        let a = s.create(Some("x"), None, None).unwrap();
        let dir = s.identity_dir(&a);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&s.home().join(IDENTITIES)), 0o700);
    }

    #[test]
    fn same_key_and_classifier_already_exists() {
        let (_d, s) = store();
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let a = s.create(Some("c"), None, Some(&key)).unwrap();
        assert_eq!(
            s.create(Some("c"), None, Some(&key)).unwrap_err().hresult(),
            PEER_E_ALREADY_EXISTS
        );
        let b = s.create(Some("d"), None, Some(&key)).unwrap();
        assert_eq!(a.authority(), b.authority());
        assert_eq!(
            s.load(&b).unwrap().private_key().algorithm(),
            KeyAlgorithm::Ed25519
        );
    }

    #[test]
    fn bad_arguments_change_nothing() {
        let (_d, s) = store();
        let code = |r: Result<PeerName>| r.unwrap_err().hresult();
        assert_eq!(
            code(s.create(Some("a b"), None, None)),
            PEER_E_INVALID_CLASSIFIER
        );
        assert_eq!(
            code(s.create(Some(&"c".repeat(150)), None, None)),
            PEER_E_CLASSIFIER_TOO_LONG
        );
        assert_eq!(
            code(s.create(None, Some(&"f".repeat(256)), None)),
            PEER_E_INVALID_FRIENDLY_NAME
        );
        assert_eq!(
            code(s.create(None, Some("bell\u{7}"), None)),
            PEER_E_INVALID_FRIENDLY_NAME
        );
        assert!(s.list().unwrap().is_empty());
        let a = s.create(None, Some("A"), None).unwrap();
        assert_eq!(
            s.set_friendly_name(&a, "").unwrap_err().hresult(),
            PEER_E_INVALID_FRIENDLY_NAME
        );
        assert_eq!(s.friendly_name(&a).unwrap(), "A");
        assert_eq!(
            fs::read_dir(s.home().join(IDENTITIES)).unwrap().count(),
            1,
            "no staging left"
        );
    }

    #[test]
    fn export_import_round_trip_and_failures_change_nothing() {
        let (_d, s) = store();
        let a = s.create(Some("exp"), Some("Exporter"), None).unwrap();
        let xml = s
            .export_with_rounds(&a, "s3cret", export::MIN_ITERATIONS)
            .unwrap();
        assert!(xml.starts_with("<PEERIDENTITYEXPORT VERSION=\"1.0\"><PEERNAME>"));
        let original_key = s.load(&a).unwrap().private_key().pkcs8_der().to_vec();
        assert_eq!(s.import(&xml, "s3cret").unwrap_err().hresult(), NTE_EXISTS);

        let (_d2, t) = store();
        let code = |x: &str, pw: &str| t.import(x, pw).unwrap_err().hresult();
        assert_eq!(code(&xml, "wrong") as u32, 0x80070056);
        assert_eq!(code("garbage", "s3cret"), E_INVALIDARG);
        let cut = xml.len() - 60;
        assert_eq!(code(&xml[..cut], "s3cret"), E_INVALIDARG, "truncated XML");
        let tampered = tamper_data(&xml);
        assert_eq!(code(&tampered, "s3cret"), NTE_BAD_DATA);
        let short = shorten_data(&xml);
        assert_eq!(code(&short, "s3cret"), NTE_BAD_LEN);
        assert!(t.list().unwrap().is_empty(), "failed imports leave nothing");

        let b = t.import(&xml, "s3cret").unwrap();
        assert_eq!(b, a);
        assert_eq!(t.friendly_name(&b).unwrap(), "Exporter");
        assert_eq!(
            t.load(&b).unwrap().private_key().pkcs8_der(),
            original_key.as_slice()
        );
    }

    fn data_of(xml: &str) -> (usize, usize, Vec<u8>) {
        let start = xml.find("bin.base64\">").unwrap() + "bin.base64\">".len();
        let end = start + xml[start..].find('<').unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&xml[start..end])
            .unwrap();
        (start, end, blob)
    }

    fn with_data(xml: &str, blob: &[u8]) -> String {
        let (start, end, _) = data_of(xml);
        format!(
            "{}{}{}",
            &xml[..start],
            base64::engine::general_purpose::STANDARD.encode(blob),
            &xml[end..]
        )
    }

    fn tamper_data(xml: &str) -> String {
        let (_, _, mut blob) = data_of(xml);
        let n = blob.len();
        blob[n - 20] ^= 0x40;
        with_data(xml, &blob)
    }

    fn shorten_data(xml: &str) -> String {
        let (_, _, blob) = data_of(xml);
        with_data(xml, &blob[..40])
    }

    #[test]
    fn default_identity_is_created_once_and_forgotten_on_delete() {
        let (_d, s) = store();
        let d1 = s.default_identity().unwrap();
        assert_eq!(s.default_identity().unwrap(), d1);
        assert_eq!(d1.classifier(), "");
        s.delete(&d1).unwrap();
        let d2 = s.default_identity().unwrap();
        assert_ne!(d1, d2);
    }

    #[test]
    fn groups_block_deletion() {
        let (_d, s) = store();
        let a = s.create(Some("g"), None, None).unwrap();
        assert!(s.groups(&a).unwrap().is_empty());
        let g: PeerName = format!("{}.mygroup", "cd".repeat(20)).parse().unwrap();
        let dir = s.register_group(&a, &g, "My Group").unwrap();
        assert!(dir.is_dir());
        assert_eq!(
            s.groups(&a).unwrap(),
            vec![NamePair {
                peer_name: g.to_string(),
                friendly_name: "My Group".into()
            }]
        );
        assert_eq!(s.delete(&a).unwrap_err().hresult(), PEER_E_GROUPS_EXIST);
        s.unregister_group(&a, &g).unwrap();
        s.delete(&a).unwrap();
    }

    #[test]
    fn create_peer_name_rules() {
        let (_d, s) = store();
        let a = s.create(Some("me"), None, None).unwrap();
        assert_eq!(s.create_peer_name(Some(&a), None).unwrap(), a);
        let n = s.create_peer_name(Some(&a), Some("other")).unwrap();
        assert_eq!((n.authority(), n.classifier()), (a.authority(), "other"));
        assert_eq!(
            s.create_peer_name(None, Some("Games")).unwrap().to_string(),
            "0.Games"
        );
        assert_eq!(
            s.create_peer_name(None, None).unwrap_err().hresult(),
            PEER_E_INVALID_PEER_NAME
        );
        let ghost: PeerName = format!("{}.x", "ef".repeat(20)).parse().unwrap();
        assert_eq!(
            s.create_peer_name(Some(&ghost), Some("y"))
                .unwrap_err()
                .hresult(),
            PEER_E_NOT_FOUND
        );
    }

    #[test]
    fn corrupted_metadata_is_reported_not_panicked() {
        let (_d, s) = store();
        let a = s.create(Some("c"), None, None).unwrap();
        fs::write(s.identity_dir(&a).join(META_FILE), b"{not json").unwrap();
        assert_eq!(
            s.friendly_name(&a).unwrap_err().hresult(),
            PEER_E_CERT_STORE_CORRUPTED
        );
        assert!(
            s.list().unwrap().is_empty(),
            "unreadable entries are skipped in listings"
        );
        fs::remove_file(s.identity_dir(&a).join(KEY_FILE)).unwrap();
        let b = s.create(Some("d"), None, None).unwrap();
        fs::remove_file(s.identity_dir(&b).join(KEY_FILE)).unwrap();
        assert_eq!(s.load(&b).unwrap_err().hresult(), NTE_NO_KEY);
    }
}
