//! From (field, value) to the slots of `W` that hold its embedding.
//!
//! Every embedding kind is read the same way: `blocks` blocks of up to `block_len` contiguous
//! slots, block `c` covering dimensions `c·Z .. min((c+1)·Z, d)`. ROBE-Z hashes each block
//! separately; `full` has one block of `d` at a row of the field's own table.

use crate::config::{EmbeddingConfig, ModelConfig};
use crate::robe::{KeyMode, P, R1, R3, RobeHash};

#[derive(Clone, Debug)]
enum Slots {
    Robe(RobeHash),
    /// Per field: first slot of its table and its row count.
    Full {
        base: Vec<u64>,
        rows: Vec<u64>,
    },
}

/// The lookup of one model: key mode plus slot layout.
#[derive(Clone, Debug)]
pub struct EmbeddingLookup {
    slots: Slots,
    key_mode: KeyMode,
    table_offsets: Vec<u64>,
    dim: usize,
    block_len: usize,
    blocks: usize,
    len: u64,
}

impl EmbeddingLookup {
    /// Builds the lookup of a validated config.
    pub fn new(cfg: &ModelConfig) -> Self {
        let dim = cfg.dim;
        let (slots, block_len) = match &cfg.embedding {
            EmbeddingConfig::Robe { m, z, hash } => {
                (Slots::Robe(RobeHash::new(*m, *z, *hash).expect("validated config")), *z as usize)
            }
            EmbeddingConfig::Full { rows } => {
                let base = rows
                    .iter()
                    .scan(0u64, |acc, r| {
                        let b = *acc;
                        *acc += r * dim as u64;
                        Some(b)
                    })
                    .collect();
                (Slots::Full { base, rows: rows.clone() }, dim)
            }
        };
        let block_len = block_len.min(dim);
        EmbeddingLookup {
            slots,
            key_mode: cfg.key_mode.clone(),
            table_offsets: cfg.key_mode.table_offsets(),
            dim,
            block_len,
            blocks: dim.div_ceil(block_len),
            len: cfg.embedding_len(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Slots per block (Z, or d for full tables).
    pub fn block_len(&self) -> usize {
        self.block_len
    }
    /// Blocks per embedding, `ceil(d / Z)`.
    pub fn blocks(&self) -> usize {
        self.blocks
    }
    /// Length of `W`.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn hash(&self) -> Option<&RobeHash> {
        match &self.slots {
            Slots::Robe(h) => Some(h),
            Slots::Full { .. } => None,
        }
    }

    /// Global key of value `v` of field `field`.
    #[inline]
    pub fn key(&self, field: usize, v: u32) -> u64 {
        self.key_mode.global_key(&self.table_offsets, field, v)
    }

    /// First slot of block `c` of value `v` of field `field`.
    #[inline]
    pub fn block_offset(&self, field: usize, v: u32, c: usize) -> usize {
        let x = self.key(field, v);
        match &self.slots {
            Slots::Robe(h) => h.block_offset(x, c as u32) as usize,
            Slots::Full { base, rows } => {
                // Dictionary ids index their table directly; raw values are hashed to a row.
                let row = match self.key_mode {
                    KeyMode::Dictionary { .. } => v as u64 % rows[field],
                    KeyMode::Raw => ((x % P) * R3 + R1) % P % rows[field],
                };
                (base[field] + row * self.dim as u64) as usize
            }
        }
    }

    /// Writes the first slot of every block of (field, v) into `out[..blocks]`.
    #[inline]
    pub fn block_offsets(&self, field: usize, v: u32, out: &mut [u32]) {
        let out = &mut out[..self.blocks];
        match &self.slots {
            Slots::Robe(h) => h.block_offsets(self.key(field, v), out),
            Slots::Full { .. } => out[0] = self.block_offset(field, v, 0) as u32,
        }
    }

    /// Slot read by dimension `i` of (field, v).
    pub fn index(&self, field: usize, v: u32, i: usize) -> usize {
        self.block_offset(field, v, i / self.block_len) + i % self.block_len
    }

    /// Adds `scale ×` the embedding of (field, v) into `out[..d]` (one value; batches hash
    /// ahead and use [`EmbeddingLookup::pool`]).
    pub fn accumulate(&self, w: &[f32], field: usize, v: u32, scale: f32, out: &mut [f32]) {
        let mut starts = vec![0u32; self.blocks];
        self.block_offsets(field, v, &mut starts);
        self.pool(w, &starts, scale, out);
    }

    /// Asks the cache for the blocks at `starts` ahead of a [`EmbeddingLookup::pool`] over them:
    /// `W` does not fit in L2 and its blocks are read at random. A no-op off x86-64.
    #[inline]
    pub fn prefetch(&self, w: &[f32], starts: &[u32]) {
        #[cfg(target_arch = "x86_64")]
        for &start in starts {
            if let Some(p) = w.get(start as usize) {
                // SAFETY: a prefetch is only a hint; it never faults, and `p` points into `w`.
                #[allow(unused_unsafe)]
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const f32 as *const i8)
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (w, starts);
    }

    /// Adds `scale ×` every embedding whose block offsets are in `starts` (`blocks` per value)
    /// into `out[..d]`. Offsets computed ahead let the loads of many rows overlap.
    #[inline]
    pub fn pool(&self, w: &[f32], starts: &[u32], scale: f32, out: &mut [f32]) {
        for value in starts.chunks_exact(self.blocks) {
            for (part, &start) in out[..self.dim].chunks_mut(self.block_len).zip(value) {
                let src = &w[start as usize..start as usize + part.len()];
                for (x, &y) in part.iter_mut().zip(src) {
                    *x += scale * y;
                }
            }
        }
    }
}
