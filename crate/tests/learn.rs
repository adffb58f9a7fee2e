//! On-device learning: the anchor's gradient against finite differences of an f64 reference, each
//! scope freezing exactly what it says, the loss going down on a planted task, and bad input
//! rejected with the model left bit-identical. Also under Node on wasm32 with SIMD128
//! (`make test-wasm-kernels`), where one learning step is checked against the same f64 reference
//! as natively, so the two targets learn the same weights within that test's tolerance.

mod common;

use common::reference::{Reference, assert_gradients_match, param, reference_loss};
use pocketrec::learn::add_anchor_gradient;
use pocketrec::passes::{Gradients, Workspace, bce_with_logits};
use pocketrec::{Batch, Dlrm, LearnOptions, Learner, ModelConfig, Optimizer, OptimizerKind, Scope, TrainStep};
use rand::{Rng, SeedableRng, rngs::StdRng};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const SCOPES: [Scope; 3] = [Scope::All, Scope::Embeddings, Scope::Top];
const OPTIMIZERS: [OptimizerKind; 3] = [OptimizerKind::Sgd, OptimizerKind::Adagrad, OptimizerKind::Adam];

/// A random batch of `cfg`'s schema and its labels, given apart as `learn` takes them.
fn random_batch(rng: &mut StdRng, cfg: &ModelConfig, rows: usize) -> (Batch, Vec<f32>) {
    let mut batch = common::random_batch(rng, cfg, rows);
    let labels = std::mem::take(&mut batch.labels);
    (batch, labels)
}

/// Every parameter as bits: `W`, then each layer's weight and bias, bottom first.
fn bits(model: &Dlrm) -> Vec<Vec<u32>> {
    std::iter::once(model.embedding.iter().map(|x| x.to_bits()).collect())
        .chain(model.layers().flat_map(|l| {
            [l.weight.iter().map(|x| x.to_bits()).collect(), l.bias.iter().map(|x| x.to_bits()).collect()]
        }))
        .collect()
}

/// Which tensors (in [`bits`] order) a scope moves.
fn moves(model: &Dlrm, scope: Scope) -> Vec<bool> {
    let nb = model.bottom.len();
    let n = 1 + 2 * (nb + model.top.len());
    (0..n)
        .map(|t| match (scope, t) {
            (Scope::All, _) => true,
            (Scope::Embeddings, t) => t == 0,
            (Scope::Top, t) => t > 2 * nb,
        })
        .collect()
}

/// `model` with every parameter nudged, so that it differs from its base everywhere.
fn nudged(rng: &mut StdRng, base: &Dlrm) -> Dlrm {
    let mut m = base.clone();
    m.embedding.iter_mut().for_each(|w| *w += rng.random_range(-0.1..0.1));
    for l in m.bottom.iter_mut().chain(m.top.iter_mut()) {
        l.weight.iter_mut().chain(l.bias.iter_mut()).for_each(|w| *w += rng.random_range(-0.1..0.1));
    }
    m
}

/// The gradient of BCE + `anchor/2 · ‖θ − θ₀‖²` (over the scope's parameters) matches central
/// differences of the same objective computed in f64, for every parameter; with dense features
/// and without (no bottom MLP: `All` moves `W` and the top MLP).
#[test]
fn anchor_gradient_matches_finite_differences() {
    for (seed, (scope, dense)) in SCOPES.into_iter().flat_map(|s| [(s, true), (s, false)]).enumerate() {
        let mut rng = StdRng::seed_from_u64(seed as u64 + 10);
        let base = common::random_model_with(&mut rng, dense);
        let model = nudged(&mut rng, &base);
        let rows = rng.random_range(1..5);
        let (mut batch, labels) = random_batch(&mut rng, &model.config, rows);
        batch.labels = labels;
        let anchor = 0.7f32;

        let mut ws = Workspace::default();
        let logits = model.forward(&batch, &mut ws).to_vec();
        let mut d = vec![0.0; rows];
        bce_with_logits(&logits, &batch.labels, &mut d);
        let mut grads = Gradients::zeros(&model);
        model.backward(&batch, &mut ws, &d, &mut grads);
        add_anchor_gradient(&model, &base, scope, anchor, &mut grads);

        let r0 = Reference::of(&base);
        let on = moves(&model, scope);
        let objective = |emb: &[f64], mlp: &[(Vec<f64>, Vec<f64>)]| -> f64 {
            let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
            let mut pen = if on[0] { sq(emb, &r0.emb) } else { 0.0 };
            for (k, ((w, b), (w0, b0))) in mlp.iter().zip(&r0.mlp).enumerate() {
                if on[1 + 2 * k] {
                    pen += sq(w, w0) + sq(b, b0);
                }
            }
            reference_loss(&model, emb, mlp, &batch).0 + anchor as f64 / 2.0 * pen
        };
        let Reference { emb, mlp } = Reference::of(&model);
        assert_gradients_match(&grads, &emb, &mlp, objective, &format!("{scope:?}, dense {dense}"));
    }
}

