//! The signed plugin package: what an integrator ships and the host verifies
//! before a byte of the component runs.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "VIGILPKG" | format version (1 byte, = 1)
//! | u32 manifest length | manifest JSON
//! | u32 component length | component bytes
//! | signer's ed25519 public key (32 bytes) | ed25519 signature (64 bytes)
//! ```
//!
//! The signature covers `sha256(manifest) || sha256(component)`. The signer's
//! key travels with the package only so that a refusal can name it; trust
//! comes from the host's list of trusted keys, never from the package.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The package magic.
pub const MAGIC: &[u8; 8] = b"VIGILPKG";
/// The package format version this host reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// SRP actions a manifest may subscribe to (or `"*"` for all).
pub const ACTIONS: [&str; 6] = ["hold", "secure", "lockdown", "evacuate", "shelter", "all-clear"];

const SIGNATURE_BLOCK: usize = 32 + 64;

/// What a plugin says about itself. It asks for capabilities; the operator's
/// grant decides what it gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// 1 to 64 of `[a-z0-9-]`; also the plugin's folder and grant name.
    pub name: String,
    /// The plugin's own version (free text, shown to operators).
    pub version: String,
    /// The `vigil:plugin` WIT version it was built for, e.g. `"0.1.0"`.
    pub wit: String,
    /// One line for operators.
    #[serde(default)]
    pub description: String,
    /// The SRP actions it wants to hear about (`ACTIONS`), or `["*"]`.
    #[serde(default)]
    pub actions: Vec<String>,
    /// What it asks for.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The JSON schema of its configuration (informational).
    #[serde(default)]
    pub config_schema: serde_json::Value,
}

/// Capabilities a plugin requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `host:port` endpoints it wants to connect to, or `"*"`: whichever
    /// endpoints the operator's grant lists (a plugin whose devices differ
    /// per site ships one package for all of them).
    #[serde(default)]
    pub network: Vec<String>,
    /// Serial port names (as the operator's grant names them).
    #[serde(default)]
    pub serial: Vec<String>,
    /// A read-only data folder mounted at `/data`.
    #[serde(default)]
    pub data: bool,
}

/// A verified package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The component bytes (not yet compiled or checked).
    pub component: Vec<u8>,
    /// The key that signed it (one of the trusted keys).
    pub signer: VerifyingKey,
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// No `VIGILPKG` magic.
    #[error("not a Vigil plugin package (no VIGILPKG header)")]
    NotAPackage,
    /// A format version this host does not read.
    #[error("package format version {0} is not supported; this host reads version {FORMAT_VERSION}")]
    UnsupportedFormat(u8),
    /// Shorter than its lengths say, or trailing bytes.
    #[error("package is truncated or malformed: {0}")]
    Truncated(&'static str),
    /// The signature block is empty.
    #[error("package is unsigned; sign it with `build` and a key the appliance trusts")]
    Unsigned,
    /// Signed by a key not on the trusted list.
    #[error("package is signed by an untrusted key {key_id}; add the key to the trusted keys or re-sign")]
    UntrustedKey {
        /// `key_id` of the signer.
        key_id: String,
    },
    /// The signature does not match the contents.
    #[error("package signature does not match its contents (tampered or corrupted)")]
    BadSignature,
    /// The manifest is not valid JSON or breaks a rule.
    #[error("package manifest is invalid: {0}")]
    ManifestInvalid(String),
}

/// A short, stable id for a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes())[..8])
}

/// Makes a new signing key pair.
pub fn keygen() -> (SigningKey, VerifyingKey) {
    let signing = SigningKey::generate(&mut rand_core::OsRng);
    let verifying = signing.verifying_key();
    (signing, verifying)
}

/// The text form of a public key: 64 hex digits.
pub fn verifying_key_to_hex(key: &VerifyingKey) -> String {
    hex(key.as_bytes())
}

/// Parses `verifying_key_to_hex`'s form.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, KeyError> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError("a public key is 64 hex digits".into()));
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| KeyError(e.to_string()))?;
    }
    VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError(format!("not an ed25519 public key: {e}")))
}

/// The text form of a secret key: base64 of its 32 bytes.
pub fn signing_key_to_base64(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.to_bytes())
}

