//! Throwaway TLS certificates for broker tests, made with the `openssl` CLI: a
//! CA, a server certificate for `127.0.0.1` / `localhost`, a device client
//! certificate, and a rogue CA with its own client certificate (which the
//! broker must refuse).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The OpenSSL command-line tool (Debian's `openssl` package).
const OPENSSL: &str = "/usr/bin/openssl";
/// Validity of every certificate, in days: long enough for a test run, short
/// enough that nobody is tempted to reuse them.
const DAYS: &str = "2";
/// The common name of both client certificates, as a Vigil appliance would present.
const DEVICE_CN: &str = "test-device";

/// The extensions for each kind of certificate. Written to a file of our own
/// so the result does not depend on the system's `openssl.cnf`; rustls
/// (webpki) insists on a CA flag on CAs, none on leaves, and a subjectAltName
/// on the server.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// PEM files of a test PKI (EC P-256 keys in PKCS#8, certificates valid for 2 days).
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The directory holding all the files.
    pub dir: PathBuf,
    /// The CA the broker trusts and clients verify the broker with.
    pub ca: PathBuf,
    /// The broker's certificate, for IP `127.0.0.1` and DNS `localhost`, signed by `ca`.
    pub server_cert: PathBuf,
    /// The broker's private key.
    pub server_key: PathBuf,
    /// A client certificate (CN `test-device`) signed by `ca`.
    pub client_cert: PathBuf,
    /// The private key of `client_cert`.
    pub client_key: PathBuf,
    /// A CA the broker does not trust.
    pub rogue_ca: PathBuf,
    /// A client certificate (also CN `test-device`) signed by `rogue_ca`.
    pub rogue_client_cert: PathBuf,
    /// The private key of `rogue_client_cert`.
    pub rogue_client_key: PathBuf,
}

impl TestCerts {
    /// Generates a fresh test PKI into `dir` (created if missing) with `/usr/bin/openssl`.
    pub fn generate(dir: &Path) -> Result<TestCerts, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the certificate directory {}: {e}", dir.display()))?;
        let cnf = dir.join("openssl.cnf");
        fs::write(&cnf, OPENSSL_CNF).map_err(|e| format!("cannot write {}: {e}", cnf.display()))?;
        let pki = Pki { dir, cnf: &cnf };

        let ca_key = pki.key("ca")?;
        let ca = pki.self_signed("ca", &ca_key, "Vigil Test CA")?;
        let server_key = pki.key("server")?;
        let server_cert = pki.signed("server", &server_key, "localhost", "server_ext", (&ca, &ca_key))?;
        let client_key = pki.key("client")?;
        let client_cert = pki.signed("client", &client_key, DEVICE_CN, "client_ext", (&ca, &ca_key))?;

        let rogue_ca_key = pki.key("rogue-ca")?;
        let rogue_ca = pki.self_signed("rogue-ca", &rogue_ca_key, "Rogue Test CA")?;
        let rogue_client_key = pki.key("rogue-client")?;
        let rogue_client_cert =
            pki.signed("rogue-client", &rogue_client_key, DEVICE_CN, "client_ext", (&rogue_ca, &rogue_ca_key))?;

        Ok(TestCerts {
            dir: dir.to_path_buf(),
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
            rogue_ca,
            rogue_client_cert,
            rogue_client_key,
        })
    }
}

/// Where the files go and the extension config they are made with.
struct Pki<'a> {
    dir: &'a Path,
    cnf: &'a Path,
}

impl Pki<'_> {
    /// A new EC P-256 key in PKCS#8 PEM (`NAME.key`).
    fn key(&self, name: &str) -> Result<PathBuf, String> {
        let key = self.dir.join(format!("{name}.key"));
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path(&key)?])?;
        Ok(key)
    }

    /// A self-signed CA certificate (`NAME.pem`).
    fn self_signed(&self, name: &str, key: &Path, cn: &str) -> Result<PathBuf, String> {
        let cert = self.dir.join(format!("{name}.pem"));
        let subject = format!("/CN={cn}");
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-config",
            path(self.cnf)?,
            "-extensions",
            "ca_ext",
            "-key",
            path(key)?,
            "-subj",
            &subject,
            "-days",
            DAYS,
            "-out",
            path(&cert)?,
        ])?;
        Ok(cert)
    }

    /// A certificate for `key` with the `extensions` section, signed by `issuer` (certificate, key).
    fn signed(
        &self,
        name: &str,
        key: &Path,
        cn: &str,
        extensions: &str,
        issuer: (&Path, &Path),
    ) -> Result<PathBuf, String> {
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.pem"));
        let serial = self.dir.join(format!("{name}.srl"));
        let subject = format!("/CN={cn}");
        openssl(&[
            "req",
            "-new",
            "-config",
            path(self.cnf)?,
            "-key",
            path(key)?,
            "-subj",
            &subject,
            "-out",
            path(&csr)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr)?,
            "-CA",
            path(issuer.0)?,
            "-CAkey",
            path(issuer.1)?,
            "-CAserial",
            path(&serial)?,
            "-CAcreateserial",
            "-days",
            DAYS,
            "-extfile",
            path(self.cnf)?,
            "-extensions",
            extensions,
            "-out",
            path(&cert)?,
        ])?;
        Ok(cert)
    }
}

/// Runs `openssl ARGS`, failing with its stderr.
fn openssl(args: &[&str]) -> Result<(), String> {
    let out = Command::new(OPENSSL).args(args).output().map_err(|e| format!("cannot run {OPENSSL}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{OPENSSL} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `p` as a `&str` for the command line.
fn path(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("the path {} is not UTF-8", p.display()))
}