/// One SGD step of [`Learner::learn`] equals `θ − lr · ∇(BCE + anchor/2 · ‖θ − θ₀‖²)` with the
/// gradient from central differences of the f64 reference, for every parameter, to the
/// finite-difference check's tolerance. The same holds on wasm32, so native and wasm32 learning
/// give the same weights within twice that tolerance (times `lr`); their GEMM kernels sum in
/// different orders, so bit equality is not expected.
#[test]
fn one_step_matches_the_f64_reference() {
    let mut rng = StdRng::seed_from_u64(60);
    let base = common::random_model(&mut rng);
    let start = nudged(&mut rng, &base);
    let (batch, labels) = random_batch(&mut rng, &start.config, 3);
    let (lr, anchor) = (0.1f32, 0.5f32);
    let mut model = start.clone();
    let opts = LearnOptions { lr, steps: 1, optimizer: OptimizerKind::Sgd, scope: Scope::All, anchor };
    Learner::new(&base).learn(&mut model, &batch, &labels, &opts).unwrap();

    let mut labelled = batch.clone();
    labelled.labels = labels;
    let (r, r0) = (Reference::of(&start), Reference::of(&base));
    let objective = |emb: &[f64], mlp: &[(Vec<f64>, Vec<f64>)]| -> f64 {
        let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
        let pen =
            sq(emb, &r0.emb) + mlp.iter().zip(&r0.mlp).map(|((w, b), (w0, b0))| sq(w, w0) + sq(b, b0)).sum::<f64>();
        reference_loss(&start, emb, mlp, &labelled).0 + anchor as f64 / 2.0 * pen
    };
    let eps = 1e-6;
    let check = |before: f32, after: f32, numeric: f64, what: &str| {
        let step = (before as f64 - after as f64) / lr as f64;
        let tol = 2e-5 + 2e-3 * numeric.abs();
        assert!((step - numeric).abs() <= tol, "{what}: stepped by lr × {step}, reference gradient {numeric}");
    };
    for s in 0..r.emb.len() {
        let mut e = r.emb.clone();
        e[s] += eps;
        let up = objective(&e, &r.mlp);
        e[s] -= 2.0 * eps;
        let down = objective(&e, &r.mlp);
        check(start.embedding[s], model.embedding[s], (up - down) / (2.0 * eps), &format!("W[{s}]"));
    }
    let (before, after): (Vec<&pocketrec::Linear>, Vec<&pocketrec::Linear>) =
        (start.layers().collect(), model.layers().collect());
    for k in 0..before.len() {
        let pairs = [
            (
                before[k].weight.iter().copied().collect::<Vec<f32>>(),
                after[k].weight.iter().copied().collect::<Vec<f32>>(),
            ),
            (before[k].bias.to_vec(), after[k].bias.to_vec()),
        ];
        for (which, (b, a)) in pairs.iter().enumerate() {
            for i in 0..b.len() {
                let mut m = r.mlp.clone();
                *param(&mut m, k, which, i) += eps;
                let up = objective(&r.emb, &m);
                *param(&mut m, k, which, i) -= 2.0 * eps;
                let down = objective(&r.emb, &m);
                check(b[i], a[i], (up - down) / (2.0 * eps), &format!("layer {k} {} [{i}]", ["weight", "bias"][which]));
            }
        }
    }
}

