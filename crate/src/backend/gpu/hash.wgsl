// ROBE-Z slots from (field, value), docs/hash.md (normative), in 32-bit limbs: a line-for-line
// port of `pocketrec::robe::limbs` (the walk below: `limbs::BlockWalk`, tested there against the
// u64 reference), so it matches `RobeHash::block_offset` bit for bit. Put before the shaders that
// read embeddings.

// P, TWO32_MOD_P, R1-R3, the KIND_* and KEY_* codes and FieldEntry come from the prelude
// (contract.rs).

fn add_mod(a: u32, b: u32) -> u32 {
    let s = a + b; // both < 2^31
    return select(s, s - P, s >= P);
}

fn mul_mod(a: u32, b: u32) -> u32 {
    var r = 0u;
    for (var bit = 31u; bit > 0u; bit -= 1u) {
        r = add_mod(r, r);
        if (((b >> (bit - 1u)) & 1u) == 1u) {
            r = add_mod(r, a);
        }
    }
    return r;
}

fn key_mod_p(lo: u32, hi: u32) -> u32 {
    return add_mod(mul_mod(hi % P, TWO32_MOD_P), lo % P);
}

// The global key (lo, hi) of value v of field e.
fn global_key(key_mode: u32, e: FieldEntry, v: u32) -> vec2<u32> {
    if (key_mode == KEY_RAW) {
        return vec2<u32>(v, e.field);
    }
    let lo = e.key_lo + v;
    return vec2<u32>(lo, e.key_hi + select(0u, 1u, lo < v));
}

// First slot of block c of value v with key (lo, hi): ROBE-Z per variant, or the row of a full
// table (dictionary ids index it directly; raw values are hashed to a row), as EmbeddingLookup.
fn block_start(kind: u32, range: u32, d: u32, full_base: u32, full_rows: u32, key_mode: u32, v: u32, key: vec2<u32>, c: u32) -> u32 {
    let xm = key_mod_p(key.x, key.y);
    if (kind == KIND_FULL) {
        var row = v % full_rows;
        if (key_mode == KEY_RAW) {
            row = add_mod(mul_mod(xm, R3), R1) % full_rows;
        }
        return full_base + row * d;
    }
    var mul = R3;
    var add = R1;
    var block = c % P;
    if (kind == KIND_NEW_ROBEZ) {
        mul = R1;
        add = R3;
        block = block + 1u;
        if (block >= P) {
            block = block - P;
        }
    }
    let block_term = mul_mod(block, R2);
    if (kind == KIND_INDEPENDENT) {
        mul = add_mod(mul, block_term); // the key's multiplier changes per block
    }
    let h = add_mod(add_mod(mul_mod(xm, mul), block_term), add);
    return h % range;
}

// block_start for blocks 0, 1, 2, ... of one value in turn, with what does not depend on the block
// computed once per value: the key's residue and (but for `independent`) its product with the
// multiplier. Block c's term c · R2 mod P (new-robez: (c + 1) · R2) grows by R2 mod P per block,
// the same residues mul_mod gives, so the same slots bit for bit.
struct BlockWalk {
    kind: u32,
    range: u32,
    // xm · mul mod P; for `independent` xm itself; for full tables the row's first slot.
    key_term: u32,
    block_term: u32,
}

fn walk_begin(
    kind: u32, range: u32, d: u32, e: FieldEntry, key_mode: u32, v: u32, key: vec2<u32>,
) -> BlockWalk {
    if (kind == KIND_FULL) {
        let row_start = block_start(kind, range, d, e.full_base, e.full_rows, key_mode, v, key, 0u);
        return BlockWalk(kind, range, row_start, 0u);
    }
    let xm = key_mod_p(key.x, key.y);
    if (kind == KIND_NEW_ROBEZ) {
        return BlockWalk(kind, range, mul_mod(xm, R1), R2);
    }
    if (kind == KIND_INDEPENDENT) {
        return BlockWalk(kind, range, xm, 0u);
    }
    return BlockWalk(kind, range, mul_mod(xm, R3), 0u);
}

// The current block's first slot; moves to the next block.
fn walk_next(w: ptr<function, BlockWalk>) -> u32 {
    let kind = (*w).kind;
    if (kind == KIND_FULL) {
        return (*w).key_term;
    }
    let bt = (*w).block_term;
    (*w).block_term = add_mod(bt, R2);
    if (kind == KIND_NEW_ROBEZ) {
        return add_mod(add_mod((*w).key_term, bt), R3) % (*w).range;
    }
    var key_term = (*w).key_term;
    if (kind == KIND_INDEPENDENT) {
        key_term = mul_mod(key_term, add_mod(R3, bt));
    }
    return add_mod(add_mod(key_term, bt), R1) % (*w).range;
}
