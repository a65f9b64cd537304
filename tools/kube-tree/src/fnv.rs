//! FNV-1a, 64 bit: the kit's fingerprints (change detection and stable names), not cryptography.

#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf29ce484222325)
    }
}

impl Fnv {
    pub fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
}

/// The FNV-1a hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.feed(bytes);
    h.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        assert_eq!(super::hash(b""), 0xcbf29ce484222325);
        assert_eq!(super::hash(b"a"), 0xaf63dc4c8601ec8c);
    }
}
