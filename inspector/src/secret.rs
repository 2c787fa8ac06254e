//! The raw key, in a type that cannot leave memory by accident.
//!
//! [`Secret`] has no `Debug`, `Display`, `Serialize` or `Clone`: putting one in a log line, a record or
//! an error message does not compile. The bytes are wiped when it is dropped. The only way to the
//! bytes is [`Secret::expose`], used by the few functions that measure a key (shape, fingerprint,
//! scrubbing echoes), all in this crate.

use ring::hmac;
use zeroize::Zeroizing;

/// A credential exactly as the client sent it (after the auth scheme, if any).
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: &[u8]) -> Self {
        Secret(Zeroizing::new(bytes.to_vec()))
    }

    /// The raw bytes. Callers must not copy them anywhere that outlives the call.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The per-install key of the keyed fingerprint: two records of one install can be compared, but a
/// shared capture does not let anyone test guesses of the key against the fingerprint.
pub struct FingerprintKey(hmac::Key);

impl FingerprintKey {
    /// From the 32 secret bytes stored in the data dir.
    pub fn new(bytes: &[u8]) -> Self {
        FingerprintKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// `hmac:` and the first 16 hex digits (64 bits) of HMAC-SHA256 over the exact bytes sent.
    pub fn fingerprint(&self, secret: &Secret) -> String {
        let tag = hmac::sign(&self.0, secret.expose());
        let mut out = String::with_capacity(21);
        out.push_str("hmac:");
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in &tag.as_ref()[..8] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_install_key_and_secret() {
        let a = FingerprintKey::new(&[1; 32]);
        let b = FingerprintKey::new(&[2; 32]);
        let s = Secret::new(b"sk-test-0123456789");
        assert_eq!(
            a.fingerprint(&s),
            a.fingerprint(&Secret::new(b"sk-test-0123456789"))
        );
        assert_ne!(a.fingerprint(&s), b.fingerprint(&s));
        assert_ne!(
            a.fingerprint(&s),
            a.fingerprint(&Secret::new(b"sk-test-0123456789\n"))
        );
        assert_eq!(a.fingerprint(&s).len(), 21);
    }
}
