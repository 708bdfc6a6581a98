//! `GET /v1/runs/{id}/events`: a run's journal as server-sent events, as it
//! is written. Each event's id is the entry's own sequence number in the
//! run's journal (never a global counter, whose values do not arrive in
//! commit order), its name the entry's kind, its data the entry as JSON. A
//! client that reconnects with `Last-Event-ID` (or `?after=`) gets what
//! came after. The stream ends after the run's `run_finished`.

use super::Service;
use super::extract::{ApiPath, ApiQuery};
use super::problem::Problem;
use super::tenants::{Caller, Scope};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

/// How often a live run's journal is read for new entries when no write
/// of this process wakes the stream (a run driven elsewhere); only the
/// entries after the last one sent are read.
const POLL: Duration = Duration::from_millis(100);

/// Where to start.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only entries after this sequence number (as `Last-Event-ID`).
    pub after: Option<u64>,
}

/// What the stream still has to do.
struct Cursor {
    service: Arc<Service>,
    run_id: String,
    after: u64,
    queued: VecDeque<Event>,
    finished: bool,
    /// Notified when this process journals for the run.
    wake: Arc<tokio::sync::Notify>,
}

/// A run's journal as server-sent events.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id"), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this sequence number")),
    responses(
        (status = 200, description = "`text/event-stream`: one event per journal entry (id: its sequence number, event: its kind, data: the entry)", content_type = "text/event-stream", body = Object),
        (status = 400, description = "A bad `Last-Event-ID`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn stream(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    caller.require(Scope::RunsRead)?;
    service.own_run(&caller, &id).await?;
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
            Problem::bad_request("`Last-Event-ID` must be the id of an event this stream sent (a number)")
        })?),
    };
    let after = last.or(q.after).unwrap_or(0);
    let wake = service.wakers.watch(&id);
    let cursor = Cursor { service, run_id: id, after, queued: VecDeque::new(), finished: false, wake };
    Ok(Sse::new(stream::unfold(cursor, next_event)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The next event, reading the journal until there is one; None once the
/// run's end was sent (or the store fails: the client reconnects).
async fn next_event(mut c: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(event) = c.queued.pop_front() {
            return Some((Ok(event), c));
        }
        if c.finished {
            return None;
        }
        // A server shutting down ends its streams (after what its drained
        // runs journaled); clients reconnect elsewhere.
        let ending = c.service.streams_end.is_cancelled();
        // Armed before the read, so that a write right after it still wakes us.
        let wake = c.wake.clone();
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let journal = match c.service.engine.store().journal_after(&c.run_id, c.after).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(run_id = %c.run_id, error = %e, "a run's events stopped: its journal could not be read");
                return None;
            }
        };
        for j in &journal {
            c.after = j.seq;
            c.finished |= matches!(j.entry, crate::store::JournalEntry::RunFinished { .. });
            let data = serde_json::to_string(j).unwrap_or_else(|_| "{}".into());
            c.queued.push_back(Event::default().id(j.seq.to_string()).event(j.entry.kind()).data(data));
        }
        if c.queued.is_empty() {
            if ending {
                return None;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = c.service.streams_end.cancelled() => {}
            }
        }
    }
}
