//! The admin API under `/_authtap/` on the proxy's own listener, for the consoles:
//!
//! - `GET /_authtap/healthz`: `{"status":"ok", ...}`.
//! - `GET /_authtap/api/exchanges?limit=N`: the most recent records (with findings), newest first,
//!   as a JSON array; the same schema as the capture (docs/capture-format.md).
//! - `GET /_authtap/api/events`: Server-Sent Events, one `event: record` per finished record as it
//!   is written. A subscriber too slow to keep up is never waited for: it misses records and gets
//!   `event: lagged` with `{"missed":N}`.
//! - `GET /_authtap/`: the web console (one self-contained page).
//!
//! Only loopback clients may use it when authtap listens on loopback; on any other listen address
//! every admin request needs the admin token (`Authorization: Bearer <token>` or `?token=`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Either, StreamBody};
use hyper::body::Incoming;
use std::future::Future;

use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;

use crate::forward::{ProxyBody, Shared, json_response, own_body};

/// Records kept for `/api/exchanges` and for a console that attaches late.
const RECENT: usize = 1000;
/// Records a subscriber may fall behind before it starts missing them.
const BACKLOG: usize = 4096;
/// A comment line this often keeps idle event streams open through proxies and timeouts.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The web console: one page, no external assets.
const CONSOLE_PAGE: &str = include_str!("web/console.html");

/// Finished records, as JSON lines, for the admin API. The capture writer publishes; HTTP
/// handlers read. Publishing never waits for a reader.
pub struct Feed {
    recent: Mutex<VecDeque<Bytes>>,
    events: broadcast::Sender<Bytes>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            events: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Feed {
    /// A record's JSON (one line, no newline).
    pub fn publish(&self, json: Bytes) {
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(json.clone());
        }
        // No subscriber is fine: the record is in `recent` and the capture.
        let _ = self.events.send(json);
    }

    fn recent(&self, limit: usize) -> Vec<Bytes> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        recent.iter().rev().take(limit).cloned().collect()
    }
}

/// Whether admin requests need a token: whenever the listener is reachable from elsewhere.
pub struct Access {
    pub token: Option<String>,
}

/// Serve a request under `/_authtap/`.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Some(response) = refuse(&shared.admin, peer, &req) {
        return response;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the admin API only answers GET",
        );
    }
    match req.uri().path() {
        "/_authtap" | "/_authtap/" | "/_authtap/index.html" => {
            let mut response = Response::new(own_body(CONSOLE_PAGE));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            // The page loads nothing from elsewhere; say so to the browser too.
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ),
            );
            response
        }
        "/_authtap/healthz" => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "session": shared.session,
            }),
        ),
        "/_authtap/api/exchanges" => {
            let limit = query_param(&req, "limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100)
                .min(RECENT);
            let records = shared.feed.recent(limit);
            let mut body = Vec::with_capacity(records.iter().map(Bytes::len).sum::<usize>() + 2);
            body.push(b'[');
            for (i, record) in records.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(record);
            }
            body.push(b']');
            let mut response = Response::new(own_body(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        "/_authtap/api/events" => events(&shared.feed, shared.shutdown.clone()),
        _ => error(
            StatusCode::NOT_FOUND,
            "no such admin path: try /_authtap/, /_authtap/healthz, /_authtap/api/exchanges or /_authtap/api/events",
        ),
    }
}

/// The reason to turn a request away, if there is one.
fn refuse(
    access: &Access,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    match &access.token {
        None if peer.ip().is_loopback() => None,
        None => Some(error(
            StatusCode::FORBIDDEN,
            "the admin API answers clients on this machine only",
        )),
        Some(token) => {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let given = bearer.or_else(|| query_param(req, "token"));
            let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
            (!ok).then(|| {
                error(
                    StatusCode::UNAUTHORIZED,
                    "the admin API needs the admin token authtap printed at start (Authorization: Bearer <token>, or ?token=)",
                )
            })
        }
    }
}

/// A stream that ends when its token is cancelled.
struct UntilCancelled<S> {
    inner: S,
    cancelled: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl<S: tokio_stream::Stream + Unpin> tokio_stream::Stream for UntilCancelled<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        if self.cancelled.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(
        status,
        &serde_json::json!({"error": {"type": "authtap_admin", "message": message}}),
    )
}

/// The Server-Sent Events stream of finished records. It ends when authtap shuts down, so an
/// attached console does not hold up the exit.
fn events(feed: &Feed, shutdown: CancellationToken) -> Response<ProxyBody> {
    let records = BroadcastStream::new(feed.events.subscribe()).map(|item| {
        let frame = match item {
            Ok(json) => {
                let mut event = Vec::with_capacity(json.len() + 24);
                event.extend_from_slice(b"event: record\ndata: ");
                event.extend_from_slice(&json);
                event.extend_from_slice(b"\n\n");
                Bytes::from(event)
            }
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
            }
        };
        Ok::<_, Infallible>(Frame::data(frame))
    });
    let keepalive = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(KEEPALIVE))
        .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": keepalive\n\n"))));
    let stream = UntilCancelled {
        inner: records.merge(keepalive),
        cancelled: Box::pin(shutdown.cancelled_owned()),
    };
    let mut response = Response::new(Either::Right(StreamBody::new(stream).boxed_unsync()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_told_how_many_it_missed() {
        let feed = Feed::default();
        let mut slow = feed.events.subscribe();
        for i in 0..BACKLOG + 10 {
            feed.publish(Bytes::from(format!("{{\"id\":\"{i}\"}}")));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(missed)) => assert_eq!(missed, 10),
            other => panic!("expected a lag report, got {other:?}"),
        }
        assert_eq!(feed.recent(3).len(), 3);
        assert_eq!(
            feed.recent(3)[0],
            Bytes::from(format!("{{\"id\":\"{}\"}}", BACKLOG + 9))
        );
    }
}
