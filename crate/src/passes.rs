//! The DLRM's forward and backward passes for training (on ndarray GEMMs); the scoring backends
//! that serve requests are [`crate::backend`].
//!
//! All activations live in a reusable [`Workspace`], so a training step allocates nothing once
//! the batch size is stable. Per-row work (embedding gathers, the dot interaction) runs on rayon
//! when the `parallel` feature is on, as do large GEMMs ([`crate::gemm`]).

use crate::batch::Batch;
use crate::config::FieldKind;
use crate::embedding::EmbeddingLookup;
use crate::gemm::matmul;
use crate::model::{Dlrm, Linear};
use crate::par;
use ndarray::{Array2, ArrayView2, s};

/// Runs `f(row_index, row)` on every `width`-wide row of `data`, in parallel where enabled.
fn for_each_row(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if width == 0 {
        return;
    }
    par::for_each_chunk_mut(data, width, 32, f);
}

/// Activations of the last forward pass, kept for the backward pass, and backward scratch.
#[derive(Default, Debug)]
pub struct Workspace {
    rows: usize,
    /// `bottom[0]` is the transformed dense input, `bottom[k+1]` the output of layer `k` (empty
    /// without a bottom MLP).
    bottom: Vec<Array2<f32>>,
    /// `top[0]` is the interaction, `top[k+1]` the output of layer `k`; the last holds logits.
    top: Vec<Array2<f32>>,
    /// The interacting vectors of each row: the bottom output (when there is one), then each
    /// field's embedding.
    vectors: Array2<f32>,
    /// Per field, the first slot of every block of every value of the batch (CSR order).
    slots: Vec<Vec<u32>>,
    d_bottom: Vec<Array2<f32>>,
    d_top: Vec<Array2<f32>>,
    d_vectors: Array2<f32>,
}

impl Workspace {
    fn ensure(&mut self, model: &Dlrm, rows: usize) {
        let cfg = &model.config;
        if self.rows == rows && self.bottom.len() == cfg.bottom.len() && self.top.len() == cfg.top.len() {
            return;
        }
        let acts = |w: &[usize]| w.iter().map(|&n| Array2::zeros((rows, n))).collect::<Vec<_>>();
        self.rows = rows;
        self.bottom = acts(&cfg.bottom);
        self.top = acts(&cfg.top);
        self.d_bottom = acts(&cfg.bottom);
        self.d_top = acts(&cfg.top);
        self.vectors = Array2::zeros((rows, cfg.interacting() * cfg.dim));
        self.d_vectors = Array2::zeros((rows, cfg.interacting() * cfg.dim));
    }

    /// Logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.top.last().and_then(|a| a.as_slice()).unwrap_or(&[])
    }
}

/// Gradients of every parameter for one batch. The embedding gradient is sparse: only the slots
/// that were read are touched, and only those are cleared between steps.
#[derive(Debug)]
pub struct Gradients {
    pub bottom: Vec<Linear>,
    pub top: Vec<Linear>,
    pub embedding: SparseGrad,
}

impl Gradients {
    pub fn zeros(model: &Dlrm) -> Self {
        Self::with_embedding_len(model, model.embedding.len())
    }

    /// MLP gradients only (an empty `W` gradient), for a pass whose `W` gradient is scattered
    /// elsewhere ([`Dlrm::backward_mlp`]).
    pub fn zeros_mlp(model: &Dlrm) -> Self {
        Self::with_embedding_len(model, 0)
    }

    fn with_embedding_len(model: &Dlrm, len: usize) -> Self {
        let layers = |w: &[usize]| w.windows(2).map(|w| Linear::zeros(w[0], w[1])).collect();
        Gradients {
            bottom: layers(&model.config.bottom),
            top: layers(&model.config.top),
            embedding: SparseGrad::new(len, model.lookup().block_len()),
        }
    }
}

/// Per-slot gradient of `W`: a dense buffer allocated once, cut into one contiguous slot range
/// ("part") per worker thread, each with the start of every block written into it (with
/// repeats). Parts are filled ([`SparseGrad::add_by_parts`]) and drained
/// ([`SparseGrad::drain_into`]) in parallel, each by one thread, so no slot is shared and a step
/// costs the slots read, never `M`.
#[derive(Debug, Clone)]
pub struct SparseGrad {
    values: Vec<f32>,
    /// Part `p` holds slots `bounds[p]..bounds[p + 1]`.
    bounds: Vec<usize>,
    blocks: Vec<Vec<u32>>,
    block_len: usize,
}

