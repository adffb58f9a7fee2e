// The interface of a dense layer's kernels (gemm.wgsl, gemv.wgsl), prepended to each by mod.rs:
// c[c_off + r·ldc + j] = act(Σ_i a[a_off + r·lda + i] · w[j·k + i] + bias[j]) for r < m, j < n, i < k:
// weights stored [out, in] as in the model file, act = ReLU when relu = 1.

struct Params {
    m: u32, n: u32, k: u32, lda: u32,
    ldc: u32, relu: u32, a_off: u32, c_off: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
    _p4: u32, _p5: u32, _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
