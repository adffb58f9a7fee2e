//! Diversity re-ranking (MMR): strength 0 is the plain ranking exactly, a list dominated by one
//! category becomes varied, however far above the rest its scores stand (relevance is by rank),
//! the result is a consistent top-k, and bad options are clear errors.

mod common;

use common::{random_model, random_request};
use pocketrec::diversity::{self, Diversity};
use pocketrec::rank::{self, Candidates, Ranked};
use pocketrec::{Dlrm, Error, FieldKind, FieldValues};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::HashSet;

fn diversity(strength: f32, features: &[&str]) -> Diversity {
    Diversity { strength, features: features.iter().map(|s| s.to_string()).collect() }
}

/// A random model whose field `f0` is categorical and left to the candidates, with values in
/// `0..categories`: the "category" of each candidate.
fn request_with_categories(rng: &mut StdRng, rows: usize, categories: u32) -> (Dlrm, rank::Context, Candidates) {
    let mut model = random_model(rng);
    model.config.fields[0].kind = FieldKind::Categorical;
    let model = Dlrm::from_parts(model.config.clone(), model.embedding, model.bottom, model.top).unwrap();
    let (mut ctx, mut cands) = random_request(rng, &model.config, rows);
    if ctx.fields[0].is_some() {
        ctx.fields[0] = None;
        cands.fields.insert(0, FieldValues::single(vec![0; rows]));
    }
    cands.fields[0] = FieldValues::single((0..rows).map(|_| rng.random_range(0..categories)).collect());
    (model, ctx, cands)
}

fn indices(r: &[Ranked]) -> Vec<usize> {
    r.iter().map(|r| r.index).collect()
}

#[test]
fn strength_zero_is_the_plain_ranking_exactly() {
    let mut rng = StdRng::seed_from_u64(21);
    for case in 0..100 {
        let rows = rng.random_range(1..80);
        let (model, ctx, cands) = request_with_categories(&mut rng, rows, 3);
        let k = rng.random_range(0..30);
        let plain = rank::rank(&model, &ctx, &cands, k).unwrap();
        for features in [&[][..], &["f0"][..]] {
            let diverse = diversity::rank(&model, &ctx, &cands, k, &diversity(0.0, features)).unwrap();
            assert_eq!(diverse, plain, "case {case}, features {features:?}");
        }
    }
}

#[test]
fn a_list_dominated_by_one_category_becomes_varied() {
    // 100 candidates: the 60 most relevant are all category 7, the rest cycle through 0..4.
    let rows = 100;
    let category: Vec<u32> = (0..rows as u32).map(|i| if i < 60 { 7 } else { i % 4 }).collect();
    let cands = Candidates { rows, fields: vec![FieldValues::single(category.clone())] };
    let pool: Vec<Ranked> = rank::top_k(&(0..rows).map(|i| 3.0 - i as f32 * 0.03).collect::<Vec<_>>(), rows);
    let k = 10;
    let distinct = |r: &[Ranked]| r.iter().map(|r| category[r.index]).collect::<HashSet<_>>().len();
    assert_eq!(distinct(&diversity::rerank(&pool, &cands, &[0], 0.0, k)), 1);
    let mut last = 1;
    for strength in [0.3, 0.6, 1.0] {
        let top = diversity::rerank(&pool, &cands, &[0], strength, k);
        assert_eq!(top[0], pool[0], "the most relevant candidate always comes first");
        let n = distinct(&top);
        assert!(n > 1 && n >= last, "strength {strength}: {n} categories in the top {k}, {last} before");
        last = n;
    }
    assert_eq!(last, 5, "strength 1 takes every category before repeating one");

    // Attributes as a bag: candidates alike in every attribute are spread, Jaccard in between.
    let bag = FieldValues {
        offsets: (0..=rows as u32).map(|i| 2 * i).collect(),
        values: (0..rows as u32).flat_map(|i| if i < 60 { [1, 2] } else { [1, 10 + i] }).collect(),
    };
    let cands = Candidates { rows, fields: vec![FieldValues::single(category.clone()), bag] };
    let top = diversity::rerank(&pool, &cands, &[0, 1], 0.5, k);
    assert!(distinct(&top) > 1);
}

#[test]
fn the_diverse_top_k_is_a_consistent_subset_of_the_candidates() {
    let mut rng = StdRng::seed_from_u64(22);
    for case in 0..100 {
        let rows = rng.random_range(1..120);
        let (model, ctx, cands) = request_with_categories(&mut rng, rows, 4);
        let k = rng.random_range(1..20);
        let logits = rank::logits(&model, &ctx, &cands).unwrap();
        let category = &cands.fields[0].values;
        let pool = rank::rank(&model, &ctx, &cands, rows).unwrap();
        for strength in [0.2, 0.7, 1.0] {
            let top = diversity::rank(&model, &ctx, &cands, k, &diversity(strength, &["f0"])).unwrap();
            assert_eq!(top.len(), k.min(rows), "case {case}");
            let unique: HashSet<usize> = indices(&top).into_iter().collect();
            assert_eq!(unique.len(), top.len(), "case {case}: an index repeats");
            for r in &top {
                assert!(r.index < rows, "case {case}: index {} out of range", r.index);
                assert_eq!(r.logit, logits[r.index], "case {case}: the logit is the candidate's own");
                assert_eq!(r.score, 1.0 / (1.0 + (-r.logit).exp()));
            }
            assert_eq!(top[0], pool[0], "case {case}: the best candidate stays first");
            if strength == 1.0 {
                let pooled: HashSet<u32> = pool.iter().map(|r| category[r.index]).collect();
                let shown: HashSet<u32> = top.iter().map(|r| category[r.index]).collect();
                assert_eq!(shown.len(), pooled.len().min(k), "case {case}: every category before a repeat");
            }
        }
    }
}

