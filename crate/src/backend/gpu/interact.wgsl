// The top MLP's input for a block of rows: the first `ncopy` vectors copied, then the dot of each
// listed pair (i, j). Full rows copy the bottom output and list every pair i > j; context-once
// copies the candidate embeddings and lists the candidate-candidate pairs.

// p: InteractParams: the prelude (contract.rs).
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<storage, read> vectors: array<f32>;
@group(0) @binding(3) var<storage, read_write> top_in: array<f32>;

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let r = gid.y;
    if (col >= p.width || r >= p.rows) {
        return;
    }
    let vb = r * p.nvec * p.d;
    let ncopy = p.ncopy * p.d;
    if (col < ncopy) {
        top_in[r * p.width + col] = vectors[vb + col];
        return;
    }
    let q = col - ncopy;
    let i = vb + pairs[2u * q] * p.d;
    let j = vb + pairs[2u * q + 1u] * p.d;
    var s = 0.0;
    for (var t = 0u; t < p.d; t += 1u) {
        s += vectors[i + t] * vectors[j + t];
    }
    top_in[r * p.width + col] = s;
}
