//! Diversity re-ranking: maximal marginal relevance (MMR) over the top of a ranked list.
//!
//! A ranking by click probability alone repeats itself: the few items most like the context fill
//! the whole list (a new user at night sees only games). MMR picks the list greedily, each time
//! the candidate with the best `(1 − λ)·relevance − λ·(its largest similarity to those already
//! picked)`, with `λ` the strength. It is used instead of a per-category cap because it needs no
//! cap to tune per list length, it weighs relevance against similarity (a clearly better item of
//! a repeated category still wins), and its similarity can use several columns at once (category
//! and attributes), where a cap knows one.
//!
//! - Relevance is mostly the candidate's place and partly its score: `0.8 / (1 + 2r/k)` for the
//!   candidate at rank `r` (0 = best) in a request for `k` (it halves at rank `k/2`), plus `0.2 ×`
//!   its logit scaled to `[0, 1]` over all candidates. The first design used scores alone
//!   (probabilities scaled to `[0, 1]`), and the spread of the scores then decided: in the demo a
//!   new user's scores are flat (the time of day lifts one category by about 0.25 logit) while
//!   three liked books lift every book about 2 logits above the rest, so one strength either left
//!   24 books after three liked books (0.3: a new user saw 3 categories) or spread a new user's
//!   list over all 12 categories (0.65). The place makes the first items of any category give way
//!   after a while, whatever the scores; the logit part keeps some of the size of a taste (the
//!   further a category stands above the rest, the later it gives way). On the demo page, at its
//!   default 0.45: a new user sees 9 to 10 categories with the time of day's one first (13 to 16
//!   of 24), and after three liked books 16 to 18 of the 24 are books, beside 5 to 8 other categories.
//! - Similarity is the mean, over the named candidate fields, of the Jaccard index of two
//!   candidates' values (for a categorical field: 1 when equal, else 0).
//! - Every candidate may enter the top (in the demo one category fills the first 400 to 600 of
//!   10,000 items, so a pool of a few `k` could not vary it), but each pick scans down the list
//!   only until relevance alone can no longer win, so the work stays near the top.
//! - Strength 0 is the plain ranking, computed as before with no extra work.

use crate::Error;
use crate::batch::FieldValues;
use crate::config::ModelConfig;
use crate::model::Dlrm;
use crate::rank::{self, Candidates, Context, Ranked};

/// How much variety to trade for relevance, and what makes two candidates alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diversity {
    /// In `[0, 1]`: 0 is the plain ranking; 1 picks by dissimilarity alone after the best.
    pub strength: f32,
    /// Names of candidate fields whose values define similarity (e.g. `["category", "attributes"]`).
    pub features: Vec<String>,
}

impl Diversity {
    /// Checks the options against a request's schema and returns the positions, in
    /// [`Candidates::fields`], of the feature fields. Errors name the problem.
    pub fn feature_fields(&self, cfg: &ModelConfig, context: &Context) -> Result<Vec<usize>, Error> {
        let bad = |m: String| Err(Error::Request(m));
        let s = self.strength;
        if !(0.0..=1.0).contains(&s) {
            return bad(format!("diversity strength must be a number in [0, 1] (0 = plain ranking), got {s}"));
        }
        let candidate_fields = rank::candidate_fields(context);
        let names: Vec<&str> = candidate_fields.iter().map(|&f| cfg.fields[f].name.as_str()).collect();
        if s > 0.0 && self.features.is_empty() {
            return bad(format!("diversity needs at least one feature: name candidate fields among {names:?}"));
        }
        self.features
            .iter()
            .map(|name| match names.iter().position(|n| n == name) {
                Some(q) => Ok(q),
                None if cfg.fields.iter().any(|f| &f.name == name) => Err(Error::Request(format!(
                    "diversity feature {name:?} is a context field, the same for every candidate: name candidate fields among {names:?}"
                ))),
                None => Err(Error::Request(format!(
                    "diversity feature {name:?} is not a field of the model: name candidate fields among {names:?}"
                ))),
            })
            .collect()
    }

