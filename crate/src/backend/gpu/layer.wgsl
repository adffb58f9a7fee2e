// The interface of a dense layer's kernels (gemm.wgsl, gemv.wgsl), put before each by pipelines.rs:
// c[c_off + r·ldc + j] = act(Σ_i a[a_off + r·lda + i] · w[j·k + i] + bias[j]) for r < m, j < n, i < k:
// weights stored [out, in] as in the model file, act = ReLU when relu = 1.

// p: LayerParams: the prelude (contract.rs).
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
