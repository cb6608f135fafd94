//! The deterministic group's errors: one enum per concern, each variant saying what broke
//! with the values that broke it, and the one HRESULT table of this crate.
//!
//! A caller matches on the concern ([`ProtoError::Record`]) or on the exact rule
//! ([`RecordError::IdNotBound`]); the identity layer's error stays the `source` where it is
//! the cause. The variants that carry no source serialise, so the service can return the very
//! error the in-process call would (`peergroup-core`'s `service::proto`).

use serde::{Deserialize, Serialize};

use crate::identity::hresult::{self, HRESULT};
use crate::identity::IdentityError;

/// Everything the deterministic group refuses.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
///
/// The variants that carry a source come last in every enum here: serde numbers variants in
/// order, and skipped ones must not shift the others.
pub enum ProtoError {
    /// Group properties out of range or not allowed here.
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    /// An invitation that does not parse, is not trusted, or is of the other kind.
    #[error(transparent)]
    Invitation(#[from] InvitationError),
    /// A record that breaks a field rule, does not decode or is not validly signed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A record's attribute XML (`PEER_RECORD.pwzAttributes`).
    #[error(transparent)]
    Attributes(#[from] AttributesError),
    /// `PeerGroupSearchRecords` criteria.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// A database export file (`records::dbfile`).
    #[error(transparent)]
    DatabaseFile(#[from] DatabaseFileError),
    /// The member's roles do not allow this.
    #[error(transparent)]
    NotAuthorized(#[from] AuthorizationError),
    /// From the identity layer (keys, certificates, membership chains, XML documents).
    #[error(transparent)]
    #[serde(skip)]
    Identity(#[from] IdentityError),
    /// The host behind a port (storage, signing) failed, with the HRESULT it gives that.
    #[error(transparent)]
    #[serde(skip)]
    Port(#[from] PortError),
}

/// A failure of the host behind one of the machine's ports ([`crate::port`]): the runtime's
/// own error, carried through the machine untouched, with its HRESULT.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PortError {
    hresult: HRESULT,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl PortError {
    /// The host's error `source`, which a Windows program sees as `hresult`.
    pub fn new(
        hresult: HRESULT,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError {
            hresult,
            source: source.into(),
        }
    }

    /// The HRESULT the host gave.
    pub fn hresult(&self) -> HRESULT {
        self.hresult
    }

    /// The host's error, for the host to take back (a downcast gives its own type).
    pub fn into_source(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.source
    }
}

/// Result alias of the deterministic group.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;

impl ProtoError {
    /// The HRESULT a Windows program would see. This and the sub-enums' `hresult` below are
    /// the one table of this crate.
    pub fn hresult(&self) -> HRESULT {
        match self {
            ProtoError::Identity(e) => e.hresult(),
            ProtoError::Properties(e) => e.hresult(),
            ProtoError::Invitation(e) => e.hresult(),
            ProtoError::Record(e) => e.hresult(),
            ProtoError::Attributes(e) => e.hresult(),
            ProtoError::Search(e) => e.hresult(),
            ProtoError::DatabaseFile(_) => hresult::PEER_E_INVALID_DATABASE,
            ProtoError::NotAuthorized(_) => hresult::PEER_E_NOT_AUTHORIZED,
            ProtoError::Port(e) => e.hresult(),
        }
    }
}

impl PropertiesError {
    /// Its HRESULT: the classifier and the password policy have their own.
    pub fn hresult(&self) -> HRESULT {
        match self {
            PropertiesError::Classifier { .. } => hresult::PEER_E_INVALID_CLASSIFIER,
            PropertiesError::PasswordPolicy { .. } => hresult::PEER_E_PASSWORD_DOES_NOT_MEET_POLICY,
            _ => hresult::PEER_E_INVALID_GROUP_PROPERTIES,
        }
    }
}

impl InvitationError {
    /// Its HRESULT.
    pub fn hresult(&self) -> HRESULT {
        use InvitationError as I;
        match self {
            I::Expired => hresult::PEER_E_INVALID_TIME_PERIOD,
            I::ForAnother { .. }
            | I::Root(_)
            | I::RootOfAnotherGroup
            | I::ChainOfAnother
            | I::RootKeyNotTheGroups => hresult::PEER_E_INVITATION_NOT_TRUSTED,
            // Malformed text, and the other join function: E_INVALIDARG, as Windows.
            _ => hresult::E_INVALIDARG,
        }
    }
}

impl RecordError {
    /// Its HRESULT: size and expiration have their own.
    pub fn hresult(&self) -> HRESULT {
        match self {
            RecordError::TooLarge => hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED,
            RecordError::Expiration(_) => hresult::PEER_E_INVALID_RECORD_EXPIRATION,
            _ => hresult::PEER_E_INVALID_RECORD,
        }
    }
}

impl AttributesError {
    /// Its HRESULT: the count has its own.
    pub fn hresult(&self) -> HRESULT {
        match self {
            AttributesError::TooMany => hresult::PEER_E_TOO_MANY_ATTRIBUTES,
            _ => hresult::PEER_E_INVALID_ATTRIBUTES,
        }
    }
}

impl SearchError {
    /// Its HRESULT: Windows answers E_INVALIDARG for a bad escape, not PEER_E_INVALID_SEARCH.
    pub fn hresult(&self) -> HRESULT {
        match self {
            SearchError::BadEscape { .. } | SearchError::LoneBackslash { .. } => {
                hresult::E_INVALIDARG
            }
            _ => hresult::PEER_E_INVALID_SEARCH,
        }
    }
}

/// Where an XML document breaks its schema; shared by the attribute, search criteria and
/// invitation parsers. Names are the document's own, as read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Shape {
    /// The document element is another one.
    #[error("the root is <{found}>, not <{expected}>")]
    WrongRoot {
        /// The element the schema wants.
        expected: String,
        /// The one the document has.
        found: String,
    },
    /// An attribute the element does not take.
    #[error("<{element}> has an unknown attribute {attribute:?}")]
    UnknownAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// An attribute given twice.
    #[error("<{element}> repeats {attribute:?}")]
    RepeatedAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// A required attribute is missing.
    #[error("<{element}> without {attribute}")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// Text where only elements may be.
    #[error("text directly inside <{element}>")]
    Text {
        /// The element.
        element: String,
    },
    /// An element where the schema has none of that name.
    #[error("<{child}> inside <{parent}>")]
    Misplaced {
        /// The enclosing element.
        parent: String,
        /// The element found.
        child: String,
    },
    /// A required element is missing.
    #[error("no <{element}>")]
    Missing {
        /// The element.
        element: String,
    },
    /// An element that needs children has none, or more than one where one is allowed.
    #[error("<{element}> has {found} children")]
    Children {
        /// The element.
        element: String,
        /// How many it has.
        found: usize,
    },
}

/// Why group properties are refused (`PEER_E_INVALID_GROUP_PROPERTIES`, but for the
/// classifier and the password policy, which have their own HRESULTs).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum PropertiesError {
    /// Create generates the group peer name; it may not be given.
    #[error(
        "invalid group properties: the group peer name is generated by create and may not be set"
    )]
    GroupNameGiven,
    /// Flag bits this library does not know.
    #[error("invalid group properties: unknown flags {0:#x}")]
    UnknownFlags(u32),
    /// Authentication scheme bits this library does not know.
    #[error("invalid group properties: unknown authentication schemes {0:#x}")]
    UnknownSchemes(u32),
    /// A free text field over [`crate::properties::MAX_TEXT_CHARS`] or holding a control
    /// character.
    #[error("invalid group properties: {0} is too long or holds control characters")]
    Text(TextField),
    /// The member data lifetime outside its range.
    #[error(
        "invalid group properties: member data lifetime {seconds} s is outside {}..={}",
        crate::properties::MIN_MEMBER_DATA_LIFETIME,
        crate::properties::MAX_MEMBER_DATA_LIFETIME
    )]
    MemberDataLifetime {
        /// The lifetime asked for.
        seconds: u32,
    },
    /// The presence lifetime below the default.
    #[error(
        "invalid group properties: presence lifetime {seconds} s is below {}",
        crate::properties::DEFAULT_PRESENCE_LIFETIME
    )]
    PresenceLifetime {
        /// The lifetime asked for.
        seconds: u32,
    },
    /// Password authentication without a password.
    #[error("invalid group properties: password authentication needs a group password")]
    NoPassword,
    /// A password operation on a group without password authentication.
    #[error("invalid group properties: the group has no password authentication")]
    NoPasswordAuthentication,
    /// A field that identifies the group cannot change.
    #[error("invalid group properties: {0} cannot change")]
    Fixed(FixedField),
    /// The classifier is too long or breaks the peer name rules (`PEER_E_INVALID_CLASSIFIER`).
    #[error("invalid classifier: {why}")]
    Classifier {
        /// Its length in characters.
        chars: usize,
        /// The rule it breaks.
        why: String,
    },
    /// The password is empty or too long (`PEER_E_PASSWORD_DOES_NOT_MEET_POLICY`).
    #[error(
        "group password: the group password must hold 1 to {} characters",
        crate::properties::MAX_PASSWORD_CHARS
    )]
    PasswordPolicy {
        /// Its length in characters.
        chars: usize,
    },
    /// The friendly name breaks the identity layer's rule.
    #[error("invalid group properties: friendly name: {0}")]
    #[serde(skip)]
    FriendlyName(#[source] IdentityError),
}

