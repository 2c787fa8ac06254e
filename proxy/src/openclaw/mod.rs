//! `authtap openclaw wire|unwire|doctor`: read OpenClaw's own config file (JSON5) and send its
//! providers through authtap, put them back, or look for what would make their calls fail.
//!
//! Nothing here touches the network. An `apiKey` value is never printed, stored or compared with
//! anything but authtap's placeholder rules: what is said about a key is where it comes from (a
//! `${VAR}` name, "set in the file" with its length, or missing).

mod doctor;
mod json;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use authtap_config::{Catalog, Provider, Route};
use authtap_inspector::auth::{self, Defect};
use authtap_inspector::secret::FingerprintKey;
use clap::{Args, Subcommand};

use self::json::{Json, ParseError};
use crate::sink::plain;

/// Where authtap listens unless told otherwise (as `authtap run`).
const DEFAULT_LISTEN: &str = "127.0.0.1:7401";

#[derive(Debug, Subcommand)]
pub enum OpenclawCommand {
    /// Send OpenClaw's providers through authtap: print the `openclaw config set` lines, or
    /// write them into the config file with --apply.
    #[command(
        long_about = "Send OpenClaw's providers through authtap. For every provider in models.providers \
(and the default model's provider when it has no entry), find authtap's route for its current base URL, \
keeping the region and plan it points at (https://api.moonshot.cn/v1 goes to route moonshot-cn), and print \
the `openclaw config set` line that points it at authtap, with the line that undoes it. Providers authtap \
has no route for are listed with a [[route]] to add.\n\n\
With --apply the new base URLs are written into the file itself, after a backup of it is saved beside it \
(<file>.authtap-backup-<UTC time>, mode 0600). Everything else in the file is kept, but it is written back \
as plain JSON: comments survive only in the backup.",
        after_help = "Then start authtap (`authtap run`) and restart the gateway: openclaw gateway restart\n\
Undo with `authtap openclaw unwire`."
    )]
    Wire(WireArgs),
    /// Put providers that go through authtap back on their real base URLs.
    #[command(
        long_about = "Put every provider whose base URL points at an authtap listener \
(http://127.0.0.1:<port>/<route>/... or localhost) back on that route's upstream, keeping the rest of the \
path. Prints the `openclaw config set` lines; --apply writes them into the file (after a backup, as wire does)."
    )]
    Unwire(UnwireArgs),
    /// Check OpenClaw's config for what makes provider calls fail: regions, wrong base URLs, keys
    /// a service will not see, placeholders. Reads files and this shell's environment only.
    #[command(
        long_about = "Read OpenClaw's config and this shell's environment (no network) and report, as \
findings with fixes: the providers and base URLs configured and which go through authtap; which platform \
(region) each base URL belongs to; base URLs that belong to another provider; Z.AI's general endpoint; a \
Kimi Code provider without an allowed User-Agent; keys read from variables that a launchd/systemd gateway \
will not see, or that are set nowhere; placeholder keys; proxy settings.",
        after_help = "Exit status: 0, or 1 when any finding is an error (or the config cannot be read)."
    )]
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// OpenClaw's config file [default: $OPENCLAW_CONFIG_PATH, else $OPENCLAW_STATE_DIR/openclaw.json,
    /// else ~/.openclaw/openclaw.json].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// authtap's own TOML config (the one given to `authtap run --config`), for routes it adds or
    /// changes.
    #[arg(long, value_name = "FILE")]
    pub authtap_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WireArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// The address authtap listens on [default: `listen` in --authtap-config, else 127.0.0.1:7401].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Write the new base URLs into the config file (a backup of it is saved beside it first).
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct UnwireArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// Write the real base URLs back into the config file (a backup of it is saved beside it first).
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// Print the findings as one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Run `authtap openclaw ...`. Errors (an unreadable file for wire/unwire) are for the binary to
/// print; doctor reports its own and exits 1 on any error finding.
pub fn main(cmd: OpenclawCommand) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    match cmd {
        OpenclawCommand::Wire(args) => wire::wire(&args, &env),
        OpenclawCommand::Unwire(args) => wire::unwire(&args, &env),
        OpenclawCommand::Doctor(args) => doctor::main(&args, &env),
    }
}

