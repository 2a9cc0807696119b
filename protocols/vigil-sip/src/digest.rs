//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617):
//! reading a `WWW-Authenticate`/`Proxy-Authenticate` challenge and writing the
//! matching `Authorization`/`Proxy-Authorization` credentials.
//!
//! MD5 and MD5-sess, with `qop=auth` (and its `nc`/`cnonce`) when the server
//! offers it, or the RFC 2069 form when it offers no qop. `auth-int` and the
//! SHA-256 algorithms of RFC 8760 are refused with an error that says so.

use md5::{Digest as _, Md5};

/// A digest challenge from a 401 or 407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, returned unchanged.
    pub opaque: Option<String>,
    /// `algorithm`, if named.
    pub algorithm: Option<String>,
    /// The `qop` options offered (`auth`, `auth-int`).
    pub qop: Vec<String>,
    /// `stale=true`: the credentials were right but the nonce expired.
    pub stale: bool,
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The header is not a digest challenge or misses `realm` or `nonce`.
    #[error("unreadable digest challenge {0:?}")]
    Malformed(String),
    /// A scheme or algorithm this agent does not implement.
    #[error("unsupported authentication: {0}")]
    Unsupported(String),
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest user name.
    pub username: String,
    /// The password; never printed.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"…").finish()
    }
}

impl Challenge {
    /// Parses the value of a `WWW-Authenticate` or `Proxy-Authenticate` header.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let malformed = || AuthError::Malformed(value.to_string());
        let (scheme, rest) = value.trim().split_once(char::is_whitespace).ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::Unsupported(format!("the {scheme} scheme (only Digest is implemented)")));
        }
        let mut challenge = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: None,
            qop: Vec::new(),
            stale: false,
        };
        let (mut realm, mut nonce) = (None, None);
        for (key, val) in params(rest).ok_or_else(malformed)? {
            match key.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => challenge.opaque = Some(val),
                "algorithm" => challenge.algorithm = Some(val),
                "qop" => challenge.qop = val.split(',').map(|q| q.trim().to_ascii_lowercase()).collect(),
                "stale" => challenge.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        challenge.realm = realm.ok_or_else(malformed)?;
        challenge.nonce = nonce.ok_or_else(malformed)?;
        Ok(challenge)
    }

    /// The credentials for `method` on `uri`: the value of an `Authorization`
    /// (or `Proxy-Authorization`) header. `nc` counts the requests made with
    /// this nonce (from 1); `cnonce` is a fresh client nonce.
    pub fn answer(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Result<String, AuthError> {
        let session = match self.algorithm.as_deref() {
            None => false,
            Some(a) if a.eq_ignore_ascii_case("md5") => false,
            Some(a) if a.eq_ignore_ascii_case("md5-sess") => true,
            Some(a) => {
                return Err(AuthError::Unsupported(format!(
                    "digest algorithm {a} (only MD5 and MD5-sess are implemented)"
                )));
            }
        };
        let qop_auth = if self.qop.is_empty() {
            false
        } else if self.qop.iter().any(|q| q == "auth") {
            true
        } else {
            return Err(AuthError::Unsupported(format!("qop {:?} (only auth is implemented)", self.qop.join(","))));
        };
        let mut ha1 = md5_hex(&format!("{}:{}:{}", credentials.username, self.realm, credentials.password));
        if session {
            ha1 = md5_hex(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if qop_auth {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\"",
            credentials.username, self.realm, self.nonce
        );
        if let Some(algorithm) = &self.algorithm {
            out += &format!(", algorithm={algorithm}");
        }
        if let Some(opaque) = &self.opaque {
            out += &format!(", opaque=\"{opaque}\"");
        }
        if qop_auth {
            out += &format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\"");
        }
        Ok(out)
    }
}

/// `key=value` pairs separated by commas; values may be quoted (with commas
/// and backslash escapes inside). `None` if a pair has no `=` or a quote is open.
fn params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(username: &str, password: &str) -> Credentials {
        Credentials { username: username.into(), password: password.into() }
    }

    /// The worked example of RFC 2617 §3.5 (qop=auth, MD5).
    #[test]
    fn matches_the_rfc_2617_example() {
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.qop, ["auth", "auth-int"]);
        let header = c.answer(&creds("Mufasa", "Circle Of Life"), "GET", "/dir/index.html", 1, "0a4f113b").unwrap();
        assert!(header.contains("response=\"6629fae49393a05397450978507c4ef1\""), "{header}");
        assert!(header.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""), "{header}");
        assert!(header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""), "{header}");
    }

    /// Without qop the response is MD5(HA1:nonce:HA2) (RFC 2069), and no nc/cnonce is sent.
    #[test]
    fn answers_a_challenge_without_qop() {
        let c = Challenge::parse("Digest realm=\"r\",nonce=\"n\",algorithm=MD5").unwrap();
        let header = c.answer(&creds("u", "p"), "INVITE", "sip:page@h", 1, "c").unwrap();
        let expected = md5_hex(&format!("{}:n:{}", md5_hex("u:r:p"), md5_hex("INVITE:sip:page@h")));
        assert!(header.contains(&format!("response=\"{expected}\"")), "{header}");
        assert!(!header.contains("cnonce"), "{header}");
    }

    #[test]
    fn md5_sess_hashes_the_nonces_into_ha1() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=\"auth\"").unwrap();
        let header = c.answer(&creds("u", "p"), "INVITE", "sip:x", 2, "cn").unwrap();
        let ha1 = md5_hex(&format!("{}:n:cn", md5_hex("u:r:p")));
        let expected = md5_hex(&format!("{ha1}:n:00000002:cn:auth:{}", md5_hex("INVITE:sip:x")));
        assert!(header.contains(&format!("response=\"{expected}\"")), "{header}");
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert!(matches!(Challenge::parse("Basic realm=\"r\""), Err(AuthError::Unsupported(_))));
        assert!(matches!(Challenge::parse("Digest nonce=\"n\""), Err(AuthError::Malformed(_))));
        assert!(matches!(Challenge::parse("Digest realm=\"r, nonce=n"), Err(AuthError::Malformed(_))));
        let sha = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256").unwrap();
        assert!(matches!(sha.answer(&creds("u", "p"), "INVITE", "sip:x", 1, "c"), Err(AuthError::Unsupported(_))));
        let int = Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        assert!(matches!(int.answer(&creds("u", "p"), "INVITE", "sip:x", 1, "c"), Err(AuthError::Unsupported(_))));
    }

    #[test]
    fn reads_stale_and_escaped_quotes() {
        let c = Challenge::parse("Digest realm=\"a \\\"b\\\", c\", nonce=\"n\", stale=TRUE").unwrap();
        assert_eq!(c.realm, "a \"b\", c");
        assert!(c.stale);
    }

    #[test]
    fn never_prints_the_password() {
        assert!(!format!("{:?}", creds("u", "hunter2")).contains("hunter2"));
    }
}
