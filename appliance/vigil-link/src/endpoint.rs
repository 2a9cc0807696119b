//! Where the broker is and how to prove who we are: MQTT options with TLS
//! built from PEM files, and connection errors explained in words an
//! integrator can act on.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::{ConnectionError, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use vigil_config::{RemoteBroker, TlsFiles};

/// The largest packet sent or received: room for a 1 MiB config document or evidence JPEG.
pub const MAX_PACKET: u32 = 4 * 1024 * 1024;

/// A broker address with its credentials.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS (`mqtts://`); `None` for plain TCP.
    pub tls: Option<TlsFiles>,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<String>,
}

/// Why the MQTT options could not be built; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct TlsSetupError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl Endpoint {
    /// The district broker of the config.
    pub fn remote(b: &RemoteBroker) -> Endpoint {
        Endpoint {
            host: b.host.clone(),
            port: b.port,
            tls: b.tls.clone(),
            username: b.username.clone(),
            password: b.password.as_ref().map(|p| p.expose().to_string()),
        }
    }

    /// A plain, unauthenticated broker (the embedded one).
    pub fn plain(addr: std::net::SocketAddr) -> Endpoint {
        Endpoint { host: addr.ip().to_string(), port: addr.port(), tls: None, username: None, password: None }
    }

    /// `mqtts://host:port` or `mqtt://host:port`, for logs.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{}://{host}:{}", if self.tls.is_some() { "mqtts" } else { "mqtt" }, self.port)
    }

    /// MQTT 5 options for `client_id`: TLS with the configured CA (or the
    /// system's roots) and client certificate, credentials, packet limits.
    pub fn options(&self, client_id: &str, keep_alive: Duration) -> Result<MqttOptions, TlsSetupError> {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        o.set_keep_alive(keep_alive);
        o.set_max_packet_size(Some(MAX_PACKET));
        o.set_connection_timeout(10);
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(client_config(tls)?))));
        }
        Ok(o)
    }
}

/// A rustls client config (ring provider) trusting `tls.ca` or the system's
/// roots, presenting `tls.client` if given.
fn client_config(tls: &TlsFiles) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let certs = read_certs(ca)?;
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError {
                    path: ca.clone(),
                    message: format!("none of its {ignored} certificate(s) can be used as a trust anchor"),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsSetupError {
                    path: PathBuf::from("/etc/ssl/certs"),
                    message: "no system CA certificates found; set uplink.ca to the district broker's CA".into(),
                });
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots);
    match &tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key_der = read_key(key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| TlsSetupError {
                path: key.clone(),
                message: format!("the key does not fit the certificate {}: {e}", cert.display()),
            })
        }
    }
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, TlsSetupError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|e| TlsSetupError { path: path.to_path_buf(), message: format!("cannot read it: {e}") })
}

fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsSetupError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError { path: path.to_path_buf(), message: format!("not a PEM file: {e}") })?;
    if certs.is_empty() {
        return Err(TlsSetupError {
            path: path.to_path_buf(),
            message: "no certificate in it (expected PEM \"-----BEGIN CERTIFICATE-----\")".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsSetupError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| TlsSetupError { path: path.to_path_buf(), message: format!("not a PEM file: {e}") })?
        .ok_or_else(|| TlsSetupError {
            path: path.to_path_buf(),
            message: "no private key in it (expected PEM PKCS#8, PKCS#1 or SEC1)".into(),
        })
}

/// A connection failure in words: what went wrong, and which setting to check.
pub fn explain(endpoint: &Endpoint, e: &ConnectionError) -> String {
    let url = endpoint.url();
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                format!(
                    "{url} refused the connection: bad user name or password (check uplink.username and uplink.password)"
                )
            }
            ConnectReturnCode::NotAuthorized => {
                format!(
                    "{url} refused the connection: not authorized (the broker does not accept this user or client certificate)"
                )
            }
            ConnectReturnCode::ClientIdentifierNotValid => {
                format!("{url} refused the connection: client id not valid (check uplink.client_id)")
            }
            ConnectReturnCode::Banned => format!("{url} refused the connection: this client is banned"),
            other => format!("{url} refused the connection: {other:?}"),
        },
        ConnectionError::Tls(t) => tls_words(&url, &t.to_string()),
        ConnectionError::Io(io) => {
            let text = io.to_string();
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    format!("nothing accepts connections at {url} (broker down or wrong port)")
                }
                _ if is_tls_text(&text) => tls_words(&url, &text),
                _ => format!("{url}: {text}"),
            }
        }
        ConnectionError::Timeout(_) => format!("{url} did not answer within the connection timeout"),
        // rumqttc reports a TLS alert raised after the handshake (a refused
        // client certificate under TLS 1.3) as a read error of the MQTT state.
        other if is_tls_text(&other.to_string()) => tls_words(&url, &other.to_string()),
        other => format!("{url}: {other}"),
    }
}

fn is_tls_text(text: &str) -> bool {
    text.contains("certificate") || text.contains("alert") || text.contains("handshake") || text.contains("TLS")
}

fn tls_words(url: &str, text: &str) -> String {
    let hint = if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        "the broker's certificate is not signed by a CA in uplink.ca"
    } else if text.contains("NotValidForName") {
        "the broker's certificate does not name the host in uplink.broker"
    } else if text.contains("Expired") {
        "a certificate has expired (check the device clock too)"
    } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") {
        "the broker requires a client certificate: set uplink.cert and uplink.key"
    } else if text.contains("UnknownCA") || text.contains("BadCertificate") || text.contains("DecryptError") {
        "the broker refused the device's client certificate (uplink.cert is not signed by a CA the broker trusts)"
    } else {
        "TLS failed"
    };
    format!("TLS with {url} failed: {hint} ({text})")
}
