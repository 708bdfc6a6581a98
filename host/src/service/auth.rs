//! Who is calling: the token of `Authorization: Bearer weft_…`, or the web
//! UI's session (`weft_session` cookie, `sessions.rs`), becomes a [`Caller`]. A request without
//! a valid token answers 401; a token without the scope an endpoint needs
//! answers 403. Nothing else in a request can name a tenant.

use super::Service;
use super::problem::Problem;
use super::tenants::{Caller, Scope};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::sync::Arc;

/// The cookie the web UI keeps its session in.
pub const SESSION_COOKIE: &str = "weft_session";
/// The header the web UI's script sends with every request: a request that
/// changes something and is authenticated by the cookie alone must carry
/// it, which a page of another site cannot make a browser do (CSRF).
pub const UI_HEADER: &str = "x-weft-ui";

impl FromRequestParts<Arc<Service>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Self, Self::Rejection> {
        let Some((token, by_cookie)) = presented_token(parts) else {
            return Err(Problem::unauthorized(
                "send a tenant token as `Authorization: Bearer weft_…` (an operator makes one with `weft tenant \
                 token create TENANT`)",
            ));
        };
        let safe = matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
        if by_cookie && !safe && !parts.headers.contains_key(UI_HEADER) {
            return Err(Problem::forbidden(
                "a request authenticated by the web UI's cookie must come from the web UI; API clients send \
                 `Authorization: Bearer weft_…`",
            ));
        }
        let found =
            if by_cookie { service.tenants.session(token).await } else { service.tenants.authenticate(token).await };
        match found {
            Ok(Some(caller)) => Ok(caller),
            Ok(None) if by_cookie => Err(Problem::unauthorized(
                "the web UI's session has ended (signed out, expired, or its token was revoked); sign in again",
            )),
            Ok(None) => Err(Problem::unauthorized(
                "the token is not valid (unknown, revoked, or its tenant is gone); ask the operator for a new one",
            )),
            Err(e) => {
                tracing::error!(error = %e, "a token could not be checked");
                Err(Problem::unavailable("the token could not be checked; try again shortly"))
            }
        }
    }
}

/// The token a request presents, from its `Authorization` header, or
/// (true) its session cookie.
fn presented_token(parts: &Parts) -> Option<(&str, bool)> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| (token.trim(), false));
    }
    session_cookie(&parts.headers).map(|c| (c, true))
}

/// The web UI's session cookie among `headers`, if any.
pub(super) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == SESSION_COOKIE).then_some(value))
}

impl Caller {
    /// `Err(403)` unless the token allows `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.may(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this token does not allow `{}`; ask the operator for a token with that scope",
                scope.as_str()
            )))
        }
    }
}