/// The shapes of the demo's lists: a new user's scores are flat (the time of day lifts one
/// category by about 0.25 logit), three liked books stand about 2 logits above the rest. One
/// strength varies both: the lifted category stays the most common with 3 others at least, and
/// the further it stands above the rest, the more of the list it keeps.
#[test]
fn the_top_category_makes_room_and_keeps_more_the_stronger_the_taste() {
    // 400 candidates: the 60 best are category 20 (`lift` logits above the rest), the rest cycle
    // through 0..20; each has its own attribute, so two of a category are half alike, as in the demo.
    let rows = 400;
    let category: Vec<u32> = (0..rows as u32).map(|i| if i < 60 { 20 } else { i % 20 }).collect();
    let own = FieldValues::single((0..rows as u32).collect());
    let cands = Candidates { rows, fields: vec![FieldValues::single(category.clone()), own] };
    let (k, strength) = (24, 0.5);
    let top_category = |lift: f32| {
        let logits: Vec<f32> =
            (0..rows).map(|i| if i < 60 { lift - i as f32 * 1e-3 } else { -(i as f32) * 5e-3 }).collect();
        let top = diversity::rerank(&rank::top_k(&logits, rows), &cands, &[0, 1], strength, k);
        let mut counts = [0usize; 21];
        top.iter().for_each(|r| counts[category[r.index] as usize] += 1);
        let most = counts.iter().enumerate().max_by_key(|&(c, n)| (n, std::cmp::Reverse(c))).unwrap().0;
        assert_eq!(most, 20, "lift {lift}: the lifted category stays the most common: {counts:?}");
        let others = counts.iter().filter(|&&n| n > 0).count() - 1;
        assert!(others >= 3, "lift {lift}: 3 other categories at least: {counts:?}");
        counts[20]
    };
    let (flat, taste, stronger) = (top_category(0.25), top_category(2.0), top_category(3.0));
    assert!(flat < taste && taste < stronger && stronger < k, "{flat} < {taste} < {stronger} < {k}");
}

/// MMR by its definition: every step scores every candidate left (the library stops its scan early).
fn mmr_by_definition(pool: &[Ranked], category: &[u32], strength: f32, k: usize) -> Vec<usize> {
    let k = k.min(pool.len());
    let (hi, lo) = (pool[0].logit, pool[pool.len() - 1].logit);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let relevance = |i: usize| 0.8 / (1.0 + 2.0 * i as f32 / k as f32) + 0.2 * (pool[i].logit - lo) / span;
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k {
        let value = |i: usize| {
            let near = picked
                .iter()
                .map(|&p| f32::from(category[pool[p].index] == category[pool[i].index]))
                .fold(0.0, f32::max);
            (1.0 - strength) * relevance(i) - strength * near
        };
        let left = (0..pool.len()).filter(|i| !picked.contains(i));
        let best =
            left.fold(None, |b: Option<usize>, i| if b.is_none_or(|b| value(i) > value(b)) { Some(i) } else { b });
        picked.push(best.unwrap());
    }
    picked.iter().map(|&p| pool[p].index).collect()
}

#[test]
fn the_early_stopping_scan_equals_mmr_by_definition() {
    let mut rng = StdRng::seed_from_u64(24);
    for case in 0..300 {
        let rows = rng.random_range(1..200);
        let categories = rng.random_range(1..6);
        let category: Vec<u32> = (0..rows).map(|_| rng.random_range(0..categories)).collect();
        let logits: Vec<f32> = (0..rows).map(|_| rng.random_range(-3.0..3.0)).collect();
        let pool = rank::top_k(&logits, rows);
        let cands = Candidates { rows, fields: vec![FieldValues::single(category.clone())] };
        let k = rng.random_range(1..30);
        let strength = [0.05, 0.3, 0.5, 0.9, 1.0][case % 5];
        let fast = indices(&diversity::rerank(&pool, &cands, &[0], strength, k));
        assert_eq!(fast, mmr_by_definition(&pool, &category, strength, k), "case {case}, strength {strength}");
    }
}

#[test]
fn bad_options_are_errors_naming_the_problem() {
    let mut rng = StdRng::seed_from_u64(23);
    let (model, mut ctx, cands) = request_with_categories(&mut rng, 10, 3);
    let err = |d: Diversity, ctx: &rank::Context, cands: &Candidates| match diversity::rank(&model, ctx, cands, 5, &d) {
        Err(Error::Request(m)) => m,
        other => panic!("expected a request error for {d:?}, got {other:?}"),
    };
    for s in [f32::NAN, -0.1, 1.5, f32::INFINITY] {
        let m = err(diversity(s, &["f0"]), &ctx, &cands);
        assert!(m.contains("diversity strength") && m.contains("[0, 1]"), "{m}");
    }
    let m = err(diversity(0.5, &["nope"]), &ctx, &cands);
    assert!(m.contains("\"nope\"") && m.contains("not a field") && m.contains("\"f0\""), "{m}");
    let m = err(diversity(0.5, &[]), &ctx, &cands);
    assert!(m.contains("at least one feature"), "{m}");
    // A field the context gives is the same for every candidate: no use for diversity.
    let name = model.config.fields[1].name.clone();
    let mut cands = cands.clone();
    if ctx.fields[1].is_none() {
        cands.fields.remove(1);
    }
    ctx.fields[1] = Some(vec![1; if model.config.fields[1].kind == FieldKind::Categorical { 1 } else { 2 }]);
    let m = err(diversity(0.5, &[&name]), &ctx, &cands);
    assert!(m.contains("context field"), "{m}");
}