/// A free text field of the group properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextField {
    /// `pwzComment`.
    Comment,
    /// `pwzCloud`.
    Cloud,
}

impl std::fmt::Display for TextField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TextField::Comment => "comment",
            TextField::Cloud => "cloud",
        })
    }
}

/// A field of the group properties that a group keeps for its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixedField {
    /// `pwzClassifier`.
    Classifier,
    /// `pwzCloud`.
    Cloud,
    /// `pwzGroupPeerName`.
    GroupPeerName,
    /// `pwzCreatorPeerName`.
    CreatorPeerName,
}

impl std::fmt::Display for FixedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FixedField::Classifier => "the classifier",
            FixedField::Cloud => "the cloud",
            FixedField::GroupPeerName => "the group peer name",
            FixedField::CreatorPeerName => "the creator",
        })
    }
}

/// Why an invitation is refused.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum InvitationError {
    /// The document breaks the invitation schema.
    #[error("invalid invitation: {0}")]
    Shape(Shape),
    /// A numeric field that does not parse.
    #[error("invalid invitation: <{element}> is not a number")]
    NotANumber {
        /// The element.
        element: String,
    },
    /// A role name this library does not know.
    #[error("invalid invitation: unknown role {0}")]
    UnknownRole(String),
    /// An authentication scheme that is neither GMC nor password.
    #[error("invalid invitation: unknown authentication scheme {0}")]
    UnknownScheme(u32),
    /// An address that does not parse.
    #[error("invalid invitation: bad address {0:?}")]
    BadAddress(String),
    /// The root certificate names another group than the invitation.
    #[error("invitation not trusted: the root certificate belongs to another group")]
    RootOfAnotherGroup,
    /// A configuration's membership chain is another identity's.
    #[error("invitation not trusted: the membership chain is of another identity")]
    ChainOfAnother,
    /// A configuration's root key is not the group's.
    #[error("invitation not trusted: the root key is not the group's")]
    RootKeyNotTheGroups,
    /// The invitation is for another identity.
    #[error("invitation not trusted: the invitation is for {invitee}, not {identity}")]
    ForAnother {
        /// Whom it invites.
        invitee: String,
        /// Who tried to use it.
        identity: String,
    },
    /// Outside its validity period (`PEER_E_INVALID_TIME_PERIOD`).
    #[error("invitation outside its validity period")]
    Expired,
    /// A password invitation given to `PeerGroupJoin`.
    #[error("this is a password invitation: join it with the group password")]
    NeedsPassword,
    /// A GMC invitation given to `PeerGroupPasswordJoin`.
    #[error("this invitation carries a membership certificate: use PeerGroupJoin")]
    NeedsJoin,
    /// The text is not well-formed XML within the size bound.
    #[error("invalid invitation: {0}")]
    #[serde(skip)]
    Xml(#[source] IdentityError),
    /// The group peer name does not parse.
    #[error("invalid invitation: {0}")]
    #[serde(skip)]
    GroupName(#[source] IdentityError),
    /// A base64 certificate field that does not decode.
    #[error("invalid invitation: {0}")]
    #[serde(skip)]
    Encoding(#[source] IdentityError),
    /// The root certificate does not parse or verify.
    #[error("invitation not trusted: group root certificate: {0}")]
    #[serde(skip)]
    Root(#[source] IdentityError),
}

/// A field of the record encoding, named in its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordField {
    /// The creator's peer name.
    Creator,
    /// The modifier's peer name.
    Modifier,
    /// The attribute XML.
    Attributes,
    /// The payload.
    Data,
    /// The security data (chain and signature).
    Security,
    /// The signing chain inside the security data.
    SigningChain,
    /// The signature inside the security data.
    Signature,
}

impl std::fmt::Display for RecordField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordField::Creator => "creator",
            RecordField::Modifier => "modifier",
            RecordField::Attributes => "attributes",
            RecordField::Data => "data",
            RecordField::Security => "security data",
            RecordField::SigningChain => "signing chain",
            RecordField::Signature => "signature",
        })
    }
}

