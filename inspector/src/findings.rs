//! The rules that turn records into findings: what went wrong, in the user's words, with a fix.
//!
//! An [`Inspector`] sees records one at a time, in capture order, and keeps a bounded memory of the
//! session (where each key was accepted or refused, which keys each provider has seen). Live, the
//! capture writer runs it on each record before writing; `authtap replay` runs the same code over a
//! capture, so both give the same findings. Fix texts name real base URLs (never authtap's listen
//! address, which a replay does not know), so a fix reads the same wherever it is shown.
//!
//! Provider knowledge (key shapes, error signatures, model families, header rules, regions) comes
//! from the catalog; the rules here only combine it.

use std::collections::HashMap;
use std::sync::Arc;

use authtap_config::{AuthStyle, Catalog, ErrorSignature, Meaning, Plan, Provider, Route};

use crate::auth::{AuthShape, Defect};
use crate::record::{Exchange, FailureStage, Finding, Mode, Outcome, RecordKind, Severity};

/// How many (provider, key) pairs the session remembers before it starts over; enough for any
/// real session, and it keeps replay's memory flat on captures of millions of records.
const MAX_TRACKED_KEYS: usize = 4096;
/// How many distinct keys per provider `key-changed` lists.
const MAX_KEYS_PER_PROVIDER: usize = 16;

/// Where a key was accepted or refused.
#[derive(Debug, Clone)]
struct Place {
    route: String,
    region: String,
    plan: Plan,
    host: String,
    id: String,
}

/// A key a provider has seen in this session.
#[derive(Debug, Clone)]
struct KeySeen {
    fingerprint: String,
    label: String,
    first_id: String,
    first_ts: String,
    count: u64,
}

/// Inspects records in order.
pub struct Inspector {
    catalog: Arc<Catalog>,
    /// Where each key was accepted.
    accepted: Places,
    /// Where each key was refused.
    refused: Places,
    /// provider → keys it has seen, in order of first use.
    keys: HashMap<String, Vec<KeySeen>>,
}

/// What the rules know about one record.
struct Ctx<'a> {
    record: &'a Exchange,
    route: Option<&'a Route>,
    provider: Option<&'a Provider>,
    status: u16,
    /// The route's provider's own signature for the error, if any.
    signature: Option<&'a ErrorSignature>,
    /// Another provider's signature, when the route's provider has none for this error.
    foreign: Option<&'a ErrorSignature>,
}

impl Ctx<'_> {
    fn meaning(&self) -> Option<Meaning> {
        self.signature.map(|s| s.meaning)
    }

    /// The provider refused the request's credentials (not its balance, model or client).
    fn refused(&self) -> bool {
        match self.meaning() {
            Some(Meaning::AuthRejected | Meaning::MissingKey | Meaning::HeaderStyle) => true,
            Some(_) => false,
            None => matches!(self.status, 401 | 403),
        }
    }

    fn failed(&self) -> bool {
        self.status >= 400 || self.record.failure.is_some()
    }

    fn provider_name(&self) -> &str {
        self.provider
            .map(|p| p.name.as_str())
            .or(self.record.provider.as_deref())
            .unwrap_or("the provider")
    }

    fn host(&self) -> &str {
        self.record.host.as_deref().unwrap_or("the upstream")
    }

    /// What the provider said, quoted, for detail texts.
    fn said(&self) -> String {
        let Some(error) = &self.record.error else {
            return format!("HTTP {}", self.status);
        };
        let label = [error.kind.as_deref(), error.code.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        match (&error.message, label.is_empty()) {
            (Some(m), false) => format!("HTTP {} {label}: \"{m}\"", self.status),
            (Some(m), true) => format!("HTTP {} \"{m}\"", self.status),
            (None, _) => format!("HTTP {} {label}", self.status),
        }
    }
}

