// Gathers and pools the embeddings of a list of fields for a range of rows: one thread per
// (row, field), summing each value's blocks in value order (the CPU's order); mean fields scale
// by 1 / count. Writes vectors[row][vec_base + field][0..d]. Each value's hash work that does not
// depend on the block is done once (hash.wgsl's walk).

// p: EmbedParams, FieldEntry: the prelude (contract.rs).

@group(0) @binding(1) var<storage, read> fields: array<FieldEntry>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> vals: array<u32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> vectors: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    let fi = gid.y;
    if (r >= p.rows || fi >= p.nlist) {
        return;
    }
    let e = fields[fi];
    let row = p.row_start + r;
    var beg = row;
    var end = row + 1u;
    if (e.offsets_base != ONE_PER_ROW) {
        beg = offsets[e.offsets_base + row];
        end = offsets[e.offsets_base + row + 1u];
    }
    let dst = (r * p.nvec + p.vec_base + fi) * p.d;
    if (end == beg) {
        for (var t = 0u; t < p.d; t += 1u) {
            vectors[dst + t] = 0.0;
        }
        return;
    }
    var scale = 1.0;
    if (e.mean == 1u) {
        scale = 1.0 / f32(end - beg);
    }
    for (var i = beg; i < end; i += 1u) {
        let v = vals[e.values_base + i];
        let key = global_key(p.key_mode, e, v);
        var walk = walk_begin(p.kind, p.range, p.d, e, p.key_mode, v, key);
        for (var c = 0u; c < p.blocks; c += 1u) {
            let o = walk_next(&walk);
            let lo = c * p.block_len;
            let hi = min(lo + p.block_len, p.d);
            // The first value writes (0 + x, as the CPU's sum from zero), the others add.
            if (i == beg) {
                for (var t = lo; t < hi; t += 1u) {
                    vectors[dst + t] = scale * w[o + t - lo];
                }
            } else {
                for (var t = lo; t < hi; t += 1u) {
                    vectors[dst + t] += scale * w[o + t - lo];
                }
            }
        }
    }
}