// ---------------------------------------------------------------------------------------------
// The environment and the files OpenClaw reads

/// This process's environment, read once. Values are only ever tested (set? a placeholder?), never
/// printed.
pub(crate) struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| {
                    Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
                })
                .collect(),
        }
    }

    #[cfg(test)]
    fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A variable's value when it is set and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `~` as OpenClaw resolves it: $OPENCLAW_HOME, else $HOME.
    fn home(&self) -> Option<PathBuf> {
        self.get("OPENCLAW_HOME")
            .or_else(|| self.get("HOME"))
            .map(PathBuf::from)
    }

    fn expand(&self, value: &str) -> PathBuf {
        match (value.strip_prefix("~/"), self.home()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if value == "~" => self.home().unwrap_or_else(|| PathBuf::from(value)),
            _ => PathBuf::from(value),
        }
    }

    /// OpenClaw's state directory: $OPENCLAW_STATE_DIR, else ~/.openclaw.
    fn state_dir(&self) -> Option<PathBuf> {
        match self.get("OPENCLAW_STATE_DIR") {
            Some(dir) => Some(self.expand(dir)),
            None => self.home().map(|h| h.join(".openclaw")),
        }
    }

    /// The config file OpenClaw itself would read, and what chose it.
    fn default_config(&self) -> Option<(PathBuf, &'static str)> {
        if let Some(path) = self.get("OPENCLAW_CONFIG_PATH") {
            return Some((self.expand(path), "$OPENCLAW_CONFIG_PATH"));
        }
        if self.get("OPENCLAW_STATE_DIR").is_some() {
            return Some((
                self.state_dir()?.join("openclaw.json"),
                "$OPENCLAW_STATE_DIR",
            ));
        }
        Some((
            self.home()?.join(".openclaw").join("openclaw.json"),
            "the default",
        ))
    }
}

/// Which config file to read: --config, else the one OpenClaw would read.
fn config_path(arg: Option<&Path>, env: &Env) -> anyhow::Result<PathBuf> {
    match arg {
        Some(path) => Ok(path.to_owned()),
        None => match env.default_config() {
            Some((path, _)) => Ok(path),
            None => bail!(
                "cannot tell where OpenClaw's config is: HOME is not set. Give the file with --config PATH"
            ),
        },
    }
}

/// OpenClaw's config file as read.
pub(crate) enum Loaded {
    Missing,
    Unreadable(String),
    Invalid(ParseError),
    Ok { text: String, doc: Json },
}

fn load(path: &Path) -> Loaded {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
        Err(e) => Loaded::Unreadable(e.to_string()),
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(_) => Loaded::Unreadable("it is not UTF-8 text".into()),
            Ok(text) => match json::parse(&text) {
                Ok(doc) => Loaded::Ok { text, doc },
                Err(e) => Loaded::Invalid(e),
            },
        },
    }
}

