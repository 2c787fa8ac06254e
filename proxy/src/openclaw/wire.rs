//! `authtap openclaw wire` and `unwire`: plan the base URL changes, print them as `openclaw config
//! set` lines, and with --apply write them into the file after a 0600 backup.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use authtap_config::{Catalog, Route};

use super::json::{self, Json};
use super::{
    BaseUrl, DEFAULT_LISTEN, Entry, Env, Target, UnwireArgs, WireArgs, authtap_url,
    catalog_provider, config_path, entries, explicit_entries, load_required, provider_name,
    provider_path, region_words, resolve, route_suggestion, set_line, shell_word, upstream_url,
};
use crate::sink::plain;

/// One base URL to change.
struct Change {
    id: String,
    /// The base URL in the file; None when the provider has none (OpenClaw's built-in default).
    old: Option<String>,
    new: String,
    /// Where it goes: "authtap route moonshot-cn (Moonshot, China)".
    what: String,
    note: Option<String>,
}

/// A provider left alone, and why.
struct Skip {
    id: String,
    base_url: Option<String>,
    reason: String,
    route: Option<String>,
}

#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    /// Providers that already go through authtap: id, base URL, route.
    already: Vec<(String, String, String)>,
    skips: Vec<Skip>,
}

fn route_words(catalog: &Catalog, route: &Route) -> String {
    let regions = catalog
        .routes
        .iter()
        .filter(|r| r.provider == route.provider)
        .map(|r| r.region.as_str())
        .collect::<std::collections::BTreeSet<_>>();
    if regions.len() > 1 {
        format!(
            "{}, {}",
            provider_name(catalog, route),
            region_words(&route.region)
        )
    } else {
        provider_name(catalog, route).to_string()
    }
}

fn plan_wire(doc: &Json, catalog: &Catalog, listener: &str) -> Plan {
    let mut plan = Plan::default();
    for entry in entries(doc) {
        let url = match &entry.base_url {
            BaseUrl::Url(url) => url.clone(),
            BaseUrl::NotString(kind) => {
                plan.skips.push(Skip {
                    id: entry.id.clone(),
                    base_url: None,
                    reason: format!("its baseUrl is {kind}, not a URL"),
                    route: None,
                });
                continue;
            }
            BaseUrl::Missing => {
                plan_default(&mut plan, &entry, catalog, listener);
                continue;
            }
        };
        match resolve(catalog, &url) {
            Target::Authtap { route, .. } => {
                plan.already.push((entry.id.clone(), url, route.name.clone()));
            }
            Target::Direct { route, rest } => plan.changes.push(Change {
                id: entry.id.clone(),
                new: authtap_url(listener, route, &rest),
                old: Some(url),
                what: format!(
                    "authtap route {} ({})",
                    route.name,
                    route_words(catalog, route)
                ),
                note: None,
            }),
            Target::Uncovered { url: parsed, routes } => {
                let covered: Vec<String> = routes
                    .iter()
                    .map(|r| format!("{} ({})", r.upstream.url(), r.name))
                    .collect();
                plan.skips.push(Skip {
                    id: entry.id.clone(),
                    base_url: Some(url),
                    reason: format!(
                        "authtap's routes for {} cover only {}; this path is outside them. Add a route to an authtap config file, then give that file to `authtap run --config` and to this command's --authtap-config:",
                        parsed.host,
                        covered.join(", ")
                    ),
                    route: Some(route_suggestion(catalog, &entry, &parsed)),
                });
            }
            Target::Unknown { url: parsed } => plan.skips.push(Skip {
                id: entry.id.clone(),
                base_url: Some(url),
                reason: format!(
                    "authtap has no route for {}. Add one to an authtap config file, then give that file to `authtap run --config` and to this command's --authtap-config:",
                    parsed.authority
                ),
                route: Some(route_suggestion(catalog, &entry, &parsed)),
            }),
            Target::NotUrl => plan.skips.push(Skip {
                id: entry.id.clone(),
                base_url: Some(url),
                reason: "its baseUrl is not an http:// or https:// URL".into(),
                route: None,
            }),
        }
    }
    plan
}

