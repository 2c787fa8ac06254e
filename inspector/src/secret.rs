//! The raw key, in a type that cannot leave memory by accident.
//!
//! [`Secret`] has no `Debug`, `Display`, `Serialize` or `Clone`: putting one in a log line, a record or
//! an error message does not compile. The bytes are wiped when it is dropped. The only way to the
//! bytes is [`Secret::expose`], used by the few functions that measure a key (shape, fingerprint,
//! scrubbing echoes), all in this crate.

use std::sync::OnceLock;

use ring::hmac;
use zeroize::Zeroizing;

/// A credential exactly as the client sent it (after the auth scheme, if any).
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    /// Every run of [`RUN`] bytes of the secret (as text), packed and sorted, made on first use:
    /// they let a scrub tell in a few comparisons that a text cannot hold the secret. Key
    /// material too, so wiped with it.
    runs: OnceLock<Zeroizing<Vec<u64>>>,
    /// The secret as (lossy) characters, and each character with where it occurs, packed
    /// (`char << 32 | index`) and sorted: made when a scrub first finds a possible echo, for the
    /// character-level search. Key material too, so wiped with it.
    chars: OnceLock<SecretChars>,
}

/// What [`Secret::chars`] returns, kept.
type SecretChars = (Zeroizing<Vec<char>>, Zeroizing<Vec<u64>>);

/// The length of the runs in [`Secret::runs`]: the shortest shared run that counts as an echo.
pub const RUN: usize = 5;

impl Secret {
    pub fn new(bytes: &[u8]) -> Self {
        Secret {
            bytes: Zeroizing::new(bytes.to_vec()),
            runs: OnceLock::new(),
            chars: OnceLock::new(),
        }
    }

    /// The raw bytes. Callers must not copy them anywhere that outlives the call.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `text` has a run of [`RUN`] bytes in common with the secret (compared as lossy
    /// text, as the scrub compares): `false` means the secret cannot be in the text. A binary
    /// search per window of the text, with no allocation once the runs are made.
    pub fn shares_run_with(&self, text: &[u8]) -> bool {
        let runs = self.runs.get_or_init(|| {
            let text = String::from_utf8_lossy(&self.bytes);
            let mut runs: Vec<u64> = text.as_bytes().windows(RUN).map(pack).collect();
            runs.sort_unstable();
            runs.dedup();
            Zeroizing::new(runs)
        });
        !runs.is_empty()
            && text
                .windows(RUN)
                .any(|w| runs.binary_search(&pack(w)).is_ok())
    }

    /// The secret as (lossy) text, by character, and the sorted `char << 32 | index` list of
    /// where each character occurs.
    pub(crate) fn chars(&self) -> (&[char], &[u64]) {
        let (chars, occurs) = self.chars.get_or_init(|| {
            let chars: Vec<char> = String::from_utf8_lossy(&self.bytes).chars().collect();
            let mut occurs: Vec<u64> = chars
                .iter()
                .enumerate()
                .map(|(j, &c)| (u64::from(c) << 32) | j as u64)
                .collect();
            occurs.sort_unstable();
            (Zeroizing::new(chars), Zeroizing::new(occurs))
        });
        (chars, occurs)
    }
}

/// A run of at most 8 bytes as one integer.
fn pack(run: &[u8]) -> u64 {
    run.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
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