/// With SGD the anchor adds exactly `−lr · anchor · (θ − θ₀)` to one step (up to rounding), so
/// the pull reaches the update, on every parameter.
#[test]
fn anchor_pulls_the_update_toward_the_base() {
    let mut rng = StdRng::seed_from_u64(3);
    let base = common::random_model(&mut rng);
    let start = nudged(&mut rng, &base);
    let (batch, labels) = random_batch(&mut rng, &start.config, 4);
    let (lr, anchor) = (0.1f32, 2.0f32);
    let run = |anchor: f32| {
        let mut m = start.clone();
        let opts = LearnOptions { lr, steps: 1, optimizer: OptimizerKind::Sgd, scope: Scope::All, anchor };
        Learner::new(&base).learn(&mut m, &batch, &labels, &opts).unwrap();
        m
    };
    let (pulled, free) = (run(anchor), run(0.0));
    let flat = |m: &Dlrm| -> Vec<f32> {
        m.embedding
            .iter()
            .copied()
            .chain(m.layers().flat_map(|l| l.weight.iter().chain(&l.bias).copied().collect::<Vec<_>>()))
            .collect()
    };
    let (p, f, s, b) = (flat(&pulled), flat(&free), flat(&start), flat(&base));
    for i in 0..p.len() {
        let want = -lr * anchor * (s[i] - b[i]);
        let got = p[i] - f[i];
        assert!((got - want).abs() <= 1e-6 + 1e-3 * want.abs(), "parameter {i}: moved {got}, want {want}");
    }
}

/// Each scope with each optimizer: frozen tensors are bit-identical after learning, moving ones
/// change; also after the scope narrows on a model that already learned (fresh optimizer state).
/// Models without dense features too: they have no bottom MLP to move or freeze.
#[test]
fn each_scope_freezes_exactly_the_rest() {
    for (seed, (kind, dense)) in OPTIMIZERS.into_iter().flat_map(|k| [(k, true), (k, false)]).enumerate() {
        let mut rng = StdRng::seed_from_u64(seed as u64 + 20);
        let base = common::random_model_with(&mut rng, dense);
        let (batch, labels) = random_batch(&mut rng, &base.config, 6);
        for scope in SCOPES {
            let mut learner = Learner::new(&base);
            let mut model = base.clone();
            // First everything moves, so the anchor pulls on every tensor, then only the scope.
            let all = LearnOptions { optimizer: kind, scope: Scope::All, anchor: 0.5, lr: 0.05, steps: 2 };
            learner.learn(&mut model, &batch, &labels, &all).unwrap();
            let before = bits(&model);
            let opts = LearnOptions { scope, ..all.clone() };
            let report = learner.learn(&mut model, &batch, &labels, &opts).unwrap();
            assert_eq!(report.steps, 2);
            assert_eq!(learner.updates(), 4);
            let after = bits(&model);
            for (t, on) in moves(&model, scope).into_iter().enumerate() {
                if on {
                    assert_ne!(before[t], after[t], "{kind:?} {scope:?} dense {dense}: tensor {t} should move");
                } else {
                    assert_eq!(before[t], after[t], "{kind:?} {scope:?} dense {dense}: tensor {t} is frozen");
                }
            }
        }
    }
}

/// A planted task: the label is whether the first field's value is below 5. A few calls with the
/// default options lower the loss on the given rows, for every scope, with dense features and
/// without.
#[test]
fn loss_goes_down_on_a_planted_task() {
    for dense in [true, false] {
        loss_goes_down(dense);
    }
}