/// Why a record is refused (`PEER_E_INVALID_RECORD`, but for its size and its expiration).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum RecordError {
    /// The data is over `records::record::MAX_RECORD_DATA`, or the encoding over
    /// `MAX_RECORD_BYTES` (`PEER_E_MAX_RECORD_SIZE_EXCEEDED`).
    #[error("record too large")]
    TooLarge,
    /// Version 0: versions start at 1.
    #[error("invalid record: version 0")]
    VersionZero,
    /// Flag bits this library does not know.
    #[error("invalid record: unknown flags {0:#x}")]
    UnknownFlags(u32),
    /// A field empty where it may not be, or over its bound.
    #[error("invalid record: {field} of {len} bytes (at most {max})")]
    FieldLength {
        /// The field.
        field: RecordField,
        /// Its length.
        len: usize,
        /// Its bound.
        max: usize,
    },
    /// A text field that is not UTF-8.
    #[error("invalid record: {0} is not UTF-8")]
    NotUtf8(RecordField),
    /// A tombstone that still carries data.
    #[error("invalid record: a deleted record carries data")]
    DeletedWithData,
    /// Not the record encoding's magic.
    #[error("invalid record: not a record")]
    NotARecord,
    /// An encoding format this build does not read.
    #[error("invalid record: record format {0}")]
    Format(u8),
    /// The bytes end inside the record.
    #[error("invalid record: record truncated")]
    Truncated,
    /// Bytes after the record, or after the signature inside the security data.
    #[error("invalid record: {0} bytes after the record")]
    Trailing(usize),
    /// Signing with a chain that is not the modifier's.
    #[error("invalid record: the signing chain is {chain}'s, the modifier is {modifier}")]
    ChainNotTheModifiers {
        /// The chain's member.
        chain: String,
        /// The record's modifier.
        modifier: String,
    },
    /// Signing with a key that is not the chain's.
    #[error("invalid record: the signing key is not the chain's")]
    KeyNotTheChains,
    /// A version modified further in the future than `MAX_FUTURE_SKEW_MS`.
    #[error("invalid record: modified at {modified} ms, in the future of {now} ms")]
    FromTheFuture {
        /// The version's modification time.
        modified: i64,
        /// The verifier's time.
        now: i64,
    },
    /// The id is not the one `derive_id` gives for its creator, type, creation time and
    /// nonce.
    #[error("invalid record: the record id is not bound to its creator, type and creation time")]
    IdNotBound,
    /// The chain's member is not the record's modifier.
    #[error("invalid record: signed by {signer}, modifier is {modifier}")]
    SignedByAnother {
        /// Whose chain signed.
        signer: String,
        /// The record's modifier.
        modifier: String,
    },
    /// No version number is left after the stored one.
    #[error("invalid record: no version after the last")]
    NoNextVersion,
    /// A presence payload with more addresses than `members::MAX_PRESENCE_ADDRS`.
    #[error("invalid record: presence with {0} addresses")]
    PresenceAddresses(usize),
    /// The expiration breaks a rule (`PEER_E_INVALID_RECORD_EXPIRATION`).
    #[error("invalid record expiration: {0}")]
    Expiration(ExpirationError),
    /// The signing chain does not decode.
    #[error("invalid record: signing chain: {0}")]
    #[serde(skip)]
    SigningChain(#[source] IdentityError),
    /// A presence payload that does not parse.
    #[error("invalid record: presence: {0}")]
    #[serde(skip)]
    Presence(#[source] serde_json::Error),
    /// A member data payload whose chain does not decode.
    #[error("invalid record: member data: {0}")]
    #[serde(skip)]
    MemberData(#[source] IdentityError),
}

/// How a record's expiration breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ExpirationError {
    /// Not after now.
    #[error("expiration {expires} ms is not after now ({now} ms)")]
    NotInTheFuture {
        /// The expiration asked for.
        expires: i64,
        /// The time of the call.
        now: i64,
    },
    /// An update may keep or extend the expiration, never shorten it.
    #[error("expiration {expires} ms is earlier than the record's {stored} ms")]
    Shortened {
        /// The expiration asked for.
        expires: i64,
        /// The stored version's.
        stored: i64,
    },
}

/// Why an attribute value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ValueError {
    /// A string over `records::attributes::MAX_VALUE_CHARS` characters.
    #[error(
        "a string value is longer than {} characters",
        crate::records::attributes::MAX_VALUE_CHARS
    )]
    TooLong,
    /// A character XML 1.0 cannot carry.
    #[error("a string value holds {0:?}, which XML cannot carry")]
    NotXml(char),
    /// Leading or trailing white space (XML would not keep it).
    #[error("a string value may not start or end with white space")]
    Space,
    /// An `int` value that is not a signed 64-bit integer.
    #[error("{0:?} is not a signed 64-bit integer")]
    NotAnInteger(String),
    /// A `date` value that is not a W3C date.
    #[error("{text:?} is not a W3C date: {why}")]
    NotADate {
        /// The text.
        text: String,
        /// The rule it breaks.
        why: String,
    },
}