impl Inspector {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Inspector {
            catalog,
            accepted: Places::default(),
            refused: Places::default(),
            keys: HashMap::new(),
        }
    }

    /// The findings for `record`, given every record inspected before it. Probes update the
    /// session and get no findings of their own.
    pub fn inspect(&mut self, record: &Exchange) -> Vec<Finding> {
        let catalog = self.catalog.clone();
        let route = record.route.as_deref().and_then(|r| catalog.route(r));
        let provider = record.provider.as_deref().and_then(|p| catalog.provider(p));
        let status = record.status.unwrap_or(0);
        let (signature, foreign) = match (&record.error, &record.provider) {
            (Some(e), Some(own)) => {
                let matching = catalog.error_signatures.iter().filter(|s| {
                    s.matches(
                        status,
                        &record.path,
                        e.kind.as_deref(),
                        e.code.as_deref(),
                        e.message.as_deref(),
                    )
                });
                let mut own_match = None;
                let mut other = None;
                for s in matching {
                    if s.providers.contains(own) {
                        own_match = Some(s);
                        break;
                    }
                    other = other.or(Some(s));
                }
                (own_match, if own_match.is_none() { other } else { None })
            }
            _ => (None, None),
        };
        let ctx = Ctx {
            record,
            route,
            provider,
            status,
            signature,
            foreign,
        };

        let mut findings = Vec::new();
        if record.kind == RecordKind::Exchange {
            self.rules(&ctx, &mut findings);
        }
        self.remember(&ctx);
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        findings
    }

    fn rules(&self, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        let record = ctx.record;
        if let Some(f) = upstream_unreachable(ctx).or_else(|| client_distrusts_ca(ctx)) {
            out.push(f);
            return;
        }
        if record.outcome == Outcome::UnknownRoute || ctx.route.is_none() {
            return;
        }
        let before = out.len();
        out.extend(missing_key(ctx));
        out.extend(malformed_key(ctx));
        out.extend(key_provider_mismatch(ctx, &self.catalog));
        out.extend(header_style_mismatch(ctx, &self.catalog));
        out.extend(client_gate(ctx));
        out.extend(plan_endpoint_mismatch(ctx, &self.catalog));
        out.extend(self.region_mismatch(ctx));
        out.extend(model_provider_mismatch(ctx, &self.catalog));
        out.extend(foreign_error_body(ctx, &self.catalog));
        out.extend(quota_or_billing(ctx));
        out.extend(endpoint_not_found(ctx));
        let explained = out[before..].iter().any(|f| f.severity == Severity::Error);
        if !explained {
            out.extend(auth_rejected(ctx));
        }
        out.extend(self.key_changed(ctx));
    }

    /// Record where this key worked or was refused, and which keys each provider has seen.
    fn remember(&mut self, ctx: &Ctx<'_>) {
        let record = ctx.record;
        let (Some(provider), Some(fingerprint)) = (&record.provider, &record.auth.fingerprint)
        else {
            return;
        };
        let places = if (200..300).contains(&ctx.status) {
            Some(&mut self.accepted)
        } else if ctx.refused() {
            Some(&mut self.refused)
        } else {
            None
        };
        if let Some(places) = places {
            places.remember(
                provider,
                fingerprint,
                record,
                plan_of(ctx.route, &record.path),
            );
        }
        if record.kind != RecordKind::Exchange {
            return;
        }
        // Looked up before inserting: nearly every record is from a provider already seen.
        let seen = match self.keys.get_mut(provider.as_str()) {
            Some(seen) => seen,
            None => self.keys.entry(provider.clone()).or_default(),
        };
        if let Some(k) = seen.iter_mut().find(|k| &k.fingerprint == fingerprint) {
            k.count += 1;
        } else if seen.len() < MAX_KEYS_PER_PROVIDER {
            seen.push(KeySeen {
                fingerprint: fingerprint.clone(),
                label: key_label(&record.auth),
                first_id: record.id.clone(),
                first_ts: record.ts.clone(),
                count: 1,
            });
        }
    }

    /// A key refused in one region of a provider and accepted in another.
    fn region_mismatch(&self, ctx: &Ctx<'_>) -> Option<Finding> {
        let record = ctx.record;
        let (provider, fingerprint) =
            (record.provider.as_ref()?, record.auth.fingerprint.as_ref()?);
        let region = record.region.as_deref().unwrap_or_default();
        let plan = plan_of(ctx.route, &record.path);
        let name = ctx.provider_name();
        if ctx.refused() {
            let good = self
                .accepted
                .get(provider, fingerprint)?
                .iter()
                .find(|p| p.region != region && p.plan == plan)?;
            let label = key_label(&record.auth);
            let route = self.catalog.route(&good.route)?;
            return Some(Finding {
                code: "region-mismatch".into(),
                severity: Severity::Error,
                title: format!(
                    "{name} refused this key at {} ({region}) but accepts it at {} ({})",
                    ctx.host(),
                    good.host,
                    good.region
                ),
                detail: format!(
                    "The key {label} was refused at {} with {}, and the same key (same fingerprint) was accepted at {} in record {}. Keys of {name} belong to one region: this one is a {} key sent to the {region} endpoint.",
                    ctx.host(),
                    ctx.said(),
                    good.host,
                    good.id,
                    good.region
                ),
                fix: base_url_fix(&self.catalog, route, record.mode),
                evidence: vec![record.id.clone(), good.id.clone()],
            });
        }
        if (200..300).contains(&ctx.status) {
            let bad = self
                .refused
                .get(provider, fingerprint)?
                .iter()
                .find(|p| p.region != region && p.plan == plan)?;
            let label = key_label(&record.auth);
            let route = ctx.route?;
            return Some(Finding {
                code: "region-mismatch".into(),
                severity: Severity::Info,
                title: format!(
                    "this key works at {} ({region}); {} ({}) refused it earlier",
                    ctx.host(),
                    bad.host,
                    bad.region
                ),
                detail: format!(
                    "The key {label} was refused at {} in record {} and is accepted here: it is a {region} key. Whatever sent it to {} should use this endpoint instead.",
                    bad.host, bad.id, bad.host
                ),
                fix: base_url_fix(&self.catalog, route, record.mode),
                evidence: vec![record.id.clone(), bad.id.clone()],
            });
        }
        None
    }

    /// A provider that has now seen a second (third, ...) key in this session.
    fn key_changed(&self, ctx: &Ctx<'_>) -> Option<Finding> {
        let record = ctx.record;
        let (provider, fingerprint) =
            (record.provider.as_ref()?, record.auth.fingerprint.as_ref()?);
        let seen = self.keys.get(provider)?;
        if seen.is_empty() || seen.iter().any(|k| &k.fingerprint == fingerprint) {
            return None;
        }
        let name = ctx.provider_name();
        let earlier: Vec<String> = seen
            .iter()
            .map(|k| {
                format!(
                    "{} (first at {}, record {}, {} request{})",
                    k.label,
                    k.first_ts,
                    k.first_id,
                    k.count,
                    if k.count == 1 { "" } else { "s" }
                )
            })
            .collect();
        let mut evidence = vec![record.id.clone()];
        evidence.extend(seen.iter().map(|k| k.first_id.clone()));
        Some(Finding {
            code: "key-changed".into(),
            severity: Severity::Warn,
            title: format!(
                "{name} now gets a key it has not seen before in this session: {}, after {}",
                key_label(&record.auth),
                if seen.len() == 1 {
                    "1 other key".to_string()
                } else {
                    format!("{} other keys", seen.len())
                }
            ),
            detail: format!(
                "This session sent {name} the key {} from record {}, after: {}. Several keys for one provider usually mean several credential sources (an environment variable, a .env file, the gateway's auth profile, a service manager's snapshot) or a stale key after rotation.",
                key_label(&record.auth),
                record.id,
                earlier.join("; ")
            ),
            fix: format!(
                "Compare each key's last 4 characters with the key in {name}'s console and remove the stale one from wherever it comes from (for OpenClaw: `openclaw models status`, ~/.openclaw/.env, and the service environment of a launchd/systemd gateway; reinstall the service after rotating a key)."
            ),
            evidence,
        })
    }
}