fn loss_goes_down(dense: bool) {
    let mut rng = StdRng::seed_from_u64(7);
    let base = common::random_model_with(&mut rng, dense);
    let cfg = &base.config;
    let mut batch = Batch::with_schema(cfg.fields.len());
    let mut labels = Vec::new();
    for r in 0..16u32 {
        let dense = vec![1.0; cfg.dense.len()];
        let item = r % 10;
        let sparse: Vec<Vec<u32>> = (0..cfg.fields.len()).map(|f| vec![if f == 0 { item } else { 1 }]).collect();
        batch.push_row(&dense, sparse.iter().map(|v| v.as_slice()), None);
        labels.push((item < 5) as u32 as f32);
    }
    for scope in SCOPES {
        let mut model = base.clone();
        let mut learner = Learner::new(&base);
        let opts = LearnOptions { scope, steps: 5, lr: 0.1, ..Default::default() };
        let first = learner.learn(&mut model, &batch, &labels, &opts).unwrap().loss;
        for _ in 0..4 {
            learner.learn(&mut model, &batch, &labels, &opts).unwrap();
        }
        let last = learner.learn(&mut model, &batch, &labels, &opts).unwrap().loss;
        assert!(last < 0.85 * first, "{scope:?}, dense {dense}: loss {first} -> {last}");
    }
}

/// Every kind of bad input rejects with a message naming the problem, and neither the model nor
/// the learner's optimizer state changes (the next good call gives the same weights as without
/// the bad one).
#[test]
fn bad_input_rejects_and_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(30);
    let base = common::random_model(&mut rng);
    let (batch, labels) = random_batch(&mut rng, &base.config, 3);
    let good = LearnOptions { optimizer: OptimizerKind::Adam, ..Default::default() };

    let mut nan_dense = batch.clone();
    nan_dense.dense[0] = f32::NAN;
    let mut inf_dense = batch.clone();
    *nan_dense.dense.last_mut().unwrap() = f32::INFINITY;
    inf_dense.dense[0] = f32::NEG_INFINITY;
    let empty = Batch::with_schema(base.config.fields.len());
    let opts = |f: &dyn Fn(&mut LearnOptions)| {
        let mut o = good.clone();
        f(&mut o);
        o
    };
    let cases: Vec<(&str, Batch, Vec<f32>, LearnOptions, &str)> = vec![
        ("label 0.5", batch.clone(), vec![1.0, 0.5, 0.0], good.clone(), "not 0 or 1"),
        ("label NaN", batch.clone(), vec![f32::NAN, 1.0, 0.0], good.clone(), "not 0 or 1"),
        ("NaN dense", nan_dense, labels.clone(), good.clone(), "is not finite"),
        ("infinite dense", inf_dense, labels.clone(), good.clone(), "is not finite"),
        ("too few labels", batch.clone(), vec![1.0, 0.0], good.clone(), "expected 3 labels"),
        ("too many labels", batch.clone(), vec![1.0; 4], good.clone(), "expected 3 labels"),
        ("no labels", batch.clone(), vec![], good.clone(), "expected 3 labels"),
        ("empty batch", empty, vec![], good.clone(), "empty"),
        ("lr 0", batch.clone(), labels.clone(), opts(&|o| o.lr = 0.0), "lr is 0"),
        ("lr negative", batch.clone(), labels.clone(), opts(&|o| o.lr = -1.0), "lr is -1"),
        ("lr NaN", batch.clone(), labels.clone(), opts(&|o| o.lr = f32::NAN), "lr is NaN"),
        ("lr infinite", batch.clone(), labels.clone(), opts(&|o| o.lr = f32::INFINITY), "lr is inf"),
        ("anchor negative", batch.clone(), labels.clone(), opts(&|o| o.anchor = -0.1), "anchor is -0.1"),
        ("anchor NaN", batch.clone(), labels.clone(), opts(&|o| o.anchor = f32::NAN), "anchor is NaN"),
        ("steps 0", batch.clone(), labels.clone(), opts(&|o| o.steps = 0), "steps is 0"),
        // Finite input whose steps blow the weights up: the loss turns non-finite mid-call.
        (
            "diverging",
            batch.clone(),
            labels.clone(),
            opts(&|o| {
                o.lr = 1e30;
                o.optimizer = OptimizerKind::Sgd;
                o.steps = 5
            }),
            "the weights are as before the call",
        ),
    ];
    // The reference: one good call after a good call, on a fresh learner.
    let mut want = base.clone();
    let mut learner = Learner::new(&base);
    learner.learn(&mut want, &batch, &labels, &good).unwrap();
    let mid = want.clone();
    learner.learn(&mut want, &batch, &labels, &good).unwrap();

    for (name, bad_batch, bad_labels, bad_opts, says) in cases {
        let mut model = base.clone();
        let mut learner = Learner::new(&base);
        learner.learn(&mut model, &batch, &labels, &good).unwrap();
        let err = learner.learn(&mut model, &bad_batch, &bad_labels, &bad_opts).unwrap_err().to_string();
        assert!(err.contains(says), "{name}: {err:?} should say {says:?}");
        assert_eq!(bits(&model), bits(&mid), "{name}: the model changed");
        assert_eq!(learner.updates(), good.steps as u64, "{name}: updates counted");
        // The optimizer state is as before too (for Adam: the moments and the step count).
        learner.learn(&mut model, &batch, &labels, &good).unwrap();
        assert_eq!(bits(&model), bits(&want), "{name}: the next good call differs");
    }
}

