//! The exchange record: one JSON line per request in a capture, the contract that the capture file,
//! `--json` output and every later tool share. docs/capture-format.md documents each field; bump
//! [`RECORD_VERSION`] on any change that an old reader would misread.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::AuthShape;
use crate::error_body::ProviderError;

/// Version of the record schema (`v`).
pub const RECORD_VERSION: u32 = 1;

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A client's request and the answer it got.
    Exchange,
    /// authtap's own cheap request with a refused key to another region of the same provider
    /// (`probe_of` names the exchange that prompted it).
    Probe,
    /// HTTPS_PROXY mode: a CONNECT to a host authtap does not intercept, passed through untouched
    /// (`host`, `path` = `host:port`, bytes each way, duration).
    Tunnel,
}

/// How the request reached authtap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `http://127.0.0.1:7401/<route>/...` set as the client's base URL.
    BaseUrl,
    /// authtap set as the client's HTTPS_PROXY (or HTTP_PROXY): CONNECT, or absolute-form.
    Forward,
}

/// How the exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The upstream's whole response reached the client.
    Complete,
    /// The client went away before the response ended.
    ClientAborted,
    /// No response from the upstream: DNS, connect, TLS or timeout failure (see `failure`).
    UpstreamFailed,
    /// The upstream's response started but broke off (see `failure`).
    UpstreamAborted,
    /// The first path segment named no route; authtap answered 404 itself.
    UnknownRoute,
    /// The client aborted the TLS handshake with authtap's certificate: it does not trust the
    /// authtap CA.
    ClientRejectedCertificate,
    /// The client's TLS handshake with authtap failed for another reason (see `failure`).
    ClientTlsFailed,
    /// authtap refused the request (a host it does not pass on, or a client it does not serve).
    Refused,
}

/// Where an upstream failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureStage {
    Dns,
    Connect,
    Tls,
    Timeout,
    /// The upstream broke the HTTP protocol or reset the connection.
    Protocol,
    /// The response body broke off after the headers.
    Body,
}

/// Why authtap could not get (all of) an answer from the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: FailureStage,
    /// Plain words, e.g. "could not resolve api.moonshot.ai".
    pub message: String,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

/// A diagnosis with a fix. Filled in by the inspector's rules (a later step); the field is part of
/// the record from version 1 so readers need not change when rules arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub fix: String,
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// One exchange: a request through authtap and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub v: u32,
    pub id: String,
    pub kind: RecordKind,
    pub mode: Mode,
    /// Start time, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// The route name, or None when the path named no route.
    pub route: Option<String>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub method: String,
    /// The upstream host the request went to (None when it went nowhere).
    pub host: Option<String>,
    /// The upstream path and query, secret-looking query values redacted.
    pub path: String,
    /// The credential the provider will read (the one its auth style names, else the first found).
    /// Shared: a key's shape is measured once and every record of it points at the same one.
    pub auth: Arc<AuthShape>,
    /// Any further credentials the request carried (e.g. both `x-api-key` and `Authorization`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_auth: Vec<Arc<AuthShape>>,
    pub user_agent: Option<String>,
    pub model: Option<String>,
    pub stream: Option<bool>,
    /// The HTTP version spoken to the upstream (`HTTP/1.1`, `HTTP/2`).
    pub upstream_version: Option<String>,
    /// The status the client received.
    pub status: Option<u16>,
    pub content_type: Option<String>,
    /// The provider's error, parsed from its body and scrubbed of key material.
    pub error: Option<ProviderError>,
    /// Set when authtap could not get a (whole) answer from the upstream.
    pub failure: Option<Failure>,
    /// Time from the request's arrival to the upstream's response headers.
    pub ttfb_ms: Option<f64>,
    pub duration_ms: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    /// For probes: the id of the exchange whose refusal prompted the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_of: Option<String>,
}

impl Exchange {
    /// A record with its identity set and nothing observed yet.
    pub fn new(id: String, kind: RecordKind, ts: String, method: String, path: String) -> Self {
        Exchange {
            v: RECORD_VERSION,
            id,
            kind,
            mode: Mode::BaseUrl,
            ts,
            route: None,
            provider: None,
            region: None,
            method,
            host: None,
            path,
            auth: AuthShape::absent(),
            other_auth: Vec::new(),
            user_agent: None,
            model: None,
            stream: None,
            upstream_version: None,
            status: None,
            content_type: None,
            error: None,
            failure: None,
            ttfb_ms: None,
            duration_ms: 0.0,
            bytes_up: 0,
            bytes_down: 0,
            outcome: Outcome::Complete,
            findings: Vec::new(),
            probe_of: None,
        }
    }
}
