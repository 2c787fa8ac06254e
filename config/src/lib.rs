//! authtap's settings and provider catalog.
//!
//! Config goes parse → validate → immutable value: [`Config::from_toml`] reads TOML text (the
//! built-in `catalog.toml`, then the user's file on top), checks every entry, and hands back a
//! [`Config`] that the rest of authtap only reads. Nothing here touches the network or the process
//! environment, so every rule is testable with a string.
//!
//! Not here: command-line flags (the binary merges them over [`Settings`]), and any logic that
//! judges an exchange (that is the inspector's).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use regex::Regex;
use serde::Deserialize;

/// The built-in catalog, compiled in so `authtap run` works with no files at all.
pub const BUILTIN_CATALOG: &str = include_str!("../catalog.toml");

/// A config problem, always the user's file (or the built-in catalog), named with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/mistyped key; toml's message carries line, column and the valid keys.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A value that parses but makes no sense.
    #[error("{origin}: {what}: {message}")]
    Invalid {
        origin: String,
        what: String,
        message: String,
    },
}

/// How a provider's endpoints expect the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`
    Bearer,
    /// `x-api-key: <key>`
    XApiKey,
    /// `x-goog-api-key: <key>` (or `?key=`)
    XGoogApiKey,
}

impl AuthStyle {
    /// The header name, lower case.
    pub fn header(self) -> &'static str {
        match self {
            AuthStyle::Bearer => "authorization",
            AuthStyle::XApiKey => "x-api-key",
            AuthStyle::XGoogApiKey => "x-goog-api-key",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    name: String,
    auth: AuthStyle,
    #[serde(default)]
    openclaw_id: Option<String>,
    #[serde(default)]
    openclaw_auth_choice: Option<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    probe: Option<String>,
    #[serde(default)]
    allowed_agents: Vec<String>,
}

/// A provider: one company's API, possibly served from several regions (routes).
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub auth: AuthStyle,
    /// The provider's id in OpenClaw's `models.providers`, where verified.
    pub openclaw_id: Option<String>,
    /// `openclaw onboard --auth-choice <this>`.
    pub openclaw_auth_choice: Option<String>,
    /// Environment variables gateways read this provider's key from.
    pub env: Vec<String>,
    /// This provider's model families; empty when it serves everyone's models.
    pub models: Vec<Regex>,
    /// A cheap authenticated GET (path relative to a route's upstream) to test a key.
    pub probe: Option<String>,
    /// User-Agent prefixes of the clients a provider with a client allowlist accepts.
    pub allowed_agents: Vec<String>,
}

impl Provider {
    /// Whether `model` belongs to one of this provider's families.
    pub fn owns_model(&self, model: &str) -> bool {
        self.models.iter().any(|m| m.is_match(model))
    }
}

/// What a provider's error means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Meaning {
    /// The key was refused.
    AuthRejected,
    /// The provider says no key arrived.
    MissingKey,
    /// The provider refuses this client (Kimi Code's User-Agent allowlist).
    ClientGate,
    /// Balance, quota or rate limits: the key is fine.
    Quota,
    /// A coding-plan key on a general endpoint, or the reverse.
    PlanEndpoint,
    /// The key works but not for this model.
    ModelAccess,
    /// The key went in a header this endpoint does not read.
    HeaderStyle,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErrorSignature {
    id: String,
    providers: Vec<String>,
    #[serde(default)]
    status: Vec<u16>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    path: Option<String>,
    meaning: Meaning,
}

/// A recognisable provider error body and what it means.
#[derive(Debug, Clone)]
pub struct ErrorSignature {
    pub id: String,
    pub providers: Vec<String>,
    pub status: Vec<u16>,
    pub kind: Option<Regex>,
    pub code: Option<Regex>,
    pub message: Option<Regex>,
    pub path: Option<Regex>,
    pub meaning: Meaning,
}