/// A provider without a baseUrl in the file: OpenClaw uses its built-in default, which authtap
/// knows as the first route (first base path) of the catalog provider with this `openclaw_id`.
fn plan_default(plan: &mut Plan, entry: &Entry, catalog: &Catalog, listener: &str) {
    let route = catalog_provider(catalog, &entry.id).and_then(|p| catalog.route_for(&p.id, None));
    let Some(route) = route else {
        plan.skips.push(Skip {
            id: entry.id.clone(),
            base_url: None,
            reason: format!(
                "it has no baseUrl in the file and authtap does not know OpenClaw's default for `{}`: set its real base URL first (openclaw config set {} <url>), then run this again",
                plain(&entry.id),
                provider_path(&entry.id, "baseUrl")
            ),
            route: None,
        });
        return;
    };
    let path = route.base_paths.first().map_or("/", String::as_str);
    let rest = if path == "/" { "/" } else { path };
    let others: Vec<String> = catalog
        .routes
        .iter()
        .filter(|r| r.provider == route.provider && r.name != route.name)
        .map(|r| r.name.clone())
        .collect();
    let mut note = format!(
        "no baseUrl in the file: authtap assumes OpenClaw's default, {}",
        upstream_url(route, rest)
    );
    if !others.is_empty() {
        let _ = write!(
            note,
            "; if yours is another ({}), take its line from `authtap routes`",
            others.join(", ")
        );
    }
    let used_by = if entry.explicit {
        String::new()
    } else {
        " (the default model's provider)".into()
    };
    plan.changes.push(Change {
        id: entry.id.clone(),
        old: None,
        new: authtap_url(listener, route, rest),
        what: format!(
            "authtap route {} ({}){used_by}",
            route.name,
            route_words(catalog, route)
        ),
        note: Some(note),
    });
}

/// Whether `models.providers.<id>` holds nothing but a baseUrl (as `openclaw config set
/// models.providers.<id>.baseUrl` creates it).
fn only_base_url(doc: &Json, id: &str) -> bool {
    doc.at(&["models", "providers", id])
        .map(Json::fields)
        .is_some_and(|f| f.len() == 1 && f[0].0 == "baseUrl")
}

fn plan_unwire(doc: &Json, catalog: &Catalog, listen_ports: &[u16]) -> Plan {
    let mut plan = Plan::default();
    for entry in explicit_entries(doc) {
        let BaseUrl::Url(url) = &entry.base_url else {
            continue;
        };
        match resolve(catalog, url) {
            Target::Authtap { route, rest, .. } => plan.changes.push(Change {
                id: entry.id.clone(),
                old: Some(url.clone()),
                new: upstream_url(route, &rest),
                what: route.name.clone(),
                note: only_base_url(doc, &entry.id).then(|| {
                    format!(
                        "this entry holds only a baseUrl; if `authtap openclaw wire` added it, `openclaw config unset {}` removes it instead",
                        shell_word(&format!("models.providers.{}", plain(&entry.id)))
                    )
                }),
            }),
            // A loopback URL on authtap's port whose first segment is no route: most likely a
            // route from an authtap config this command was not given.
            Target::Unknown { url: parsed }
                if !parsed.https
                    && listen_ports.contains(&parsed.port)
                    && matches!(parsed.host.as_str(), "127.0.0.1" | "localhost" | "::1") =>
            {
                plan.skips.push(Skip {
                    id: entry.id.clone(),
                    base_url: Some(url.clone()),
                    reason: "it points at authtap's port, but its first path segment is no route authtap knows: if it is a route from your authtap config, give that file with --authtap-config".into(),
                    route: None,
                });
            }
            _ => {}
        }
    }
    plan
}

