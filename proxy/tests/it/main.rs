//! authtap's integration tests: one binary, each module one area. Every test runs the real
//! `authtap` binary as a process on 127.0.0.1 and points it with `--connect-to` at the provider
//! emulator (real TLS with a CA made for the test); no test reaches a real provider.

// Test helpers panic with a message on any unexpected state; that is how tests fail.
#![allow(clippy::unwrap_used)]

/// Starting authtap, reading its outputs and capture, a plain HTTP client, canary keys.
mod harness;

/// Bodies, status, headers and streams pass through unchanged; SSE is not buffered.
mod forwarding;

/// Each provider's refusal is recorded with host, region, key shape and error type/code.
mod records;

/// Canary keys appear in no output, at any log level, however they are sent or echoed.
mod redaction;

/// Dead upstreams, concurrency, clean stops, bad config and unsafe listen addresses.
mod failures;

/// `authtap replay`: same records and findings as live, bad lines skipped, exit codes.
mod replay;

/// Every failures.md scenario (A to H) through the proxy: exact finding codes, live and replayed.
mod scenarios;

/// HTTPS_PROXY mode: CONNECT interception with real clients, tunnels, the CA and its commands.
mod forward_mode;

/// The admin API: recent exchanges, the event stream (never stalls forwarding), the token.
mod admin;

/// The web console in headless Chromium: live rows over the event stream, details, safe rendering.
mod web;

/// The real OpenClaw through authtap, base-URL and HTTPS_PROXY (`authtap exec`) modes.
mod openclaw_e2e;

/// `authtap tail` and the terminal console (in tmux): live records, findings, keys, restore on exit.
mod console;

/// `authtap openclaw wire|unwire|doctor` on config files.
mod openclaw_config;

/// Hostile input and limits: 431s, slowloris, the connection cap, an unwritable capture, kill -9, a soak.
mod hardening;

/// Faults: TLS failures, resets before headers and mid-stream, stalls, slow upstreams, clients that leave.
mod faults;
