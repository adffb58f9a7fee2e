//! ROBE-Z: every sparse field hashed into one shared array `W` of `M` floats, read in blocks of `Z`.
//!
//! This is docs/hash.md, which is normative: the trainer, the CPU and GPU backends and the browser
//! must compute the same slot for the same key, bit for bit. [`RobeHash::block_offset`] is the
//! reference in exact u64 arithmetic; [`limbs`] is the same function written with 32-bit words
//! only, exactly as the WGSL shader computes it (per block, and per key as the gather walks the
//! blocks: [`limbs::BlockWalk`]), and is tested equal to the reference.

use serde::{Deserialize, Serialize};

/// The prime modulus of the authors' universal hash.
pub const P: u64 = 2_038_074_743;
/// The authors' hash constants (all fields share them).
pub const R1: u64 = 634_329_019;
pub const R2: u64 = 1_825_252_241;
pub const R3: u64 = 871_205_356;

/// Which published formula turns (key, block) into an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashVariant {
    /// `h = ((x mod P)·R3 + c·R2 + R1) mod P`, `idx = h mod (M − Z + 1) + j` (the papers' code).
    UmaV1,
    /// `h = ((x mod P)·R1 + (c+1)·R2 + R3) mod P`, `idx = h mod (M − Z) + j` (the 2023 branch).
    NewRobez,
    /// pocketrec's ablation, the "independent" variant of docs/hash.md: uma-v1 with the key's
    /// multiplier changing per block, `h = ((x mod P)·m_c + c·R2 + R1) mod P` with
    /// `m_c = (R3 + c·R2) mod P`, `idx = h mod (M − Z + 1) + j`. In both published variants `h` is
    /// linear in `c` with the same slope for every key, so two keys that collide on one block
    /// usually collide on all of them; here the difference of two keys' `h` is `(x − y)·m_c`,
    /// different for every block. Block 0 is uma-v1's.
    Independent,
}

impl HashVariant {
    pub const ALL: [HashVariant; 3] = [HashVariant::UmaV1, HashVariant::NewRobez, HashVariant::Independent];

    pub fn name(self) -> &'static str {
        match self {
            HashVariant::UmaV1 => "uma-v1",
            HashVariant::NewRobez => "new-robez",
            HashVariant::Independent => "independent",
        }
    }

    /// `(multiplier of x, multiplier of the block term, additive constant, block shift)`; the
    /// independent variant adds `c·R2` to the multiplier of x.
    fn constants(self) -> (u64, u64, u64, u64) {
        match self {
            HashVariant::UmaV1 | HashVariant::Independent => (R3, R2, R1, 0),
            HashVariant::NewRobez => (R1, R2, R3, 1),
        }
    }

    /// Number of distinct block starts, `M − Z + 1` or `M − Z`.
    fn range(self, m: u64, z: u64) -> u64 {
        match self {
            HashVariant::UmaV1 | HashVariant::Independent => m - z + 1,
            HashVariant::NewRobez => m - z,
        }
    }

    /// `h` of block `c` for `xm = x mod P`, in exact u64 arithmetic (every term below 2^62).
    #[inline]
    fn h(self, xm: u64, c: u64) -> u64 {
        let (mul, block_mul, add, shift) = self.constants();
        let block = (c + shift) % P;
        let mul = match self {
            HashVariant::Independent => (mul + block * block_mul) % P,
            _ => mul,
        };
        (xm * mul + block * block_mul + add) % P
    }
}

impl std::str::FromStr for HashVariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HashVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown hash variant {s:?}: use uma-v1, new-robez or independent"))
    }
}

impl std::fmt::Display for HashVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The ROBE-Z hash for one shared array: `M` slots read in blocks of `Z`.
///
/// Invariants (checked by [`RobeHash::new`]): `1 <= Z`, `M > Z` (so both variants have a non-empty
/// range) and `M < 2^32` (slots are u32 everywhere, including on the GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RobeHash {
    m: u64,
    z: u64,
    variant: HashVariant,
    /// `range` and Lemire's fastmod multiplier for it: `h mod range` without a division.
    range: u64,
    range_inv: u64,
}

impl RobeHash {
    pub fn new(m: u64, z: u32, variant: HashVariant) -> Option<Self> {
        let z = z as u64;
        if !(z >= 1 && m > z && m < (1 << 32)) {
            return None;
        }
        let range = variant.range(m, z);
        Some(RobeHash { m, z, variant, range, range_inv: (u64::MAX / range).wrapping_add(1) })
    }

    pub fn m(&self) -> u64 {
        self.m
    }
    pub fn z(&self) -> u32 {
        self.z as u32
    }
    pub fn variant(&self) -> HashVariant {
        self.variant
    }

    /// First slot of block `c` of global key `x`; the block covers `Z` contiguous slots.
    #[inline]
    pub fn block_offset(&self, x: u64, c: u32) -> u32 {
        (self.variant.h(x % P, c as u64) % self.range) as u32
    }

