//! Outbound HTTP through `wasi:http`: every request an effect step sends is
//! checked host-side against its node's `http` rules (scheme, host, port,
//! path and method) and under its per-attempt limits before anything
//! touches the network. A redirect is only a new request, checked again.
//!
//! A denied request fails inside the guest with `HTTP-request-denied` (a
//! limit with its own error code) and leaves a `capability_denied` line in
//! the step's log.

use super::Grants;
use super::capability::{AttemptWasi, Capability};
use super::denials::Denials;
use crate::capability::{HttpLimits, HttpRule, default_port};
use crate::sandbox::state::StepState;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The `http` capability.
pub struct Http;

impl Capability for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn link(&self, linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker).map_err(anyhow::Error::from)
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        attempt.http = HttpGate::new(grants.capabilities.http.clone(), grants.http_limits, attempt.denials.clone());
        Ok(())
    }
}

/// One attempt's HTTP gate: its rules, its limits, and what it has sent.
pub struct HttpGate {
    rules: Vec<HttpRule>,
    limits: HttpLimits,
    /// Requests the guest has tried, allowed or not.
    tried: u32,
    denials: Denials,
}

/// Longest request path the gate checks; longer ones are denied (so that
/// matching stays cheap inside a host call).
pub const MAX_CHECKED_PATH: usize = 2048;

/// `METHOD scheme://host[:port]/path` of a request, for logs: no user
/// info, no query.
fn shown(method: &str, uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.authority().map_or("?", |a| a.host());
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    // Not cut here: the log redacts the line first and cuts it after.
    format!("{method} {scheme}://{host}{port}{}", uri.path())
}

/// Why a path could mean something else to the server than to the gate,
/// if it could: dot segments (also percent-encoded, or with a `;`
/// parameter), encoded slashes or backslashes, raw backslashes, and
/// double encoding.
fn ambiguous_path(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    for (bad, what) in [
        ("\\", "a backslash"),
        ("%5c", "an encoded backslash"),
        ("%2f", "an encoded slash"),
        ("%25", "an encoded `%` (double encoding)"),
    ] {
        if lower.contains(bad) {
            return Some(format!("the path has {what}, which servers read differently"));
        }
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let dotted = decoded.split('/').any(|seg| {
        let name = seg.split(';').next().unwrap_or(seg);
        name == "." || name == ".."
    });
    dotted.then(|| "the path has `.` or `..` segments".to_string())
}

impl HttpGate {
    /// A gate that lets through what `rules` allow, under `limits`.
    pub fn new(rules: Vec<HttpRule>, limits: HttpLimits, denials: Denials) -> Self {
        Self { rules, limits, tried: 0, denials }
    }

    /// A gate that denies every request.
    pub fn closed(denials: Denials) -> Self {
        Self::new(Vec::new(), HttpLimits::default(), denials)
    }

    /// Whether the request may go out; `Err` is what the guest gets. Every
    /// request the guest tries counts against the limit, denied ones too.
    fn decide(&mut self, method: &str, uri: &http::Uri) -> Result<(), Error> {
        self.tried = self.tried.saturating_add(1);
        // Named without user info or query, where secrets travel.
        let shown = shown(method, uri);
        let deny = |gate: &Self, why: String| {
            gate.denials.record("http", format!("{shown}: {why}"));
            Err(Error::HttpRequestDenied)
        };
        if self.tried > self.limits.max_requests {
            return deny(self, format!("the attempt has used its limit of {} requests", self.limits.max_requests));
        }
        let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else {
            return deny(self, "the request has no scheme".into());
        };
        let Some(authority) = uri.authority() else {
            return deny(self, "the request has no host".into());
        };
        if authority.as_str().contains('@') {
            return deny(self, "user info in the authority is not allowed".into());
        }
        let host = authority.host().to_ascii_lowercase();
        let Some(port) = authority.port_u16().or_else(|| default_port(&scheme)) else {
            return deny(self, format!("scheme `{scheme}` is not http or https"));
        };
        let raw = uri.path();
        if raw.len() > MAX_CHECKED_PATH {
            return deny(self, format!("the path is {} bytes; at most {MAX_CHECKED_PATH} are allowed", raw.len()));
        }
        if let Some(why) = ambiguous_path(raw) {
            return deny(self, why);
        }
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        if !self.rules.iter().any(|r| r.allows(method, &scheme, &host, port, &decoded)) {
            let granted = if self.rules.is_empty() {
                "the node is granted no HTTP (declare `capabilities: http:`)".to_string()
            } else {
                format!(
                    "not granted; the node may send {}",
                    self.rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            };
            return deny(self, granted);
        }
        Ok(())
    }

    fn timeouts(&self, options: Option<RequestOptions>) -> RequestOptions {
        let cap = Duration::from_millis(self.limits.timeout_ms);
        let pick = |asked: Option<Duration>| Some(asked.map_or(cap, |d| d.min(cap)));
        let o = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: pick(o.connect_timeout),
            first_byte_timeout: pick(o.first_byte_timeout),
            between_bytes_timeout: pick(o.between_bytes_timeout),
        }
    }
}

type SendResult = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let method = request.method().as_str().to_string();
        if let Err(e) = self.decide(&method, request.uri()) {
            return Box::new(async move { Err(e) });
        }
        let options = self.timeouts(options);
        let (max_request, max_response) = (self.limits.max_request_bytes, self.limits.max_response_bytes);
        let denials = self.denials.clone();
        let overall = Duration::from_millis(self.limits.timeout_ms);
        let shown = shown(&method, request.uri());
        let request = request.map(|body| limit_body(body, max_request, Error::HttpRequestBodySize));
        Box::new(async move {
            // The whole wait for the response head is bounded too, not only
            // each phase: a server that drips its headers gets no longer.
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let sent = tokio::time::timeout(overall, sent).await.unwrap_or(Err(Error::HttpResponseTimeout));
            let (response, io) = match sent {
                Ok(r) => r,
                Err(e) => {
                    if matches!(e, Error::ConnectionTimeout | Error::ConnectionReadTimeout | Error::HttpResponseTimeout)
                    {
                        let ms = overall.as_millis();
                        denials.record("http", format!("{shown}: no response within {ms} ms (the limit)"));
                    }
                    return Err(e);
                }
            };
            let response = response.map(|body| {
                let limited = limit_body(body, max_response, Error::HttpResponseBodySize);
                let what = shown.clone();
                let denials = denials.clone();
                limited
                    .map_err(move |e| {
                        if matches!(e, Error::HttpResponseBodySize(_)) {
                            denials.record(
                                "http",
                                format!("{what}: the response body is over the limit of {max_response} bytes"),
                            );
                        }
                        e
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }

    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS
    }
}

/// `body`, failing with `over(max)` once more than `max` bytes have passed.
fn limit_body(
    body: impl http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    max: u64,
    over: fn(Option<u64>) -> Error,
) -> WasiBody {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    Limited::new(body, limit)
        .map_err(move |e| match e.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => over(Some(max)),
            Err(e) => Error::InternalError(Some(e.to_string())),
        })
        .boxed_unsync()
}
