//! Outbound HTTP for effect steps, through `wasi:http`. The host checks
//! every request against the node's `capabilities: http:` rules; one that
//! is not allowed fails with [`HttpError::Denied`]. Redirects are followed
//! (up to [`MAX_REDIRECTS`]), each as a new request the host checks again.
//!
//! ```ignore
//! let records: serde_json::Value = weft_plugin::http::get_json("http://127.0.0.1:8080/records/1", &[])?;
//! weft_plugin::http::post_json("http://127.0.0.1:8080/notify", &serde_json::json!({"ok": true}), &[])?;
//! ```

use crate::StepError;
use crate::effect_bindings::wasi::http::outgoing_handler;
use crate::effect_bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::effect_bindings::wasi::io::streams::StreamError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Headers that carry credentials: dropped when a redirect leaves the origin.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// Most redirects one call follows.
pub const MAX_REDIRECTS: usize = 5;

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: the node is not granted this URL or method, or
    /// the attempt reached its request limit.
    Denied(String),
    /// A body was larger than the host allows.
    TooLarge(String),
    /// The URL is malformed.
    BadUrl(String),
    /// The request or response failed on the way (connection, timeout, ...).
    Failed(String),
    /// The server answered with an error status (4xx, 5xx).
    Status(u16, String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "HTTP request denied: {m}"),
            Self::TooLarge(m) => write!(f, "HTTP body too large: {m}"),
            Self::BadUrl(m) => write!(f, "bad URL: {m}"),
            Self::Failed(m) => write!(f, "HTTP request failed: {m}"),
            Self::Status(s, body) => write!(f, "HTTP status {s}: {body}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for StepError {
    fn from(e: HttpError) -> Self {
        match &e {
            HttpError::Failed(_) => StepError::retryable(e.to_string()),
            HttpError::Status(s, _) if *s >= 500 || *s == 429 => StepError::retryable(e.to_string()),
            _ => StepError::fatal(e.to_string()),
        }
    }
}

fn from_code(e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::HttpRequestDenied => HttpError::Denied("the node is not granted this request".into()),
        ErrorCode::HttpRequestBodySize(n) => HttpError::TooLarge(format!("request body over {n:?} bytes")),
        ErrorCode::HttpResponseBodySize(n) => HttpError::TooLarge(format!("response body over {n:?} bytes")),
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// `GET url` with `headers`, the body parsed as JSON; an error status is an error.
pub fn get_json<T: DeserializeOwned>(url: &str, headers: &[(&str, &str)]) -> Result<T, HttpError> {
    let r = checked(request("GET", url, headers, None)?)?;
    serde_json::from_slice(&r.body)
        .map_err(|e| HttpError::Failed(format!("the response is not the JSON expected: {e}")))
}

/// `POST url` with `body` as JSON and `headers`; the response body parsed as
/// JSON (`null` when empty); an error status is an error.
pub fn post_json<B: Serialize, T: DeserializeOwned>(
    url: &str,
    body: &B,
    headers: &[(&str, &str)],
) -> Result<T, HttpError> {
    let payload =
        serde_json::to_vec(body).map_err(|e| HttpError::Failed(format!("the body does not serialize: {e}")))?;
    let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let r = checked(request("POST", url, &all, Some(&payload))?)?;
    let text = if r.body.is_empty() { b"null".as_slice() } else { r.body.as_slice() };
    serde_json::from_slice(text).map_err(|e| HttpError::Failed(format!("the response is not the JSON expected: {e}")))
}

fn checked(r: Response) -> Result<Response, HttpError> {
    if r.status >= 400 {
        let body = String::from_utf8_lossy(&r.body).chars().take(200).collect();
        return Err(HttpError::Status(r.status, body));
    }
    Ok(r)
}

/// Sends `method url` with `headers` and `body`, following redirects; each
/// hop is a new request that the host checks against the node's grant. A
/// redirect to another origin drops the `authorization`,
/// `proxy-authorization` and `cookie` headers, so credentials go only where they were meant to.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, HttpError> {
    let mut url = url.to_string();
    let mut method = method.to_string();
    let mut body = body;
    let first_origin = origin(&url);
    for _ in 0..=MAX_REDIRECTS {
        let same_origin = origin(&url) == first_origin;
        let credential = |k: &str| CREDENTIAL_HEADERS.iter().any(|c| k.eq_ignore_ascii_case(c));
        let sent: Vec<(&str, &str)> = headers.iter().filter(|(k, _)| same_origin || !credential(k)).copied().collect();
        let r = send_once(&method, &url, &sent, body)?;
        let Some(location) = r.header("location").filter(|_| (300..400).contains(&r.status)) else {
            return Ok(r);
        };
        url = resolve(&url, location)?;
        if r.status == 303 || ((r.status == 301 || r.status == 302) && method == "POST") {
            method = "GET".to_string();
            body = None;
        }
    }
    Err(HttpError::Failed(format!("more than {MAX_REDIRECTS} redirects")))
}