    /// First slots of blocks `0..out.len()` of key `x`: the same values as
    /// [`RobeHash::block_offset`], with `x mod P` reduced once and no division by `range`.
    #[inline]
    pub fn block_offsets(&self, x: u64, out: &mut [u32]) {
        let xm = x % P;
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.fast_mod(self.variant.h(xm, c as u64)) as u32;
        }
    }

    /// `h mod range` for `h < 2^32` (Lemire, Kaser and Kurz 2019, "Faster remainder by direct
    /// computation"), exact for every 32-bit `h` and divisor.
    #[inline]
    fn fast_mod(&self, h: u64) -> u64 {
        let low = self.range_inv.wrapping_mul(h);
        ((low as u128 * self.range as u128) >> 64) as u64
    }

    /// Slot read by dimension `i` of the embedding of global key `x`.
    #[inline]
    pub fn index(&self, x: u64, i: u32) -> u32 {
        let z = self.z as u32;
        self.block_offset(x, i / z) + i % z
    }
}

/// The same hash using only 32-bit words, as the WGSL shader does (WGSL has no 64-bit integers).
///
/// The key arrives as two words `(lo, hi)`. Products modulo `P` use double-and-add: since
/// `P < 2^31`, every intermediate `2r` or `r + a` stays below `2^32`.
pub mod limbs {
    use super::HashVariant;

    pub const P: u32 = super::P as u32;
    /// `2^32 mod P`, to fold the high word of the key.
    pub const TWO32_MOD_P: u32 = ((1u64 << 32) % super::P) as u32;
    /// The hash constants as words (all below `P`).
    pub const R1: u32 = super::R1 as u32;
    pub const R2: u32 = super::R2 as u32;
    pub const R3: u32 = super::R3 as u32;

    /// `(a + b) mod P` for `a, b < P`.
    #[inline]
    pub fn add_mod(a: u32, b: u32) -> u32 {
        let s = a.wrapping_add(b); // a + b < 2^32 since both < 2^31
        if s >= P { s - P } else { s }
    }

    /// `(a · b) mod P` for `a, b < P`, by double-and-add over the 31 bits of `b`.
    #[inline]
    pub fn mul_mod(a: u32, b: u32) -> u32 {
        let mut r = 0u32;
        let mut bit = 31;
        while bit > 0 {
            bit -= 1;
            r = add_mod(r, r);
            if (b >> bit) & 1 == 1 {
                r = add_mod(r, a);
            }
        }
        r
    }

    /// `(hi · 2^32 + lo) mod P`.
    #[inline]
    pub fn key_mod_p(lo: u32, hi: u32) -> u32 {
        add_mod(mul_mod(hi % P, TWO32_MOD_P), lo % P)
    }

    /// First slot of block `c`: the limb form of [`super::RobeHash::block_offset`].
    /// `range` is `M − Z` for new-robez, `M − Z + 1` otherwise.
    #[inline]
    pub fn block_offset(variant: HashVariant, range: u32, lo: u32, hi: u32, c: u32) -> u32 {
        let (mul, block_mul, add, shift) = variant.constants();
        let xm = key_mod_p(lo, hi);
        let block = (c % P) as u64 + shift; // c + 1 may reach P only if c = P − 1
        let block = if block >= super::P { block - super::P } else { block } as u32;
        let block_term = mul_mod(block, block_mul as u32);
        let mul = match variant {
            HashVariant::Independent => add_mod(mul as u32, block_term),
            _ => mul as u32,
        };
        let h = add_mod(add_mod(mul_mod(xm, mul), block_term), add as u32);
        h % range
    }

    /// The `range` argument of [`block_offset`] for a hash.
    pub fn range(hash: &super::RobeHash) -> u32 {
        hash.range as u32
    }

    /// The first slots of blocks 0, 1, 2, ... of one key, as the GPU gather walks them
    /// (`hash.wgsl`'s `walk_begin` / `walk_next`, line for line): what does not depend on the
    /// block (the key's residue and, but for `independent`, its product with the multiplier) is
    /// computed once, and block `c`'s term `c·R2 mod P` (new-robez: `(c + 1)·R2`) grows by `R2`
    /// per block. The same slots as [`block_offset`] for every block below `P`; the CPU twin that
    /// lets every machine, GPU or not, check the shader's arithmetic.
    #[derive(Clone, Copy, Debug)]
    pub struct BlockWalk {
        variant: HashVariant,
        range: u32,
        /// `xm·mul mod P`; for `independent`, `xm` itself.
        key_term: u32,
        /// The current block's `block·R2 mod P`.
        block_term: u32,
    }

    impl BlockWalk {
        /// The walk of key `(lo, hi)`; `range` as for [`block_offset`].
        pub fn new(variant: HashVariant, range: u32, lo: u32, hi: u32) -> BlockWalk {
            let xm = key_mod_p(lo, hi);
            let (key_term, block_term) = match variant {
                HashVariant::UmaV1 => (mul_mod(xm, R3), 0),
                HashVariant::NewRobez => (mul_mod(xm, R1), R2),
                HashVariant::Independent => (xm, 0),
            };
            BlockWalk { variant, range, key_term, block_term }
        }
    }