/// One part of a [`SparseGrad`]: its slot range, their gradients and the blocks written.
pub struct GradPart<'a> {
    lo: usize,
    hi: usize,
    values: &'a mut [f32],
    blocks: &'a mut Vec<u32>,
}

impl GradPart<'_> {
    /// The slots this part holds.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.lo..self.hi
    }

    /// Adds `scale · grad` to the slots from `start` on that lie in this part.
    #[inline]
    pub fn add_block(&mut self, start: usize, scale: f32, grad: &[f32]) {
        let end = start + grad.len();
        if end <= self.lo || start >= self.hi {
            return;
        }
        let (a, b) = (start.max(self.lo), end.min(self.hi));
        for (v, &g) in self.values[a - self.lo..b - self.lo].iter_mut().zip(&grad[a - start..b - start]) {
            *v += scale * g;
        }
        self.blocks.push(start as u32);
    }

    /// [`SparseGrad::drain_into`] on this part; blocks are `z` slots long.
    fn drain<const N: usize>(
        self,
        z: usize,
        state: &mut [&mut [f32]; N],
        f: impl Fn(&mut [&mut [f32]; N], usize, f32),
    ) {
        let (lo, hi) = (self.lo, self.hi);
        for &b in self.blocks.iter() {
            let b = b as usize;
            for s in b.max(lo)..(b + z).min(hi) {
                let v = &mut self.values[s - lo];
                if *v != 0.0 {
                    f(state, s - lo, *v);
                    *v = 0.0;
                }
            }
        }
        self.blocks.clear();
    }
}

impl SparseGrad {
    /// A zero gradient of `len` slots, in one part per worker thread of the current pool.
    pub fn new(len: usize, block_len: usize) -> Self {
        let parts = par::threads().clamp(1, len.max(1));
        let bounds = (0..=parts).map(|i| i * len / parts).collect();
        SparseGrad { values: vec![0.0; len], bounds, blocks: vec![Vec::new(); parts], block_len }
    }

    /// Runs `f` on every part, in parallel where enabled; `f` adds the blocks that overlap it.
    pub fn add_by_parts(&mut self, f: impl Fn(&mut GradPart) + Sync) {
        par::for_each(self.parts(), |mut part| f(&mut part));
    }

    fn parts(&mut self) -> Vec<GradPart<'_>> {
        let bounds = &self.bounds;
        split_at_bounds(&mut self.values, bounds)
            .into_iter()
            .zip(self.blocks.iter_mut())
            .enumerate()
            .map(|(p, (values, blocks))| GradPart { lo: bounds[p], hi: bounds[p + 1], values, blocks })
            .collect()
    }

    /// The gradient of every slot (zero where nothing was read).
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Hands every slot with a non-zero gradient to an optimizer once and leaves the buffer all
    /// zero, the parts in parallel. `state` holds `N` buffers of one entry per slot (the
    /// parameters, then the optimizer's moments); `f(state, i, g)` gets their sub-slices for one
    /// part, the slot's index in them and its gradient.
    pub fn drain_into<const N: usize>(
        &mut self,
        state: [&mut [f32]; N],
        f: impl Fn(&mut [&mut [f32]; N], usize, f32) + Sync + Send,
    ) {
        let len = self.values.len();
        assert!(state.iter().all(|b| b.len() == len), "state buffers have one entry per slot");
        let mut chunks = state.map(|buf| split_at_bounds(buf, &self.bounds).into_iter());
        let z = self.block_len;
        let jobs: Vec<_> = self
            .parts()
            .into_iter()
            .map(|part| (part, std::array::from_fn(|k| chunks[k].next().expect("one chunk per part"))))
            .collect();
        par::for_each(jobs, |(part, mut st)| part.drain(z, &mut st, &f));
    }

    /// The length of a block, the unit in which parts record what was written.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Zeroes the gradient.
    pub fn clear(&mut self) {
        self.drain_into([], |_, _, _| {});
    }
}

/// `buf` cut at `bounds` (ascending, from 0 to `buf.len()`) into consecutive sub-slices.
fn split_at_bounds<'a>(mut buf: &'a mut [f32], bounds: &[usize]) -> Vec<&'a mut [f32]> {
    bounds
        .windows(2)
        .map(|w| {
            let (head, tail) = std::mem::take(&mut buf).split_at_mut(w[1] - w[0]);
            buf = tail;
            head
        })
        .collect()
}