impl ErrorSignature {
    /// Whether an error (its type, code and message), answered with `status` to a request for
    /// `path`, has this signature. Every condition given must hold.
    pub fn matches(
        &self,
        status: u16,
        path: &str,
        kind: Option<&str>,
        code: Option<&str>,
        message: Option<&str>,
    ) -> bool {
        let field = |re: &Option<Regex>, value: Option<&str>| {
            re.as_ref()
                .is_none_or(|re| value.is_some_and(|v| re.is_match(v)))
        };
        (self.status.is_empty() || self.status.contains(&status))
            && field(&self.kind, kind)
            && field(&self.code, code)
            && field(&self.message, message)
            && field(&self.path, Some(path))
    }
}

/// Where an endpoint reads the key, when it differs from the provider's `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    pub provider: String,
    /// Prefix of the upstream path; None for every path.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub key_shape: Option<String>,
    pub expect: AuthStyle,
    pub note: String,
}

/// Whether an endpoint belongs to a subscription coding plan or the general (pay-as-you-go) API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Plan {
    #[default]
    General,
    Coding,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    provider: String,
    region: String,
    upstream: String,
    #[serde(default)]
    base_paths: Vec<String>,
    #[serde(default)]
    plan: Plan,
}

/// A route: the first path segment on authtap's listener, and where it forwards.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub upstream: Upstream,
    /// What a client appends to `/<name>` to get its base URL; the first is the usual one.
    pub base_paths: Vec<String>,
    pub plan: Plan,
}

impl Route {
    /// The real base URL a client would use without authtap, for the route's `i`-th base path
    /// (`https://api.moonshot.cn/v1`, `https://api.kimi.com/coding/`).
    pub fn upstream_base_url(&self, i: usize) -> String {
        let path = self.base_paths.get(i).map_or("/", String::as_str);
        match path {
            "/" => format!("{}/", self.upstream.url()),
            p => format!("{}{p}", self.upstream.url()),
        }
    }
}

/// An upstream base: `scheme://host[:port][/base]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Base path without a trailing slash; empty for the root.
    pub base: String,
}

impl Upstream {
    /// `host` or `host:port` when the port is not the scheme's default: the HTTP authority.
    pub fn authority(&self) -> String {
        let mut out = String::new();
        self.push_origin(&mut out, false);
        out
    }

    /// `https://host[:port]/base` as the user wrote it.
    pub fn url(&self) -> String {
        let mut out = String::new();
        self.push_origin(&mut out, true);
        out.push_str(&self.base);
        out
    }

    /// Append the authority (with `scheme://` before it when `scheme`) to `out`: the request
    /// path builds each upstream URL in one string this way.
    pub fn push_origin(&self, out: &mut String, scheme: bool) {
        if scheme {
            out.push_str(if self.https { "https://" } else { "http://" });
        }
        if self.host.contains(':') {
            out.push('[');
            out.push_str(&self.host);
            out.push(']');
        } else {
            out.push_str(&self.host);
        }
        if self.port != if self.https { 443 } else { 80 } {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, ":{}", self.port);
        }
    }
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{s}` must start with https:// or http://"));
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if base.contains(['?', '#']) {
            return Err(format!("`{s}` must not have a query or fragment"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("`{s}` has no valid host[:port]"))?;
        Ok(Upstream {
            https,
            host,
            port,
            base: base.to_string(),
        })
    }
}

/// Split `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = match &rest[end + 1..] {
            "" => default_port,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        (&rest[..end], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (s, default_port),
        }
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    valid.then(|| (host.to_ascii_lowercase(), port))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyShape {
    id: String,
    providers: Vec<String>,
    #[serde(default)]
    prefix: Option<String>,
    pattern: String,
    #[serde(default)]
    generic: bool,
}

/// What a kind of key looks like.
#[derive(Debug, Clone)]
pub struct KeyShape {
    pub id: String,
    /// Providers whose keys look like this.
    pub providers: Vec<String>,
    /// The public part that may be shown (`sk-kimi-`); None when the key has none.
    pub prefix: Option<String>,
    /// Matches the whole key.
    pub pattern: Regex,
    /// Same pattern without anchors, to find echoes of such keys inside text.
    pub search: Regex,
    /// True when the shape does not tell providers apart (a bare `sk-…`).
    pub generic: bool,
}

/// The provider catalog: who exists, where they live, what their keys look like, what their
/// errors mean.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub providers: Vec<Provider>,
    pub routes: Vec<Route>,
    pub key_shapes: Vec<KeyShape>,
    pub error_signatures: Vec<ErrorSignature>,
    pub header_rules: Vec<HeaderRule>,
    route_index: HashMap<String, usize>,
    /// Every key shape's pattern in one automaton: a key is matched against all in one pass.
    shape_set: regex::RegexSet,
    /// The same without anchors: whether a text may hold any kind of key, in one pass.
    search_set: regex::RegexSet,
}

