//! Every error the API answers, as RFC 9457 `application/problem+json`: a
//! stable `type` (a slug under `/problems/`, which clients match on), the
//! HTTP status, a `title` per type, and a `detail` that says what was wrong
//! and what to do. A 429 carries `Retry-After`; a 401 carries
//! `WWW-Authenticate`. Validation problems list each one with its place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of an error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem in a workflow or an input, with where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemItem {
    /// The line (1-based; 0 when the problem is not at one place).
    pub line: u32,
    /// The column (1-based; 0 when the problem is not at one place).
    pub column: u32,
    /// The node it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// An error answer (RFC 9457).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// The problem's kind: `/problems/<slug>`, stable across versions.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong with this request, and what to do.
    pub detail: String,
    /// Each problem with its place, for a workflow or input that does not validate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemItem>,
    /// Seconds to wait before trying again (a 429 or a 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of kind `slug` with HTTP `status`.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title_of(slug).to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed (`bad-request`).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401: no valid token (`unauthorized`).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the token lacks a scope (`forbidden`).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: nothing of this tenant has this name (`not-found`).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no {what} of this tenant has this id; list what exists with the matching GET endpoint"),
        )
    }

    /// 409: the request conflicts with what exists (`conflict`).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 422: well-formed, but not valid (`invalid`), with each problem.
    pub fn invalid(detail: impl Into<String>, errors: Vec<ProblemItem>) -> Self {
        Self { errors, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail) }
    }

    /// 429: a quota of the tenant is used up (`quota-exceeded`).
    pub fn quota(detail: impl Into<String>, retry_after_s: u64) -> Self {
        Self {
            retry_after: Some(retry_after_s.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", detail)
        }
    }

    /// 500 or 503: the server or its store failed (`store-unavailable`).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", detail) }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The title of each kind.
fn title_of(slug: &str) -> &'static str {
    match slug {
        "bad-request" => "The request is malformed",
        "unauthorized" => "A valid token is required",
        "forbidden" => "The token does not allow this",
        "not-found" => "Not found",
        "method-not-allowed" => "The method is not allowed here",
        "conflict" => "The request conflicts with what exists",
        "too-large" => "The request body is too large",
        "unsupported-media-type" => "The request body has the wrong media type",
        "invalid" => "The request is not valid",
        "quota-exceeded" => "A quota is used up",
        "store-unavailable" => "The run store is unavailable",
        "timeout" => "The request took too long",
        _ => "Error",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response();
        if let Some(s) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"weft\""));
        }
        response
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(_) => Self::not_found("run"),
            StoreError::Duplicate(id) => Self::conflict(format!(
                "a run with the id `{id}` exists already; PUT the same body again to get it, or choose another id"
            )),
            StoreError::Finished(id) => Self::conflict(format!("run `{id}` has already finished")),
            StoreError::Owned { .. } | StoreError::LeaseLost(_) => {
                Self::conflict("another worker drives this run now; try again when its lease has expired")
            }
            other => {
                tracing::error!(error = %other, "a store call of the API failed");
                Self::unavailable("the run store failed; try again shortly (the server's log has the cause)")
            }
        }
    }
}

impl From<crate::contract::KvError> for Problem {
    fn from(e: crate::contract::KvError) -> Self {
        tracing::error!(error = %e, "a key-value call of the API failed");
        Self::unavailable("the service's records could not be read or written; try again shortly")
    }
}
