// c[c_off + r·ldc + n] = act(Σ_k a[a_off + r·lda + k] · w[n·k_len + k] + bias[n]) for r < m, n < n_len:
// a dense layer on a block of rows, weights stored [out, in] as in the model file.
//
// Tiled: each workgroup computes a TM×TN tile of c from TK-wide slices of a and w staged in
// workgroup memory, k-major, as vec4s of 4 rows (a) or 4 outputs (w), with one vec4 of padding
// per k so the staging stores of 8 consecutive k hit distinct banks. Each of the
// (TM/8)·(TN/8) threads owns 8×8 outputs: rows 4·ty + 0..3 and TM/2 + 4·ty + 0..3, columns
// 4·tx + 0..3 and TN/2 + 4·tx + 0..3, so per k it reads 4 vec4s for 64 multiply-adds and a warp's
// reads are broadcasts or consecutive vec4s. The host builds two tile sizes (pipelines.rs: 128×128
// with 256 threads for the big layers, 64×64 with 64 threads for narrow or short ones, plan.rs
// picks per shape), with TK = 8 where 16 would pass the adapter's workgroup memory.
//
// Staging reads are coalesced (16 consecutive k of a row per 16 lanes). Rows past m (of a) and
// outputs past n (of w) are read clamped to the last valid one: they only feed outputs that are
// never stored. Columns past k are zero.

// Params and bindings: layer.wgsl.

// TM, TN, TK: the prelude, per build of the kernel (pipelines.rs).
const THREADS: u32 = (TM / 8u) * (TN / 8u);
// vec4s per k in the staged tiles (one of padding).
const SA: u32 = TM / 4u + 1u;
const SW: u32 = TN / 4u + 1u;

var<workgroup> a_tile: array<vec4<f32>, TK * SA>;
var<workgroup> w_tile: array<vec4<f32>, TK * SW>;

// Column `col` of rows r..r + 3 of a (rows clamped below m), zero past column k.
fn quad_a(r: u32, col: u32) -> vec4<f32> {
    if (col >= p.k) {
        return vec4<f32>(0.0);
    }
    let last = p.m - 1u;
    let b = p.a_off + col;
    return vec4<f32>(
        a[b + min(r, last) * p.lda],
        a[b + min(r + 1u, last) * p.lda],
        a[b + min(r + 2u, last) * p.lda],
        a[b + min(r + 3u, last) * p.lda],
    );
}