    /// How many of the most relevant candidates to rank before re-ranking the top `k`: all of
    /// them with diversity (the re-ranking touches only the top, see [`rerank`]), else `k`.
    pub fn pool(&self, k: usize, rows: usize) -> usize {
        if self.strength == 0.0 { k.min(rows) } else { rows }
    }
}

/// Re-ranks `pool` (best first, as ranking returns it; the scan relies on that order) into the `k` picked by MMR with `strength`,
/// similarity over the candidate fields at positions `fields` (from [`Diversity::feature_fields`]).
/// Each returned candidate keeps its own logit and score, so scores need not decrease down the list.
pub fn rerank(pool: &[Ranked], candidates: &Candidates, fields: &[usize], strength: f32, k: usize) -> Vec<Ranked> {
    let k = k.min(pool.len());
    if strength == 0.0 || k == 0 {
        return pool[..k].to_vec();
    }
    let n = pool.len();
    let (hi, lo) = (pool[0].logit, pool[n - 1].logit);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let relevance = |i: usize| 0.8 / (1.0 + 2.0 * i as f32 / k as f32) + 0.2 * (pool[i].logit - lo) / span;
    // Each touched candidate's values per feature field, sorted and without repeats.
    let mut sets: Vec<Option<Vec<Vec<u32>>>> = vec![None; n];
    let mut nearest = vec![0.0f32; n]; // largest similarity to the first `seen` picks
    let mut seen = vec![0usize; n];
    let mut taken = vec![false; n];
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    while picked.len() < k {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            // Relevance falls down the pool and similarity only lowers a value: once relevance
            // alone cannot beat the best, nothing further down can (ties keep the earlier).
            let bound = (1.0 - strength) * relevance(i);
            if best.is_some_and(|(_, b)| bound <= b) {
                break;
            }
            if sets[i].is_none() {
                sets[i] = Some(fields.iter().map(|&q| value_set(&candidates.fields[q], pool[i].index)).collect());
            }
            for &p in &picked[seen[i]..] {
                // Every pick was scanned, so its sets exist.
                let (a, b) = (sets[i].as_deref().unwrap_or_default(), sets[p].as_deref().unwrap_or_default());
                let total: f32 = a.iter().zip(b).map(|(x, y)| jaccard(x, y)).sum();
                nearest[i] = nearest[i].max(total / fields.len() as f32);
            }
            seen[i] = picked.len();
            let value = bound - strength * nearest[i];
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let (p, _) = best.expect("fewer picks than candidates");
        taken[p] = true;
        picked.push(p);
    }
    picked.into_iter().map(|p| pool[p]).collect()
}

/// Ranks a request on the CPU with diversity: the plain [`rank::rank`] at strength 0, else the
/// MMR re-ranking of its pool. Bad options give [`Error::Request`] naming the problem.
pub fn rank(
    model: &Dlrm,
    context: &Context,
    candidates: &Candidates,
    k: usize,
    diversity: &Diversity,
) -> Result<Vec<Ranked>, Error> {
    rank::validate(&model.config, context, candidates)?;
    let fields = diversity.feature_fields(&model.config, context)?;
    let pool = rank::rank(model, context, candidates, diversity.pool(k, candidates.rows))?;
    Ok(rerank(&pool, candidates, &fields, diversity.strength, k))
}

fn value_set(values: &FieldValues, row: usize) -> Vec<u32> {
    let mut v = values.row(row).to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// `|a ∩ b| / |a ∪ b|` of two sorted sets; two empty sets are alike (1).
fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - both;
    if union == 0 { 1.0 } else { both as f32 / union as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_sets() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[1], &[1]), 1.0);
        assert_eq!(jaccard(&[1], &[2]), 0.0);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[], &[5]), 0.0);
    }
}