/// Why a record's attribute XML is refused (`PEER_E_INVALID_ATTRIBUTES`, but for the count).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum AttributesError {
    /// The document breaks the attribute schema.
    #[error("invalid record attributes: {0}")]
    Shape(Shape),
    /// An attribute without a type.
    #[error("invalid record attributes: attribute {name:?} has no type")]
    NoType {
        /// The attribute.
        name: String,
    },
    /// A type that is none of `string`, `int`, `date`.
    #[error("invalid record attributes: attribute {name:?} has an unknown type {ty:?}")]
    UnknownType {
        /// The attribute.
        name: String,
        /// The type given.
        ty: String,
    },
    /// A name that is not 1 to `MAX_NAME_CHARS` ASCII letters or digits.
    #[error(
        "invalid record attributes: attribute name {0:?} is not 1 to {max} ASCII letters or digits",
        max = crate::records::attributes::MAX_NAME_CHARS
    )]
    BadName(String),
    /// A name the infrastructure keeps for itself.
    #[error("invalid record attributes: {0:?} is a reserved system attribute")]
    Reserved(String),
    /// A name given twice (names compare without regard to ASCII case).
    #[error("invalid record attributes: attribute {0:?} appears twice")]
    Repeated(String),
    /// A value that breaks its type's rule.
    #[error("invalid record attributes: attribute {name:?}: {why}")]
    Value {
        /// The attribute.
        name: String,
        /// The rule.
        why: ValueError,
    },
    /// More than `MAX_ATTRIBUTES` (`PEER_E_TOO_MANY_ATTRIBUTES`).
    #[error(
        "too many record attributes (at most {})",
        crate::records::attributes::MAX_ATTRIBUTES
    )]
    TooMany,
    /// Not well-formed XML within the size bound.
    #[error("invalid record attributes: {0}")]
    #[serde(skip)]
    Xml(#[source] IdentityError),
}

