//! The compute pipelines, built once per backend: each kernel's WGSL with its prelude
//! ([`Shader`]), typed by its parameter struct so a dispatch cannot pass another kernel's.

use super::contract::{
    DenseParams, EmbedParams, FoldParams, IndicesParams, InteractParams, LayerParams, Mirrored, Shader, TopkParams,
};
use std::marker::PhantomData;

const HASH: &str = include_str!("hash.wgsl");
const EMBED: &str = include_str!("embed.wgsl");
const INDICES: &str = include_str!("indices.wgsl");
const LAYER: &str = include_str!("layer.wgsl");
const GEMM: &str = include_str!("gemm.wgsl");
const GEMV: &str = include_str!("gemv.wgsl");
const DENSE: &str = include_str!("dense.wgsl");
const INTERACT: &str = include_str!("interact.wgsl");
const FOLD: &str = include_str!("fold.wgsl");
const TOPK: &str = include_str!("topk.wgsl");

/// The GEMM's output tiles: 128×128 (256 threads) for layers that fill them, 64×64 (64 threads)
/// for short or narrow ones (`gemm.wgsl`'s TM = TN).
pub(super) const BIG_TILE: u32 = 128;
pub(super) const SMALL_TILE: u32 = 64;

/// The k-slice the big GEMM stages: 16 (2 × 16 × 33 vec4s of workgroup memory) where the
/// adapter allows it, else 8 (WebGPU's default limit is 16 KiB).
pub(super) fn big_tile_k(max_workgroup_storage: u32) -> u32 {
    if max_workgroup_storage >= 2 * 16 * (BIG_TILE / 4 + 1) * 16 { 16 } else { 8 }
}

/// A compute pipeline and the layout of its bind group 0.
pub(super) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub label: &'static str,
}

impl Pipeline {
    pub(super) fn new(device: &wgpu::Device, shader: Shader) -> Pipeline {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.label),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(shader.label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Pipeline { pipeline, layout, label: shader.label }
    }
}

/// A kernel taking parameters `P`: a [`Pipeline`] (or, in the contract's tests, what they build
/// from its shader).
pub(super) struct Kernel<P, K = Pipeline> {
    pub built: K,
    params: PhantomData<fn(P)>,
}

impl<P: Mirrored, K> Kernel<P, K> {
    fn new(build: &mut impl FnMut(Shader) -> K, label: &'static str, variant: &[(&str, u32)], parts: &[&str]) -> Self {
        Kernel { built: build(Shader::new::<P>(label, variant, parts)), params: PhantomData }
    }
}

/// Every kernel, the one list of them.
pub(super) struct Kernels<K = Pipeline> {
    pub embed: Kernel<EmbedParams, K>,
    pub indices: Kernel<IndicesParams, K>,
    /// The GEMM on big and on small tiles, and the one-output layer.
    pub gemm: Kernel<LayerParams, K>,
    pub gemm64: Kernel<LayerParams, K>,
    pub gemv: Kernel<LayerParams, K>,
    pub dense: Kernel<DenseParams, K>,
    pub interact: Kernel<InteractParams, K>,
    pub fold: Kernel<FoldParams, K>,
    pub topk: Kernel<TopkParams, K>,
}

impl Kernels {
    pub(super) fn new(device: &wgpu::Device, big_tile_k: u32) -> Kernels {
        Kernels::build(big_tile_k, |shader| Pipeline::new(device, shader))
    }
}

impl<K> Kernels<K> {
    /// Every kernel through `build`, from its full source.
    pub(super) fn build(big_tile_k: u32, mut build: impl FnMut(Shader) -> K) -> Kernels<K> {
        let b = &mut build;
        let tile = |t: u32, k: u32| [("TM", t), ("TN", t), ("TK", k)];
        Kernels {
            embed: Kernel::new(b, "embed", &[], &[HASH, EMBED]),
            indices: Kernel::new(b, "indices", &[], &[HASH, INDICES]),
            gemm: Kernel::new(b, "gemm", &tile(BIG_TILE, big_tile_k), &[LAYER, GEMM]),
            gemm64: Kernel::new(b, "gemm64", &tile(SMALL_TILE, 16), &[LAYER, GEMM]),
            gemv: Kernel::new(b, "gemv", &[], &[LAYER, GEMV]),
            dense: Kernel::new(b, "dense", &[], &[DENSE]),
            interact: Kernel::new(b, "interact", &[], &[INTERACT]),
            fold: Kernel::new(b, "fold", &[], &[FOLD]),
            topk: Kernel::new(b, "topk", &[], &[TOPK]),
        }
    }
}
