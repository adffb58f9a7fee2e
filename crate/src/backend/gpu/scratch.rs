//! The buffers requests work in, reused across calls, and every rule that sizes them: the row
//! chunk that keeps each binding within the adapter's limits, and what one request needs of each
//! buffer ([`Need`], grown all at once by [`Scratch::grow`]).

use crate::config::ModelConfig;

/// The most rows one chunk of dispatches covers (the interaction grid's y dimension).
const MAX_CHUNK_ROWS: usize = 32768;

/// A buffer that only grows (to the next power of two), so steady-state calls allocate nothing.
pub(super) struct Grow {
    pub buffer: wgpu::Buffer,
    label: &'static str,
    usage: wgpu::BufferUsages,
}

impl Grow {
    pub(super) fn new(device: &wgpu::Device, label: &'static str, usage: wgpu::BufferUsages) -> Grow {
        Grow { buffer: Self::create(device, label, usage, 256), label, usage }
    }
    fn storage(device: &wgpu::Device, label: &'static str) -> Grow {
        Grow::new(
            device,
            label,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )
    }
    fn create(device: &wgpu::Device, label: &'static str, usage: wgpu::BufferUsages, size: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
    }
    pub(super) fn ensure(&mut self, device: &wgpu::Device, bytes: usize) -> &wgpu::Buffer {
        let bytes = (bytes as u64).max(256);
        if self.buffer.size() < bytes {
            self.buffer = Self::create(device, self.label, self.usage, bytes.next_power_of_two());
        }
        &self.buffer
    }
}

/// The widest layer of either MLP: the activation buffers' row stride.
pub(super) fn widest_layer(cfg: &ModelConfig) -> usize {
    cfg.bottom.iter().chain(&cfg.top).copied().max().unwrap_or(1)
}

/// Rows per chunk of dispatches: a power of two (at most [`MAX_CHUNK_ROWS`], at least 64) whose
/// widest per-row buffer (activations, a full row's vectors, a candidate's top input) binds
/// within `max_binding` bytes.
pub(super) fn chunk_rows(cfg: &ModelConfig, max_binding: u64) -> usize {
    let nq_max = cfg.fields.len();
    let widest =
        [widest_layer(cfg), cfg.interacting() * cfg.dim, nq_max * cfg.dim + nq_max * nq_max.saturating_sub(1) / 2]
            .into_iter()
            .max()
            .unwrap_or(1);
    let fit = (max_binding / (4 * widest as u64)).max(64) as usize;
    if fit >= MAX_CHUNK_ROWS { MAX_CHUNK_ROWS } else { 1 << fit.ilog2() }
}

/// What one request needs of each scratch buffer, in 4-byte words; 0 leaves a buffer as it is.
#[derive(Default)]
pub(super) struct Need {
    pub fields_a: usize,
    pub fields_b: usize,
    pub offsets: usize,
    pub values: usize,
    /// Raw and transformed dense values.
    pub dense: usize,
    /// Each of the two activation buffers.
    pub act: usize,
    pub vectors: usize,
    pub top_in: usize,
    pub pairs: usize,
    pub fold_index: usize,
    pub ctx_vectors: usize,
    pub folded: usize,
    pub folded_bias: usize,
    pub logits: usize,
    pub topk: usize,
}

/// The buffers the kernels bind, reused across requests.
pub(super) struct Scratch {
    /// Field tables (`array<FieldEntry>`): the request's (context-once: the context's) and the
    /// candidates'.
    pub fields_a: Grow,
    pub fields_b: Grow,
    pub offsets: Grow,
    pub values: Grow,
    pub dense_raw: Grow,
    pub dense_x: Grow,
    pub act: [Grow; 2],
    pub vectors: Grow,
    pub top_in: Grow,
    pub pairs: Grow,
    pub fold_index: Grow,
    pub ctx_vectors: Grow,
    pub folded: Grow,
    pub folded_bias: Grow,
    pub logits: Grow,
    pub topk: Grow,
}

impl Scratch {
    pub(super) fn new(device: &wgpu::Device) -> Scratch {
        let s = |label| Grow::storage(device, label);
        Scratch {
            fields_a: s("fields a"),
            fields_b: s("fields b"),
            offsets: s("offsets"),
            values: s("values"),
            dense_raw: s("dense raw"),
            dense_x: s("dense"),
            act: [s("act 0"), s("act 1")],
            vectors: s("vectors"),
            top_in: s("top input"),
            pairs: s("pairs"),
            fold_index: s("fold index"),
            ctx_vectors: s("context vectors"),
            folded: s("folded"),
            folded_bias: s("folded bias"),
            logits: s("logits"),
            topk: s("top-k"),
        }
    }

    /// Grows every buffer to what `need` asks.
    pub(super) fn grow(&mut self, device: &wgpu::Device, need: &Need) {
        let sized = [
            (&mut self.fields_a, need.fields_a),
            (&mut self.fields_b, need.fields_b),
            (&mut self.offsets, need.offsets),
            (&mut self.values, need.values),
            (&mut self.dense_raw, need.dense),
            (&mut self.dense_x, need.dense),
            (&mut self.vectors, need.vectors),
            (&mut self.top_in, need.top_in),
            (&mut self.pairs, need.pairs),
            (&mut self.fold_index, need.fold_index),
            (&mut self.ctx_vectors, need.ctx_vectors),
            (&mut self.folded, need.folded),
            (&mut self.folded_bias, need.folded_bias),
            (&mut self.logits, need.logits),
            (&mut self.topk, need.topk),
        ];
        for (buffer, words) in sized.into_iter().chain(self.act.iter_mut().map(|a| (a, need.act))) {
            buffer.ensure(device, words * 4);
        }
    }
}
