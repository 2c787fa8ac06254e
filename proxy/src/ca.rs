//! `authtap ca path|show|init|env`: the local CA of HTTPS_PROXY mode, and the one-step client setup.
//!
//! What each runtime needs to use authtap as its proxy and trust its CA (researched for Node.js
//! 20/22/24, OpenClaw, Python and curl; README.md has the long form):
//! - Node.js: `NODE_EXTRA_CA_CERTS` adds the CA to the built-in roots (read once at start). Plain
//!   `fetch`/`https` ignore `HTTPS_PROXY` unless `NODE_USE_ENV_PROXY=1` (Node 24, also 22.21+);
//!   undici's `EnvHttpProxyAgent` honours it on any version. OpenClaw reads `HTTPS_PROXY` itself.
//! - Python (requests, httpx, the openai package): `HTTPS_PROXY`, and `SSL_CERT_FILE` or
//!   `REQUESTS_CA_BUNDLE`, which *replace* the trust store, so they point at a bundle of the system
//!   roots plus the authtap CA, never at the CA alone (that would break every other host).
//! - curl: `HTTPS_PROXY` and `CURL_CA_BUNDLE` (the same bundle), or `--cacert`.
//! - `NO_PROXY` keeps loopback traffic (authtap's own base URLs) off the proxy.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use authtap_certs::{CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority};

use crate::cli::{CaArgs, CaCommand};

/// File name of the system roots plus the authtap CA, for clients whose CA setting replaces the
/// whole trust store.
const BUNDLE_FILE: &str = "bundle.pem";

/// Where distributions keep the system's trusted roots as one PEM file.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
];

pub fn main(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Path(args) => {
            let (cert, _) = files(&args)?;
            println!("{}", cert.display());
            if !cert.exists() {
                eprintln!(
                    "(not created yet: `authtap ca init` creates it, as does the first intercepted connection)"
                );
            }
        }
        CaCommand::Show(args) => {
            let (cert, key) = files(&args)?;
            if !cert.exists() {
                bail!(
                    "there is no CA at {} yet; `authtap ca init` creates one",
                    cert.display()
                );
            }
            let ca = CertificateAuthority::load(&cert, &key)?;
            let digest = ring::digest::digest(&ring::digest::SHA256, ca.cert_der());
            let fingerprint: Vec<String> =
                digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            println!("certificate: {}", cert.display());
            println!("private key: {} (mode 0600)", key.display());
            println!("SHA-256:     {}", fingerprint.join(":"));
            println!();
            print!("{}", ca.cert_pem());
        }
        CaCommand::Init { ca, force } => {
            let (cert, key) = files(&ca)?;
            if ca_files_from_config(&ca)?.is_some() {
                bail!(
                    "the config names a CA of your own (ca_cert, ca_key); authtap does not replace it"
                );
            }
            if cert.exists() && !force {
                bail!(
                    "a CA already exists at {}; add --force to replace it (clients that trust the old one must then be given the new one)",
                    cert.display()
                );
            }
            let dir = cert.parent().context("the CA path has no folder")?;
            CertificateAuthority::generate("authtap local CA")?.save(dir)?;
            println!("created {}", cert.display());
            println!("private key {} (mode 0600)", key.display());
        }
        CaCommand::Env { ca, listen, unset } => {
            if unset {
                print!("{}", unset_lines());
                return Ok(());
            }
            let ca_dir = crate::home::ca_dir(&crate::home::data_dir()?);
            let (cert, bundle) = prepare(&ca_dir, ca_files_from_config(&ca)?.as_ref())?;
            print!("{}", env_lines(&listen.to_string(), &cert, &bundle));
        }
    }
    Ok(())
}

fn ca_files_from_config(args: &CaArgs) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    let settings = crate::load_config(args.config.as_deref())?.settings;
    Ok(settings.ca_cert.zip(settings.ca_key))
}

/// The CA certificate and key files in use: the config's, else authtap's own.
fn files(args: &CaArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let Some(files) = ca_files_from_config(args)? {
        return Ok(files);
    }
    let dir = crate::home::ca_dir(&crate::home::data_dir()?);
    Ok((dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE)))
}

/// Write `<ca dir>/bundle.pem`: the system's roots followed by the authtap CA.
fn write_bundle(cert: &Path, ca_dir: &Path) -> anyhow::Result<PathBuf> {
    let ca =
        std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let system = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    let mut bundle = system.unwrap_or_else(|| {
        eprintln!(
            "warning: no system CA bundle found; {BUNDLE_FILE} holds only the authtap CA, so clients using it can reach only intercepted hosts"
        );
        String::new()
    });
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str("# authtap local CA\n");
    bundle.push_str(&ca);
    let path = ca_dir.join(BUNDLE_FILE);
    authtap_certs::write_file(&path, bundle.as_bytes(), 0o644)?;
    Ok(path)
}

/// The environment that points a client at authtap (`listen`) and makes it trust the CA.
pub fn client_env(listen: &str, cert: &Path, bundle: &Path) -> Vec<(&'static str, String)> {
    let proxy = format!("http://{listen}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let bundle = bundle.display().to_string();
    vec![
        ("HTTPS_PROXY", proxy.clone()),
        ("https_proxy", proxy),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy),
        ("NODE_EXTRA_CA_CERTS", cert.display().to_string()),
        ("NODE_USE_ENV_PROXY", "1".into()),
        ("SSL_CERT_FILE", bundle.clone()),
        ("REQUESTS_CA_BUNDLE", bundle.clone()),
        ("CURL_CA_BUNDLE", bundle),
    ]
}

/// The CA certificate (made if missing) and the bundle beside it, for a client's environment.
pub fn prepare(
    ca_dir: &Path,
    files: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    crate::intercept::load_ca(ca_dir, files)?;
    let cert = match files {
        Some((cert, _)) => cert.clone(),
        None => ca_dir.join(CA_CERT_FILE),
    };
    let bundle = write_bundle(&cert, ca_dir)?;
    Ok((cert, bundle))
}

fn env_lines(listen: &str, cert: &Path, bundle: &Path) -> String {
    let mut out = String::from(
        "# authtap HTTPS_PROXY mode: load with  eval \"$(authtap ca env)\"  and start the client from this shell.\n\
         # Undo with  eval \"$(authtap ca env --unset)\". NODE_* are for Node.js (OpenClaw); SSL_CERT_FILE,\n\
         # REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE point at the system roots plus the authtap CA.\n",
    );
    for (name, value) in client_env(listen, cert, bundle) {
        out.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    out
}

fn unset_lines() -> String {
    let dummy = Path::new("");
    let names: Vec<&str> = client_env("", dummy, dummy)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    format!("unset {}\n", names.join(" "))
}

/// Single-quote for POSIX shells when needed.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