/// The config for wire/unwire: anything but a readable JSON5 file is an error.
fn load_required(path: &Path) -> anyhow::Result<(String, Json)> {
    let shown = path.display();
    match load(path) {
        Loaded::Ok { text, doc } => Ok((text, doc)),
        Loaded::Missing => bail!(
            "no OpenClaw config at {shown}: give the file with --config PATH (or set OPENCLAW_CONFIG_PATH)"
        ),
        Loaded::Unreadable(e) => bail!("cannot read OpenClaw's config {shown}: {e}"),
        Loaded::Invalid(e) => bail!("{shown} is not valid JSON5: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Providers as the file has them

/// Where a provider's key comes from. Never holds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `"${VAR}"`: OpenClaw substitutes the variable when it loads the config.
    EnvRef(String),
    /// A SecretRef object (`{source, provider, id}`); `id` is the variable for source `env`.
    SecretRef { source: String, id: Option<String> },
    /// A literal in the file: its length in characters, and what authtap's key rules say of it.
    Literal {
        len: usize,
        placeholder: bool,
        /// Safe to show: a `$VAR`-like reference or OpenClaw's redaction marker.
        shown: Option<String>,
    },
    /// No apiKey: OpenClaw uses an auth profile from onboarding, or the provider's variable.
    Missing,
    /// Something that is neither a string nor a SecretRef.
    Other(&'static str),
}

/// A provider's base URL as the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BaseUrl {
    Missing,
    NotString(&'static str),
    Url(String),
}

/// One provider: an entry in `models.providers`, or the default model's provider without one.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: String,
    /// Whether `models.providers.<id>` exists.
    pub explicit: bool,
    pub base_url: BaseUrl,
    pub api: Option<String>,
    pub key: Key,
    /// `headers.User-Agent` (any case), when given.
    pub user_agent: Option<String>,
}

/// OpenClaw's redaction marker, written where a key was when a redacted view of the config is saved.
const REDACTED_MARKER: &str = "__OPENCLAW_REDACTED__";

/// `${VAR}` as OpenClaw substitutes it: upper-case names only.
fn env_ref(value: &str) -> Option<&str> {
    let name = value.strip_prefix("${")?.strip_suffix('}')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_uppercase() || first == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    .then_some(name)
}

/// Whether authtap's own key rules call `value` a placeholder or empty (the same rules that flag a
/// key on the wire as `[placeholder]`).
pub(crate) fn is_placeholder(value: &str) -> bool {
    let credentials = auth::credentials([("x-api-key", value.as_bytes())], None);
    let Some(credential) = credentials.first() else {
        return false;
    };
    // The fingerprint is computed and dropped: nothing here is recorded.
    let shape = auth::shape(
        credential,
        &Catalog::default(),
        &FingerprintKey::new(&[0; 32]),
    );
    shape
        .defects
        .iter()
        .any(|d| matches!(d, Defect::Placeholder | Defect::Empty))
        || value.trim().is_empty()
}

/// A placeholder that can be shown without showing a key: `$VAR`, `${var}` or the redaction marker.
fn showable_placeholder(value: &str) -> Option<String> {
    let var_like = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if value == REDACTED_MARKER {
        return Some(value.to_string());
    }
    if let Some(name) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'))
        && var_like(name)
    {
        return Some(value.to_string());
    }
    if let Some(name) = value.strip_prefix('$')
        && var_like(name)
    {
        return Some(value.to_string());
    }
    None
}

fn key_of(value: Option<&Json>) -> Key {
    match value {
        None | Some(Json::Null) => Key::Missing,
        Some(Json::String(s)) => match env_ref(s) {
            Some(name) => Key::EnvRef(name.to_string()),
            None => Key::Literal {
                len: s.chars().count(),
                placeholder: is_placeholder(s),
                shown: showable_placeholder(s),
            },
        },
        Some(obj @ Json::Object(_)) if obj.get("source").is_some() => Key::SecretRef {
            source: obj
                .get("source")
                .and_then(Json::as_str)
                .unwrap_or("?")
                .to_string(),
            id: obj.get("id").and_then(Json::as_str).map(str::to_string),
        },
        Some(other) => Key::Other(other.kind()),
    }
}

fn entry_of(id: &str, value: &Json) -> Entry {
    let base_url = match value.get("baseUrl") {
        None | Some(Json::Null) => BaseUrl::Missing,
        Some(Json::String(s)) => BaseUrl::Url(s.clone()),
        Some(other) => BaseUrl::NotString(other.kind()),
    };
    let user_agent = value
        .get("headers")
        .map(Json::fields)
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    Entry {
        id: id.to_string(),
        explicit: true,
        base_url,
        api: value.get("api").and_then(Json::as_str).map(str::to_string),
        key: key_of(value.get("apiKey")),
        user_agent,
    }
}

/// The providers in `models.providers`, in file order.
pub(crate) fn explicit_entries(doc: &Json) -> Vec<Entry> {
    doc.at(&["models", "providers"])
        .map(Json::fields)
        .unwrap_or_default()
        .iter()
        .map(|(id, value)| entry_of(id, value))
        .collect()
}

/// The default model (`agents.defaults.model`, a string or `{primary}`) and its provider.
#[derive(Debug, Clone)]
pub(crate) struct DefaultModel {
    pub reference: String,
    /// The part before the first `/`; None when the reference has no provider.
    pub provider: Option<String>,
}

pub(crate) fn default_model(doc: &Json) -> Option<DefaultModel> {
    let model = doc.at(&["agents", "defaults", "model"])?;
    let reference = match model {
        Json::String(s) => s.clone(),
        other => other.get("primary")?.as_str()?.to_string(),
    };
    let provider = reference
        .split_once('/')
        .map(|(p, _)| p.to_string())
        .filter(|p| !p.is_empty());
    Some(DefaultModel {
        reference,
        provider,
    })
}

/// The providers in file order, then the default model's provider when it has no entry.
pub(crate) fn entries(doc: &Json) -> Vec<Entry> {
    let mut entries = explicit_entries(doc);
    if let Some(id) = default_model(doc).and_then(|m| m.provider)
        && !entries.iter().any(|e| e.id == id)
    {
        entries.push(Entry {
            id,
            explicit: false,
            base_url: BaseUrl::Missing,
            api: None,
            key: Key::Missing,
            user_agent: None,
        });
    }
    entries
}

/// The catalog provider that OpenClaw calls `id` (its `openclaw_id`).
pub(crate) fn catalog_provider<'c>(catalog: &'c Catalog, id: &str) -> Option<&'c Provider> {
    catalog
        .providers
        .iter()
        .find(|p| p.openclaw_id.as_deref() == Some(id))
}

