//! `authtap openclaw doctor`: a static look at OpenClaw's config and this shell's environment,
//! reported as the inspector's findings (code, severity, title, detail, fix, evidence). Evidence
//! here is config paths (`models.providers.kimi.baseUrl`) and variables (`env:ZAI_API_KEY`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use authtap_config::{Catalog, Provider, Route};
use authtap_inspector::record::{Finding, Severity};

use super::json::Json;
use super::{
    BaseUrl, DoctorArgs, Entry, Env, Key, Loaded, Target, Url, authtap_url, catalog_provider,
    config_path, default_model, entries, explicit_entries, is_placeholder, load, provider_name,
    provider_path, region_words, resolve, set_line, shell_word, upstream_url,
};
use crate::sink::{plain, stdout_color};

pub(super) fn main(args: &DoctorArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.files.authtap_config.as_deref())?;
    let path = config_path(args.files.config.as_deref(), env)?;
    let findings = diagnose(&path, &load(&path), &config.catalog, env);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        print!("{}", human(&path, &findings, stdout_color()));
    }
    Ok(if findings.iter().any(|f| f.severity == Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn finding(
    code: &str,
    severity: Severity,
    title: String,
    detail: String,
    fix: String,
    evidence: Vec<String>,
) -> Finding {
    Finding {
        code: code.into(),
        severity,
        title,
        detail,
        fix,
        evidence,
    }
}

/// Every check, the overview first, then errors, warnings and notes.
pub(super) fn diagnose(path: &Path, loaded: &Loaded, catalog: &Catalog, env: &Env) -> Vec<Finding> {
    let shown = plain(&path.display().to_string());
    let mut findings = Vec::new();
    let doc = match loaded {
        Loaded::Ok { doc, .. } => Some(doc),
        Loaded::Missing => {
            findings.push(finding(
                "openclaw-config-missing",
                Severity::Error,
                format!("no OpenClaw config at {shown}"),
                format!(
                    "authtap looked for OpenClaw's config at {shown}. OpenClaw reads $OPENCLAW_CONFIG_PATH, else $OPENCLAW_STATE_DIR/openclaw.json, else ~/.openclaw/openclaw.json."
                ),
                "Give the file: authtap openclaw doctor --config PATH (`openclaw config file` prints the one OpenClaw uses).".into(),
                vec![shown.clone()],
            ));
            None
        }
        Loaded::Unreadable(e) => {
            findings.push(finding(
                "openclaw-config-unreadable",
                Severity::Error,
                format!("cannot read OpenClaw's config {shown}"),
                format!("Reading {shown} failed: {}.", plain(e)),
                "Check the file's permissions, or give another with --config PATH.".into(),
                vec![shown.clone()],
            ));
            None
        }
        Loaded::Invalid(e) => {
            let at = match (e.line, e.column) {
                (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
                _ => String::new(),
            };
            findings.push(finding(
                "openclaw-config-invalid",
                Severity::Error,
                format!("{shown} is not valid JSON5{at}"),
                format!(
                    "The JSON5 parser stopped{at}: {}. OpenClaw cannot load this file either.",
                    plain(&e.message)
                ),
                format!("Fix the file{at}; `openclaw config validate` checks it."),
                vec![shown.clone()],
            ));
            None
        }
    };
    if let Some(doc) = doc {
        let doctor = Doctor::new(doc, catalog, env);
        doctor.run(&mut findings);
    }
    if let Some(f) = proxy_configured(doc, env) {
        findings.push(f);
    }
    findings.sort_by_key(|f| {
        (
            f.code != "openclaw-providers",
            std::cmp::Reverse(f.severity),
        )
    });
    findings
}

/// A `.env`-style file OpenClaw reads: its path and variables.
struct DotEnv {
    path: PathBuf,
    vars: HashMap<String, String>,
}

fn read_dotenv(path: PathBuf) -> Option<DotEnv> {
    let text = std::fs::read_to_string(&path).ok()?;
    let vars = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                return None;
            }
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_string(), value.to_string()))
        })
        .collect();
    Some(DotEnv { path, vars })
}

/// Where a variable was found.
enum Source<'a> {
    /// The config's `env` block (`env.VAR` or `env.vars.VAR`).
    Config(&'static str),
    File(&'a Path),
    Shell,
}

impl Source<'_> {
    fn words(&self, var: &str) -> String {
        match self {
            Source::Config(block) => format!("{block}.{var} in the config"),
            Source::File(path) => plain(&path.display().to_string()),
            Source::Shell => "this shell".into(),
        }
    }

    /// Whether a gateway started by a service manager reads it.
    fn reaches_service(&self) -> bool {
        !matches!(self, Source::Shell)
    }
}

