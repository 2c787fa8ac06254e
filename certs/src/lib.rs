//! authtap's certificate authority: create, save (private key 0600), load, and mint short-lived leaf
//! certificates for the hosts authtap answers for, as rustls server configs.
//!
//! The same code makes the throwaway CA of the test provider emulator and, for HTTPS_PROXY mode, the
//! user's local CA. It is not a general PKI: no revocation, no intermediate CAs, one key type (ECDSA
//! P-256, which every TLS client accepts and which is fast to sign with).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory (written with mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// What went wrong with a certificate; every variant is authtap's side or the user's files, never a
/// provider's.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable PEM file: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("rustls refused the certificate: {0}")]
    Tls(#[from] rustls::Error),
}

/// A certificate authority that can sign leaf certificates.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A new CA with the given common name, valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "authtap");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Load a CA from its certificate and key PEM files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CertError::BadPem {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CertError::BadPem {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| CertError::BadPem {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            cert_der,
            cert_pem,
            issuer,
        })
    }

    /// Load the CA stored in `dir`, or create and save one there.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<Self, CertError> {
        let (cert, key) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if cert.exists() && key.exists() {
            return Self::load(&cert, &key);
        }
        let ca = Self::generate(common_name)?;
        ca.save(dir)?;
        Ok(ca)
    }

    /// Write `ca.pem` (0644) and `ca-key.pem` (0600) into `dir`, creating it.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })?;
        write_file(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        write_file(
            &dir.join(CA_KEY_FILE),
            self.issuer.key().serialize_pem().as_bytes(),
            0o600,
        )
    }

    /// The CA certificate as PEM, for clients to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A leaf certificate for `hosts` (DNS names or IP addresses), valid from an hour ago for
    /// `valid_for`, signed by this CA. Returns the chain (leaf, then CA) and the leaf's key.
    pub fn issue_leaf(
        &self,
        hosts: &[&str],
        valid_for: Duration,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*host).try_into()?),
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("authtap"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + valid_for;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key_der))
    }

    /// A rustls server config presenting one leaf for all `hosts`, offering the given ALPN protocols
    /// (e.g. `[b"h2", b"http/1.1"]`).
    pub fn server_config(
        &self,
        hosts: &[&str],
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, CertError> {
        let (chain, key) = self.issue_leaf(hosts, Duration::days(7))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// How long a minted leaf is valid: short, so a leaked leaf key is worth little, and long enough
/// that a running authtap rarely mints one twice.
const LEAF_LIFETIME: Duration = Duration::hours(24);

/// Per-host TLS server configs signed by one CA, minted on first use and cached in memory until
/// an hour before they expire.
pub struct LeafCache {
    ca: CertificateAuthority,
    alpn: Vec<Vec<u8>>,
    cache: Mutex<HashMap<String, (Arc<ServerConfig>, OffsetDateTime)>>,
}

impl LeafCache {
    /// Serve leaves signed by `ca`, offering `alpn` (e.g. `[b"h2", b"http/1.1"]`).
    pub fn new(ca: CertificateAuthority, alpn: &[&[u8]]) -> Self {
        LeafCache {
            ca,
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The server config presenting a leaf for `host` (a DNS name or an IP address).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, CertError> {
        let host = host.to_ascii_lowercase();
        let now = OffsetDateTime::now_utc();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((config, expires)) = cache.get(&host)
            && *expires - Duration::hours(1) > now
        {
            return Ok(config.clone());
        }
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let (chain, key) = self.ca.issue_leaf(&[host.as_str()], LEAF_LIFETIME)?;
        let config = server_config_from(chain, key, &alpn)?;
        // Unbounded growth is not a risk in practice (one entry per intercepted host), but a
        // long-running proxy should not keep expired entries.
        cache.retain(|_, (_, expires)| *expires > now);
        cache.insert(host, (config.clone(), now + LEAF_LIFETIME));
        Ok(config)
    }
}

fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, CertError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Read every certificate in a PEM file (for `--upstream-ca` and user-supplied roots).
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes.as_bytes()).collect();
    let certs = certs.map_err(|e| CertError::BadPem {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(CertError::BadPem {
            path: path.to_owned(),
            reason: "it holds no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Write a file with `mode` from its creation on, so a private key is never readable by others,
/// not even for a moment.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options.open(path).map_err(err)?;
        // An existing file keeps its old mode through open(); set it explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path).map_err(err)?;
        file.write_all(contents).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::generate("authtap test CA").expect("generate");
        ca.save(dir.path()).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = CertificateAuthority::load_or_create(dir.path(), "unused").expect("reload");
        assert_eq!(again.cert_der(), ca.cert_der());
        again
            .server_config(&["api.moonshot.ai", "127.0.0.1"], &[b"h2"])
            .expect("leaf from reloaded CA");
    }

    #[test]
    fn leaves_are_cached_per_host() {
        let cache = LeafCache::new(
            CertificateAuthority::generate("authtap test CA").expect("ca"),
            &[b"h2"],
        );
        let a = cache.server_config("api.moonshot.ai").expect("leaf");
        let again = cache.server_config("API.moonshot.ai").expect("leaf");
        let other = cache.server_config("127.0.0.1").expect("ip leaf");
        assert!(Arc::ptr_eq(&a, &again), "same host, same config");
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(a.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn empty_pem_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        fs::write(&path, "not a certificate").expect("write");
        let err = read_pem_certs(&path).expect_err("must fail");
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }
}