/// `out = input · Wᵀ + b`, then ReLU if asked.
fn linear_forward(layer: &Linear, input: ArrayView2<f32>, out: &mut Array2<f32>, relu: bool) {
    let dim = out.raw_dim();
    out.assign(&layer.bias.broadcast(dim).expect("bias width matches"));
    add_product_and_relu(layer, input, out, relu);
}

/// [`linear_forward`] into a new array, written once (no zero fill before the bias).
pub(crate) fn linear(layer: &Linear, input: ArrayView2<f32>, relu: bool) -> Array2<f32> {
    let bias = layer.bias.as_slice().expect("standard layout");
    let mut data = Vec::with_capacity(input.nrows() * bias.len());
    for _ in 0..input.nrows() {
        data.extend_from_slice(bias);
    }
    let mut out = Array2::from_shape_vec((input.nrows(), bias.len()), data).expect("rows × fan_out");
    add_product_and_relu(layer, input, &mut out, relu);
    out
}

/// `out += input · Wᵀ`, then ReLU if asked.
fn add_product_and_relu(layer: &Linear, input: ArrayView2<f32>, out: &mut Array2<f32>, relu: bool) {
    matmul(input, layer.weight.t(), out.view_mut(), true);
    if relu {
        out.mapv_inplace(|x| x.max(0.0));
    }
}

/// Gradients of one layer from `dz` (the gradient at its pre-activation output) and its input;
/// writes the gradient at the input into `d_in` unless it is `None`.
fn linear_backward(
    layer: &Linear,
    input: ArrayView2<f32>,
    dz: ArrayView2<f32>,
    grad: &mut Linear,
    d_in: Option<&mut Array2<f32>>,
) {
    matmul(dz.t(), input, grad.weight.view_mut(), false);
    grad.bias.fill(0.0);
    for row in dz.rows() {
        grad.bias.zip_mut_with(&row, |b, &g| *b += g);
    }
    if let Some(d_in) = d_in {
        matmul(dz, layer.weight.view(), d_in.view_mut(), false);
    }
}

/// Hashes every value of every field of the batch to its block offsets, in parallel over fields.
fn hash_batch(model: &Dlrm, batch: &Batch, slots: &mut Vec<Vec<u32>>) {
    let lookup = model.lookup();
    slots.resize_with(batch.fields.len(), Vec::new);
    par::for_each_mut(slots, |f, out| hash_values(lookup, f, &batch.fields[f].values, out));
}

/// The block offsets of `values` of field `f`, `blocks` per value, into `out`.
pub(crate) fn hash_values(lookup: &EmbeddingLookup, f: usize, values: &[u32], out: &mut Vec<u32>) {
    let blocks = lookup.blocks();
    out.resize(values.len() * blocks, 0);
    for (&v, o) in values.iter().zip(out.chunks_exact_mut(blocks)) {
        lookup.block_offsets(f, v, o);
    }
}

/// Pools every sparse field of row `r` into `out[..F·d]` from the hashed block offsets.
fn gather_row(model: &Dlrm, batch: &Batch, slots: &[Vec<u32>], r: usize, out: &mut [f32]) {
    let lookup = model.lookup();
    let (d, blocks) = (model.config.dim, lookup.blocks());
    let ahead = r + PREFETCH_ROWS;
    for (f, (vals, spec)) in batch.fields.iter().zip(&model.config.fields).enumerate() {
        if ahead < batch.rows {
            let (lo, hi) = (vals.offsets[ahead] as usize, vals.offsets[ahead + 1] as usize);
            lookup.prefetch(&model.embedding, &slots[f][lo * blocks..hi * blocks]);
        }
        let e = &mut out[f * d..(f + 1) * d];
        e.fill(0.0);
        let (lo, hi) = (vals.offsets[r] as usize, vals.offsets[r + 1] as usize);
        lookup.pool(&model.embedding, &slots[f][lo * blocks..hi * blocks], pooling_scale(spec.kind, hi - lo), e);
    }
}

/// How many rows ahead a gather prefetches its embedding blocks (`W` is read at random and does
/// not fit in L2).
pub(crate) const PREFETCH_ROWS: usize = 8;

#[inline]
pub(crate) fn pooling_scale(kind: FieldKind, n: usize) -> f32 {
    match kind {
        FieldKind::BagMean if n > 0 => 1.0 / n as f32,
        _ => 1.0,
    }
}