impl Catalog {
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.route_index.get(name).map(|&i| &self.routes[i])
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Whether `text` holds something shaped like a key of any kind (one pass over it; nearly
    /// every text holds none, and then no shape's own search needs to run).
    pub fn may_hold_key(&self, text: &str) -> bool {
        self.search_set.is_match(text)
    }

    /// The first key shape whose pattern matches the whole key.
    pub fn key_shape(&self, key: &str) -> Option<&KeyShape> {
        let first = self.shape_set.matches(key).iter().next()?;
        self.key_shapes.get(first)
    }

    /// The first route of a provider in a region (any region when None), preferring general plans.
    pub fn route_for(&self, provider: &str, region: Option<&str>) -> Option<&Route> {
        let candidates = || {
            self.routes
                .iter()
                .filter(move |r| r.provider == provider && region.is_none_or(|g| r.region == g))
        };
        candidates()
            .find(|r| r.plan == Plan::General)
            .or_else(|| candidates().next())
    }

    /// The route a request to `host` (and `port`) for `path` belongs to, when authtap is used as
    /// HTTPS_PROXY: same host and port, and the longest upstream base that prefixes the path.
    pub fn route_for_host(&self, host: &str, port: u16, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.upstream.host == host && r.upstream.port == port)
            .filter(|r| r.upstream.base.is_empty() || path.starts_with(&r.upstream.base))
            .max_by_key(|r| r.upstream.base.len())
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| r.upstream.host == host && r.upstream.port == port)
            })
    }

    /// Whether some route's upstream is `host`.
    pub fn has_host(&self, host: &str) -> bool {
        self.routes.iter().any(|r| r.upstream.host == host)
    }

    /// The first error signature that matches.
    pub fn error_signature(
        &self,
        status: u16,
        path: &str,
        kind: Option<&str>,
        code: Option<&str>,
        message: Option<&str>,
    ) -> Option<&ErrorSignature> {
        self.error_signatures
            .iter()
            .find(|s| s.matches(status, path, kind, code, message))
    }

    /// The header rule for a request, if any.
    pub fn header_rule(
        &self,
        provider: &str,
        region: &str,
        path: &str,
        key_shape: &str,
    ) -> Option<&HeaderRule> {
        self.header_rules.iter().find(|r| {
            r.provider == provider
                && r.path.as_deref().is_none_or(|p| path.starts_with(p))
                && r.region.as_deref().is_none_or(|g| g == region)
                && r.key_shape.as_deref().is_none_or(|k| k == key_shape)
        })
    }

    /// The longest catalog prefix the key starts with: the part of a key that is safe to show.
    pub fn public_prefix(&self, key: &str) -> Option<&str> {
        self.key_shapes
            .iter()
            .filter_map(|s| s.prefix.as_deref())
            .filter(|p| key.starts_with(p))
            .max_by_key(|p| p.len())
    }
}

/// `--connect-to HOST:PORT:TARGET_HOST:TARGET_PORT`, with curl's meaning: connect to the target
/// instead, but keep HOST for SNI, the Host header and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub target_host: String,
    pub target_port: u16,
}

impl FromStr for ConnectTo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not HOST:PORT:TARGET_HOST:TARGET_PORT (e.g. api.moonshot.ai:443:127.0.0.1:8443)"
            )
        };
        // Split on ':' outside brackets so IPv6 targets can be written as [::1].
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in s.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ':' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        let [host, port, target_host, target_port] = parts[..] else {
            return Err(bad());
        };
        let port = port.parse().map_err(|_| bad())?;
        let target_port = target_port.parse().map_err(|_| bad())?;
        let target_host = target_host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || target_host.is_empty() {
            return Err(bad());
        }
        Ok(ConnectTo {
            host: host.to_ascii_lowercase(),
            port,
            target_host: target_host.to_string(),
            target_port,
        })
    }
}