/// Why search criteria are refused (`PEER_E_INVALID_SEARCH`, but for escapes).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum SearchError {
    /// The document breaks the criteria schema.
    #[error("invalid search criteria: {0}")]
    Shape(Shape),
    /// `<and>`/`<or>` nested deeper than `MAX_NESTING`.
    #[error(
        "invalid search criteria: <and>/<or> nested deeper than {}",
        crate::records::search::MAX_NESTING
    )]
    TooDeep,
    /// More than `MAX_CLAUSES` clauses.
    #[error(
        "invalid search criteria: more than {} clauses",
        crate::records::search::MAX_CLAUSES
    )]
    TooManyClauses,
    /// A clause on a name that is not a valid attribute name.
    #[error(
        "invalid search criteria: attrib {0:?} is not 1 to {max} ASCII letters or digits",
        max = crate::records::attributes::MAX_NAME_CHARS
    )]
    BadName(String),
    /// A clause type that is none of `string`, `int`, `date`.
    #[error("invalid search criteria: clause on {attrib:?} has an unknown type {ty:?}")]
    UnknownType {
        /// The clause's attribute.
        attrib: String,
        /// The type given.
        ty: String,
    },
    /// A `compare` that is not one of the six.
    #[error("invalid search criteria: clause on {attrib:?}: unknown compare {compare:?}")]
    UnknownCompare {
        /// The clause's attribute.
        attrib: String,
        /// The comparison given.
        compare: String,
    },
    /// A string pattern over `MAX_PATTERN_CHARS` characters.
    #[error(
        "invalid search criteria: clause on {0:?}: value longer than {max} characters",
        max = crate::records::search::MAX_PATTERN_CHARS
    )]
    PatternTooLong(String),
    /// Wildcards with an ordering comparison.
    #[error("invalid search criteria: clause on {attrib:?}: wildcards with compare={compare:?}")]
    WildcardOrdering {
        /// The clause's attribute.
        attrib: String,
        /// The comparison.
        compare: String,
    },
    /// A value that does not parse as the clause's type.
    #[error("invalid search criteria: clause on {attrib:?}: {why}")]
    Value {
        /// The clause's attribute.
        attrib: String,
        /// The rule.
        why: ValueError,
    },
    /// A backslash before a character other than `*`, `?`, `\` (E_INVALIDARG, as Windows).
    #[error(
        "invalid escape in search criteria: \\{escaped} in {pattern:?}: only \\*, \\? and \\\\ are escapes"
    )]
    BadEscape {
        /// The character after the backslash.
        escaped: char,
        /// The whole value.
        pattern: String,
    },
    /// A value ending with a lone backslash (E_INVALIDARG, as Windows).
    #[error("invalid escape in search criteria: {pattern:?} ends with a lone backslash")]
    LoneBackslash {
        /// The whole value.
        pattern: String,
    },
    /// Not well-formed XML within the size bound.
    #[error("invalid search criteria: {0}")]
    #[serde(skip)]
    Xml(#[source] IdentityError),
}

