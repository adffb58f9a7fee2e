// c[c_off + r·ldc + n] = act(Σ_k a[a_off + r·lda + k] · w[n·k_len + k] + bias[n]) for r < m, n < n_len:
// a dense layer on a block of rows, weights stored [out, in] as in the model file. Tiled: each
// workgroup computes a 64×64 tile of c from 16-wide slices of a and w staged in workgroup
// memory; each of its 64 threads owns 8×8 outputs of the tile (rows and columns 8 apart).

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

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> w_tile: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let tx = lid % 8u;
    let ty = lid / 8u;
    // Row ty + 8·i of the tile, columns tx + 8·j: lanes j of lo (j < 4) and hi (j >= 4).
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var i = 0u; i < 16u; i += 1u) {
            let idx = lid + i * 64u;
            let r = idx / TK;
            let kk = idx % TK;
            let gk = k0 + kk;
            var va = 0.0;
            if (row0 + r < p.m && gk < p.k) {
                va = a[p.a_off + (row0 + r) * p.lda + gk];
            }
            a_tile[kk * TM + r] = va;
            var vw = 0.0;
            if (col0 + r < p.n && gk < p.k) {
                vw = w[(col0 + r) * p.k + gk];
            }
            w_tile[kk * TN + r] = vw;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk += 1u) {
            let wb = kk * TN + tx;
            let w_lo = vec4<f32>(w_tile[wb], w_tile[wb + 8u], w_tile[wb + 16u], w_tile[wb + 24u]);
            let w_hi = vec4<f32>(w_tile[wb + 32u], w_tile[wb + 40u], w_tile[wb + 48u], w_tile[wb + 56u]);
            let ab = kk * TM + ty;
            lo[0] = fma(vec4<f32>(a_tile[ab]), w_lo, lo[0]);
            hi[0] = fma(vec4<f32>(a_tile[ab]), w_hi, hi[0]);
            lo[1] = fma(vec4<f32>(a_tile[ab + 8u]), w_lo, lo[1]);
            hi[1] = fma(vec4<f32>(a_tile[ab + 8u]), w_hi, hi[1]);
            lo[2] = fma(vec4<f32>(a_tile[ab + 16u]), w_lo, lo[2]);
            hi[2] = fma(vec4<f32>(a_tile[ab + 16u]), w_hi, hi[2]);
            lo[3] = fma(vec4<f32>(a_tile[ab + 24u]), w_lo, lo[3]);
            hi[3] = fma(vec4<f32>(a_tile[ab + 24u]), w_hi, hi[3]);
            lo[4] = fma(vec4<f32>(a_tile[ab + 32u]), w_lo, lo[4]);
            hi[4] = fma(vec4<f32>(a_tile[ab + 32u]), w_hi, hi[4]);
            lo[5] = fma(vec4<f32>(a_tile[ab + 40u]), w_lo, lo[5]);
            hi[5] = fma(vec4<f32>(a_tile[ab + 40u]), w_hi, hi[5]);
            lo[6] = fma(vec4<f32>(a_tile[ab + 48u]), w_lo, lo[6]);
            hi[6] = fma(vec4<f32>(a_tile[ab + 48u]), w_hi, hi[6]);
            lo[7] = fma(vec4<f32>(a_tile[ab + 56u]), w_lo, lo[7]);
            hi[7] = fma(vec4<f32>(a_tile[ab + 56u]), w_hi, hi[7]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 8u; i += 1u) {
        store(row0 + ty + 8u * i, col0 + tx, lo[i]);
        store(row0 + ty + 8u * i, col0 + tx + 32u, hi[i]);
    }
}

// Writes act(v[j] + bias) at row r, columns n0 + 8·j, inside the output.
fn store(r: u32, n0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    let row = p.c_off + r * p.ldc;
    let lanes = array<f32, 4>(v.x, v.y, v.z, v.w);
    for (var j = 0u; j < 4u; j += 1u) {
        let n = n0 + 8u * j;
        if (n < p.n) {
            var x = lanes[j] + bias[n];
            if (p.relu == 1u) {
                x = max(x, 0.0);
            }
            c[row + n] = x;
        }
    }
}