pub(super) fn wire(args: &WireArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.files.authtap_config.as_deref())?;
    let listen = match args.listen.or(config.settings.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse()?,
    };
    let listener = listen.to_string();
    let path = config_path(args.files.config.as_deref(), env)?;
    let (text, doc) = load_required(&path)?;
    let plan = plan_wire(&doc, &config.catalog, &listener);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "OpenClaw config: {}",
        plain(&path.display().to_string())
    );
    let _ = writeln!(out, "authtap listener: http://{listener}\n");
    for c in &plan.changes {
        let old = c.old.as_deref().map_or("(no baseUrl)".to_string(), plain);
        let _ = writeln!(out, "{}: {old} -> {}", plain(&c.id), c.what);
        let _ = writeln!(out, "  {}", set_line(&c.id, &c.new));
        match &c.old {
            Some(old) => {
                let _ = writeln!(out, "  undo: {}", set_line(&c.id, old));
            }
            None => {
                let _ = writeln!(
                    out,
                    "  undo: openclaw config unset {}",
                    shell_word(&provider_path(&c.id, "baseUrl"))
                );
            }
        }
        if let Some(note) = &c.note {
            let _ = writeln!(out, "  note: {note}");
        }
        out.push('\n');
    }
    print_already_and_skips(&mut out, &plan, "Already through authtap:");
    if plan.changes.is_empty() {
        let _ = writeln!(out, "Nothing to wire.");
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let unwire = format!(
        "authtap openclaw unwire --apply{}",
        config_flag(args.files.config.as_deref())
    );
    if args.apply {
        print!("{out}");
        let written = apply(&path, &text, &doc, &plan.changes)?;
        report_written(&written);
        println!(
            "Start authtap if it is not running (authtap run), then restart the gateway so it reads the change: openclaw gateway restart"
        );
        println!("Undo: {unwire}");
    } else {
        let _ = writeln!(
            out,
            "Nothing was changed. Run the lines above, or add --apply to write them into the file (a backup is kept beside it)."
        );
        other_file_note(&mut out, &path, args.files.config.is_some(), env);
        let _ = writeln!(
            out,
            "Then start authtap (authtap run) and restart the gateway: openclaw gateway restart\nUndo later: the `undo:` lines, or {unwire}"
        );
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn unwire(args: &UnwireArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.files.authtap_config.as_deref())?;
    let mut ports = vec![DEFAULT_LISTEN.parse::<std::net::SocketAddr>()?.port()];
    ports.extend(config.settings.listen.map(|a| a.port()));
    let path = config_path(args.files.config.as_deref(), env)?;
    let (text, doc) = load_required(&path)?;
    let plan = plan_unwire(&doc, &config.catalog, &ports);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "OpenClaw config: {}\n",
        plain(&path.display().to_string())
    );
    for c in &plan.changes {
        let _ = writeln!(
            out,
            "{}: {} (authtap route {}) -> {}",
            plain(&c.id),
            plain(c.old.as_deref().unwrap_or_default()),
            c.what,
            plain(&c.new)
        );
        let _ = writeln!(out, "  {}", set_line(&c.id, &c.new));
        if let Some(note) = &c.note {
            let _ = writeln!(out, "  note: {note}");
        }
        out.push('\n');
    }
    print_already_and_skips(&mut out, &plan, "");
    if plan.changes.is_empty() {
        let _ = writeln!(out, "No provider goes through authtap: nothing to unwire.");
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.apply {
        print!("{out}");
        let written = apply(&path, &text, &doc, &plan.changes)?;
        report_written(&written);
        println!("Restart the gateway so it reads the change: openclaw gateway restart");
    } else {
        let _ = writeln!(
            out,
            "Nothing was changed. Run the lines above, or add --apply to write them into the file (a backup is kept beside it)."
        );
        other_file_note(&mut out, &path, args.files.config.is_some(), env);
        let _ = writeln!(out, "Then restart the gateway: openclaw gateway restart");
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_already_and_skips(out: &mut String, plan: &Plan, already_title: &str) {
    if !already_title.is_empty() && !plan.already.is_empty() {
        let _ = writeln!(out, "{already_title}");
        for (id, url, route) in &plan.already {
            let _ = writeln!(out, "  {}: {} (route {route})", plain(id), plain(url));
        }
        out.push('\n');
    }
    if !plan.skips.is_empty() {
        let _ = writeln!(out, "Cannot wire:");
        for s in &plan.skips {
            let url = s
                .base_url
                .as_deref()
                .map(|u| format!(" {}", plain(u)))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}{url}: {}", plain(&s.id), s.reason);
            if let Some(route) = &s.route {
                for line in route.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        out.push('\n');
    }
}

/// ` --config PATH` when the user gave one.
fn config_flag(path: Option<&Path>) -> String {
    path.map(|p| format!(" --config {}", shell_word(&p.display().to_string())))
        .unwrap_or_default()
}

/// `openclaw config set` edits the file OpenClaw reads; say so when that is not this one.
fn other_file_note(out: &mut String, path: &Path, explicit: bool, env: &Env) {
    let Some((default, _)) = env.default_config() else {
        return;
    };
    if explicit && default != path {
        let _ = writeln!(
            out,
            "(`openclaw config set` edits the config OpenClaw reads, {}; for this file run the lines with OPENCLAW_CONFIG_PATH={})",
            plain(&default.display().to_string()),
            shell_word(&path.display().to_string())
        );
    }
}

struct Written {
    path: PathBuf,
    backup: PathBuf,
    had_comments: bool,
    changes: Vec<(String, String)>,
}

fn report_written(w: &Written) {
    println!(
        "Wrote {} ({} base URL{} changed).",
        plain(&w.path.display().to_string()),
        w.changes.len(),
        if w.changes.len() == 1 { "" } else { "s" }
    );
    for (id, url) in &w.changes {
        println!("  {} = {}", provider_path(id, "baseUrl"), plain(url));
    }
    println!(
        "Backup of the previous file (mode 0600): {}",
        plain(&w.backup.display().to_string())
    );
    if w.had_comments {
        println!(
            "warning: the file had comments; it is now plain JSON and the comments are kept only in the backup."
        );
    }
}

/// Write the changes into the file: a backup first (the exact bytes, mode 0600), then the new
/// content through a temporary file renamed over the original, keeping its mode.
fn apply(path: &Path, text: &str, doc: &Json, changes: &[Change]) -> anyhow::Result<Written> {
    let mut new_doc = doc.clone();
    for c in changes {
        new_doc
            .set(
                &["models", "providers", &c.id, "baseUrl"],
                Json::String(c.new.clone()),
            )
            .map_err(|e| anyhow::anyhow!("cannot set {}: {e}", provider_path(&c.id, "baseUrl")))?;
    }
    let new_text = new_doc
        .to_pretty()
        .map_err(|e| anyhow::anyhow!("cannot write {} back as JSON: {e}", path.display()))?;
    // What will be written must read back as exactly the intended document.
    if json::parse(&new_text).ok().as_ref() != Some(&new_doc) {
        bail!(
            "refusing to write {}: the rewritten file would not read back the same",
            path.display()
        );
    }
    let current = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if current != text.as_bytes() {
        bail!(
            "{} changed while authtap was reading it; run the command again",
            path.display()
        );
    }
    let backup = write_backup(path, &current)?;
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    replace_file(&target, new_text.as_bytes())
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(Written {
        path: path.to_owned(),
        backup,
        had_comments: json::has_comments(text),
        changes: changes
            .iter()
            .map(|c| (c.id.clone(), c.new.clone()))
            .collect(),
    })
}

/// `<file>.authtap-backup-<UTC timestamp>` beside the file, created new with mode 0600.
fn write_backup(path: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .context("cannot format the time")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "openclaw.json".into());
    for n in 1..100 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let backup = path.with_file_name(format!("{name}.authtap-backup-{stamp}{suffix}"));
        match create_private(&backup) {
            Ok(mut file) => {
                file.write_all(bytes)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write the backup {}", backup.display()))?;
                return Ok(backup);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the backup {}", backup.display()));
            }
        }
    }
    bail!("cannot find a free backup name beside {}", path.display())
}

/// Create a new file readable by its owner only.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Replace `target` with `bytes` atomically, keeping its permissions (and owner, where allowed).
fn replace_file(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let meta = fs::metadata(target)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.authtap-{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::set_permissions(&tmp, meta.permissions())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // Only root can give a file away; for anyone else the owner is already right.
            let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        }
        fs::rename(&tmp, target)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtap_config::Config;

    const DOC: &str = r#"{
  // providers
  models: { providers: {
    moonshot: { baseUrl: "https://api.moonshot.cn/v1", apiKey: "${MOONSHOT_API_KEY}" },
    kimi: { baseUrl: "https://api.kimi.com/coding/" },
    zai: { baseUrl: "https://open.bigmodel.cn/api/coding/paas/v4" },
    local: { baseUrl: "http://127.0.0.1:11434/v1" },
  } },
  agents: { defaults: { model: { primary: "minimax/MiniMax-M2" } } },
}"#;

    #[test]
    fn wire_keeps_region_and_path_and_unwire_undoes_it() {
        let catalog = Config::builtin().catalog;
        let doc = json::parse(DOC).expect("json5");
        let plan = plan_wire(&doc, &catalog, "127.0.0.1:7401");
        let news: Vec<(&str, &str)> = plan
            .changes
            .iter()
            .map(|c| (c.id.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            news,
            vec![
                ("moonshot", "http://127.0.0.1:7401/moonshot-cn/v1"),
                ("kimi", "http://127.0.0.1:7401/kimi-coding/"),
                ("zai", "http://127.0.0.1:7401/zai-cn/api/coding/paas/v4"),
                ("minimax", "http://127.0.0.1:7401/minimax/anthropic"),
            ]
        );
        assert_eq!(plan.skips.len(), 1, "local has no route");
        let mut wired = doc.clone();
        for c in &plan.changes {
            wired
                .set(
                    &["models", "providers", &c.id, "baseUrl"],
                    Json::String(c.new.clone()),
                )
                .expect("set");
        }
        let back = plan_unwire(&wired, &catalog, &[7401]);
        let olds: Vec<(&str, &str)> = back
            .changes
            .iter()
            .map(|c| (c.id.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            olds,
            vec![
                ("moonshot", "https://api.moonshot.cn/v1"),
                ("kimi", "https://api.kimi.com/coding/"),
                ("zai", "https://open.bigmodel.cn/api/coding/paas/v4"),
                ("minimax", "https://api.minimax.io/anthropic"),
            ]
        );
    }
}