/// Why a database export file is refused (`PEER_E_INVALID_DATABASE`).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum DatabaseFileError {
    /// Over `MAX_DATABASE_FILE_BYTES`.
    #[error(
        "invalid database file: {0} bytes, more than {max}",
        max = crate::records::dbfile::MAX_DATABASE_FILE_BYTES
    )]
    TooLarge(u64),
    /// Shorter than the smallest file, or ending inside a field.
    #[error("invalid database file: truncated")]
    Truncated,
    /// Not this format's magic.
    #[error("invalid database file: not a Peergroup database file")]
    NotADatabaseFile,
    /// The digest does not match the content.
    #[error("invalid database file: the checksum does not match: truncated or corrupted")]
    Checksum,
    /// A format version this build does not read.
    #[error("invalid database file: format version {0}")]
    Format(u8),
    /// A group or member peer name empty, too long or not UTF-8.
    #[error("invalid database file: the {0} peer name is malformed")]
    BadName(FileName),
    /// A record entry with an impossible length.
    #[error("invalid database file: record {index} of {len} bytes")]
    RecordLength {
        /// Its position in the file.
        index: usize,
        /// The length given.
        len: usize,
    },
    /// A record that does not decode.
    #[error("invalid database file: record {index}: {source}")]
    Record {
        /// Its position in the file.
        index: usize,
        /// Why.
        source: RecordError,
    },
    /// An entry tag this format does not have.
    #[error("invalid database file: unknown tag {0}")]
    UnknownTag(u8),
    /// The trailer's count is not the number of records.
    #[error("invalid database file: the trailer counts {counted} records, the file holds {held}")]
    Count {
        /// The trailer's count.
        counted: u64,
        /// The records read.
        held: u64,
    },
    /// Bytes after the trailer.
    #[error("invalid database file: {0} bytes after the trailer")]
    Trailing(usize),
    /// Another group's database.
    #[error("invalid database file: the file is a database of group {file:?}, not of {group:?}")]
    OtherGroup {
        /// The file's group.
        file: String,
        /// The group importing.
        group: String,
    },
    /// Another member's database: only one's own can be imported.
    #[error(
        "invalid database file: the file was exported by {file:?}; only {member:?}'s own database can be imported"
    )]
    OtherMember {
        /// The file's member.
        file: String,
        /// The member importing.
        member: String,
    },
}