/// The learning steps as a pass over all of `W` takes them: the anchor's gradient from
/// [`add_anchor_gradient`], frozen parameters zeroed, a fresh optimizer when the kind or scope
/// changes. The reference the learner's tracked slots are checked against.
struct DenseLearner {
    base: Dlrm,
    opt: Option<(Optimizer, Scope)>,
    step: TrainStep,
}

impl DenseLearner {
    fn learn(&mut self, model: &mut Dlrm, batch: &Batch, labels: &[f32], opts: &LearnOptions) {
        let mut rows = batch.clone();
        rows.labels = labels.to_vec();
        if self.opt.as_ref().is_none_or(|(o, s)| o.kind() != opts.optimizer || *s != opts.scope) {
            self.opt = Some((Optimizer::new(opts.optimizer, opts.lr, model), opts.scope));
        }
        let opt = &mut self.opt.as_mut().unwrap().0;
        opt.lr = opts.lr;
        let scope = opts.scope;
        for _ in 0..opts.steps {
            self.step.step_with(model, opt, &rows, |model, grads| {
                let (bottom, top) = (scope == Scope::All, scope != Scope::Embeddings);
                for g in grads.iter_mut() {
                    for (moves, layers) in [(bottom, &mut g.bottom), (top, &mut g.top)] {
                        for l in layers.iter_mut().filter(|_| !moves) {
                            l.weight.fill(0.0);
                            l.bias.fill(0.0);
                        }
                    }
                }
                if scope == Scope::Top {
                    grads[0].embedding.clear();
                }
                add_anchor_gradient(model, &self.base, scope, opts.anchor, grads[0]);
            });
        }
    }
}