impl fmt::Display for ConnectTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.port, self.target_host, self.target_port
        )
    }
}

/// Settings a config file may give; command-line flags override them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub listen: Option<SocketAddr>,
    pub capture: Option<PathBuf>,
    /// Seconds to wait for the upstream's TCP connect and TLS handshake.
    pub connect_timeout_secs: Option<u64>,
    /// Seconds to wait for the upstream's response headers (models can think for minutes).
    pub response_timeout_secs: Option<u64>,
    pub upstream_ca: Vec<PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    /// Probe refused keys at the provider's other regions (default on).
    pub probe: Option<bool>,
    /// An existing CA to intercept with (HTTPS_PROXY mode), instead of authtap's own.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    /// Hosts to intercept in HTTPS_PROXY mode besides the catalog's route hosts.
    pub intercept: Vec<String>,
    /// What HTTPS_PROXY mode does with every other host.
    pub other_hosts: Option<OtherHosts>,
    /// The admin API's token when listening on a non-loopback address.
    pub admin_token: Option<String>,
    /// Client connections served at once.
    pub max_connections: Option<usize>,
    /// Rotate the capture at this many MiB.
    pub capture_max_mb: Option<f64>,
}

/// What HTTPS_PROXY mode does with a host it does not intercept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtherHosts {
    /// Pass the bytes through untouched (and record host, port, bytes, duration).
    #[default]
    Tunnel,
    /// Answer 403: only provider traffic goes through authtap.
    Refuse,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    capture: Option<PathBuf>,
    connect_timeout_secs: Option<u64>,
    response_timeout_secs: Option<u64>,
    #[serde(default)]
    upstream_ca: Vec<PathBuf>,
    #[serde(default)]
    connect_to: Vec<String>,
    probe: Option<bool>,
    ca_cert: Option<PathBuf>,
    ca_key: Option<PathBuf>,
    #[serde(default)]
    intercept: Vec<String>,
    other_hosts: Option<OtherHosts>,
    admin_token: Option<String>,
    max_connections: Option<usize>,
    capture_max_mb: Option<f64>,
    #[serde(default)]
    provider: Vec<RawProvider>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    key_shape: Vec<RawKeyShape>,
    #[serde(default)]
    error_signature: Vec<RawErrorSignature>,
    /// Replaces the built-in list when given (rules have no id to override one by one).
    #[serde(default)]
    header_rule: Option<Vec<HeaderRule>>,
}

/// Everything authtap runs with: settings plus the catalog.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub catalog: Catalog,
}

impl Config {
    /// The built-in catalog with no settings.
    pub fn builtin() -> Config {
        // The built-in catalog is tested (`builtin_catalog_is_valid`); failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_toml(None, "")
            .expect("the built-in catalog is valid (checked by config's tests)")
    }

