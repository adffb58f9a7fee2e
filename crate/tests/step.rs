//! The data-parallel training step: any number of shards gives the whole-batch step up to float
//! summation order, and a non-finite loss leaves the model and optimizer untouched.

use pocketrec::config::criteo_schema;
use pocketrec::passes::{Gradients, Workspace, bce_with_logits};
use pocketrec::{Batch, Dlrm, HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype, TrainStep};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn setup(seed: u64, rows: usize) -> (Dlrm, Vec<Batch>) {
    let (dense, fields) = criteo_schema();
    let cfg =
        ModelConfig::preset(Preset::Small, dense, fields, 1_000_000, 4, HashVariant::UmaV1, StoredDtype::F32).unwrap();
    let model = Dlrm::init(cfg, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let batches = (0..3)
        .map(|_| {
            let mut batch = Batch::with_schema(26);
            for _ in 0..rows {
                let dense: Vec<f32> = (0..13).map(|_| rng.random_range(0.0..50.0f32)).collect();
                // Few distinct values, so shards share slots and their W gradients must be summed.
                let keys: Vec<[u32; 1]> = (0..26).map(|_| [rng.random_range(0..8)]).collect();
                let label = (dense[0] > 25.0) as u32 as f32;
                batch.push_row(&dense, keys.iter().map(|k| k.as_slice()), Some(label));
            }
            batch
        })
        .collect();
    (model, batches)
}

/// The plain whole-batch step the sharded one must reproduce.
fn whole_batch_step(model: &mut Dlrm, opt: &mut Optimizer, batch: &Batch) -> f64 {
    let mut ws = Workspace::default();
    let mut grads = Gradients::zeros(model);
    let logits = model.forward(batch, &mut ws).to_vec();
    let mut d = vec![0.0; batch.rows];
    let loss = bce_with_logits(&logits, &batch.labels, &mut d);
    model.backward(batch, &mut ws, &d, &mut grads);
    opt.apply(model, &mut grads);
    loss
}

fn max_diff(a: &Dlrm, b: &Dlrm) -> f32 {
    let w = a.embedding.iter().zip(&b.embedding).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    let mlp = a
        .layers()
        .zip(b.layers())
        .flat_map(|(l, m)| l.weight.iter().zip(&m.weight).chain(l.bias.iter().zip(&m.bias)).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max);
    w.max(mlp)
}

#[test]
fn sharded_step_matches_the_whole_batch_step() {
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adagrad, OptimizerKind::Adam] {
        for rows in [1, 40, 200] {
            let (start, batches) = setup(rows as u64, rows);
            let mut want = start.clone();
            let mut want_opt = Optimizer::new(kind, 0.01, &want);
            let want_loss: Vec<f64> = batches.iter().map(|b| whole_batch_step(&mut want, &mut want_opt, b)).collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut got = start.clone();
                let mut opt = Optimizer::new(kind, 0.01, &got);
                let mut step = TrainStep::new();
                let loss: Vec<f64> =
                    pool.install(|| batches.iter().map(|b| step.step(&mut got, &mut opt, b)).collect());
                let what = format!("{kind:?}, {rows} rows, {threads} threads");
                for (a, b) in loss.iter().zip(&want_loss) {
                    assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}: loss {a} vs {b}");
                }
                let diff = max_diff(&got, &want);
                assert!(diff <= 1e-5, "{what}: parameters differ by {diff}");
                assert!(max_diff(&got, &start) > 1e-4, "{what}: the step must move the model");
                assert_eq!(opt.step, 3);
            }
        }
    }
}

#[test]
fn non_finite_loss_leaves_model_and_optimizer_untouched() {
    let (mut model, batches) = setup(5, 100);
    model.top.last_mut().unwrap().bias[0] = f32::INFINITY;
    let before = model.clone();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 0.01, &model);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut step = TrainStep::new();
    let loss = pool.install(|| step.step(&mut model, &mut opt, &batches[0]));
    assert!(!loss.is_finite(), "loss {loss}");
    assert_eq!(opt.step, 0);
    let bits = |m: &Dlrm| -> Vec<u32> {
        m.embedding.iter().chain(m.layers().flat_map(|l| l.weight.iter().chain(&l.bias))).map(|x| x.to_bits()).collect()
    };
    assert_eq!(bits(&model), bits(&before));
    // The next, finite step starts from clean gradients.
    model.top.last_mut().unwrap().bias[0] = 0.0;
    let mut reference = model.clone();
    let mut ref_opt = opt.clone();
    let got = pool.install(|| step.step(&mut model, &mut opt, &batches[1]));
    let want = whole_batch_step(&mut reference, &mut ref_opt, &batches[1]);
    assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()));
    assert!(max_diff(&model, &reference) <= 1e-5);
}