// ---------------------------------------------------------------------------------------------
// Base URLs and authtap's routes

/// An http(s) URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as it should be written (default port left out).
    pub authority: String,
    /// Everything after the authority: empty, or starting with `/`, `?` or `#`.
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Option<Url> {
        let s = s.trim();
        let (https, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        // Credentials in the URL are dropped: they are not part of where the request goes.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after {
                "" => default_port,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = if port == default_port {
            shown_host
        } else {
            format!("{shown_host}:{port}")
        };
        Some(Url {
            https,
            host,
            port,
            authority,
            path: path.to_string(),
        })
    }

    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host == "::1"
            || self
                .host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// What a base URL points at.
#[derive(Debug, Clone)]
pub(crate) enum Target<'c> {
    /// An authtap listener: `http://<loopback>:<port>/<route><rest>`.
    Authtap {
        listener: String,
        route: &'c Route,
        rest: String,
    },
    /// A provider authtap has a route for, directly: `<route upstream><rest>`.
    Direct { route: &'c Route, rest: String },
    /// A host authtap knows, but a path outside every route's upstream base.
    Uncovered { url: Url, routes: Vec<&'c Route> },
    /// A host authtap has no route for.
    Unknown { url: Url },
    /// Not an http(s) URL.
    NotUrl,
}

impl Target<'_> {
    /// The route the requests end up at (through authtap or not).
    pub fn route(&self) -> Option<&Route> {
        match self {
            Target::Authtap { route, .. } | Target::Direct { route, .. } => Some(route),
            _ => None,
        }
    }

    /// The part of the path after the route's upstream base.
    pub fn rest(&self) -> Option<&str> {
        match self {
            Target::Authtap { rest, .. } | Target::Direct { rest, .. } => Some(rest),
            _ => None,
        }
    }
}

/// The rest of `path` after `base`, when `base` is a whole-segment prefix of it.
fn under<'p>(path: &'p str, base: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(base)?;
    (base.is_empty() || rest.is_empty() || rest.starts_with(['/', '?', '#'])).then_some(rest)
}