/// Where keys were accepted (or refused): provider → fingerprint → places, so that a record is
/// looked up by its own strings, without building a key.
#[derive(Default)]
struct Places {
    by_provider: HashMap<String, HashMap<String, Vec<Place>>>,
    keys: usize,
}

impl Places {
    fn get(&self, provider: &str, fingerprint: &str) -> Option<&Vec<Place>> {
        self.by_provider.get(provider)?.get(fingerprint)
    }

    /// Add where `record` went, unless a place with its route and plan is there already.
    fn remember(&mut self, provider: &str, fingerprint: &str, record: &Exchange, plan: Plan) {
        let route = record.route.as_deref().unwrap_or_default();
        let known = self.get(provider, fingerprint);
        if known.is_some_and(|places| places.iter().any(|p| p.route == route && p.plan == plan)) {
            return;
        }
        if known.is_none() {
            if self.keys >= MAX_TRACKED_KEYS {
                self.by_provider.clear();
                self.keys = 0;
            }
            self.keys += 1;
        }
        self.by_provider
            .entry(provider.to_owned())
            .or_default()
            .entry(fingerprint.to_owned())
            .or_default()
            .push(Place {
                route: route.to_owned(),
                region: record.region.clone().unwrap_or_default(),
                plan,
                host: record.host.clone().unwrap_or_default(),
                id: record.id.clone(),
            });
    }
}

/// Coding plan if the route is one, or the path is a coding endpoint (`/api/coding/paas/v4`).
fn plan_of(route: Option<&Route>, path: &str) -> Plan {
    if route.is_some_and(|r| r.plan == Plan::Coding) || path.contains("/coding/paas/") {
        Plan::Coding
    } else {
        Plan::General
    }
}

/// `sk-kimi-…Xy8z`: what a user can match against their console; for keys too short to show any
/// part of, their length.
fn key_label(auth: &AuthShape) -> String {
    match (&auth.prefix, &auth.last4) {
        (Some(p), Some(l)) => format!("{p}…{l}"),
        (Some(p), None) => format!("{p}… ({} characters)", auth.len),
        (None, Some(l)) => format!("…{l}"),
        (None, None) => format!("of {} characters", auth.len),
    }
}

/// "a" or "an", for a provider name.
fn a(name: &str) -> String {
    let vowel = name
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    // Initialisms read letter by letter ("an xAI key", "an MCP") are not worth the guesswork;
    // the catalog's names start with plain words or these.
    let an = vowel || name.starts_with("xAI");
    format!("{} {name}", if an { "an" } else { "a" })
}

