//! Ranking candidates for one context, with the context's work done once per request.
//!
//! A request is a context (dense features plus the sparse fields shared by every candidate: the
//! user, the time, the device) and candidates (the remaining sparse fields, one row each). In the
//! DLRM every vector interacts with every other, and the first top layer is linear in the
//! interaction, so everything that depends on the context alone folds into a per-request plan:
//!
//! - the bottom MLP (when the model has dense features) and the context embeddings run once;
//! - the context-context dots and the bottom output, times their columns of the first top layer
//!   `W1`, plus its bias, become one vector `c`;
//! - each candidate-context dot `e_q · v_c` enters the first layer as `W1[:, (q,c)] (e_q · v_c)`,
//!   so summing over the context vectors gives `A_q e_q` with `A_q = Σ_c W1[:, (q,c)] v_cᵀ`
//!   (`[top1, d]`), computed once.
//!
//! Per candidate the first layer is then `relu(c + W1' x)`, where `x` holds the candidate
//! embeddings and their dots among themselves only, and `W1' = [A_1 .. A_nq | W1[:, qq pairs]]`.
//! For kaggle with 6 candidate fields, `x` has 6·16 + 15 = 111 columns instead of 367, and the
//! bottom MLP disappears from the per-candidate cost. The rest of the top MLP runs per candidate.

use crate::Error;
use crate::batch::{Batch, FieldValues, offsets_ok};
use crate::config::{FieldKind, ModelConfig};
use crate::gemm::matmul;
use crate::model::{Dlrm, Linear};
use crate::passes::{PREFETCH_ROWS, hash_values, linear, pooling_scale, sigmoid};
use ndarray::{Array1, Array2, ArrayView1, s};

/// The fields shared by every candidate of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// All dense features, raw (the model applies its dense transform).
    pub dense: Vec<f32>,
    /// One entry per config field: `Some(values)` is a context field, `None` a candidate field.
    pub fields: Vec<Option<Vec<u32>>>,
}

/// The candidate rows of one request: one [`FieldValues`] per `None` field of the context, in
/// config order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidates {
    pub rows: usize,
    pub fields: Vec<FieldValues>,
}

/// One ranked candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    /// Row of the candidate in [`Candidates`].
    pub index: usize,
    pub logit: f32,
    /// `sigmoid(logit)`, the click probability.
    pub score: f32,
}

/// Config indices of the candidate fields (the `None` fields of a context).
pub fn candidate_fields(context: &Context) -> Vec<usize> {
    context.fields.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(f, _)| f).collect()
}

/// Checks a request against a model's schema. Errors name the field and say what is wrong.
pub fn validate(cfg: &ModelConfig, context: &Context, candidates: &Candidates) -> Result<(), Error> {
    let bad = |m: String| Err(Error::Request(m));
    let nd = cfg.dense.len();
    if context.dense.len() != nd {
        return bad(format!("the context has {} dense values, the model needs {nd}", context.dense.len()));
    }
    if let Some(i) = context.dense.iter().position(|x| !x.is_finite()) {
        return bad(format!("dense feature {:?} of the context is not finite", cfg.dense[i]));
    }
    if context.fields.len() != cfg.fields.len() {
        return bad(format!(
            "the context lists {} sparse fields, the model has {}: give every field, null for a candidate field",
            context.fields.len(),
            cfg.fields.len()
        ));
    }
    for (spec, vals) in cfg.fields.iter().zip(&context.fields) {
        if let Some(v) = vals
            && spec.kind == FieldKind::Categorical
            && v.len() != 1
        {
            return bad(format!("categorical context field {:?} needs exactly one value, got {}", spec.name, v.len()));
        }
    }
    let cand = candidate_fields(context);
    if candidates.fields.len() != cand.len() {
        let names: Vec<&str> = cand.iter().map(|&f| cfg.fields[f].name.as_str()).collect();
        return bad(format!(
            "the candidates give {} fields, the context leaves {} to them: {names:?}",
            candidates.fields.len(),
            cand.len()
        ));
    }
    let rows = candidates.rows;
    for (&f, vals) in cand.iter().zip(&candidates.fields) {
        let spec = &cfg.fields[f];
        let o = &vals.offsets;
        if o.len() != rows + 1 || o[0] != 0 || o[rows] as usize != vals.values.len() {
            return bad(format!(
                "candidate field {:?} needs {} offsets starting at 0 and ending at its {} values",
                spec.name,
                rows + 1,
                vals.values.len()
            ));
        }
        // One branch-free pass for the usual case; the scans below only to name what is wrong.
        if offsets_ok(spec.kind, o) {
            continue;
        }
        if o.windows(2).any(|w| w[0] > w[1]) {
            return bad(format!("candidate field {:?} has decreasing offsets", spec.name));
        }
        if spec.kind == FieldKind::Categorical
            && let Some(r) = o.windows(2).position(|w| w[1] - w[0] != 1)
        {
            return bad(format!("categorical candidate field {:?} needs exactly one value in row {r}", spec.name));
        }
    }
    Ok(())
}