/// The learner touches only the slots of `W` it tracks (the rows' blocks and what moved before),
/// yet learns bit for bit the weights of the pass over all of `W`, over calls with new rows, each
/// optimizer and changes of scope, from a model equal to its base or differing from it in a few
/// slots; and [`Learner::changed`] names every slot and tensor that moved.
#[test]
fn tracked_slots_learn_the_dense_weights_bit_for_bit() {
    let scopes = [Scope::All, Scope::All, Scope::Embeddings, Scope::Top, Scope::Embeddings, Scope::All];
    for (k, kind) in OPTIMIZERS.into_iter().enumerate() {
        for trial in 0..4u64 {
            let mut rng = StdRng::seed_from_u64(70 + 10 * k as u64 + trial);
            let base = common::random_model(&mut rng);
            let mut model = base.clone();
            if trial % 2 == 1 {
                for _ in 0..5 {
                    let s = rng.random_range(0..model.embedding.len());
                    model.embedding[s] += 0.25;
                }
            }
            let mut dense_model = model.clone();
            let mut learner = Learner::new(&base);
            let mut dense = DenseLearner { base: base.clone(), opt: None, step: TrainStep::new() };
            for (call, scope) in scopes.into_iter().enumerate() {
                let what = format!("{kind:?} trial {trial} call {call} {scope:?}");
                let rows = rng.random_range(1..6);
                let (batch, labels) = random_batch(&mut rng, &base.config, rows);
                let opts = LearnOptions { lr: 0.05, steps: 2, optimizer: kind, scope, anchor: 0.5 };
                let before = model.clone();
                learner.learn(&mut model, &batch, &labels, &opts).unwrap();
                dense.learn(&mut dense_model, &batch, &labels, &opts);
                assert_eq!(bits(&model), bits(&dense_model), "{what}: differs from the dense pass");

                let changed = learner.changed();
                for s in (0..model.embedding.len()).filter(|&s| model.embedding[s] != before.embedding[s]) {
                    assert!(changed.embedding.iter().any(|r| r.contains(&s)), "{what}: W[{s}] moved unreported");
                }
                let moved = |a: &[pocketrec::Linear], b: &[pocketrec::Linear]| a != b;
                assert!(changed.bottom || !moved(&model.bottom, &before.bottom), "{what}: bottom moved unreported");
                assert!(changed.top || !moved(&model.top, &before.top), "{what}: top moved unreported");
            }
        }
    }
}

/// Learning through a GPU scorer rewrites the GPU's copy of what changed: after each call, with
/// each scope, it scores the learned model as the CPU does (within the parity tests' 1e-4), on the
/// rows of every call so far. The model is large enough (small preset, 4 MB) that `W` goes up in
/// separate ranges, so a changed range left out would show.
#[cfg(feature = "gpu")]
#[test]
fn gpu_scores_the_learned_weights() {
    use pocketrec::backend::gpu::upload_ranges;
    use pocketrec::config::{Preset, StoredDtype, criteo_schema};
    use pocketrec::{BackendChoice, Error, HashVariant, Scorer};
    use pollster::block_on;
    let mut rng = StdRng::seed_from_u64(40);
    let (dense, fields) = criteo_schema();
    let cfg =
        ModelConfig::preset(Preset::Small, dense, fields, 4_000_000, 4, HashVariant::UmaV1, StoredDtype::F32).unwrap();
    let base = Dlrm::init(cfg, 3).unwrap();
    let mut scorer = match block_on(Scorer::new(base.clone(), BackendChoice::WebGpu)) {
        Ok(s) => s,
        Err(Error::NoAdapter(why)) => return common::no_gpu_adapter(&why),
        Err(e) => panic!("GPU backend failed: {e}"),
    };
    let mut learner = Learner::new(&base);
    let mut seen = Vec::new();
    for (call, scope) in [Scope::All, Scope::Embeddings, Scope::Top, Scope::All].into_iter().enumerate() {
        let mut batch = common::random_batch(&mut rng, &base.config, 3);
        // Values all over u32, so the rows' blocks spread over W.
        batch.fields.iter_mut().for_each(|f| f.values.iter_mut().for_each(|v| *v = rng.random()));
        let labels = std::mem::take(&mut batch.labels);
        seen.push(batch.clone());
        let opts = LearnOptions { lr: 0.1, steps: 3, scope, ..Default::default() };
        scorer.learn(&mut learner, &batch, &labels, &opts).unwrap();
        let writes = upload_ranges(&learner.changed().embedding);
        if scope != Scope::Top {
            let sent: usize = writes.iter().map(|r| r.len()).sum();
            assert!(writes.len() > 1 && sent < base.embedding.len() / 2, "call {call}: W went up whole ({sent} slots)");
        } else {
            assert!(writes.is_empty(), "call {call}: W is frozen");
        }
        for (b, rows) in seen.iter().enumerate() {
            let want = common::forward(scorer.model(), rows);
            let got = block_on(scorer.logits(rows)).unwrap();
            common::assert_close(&got, &want, 1e-4, &format!("after call {call} ({scope:?}), rows of call {b}"));
        }
    }
    let (first, now) = (common::forward(&base, &seen[0]), common::forward(scorer.model(), &seen[0]));
    assert!(first.iter().zip(&now).any(|(a, b)| (a - b).abs() > 1e-2), "learning moved the scores");
}

