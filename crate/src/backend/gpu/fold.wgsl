// Context-once: folds a request's context into the first top layer (see `rank.rs`). One thread
// per (unit o, column k) of the folded weight `[top1, width]`; the extra column k = width is the
// folded bias c[o]. Context vector s (0 = the bottom output when the model has one) interacts as
// global vector ctx[s]; candidate vector q as cand[q] (global vector f + 1 for field f, or f
// without a bottom MLP). The top input starts with the `lead` values of the bottom output.

// p: FoldParams: the prelude (contract.rs).
@group(0) @binding(1) var<storage, read> index: array<u32>;   // ctx[nctx] then cand[nq]
@group(0) @binding(2) var<storage, read> ctxv: array<f32>;    // [nctx][d]
@group(0) @binding(3) var<storage, read> w1: array<f32>;      // [top1][top0]
@group(0) @binding(4) var<storage, read> b1: array<f32>;
@group(0) @binding(5) var<storage, read_write> folded: array<f32>; // [top1][width]
@group(0) @binding(6) var<storage, read_write> folded_bias: array<f32>;

// Column of the dot of global vectors i != j in the interaction.
fn pair_column(i: u32, j: u32) -> u32 {
    let hi = max(i, j);
    let lo = min(i, j);
    return p.lead + hi * (hi - 1u) / 2u + lo;
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let o = gid.y;
    if (k > p.width || o >= p.top1) {
        return;
    }
    let wrow = o * p.top0;
    let nqd = p.nq * p.d;
    if (k < nqd) {
        let gq = index[p.nctx + k / p.d];
        let t = k % p.d;
        var s = 0.0;
        for (var c = 0u; c < p.nctx; c += 1u) {
            s += w1[wrow + pair_column(gq, index[c])] * ctxv[c * p.d + t];
        }
        folded[o * p.width + k] = s;
    } else if (k < p.width) {
        var q = k - nqd;
        var a = 1u;
        while (q >= a) {
            q -= a;
            a += 1u;
        }
        folded[o * p.width + k] = w1[wrow + pair_column(index[p.nctx + a], index[p.nctx + q])];
    } else {
        var s = b1[o];
        for (var t = 0u; t < p.lead; t += 1u) {
            s += w1[wrow + t] * ctxv[t];
        }
        for (var a = 1u; a < p.nctx; a += 1u) {
            for (var b = 0u; b < a; b += 1u) {
                var pd = 0.0;
                for (var t = 0u; t < p.d; t += 1u) {
                    pd += ctxv[a * p.d + t] * ctxv[b * p.d + t];
                }
                s += w1[wrow + pair_column(index[a], index[b])] * pd;
            }
        }
        folded_bias[o] = s;
    }
}
