//! Outgoing HTTP for plugins (`wasi:http/outgoing-handler`), allowed only to
//! the `host:port` endpoints the plugin asked for and the operator granted,
//! the same list its sockets are held to.
//!
//! wasmtime's HTTP client connects from the host's side, past the WASI
//! socket check, so this gate is the only thing between a plugin and the
//! network for HTTP: every request's authority is checked here, and a refusal
//! is logged with the plugin's name and answered `HTTP-request-denied`.
//! Every request also gets timeouts no longer than the plugin's call
//! deadline, so a server that never answers costs the plugin one call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The allow-list and the deadline for one plugin instance.
pub(crate) struct HttpGate {
    pub(crate) plugin: Arc<str>,
    /// Granted endpoints, as the operator wrote them (`host:port`).
    pub(crate) allowed: Vec<String>,
    pub(crate) deadline: Duration,
    pub(crate) denied: Arc<AtomicU64>,
}

type ResponseFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

impl HttpGate {
    /// The `host:port` a request goes to, with the scheme's default port.
    fn endpoint(request: &http::Request<WasiBody>) -> Option<String> {
        let uri = request.uri();
        let authority = uri.authority()?;
        let port = authority.port_u16().or_else(|| match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        })?;
        Some(format!("{}:{port}", authority.host()))
    }

    /// Whether the plugin may send `request`.
    pub(crate) fn permits(&self, request: &http::Request<WasiBody>) -> Result<(), String> {
        match Self::endpoint(request) {
            Some(endpoint) if self.allowed.contains(&endpoint) => Ok(()),
            Some(endpoint) => Err(endpoint),
            None => Err(format!("{} (no host and port)", request.uri())),
        }
    }

    /// The request's timeouts, none longer than the call deadline.
    fn options(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let cap = |t: Option<Duration>| Some(t.map_or(self.deadline, |t| t.min(self.deadline)));
        let asked = asked.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        }
    }
}

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        if let Err(endpoint) = self.permits(&request) {
            self.denied.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(plugin = &*self.plugin, %endpoint, "HTTP request denied: not granted");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let options = self.options(options);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> http::Request<WasiBody> {
        use http_body_util::BodyExt as _;
        let body =
            http_body_util::Empty::new().map_err(|never: std::convert::Infallible| match never {}).boxed_unsync();
        http::Request::builder().uri(uri).body(body).unwrap()
    }

    #[test]
    fn only_granted_endpoints_pass_with_the_schemes_default_ports() {
        let gate = HttpGate {
            plugin: "p".into(),
            allowed: vec!["127.0.0.1:8080".into(), "panel.school:443".into()],
            deadline: Duration::from_secs(2),
            denied: Arc::default(),
        };
        assert_eq!(gate.permits(&request("http://127.0.0.1:8080/lock")), Ok(()));
        assert_eq!(gate.permits(&request("https://panel.school/api")), Ok(()));
        assert_eq!(gate.permits(&request("http://panel.school/api")), Err("panel.school:80".into()));
        assert_eq!(gate.permits(&request("http://127.0.0.1:8081/")), Err("127.0.0.1:8081".into()));
        assert!(gate.permits(&request("/relative")).is_err());
    }

    #[test]
    fn timeouts_never_exceed_the_call_deadline() {
        let gate =
            HttpGate { plugin: "p".into(), allowed: vec![], deadline: Duration::from_secs(2), denied: Arc::default() };
        let o = gate.options(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(500)),
            ..RequestOptions::default()
        }));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_millis(500)));
        assert_eq!(o.between_bytes_timeout, Some(Duration::from_secs(2)));
    }
}
