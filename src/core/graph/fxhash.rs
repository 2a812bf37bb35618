//! FxHash: the hasher of the graph's and the model's maps.

/// FxHash (rustc's hasher, as in rustc-hash 2): an add and a multiply per word. The keys here (node ids, scids,
/// indices) are not attacker-chosen in a way that matters for a local plugin, and SipHash was a
/// visible share of both graph building and searching with exclusions.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

/// `HashMap`/`HashSet` hasher builder for [`FxHasher`].
pub type FxBuildHasher = std::hash::BuildHasherDefault<FxHasher>;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self
            .hash
            .wrapping_add(word)
            .wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// The rotate brings the well-mixed high bits down to where hashbrown picks its bucket
    /// (keys like scids have many zero low bits, which a bare multiply leaves at zero).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}