pub(crate) fn resolve<'c>(catalog: &'c Catalog, base_url: &str) -> Target<'c> {
    let Some(url) = Url::parse(base_url) else {
        return Target::NotUrl;
    };
    if !url.https && url.is_loopback() {
        let path = url.path.strip_prefix('/').unwrap_or(&url.path);
        let end = path.find(['/', '?', '#']).unwrap_or(path.len());
        if let Some(route) = catalog.route(&path[..end]) {
            return Target::Authtap {
                listener: url.authority.clone(),
                route,
                rest: path[end..].to_string(),
            };
        }
    }
    let same_host = |r: &&Route| {
        r.upstream.host == url.host && r.upstream.port == url.port && r.upstream.https == url.https
    };
    let route = catalog
        .route_for_host(&url.host, url.port, &url.path)
        .filter(same_host)
        .filter(|r| under(&url.path, &r.upstream.base).is_some())
        .or_else(|| {
            // route_for_host matches bases as plain prefixes; look again by whole segments.
            catalog
                .routes
                .iter()
                .filter(same_host)
                .filter(|r| under(&url.path, &r.upstream.base).is_some())
                .max_by_key(|r| r.upstream.base.len())
        });
    match route {
        Some(route) => Target::Direct {
            route,
            rest: under(&url.path, &route.upstream.base)
                .unwrap_or_default()
                .to_string(),
        },
        None => {
            let routes: Vec<&Route> = catalog.routes.iter().filter(same_host).collect();
            if routes.is_empty() {
                Target::Unknown { url }
            } else {
                Target::Uncovered { url, routes }
            }
        }
    }
}

/// authtap's base URL for a route: `http://LISTEN/<route><rest>`.
pub(crate) fn authtap_url(listener: &str, route: &Route, rest: &str) -> String {
    format!("http://{listener}/{}{rest}", route.name)
}

/// The real base URL: the route's upstream and the rest of the path.
pub(crate) fn upstream_url(route: &Route, rest: &str) -> String {
    format!("{}{rest}", route.upstream.url())
}

/// The catalog provider's display name for a route.
pub(crate) fn provider_name<'c>(catalog: &'c Catalog, route: &'c Route) -> &'c str {
    catalog
        .provider(&route.provider)
        .map_or(route.provider.as_str(), |p| p.name.as_str())
}

/// "China", "international", or the region as the catalog names it.
pub(crate) fn region_words(region: &str) -> &str {
    match region {
        "cn" => "China",
        "intl" => "international",
        other => other,
    }
}

/// `models.providers.<id>.<field>` as `openclaw config` paths write it.
pub(crate) fn provider_path(id: &str, field: &str) -> String {
    let id = &plain(id);
    let plain_id = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain_id {
        format!("models.providers.{id}.{field}")
    } else {
        format!(
            "models.providers[{}].{field}",
            serde_json::Value::from(id.as_str())
        )
    }
}

/// A word safe to paste into a POSIX shell.
pub(crate) fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,~".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `openclaw config set <path> <value>`.
pub(crate) fn set_line(id: &str, url: &str) -> String {
    format!(
        "openclaw config set {} {}",
        shell_word(&provider_path(id, "baseUrl")),
        shell_word(&plain(url))
    )
}

