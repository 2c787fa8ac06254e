//! Body wrappers that pass every frame through the moment it arrives and keep, on the side, only what
//! the record needs: byte counts, the request's `model`/`stream` fields (scanned in constant memory),
//! and a bounded prefix of the response for the provider's error. They never buffer or delay a frame.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use authtap_inspector::body_scan::{JsonFieldScanner, RequestFields};
use authtap_inspector::record::{FailureStage, Outcome};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::forward::Draft;

/// What the request body told us, shared with the response side.
#[derive(Default)]
pub struct RequestSide {
    pub bytes: AtomicU64,
    pub fields: OnceLock<RequestFields>,
    /// The client's body broke off (it went away mid-upload): a failed upstream request is then
    /// the client's doing, not the provider's.
    pub client_failed: AtomicBool,
}

/// The request body on its way to the upstream.
pub struct RequestTee {
    inner: Incoming,
    scanner: Option<JsonFieldScanner>,
    side: Arc<RequestSide>,
}

impl RequestTee {
    /// `scan` is false for bodies that cannot hold JSON fields (not JSON by content type).
    pub fn new(inner: Incoming, side: Arc<RequestSide>, scan: bool) -> Self {
        RequestTee {
            inner,
            scanner: scan.then(JsonFieldScanner::new),
            side,
        }
    }

    fn publish(&mut self) {
        if let Some(scanner) = self.scanner.take() {
            let _ = self.side.fields.set(scanner.into_fields());
        }
    }
}

impl Body for RequestTee {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.side
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some(scanner) = &mut this.scanner {
                        scanner.feed(data);
                        if scanner.done() {
                            this.publish();
                        }
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.side.client_failed.store(true, Ordering::Relaxed);
                this.publish();
            }
            Poll::Ready(None) => this.publish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestTee {
    fn drop(&mut self) {
        self.publish();
    }
}

/// The response body on its way to the client. Finishes the record when the body ends, fails, or
/// is dropped by a client that went away.
pub struct ResponseTee {
    inner: Incoming,
    keep: usize,
    prefix: Vec<u8>,
    bytes: u64,
    draft: Option<Box<Draft>>,
}

impl ResponseTee {
    /// Keep at most `keep` bytes of the body for the record.
    pub fn new(inner: Incoming, draft: Box<Draft>, keep: usize) -> Self {
        ResponseTee {
            inner,
            keep,
            prefix: Vec::new(),
            bytes: 0,
            draft: Some(draft),
        }
    }

    fn finish(&mut self, outcome: Outcome, failure: Option<(FailureStage, String)>) {
        if let Some(draft) = self.draft.take() {
            draft.finish(
                outcome,
                failure,
                std::mem::take(&mut self.prefix),
                self.bytes,
            );
        }
    }
}

impl Body for ResponseTee {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                    let room = this.keep.saturating_sub(this.prefix.len());
                    if room > 0 {
                        this.prefix.extend_from_slice(&data[..room.min(data.len())]);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish(Outcome::Complete, None);
                }
            }
            Poll::Ready(None) => this.finish(Outcome::Complete, None),
            Poll::Ready(Some(Err(e))) => {
                let message = format!(
                    "the response body broke off after {} bytes: {}",
                    this.bytes,
                    crate::upstream::error_chain(e)
                );
                this.finish(
                    Outcome::UpstreamAborted,
                    Some((FailureStage::Body, message)),
                );
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseTee {
    fn drop(&mut self) {
        // hyper drops a body it never polled when it is empty (HEAD, 204, 304): that is complete.
        let outcome = if self.inner.is_end_stream() {
            Outcome::Complete
        } else {
            Outcome::ClientAborted
        };
        self.finish(outcome, None);
    }
}