// Column `col` of rows r..r + 3 of w (rows clamped below n), zero past column k.
fn quad_w(r: u32, col: u32) -> vec4<f32> {
    if (col >= p.k) {
        return vec4<f32>(0.0);
    }
    let last = p.n - 1u;
    return vec4<f32>(
        w[min(r, last) * p.k + col],
        w[min(r + 1u, last) * p.k + col],
        w[min(r + 2u, last) * p.k + col],
        w[min(r + 3u, last) * p.k + col],
    );
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let tx = lid % (TN / 8u);
    let ty = lid / (TN / 8u);
    // Accumulators: rows 4·ty + i (i < 4) and TM/2 + 4·ty + i - 4 (i >= 4); columns 4·tx + 0..3
    // in lo[i], TN/2 + 4·tx + 0..3 in hi[i].
    var lo0 = vec4<f32>(0.0); var lo1 = vec4<f32>(0.0); var lo2 = vec4<f32>(0.0); var lo3 = vec4<f32>(0.0);
    var lo4 = vec4<f32>(0.0); var lo5 = vec4<f32>(0.0); var lo6 = vec4<f32>(0.0); var lo7 = vec4<f32>(0.0);
    var hi0 = vec4<f32>(0.0); var hi1 = vec4<f32>(0.0); var hi2 = vec4<f32>(0.0); var hi3 = vec4<f32>(0.0);
    var hi4 = vec4<f32>(0.0); var hi5 = vec4<f32>(0.0); var hi6 = vec4<f32>(0.0); var hi7 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Slot s stages k = s % TK of the 4 rows (outputs) 4·(s / TK)..: 16 lanes read 16
        // consecutive k of a row.
        for (var s = lid; s < TK * TM / 4u; s += THREADS) {
            let kk = s % TK;
            let g = s / TK;
            a_tile[kk * SA + g] = quad_a(row0 + 4u * g, k0 + kk);
        }
        for (var s = lid; s < TK * TN / 4u; s += THREADS) {
            let kk = s % TK;
            let g = s / TK;
            w_tile[kk * SW + g] = quad_w(col0 + 4u * g, k0 + kk);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk += 1u) {
            let a0 = a_tile[kk * SA + ty];
            let a1 = a_tile[kk * SA + ty + TM / 8u];
            let w0 = w_tile[kk * SW + tx];
            let w1 = w_tile[kk * SW + tx + TN / 8u];
            lo0 = fma(vec4<f32>(a0.x), w0, lo0);
            hi0 = fma(vec4<f32>(a0.x), w1, hi0);
            lo1 = fma(vec4<f32>(a0.y), w0, lo1);
            hi1 = fma(vec4<f32>(a0.y), w1, hi1);
            lo2 = fma(vec4<f32>(a0.z), w0, lo2);
            hi2 = fma(vec4<f32>(a0.z), w1, hi2);
            lo3 = fma(vec4<f32>(a0.w), w0, lo3);
            hi3 = fma(vec4<f32>(a0.w), w1, hi3);
            lo4 = fma(vec4<f32>(a1.x), w0, lo4);
            hi4 = fma(vec4<f32>(a1.x), w1, hi4);
            lo5 = fma(vec4<f32>(a1.y), w0, lo5);
            hi5 = fma(vec4<f32>(a1.y), w1, hi5);
            lo6 = fma(vec4<f32>(a1.z), w0, lo6);
            hi6 = fma(vec4<f32>(a1.z), w1, hi6);
            lo7 = fma(vec4<f32>(a1.w), w0, lo7);
            hi7 = fma(vec4<f32>(a1.w), w1, hi7);
        }
        workgroupBarrier();
    }
    let r0 = row0 + 4u * ty;
    let r1 = row0 + TM / 2u + 4u * ty;
    let n0 = col0 + 4u * tx;
    let n1 = col0 + TN / 2u + 4u * tx;
    store(r0, n0, lo0);
    store(r0, n1, hi0);
    store(r0 + 1u, n0, lo1);
    store(r0 + 1u, n1, hi1);
    store(r0 + 2u, n0, lo2);
    store(r0 + 2u, n1, hi2);
    store(r0 + 3u, n0, lo3);
    store(r0 + 3u, n1, hi3);
    store(r1, n0, lo4);
    store(r1, n1, hi4);
    store(r1 + 1u, n0, lo5);
    store(r1 + 1u, n1, hi5);
    store(r1 + 2u, n0, lo6);
    store(r1 + 2u, n1, hi6);
    store(r1 + 3u, n0, lo7);
    store(r1 + 3u, n1, hi7);
}

// Writes act(v + bias) at row r, columns n0..n0 + 3, inside the output.
fn store(r: u32, n0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    let row = p.c_off + r * p.ldc;
    if (n0 + 3u < p.n) {
        var x = v + vec4<f32>(bias[n0], bias[n0 + 1u], bias[n0 + 2u], bias[n0 + 3u]);
        if (p.relu == 1u) {
            x = max(x, vec4<f32>(0.0));
        }
        c[row + n0] = x.x;
        c[row + n0 + 1u] = x.y;
        c[row + n0 + 2u] = x.z;
        c[row + n0 + 3u] = x.w;
        return;
    }
    for (var j = 0u; j < 4u; j += 1u) {
        let n = n0 + j;
        if (n < p.n) {
            var x = v[j] + bias[n];
            if (p.relu == 1u) {
                x = max(x, 0.0);
            }
            c[row + n] = x;
        }
    }
}
