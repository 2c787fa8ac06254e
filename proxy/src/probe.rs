//! The sibling-region probe. When a provider with several regions refuses a key, authtap sends the
//! same key once to each other region's cheap endpoint (e.g. `GET /v1/models`), at most once per
//! key and region per run. Each probe is recorded (`kind: "probe"`) *before* the exchange that
//! prompted it, so the inspector (live, and in a replay of the capture) has the evidence when it
//! looks at the refusal. The client's response is never held: only the exchange's record waits.
//!
//! A probe is not proof everywhere: Kimi Code's `/models` answers 200 for keys whose chat calls are
//! refused by its client gate, which is why that provider has no probe in the catalog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authtap_config::Route;
use authtap_inspector::auth::Measured;
use authtap_inspector::record::{Exchange, Failure, FailureStage, Outcome, RecordKind};
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};

use crate::forward::{ERROR_PREFIX_LIMIT, Shared, millis, now_rfc3339};
use crate::upstream::{self, UpstreamBody};

/// How long one probe may take, end to end.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How many (key, route) pairs are remembered as probed before the memory starts over.
const MAX_PROBED: usize = 4096;

/// Record `exchange`, first running and recording the probes it calls for.
pub fn record_after_probes(shared: Arc<Shared>, exchange: Exchange, secrets: Vec<Arc<Measured>>) {
    let targets = if shared.probe {
        new_targets(&shared, &exchange)
    } else {
        Vec::new()
    };
    if targets.is_empty() {
        shared.recorder.record(exchange);
        return;
    }
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        for route in targets {
            let probe = probe(&shared, &exchange, &secrets, &route).await;
            shared.recorder.record(probe);
        }
        shared.recorder.record(exchange);
    });
}

/// Sibling routes not yet probed with this key.
fn new_targets(shared: &Shared, exchange: &Exchange) -> Vec<Route> {
    let Some(fingerprint) = &exchange.auth.fingerprint else {
        return Vec::new();
    };
    // Only keys in a header can be resent as they came.
    if exchange
        .auth
        .header
        .as_deref()
        .is_none_or(|h| h.starts_with("query:"))
    {
        return Vec::new();
    }
    let candidates = authtap_inspector::findings::probe_targets(&shared.catalog, exchange);
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut probed = shared
        .probed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if probed.len() >= MAX_PROBED {
        probed.clear();
    }
    candidates
        .into_iter()
        .filter(|route| probed.insert((fingerprint.clone(), route.name.clone())))
        .cloned()
        .collect()
}

/// Send the primary credential to `route`'s probe endpoint and describe what came back.
async fn probe(
    shared: &Shared,
    exchange: &Exchange,
    secrets: &[Arc<Measured>],
    route: &Route,
) -> Exchange {
    let started = Instant::now();
    let probe_path = shared
        .catalog
        .provider(&route.provider)
        .and_then(|p| p.probe.clone())
        .unwrap_or_else(|| "/".into());
    let path = format!("{}{probe_path}", route.upstream.base);
    let mut record = Exchange::new(
        shared.next_id(),
        RecordKind::Probe,
        now_rfc3339(),
        "GET".into(),
        path.clone(),
    );
    record.route = Some(route.name.clone());
    record.provider = Some(route.provider.clone());
    record.region = Some(route.region.clone());
    record.host = Some(route.upstream.host.clone());
    record.auth = exchange.auth.clone();
    record.probe_of = Some(exchange.id.clone());
    let user_agent = concat!("authtap/", env!("CARGO_PKG_VERSION"), " (probe)");
    record.user_agent = Some(user_agent.into());

    let fail = |mut record: Exchange, stage, message: String| {
        record.outcome = Outcome::UpstreamFailed;
        record.failure = Some(Failure {
            stage,
            message: shared.scrub(message, secrets),
        });
        record.duration_ms = millis(started.elapsed());
        record
    };
    let Some(credential) = secrets.first().map(|m| &m.credential) else {
        return fail(
            record,
            FailureStage::Protocol,
            "no key to probe with".into(),
        );
    };
    let mut value = credential
        .scheme
        .as_ref()
        .map(|s| format!("{s} ").into_bytes())
        .unwrap_or_default();
    value.extend_from_slice(credential.value.expose());
    let Ok(mut value) = HeaderValue::from_bytes(&value) else {
        return fail(
            record,
            FailureStage::Protocol,
            "the key has bytes no HTTP header can carry".into(),
        );
    };
    value.set_sensitive(true);
    let scheme = if route.upstream.https {
        "https"
    } else {
        "http"
    };
    let request = Request::get(format!("{scheme}://{}{path}", route.upstream.authority()))
        .header(credential.place.as_str(), value)
        .header(http::header::USER_AGENT, user_agent)
        .body(UpstreamBody::Right(Empty::<Bytes>::new()));
    let Ok(request) = request else {
        return fail(
            record,
            FailureStage::Protocol,
            format!("cannot build a request for {path}"),
        );
    };

    let host = route.upstream.host.clone();
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        let response = shared.client.request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let ttfb = started.elapsed();
        let mut body = response.into_body();
        let mut prefix = Vec::new();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
                let room = ERROR_PREFIX_LIMIT.saturating_sub(prefix.len());
                prefix.extend_from_slice(&data[..room.min(data.len())]);
            }
        }
        Ok::<_, hyper_util::client::legacy::Error>((status, headers, ttfb, prefix, bytes))
    })
    .await;
    match answer {
        Err(_) => fail(
            record,
            FailureStage::Timeout,
            format!(
                "the probe of {host} got no answer within {}s",
                PROBE_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(e)) => {
            let failure = upstream::classify(&e, &host);
            fail(record, failure.stage, failure.message)
        }
        Ok(Ok((status, headers, ttfb, prefix, bytes))) => {
            let header = |name| {
                headers
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            record.status = Some(status);
            record.content_type = header(http::header::CONTENT_TYPE);
            record.ttfb_ms = Some(millis(ttfb));
            record.bytes_down = bytes;
            record.error = shared.provider_error(
                record.content_type.as_deref(),
                header(http::header::CONTENT_ENCODING).as_deref(),
                &prefix,
                secrets,
            );
            record.duration_ms = millis(started.elapsed());
            record
        }
    }
}