/// A model without dense features (no bottom MLP) learns through a GPU scorer as well: afterwards
/// the GPU scores the learned weights as the CPU does (within 1e-4), not the loaded ones.
#[cfg(feature = "gpu")]
#[test]
fn gpu_scores_the_learned_weights_without_dense_features() {
    use pocketrec::{BackendChoice, Error, Scorer};
    use pollster::block_on;
    let mut rng = StdRng::seed_from_u64(40);
    let base = common::random_model_with(&mut rng, false);
    let mut scorer = match block_on(Scorer::new(base.clone(), BackendChoice::WebGpu)) {
        Ok(s) => s,
        Err(Error::NoAdapter(why)) => return common::no_gpu_adapter(&why),
        Err(e) => panic!("GPU backend failed: {e}"),
    };
    let (batch, labels) = random_batch(&mut rng, &base.config, 8);
    let before = block_on(scorer.logits(&batch)).unwrap();
    let mut learner = Learner::new(&base);
    let opts = LearnOptions { lr: 0.1, steps: 3, ..Default::default() };
    scorer.learn(&mut learner, &batch, &labels, &opts).unwrap();
    let want = common::forward(scorer.model(), &batch);
    let got = block_on(scorer.logits(&batch)).unwrap();
    common::assert_close(&got, &want, 1e-4, "after learning");
    assert!(before.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3), "learning moved the scores");
}

/// A learned model saved with the personalized provenance reads back bit for bit, names its base
/// model's digest and counts the updates; saved again after more learning, it keeps the first
/// base's digest and adds the updates.
#[test]
fn saved_model_round_trips_and_records_its_base() {
    use pocketrec::StoredDtype;
    use pocketrec::file::{from_bytes, to_bytes};
    use pocketrec::learn::personalized_provenance;
    let mut rng = StdRng::seed_from_u64(50);
    let base = common::random_model(&mut rng);
    let base_bytes = to_bytes(&base, StoredDtype::F32, &serde_json::json!({ "steps": 7 })).unwrap();
    let loaded = from_bytes(&base_bytes).unwrap();
    let base_digest = loaded.digest.recorded().expect("written with a digest").to_string();
    let (batch, labels) = random_batch(&mut rng, &base.config, 5);

    let mut model = loaded.model.clone();
    let mut learner = Learner::new(&model);
    let opts = LearnOptions { steps: 2, ..Default::default() };
    learner.learn(&mut model, &batch, &labels, &opts).unwrap();
    learner.learn(&mut model, &batch, &labels, &opts).unwrap();
    let prov = personalized_provenance(&loaded.provenance, Some(&base_digest), learner.updates());
    let saved = from_bytes(&to_bytes(&model, StoredDtype::F32, &prov).unwrap()).unwrap();
    assert_eq!(bits(&saved.model), bits(&model));
    assert_eq!(saved.provenance["steps"], 7, "the base's provenance is kept");
    assert_eq!(saved.provenance["on_device"]["base_digest"], base_digest.as_str());
    assert_eq!(saved.provenance["on_device"]["updates"], 4);
    assert_ne!(saved.digest.recorded(), Some(base_digest.as_str()));

    // Reloaded and learned further: still the first base, the updates added up.
    let mut again = saved.model.clone();
    let mut learner = Learner::new(&again);
    learner.learn(&mut again, &batch, &labels, &opts).unwrap();
    let prov = personalized_provenance(&saved.provenance, saved.digest.recorded(), learner.updates());
    assert_eq!(prov["on_device"]["base_digest"], base_digest.as_str());
    assert_eq!(prov["on_device"]["updates"], 6);
}
