// The first slot of every block of (field, value) pairs, through the same functions the
// embedding gather uses: what the bit-exactness tests compare with the CPU.

struct Params {
    n: u32, blocks: u32, kind: u32, range: u32,
    key_mode: u32, d: u32, _p0: u32, _p1: u32,
    _p2: u32, _p3: u32, _p4: u32, _p5: u32,
    _p6: u32, _p7: u32, _p8: u32, _p9: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> fields: array<u32>;
@group(0) @binding(2) var<storage, read> field_of: array<u32>;
@group(0) @binding(3) var<storage, read> vals: array<u32>;
@group(0) @binding(4) var<storage, read_write> slots: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    let fb = field_of[i] * FIELD_WORDS;
    let key = global_key(p.key_mode, fields[fb], fields[fb + 4u], fields[fb + 5u], vals[i]);
    var walk = walk_begin(p.kind, p.range, p.d, fields[fb + 6u], fields[fb + 7u], p.key_mode, vals[i], key);
    for (var c = 0u; c < p.blocks; c += 1u) {
        slots[i * p.blocks + c] = walk_next(&walk);
    }
}