/// Every candidate as a full row: what ranking must agree with, and a way to score a request
/// with [`Dlrm::forward`]. Assumes a validated request.
pub fn full_rows(cfg: &ModelConfig, context: &Context, candidates: &Candidates) -> Batch {
    let mut batch = Batch::with_schema(cfg.fields.len());
    let mut cand = candidates.fields.iter();
    let per_field: Vec<Result<&Vec<u32>, &FieldValues>> =
        context.fields.iter().map(|v| v.as_ref().ok_or_else(|| cand.next().expect("validated"))).collect();
    for r in 0..candidates.rows {
        let sparse = per_field.iter().map(|v| match v {
            Ok(ctx) => ctx.as_slice(),
            Err(c) => c.row(r),
        });
        batch.push_row(&context.dense, sparse, None);
    }
    batch
}

/// Column of the first top layer that holds the dot of interacting vectors `i > j`, as laid out
/// by the interaction: after the `lead` values of the bottom output
/// ([`ModelConfig::bottom_width`]), vectors numbered as [`ModelConfig::field_vector`] says.
#[inline]
pub fn pair_column(lead: usize, i: usize, j: usize) -> usize {
    debug_assert!(i > j);
    lead + i * (i - 1) / 2 + j
}

/// The context's share of the model for one request (see the module docs).
#[derive(Clone, Debug)]
pub struct ContextPlan {
    /// Config indices of the candidate fields.
    pub candidate_fields: Vec<usize>,
    /// `[top1, nq·d + nq(nq−1)/2]`: the folded first layer applied to each candidate's `x`.
    pub first: Linear,
}

impl ContextPlan {
    /// Runs the context-only work. Assumes a validated request.
    pub fn new(model: &Dlrm, context: &Context) -> Self {
        let cfg = &model.config;
        let (d, lead) = (cfg.dim, cfg.bottom_width());
        let vectors = context_vectors(model, context);
        // Interacting vectors of the context (index, values) and of the candidates (index).
        let ctx: Vec<(usize, &[f32])> =
            vectors.iter().enumerate().filter_map(|(g, v)| Some((g, v.as_deref()?))).collect();
        let cand: Vec<usize> = (0..vectors.len()).filter(|&g| vectors[g].is_none()).collect();

        let w1 = &model.top[0].weight;
        let top1 = w1.nrows();
        let nq = cand.len();
        let width = nq * d + nq * nq.saturating_sub(1) / 2;

        // The context's own share of the first layer's input (bottom output, context-context
        // dots, zero elsewhere) folds into the bias: c = b1 + W1 t.
        let mut t = Array1::<f32>::zeros(w1.ncols());
        if lead > 0 {
            t.slice_mut(s![..lead]).assign(&ArrayView1::from(ctx[0].1));
        }
        for (a, &(gi, vi)) in ctx.iter().enumerate() {
            for &(gj, vj) in &ctx[..a] {
                t[pair_column(lead, gi, gj)] = dot(vi, vj);
            }
        }
        let bias = &model.top[0].bias + &w1.dot(&t);

        // A_q = G_q V: G_q gathers the columns of W1 that pair candidate q with each context
        // vector, V stacks the context vectors.
        let v = Array2::from_shape_fn((ctx.len(), d), |(c, i)| ctx[c].1[i]);
        let mut weight = Array2::<f32>::zeros((top1, width));
        let mut g = Array2::<f32>::zeros((top1, ctx.len()));
        for (q, &gq) in cand.iter().enumerate() {
            for (c, &(gc, _)) in ctx.iter().enumerate() {
                g.column_mut(c).assign(&w1.column(pair_column(lead, gq.max(gc), gq.min(gc))));
            }
            matmul(g.view(), v.view(), weight.slice_mut(s![.., q * d..(q + 1) * d]), false);
        }
        // Candidate-candidate dots keep their own columns of W1.
        let mut k = nq * d;
        for a in 0..nq {
            for b in 0..a {
                weight.column_mut(k).assign(&w1.column(pair_column(lead, cand[a], cand[b])));
                k += 1;
            }
        }
        ContextPlan { candidate_fields: candidate_fields(context), first: Linear { weight, bias } }
    }

    /// Width of a candidate's first-layer input `x`.
    pub fn input_width(&self) -> usize {
        self.first.fan_in()
    }
}