/// The `openclaw config set` line (where the provider is known to OpenClaw) that points the
/// provider at `route`'s real base URL, plus the authtap route to use while testing.
fn base_url_fix(catalog: &Catalog, route: &Route, mode: Mode) -> String {
    let url = route.upstream_base_url(0);
    let provider = catalog.provider(&route.provider);
    let mut lines = Vec::new();
    match provider.and_then(|p| p.openclaw_id.as_deref()) {
        Some(id) => lines.push(format!(
            "openclaw config set models.providers.{id}.baseUrl {url}"
        )),
        None => lines.push(format!(
            "Set the gateway's base URL for this provider to {url}"
        )),
    }
    // Through HTTPS_PROXY the gateway's base URL is the real one; only base-URL mode has a route.
    if mode == Mode::BaseUrl {
        lines.push(format!(
            "(while testing through authtap, use its route `{}` instead)",
            route.name
        ));
    }
    lines.join("\n")
}

fn upstream_unreachable(ctx: &Ctx<'_>) -> Option<Finding> {
    let failure = ctx.record.failure.as_ref()?;
    if ctx.record.outcome != Outcome::UpstreamFailed {
        return None;
    }
    let host = ctx.host();
    let (what, fix) = match failure.stage {
        FailureStage::Dns => (
            "its name does not resolve",
            format!(
                "Check the host name in the route or base URL, and that this machine's DNS works (`getent hosts {host}`). Some provider hosts are not reachable from every country: try the provider's other region."
            ),
        ),
        FailureStage::Connect => (
            "the connection was refused or could not be made",
            "Check network access to the provider from this machine (firewall, VPN, corporate proxy); if you use a custom route, check its host and port.".to_string(),
        ),
        FailureStage::Tls => (
            "the TLS handshake failed",
            "If a corporate proxy or antivirus intercepts TLS, give authtap its CA with --upstream-ca; otherwise check that the host is the provider's and that this machine's clock is right.".to_string(),
        ),
        FailureStage::Timeout => (
            "it did not answer in time",
            "Check network access to the provider; raise --connect-timeout or --response-timeout if the provider is slow.".to_string(),
        ),
        FailureStage::Protocol | FailureStage::Body => (
            "the connection broke",
            "Retry; if it keeps happening, the provider or a middlebox is cutting connections.".to_string(),
        ),
    };
    Some(Finding {
        code: "upstream-unreachable".into(),
        severity: Severity::Error,
        title: format!("{host} could not be reached: {what}"),
        detail: format!(
            "The request never got an answer from {host}, so the problem is not the key: {}",
            failure.message
        ),
        fix,
        evidence: vec![ctx.record.id.clone()],
    })
}

fn client_distrusts_ca(ctx: &Ctx<'_>) -> Option<Finding> {
    if ctx.record.outcome != Outcome::ClientRejectedCertificate {
        return None;
    }
    let host = ctx.host();
    Some(Finding {
        code: "client-distrusts-ca".into(),
        severity: Severity::Error,
        title: format!("the client rejected authtap's certificate for {host}: it does not trust the authtap CA"),
        detail: format!(
            "The client connected through authtap (HTTPS_PROXY) to {host} and aborted the TLS handshake with authtap's certificate, so no request was sent. Intercepting needs the client to trust authtap's local CA; clients that do not will fail here, typically after retrying for a while, with a network error such as UNABLE_TO_VERIFY_LEAF_SIGNATURE."
        ),
        fix: "Run `authtap ca env` and load its lines into the client's environment: NODE_EXTRA_CA_CERTS for Node.js (OpenClaw), SSL_CERT_FILE or REQUESTS_CA_BUNDLE for Python, CURL_CA_BUNDLE or --cacert for curl. Then restart the client (a gateway service needs them in its own environment).".into(),
        evidence: vec![ctx.record.id.clone()],
    })
}

/// Gateways started by a service manager do not see the shell's environment: the most common
/// reason a key that "is set" never arrives (failures.md F1-F5).
const DAEMON_NOTE: &str =
    "A gateway started by launchd or systemd does not see variables exported in your shell.";

fn set_key_fix(provider: Option<&Provider>) -> String {
    let mut lines = Vec::new();
    if let Some(p) = provider {
        if let Some(choice) = &p.openclaw_auth_choice {
            lines.push(format!("openclaw onboard --auth-choice {choice}"));
        }
        if !p.env.is_empty() {
            let or = if lines.is_empty() { "Set" } else { "or set" };
            lines.push(format!(
                "{or} {} where the gateway runs (for OpenClaw: ~/.openclaw/.env), then restart it: openclaw gateway restart",
                p.env.join(" or ")
            ));
        }
    }
    if lines.is_empty() {
        lines.push("Give the gateway the key for this provider and restart it.".into());
    }
    lines.join("\n")
}

