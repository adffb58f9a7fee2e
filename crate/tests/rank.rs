//! Context-once ranking against full rows through `Dlrm::forward`, top-k order, and bad requests.

mod common;

use common::reference::Reference;
use common::{assert_close, forward, random_model, random_model_with, random_request, request_split};
use pocketrec::rank::{self, Candidates, Context};
use pocketrec::{BackendChoice, Batch, Dlrm, FieldKind, FieldValues, HashVariant, ModelConfig, Scorer};
use rand::{Rng, SeedableRng, rngs::StdRng};

#[test]
fn context_once_equals_full_rows() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut worst = 0.0f32;
    for case in 0..200 {
        let model = random_model(&mut rng);
        let rows = rng.random_range(1..40);
        let (ctx, cands) = random_request(&mut rng, &model.config, rows);
        let once = rank::logits(&model, &ctx, &cands).unwrap();
        let full = forward(&model, &rank::full_rows(&model.config, &ctx, &cands));
        for (x, y) in once.iter().zip(&full) {
            worst = worst.max((x - y).abs() / (y.abs() + 1.0));
        }
        assert_close(&once, &full, 1e-5, &format!("case {case}"));
    }
    eprintln!("worst |once - full| / (|full| + 1) = {worst:e}");
}

/// Without dense features there is no bottom output: the context is its fields alone, and a
/// request may have no context vector at all (every field a candidate's) or no candidate field.
#[test]
fn context_once_equals_full_rows_without_dense_features() {
    let mut rng = StdRng::seed_from_u64(17);
    for case in 0..120 {
        let model = random_model_with(&mut rng, false);
        assert!(model.bottom.is_empty() && model.config.dense.is_empty());
        let rows = rng.random_range(1..30);
        let (ctx, cands) = request_split(&mut rng, &model.config, rows, case % 3);
        let full_rows = rank::full_rows(&model.config, &ctx, &cands);
        let full = forward(&model, &full_rows);
        let reference: Vec<f32> =
            Reference::of(&model).logits(&model, &full_rows).into_iter().map(|x| x as f32).collect();
        assert_close(&full, &reference, 1e-5, &format!("case {case}: forward vs the f64 reference"));
        let once = rank::logits(&model, &ctx, &cands).unwrap();
        assert_close(&once, &full, 1e-5, &format!("case {case}: context-once vs full rows"));
    }
}

#[test]
fn context_once_on_the_benchmark_split() {
    // The split on a kaggle-shaped model: dense + first 20 fields in the context.
    let (dense, fields) = pocketrec::config::criteo_schema();
    let cfg = ModelConfig::preset(
        pocketrec::Preset::Kaggle,
        dense,
        fields,
        4_000_000,
        4,
        HashVariant::UmaV1,
        pocketrec::StoredDtype::F32,
    )
    .unwrap();
    let model = Dlrm::init(cfg, 3).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let ctx = Context {
        dense: (0..13).map(|_| rng.random_range(0.0..100.0)).collect(),
        fields: (0..26).map(|f| (f < 20).then(|| vec![rng.random()])).collect(),
    };
    let rows = 5000; // more than one chunk
    let cands = Candidates {
        rows,
        fields: (0..6).map(|_| FieldValues::single((0..rows).map(|_| rng.random()).collect())).collect(),
    };
    let once = rank::logits(&model, &ctx, &cands).unwrap();
    let full = forward(&model, &rank::full_rows(&model.config, &ctx, &cands));
    assert_close(&once, &full, 1e-5, "kaggle split");
    let top = rank::rank(&model, &ctx, &cands, 10).unwrap();
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| full[b].total_cmp(&full[a]).then(a.cmp(&b)));
    assert_eq!(top.iter().map(|r| r.index).collect::<Vec<_>>(), order[..10]);
}

#[test]
fn top_k_orders_by_logit_then_index() {
    let logits = [0.5, 2.0, 0.5, -1.0, 2.0, 0.5];
    let top = rank::top_k(&logits, 4);
    assert_eq!(top.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 4, 0, 2]);
    assert!((top[0].score - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-7);
    assert_eq!(rank::top_k(&logits, 100).len(), 6);
    assert!(rank::top_k(&logits, 0).is_empty());
    assert!(rank::top_k(&[], 3).is_empty());
    let pairs = [(0.5, 5), (2.0, 4), (2.0, 1), (0.5, 0)];
    assert_eq!(rank::top_k_of(&pairs, 3).iter().map(|r| r.index).collect::<Vec<_>>(), [1, 4, 0]);
}

#[test]
fn bad_requests_are_clear_errors_and_empty_ones_are_empty() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut model = random_model(&mut rng);
    model.config.fields[0].kind = FieldKind::Categorical;
    let model = Dlrm::from_parts(model.config.clone(), model.embedding, model.bottom, model.top).unwrap();
    let cfg = model.config.clone();
    let mut scorer = pollster::block_on(Scorer::new(model, BackendChoice::Cpu)).unwrap();
    assert_eq!(scorer.backend_name(), "cpu");
    let (mut ctx, mut cands) = random_request(&mut rng, &cfg, 5);
    // Field 0 in the context, so its kind can be broken below.
    if ctx.fields[0].is_none() {
        ctx.fields[0] = Some(vec![1]);
        cands.fields.remove(0);
    }
    let rank = |s: &mut Scorer, c: &Context, q: &Candidates, k| pollster::block_on(s.rank(c, q, k));
    assert_eq!(rank(&mut scorer, &ctx, &cands, 3).unwrap().len(), 3);
    assert!(rank(&mut scorer, &ctx, &cands, 0).unwrap().is_empty(), "k = 0");
    let none = Candidates {
        rows: 0,
        fields: cands.fields.iter().map(|_| FieldValues { offsets: vec![0], values: vec![] }).collect(),
    };
    assert!(rank(&mut scorer, &ctx, &none, 5).unwrap().is_empty(), "no candidates");

    let err = |c: &Context, q: &Candidates| rank::validate(&cfg, c, q).unwrap_err().to_string();
    let mut bad = ctx.clone();
    bad.dense.pop();
    assert!(err(&bad, &cands).contains("dense values"));
    let mut bad = ctx.clone();
    bad.dense[0] = f32::NAN;
    assert!(err(&bad, &cands).contains("not finite"));
    let mut bad = ctx.clone();
    bad.fields.pop();
    assert!(err(&bad, &cands).contains("sparse fields"));
    let mut bad = ctx.clone();
    bad.fields[0] = Some(vec![1, 2]);
    assert!(err(&bad, &cands).contains("exactly one value"));
    let mut bad = cands.clone();
    bad.fields.push(FieldValues::single(vec![0; 5]));
    assert!(err(&ctx, &bad).contains("leaves"));
    if let Some(f) = cands.fields.first() {
        let mut bad = cands.clone();
        bad.fields[0].offsets.pop();
        assert!(err(&ctx, &bad).contains("offsets"), "{}", err(&ctx, &bad));
        let mut bad = cands.clone();
        bad.rows += 1;
        assert!(err(&ctx, &bad).contains("offsets"));
        let _ = f;
    }
    // A request error through the scorer too, and k = 0 does not hide it.
    let mut bad = ctx.clone();
    bad.fields.pop();
    assert!(rank(&mut scorer, &bad, &cands, 0).is_err());
    // An empty batch scores to nothing.
    assert!(pollster::block_on(scorer.logits(&Batch::with_schema(cfg.fields.len()))).unwrap().is_empty());
}