/// The peer names a database file carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileName {
    /// The group's.
    Group,
    /// The exporting member's.
    Member,
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileName::Group => "group",
            FileName::Member => "member",
        })
    }
}

/// What the member's roles do not allow (`PEER_E_NOT_AUTHORIZED`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AuthorizationError {
    /// Another member made version 1 of a record.
    #[error("not authorized: version 1 of a record must be made by its creator")]
    FirstVersionByAnother,
    /// A later version by a member who is neither the creator nor an administrator.
    #[error("not authorized: {modifier} is neither the creator nor an administrator")]
    NotCreatorOrAdmin {
        /// The modifier.
        modifier: String,
    },
    /// A presence record made or changed by another member than the one it describes.
    #[error("not authorized: a presence record is only made by the member it describes")]
    PresenceOfAnother,
    /// Member data naming another member, published by a member who is no administrator.
    #[error(
        "not authorized: member data names another member and its publisher is no administrator"
    )]
    MemberDataOfAnother,
    /// A record of a reserved type that only the library makes.
    #[error("not authorized: the record type is reserved to the infrastructure")]
    ReservedType,
    /// Group properties not signed by an administrator.
    #[error("not authorized: properties not signed by an administrator")]
    PropertiesNotByAdmin,
    /// An administrator's call by a member who is none.
    #[error("not authorized: only administrators {0}")]
    AdminsOnly(AdminCall),
    /// An invitation by a member who is neither administrator nor inviting member.
    #[error("not authorized: only administrators and inviting members invite")]
    NotInviter,
}

/// The calls only administrators make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCall {
    /// `PeerGroupSetProperties`.
    SetProperties,
    /// `PeerGroupIssueCredentials`.
    IssueCredentials,
}

impl std::fmt::Display for AdminCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminCall::SetProperties => "set group properties",
            AdminCall::IssueCredentials => "issue credentials",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_each_concern_its_hresult() {
        let cases: [(ProtoError, HRESULT); 9] = [
            (
                RecordError::TooLarge.into(),
                hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED,
            ),
            (
                RecordError::IdNotBound.into(),
                hresult::PEER_E_INVALID_RECORD,
            ),
            (
                RecordError::Expiration(ExpirationError::Shortened {
                    expires: 1,
                    stored: 2,
                })
                .into(),
                hresult::PEER_E_INVALID_RECORD_EXPIRATION,
            ),
            (
                AttributesError::TooMany.into(),
                hresult::PEER_E_TOO_MANY_ATTRIBUTES,
            ),
            (
                SearchError::LoneBackslash {
                    pattern: "a\\".into(),
                }
                .into(),
                hresult::E_INVALIDARG,
            ),
            (SearchError::TooDeep.into(), hresult::PEER_E_INVALID_SEARCH),
            (
                InvitationError::Expired.into(),
                hresult::PEER_E_INVALID_TIME_PERIOD,
            ),
            (
                PropertiesError::PasswordPolicy { chars: 0 }.into(),
                hresult::PEER_E_PASSWORD_DOES_NOT_MEET_POLICY,
            ),
            (
                AuthorizationError::ReservedType.into(),
                hresult::PEER_E_NOT_AUTHORIZED,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.hresult(), want, "{e}");
        }
    }

    #[test]
    fn identity_causes_stay_the_source() {
        use std::error::Error as _;
        let e = ProtoError::from(RecordError::SigningChain(IdentityError::Tampered));
        assert!(e.source().is_some(), "{e}");
        // And such an error does not serialise: the service falls back to HRESULT and text.
        assert!(postcard::to_allocvec(&e).is_err());
        let plain = ProtoError::from(RecordError::FieldLength {
            field: RecordField::Creator,
            len: 0,
            max: 1,
        });
        let bytes = postcard::to_allocvec(&plain).unwrap();
        let back: ProtoError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_string(), plain.to_string());
    }
}