struct Doctor<'a> {
    doc: &'a Json,
    catalog: &'a Catalog,
    env: &'a Env,
    dotenvs: Vec<DotEnv>,
    /// Where to tell the user to put keys: the state dir's `.env`.
    dotenv_hint: String,
    /// Every `.env` file OpenClaw reads, as shown (`~/.openclaw/.env`).
    dotenv_names: Vec<String>,
    shell_env_import: bool,
}

impl<'a> Doctor<'a> {
    fn new(doc: &'a Json, catalog: &'a Catalog, env: &'a Env) -> Doctor<'a> {
        let state = env.state_dir();
        let mut files = Vec::new();
        if let Some(state) = &state {
            files.push(state.join(".env"));
        }
        // A compatibility fallback OpenClaw reads after the global .env.
        if let Some(home) = env.home() {
            files.push(home.join(".config/openclaw/gateway.env"));
        }
        let home = env.home();
        let tilde = |p: &Path| match home.as_deref().and_then(|h| p.strip_prefix(h).ok()) {
            Some(rest) => plain(&format!("~/{}", rest.display())),
            None => plain(&p.display().to_string()),
        };
        let dotenv_names: Vec<String> = files.iter().map(|p| tilde(p)).collect();
        Doctor {
            doc,
            catalog,
            env,
            dotenv_hint: dotenv_names
                .first()
                .cloned()
                .unwrap_or_else(|| "~/.openclaw/.env".into()),
            dotenv_names,
            dotenvs: files.into_iter().filter_map(read_dotenv).collect(),
            shell_env_import: doc
                .at(&["env", "shellEnv", "enabled"])
                .and_then(Json::as_bool)
                .unwrap_or(false)
                || env.get("OPENCLAW_LOAD_SHELL_ENV") == Some("1"),
        }
    }

    fn run(&self, findings: &mut Vec<Finding>) {
        findings.extend(self.overview());
        for entry in entries(self.doc) {
            if let BaseUrl::Url(url) = &entry.base_url {
                let target = resolve(self.catalog, url);
                findings.extend(self.base_url_region(&entry, &target));
                findings.extend(self.provider_mismatch(&entry, &target));
                findings.extend(self.zai_general_endpoint(&entry, &target));
                findings.extend(self.kimi_user_agent(&entry, Some(&target)));
            } else {
                findings.extend(self.kimi_user_agent(&entry, None));
            }
            self.key_checks(&entry, findings);
        }
    }

    /// The listener an entry goes through, when it goes through authtap.
    fn listener<'t>(target: &'t Target<'_>) -> Option<&'t str> {
        match target {
            Target::Authtap { listener, .. } => Some(listener),
            _ => None,
        }
    }

    /// A base URL for `route` + `rest`, through authtap when the entry already goes through it.
    fn url_like(target: &Target<'_>, route: &Route, rest: &str) -> String {
        match Self::listener(target) {
            Some(listener) => authtap_url(listener, route, rest),
            None => upstream_url(route, rest),
        }
    }

    fn set_fix(&self, id: &str, target: &Target<'_>, route: &Route, rest: &str) -> String {
        let line = set_line(id, &Self::url_like(target, route, rest));
        if Self::listener(target).is_some() {
            format!(
                "{line}\n(without authtap: {})",
                plain(&upstream_url(route, rest))
            )
        } else {
            line
        }
    }

    // -----------------------------------------------------------------------------------------
    // openclaw-providers, default-model-provider-missing

    fn overview(&self) -> Vec<Finding> {
        let explicit = explicit_entries(self.doc);
        let mut lines = Vec::new();
        let mut evidence = Vec::new();
        let mut through = 0;
        for entry in &explicit {
            evidence.push(format!("models.providers.{}", plain(&entry.id)));
            let (url, target) = match &entry.base_url {
                BaseUrl::Url(url) => (plain(url), Some(resolve(self.catalog, url))),
                BaseUrl::Missing => ("no baseUrl (OpenClaw's built-in default)".into(), None),
                BaseUrl::NotString(kind) => (format!("baseUrl is {kind}"), None),
            };
            let place = match &target {
                Some(Target::Authtap { route, rest, .. }) => {
                    through += 1;
                    format!(
                        "through authtap, route {} to {}",
                        route.name,
                        plain(&upstream_url(route, rest))
                    )
                }
                Some(Target::Direct { route, .. }) => format!(
                    "{}, directly (authtap's route: {})",
                    self.route_words(route),
                    route.name
                ),
                Some(Target::Uncovered { url, .. }) => {
                    format!("{}, outside authtap's routes for that host", url.host)
                }
                Some(Target::Unknown { .. }) => "a host authtap has no route for".into(),
                Some(Target::NotUrl) => "not an http(s) URL".into(),
                None => String::new(),
            };
            let place = if place.is_empty() {
                place
            } else {
                format!(" -> {place}")
            };
            let api = entry
                .api
                .as_deref()
                .map(|a| format!("; api {}", plain(a)))
                .unwrap_or_default();
            lines.push(format!(
                "{}: {url}{place}{api}; key {}",
                plain(&entry.id),
                self.key_words(entry)
            ));
        }
        let model = default_model(self.doc);
        let mut findings = Vec::new();
        let model_words = match &model {
            None => "no default model (agents.defaults.model.primary)".to_string(),
            Some(m) => {
                let provider = match &m.provider {
                    None => "no provider prefix".to_string(),
                    Some(p) if explicit.iter().any(|e| &e.id == p) => {
                        format!("provider {}, configured", plain(p))
                    }
                    Some(p) => {
                        findings.push(self.default_model_provider_missing(&m.reference, p));
                        format!(
                            "provider {}, which has no entry in models.providers",
                            plain(p)
                        )
                    }
                };
                format!("default model {} ({provider})", plain(&m.reference))
            }
        };
        lines.push(model_words);
        if self.doc.has_key_anywhere("$include") {
            lines.push(
                "The config uses $include: providers defined in included files are not read here."
                    .into(),
            );
        }
        let n = explicit.len();
        let model_short = match &model {
            Some(m) => format!("default model {}", plain(&m.reference)),
            None => "no default model".into(),
        };
        let title = format!(
            "{n} provider{} in models.providers, {through} through authtap; {model_short}",
            if n == 1 { "" } else { "s" }
        );
        let fix = if through < n {
            "To send them through authtap: authtap openclaw wire (add --apply to write the change)"
                .to_string()
        } else if through > 0 {
            "To put them back on the real providers: authtap openclaw unwire".to_string()
        } else {
            String::new()
        };
        findings.insert(
            0,
            finding(
                "openclaw-providers",
                Severity::Info,
                title,
                lines.join("\n"),
                fix,
                evidence,
            ),
        );
        findings
    }

    fn default_model_provider_missing(&self, reference: &str, provider: &str) -> Finding {
        let known = catalog_provider(self.catalog, provider);
        let mut fix = Vec::new();
        if let Some(choice) = known.and_then(|p| p.openclaw_auth_choice.as_deref()) {
            fix.push(format!("openclaw onboard --auth-choice {choice}"));
        }
        let or = if fix.is_empty() { "Add" } else { "or add" };
        fix.push(format!(
            "{or} models.providers.{} (baseUrl, apiKey, api, models), or pick a configured model: openclaw models set <provider/model>",
            plain(provider)
        ));
        // A warning, not an error: bundled providers and plugins supply entries the file lacks.
        finding(
            "default-model-provider-missing",
            Severity::Warn,
            format!(
                "the default model {} names provider `{}`, which has no entry in models.providers",
                plain(reference),
                plain(provider)
            ),
            format!(
                "agents.defaults.model is {}, but models.providers has no `{}`. Unless an installed provider plugin or OpenClaw's built-in catalog supplies it (check with `openclaw models status`), the gateway cannot resolve the default model.",
                plain(reference),
                plain(provider)
            ),
            fix.join("\n"),
            vec!["agents.defaults.model".into()],
        )
    }

    fn key_words(&self, entry: &Entry) -> String {
        match &entry.key {
            Key::EnvRef(var) => format!("${{{var}}}"),
            Key::SecretRef { source, id } => match (source.as_str(), id) {
                ("env", Some(id)) => format!("from variable {} (SecretRef)", plain(id)),
                (source, _) => format!("from a `{}` secret reference", plain(source)),
            },
            Key::Literal {
                len, placeholder, ..
            } => {
                let mut words = format!("set in the file ({len} characters)");
                if *placeholder {
                    words.push_str(", a placeholder");
                }
                words
            }
            Key::Missing => {
                let vars = catalog_provider(self.catalog, &entry.id)
                    .map(|p| p.env.join(" or "))
                    .filter(|v| !v.is_empty());
                match vars {
                    Some(vars) => format!(
                        "not in the file (OpenClaw uses an onboarding auth profile or {vars})"
                    ),
                    None => "not in the file (OpenClaw uses an onboarding auth profile)".into(),
                }
            }
            Key::Other(kind) => format!("apiKey is {kind}"),
        }
    }

    fn route_words(&self, route: &Route) -> String {
        if self.regions(&route.provider).len() > 1 {
            format!(
                "{} ({})",
                provider_name(self.catalog, route),
                region_words(&route.region)
            )
        } else {
            provider_name(self.catalog, route).to_string()
        }
    }

    fn regions(&self, provider: &str) -> BTreeSet<&str> {
        self.catalog
            .routes
            .iter()
            .filter(|r| r.provider == provider)
            .map(|r| r.region.as_str())
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // base-url-region

    fn base_url_region(&self, entry: &Entry, target: &Target<'_>) -> Option<Finding> {
        let (route, rest) = (target.route()?, target.rest()?);
        // A base URL of another provider altogether is base-url-provider-mismatch; its region is
        // beside the point.
        if catalog_provider(self.catalog, &entry.id).is_some_and(|p| p.id != route.provider) {
            return None;
        }
        let siblings: Vec<&Route> = self
            .catalog
            .routes
            .iter()
            .filter(|r| {
                r.provider == route.provider && r.region != route.region && r.plan == route.plan
            })
            .collect();
        let sibling = *siblings.first()?;
        let name = provider_name(self.catalog, route);
        let here = region_words(&route.region);
        let there = region_words(&sibling.region);
        let id = plain(&entry.id);
        let host = &route.upstream.host;
        let probe = self
            .catalog
            .provider(&route.provider)
            .is_some_and(|p| p.probe.is_some());
        let mut detail = format!(
            "{name} keys belong to one platform: a key created on the {there} platform is refused at {host} with the same 401 a wrong key gets, so the error does not say the region is wrong. This base URL is right if your key comes from the {here} platform."
        );
        if probe {
            detail.push_str(
                " Sent through authtap, a refused key is tried once at the other region and `region-mismatch` says which one accepts it.",
            );
        }
        let mut fix = format!("If your key is from the {there} platform");
        if Self::listener(target).is_some() {
            fix.push_str(&format!(", use authtap's route {}", sibling.name));
        }
        fix.push_str(":\n");
        fix.push_str(&self.set_fix(&entry.id, target, sibling, rest));
        Some(finding(
            "base-url-region",
            Severity::Warn,
            format!(
                "{id} goes to {name}'s {here} platform ({host}): keys from the {there} platform ({}) get 401 there",
                sibling.upstream.host
            ),
            detail,
            fix,
            vec![provider_path(&entry.id, "baseUrl")],
        ))
    }

    // -----------------------------------------------------------------------------------------
    // base-url-provider-mismatch

    /// The base URL of a catalog provider: its first (general) route in `region` if it has one.
    fn home_route(&self, provider: &Provider, region: &str) -> Option<&'a Route> {
        self.catalog
            .route_for(&provider.id, Some(region))
            .or_else(|| self.catalog.route_for(&provider.id, None))
    }

    fn provider_mismatch(&self, entry: &Entry, target: &Target<'_>) -> Option<Finding> {
        let route = target.route()?;
        let own = catalog_provider(self.catalog, &entry.id)?;
        if own.id == route.provider {
            return None;
        }
        let theirs = provider_name(self.catalog, route);
        let id = plain(&entry.id);
        let BaseUrl::Url(url) = &entry.base_url else {
            return None;
        };
        let url = plain(url);
        let own_urls: Vec<String> = self
            .catalog
            .routes
            .iter()
            .filter(|r| r.provider == own.id && r.plan == authtap_config::Plan::General)
            .map(|r| {
                if self.regions(&own.id).len() > 1 {
                    format!("{} ({})", r.upstream_base_url(0), region_words(&r.region))
                } else {
                    r.upstream_base_url(0)
                }
            })
            .collect();
        let home = self.home_route(own, &route.region)?;
        let home_path = home.base_paths.first().map_or("/", String::as_str);
        let mut fix = self.set_fix(&entry.id, target, home, home_path);
        match self
            .catalog
            .provider(&route.provider)
            .and_then(|p| p.openclaw_id.as_deref())
        {
            Some(their_id) => fix.push_str(&format!(
                "\nor, if you meant {theirs}: put these models under models.providers.{their_id} (base URL {url}) with a {theirs} key"
            )),
            None => fix.push_str(&format!(
                "\nor, if you meant {theirs}: configure it as a provider of its own with this base URL and a {theirs} key"
            )),
        }
        Some(finding(
            "base-url-provider-mismatch",
            Severity::Error,
            format!(
                "{id} points at {theirs} ({}), not {}",
                route.upstream.host, own.name
            ),
            format!(
                "OpenClaw's `{id}` provider is {}, but its base URL {url} is {theirs}'s API. Their keys are not interchangeable: a {} key sent there is refused. {}'s base URL is {}.",
                own.name,
                own.name,
                own.name,
                own_urls.join(" or ")
            ),
            fix,
            vec![provider_path(&entry.id, "baseUrl")],
        ))
    }

    // -----------------------------------------------------------------------------------------
    // zai-general-endpoint

    fn zai_general_endpoint(&self, entry: &Entry, target: &Target<'_>) -> Option<Finding> {
        let (route, rest) = (target.route()?, target.rest()?);
        if route.provider != "zai" {
            return None;
        }
        let general = route
            .base_paths
            .iter()
            .find(|p| !p.contains("/coding/") && p.contains("/paas/"))?;
        let coding = route.base_paths.iter().find(|p| p.contains("/coding/"))?;
        let tail = super::under(rest, general)?;
        let name = provider_name(self.catalog, route);
        Some(finding(
            "zai-general-endpoint",
            Severity::Warn,
            format!(
                "{} uses {name}'s general endpoint ({general}), not the GLM Coding Plan's ({coding})",
                plain(&entry.id)
            ),
            format!(
                "If you have a GLM Coding Plan, its key belongs on {coding}: the general (pay-as-you-go) endpoint answers a coding-plan key with error 1113 \"Insufficient balance or no resource package\" although key and plan are fine (openclaw #66204). With a pay-as-you-go key this endpoint is the right one."
            ),
            format!(
                "If you have a GLM Coding Plan:\n{}",
                self.set_fix(&entry.id, target, route, &format!("{coding}{tail}"))
            ),
            vec![provider_path(&entry.id, "baseUrl")],
        ))
    }

    // -----------------------------------------------------------------------------------------
    // kimi-user-agent

    fn kimi_user_agent(&self, entry: &Entry, target: Option<&Target<'_>>) -> Option<Finding> {
        if !entry.explicit {
            return None;
        }
        let gate = match target {
            Some(t) => self.catalog.provider(&t.route()?.provider)?,
            None => catalog_provider(self.catalog, &entry.id)?,
        };
        if gate.allowed_agents.is_empty() {
            return None;
        }
        let allowed = |ua: &str| {
            gate.allowed_agents
                .iter()
                .any(|a| ua.starts_with(a.as_str()))
        };
        let id = plain(&entry.id);
        let (title, sends) = match entry.user_agent.as_deref() {
            Some(ua) if allowed(ua) => return None,
            Some(ua) => (
                format!(
                    "{id} sets User-Agent `{}`, which {} does not allow: its calls will be refused with 403 access_terminated_error",
                    plain(ua),
                    gate.name
                ),
                format!("This entry sets headers.User-Agent to `{}`.", plain(ua)),
            ),
            None => (
                format!(
                    "{id} has no User-Agent {} allows: its calls will be refused with 403 access_terminated_error",
                    gate.name
                ),
                "This entry has no headers.User-Agent, so OpenClaw's HTTP client sends its own (`undici` or an SDK's)."
                    .to_string(),
            ),
        };
        Some(finding(
            "kimi-user-agent",
            Severity::Warn,
            title,
            format!(
                "{} serves only the coding agents on its allowlist, which it recognises by User-Agent ({}), and answers every other client 403 access_terminated_error (\"only available for Coding Agents\") whatever the key. {sends} OpenClaw's kimi provider plugin sets an allowed one in its catalog.",
                gate.name,
                gate.allowed_agents.join(", ")
            ),
            format!(
                "Update OpenClaw and use its kimi provider plugin, whose catalog identifies the client the way {} accepts; remove this hand-written entry or make it match the plugin's (openclaw config get {}). Do not invent a User-Agent: {} has terminated accounts for faking one (openclacky #192).",
                gate.name,
                shell_word(&format!("models.providers.{}", plain(&entry.id))),
                gate.name
            ),
            vec![provider_path(&entry.id, "headers")],
        ))
    }

    // -----------------------------------------------------------------------------------------
    // key-placeholder, key-env-not-inherited, key-env-missing

    fn key_checks(&self, entry: &Entry, findings: &mut Vec<Finding>) {
        let known = catalog_provider(self.catalog, &entry.id);
        match &entry.key {
            Key::Literal {
                len,
                placeholder: true,
                shown,
            } => findings.push(self.literal_placeholder(entry, *len, shown.as_deref(), known)),
            Key::EnvRef(var) => self.var_checks(entry, std::slice::from_ref(var), true, findings),
            Key::SecretRef {
                source,
                id: Some(var),
            } if source == "env" => {
                self.var_checks(entry, std::slice::from_ref(var), true, findings)
            }
            Key::Missing => {
                if let Some(p) = known {
                    self.var_checks(entry, &p.env, false, findings);
                }
            }
            _ => {}
        }
    }

    fn literal_placeholder(
        &self,
        entry: &Entry,
        len: usize,
        shown: Option<&str>,
        known: Option<&Provider>,
    ) -> Finding {
        let what = match shown {
            Some(marker) if marker == super::REDACTED_MARKER => format!(
                "OpenClaw's redaction marker {marker}: the file was saved from a redacted view of the config, so the real key is gone from it"
            ),
            Some(reference) => format!(
                "`{reference}`, which OpenClaw does not substitute: it replaces only ${{VAR}}, with braces and an upper-case name"
            ),
            None => format!("a placeholder or an empty value ({len} characters)"),
        };
        let provider = known.map_or("the provider", |p| p.name.as_str());
        finding(
            "key-placeholder",
            Severity::Error,
            format!(
                "{} is a placeholder, not a key",
                provider_path(&entry.id, "apiKey")
            ),
            format!(
                "Where the key should be, the file holds {what}. OpenClaw sends it as it is and {provider} answers 401."
            ),
            self.set_key_fix(entry, known),
            vec![provider_path(&entry.id, "apiKey")],
        )
    }

    fn set_key_fix(&self, entry: &Entry, known: Option<&Provider>) -> String {
        let var = match &entry.key {
            Key::EnvRef(var) => var.clone(),
            Key::SecretRef { id: Some(id), .. } => id.clone(),
            _ => known
                .and_then(|p| p.env.first().cloned())
                .unwrap_or_else(|| {
                    let id: String = entry
                        .id
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() {
                                c.to_ascii_uppercase()
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    format!("{}_API_KEY", id.trim_matches('_'))
                }),
        };
        let mut lines = vec![format!(
            "Put the key where the gateway reads it, in {} (chmod 600): {var}=<your key>",
            self.dotenv_hint
        )];
        if !matches!(
            entry.key,
            Key::EnvRef(_) | Key::SecretRef { .. } | Key::Missing
        ) {
            lines.push(format!(
                "and refer to it from the config: openclaw config set {} '${{{var}}}'",
                provider_path(&entry.id, "apiKey")
            ));
        }
        if let Some(choice) = known.and_then(|p| p.openclaw_auth_choice.as_deref()) {
            lines.push(format!("or run: openclaw onboard --auth-choice {choice}"));
        }
        lines.push("then restart the gateway: openclaw gateway restart".into());
        lines.join("\n")
    }

    /// Where `var` is set, with its value (only ever tested, never shown).
    fn sources(&self, var: &str) -> Vec<(Source<'_>, &str)> {
        let mut found = Vec::new();
        let non_empty = |v: &'a Json| v.as_str().filter(|s| !s.is_empty());
        if !matches!(var, "vars" | "shellEnv")
            && let Some(value) = self.doc.at(&["env", var]).and_then(non_empty)
        {
            found.push((Source::Config("env"), value));
        }
        if let Some(value) = self.doc.at(&["env", "vars", var]).and_then(non_empty) {
            found.push((Source::Config("env.vars"), value));
        }
        for file in &self.dotenvs {
            if let Some(value) = file.vars.get(var).filter(|v| !v.is_empty()) {
                found.push((Source::File(&file.path), value.as_str()));
            }
        }
        if let Some(value) = self.env.get(var) {
            found.push((Source::Shell, value));
        }
        found
    }

    fn var_checks(
        &self,
        entry: &Entry,
        vars: &[String],
        explicit: bool,
        findings: &mut Vec<Finding>,
    ) {
        if vars.is_empty() {
            return;
        }
        let known = catalog_provider(self.catalog, &entry.id);
        let id = plain(&entry.id);
        let mut reaches_service = false;
        let mut shell_only = Vec::new();
        for var in vars {
            let sources = self.sources(var);
            for (source, value) in &sources {
                if is_placeholder(value) {
                    findings.push(finding(
                        "key-placeholder",
                        Severity::Error,
                        format!(
                            "{var} (the key of {id}) is a placeholder in {}, not a key",
                            source.words(var)
                        ),
                        format!(
                            "{var} holds a placeholder or redaction marker ({} characters) in {}. A gateway that reads it there sends it as it is and the provider answers 401.",
                            value.chars().count(),
                            source.words(var)
                        ),
                        self.set_key_fix(entry, known),
                        vec![format!("env:{var}")],
                    ));
                }
            }
            if sources.iter().any(|(s, _)| s.reaches_service()) {
                reaches_service = true;
            } else if !sources.is_empty() {
                shell_only.push(var.clone());
            }
        }
        if reaches_service {
            return;
        }
        let from = match &entry.key {
            Key::EnvRef(var) => format!("{} is ${{{var}}}", provider_path(&entry.id, "apiKey")),
            Key::SecretRef { .. } => format!(
                "{} is a SecretRef to the variable {}",
                provider_path(&entry.id, "apiKey"),
                vars.join(", ")
            ),
            _ => format!(
                "{id} has no apiKey in the file, so OpenClaw reads {} (unless onboarding stored the key in an auth profile)",
                vars.join(" or ")
            ),
        };
        let looked = format!(
            "the config's env block or {}",
            self.dotenv_names.join(" or ")
        );
        if !shell_only.is_empty() {
            let names = shell_only.join(", ");
            let mut detail = format!(
                "{from}. {names} is set in this shell but not in {looked}. A gateway run as a service (launchd on macOS, systemd on Linux, as `openclaw gateway install` sets it up) does not inherit your shell's variables, so it sends no key or an unresolved one and the provider answers 401 (openclaw #52771, #13340, #70581). It works only for a gateway started from this shell."
            );
            if self.shell_env_import {
                detail.push_str(" env.shellEnv is on: the gateway imports missing keys from your login shell, so this also works if the variable is exported in your login shell's profile, not just in this terminal.");
            }
            findings.push(finding(
                "key-env-not-inherited",
                Severity::Warn,
                format!(
                    "{names} (the key of {id}) is set in this shell only: a gateway started by launchd or systemd will not see it"
                ),
                detail,
                self.set_key_fix(entry, known),
                shell_only.iter().map(|v| format!("env:{v}")).collect(),
            ));
        } else if explicit {
            let names = vars.join(", ");
            findings.push(finding(
                "key-env-missing",
                Severity::Error,
                format!("{names} (the key of {id}) is set nowhere OpenClaw looks"),
                format!(
                    "{from}, and {names} is set neither in this shell nor in {looked}. OpenClaw cannot resolve it: its commands fail with MissingEnvVarError (openclaw #21130), or the provider gets no key and answers 401."
                ),
                self.set_key_fix(entry, known),
                vars.iter().map(|v| format!("env:{v}")).collect(),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// proxy-configured

/// A proxy URL with any `user:password@` replaced.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return plain(url);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => plain(&format!("{scheme}://***@{host}{}", &rest[end..])),
        None => plain(url),
    }
}

fn proxy_configured(doc: Option<&Json>, env: &Env) -> Option<Finding> {
    let mut proxies = Vec::new();
    let mut evidence = Vec::new();
    if let Some(url) = doc
        .and_then(|d| d.at(&["proxy", "proxyUrl"]))
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    {
        proxies.push(format!("proxy.proxyUrl {} (config)", redact_userinfo(url)));
        evidence.push("proxy.proxyUrl".to_string());
    }
    for var in ["OPENCLAW_PROXY_URL", "HTTPS_PROXY", "https_proxy"] {
        if let Some(url) = env.get(var) {
            proxies.push(format!("{var} {} (this shell)", redact_userinfo(url)));
            evidence.push(format!("env:{var}"));
        }
    }
    if proxies.is_empty() {
        return None;
    }
    let loopback = proxies.iter().any(|p| {
        p.split_whitespace()
            .nth(1)
            .and_then(Url::parse)
            .is_some_and(|u| matches!(u.host.as_str(), "127.0.0.1" | "localhost" | "::1"))
    });
    let (ca, fix) = match env.get("NODE_EXTRA_CA_CERTS") {
        Some(path) => {
            evidence.push("env:NODE_EXTRA_CA_CERTS".into());
            let exists = Path::new(path).is_file();
            (
                format!(
                    "NODE_EXTRA_CA_CERTS is set in this shell to {}{}.",
                    plain(path),
                    if exists { "" } else { ", which is not a file" }
                ),
                if exists {
                    String::new()
                } else {
                    "Point NODE_EXTRA_CA_CERTS at the proxy's CA certificate (authtap ca path prints authtap's).".into()
                },
            )
        }
        None => (
            "NODE_EXTRA_CA_CERTS is not set in this shell.".to_string(),
            "If the proxy intercepts TLS, load its CA for the gateway: eval \"$(authtap ca env)\" in the shell that starts it; for a gateway service, NODE_EXTRA_CA_CERTS must be in the service's own environment (Node reads it at start, so ~/.openclaw/.env is too late).".to_string(),
        ),
    };
    let mut detail = format!(
        "{}. {ca} A proxy that intercepts TLS (authtap's HTTPS_PROXY mode does) needs OpenClaw to trust its CA through NODE_EXTRA_CA_CERTS; without it every call fails with UNABLE_TO_VERIFY_LEAF_SIGNATURE after about 95 s of retries. Variables in this shell reach only a gateway started from it.",
        proxies.join("; ")
    );
    if loopback {
        detail.push_str(
            " A proxy on this machine: authtap (`authtap run`) if that is what listens there.",
        );
    }
    Some(finding(
        "proxy-configured",
        Severity::Info,
        format!(
            "OpenClaw's requests go through a proxy: {}",
            proxies.join("; ")
        ),
        detail,
        fix,
        evidence,
    ))
}

// ---------------------------------------------------------------------------------------------
// Output

/// The findings as the terminal shows them: mark, code and title; the detail; the fix.
fn human(path: &Path, findings: &[Finding], color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = format!("OpenClaw config: {}\n", plain(&path.display().to_string()));
    let mut counts = [0usize; 3];
    for f in findings {
        let (mark, code, slot) = match f.severity {
            Severity::Error => ("✖", "1;31", 0),
            Severity::Warn => ("▲", "1;33", 1),
            Severity::Info => ("●", "36", 2),
        };
        counts[slot] += 1;
        out.push_str(&format!(
            "\n{} {}: {}\n",
            paint(code, mark),
            paint(code, &f.code),
            plain(&f.title)
        ));
        for line in f.detail.lines() {
            out.push_str(&format!("  {}\n", plain(line)));
        }
        let fix: Vec<String> = f.fix.lines().map(plain).collect();
        if !fix.is_empty() {
            out.push_str(&format!("  fix: {}\n", fix.join("\n       ")));
        }
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "\n{}, {}, {}\n",
        plural(counts[0], "error"),
        plural(counts[1], "warning"),
        plural(counts[2], "note")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtap_config::Config;

    fn codes(doc: &str, env: &[(&str, &str)]) -> Vec<(String, Severity)> {
        let catalog = Config::builtin().catalog;
        let env = Env::from_pairs(env);
        let doc = super::super::json::parse(doc).expect("json5");
        let loaded = Loaded::Ok {
            text: String::new(),
            doc,
        };
        diagnose(Path::new("/x/openclaw.json"), &loaded, &catalog, &env)
            .into_iter()
            .map(|f| (f.code, f.severity))
            .collect()
    }

    #[test]
    fn mismatched_providers_and_endpoints() {
        let found = codes(
            r#"{ models: { providers: {
                kimi: { baseUrl: "https://api.moonshot.ai/v1", apiKey: "${KIMI_API_KEY}" },
                zai: { baseUrl: "https://api.z.ai/api/paas/v4", apiKey: "${ZAI_API_KEY}" },
            } }, agents: { defaults: { model: { primary: "zai/glm-5" } } } }"#,
            &[
                ("HOME", "/nonexistent"),
                ("KIMI_API_KEY", "k"),
                ("ZAI_API_KEY", "z"),
            ],
        );
        let has = |c: &str| found.iter().any(|(code, _)| code == c);
        assert_eq!(found[0].0, "openclaw-providers");
        for c in [
            "base-url-provider-mismatch",
            "base-url-region",
            "zai-general-endpoint",
            "key-env-not-inherited",
        ] {
            assert!(has(c), "{c} in {found:?}");
        }
        assert!(
            !has("kimi-user-agent"),
            "kimi points at Moonshot: {found:?}"
        );
        assert!(!has("default-model-provider-missing"));
    }

    #[test]
    fn proxy_urls_hide_credentials() {
        assert_eq!(
            redact_userinfo("http://user:pw@proxy:8080/x"),
            "http://***@proxy:8080/x"
        );
        assert_eq!(
            redact_userinfo("http://127.0.0.1:7401"),
            "http://127.0.0.1:7401"
        );
    }
}