/// Parses `signing_key_to_base64`'s form.
pub fn signing_key_from_base64(text: &str) -> Result<SigningKey, KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| KeyError(format!("not base64: {e}")))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError("a secret key is 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A key in text form that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid key: {0}")]
pub struct KeyError(String);

/// Builds and signs a package.
pub fn build(manifest: &Manifest, component: &[u8], key: &SigningKey) -> Vec<u8> {
    let manifest_json = serde_json::to_vec(manifest).expect("a manifest always serializes");
    let signature = key.sign(&digest(&manifest_json, component));
    let mut out = Vec::with_capacity(9 + 8 + manifest_json.len() + component.len() + SIGNATURE_BLOCK);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(manifest_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&manifest_json);
    out.extend_from_slice(&(component.len() as u32).to_le_bytes());
    out.extend_from_slice(component);
    out.extend_from_slice(key.verifying_key().as_bytes());
    out.extend_from_slice(&signature.to_bytes());
    out
}

/// Parses and verifies a package against the trusted keys, then validates the manifest.
pub fn open(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Package, PackageError> {
    let mut rest = after_header(bytes)?;
    let manifest_json = take_prefixed(&mut rest, "manifest")?;
    let component = take_prefixed(&mut rest, "component")?;
    if rest.len() < SIGNATURE_BLOCK {
        return Err(PackageError::Truncated("signature block"));
    }
    if rest.len() > SIGNATURE_BLOCK {
        return Err(PackageError::Truncated("trailing bytes after the signature"));
    }
    let (key_bytes, signature_bytes) = rest.split_at(32);
    if key_bytes.iter().all(|&b| b == 0) && signature_bytes.iter().all(|&b| b == 0) {
        return Err(PackageError::Unsigned);
    }
    let key_bytes: [u8; 32] = key_bytes.try_into().expect("split at 32");
    let signer = VerifyingKey::from_bytes(&key_bytes).map_err(|_| PackageError::BadSignature)?;
    if !trusted.contains(&signer) {
        return Err(PackageError::UntrustedKey { key_id: key_id(&signer) });
    }
    let signature = Signature::from_slice(signature_bytes).map_err(|_| PackageError::BadSignature)?;
    signer.verify(&digest(manifest_json, component), &signature).map_err(|_| PackageError::BadSignature)?;
    let manifest: Manifest = serde_json::from_slice(manifest_json)
        .map_err(|e| PackageError::ManifestInvalid(format!("not a manifest: {e}")))?;
    validate(&manifest).map_err(PackageError::ManifestInvalid)?;
    Ok(Package { manifest, component: component.to_vec(), signer })
}

/// The manifest of a package WITHOUT checking its signature: only to decide
/// whether a package is worth installing (its name and version); never trust it.
pub fn peek(bytes: &[u8]) -> Result<Manifest, PackageError> {
    let mut rest = after_header(bytes)?;
    let manifest_json = take_prefixed(&mut rest, "manifest")?;
    serde_json::from_slice(manifest_json).map_err(|e| PackageError::ManifestInvalid(format!("not a manifest: {e}")))
}

/// The bytes after the magic and a supported format version.
fn after_header(bytes: &[u8]) -> Result<&[u8], PackageError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(PackageError::NotAPackage);
    }
    let rest = &bytes[MAGIC.len()..];
    let version = *rest.first().ok_or(PackageError::Truncated("no format version"))?;
    if version != FORMAT_VERSION {
        return Err(PackageError::UnsupportedFormat(version));
    }
    Ok(&rest[1..])
}

/// Checks a manifest's rules (the WIT version is the host's business, not this one's).
pub fn validate(manifest: &Manifest) -> Result<(), String> {
    let name = &manifest.name;
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("name {name:?} must be 1 to 64 characters of a-z, 0-9 and -"));
    }
    if manifest.version.trim().is_empty() {
        return Err("version is empty".into());
    }
    if manifest.wit.trim().is_empty() {
        return Err("wit (the vigil:plugin version it was built for) is empty".into());
    }
    for action in &manifest.actions {
        if action != "*" && !ACTIONS.contains(&action.as_str()) {
            return Err(format!("actions: unknown action {action:?}; use one of {ACTIONS:?} or \"*\""));
        }
    }
    for endpoint in manifest.capabilities.network.iter().filter(|e| *e != ANY_GRANTED) {
        let port = endpoint.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then_some(port));
        if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(format!("capabilities.network: {endpoint:?} is not host:port"));
        }
    }
    Ok(())
}

