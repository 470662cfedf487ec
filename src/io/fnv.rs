//! FNV-1a (64-bit): the one fingerprint hash of the project (training data of a checkpoint,
//! embedding files in a manifest, an experiment's id). Not cryptographic: it tells apart
//! inputs that differ, which is all a fingerprint here must do.

/// An FNV-1a hasher fed bytes in any number of pieces.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors_in_pieces_or_whole() {
        assert_eq!(Fnv1a::default().hex(), "cbf29ce484222325");
        let mut h = Fnv1a::default();
        h.write(b"a");
        assert_eq!(h.hex(), "af63dc4c8601ec8c");
        let mut whole = Fnv1a::default();
        whole.write(b"foobar");
        let mut parts = Fnv1a::default();
        parts.write(b"foo");
        parts.write(b"bar");
        assert_eq!(whole.hex(), "85944171f73967e8");
        assert_eq!(parts.hex(), whole.hex());
    }
}