    /// The built-in catalog overlaid with the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(Some(&path.display().to_string()), &text)
    }

    /// The built-in catalog overlaid with `text` (a user config named `origin` in errors).
    pub fn from_toml(origin: Option<&str>, text: &str) -> Result<Config, ConfigError> {
        let builtin = parse_raw("built-in catalog", BUILTIN_CATALOG)?;
        let origin = origin.unwrap_or("config");
        let user = parse_raw(origin, text)?;
        let invalid = |what: String, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            what,
            message,
        };

        let listen = match &user.listen {
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "listen".into(),
                    format!("`{s}` is not an address like 127.0.0.1:7401"),
                )
            })?),
            None => None,
        };
        let connect_to = user
            .connect_to
            .iter()
            .map(|s| s.parse().map_err(|m| invalid("connect_to".into(), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let settings = Settings {
            listen,
            capture: user.capture,
            connect_timeout_secs: user.connect_timeout_secs,
            response_timeout_secs: user.response_timeout_secs,
            upstream_ca: user.upstream_ca,
            connect_to,
            probe: user.probe,
            ca_cert: user.ca_cert,
            ca_key: user.ca_key,
            intercept: user
                .intercept
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            other_hosts: user.other_hosts,
            admin_token: user.admin_token,
            max_connections: user.max_connections,
            capture_max_mb: user.capture_max_mb,
        };
        if settings.ca_cert.is_some() != settings.ca_key.is_some() {
            return Err(invalid(
                "ca_cert".into(),
                "give both ca_cert and ca_key, or neither".into(),
            ));
        }

        let raw_providers = overlay(builtin.provider, user.provider, |p| p.id.clone());
        let mut providers = Vec::with_capacity(raw_providers.len());
        for p in raw_providers {
            let what = format!("provider `{}`", p.id);
            let models = p
                .models
                .iter()
                .map(|m| regex("models", m).map_err(|m| invalid(what.clone(), m)))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(probe) = p.probe.as_deref().filter(|p| !p.starts_with('/')) {
                return Err(invalid(what, format!("probe `{probe}` must start with /")));
            }
            providers.push(Provider {
                id: p.id,
                name: p.name,
                auth: p.auth,
                openclaw_id: p.openclaw_id,
                openclaw_auth_choice: p.openclaw_auth_choice,
                env: p.env,
                models,
                probe: p.probe,
                allowed_agents: p.allowed_agents,
            });
        }
        let raw_routes = overlay(builtin.route, user.route, |r| r.name.clone());
        let raw_shapes = overlay(builtin.key_shape, user.key_shape, |k| k.id.clone());

        let mut routes = Vec::with_capacity(raw_routes.len());
        for r in raw_routes {
            let what = format!("route `{}`", r.name);
            if r.name.is_empty()
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    what,
                    "a route name may hold only letters, digits, - and _".into(),
                ));
            }
            if r.name.starts_with('_') {
                return Err(invalid(
                    what,
                    "route names starting with _ are reserved for authtap".into(),
                ));
            }
            if !providers.iter().any(|p| p.id == r.provider) {
                return Err(invalid(
                    what,
                    format!(
                        "provider `{}` is not in the catalog (known: {})",
                        r.provider,
                        providers
                            .iter()
                            .map(|p| p.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let upstream = r.upstream.parse().map_err(|m| invalid(what.clone(), m))?;
            let base_paths = if r.base_paths.is_empty() {
                vec!["/".to_string()]
            } else {
                r.base_paths
            };
            if let Some(p) = base_paths.iter().find(|p| !p.starts_with('/')) {
                return Err(invalid(what, format!("base path `{p}` must start with /")));
            }
            routes.push(Route {
                name: r.name,
                provider: r.provider,
                region: r.region,
                upstream,
                base_paths,
                plan: r.plan,
            });
        }

        let mut key_shapes = Vec::with_capacity(raw_shapes.len());
        for k in raw_shapes {
            let what = format!("key_shape `{}`", k.id);
            let pattern = Regex::new(&k.pattern)
                .map_err(|e| invalid(what.clone(), format!("pattern is not a valid regex: {e}")))?;
            let unanchored = k.pattern.trim_start_matches('^').trim_end_matches('$');
            let search = Regex::new(unanchored)
                .map_err(|e| invalid(what.clone(), format!("pattern is not a valid regex: {e}")))?;
            if let Some(prefix) = &k.prefix
                && prefix.len() > 16
            {
                return Err(invalid(
                    what,
                    format!(
                        "prefix `{prefix}` is longer than 16 characters; a public prefix is the fixed start every such key shares"
                    ),
                ));
            }
            key_shapes.push(KeyShape {
                id: k.id,
                providers: k.providers,
                prefix: k.prefix,
                pattern,
                search,
                generic: k.generic,
            });
        }

        let raw_signatures = overlay(builtin.error_signature, user.error_signature, |e| {
            e.id.clone()
        });
        let mut error_signatures = Vec::with_capacity(raw_signatures.len());
        for e in raw_signatures {
            let what = format!("error_signature `{}`", e.id);
            let compile = |field: &str, re: &Option<String>| {
                re.as_deref()
                    .map(|r| regex(field, r))
                    .transpose()
                    .map_err(|m| invalid(what.clone(), m))
            };
            error_signatures.push(ErrorSignature {
                kind: compile("type", &e.kind)?,
                code: compile("code", &e.code)?,
                message: compile("message", &e.message)?,
                path: compile("path", &e.path)?,
                id: e.id,
                providers: e.providers,
                status: e.status,
                meaning: e.meaning,
            });
        }
        let header_rules = user
            .header_rule
            .unwrap_or(builtin.header_rule.unwrap_or_default());
        for id in error_signatures
            .iter()
            .flat_map(|e| &e.providers)
            .chain(header_rules.iter().map(|h| &h.provider))
            .chain(key_shapes.iter().flat_map(|k| &k.providers))
        {
            if !providers.iter().any(|p| &p.id == id) {
                return Err(invalid(
                    format!("provider `{id}`"),
                    "is named in the catalog but has no [[provider]] entry".into(),
                ));
            }
        }

        let route_index = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        Ok(Config {
            settings,
            catalog: Catalog {
                providers,
                routes,
                shape_set: regex::RegexSet::new(key_shapes.iter().map(|k| k.pattern.as_str()))
                    .map_err(|e| {
                        invalid("key_shape".into(), format!("patterns do not combine: {e}"))
                    })?,
                search_set: regex::RegexSet::new(key_shapes.iter().map(|k| k.search.as_str()))
                    .map_err(|e| {
                        invalid("key_shape".into(), format!("patterns do not combine: {e}"))
                    })?,
                key_shapes,
                error_signatures,
                header_rules,
                route_index,
            },
        })
    }
}

fn regex(field: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("{field} `{pattern}` is not a valid regex: {e}"))
}

fn parse_raw(origin: &str, text: &str) -> Result<RawFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Built-in entries in order, each replaced by a user entry with the same id; new user entries after.
fn overlay<T>(builtin: Vec<T>, user: Vec<T>, id: impl Fn(&T) -> String) -> Vec<T> {
    let mut user: Vec<Option<T>> = user.into_iter().map(Some).collect();
    let mut out: Vec<T> = builtin
        .into_iter()
        .map(|b| {
            let bid = id(&b);
            user.iter_mut()
                .find(|u| u.as_ref().is_some_and(|u| id(u) == bid))
                .and_then(Option::take)
                .unwrap_or(b)
        })
        .collect();
    out.extend(user.into_iter().flatten());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid() {
        let config = Config::from_toml(None, "").expect("built-in catalog");
        let names: Vec<_> = config
            .catalog
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        for required in [
            "moonshot",
            "moonshot-cn",
            "kimi-coding",
            "zai",
            "zai-cn",
            "minimax",
            "minimax-cn",
            "dashscope",
            "dashscope-intl",
            "deepseek",
            "openai",
            "anthropic",
            "openrouter",
            "groq",
            "xai",
            "gemini",
        ] {
            assert!(names.contains(&required), "route {required} missing");
        }
        let kimi = config.catalog.route("kimi-coding").expect("kimi-coding");
        assert_eq!(kimi.upstream.url(), "https://api.kimi.com/coding");
        assert_eq!(
            config
                .catalog
                .route("zai-cn")
                .expect("zai-cn")
                .upstream
                .host,
            "open.bigmodel.cn"
        );
    }

    #[test]
    fn key_shapes_tell_kimi_coding_from_moonshot() {
        let c = Config::builtin().catalog;
        let kimi = format!("sk-kimi-{}", "a1B2".repeat(16));
        let moonshot = format!("sk-{}", "a1B2".repeat(12));
        let zai = format!("{}.{}", "0a1b".repeat(8), "Ab12".repeat(4));
        assert_eq!(c.key_shape(&kimi).expect("kimi").id, "kimi-coding");
        assert_eq!(c.public_prefix(&kimi), Some("sk-kimi-"));
        let generic = c.key_shape(&moonshot).expect("generic");
        assert!(generic.generic && generic.providers.contains(&"moonshot".to_string()));
        assert_eq!(c.key_shape(&zai).expect("zai").id, "zai");
        assert!(c.key_shape("hello").is_none());
    }

    #[test]
    fn user_file_overrides_and_adds_routes() {
        let config = Config::from_toml(
            Some("authtap.toml"),
            r#"
listen = "127.0.0.1:9000"
[[route]]
name = "moonshot"
provider = "moonshot"
region = "intl"
upstream = "https://api.kimi.ai/"
base_paths = ["/v1"]
[[route]]
name = "local"
provider = "openai"
region = "lab"
upstream = "http://127.0.0.1:8080/openai"
"#,
        )
        .expect("valid");
        let c = &config.catalog;
        assert_eq!(
            c.route("moonshot").expect("moonshot").upstream.host,
            "api.kimi.ai"
        );
        assert_eq!(c.routes[0].name, "moonshot", "override keeps its place");
        let local = c.route("local").expect("added");
        assert_eq!(local.upstream.url(), "http://127.0.0.1:8080/openai");
        assert_eq!(local.base_paths, vec!["/"]);
        assert_eq!(
            config.settings.listen,
            Some("127.0.0.1:9000".parse().expect("addr"))
        );
    }

    #[test]
    fn errors_name_file_line_and_valid_keys() {
        let err = Config::from_toml(Some("my.toml"), "lisen = \"127.0.0.1:1\"\n")
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.starts_with("my.toml"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        assert!(msg.contains("listen"), "suggests the valid key: {msg}");

        let err = Config::from_toml(
            Some("my.toml"),
            "[[route]]\nname=\"x\"\nprovider=\"nope\"\nregion=\"a\"\nupstream=\"https://a\"\n",
        )
        .expect_err("unknown provider");
        assert!(err.to_string().contains("provider `nope`"), "{err}");

        let err = Config::from_toml(None, "listen = \"localhost\"").expect_err("bad addr");
        assert!(err.to_string().contains("127.0.0.1:7401"), "{err}");
    }

    #[test]
    fn connect_to_parses_like_curl() {
        let c: ConnectTo = "api.moonshot.ai:443:127.0.0.1:8443".parse().expect("valid");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.target_host.as_str(),
                c.target_port
            ),
            ("api.moonshot.ai", 443, "127.0.0.1", 8443)
        );
        let v6: ConnectTo = "api.z.ai:443:[::1]:9".parse().expect("v6");
        assert_eq!(v6.target_host, "::1");
        assert!("api.z.ai:443:127.0.0.1".parse::<ConnectTo>().is_err());
        assert!("api.z.ai:x:127.0.0.1:1".parse::<ConnectTo>().is_err());
    }

    #[test]
    fn upstream_urls() {
        let u: Upstream = "https://api.kimi.com/coding/".parse().expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("api.kimi.com", 443, "/coding")
        );
        assert!("ftp://x".parse::<Upstream>().is_err());
        assert!("https://".parse::<Upstream>().is_err());
        let p: Upstream = "http://[::1]:8080".parse().expect("v6");
        assert_eq!(p.authority(), "[::1]:8080");
    }

    #[test]
    fn mangled_config_files_are_errors_never_panics() {
        // A small deterministic generator: every failure reproduces from the seed.
        let mut state: u64 = 0x5EED;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n.max(1)
        };
        let base = BUILTIN_CATALOG.as_bytes();
        let junk: [&[u8]; 8] = [b"[[", b"]]", b"=", b"\"", b"'", b"\n", b"[route]", b"{"];
        for _ in 0..300 {
            let mut text = base.to_vec();
            for _ in 0..1 + next(4) {
                let at = next(text.len());
                match next(3) {
                    0 => {
                        let end = (at + next(200)).min(text.len());
                        text.drain(at..end);
                    }
                    1 => {
                        let piece = junk[next(junk.len())];
                        text.splice(at..at, piece.iter().copied());
                    }
                    _ => text.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&text);
            // The mangled text is the user's file here; Ok or Err, never a panic.
            let _ = Config::from_toml(Some("mangled.toml"), &text);
        }
    }
}