/// In `capabilities.network`: whatever endpoints the operator grants.
pub const ANY_GRANTED: &str = "*";

fn digest(manifest: &[u8], component: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(manifest));
    out[32..].copy_from_slice(&Sha256::digest(component));
    out
}

fn take_prefixed<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], PackageError> {
    if rest.len() < 4 {
        return Err(PackageError::Truncated(what));
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let body = rest.get(4..4 + len).ok_or(PackageError::Truncated(what))?;
    *rest = &rest[4 + len..];
    Ok(body)
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1.0.0".into(),
            wit: "0.1.0".into(),
            description: "test".into(),
            actions: vec!["lockdown".into()],
            capabilities: Capabilities::default(),
            config_schema: serde_json::Value::Null,
        }
    }

    #[test]
    fn round_trip() {
        let (sk, vk) = keygen();
        let bytes = build(&manifest("door-lock"), b"\0asm", &sk);
        let package = open(&bytes, &[vk]).unwrap();
        assert_eq!(package.manifest.name, "door-lock");
        assert_eq!(package.component, b"\0asm");
    }

    #[test]
    fn keys_round_trip_as_text() {
        let (sk, vk) = keygen();
        assert_eq!(verifying_key_from_hex(&verifying_key_to_hex(&vk)).unwrap(), vk);
        assert_eq!(signing_key_from_base64(&signing_key_to_base64(&sk)).unwrap().to_bytes(), sk.to_bytes());
        assert!(verifying_key_from_hex("xyz").is_err());
    }

    #[test]
    fn not_a_package() {
        assert!(matches!(open(b"\0asm\x01\0\0\0", &[]), Err(PackageError::NotAPackage)));
    }

    #[test]
    fn truncated() {
        let (sk, vk) = keygen();
        let bytes = build(&manifest("a"), b"component", &sk);
        for cut in [9, 12, 20, bytes.len() - 1] {
            let err = open(&bytes[..cut], &[vk]).unwrap_err();
            assert!(matches!(err, PackageError::Truncated(_)), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn unsigned() {
        let (sk, vk) = keygen();
        let mut bytes = build(&manifest("a"), b"component", &sk);
        let n = bytes.len();
        bytes[n - SIGNATURE_BLOCK..].fill(0);
        assert!(matches!(open(&bytes, &[vk]), Err(PackageError::Unsigned)));
    }

    #[test]
    fn untrusted_key_names_the_key() {
        let (sk, _) = keygen();
        let (_, other) = keygen();
        let bytes = build(&manifest("a"), b"component", &sk);
        let err = open(&bytes, &[other]).unwrap_err();
        let id = key_id(&sk.verifying_key());
        assert!(err.to_string().contains(&id), "{err}");
    }

    #[test]
    fn tampered_component_is_a_bad_signature() {
        let (sk, vk) = keygen();
        let mut bytes = build(&manifest("a"), b"component", &sk);
        let n = bytes.len();
        bytes[n - SIGNATURE_BLOCK - 1] ^= 1;
        assert!(matches!(open(&bytes, &[vk]), Err(PackageError::BadSignature)));
    }

    #[test]
    fn invalid_manifest_names() {
        let (sk, vk) = keygen();
        for name in ["", "Door", "door_lock", &"a".repeat(65)] {
            let bytes = build(&manifest(name), b"c", &sk);
            let err = open(&bytes, &[vk]).unwrap_err();
            assert!(matches!(err, PackageError::ManifestInvalid(_)), "{name:?}: {err}");
        }
        let mut bad = manifest("a");
        bad.actions = vec!["dance".into()];
        assert!(open(&build(&bad, b"c", &sk), &[vk]).is_err());
        let mut bad = manifest("a");
        bad.capabilities.network = vec!["no-port".into()];
        assert!(open(&build(&bad, b"c", &sk), &[vk]).is_err());
    }

    #[test]
    fn unsupported_format() {
        let (sk, vk) = keygen();
        let mut bytes = build(&manifest("a"), b"c", &sk);
        bytes[8] = 9;
        assert!(matches!(open(&bytes, &[vk]), Err(PackageError::UnsupportedFormat(9))));
    }
}