    /// Endless: take as many blocks as the embedding has.
    impl Iterator for BlockWalk {
        type Item = u32;
        #[inline]
        fn next(&mut self) -> Option<u32> {
            let bt = self.block_term;
            self.block_term = add_mod(bt, R2);
            let h = match self.variant {
                HashVariant::UmaV1 => add_mod(add_mod(self.key_term, bt), R1),
                HashVariant::NewRobez => add_mod(add_mod(self.key_term, bt), R3),
                // The key's multiplier changes per block: R3 + c·R2.
                HashVariant::Independent => add_mod(add_mod(mul_mod(self.key_term, add_mod(R3, bt)), bt), R1),
            };
            Some(h % self.range)
        }
    }
}

/// How a (field, value) pair becomes the u64 global key that is hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum KeyMode {
    /// `x = (field << 32) | v`: no vocabulary, raw values hashed directly (the default).
    Raw,
    /// `x = table_offset[field] + id`, the paper's dictionary-encoded indices.
    Dictionary { table_sizes: Vec<u64> },
}

impl KeyMode {
    /// Global key of value `v` of sparse field `field`.
    #[inline]
    pub fn global_key(&self, offsets: &[u64], field: usize, v: u32) -> u64 {
        match self {
            KeyMode::Raw => ((field as u64) << 32) | v as u64,
            KeyMode::Dictionary { .. } => offsets[field] + v as u64,
        }
    }

    /// Running sums of the table sizes (empty in raw mode).
    pub fn table_offsets(&self) -> Vec<u64> {
        match self {
            KeyMode::Raw => Vec::new(),
            KeyMode::Dictionary { table_sizes } => table_sizes
                .iter()
                .scan(0u64, |acc, &s| {
                    let o = *acc;
                    *acc += s;
                    Some(o)
                })
                .collect(),
        }
    }
}

/// FNV-1a, 32 bit: the raw value of a categorical given as an arbitrary string.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The raw value of a categorical token given as text, as every reader computes it: FNV-1a 32 of
/// its bytes, and 0 for the empty token (a missing value, as an empty Criteo categorical).
pub fn token_value(bytes: &[u8]) -> u32 {
    if bytes.is_empty() { 0 } else { fnv1a32(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limb_constants() {
        assert_eq!(limbs::TWO32_MOD_P as u64, (1u64 << 32) % P);
        assert_eq!(limbs::mul_mod(P as u32 - 1, P as u32 - 1) as u64, ((P - 1) * (P - 1)) % P);
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 32 test vectors.
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn rejects_degenerate_shapes() {
        assert!(RobeHash::new(4, 4, HashVariant::UmaV1).is_none());
        assert!(RobeHash::new(10, 0, HashVariant::UmaV1).is_none());
        assert!(RobeHash::new(1 << 32, 4, HashVariant::UmaV1).is_none());
        assert!(RobeHash::new(5, 4, HashVariant::NewRobez).is_some());
    }

    #[test]
    fn independent_variant_multipliers_never_vanish() {
        // m_c = 0 would send every key to one start for block c; d/Z never reaches 2^16 blocks.
        for c in 0..1u64 << 16 {
            assert_ne!((R3 + c * R2) % P, 0, "block {c}");
        }
    }

    #[test]
    fn independent_variant_breaks_the_cross_block_correlation() {
        // Keys colliding on block 0 (where it equals uma-v1) keep colliding on block 1 under uma-v1
        // and almost never under the independent variant.
        let (m, z) = (1_000u64, 1u32);
        let (uma, ind) =
            (RobeHash::new(m, z, HashVariant::UmaV1).unwrap(), RobeHash::new(m, z, HashVariant::Independent).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let keys: Vec<u64> = (0..3_000)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                state >> 8
            })
            .collect();
        let offsets = |h: &RobeHash, c: u32| -> Vec<u32> { keys.iter().map(|&x| h.block_offset(x, c)).collect() };
        let (u0, u1, i0, i1) = (offsets(&uma, 0), offsets(&uma, 1), offsets(&ind, 0), offsets(&ind, 1));
        assert_eq!(u0, i0);
        let (mut pairs, mut uma_again, mut ind_again) = (0, 0, 0);
        for a in 0..keys.len() {
            for b in a + 1..keys.len() {
                if u0[a] == u0[b] {
                    pairs += 1;
                    uma_again += (u1[a] == u1[b]) as u32;
                    ind_again += (i1[a] == i1[b]) as u32;
                }
            }
        }
        assert!(pairs > 100, "{pairs} colliding pairs");
        assert!(uma_again * 2 > pairs, "uma-v1: {uma_again} of {pairs} collide again");
        eprintln!("colliding on block 0: {pairs} pairs; again on block 1: uma-v1 {uma_again}, independent {ind_again}");
        assert!(ind_again * 20 < pairs, "independent: {ind_again} of {pairs} collide again");
    }
}
