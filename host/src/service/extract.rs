//! The request extractors of the API, each failing with a [`Problem`]
//! rather than axum's plain-text rejections, and the answers for a path or
//! a method that does not exist, and for a request that took too long.

use super::problem::Problem;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A JSON body; a bad one answers 400, 413, 415 or 422 as problem+json.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(json_problem(e)),
        }
    }
}

/// The raw body; one over the route's limit answers 413.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state).await.map(Self).map_err(bytes_problem)
    }
}

/// Path parameters; ones that do not parse answer 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) => Err(path_problem(e)),
        }
    }
}

/// Query parameters; ones that do not parse answer 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(query_problem(e)),
        }
    }
}

fn json_problem(e: JsonRejection) -> Problem {
    match e {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body must be JSON: send `Content-Type: application/json`",
        ),
        JsonRejection::JsonDataError(e) => {
            Problem::invalid(format!("the JSON body does not fit this endpoint: {}", e.body_text()), Vec::new())
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) => bytes_problem(e),
        other => Problem::bad_request(format!("the body could not be read: {}", other.body_text())),
    }
}

fn bytes_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "the body is larger than this endpoint takes; send less (the limits are in the OpenAPI document's \
             description)",
        )
    } else {
        Problem::bad_request(format!("the body could not be read: {}", e.body_text()))
    }
}

fn path_problem(e: PathRejection) -> Problem {
    Problem::bad_request(format!("a path parameter is not valid: {}", e.body_text()))
}

fn query_problem(e: QueryRejection) -> Problem {
    Problem::bad_request(format!("a query parameter is not valid: {}; see /openapi.json", e.body_text()))
}

/// The answer for a path no endpoint has.
pub async fn no_route() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no endpoint has this path; /openapi.json lists them")
}

/// The answer for a method the path does not take.
pub async fn wrong_method() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this path does not take this method; /openapi.json lists what it takes",
    )
}

/// Answers 503 (problem+json) for a request that takes longer than `limit`.
pub async fn time_bound(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem {
            retry_after: Some(1),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} s; try again, or ask for less", limit.as_secs()),
            )
        }
        .into_response(),
    }
}
