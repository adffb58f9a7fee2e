//! Dispatch planning: each kernel's parameters and workgroup grid for a shape, and the
//! dispatches of a whole MLP, as [`Dispatch`]es a request submits in order.

use super::Layout;
use super::contract::{
    DenseParams, EmbedParams, GEMV_ROWS, GROUP, LayerParams, MAX_GROUPS, Mirrored, PARAM_BYTES, param_words,
};
use super::pipelines::{BIG_TILE, Kernel, Kernels, Pipeline, SMALL_TILE};

/// One dispatch: a pipeline, its parameters (the words of its uniform slot), its storage buffers
/// in binding order (from 1), and its workgroup grid.
pub(super) struct Dispatch<'a> {
    pub pipeline: &'a Pipeline,
    pub params: [u32; PARAM_BYTES / 4],
    pub buffers: Vec<&'a wgpu::Buffer>,
    pub groups: (u32, u32),
}

impl<'a> Dispatch<'a> {
    /// A dispatch of `kernel`, which takes exactly `P`.
    pub(super) fn new<P: Mirrored>(
        kernel: &'a Kernel<P>,
        params: P,
        buffers: Vec<&'a wgpu::Buffer>,
        groups: (u32, u32),
    ) -> Self {
        Dispatch { pipeline: &kernel.built, params: param_words(&params), buffers, groups }
    }
}

/// A grid of `groups` workgroups, split over y past the per-dimension limit (the kernels index
/// `x + y · MAX_GROUPS`).
fn grid(groups: usize) -> (u32, u32) {
    let g = groups.max(1);
    let max = MAX_GROUPS as usize;
    if g <= max { (g as u32, 1) } else { (MAX_GROUPS, g.div_ceil(max) as u32) }
}

/// A grid of `n` invocations in workgroups of [`GROUP`].
pub(super) fn linear_groups(n: usize) -> (u32, u32) {
    grid(n.div_ceil(GROUP as usize))
}

/// The dense transform (`log1p` or identity) of `n` values, buffers `[raw, transformed]`.
pub(super) fn dense_transform<'a>(
    kernel: &'a Kernel<DenseParams>,
    log1p: bool,
    buffers: [&'a wgpu::Buffer; 2],
    n: usize,
) -> Dispatch<'a> {
    Dispatch::new(kernel, DenseParams { n: n as u32, transform: log1p as u32 }, buffers.to_vec(), linear_groups(n))
}

/// The gather of `[rows, fields listed, d, vectors per row, first vector, first row]`, with
/// buffers `[field table, offsets, values, embedding, vectors out]`.
pub(super) fn embed<'a>(
    kernel: &'a Kernel<EmbedParams>,
    l: &Layout,
    buffers: [&'a wgpu::Buffer; 5],
    dims: [usize; 6],
) -> Dispatch<'a> {
    let [rows, nlist, d, nvec, vec_base, row_start] = dims.map(|x| x as u32);
    let params = EmbedParams {
        rows,
        nlist,
        d,
        nvec,
        vec_base,
        kind: l.kind as u32,
        block_len: l.block_len,
        blocks: l.blocks,
        range: l.range,
        key_mode: l.key_mode as u32,
        row_start,
    };
    Dispatch::new(kernel, params, buffers.to_vec(), (rows.div_ceil(GROUP), nlist))
}

/// The dispatch of one dense layer, buffers `[a, w, bias, c]`: the one-output kernel for n = 1,
/// big tiles when both m and n fill most of one, else small tiles.
pub(super) fn linear<'a>(k: &'a Kernels, p: LayerParams, buffers: [&'a wgpu::Buffer; 4]) -> Dispatch<'a> {
    let (m, n) = (p.m, p.n);
    let fills = BIG_TILE * 3 / 4;
    let (kernel, groups) = if n == 1 {
        (&k.gemv, grid(m.div_ceil(GEMV_ROWS) as usize))
    } else if m >= fills && n >= fills {
        (&k.gemm, (n.div_ceil(BIG_TILE), m.div_ceil(BIG_TILE)))
    } else {
        (&k.gemm64, (n.div_ceil(SMALL_TILE), m.div_ceil(SMALL_TILE)))
    };
    Dispatch::new(kernel, p, buffers.to_vec(), groups)
}

/// An MLP's layers: the first (the folded one when ranking), then the rest, and their widths.
pub(super) struct Mlp<'a> {
    pub first: (&'a wgpu::Buffer, &'a wgpu::Buffer),
    pub rest: &'a [(wgpu::Buffer, wgpu::Buffer)],
    /// The input's width, then each layer's output width.
    pub widths: (usize, &'a [usize]),
    /// ReLU after the last layer too (else after every layer but the last).
    pub relu_last: bool,
}

/// Where an MLP runs: `rows` rows of input `(buffer, element offset)` with row stride the input
/// width, hidden layers ping-ponging through `act`, the last layer writing `(buffer, row offset,
/// row stride)`.
pub(super) struct Rows<'a> {
    pub rows: usize,
    pub input: (&'a wgpu::Buffer, usize),
    pub act: [&'a wgpu::Buffer; 2],
    pub out: (&'a wgpu::Buffer, usize, usize),
}

impl<'a> Mlp<'a> {
    /// The weight and bias buffers of a model's MLP; `relu_last` as [`Mlp::relu_last`]. `None`
    /// for an MLP with no layers (the bottom MLP of a model without dense features).
    pub(super) fn of(
        layers: &'a [(wgpu::Buffer, wgpu::Buffer)],
        widths: &'a [usize],
        relu_last: bool,
    ) -> Option<Mlp<'a>> {
        let ((w, b), rest) = layers.split_first()?;
        Some(Mlp { first: (w, b), rest, widths: (widths[0], &widths[1..]), relu_last })
    }

    /// Appends the dispatches of every layer on `at`.
    pub(super) fn plan(&self, ds: &mut Vec<Dispatch<'a>>, kernels: &'a Kernels, at: &Rows<'a>) {
        let (n_in, outs) = self.widths;
        let layers = std::iter::once(self.first).chain(self.rest.iter().map(|(w, b)| (w, b)));
        let last = outs.len() - 1;
        for (i, (w, b)) in layers.enumerate() {
            let k = if i == 0 { n_in } else { outs[i - 1] };
            let n = outs[i];
            let (a, a_off) = if i == 0 { at.input } else { (at.act[(i - 1) % 2], 0) };
            let (c, c_off, ldc) =
                if i == last { (at.out.0, at.out.1 * at.out.2, at.out.2) } else { (at.act[i % 2], 0, n) };
            let relu = i < last || self.relu_last;
            let [m, n, k, lda, ldc, relu, a_off, c_off] =
                [at.rows, n, k, k, ldc, relu as usize, a_off, c_off].map(|x| x as u32);
            let p = LayerParams { m, n, k, lda, ldc, relu, a_off, c_off };
            ds.push(linear(kernels, p, [a, w, b, c]));
        }
    }
}