/// Writes the first `lead` values of `vectors` (`n × d`; the bottom output, or nothing without
/// one), then the strict lower triangle of their pairwise dots.
#[inline]
fn interact_row(vectors: &[f32], d: usize, lead: usize, out: &mut [f32]) {
    out[..lead].copy_from_slice(&vectors[..lead]);
    let n = vectors.len() / d;
    let mut k = lead;
    for i in 1..n {
        let vi = &vectors[i * d..(i + 1) * d];
        for j in 0..i {
            let vj = &vectors[j * d..(j + 1) * d];
            out[k] = dot(vi, vj);
            k += 1;
        }
    }
}

/// Dot product with eight independent partial sums, so it vectorizes.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Backward of [`interact_row`]: `d_vectors = ∂L/∂vectors` from `d_out = ∂L/∂out`.
#[inline]
fn interact_row_backward(vectors: &[f32], d_out: &[f32], d: usize, lead: usize, d_vectors: &mut [f32]) {
    d_vectors.fill(0.0);
    d_vectors[..lead].copy_from_slice(&d_out[..lead]);
    let n = vectors.len() / d;
    let mut k = lead;
    for i in 1..n {
        let (before, from_i) = d_vectors.split_at_mut(i * d);
        let dvi = &mut from_i[..d];
        let vi = &vectors[i * d..(i + 1) * d];
        for j in 0..i {
            let g = d_out[k];
            k += 1;
            let vj = &vectors[j * d..(j + 1) * d];
            let dvj = &mut before[j * d..(j + 1) * d];
            for t in 0..d {
                dvi[t] += g * vj[t];
                dvj[t] += g * vi[t];
            }
        }
    }
}

