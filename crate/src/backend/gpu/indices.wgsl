// The first slot of every block of (field, value) pairs, through the same functions the
// embedding gather uses: what the bit-exactness tests compare with the CPU.

// p: IndicesParams, FieldEntry: the prelude (contract.rs).

@group(0) @binding(1) var<storage, read> fields: array<FieldEntry>;
@group(0) @binding(2) var<storage, read> field_of: array<u32>;
@group(0) @binding(3) var<storage, read> vals: array<u32>;
@group(0) @binding(4) var<storage, read_write> slots: array<u32>;

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * MAX_GROUPS * GROUP;
    if (i >= p.n) {
        return;
    }
    let e = fields[field_of[i]];
    let key = global_key(p.key_mode, e, vals[i]);
    var walk = walk_begin(p.kind, p.range, p.d, e, p.key_mode, vals[i], key);
    for (var c = 0u; c < p.blocks; c += 1u) {
        slots[i * p.blocks + c] = walk_next(&walk);
    }
}
