//! Outgoing HTTP (`wasi:http`), to the endpoints the operator granted: the
//! same `host:port` list as sockets. A request anywhere else fails with
//! "HTTP request denied", and the host logs it with the plugin's name.
//! Every request has timeouts no longer than the plugin's call deadline.
//!
//! ```no_run
//! let r = vigil_plugin_sdk::http::request("POST", "http://10.0.0.9:8080/api/lockdown", &[("content-type", "application/json")], b"{}")?;
//! if r.status != 200 { return Err(format!("the panel answered {}", r.status)); }
//! # Ok::<(), String>(())
//! ```

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// The most response body read; the rest is refused.
const MAX_BODY: usize = 1 << 20;

/// A response: its status and whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, at most 1 MiB.
    pub body: Vec<u8>,
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, String> {
    request("GET", url, &[], &[])
}

/// Sends `method url` with `headers` and `body` and reads the whole response.
/// `url` is `http://host:port/path` or `https://…`.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
    let (scheme, authority, path) = split(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(&name.to_string(), &value.as_bytes().to_vec())
            .map_err(|e| format!("header {name:?} refused: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let refused = |what: &str| format!("{url}: the host refused the request's {what}");
    request.set_method(&method).map_err(|()| refused("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|()| refused("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| refused("authority"))?;
    request.set_path_with_query(Some(path)).map_err(|()| refused("path"))?;
    let outgoing = request.body().map_err(|()| refused("body"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| explain(url, &e))?;
    {
        let stream = outgoing.write().map_err(|()| refused("body stream"))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("{url}: sending the body failed: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| explain(url, &e))?;
    let response = loop {
        match pending.get() {
            Some(r) => break r,
            None => pending.subscribe().block(),
        }
    };
    let response =
        response.map_err(|()| format!("{url}: the response was already taken"))?.map_err(|e| explain(url, &e))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| format!("{url}: the response body was already taken"))?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| format!("{url}: the response body has no stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("{url}: reading the response failed: {}", e.to_debug_string()));
                }
            }
            if body.len() > MAX_BODY {
                return Err(format!("{url}: the response body is larger than {MAX_BODY} bytes"));
            }
        }
    }
    let _trailers = IncomingBody::finish(incoming);
    Ok(Response { status, body })
}

/// `scheme://authority/path` into its parts; the path defaults to `/`.
fn split(url: &str) -> Result<(Scheme, &str, &str), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("{url:?}: scheme {other:?} is not http or https")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((scheme, authority, path))
}

/// An HTTP error code in words, with the URL.
fn explain(url: &str, e: &ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => {
            format!("{url}: HTTP request denied: its host:port is not granted to this plugin")
        }
        ErrorCode::ConnectionRefused => format!("{url}: connection refused"),
        ErrorCode::ConnectionTimeout => format!("{url}: timed out connecting"),
        ErrorCode::ConnectionReadTimeout => format!("{url}: timed out waiting for the response"),
        other => format!("{url}: {other:?}"),
    }
}