impl Dlrm {
    /// Forward pass over a validated batch; returns the logits (also kept in `ws`).
    pub fn forward<'w>(&self, batch: &Batch, ws: &'w mut Workspace) -> &'w [f32] {
        let cfg = &self.config;
        let (rows, d, nd, lead) = (batch.rows, cfg.dim, cfg.dense.len(), cfg.bottom_width());
        ws.ensure(self, rows);

        if let Some(x0) = ws.bottom.first_mut() {
            let x0 = x0.as_slice_mut().expect("standard layout");
            for (x, &raw) in x0.iter_mut().zip(&batch.dense[..rows * nd]) {
                *x = cfg.dense_transform.apply(raw);
            }
        }
        for (k, layer) in self.bottom.iter().enumerate() {
            let (inp, out) = ws.bottom.split_at_mut(k + 1);
            linear_forward(layer, inp[k].view(), &mut out[0], true);
        }

        let width = cfg.interacting() * d;
        if let Some(bottom_out) = ws.bottom.last() {
            ws.vectors.slice_mut(s![.., ..lead]).assign(bottom_out);
        }
        hash_batch(self, batch, &mut ws.slots);
        let slots = &ws.slots;
        let vectors = ws.vectors.as_slice_mut().expect("standard layout");
        for_each_row(vectors, width, |r, v| gather_row(self, batch, slots, r, &mut v[lead..]));

        let vectors = ws.vectors.as_slice().expect("standard layout");
        let top_in = ws.top[0].as_slice_mut().expect("standard layout");
        for_each_row(top_in, cfg.top[0], |r, out| interact_row(&vectors[r * width..(r + 1) * width], d, lead, out));

        let last = self.top.len() - 1;
        for (k, layer) in self.top.iter().enumerate() {
            let (inp, out) = ws.top.split_at_mut(k + 1);
            linear_forward(layer, inp[k].view(), &mut out[0], k < last);
        }
        ws.logits()
    }

    /// Backward pass after [`Dlrm::forward`] on the same batch. `d_logits[r]` is `∂L/∂logit_r`.
    /// Overwrites the MLP gradients and adds into the (cleared) embedding gradient.
    pub fn backward(&self, batch: &Batch, ws: &mut Workspace, d_logits: &[f32], grads: &mut Gradients) {
        self.backward_mlp(batch, ws, d_logits, grads);
        grads.embedding.add_by_parts(|part| self.scatter_embedding_grad(batch, ws, part));
    }

    /// The backward pass up to the pooled embeddings: overwrites the MLP gradients and leaves the
    /// gradient of every pooled vector in `ws` for [`Dlrm::scatter_embedding_grad`].
    pub fn backward_mlp(&self, batch: &Batch, ws: &mut Workspace, d_logits: &[f32], grads: &mut Gradients) {
        let cfg = &self.config;
        let (rows, d, lead) = (batch.rows, cfg.dim, cfg.bottom_width());
        assert_eq!(ws.rows, rows, "backward needs the workspace of the forward pass on this batch");

        let top_n = self.top.len();
        ws.d_top[top_n].as_slice_mut().expect("standard layout").copy_from_slice(&d_logits[..rows]);
        for k in (0..top_n).rev() {
            let (lo, hi) = ws.d_top.split_at_mut(k + 1);
            linear_backward(&self.top[k], ws.top[k].view(), hi[0].view(), &mut grads.top[k], Some(&mut lo[k]));
            if k > 0 {
                relu_mask(&mut lo[k], &ws.top[k]);
            }
        }

        let width = cfg.interacting() * d;
        let vectors = ws.vectors.as_slice().expect("standard layout");
        let d_top_in = ws.d_top[0].as_slice().expect("standard layout");
        let top_w = cfg.top[0];
        for_each_row(ws.d_vectors.as_slice_mut().expect("standard layout"), width, |r, dv| {
            let v = &vectors[r * width..(r + 1) * width];
            interact_row_backward(v, &d_top_in[r * top_w..(r + 1) * top_w], d, lead, dv)
        });

        let bottom_n = self.bottom.len();
        if bottom_n == 0 {
            return;
        }
        ws.d_bottom[bottom_n].assign(&ws.d_vectors.slice(s![.., ..lead]));
        relu_mask(&mut ws.d_bottom[bottom_n], &ws.bottom[bottom_n]);
        for k in (0..bottom_n).rev() {
            let (lo, hi) = ws.d_bottom.split_at_mut(k + 1);
            let d_in = (k > 0).then_some(&mut lo[k]);
            linear_backward(&self.bottom[k], ws.bottom[k].view(), hi[0].view(), &mut grads.bottom[k], d_in);
            if k > 0 {
                relu_mask(&mut lo[k], &ws.bottom[k]);
            }
        }
    }

    /// Adds the `W` gradient of a batch whose [`Dlrm::backward_mlp`] left `ws`, in `part`'s slots.
    /// Rows go in order, so the sum per slot does not depend on how slots are cut into parts.
    pub fn scatter_embedding_grad(&self, batch: &Batch, ws: &Workspace, part: &mut GradPart) {
        let cfg = &self.config;
        let (d, width) = (cfg.dim, cfg.interacting() * cfg.dim);
        let (z, blocks) = (self.lookup().block_len(), self.lookup().blocks());
        let dv = ws.d_vectors.as_slice().expect("standard layout");
        for r in 0..batch.rows {
            for (f, (vals, spec)) in batch.fields.iter().zip(&cfg.fields).enumerate() {
                let at = r * width + cfg.field_vector(f) * d;
                let g = &dv[at..at + d];
                let (lo, hi) = (vals.offsets[r] as usize, vals.offsets[r + 1] as usize);
                let scale = pooling_scale(spec.kind, hi - lo);
                for starts in ws.slots[f][lo * blocks..hi * blocks].chunks_exact(blocks) {
                    for (grad, &start) in g.chunks(z).zip(starts) {
                        part.add_block(start as usize, scale, grad);
                    }
                }
            }
        }
    }
}

/// Zeroes gradients where the ReLU output was not positive (row-parallel where enabled).
fn relu_mask(grad: &mut Array2<f32>, act: &Array2<f32>) {
    let width = grad.ncols();
    let act = act.as_slice().expect("standard layout");
    for_each_row(grad.as_slice_mut().expect("standard layout"), width, |r, g| {
        for (g, &a) in g.iter_mut().zip(&act[r * width..(r + 1) * width]) {
            *g = if a > 0.0 { *g } else { 0.0 }; // a select, not a branch, so it vectorizes
        }
    });
}

/// Mean binary cross-entropy of `logits` against `labels`; writes `∂loss/∂logit` into `d_logits`.
pub fn bce_with_logits(logits: &[f32], labels: &[f32], d_logits: &mut [f32]) -> f64 {
    let n = logits.len() as f64;
    let mut loss = 0.0f64;
    for ((&z, &y), g) in logits.iter().zip(labels).zip(d_logits.iter_mut()) {
        let z64 = z as f64;
        loss += z64.max(0.0) - z64 * y as f64 + (-z64.abs()).exp().ln_1p();
        *g = ((sigmoid(z) - y) as f64 / n) as f32;
    }
    loss / n
}

#[inline]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}
