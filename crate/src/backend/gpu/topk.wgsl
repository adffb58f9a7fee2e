// Per-workgroup top-k: each workgroup sorts TOPK_SPAN (1024) logits in workgroup memory
// (bitonic, best first: higher logit, then lower index) and writes its best `keep` as (logit
// bits, index) pairs. The host merges the winners of every workgroup, so only those are read back.

// p: TopkParams: the prelude (contract.rs).
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> winners: array<u32>;

var<workgroup> keys: array<f32, TOPK_SPAN>;
var<workgroup> ids: array<u32, TOPK_SPAN>;

fn before(a: u32, b: u32) -> bool {
    return keys[a] > keys[b] || (keys[a] == keys[b] && ids[a] < ids[b]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = wg.x * TOPK_SPAN;
    for (var t = lid; t < TOPK_SPAN; t += 256u) {
        let g = base + t;
        if (g < p.n) {
            keys[t] = logits[g];
            ids[t] = g;
        } else {
            keys[t] = -3.4028234663852886e38; // exactly -f32::MAX: Chrome (Tint) rejects literals past it
            ids[t] = 0xffffffffu;
        }
    }
    for (var size = 2u; size <= TOPK_SPAN; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            workgroupBarrier();
            for (var t = lid; t < TOPK_SPAN / 2u; t += 256u) {
                let lo = 2u * stride * (t / stride) + (t % stride);
                let hi = lo + stride;
                let best_first = (lo & size) == 0u;
                if (select(before(lo, hi), before(hi, lo), best_first)) {
                    let kl = keys[lo];
                    keys[lo] = keys[hi];
                    keys[hi] = kl;
                    let i = ids[lo];
                    ids[lo] = ids[hi];
                    ids[hi] = i;
                }
            }
        }
    }
    workgroupBarrier();
    for (var t = lid; t < p.keep; t += 256u) {
        let o = 2u * (wg.x * p.keep + t);
        winners[o] = bitcast<u32>(keys[t]);
        winners[o + 1u] = ids[t];
    }
}
