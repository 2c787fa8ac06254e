//! authtap's data directory: `$AUTHTAP_HOME`, else the platform's data dir for authtap
//! (`~/.local/share/authtap` on Linux). It holds the per-install fingerprint key and, by default,
//! the capture files. Everything in it is private to the user (0700 dir, 0600 files).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use authtap_inspector::secret::FingerprintKey;
use ring::rand::{SecureRandom, SystemRandom};

const FINGERPRINT_KEY_FILE: &str = "fingerprint.key";

/// The data dir, created if missing.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("AUTHTAP_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => directories::ProjectDirs::from("", "", "authtap")
            .map(|d| d.data_dir().to_path_buf())
            .ok_or_else(|| {
                anyhow!("cannot find a home directory for authtap's data; set AUTHTAP_HOME")
            })?,
    };
    create_private_dir(&dir)?;
    Ok(dir)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// The per-install fingerprint key, created on first use.
pub fn fingerprint_key(dir: &Path) -> anyhow::Result<FingerprintKey> {
    let path = dir.join(FINGERPRINT_KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(FingerprintKey::new(&bytes)),
        Ok(_) => {
            return Err(anyhow!(
                "{} is damaged (it must hold 32 bytes); delete it and authtap makes a new one (fingerprints in old captures will then differ)",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow!("the system random generator failed"))?;
    authtap_certs::write_file(&path, &bytes, 0o600)?;
    Ok(FingerprintKey::new(&bytes))
}

/// Open the capture file for appending (0600), creating its directory. With no path given, a new
/// timestamped file under `<data dir>/captures/`.
pub fn open_capture(dir: &Path, path: Option<&Path>) -> anyhow::Result<(File, PathBuf)> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let stamp = crate::forward::now_rfc3339().replace(':', "-");
            dir.join("captures").join(format!("{stamp}.jsonl"))
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .with_context(|| format!("cannot open the capture file {}", path.display()))?;
    Ok((file, path))
}

/// Where authtap keeps its own CA for HTTPS_PROXY mode.
pub fn ca_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ca")
}
