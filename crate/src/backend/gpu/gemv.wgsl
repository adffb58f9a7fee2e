// The one-output dense layer (the top MLP's last): c[c_off + r·ldc] = act(Σ_k a[a_off + r·lda + k]
// · w[k] + bias[0]) for r < m. A 64-wide GEMM tile would compute 63 columns for nothing: here 8
// threads share a row, each summing every 8th k (8 lanes read 8 consecutive floats), and the
// first adds the 8 partial sums; GEMV_ROWS (32) rows per workgroup.

// Params and bindings: layer.wgsl.

const THREADS: u32 = 8u * GEMV_ROWS;
var<workgroup> part: array<f32, THREADS>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lane = lid % 8u;
    let r = (wg.x + wg.y * MAX_GROUPS) * GEMV_ROWS + lid / 8u;
    var s = 0.0;
    if (r < p.m) {
        let row = p.a_off + r * p.lda;
        for (var k = lane; k < p.k; k += 8u) {
            s = fma(a[row + k], w[k], s);
        }
    }
    part[lid] = s;
    workgroupBarrier();
    if (lane == 0u && r < p.m) {
        var x = ((part[lid] + part[lid + 1u]) + (part[lid + 2u] + part[lid + 3u]))
            + ((part[lid + 4u] + part[lid + 5u]) + (part[lid + 6u] + part[lid + 7u])) + bias[0];
        if (p.relu == 1u) {
            x = max(x, 0.0);
        }
        c[p.c_off + r * p.ldc] = x;
    }
}
