// c[c_off + r·ldc + n] = act(Σ_k a[a_off + r·lda + k] · w[n·k_len + k] + bias[n]) for r < m, n < n_len:
// a dense layer on a block of rows, weights stored [out, in] as in the model file. Tiled: each
// workgroup computes a 64×64 tile of c from 16-wide slices of a and w staged in workgroup
// memory; each of its 256 threads owns a 4×4 block of the tile.

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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    // acc_i holds rows ty + 16·i, columns tx + 16·j in lane j: fixed lanes, no dynamic indexing.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var i = 0u; i < 4u; i += 1u) {
            let idx = lid + i * 256u;
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
            let av = vec4<f32>(a_tile[kk * TM + ty], a_tile[kk * TM + ty + 16u],
                               a_tile[kk * TM + ty + 32u], a_tile[kk * TM + ty + 48u]);
            let wv = vec4<f32>(w_tile[kk * TN + tx], w_tile[kk * TN + tx + 16u],
                               w_tile[kk * TN + tx + 32u], w_tile[kk * TN + tx + 48u]);
            acc0 = fma(vec4<f32>(av.x), wv, acc0);
            acc1 = fma(vec4<f32>(av.y), wv, acc1);
            acc2 = fma(vec4<f32>(av.z), wv, acc2);
            acc3 = fma(vec4<f32>(av.w), wv, acc3);
        }
        workgroupBarrier();
    }
    store(row0 + ty, col0 + tx, acc0);
    store(row0 + ty + 16u, col0 + tx, acc1);
    store(row0 + ty + 32u, col0 + tx, acc2);
    store(row0 + ty + 48u, col0 + tx, acc3);
}

// Writes act(v[j] + bias) at row r, columns n0 + 16·j, inside the output.
fn store(r: u32, n0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    let row = p.c_off + r * p.ldc;
    let lanes = array<f32, 4>(v.x, v.y, v.z, v.w);
    for (var j = 0u; j < 4u; j += 1u) {
        let n = n0 + 16u * j;
        if (n < p.n) {
            var x = lanes[j] + bias[n];
            if (p.relu == 1u) {
                x = max(x, 0.0);
            }
            c[row + n] = x;
        }
    }
}