/// A `[[route]]` for authtap's config that would cover `url`.
pub(crate) fn route_suggestion(catalog: &Catalog, entry: &Entry, url: &Url) -> String {
    let mut name: String = entry
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() {
        name = "custom".into();
    }
    if catalog.route(&name).is_some() {
        name.push_str("-custom");
    }
    let provider = catalog_provider(catalog, &entry.id)
        .map(|p| p.id.clone())
        .unwrap_or_else(|| match entry.api.as_deref() {
            Some(api) if api.starts_with("anthropic") => "anthropic".into(),
            _ => "openai".into(),
        });
    let base = url.path.split(['?', '#']).next().unwrap_or_default();
    let base = if base.is_empty() { "/" } else { base };
    format!(
        "[[route]]\nname = \"{name}\"\nprovider = \"{provider}\"   # the catalog provider whose API and keys these are\nregion = \"global\"\nupstream = \"{}\"\nbase_paths = [\"{}\"]",
        plain(&url.origin()),
        plain(base)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtap_config::Config;

    #[test]
    fn base_urls_resolve_to_the_route_of_their_region_and_plan() {
        let catalog = Config::builtin().catalog;
        let target = |u: &str| {
            let t = resolve(&catalog, u);
            (
                t.route().map(|r| r.name.clone()),
                t.rest().map(str::to_string),
            )
        };
        let some = |r: &str, rest: &str| (Some(r.to_string()), Some(rest.to_string()));
        assert_eq!(
            target("https://api.moonshot.cn/v1"),
            some("moonshot-cn", "/v1")
        );
        assert_eq!(
            target("https://api.moonshot.ai/v1"),
            some("moonshot", "/v1")
        );
        assert_eq!(
            target("https://api.kimi.com/coding/"),
            some("kimi-coding", "/")
        );
        assert_eq!(
            target("https://open.bigmodel.cn/api/coding/paas/v4"),
            some("zai-cn", "/api/coding/paas/v4")
        );
        assert_eq!(
            target("http://127.0.0.1:7401/kimi-coding/"),
            some("kimi-coding", "/")
        );
        assert!(matches!(
            resolve(&catalog, "http://localhost:9999/moonshot-cn/v1"),
            Target::Authtap { ref listener, .. } if listener == "localhost:9999"
        ));
        assert!(matches!(
            resolve(&catalog, "https://api.kimi.com/v1"),
            Target::Uncovered { .. }
        ));
        assert!(matches!(
            resolve(&catalog, "https://api.kimi.com/codingx/"),
            Target::Uncovered { .. }
        ));
        assert!(matches!(
            resolve(&catalog, "http://127.0.0.1:11434/v1"),
            Target::Unknown { .. }
        ));
        assert!(matches!(
            resolve(&catalog, "api.moonshot.ai/v1"),
            Target::NotUrl
        ));
    }

    #[test]
    fn key_sources_are_described_without_values() {
        assert_eq!(
            key_of(Some(&Json::String("${MOONSHOT_API_KEY}".into()))),
            Key::EnvRef("MOONSHOT_API_KEY".into())
        );
        let literal = key_of(Some(&Json::String("sk-abcdefghijklmnopqrstuvwx".into())));
        assert_eq!(
            literal,
            Key::Literal {
                len: 27,
                placeholder: false,
                shown: None
            }
        );
        for p in [
            REDACTED_MARKER,
            "YOUR_API_KEY",
            "undefined",
            "",
            "  ",
            "$MOONSHOT_API_KEY",
            "${lower}",
        ] {
            assert!(
                matches!(
                    key_of(Some(&Json::String(p.into()))),
                    Key::Literal {
                        placeholder: true,
                        ..
                    }
                ),
                "{p:?}"
            );
        }
        assert_eq!(key_of(None), Key::Missing);
    }

    #[test]
    fn config_path_follows_openclaw() {
        let env = Env::from_pairs(&[("HOME", "/h")]);
        assert_eq!(
            env.default_config().map(|c| c.0),
            Some(PathBuf::from("/h/.openclaw/openclaw.json"))
        );
        let env = Env::from_pairs(&[("HOME", "/h"), ("OPENCLAW_STATE_DIR", "~/state")]);
        assert_eq!(
            env.default_config().map(|c| c.0),
            Some(PathBuf::from("/h/state/openclaw.json"))
        );
        let env = Env::from_pairs(&[("HOME", "/h"), ("OPENCLAW_CONFIG_PATH", "/c.json")]);
        assert_eq!(
            env.default_config().map(|c| c.0),
            Some(PathBuf::from("/c.json"))
        );
    }

    #[test]
    fn shell_words_and_paths() {
        assert_eq!(
            shell_word("http://127.0.0.1:7401/moonshot/v1"),
            "http://127.0.0.1:7401/moonshot/v1"
        );
        assert_eq!(shell_word("http://x/?a=1&b"), "'http://x/?a=1&b'");
        assert_eq!(
            provider_path("kimi", "baseUrl"),
            "models.providers.kimi.baseUrl"
        );
        assert_eq!(
            provider_path("a.b", "baseUrl"),
            "models.providers[\"a.b\"].baseUrl"
        );
    }
}