fn missing_key(ctx: &Ctx<'_>) -> Option<Finding> {
    let auth = &ctx.record.auth;
    let says_missing = ctx.meaning() == Some(Meaning::MissingKey);
    if auth.present || !(ctx.refused() || says_missing) {
        return None;
    }
    let header = ctx
        .provider
        .map_or("Authorization", |p| header_words(p.auth));
    let name = ctx.provider_name();
    let what = if auth.header.is_some() {
        format!(
            "an empty {} header",
            auth.header.as_deref().unwrap_or_default()
        )
    } else {
        "no key at all".to_string()
    };
    Some(Finding {
        code: "missing-key".into(),
        severity: Severity::Error,
        title: format!("the request reached {name} with {what}"),
        detail: format!(
            "{name} expects the key in {header}, and the request carried {what}; it answered {}. The gateway has no key for this provider, or reads it from a variable that is empty where it runs. {DAEMON_NOTE}",
            ctx.said()
        ),
        fix: set_key_fix(ctx.provider),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn header_words(style: AuthStyle) -> &'static str {
    match style {
        AuthStyle::Bearer => "Authorization: Bearer",
        AuthStyle::XApiKey => "x-api-key",
        AuthStyle::XGoogApiKey => "x-goog-api-key (or ?key=)",
    }
}

fn malformed_key(ctx: &Ctx<'_>) -> Option<Finding> {
    let auth = &ctx.record.auth;
    let defects: Vec<&Defect> = auth
        .defects
        .iter()
        .filter(|d| **d != Defect::Empty)
        .collect();
    if defects.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    let mut fixes = Vec::new();
    for d in &defects {
        let (w, f) = match d {
            Defect::Placeholder => (
                "a placeholder or redaction marker instead of a key",
                "Put the real key where the gateway reads it; a literal `${VAR}`, `__…_REDACTED__` or `undefined` means the variable was never filled in",
            ),
            Defect::Quoted => (
                "quote characters around the key",
                "Remove the quotes from the value (in .env files write KEY=value, not KEY=\"value\" inside another layer of quoting)",
            ),
            Defect::Newline => (
                "a line break inside or after the key",
                "Paste the key again without the line break (a terminal paste or a CRLF .env file adds one)",
            ),
            Defect::LeadingWhitespace | Defect::TrailingWhitespace => (
                "spaces or tabs around the key",
                "Trim the whitespace from the stored value",
            ),
            Defect::InnerWhitespace => (
                "whitespace inside the key",
                "Paste the key again as one unbroken string",
            ),
            Defect::NonAscii => (
                "characters outside ASCII (a BOM, no-break space, smart quote or dash)",
                "Retype or re-copy the key from the provider's console as plain text, not from a document or chat",
            ),
            Defect::ControlCharacter => ("control characters", "Paste the key again as plain text"),
            Defect::DoubledScheme => (
                "the scheme twice (`Bearer Bearer …`)",
                "Store only the key itself; the client adds `Bearer` on its own",
            ),
            Defect::MissingScheme => (
                "no `Bearer` scheme in the Authorization header",
                "Send `Authorization: Bearer <key>`; if you set headers by hand, add the scheme",
            ),
            Defect::Empty => continue,
        };
        if !what.contains(&w) {
            what.push(w);
            fixes.push(f);
        }
    }
    let severity = if ctx.failed() {
        Severity::Error
    } else {
        Severity::Warn
    };
    let outcome = if ctx.failed() {
        format!("and {} answered {}", ctx.provider_name(), ctx.said())
    } else {
        "; the provider accepted it this time, but other clients or endpoints may not".into()
    };
    let placeholder = defects.contains(&&Defect::Placeholder);
    Some(Finding {
        code: "malformed-key".into(),
        severity,
        title: format!("the key as sent has {}", what.join(", ")),
        detail: format!(
            "The value in {} ({}) has {} {outcome}.{}",
            auth.header.as_deref().unwrap_or("the request"),
            key_label(auth),
            what.join(", "),
            if placeholder {
                format!(" {DAEMON_NOTE}")
            } else {
                String::new()
            }
        ),
        fix: if placeholder {
            format!("{}.\n{}", fixes.join(".\n"), set_key_fix(ctx.provider))
        } else {
            format!("{}.", fixes.join(".\n"))
        },
        evidence: vec![ctx.record.id.clone()],
    })
}

fn key_provider_mismatch(ctx: &Ctx<'_>, catalog: &Catalog) -> Option<Finding> {
    let auth = &ctx.record.auth;
    let own = ctx.record.provider.as_deref()?;
    if !auth.present || auth.shape_providers.is_empty() {
        return None;
    }
    let shape = catalog.key_shapes.iter().find(|s| s.id == auth.shape)?;
    if shape.generic || shape.providers.iter().any(|p| p == own) {
        return None;
    }
    let owner_id = shape.providers.first()?;
    let owner = catalog.provider(owner_id);
    let owner_name = owner.map_or(owner_id.as_str(), |p| p.name.as_str());
    let name = ctx.provider_name();
    let mut fix = Vec::new();
    match catalog.route_for(owner_id, None) {
        Some(route) => {
            let url = route.upstream_base_url(0);
            let openclaw: Vec<String> = owner
                .into_iter()
                .flat_map(|p| {
                    let onboard = p
                        .openclaw_auth_choice
                        .as_ref()
                        .map(|c| format!("openclaw onboard --auth-choice {c}"));
                    let base = p.openclaw_id.as_ref().map(|id| {
                        format!("openclaw config set models.providers.{id}.baseUrl {url}")
                    });
                    onboard.into_iter().chain(base)
                })
                .collect();
            if openclaw.is_empty() {
                fix.push(format!(
                    "This key belongs at {owner_name} ({url}): configure it for {owner_name}, not {name}."
                ));
            } else {
                fix.push(format!(
                    "This key belongs at {owner_name} ({url}); configure it for {owner_name}:"
                ));
                fix.extend(openclaw);
            }
            fix.push(format!(
                "If you meant to use {name}, create {} key and use it here.",
                a(name)
            ));
        }
        None => fix.push(format!(
            "Use this key with {owner_name}, or create {} key for this endpoint.",
            a(name)
        )),
    }
    Some(Finding {
        code: "key-provider-mismatch".into(),
        severity: if ctx.failed() {
            Severity::Error
        } else {
            Severity::Warn
        },
        title: format!("{} key was sent to {name}", a(owner_name)),
        detail: format!(
            "The key {} has the shape of {} key (`{}`), and it went to {} ({name}){}. Keys are not interchangeable between providers.",
            key_label(auth),
            a(owner_name),
            auth.shape,
            ctx.host(),
            if ctx.failed() {
                format!(", which answered {}", ctx.said())
            } else {
                String::new()
            }
        ),
        fix: fix.join("\n"),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn header_style_mismatch(ctx: &Ctx<'_>, catalog: &Catalog) -> Option<Finding> {
    let record = ctx.record;
    let provider = ctx.provider?;
    let says_header = ctx.meaning() == Some(Meaning::HeaderStyle);
    let says_missing = ctx.meaning() == Some(Meaning::MissingKey);
    if !(ctx.refused() || says_header || ctx.status == 500) || !record.auth.present {
        return None;
    }
    // A damaged key does not match its shape, so header rules that depend on it would misjudge.
    if record
        .auth
        .defects
        .iter()
        .any(|d| *d != Defect::MissingScheme)
    {
        return None;
    }
    let rule = catalog.header_rule(
        &provider.id,
        record.region.as_deref().unwrap_or_default(),
        &record.path,
        &record.auth.shape,
    );
    // Only with evidence: a catalog rule for this endpoint, or the provider itself saying the key
    // is in the wrong place or did not arrive although one was sent. Without either, a key in an
    // unusual header may still be read (many endpoints accept both), so nothing is claimed.
    if rule.is_none() && !says_header && !says_missing {
        return None;
    }
    let expect = rule.map_or(provider.auth, |r| r.expect);
    let reads = |auth: &AuthShape| {
        let place = auth.header.as_deref().unwrap_or_default();
        place == expect.header() || (expect == AuthStyle::XGoogApiKey && place == "query:key")
    };
    if reads(&record.auth) || record.other_auth.iter().any(|a| reads(a)) {
        return None;
    }
    let sent = record.auth.header.as_deref().unwrap_or("nowhere");
    let note = rule.map(|r| format!(": {}", r.note)).unwrap_or_default();
    Some(Finding {
        code: "header-style-mismatch".into(),
        severity: Severity::Error,
        title: match rule.and_then(|r| r.key_shape.as_deref()) {
            Some(shape) => format!(
                "the key went in {sent}, but `{shape}` keys go in {} here",
                header_words(expect)
            ),
            None => format!(
                "the key went in {sent}, but this endpoint reads {}",
                header_words(expect)
            ),
        },
        detail: format!(
            "{} at {}{} reads the key from {}{note}. The request carried it in {sent}, and the provider answered {}.",
            ctx.provider_name(),
            ctx.host(),
            record.path,
            header_words(expect),
            ctx.said()
        ),
        fix: match expect {
            AuthStyle::Bearer => "Send the key as `Authorization: Bearer <key>` (for Anthropic-style clients: ANTHROPIC_AUTH_TOKEN instead of ANTHROPIC_API_KEY).".into(),
            AuthStyle::XApiKey => "Send the key as `x-api-key: <key>` (for Anthropic-style clients: ANTHROPIC_API_KEY instead of ANTHROPIC_AUTH_TOKEN).".into(),
            AuthStyle::XGoogApiKey => "Send the key as `x-goog-api-key: <key>` or `?key=<key>`.".into(),
        },
        evidence: vec![record.id.clone()],
    })
}

fn client_gate(ctx: &Ctx<'_>) -> Option<Finding> {
    if ctx.meaning() != Some(Meaning::ClientGate) {
        return None;
    }
    let ua = ctx.record.user_agent.as_deref();
    let agent = ua.map_or("no User-Agent".to_string(), |ua| {
        format!("User-Agent `{ua}`")
    });
    let name = ctx.provider_name();
    let allowed = ua.is_some_and(|ua| {
        ctx.provider
            .is_some_and(|p| p.allowed_agents.iter().any(|a| ua.starts_with(a.as_str())))
    });
    if allowed {
        return Some(Finding {
            code: "client-gate".into(),
            severity: Severity::Error,
            title: format!(
                "{name} turned away a client it normally allows ({agent}): most likely an outage on its side"
            ),
            detail: format!(
                "{name} answered {}, its answer for clients outside its allowlist, but this request came from an allowed agent and the key got past authentication. The same answer came during a {name} incident (kimi-code #413) and went away when it was fixed.",
                ctx.said()
            ),
            fix: format!(
                "Retry in a few minutes and check {name}'s status channels; nothing in your setup needs to change."
            ),
            evidence: vec![ctx.record.id.clone()],
        });
    }
    Some(Finding {
        code: "client-gate".into(),
        severity: Severity::Error,
        title: format!("{name} refuses this client ({agent}), not the key"),
        detail: format!(
            "{name} answered {}: it serves only the coding agents on its allowlist, which it recognises by User-Agent, and this request came with {agent}. The key itself got past authentication. The same answer has also come from {name} outages (kimi-code #413).",
            ctx.said()
        ),
        fix: "Use a client Kimi Code supports, or update OpenClaw: its current kimi provider identifies itself the way Kimi Code accepts (`openclaw config get models.providers.kimi` should show no custom User-Agent override). Do not fake a User-Agent by hand: Kimi Code has terminated accounts for that (openclacky #192).".into(),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn plan_endpoint_mismatch(ctx: &Ctx<'_>, catalog: &Catalog) -> Option<Finding> {
    if ctx.meaning() != Some(Meaning::PlanEndpoint) {
        return None;
    }
    let record = ctx.record;
    let route = ctx.route?;
    let name = ctx.provider_name();
    let coding_path = route
        .base_paths
        .iter()
        .position(|p| p.contains("/coding/"))
        .map(|i| route.upstream_base_url(i));
    let fix = match (
        coding_path,
        ctx.provider.and_then(|p| p.openclaw_id.as_deref()),
    ) {
        (Some(url), Some(id)) => format!(
            "If you have a coding plan, use the coding endpoint:\nopenclaw config set models.providers.{id}.baseUrl {url}"
        ),
        (Some(url), None) => format!("If you have a coding plan, use the coding endpoint: {url}"),
        (None, _) => format!(
            "Use the endpoint that matches your plan: {}",
            catalog
                .routes
                .iter()
                .filter(|r| r.provider == route.provider && r.plan != route.plan)
                .map(|r| r.upstream_base_url(0))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    };
    Some(Finding {
        code: "plan-endpoint-mismatch".into(),
        severity: Severity::Error,
        title: format!(
            "{name} answered a balance error on its general endpoint: likely a coding-plan key"
        ),
        detail: format!(
            "{}{} answered {}. A coding-plan key on the general (pay-as-you-go) endpoint gets this answer although the key and the subscription are valid (openclaw #66204); the coding plan has its own endpoint.",
            ctx.host(),
            record.path,
            ctx.said()
        ),
        fix,
        evidence: vec![record.id.clone()],
    })
}

fn model_provider_mismatch(ctx: &Ctx<'_>, catalog: &Catalog) -> Option<Finding> {
    let model = ctx.record.model.as_deref()?;
    let own = ctx.provider?;
    if own.models.is_empty() || own.owns_model(model) {
        return None;
    }
    let owner = catalog
        .providers
        .iter()
        .find(|p| p.id != own.id && p.owns_model(model))?;
    let url = catalog
        .route_for(&owner.id, None)
        .map(|r| format!(", base URL {}", r.upstream_base_url(0)))
        .unwrap_or_default();
    Some(Finding {
        code: "model-provider-mismatch".into(),
        severity: if ctx.failed() {
            Severity::Error
        } else {
            Severity::Warn
        },
        title: format!(
            "model `{model}` is a {} model, sent to {}",
            owner.name, own.name
        ),
        detail: format!(
            "The request asked {} ({}) for `{model}`, which belongs to {}'s models. The gateway's model reference and its provider disagree, or the provider's base URL points at the wrong company.",
            own.name,
            ctx.host(),
            owner.name
        ),
        fix: match &owner.openclaw_id {
            Some(id) => format!(
                "Use the {} provider for this model: model ref `{id}/{model}`{url}. Or pick one of {}'s models.",
                owner.name, own.name
            ),
            None => format!(
                "Send `{model}` to {}{url}. Or pick one of {}'s models.",
                owner.name, own.name
            ),
        },
        evidence: vec![ctx.record.id.clone()],
    })
}

fn foreign_error_body(ctx: &Ctx<'_>, catalog: &Catalog) -> Option<Finding> {
    let foreign = ctx.foreign?;
    let other_id = foreign.providers.first()?;
    let other = catalog
        .provider(other_id)
        .map_or(other_id.as_str(), |p| p.name.as_str());
    let name = ctx.provider_name();
    Some(Finding {
        code: "foreign-error-body".into(),
        severity: Severity::Error,
        title: format!("the error came back in {other}'s format, not {name}'s"),
        detail: format!(
            "Route `{}` should reach {name} at {}, but the answer ({}) matches {other}'s error signature `{}`. Something between the gateway and {name} sends these requests to {other}: a stale base URL, a relay, or an environment variable such as ANTHROPIC_BASE_URL or OPENAI_BASE_URL left over from another setup.",
            ctx.record.route.as_deref().unwrap_or_default(),
            ctx.host(),
            ctx.said(),
            foreign.id
        ),
        fix: format!(
            "Check every place the gateway takes a base URL from (its config, *_BASE_URL variables, a .env file, the service environment) and point this provider at {name}'s own endpoint."
        ),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn quota_or_billing(ctx: &Ctx<'_>) -> Option<Finding> {
    let meaning = ctx.meaning()?;
    let (code, title, fix) = match meaning {
        Meaning::Quota => (
            "quota-or-billing",
            format!(
                "{} refused on balance, quota or rate, not on the key",
                ctx.provider_name()
            ),
            "Check the account's balance, plan and rate limits in the provider's console; the key itself was accepted.",
        ),
        Meaning::ModelAccess => (
            "model-unavailable",
            format!(
                "{} does not give this key access to the model",
                ctx.provider_name()
            ),
            "Pick a model your plan includes (the provider's model list shows which), or upgrade the plan.",
        ),
        _ => return None,
    };
    Some(Finding {
        code: code.into(),
        severity: Severity::Error,
        title,
        detail: format!(
            "{} at {} answered {}: that is not an authentication failure, whatever the status code says.",
            ctx.provider_name(),
            ctx.host(),
            ctx.said()
        ),
        fix: fix.into(),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn endpoint_not_found(ctx: &Ctx<'_>) -> Option<Finding> {
    if ctx.status != 404 || ctx.meaning().is_some() {
        return None;
    }
    let route = ctx.route?;
    let expected: Vec<String> = route
        .base_paths
        .iter()
        .enumerate()
        .map(|(i, _)| route.upstream_base_url(i))
        .collect();
    Some(Finding {
        code: "endpoint-not-found".into(),
        severity: Severity::Warn,
        title: format!("{} has no endpoint at {}", ctx.host(), ctx.record.path),
        detail: format!(
            "{} answered {} for {} {}: the base URL is probably missing a segment or has one too many (a doubled /v1, /coding or /anthropic).",
            ctx.host(),
            ctx.said(),
            ctx.record.method,
            ctx.record.path
        ),
        fix: format!(
            "Compare the gateway's base URL for {} with the usual ones: {}",
            ctx.provider_name(),
            expected.join(", ")
        ),
        evidence: vec![ctx.record.id.clone()],
    })
}

fn auth_rejected(ctx: &Ctx<'_>) -> Option<Finding> {
    if !ctx.refused() {
        return None;
    }
    let auth = &ctx.record.auth;
    let name = ctx.provider_name();
    Some(Finding {
        code: "auth-rejected".into(),
        severity: Severity::Error,
        title: format!("{name} refused the key {}", key_label(auth)),
        detail: format!(
            "{} answered {} to the key {} (shape `{}`, fingerprint {}). Nothing else in the request explains it: the key is well-formed, of a kind {name} uses, and went where {name} reads it.",
            ctx.host(),
            ctx.said(),
            key_label(auth),
            auth.shape,
            auth.fingerprint.as_deref().unwrap_or("none")
        ),
        fix: format!(
            "Check that the key's last 4 characters match a live key in {name}'s console; if not, the gateway sends another key than you think. If they match, the key may be revoked, expired or for another account or region: create a new one.\n{}",
            set_key_fix(ctx.provider)
        ),
        evidence: vec![ctx.record.id.clone()],
    })
}

/// Sibling routes worth probing after `record` was refused: the same provider and plan in other
/// regions, where the provider has a probe endpoint. Pure, so the proxy and tests agree on it.
pub fn probe_targets<'c>(catalog: &'c Catalog, record: &Exchange) -> Vec<&'c Route> {
    let (Some(route_name), Some(provider_id)) = (&record.route, &record.provider) else {
        return Vec::new();
    };
    let Some(route) = catalog.route(route_name) else {
        return Vec::new();
    };
    let has_probe = catalog
        .provider(provider_id)
        .is_some_and(|p| p.probe.is_some());
    if !has_probe || !record.auth.present || !matches!(record.status, Some(401 | 403)) {
        return Vec::new();
    }
    // Probe endpoints are general-plan API paths; coding-plan hosts lay theirs out differently.
    if plan_of(Some(route), &record.path) != Plan::General {
        return Vec::new();
    }
    catalog
        .routes
        .iter()
        .filter(|r| {
            r.provider == *provider_id && r.region != route.region && r.plan == Plan::General
        })
        .collect()
}
