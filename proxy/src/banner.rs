//! The routes table printed at start (and by `authtap routes`): what to paste where.

use std::fmt::Write;
use std::net::SocketAddr;

use authtap_config::Catalog;

/// The table of routes with the base URLs to paste, and the `openclaw config set` lines.
pub fn routes_table(catalog: &Catalog, listen: SocketAddr) -> String {
    let base = format!("http://{listen}");
    let mut rows = vec![(
        "ROUTE".to_string(),
        "UPSTREAM".to_string(),
        "BASE URL TO PASTE".to_string(),
    )];
    for route in &catalog.routes {
        for (i, path) in route.base_paths.iter().enumerate() {
            let name = if i == 0 {
                route.name.clone()
            } else {
                String::new()
            };
            let upstream = format!("{}{}", route.upstream.url(), path.trim_end_matches('/'));
            let upstream = if path == "/" {
                format!("{upstream}/")
            } else {
                upstream
            };
            rows.push((name, upstream, format!("{base}/{}{path}", route.name)));
        }
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (a, b, c) in &rows {
        let _ = writeln!(out, "  {a:w0$}  {b:w1$}  {c}");
    }

    let mut lines = Vec::new();
    for route in &catalog.routes {
        let Some(id) = catalog
            .provider(&route.provider)
            .and_then(|p| p.openclaw_id.as_deref())
        else {
            continue;
        };
        let path = &route.base_paths[0];
        let note = match route.region.as_str() {
            "cn" => "  # China platform key",
            _ => "",
        };
        lines.push(format!(
            "  openclaw config set models.providers.{id}.baseUrl {base}/{}{path}{note}",
            route.name
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "\nOpenClaw: run the line for your provider, then `openclaw gateway restart`:"
        );
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
