//! authtap's pure logic: the exchange record, redaction of auth material into a shape, provider error
//! bodies, and (later) the rules that turn records into findings.
//!
//! No sockets and no clock reads: every function takes what it needs, so the same input gives the
//! same output live and in offline replay.

pub mod auth;
pub mod body_scan;
pub mod error_body;
pub mod findings;
pub mod record;
pub mod secret;
#[cfg(test)]
mod test_rng;