/// `scheme://host:port` of `url`, as the URL standard defines an origin.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

/// `location` resolved against `base` as a browser resolves it (RFC 3986:
/// absolute, scheme-relative, path, query and fragment references, with
/// dot segments removed).
fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    let base = url::Url::parse(base).map_err(|e| HttpError::BadUrl(format!("`{base}`: {e}")))?;
    base.join(location).map(String::from).map_err(|e| HttpError::BadUrl(format!("redirect to `{location}`: {e}")))
}

fn send_once(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, HttpError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| HttpError::BadUrl(format!("`{url}` has no scheme")))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(HttpError::BadUrl(format!("scheme `{other}` is not http or https"))),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    if let Some(bytes) = body {
        let n = bytes.len().to_string();
        fields
            .append("content-length", n.as_bytes())
            .map_err(|e| HttpError::BadUrl(format!("content-length: {e:?}")))?;
    }
    for (k, v) in headers {
        fields.append(k, v.as_bytes()).map_err(|e| HttpError::BadUrl(format!("header `{k}`: {e:?}")))?;
    }
    let req = OutgoingRequest::new(fields);
    let m = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| HttpError::BadUrl(format!("`{url}`: invalid {what}"));
    req.set_method(&m).map_err(|()| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
    req.set_authority(Some(authority)).map_err(|()| bad("host"))?;
    req.set_path_with_query(Some(path)).map_err(|()| bad("path"))?;
    let out = req.body().map_err(|()| HttpError::Failed("the request body was taken twice".into()))?;
    let future = outgoing_handler::handle(req, None).map_err(from_code)?;
    let wait = || loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    // A request the host refuses fails its body too: the response's error
    // says why.
    let refused = |fallback: HttpError| match wait() {
        Ok(Err(code)) => from_code(code),
        _ => fallback,
    };
    if let Some(bytes) = body {
        let stream = out.write().map_err(|()| HttpError::Failed("the request body cannot be written".into()))?;
        for chunk in bytes.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                return Err(refused(stream_error(e, "writing the request body")));
            }
        }
        drop(stream);
    }
    if let Err(code) = OutgoingBody::finish(out, None) {
        return Err(refused(from_code(code)));
    }
    let response = wait();
    let response =
        response.map_err(|()| HttpError::Failed("the response was taken twice".into()))?.map_err(from_code)?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| HttpError::Failed("the response body was taken twice".into()))?;
    let stream = incoming.stream().map_err(|()| HttpError::Failed("the response body cannot be read".into()))?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error(e, "reading the response body")),
        }
    }
    drop(stream);
    drop(IncomingBody::finish(incoming));
    Ok(Response { status, headers, body: data })
}

fn stream_error(e: StreamError, doing: &str) -> HttpError {
    match e {
        StreamError::Closed => HttpError::Failed(format!("the stream closed while {doing}")),
        StreamError::LastOperationFailed(err) => {
            match crate::effect_bindings::wasi::http::types::http_error_code(&err) {
                Some(code) => from_code(code),
                None => {
                    let text = err.to_debug_string();
                    let first = text.lines().next().unwrap_or_default();
                    if first.contains("size exceeds limit") {
                        HttpError::TooLarge(format!("{doing}: {first}"))
                    } else {
                        HttpError::Failed(format!("{doing}: {first}"))
                    }
                }
            }
        }
    }
}