/// The interacting vectors of a request, numbered as [`ModelConfig::field_vector`]: `Some` for the
/// bottom output (when there is one) and the context fields, `None` for the candidate fields.
fn context_vectors(model: &Dlrm, context: &Context) -> Vec<Option<Vec<f32>>> {
    let cfg = &model.config;
    let mut vectors = Vec::with_capacity(cfg.interacting());
    if cfg.has_bottom() {
        let mut x = Array2::from_shape_fn((1, cfg.dense.len()), |(_, i)| cfg.dense_transform.apply(context.dense[i]));
        for layer in &model.bottom {
            x = linear(layer, x.view(), true);
        }
        vectors.push(Some(x.into_raw_vec_and_offset().0));
    }
    for (f, (spec, vals)) in cfg.fields.iter().zip(&context.fields).enumerate() {
        vectors.push(vals.as_ref().map(|vals| {
            let mut e = vec![0.0; cfg.dim];
            let scale = pooling_scale(spec.kind, vals.len());
            for &v in vals {
                model.lookup().accumulate(&model.embedding, f, v, scale, &mut e);
            }
            e
        }));
    }
    vectors
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Candidates scored per chunk, to bound memory on large requests.
const CHUNK_ROWS: usize = 4096;

/// Logits of every candidate, in candidate order, with the context's work done once.
/// Validates the request; no candidates give an empty result.
pub fn logits(model: &Dlrm, context: &Context, candidates: &Candidates) -> Result<Vec<f32>, Error> {
    validate(&model.config, context, candidates)?;
    if candidates.rows == 0 {
        return Ok(Vec::new());
    }
    let plan = ContextPlan::new(model, context);
    let mut logits = Vec::with_capacity(candidates.rows);
    let mut start = 0;
    while start < candidates.rows {
        let end = (start + CHUNK_ROWS).min(candidates.rows);
        logits.extend(chunk_logits(model, &plan, candidates, start..end));
        start = end;
    }
    Ok(logits)
}

/// Per-candidate work for rows `range`: gather, candidate dots, folded first layer, rest of the top.
fn chunk_logits(model: &Dlrm, plan: &ContextPlan, candidates: &Candidates, range: std::ops::Range<usize>) -> Vec<f32> {
    let cfg = &model.config;
    let d = cfg.dim;
    let nq = plan.candidate_fields.len();
    let rows = range.len();
    let lookup = model.lookup();
    let blocks = lookup.blocks();
    // Block offsets of every value of the chunk first, so the gathers below do not wait on hashing.
    let starts: Vec<Vec<u32>> = plan
        .candidate_fields
        .iter()
        .zip(&candidates.fields)
        .map(|(&f, vals)| {
            let o = &vals.offsets;
            let mut out = Vec::new();
            hash_values(lookup, f, &vals.values[o[range.start] as usize..o[range.end] as usize], &mut out);
            out
        })
        .collect();
    let mut x = Array2::<f32>::zeros((rows, plan.input_width()));
    let mut e = vec![0.0f32; nq * d];
    let row_starts = |q: usize, r: usize| {
        let o = &candidates.fields[q].offsets;
        let base = o[range.start] as usize;
        &starts[q][(o[r] as usize - base) * blocks..(o[r + 1] as usize - base) * blocks]
    };
    for (r, mut xr) in range.clone().zip(x.rows_mut()) {
        if r + PREFETCH_ROWS < range.end {
            (0..nq).for_each(|q| lookup.prefetch(&model.embedding, row_starts(q, r + PREFETCH_ROWS)));
        }
        e.fill(0.0);
        for (q, &f) in plan.candidate_fields.iter().enumerate() {
            let row = row_starts(q, r);
            let scale = pooling_scale(cfg.fields[f].kind, row.len() / blocks);
            lookup.pool(&model.embedding, row, scale, &mut e[q * d..(q + 1) * d]);
        }
        let xr = xr.as_slice_mut().expect("standard layout");
        xr[..nq * d].copy_from_slice(&e);
        let mut k = nq * d;
        for a in 0..nq {
            for b in 0..a {
                xr[k] = dot(&e[a * d..(a + 1) * d], &e[b * d..(b + 1) * d]);
                k += 1;
            }
        }
    }
    let last = model.top.len() - 1;
    let mut h = linear(&plan.first, x.view(), last > 0);
    for (k, layer) in model.top.iter().enumerate().skip(1) {
        h = linear(layer, h.view(), k < last);
    }
    h.into_raw_vec_and_offset().0
}

/// The `k` best candidates by logit, best first; equal logits keep the lower index first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<Ranked> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let order = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx.into_iter().map(|i| Ranked { index: i, logit: logits[i], score: sigmoid(logits[i]) }).collect()
}

/// Merges `(logit, index)` candidates (e.g. per-workgroup winners from the GPU) into the top `k`.
pub fn top_k_of(pairs: &[(f32, u32)], k: usize) -> Vec<Ranked> {
    let mut v: Vec<(f32, u32)> = pairs.to_vec();
    v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.truncate(k);
    v.into_iter().map(|(l, i)| Ranked { index: i as usize, logit: l, score: sigmoid(l) }).collect()
}

/// Ranks a request on the CPU: the `k` best candidates, best first. `k = 0` or no candidates give
/// an empty result; a malformed request gives [`Error::Request`].
pub fn rank(model: &Dlrm, context: &Context, candidates: &Candidates, k: usize) -> Result<Vec<Ranked>, Error> {
    if k == 0 {
        validate(&model.config, context, candidates)?;
        return Ok(Vec::new());
    }
    let logits = logits(model, context, candidates)?;
    Ok(top_k(&logits, k))
}
