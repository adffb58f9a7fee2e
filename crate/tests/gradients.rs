//! Finite-difference checks of every gradient kind (MLP weights and biases, the shared array W)
//! against an independent f64 reference implementation of the DLRM, on random shapes and schemas.

use pocketrec::passes::{Gradients, Workspace, bce_with_logits};
use pocketrec::{
    Batch, DenseTransform, Dlrm, EmbeddingConfig, Field, FieldKind, FieldValues, HashVariant, KeyMode, ModelConfig,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

mod common;
use common::random_batch;
use common::reference::{Reference, assert_gradients_match, reference_loss};

/// A random model; `dense: false` gives one without dense features (no bottom MLP), which needs
/// two fields or more.
fn random_model(rng: &mut StdRng, full: bool, dense: bool) -> Dlrm {
    let nd = if dense { rng.random_range(1..4) } else { 0 };
    let nf = rng.random_range(1..5).max(2 - usize::from(dense));
    let dim = rng.random_range(1..6);
    let kinds = [FieldKind::Categorical, FieldKind::BagSum, FieldKind::BagMean];
    let fields: Vec<Field> =
        (0..nf).map(|i| Field { name: format!("f{i}"), kind: kinds[rng.random_range(0..3)] }).collect();
    let mut bottom = vec![nd];
    bottom.extend((0..rng.random_range(0..3)).map(|_| rng.random_range(2..7)));
    bottom.push(dim);
    if !dense {
        bottom.clear();
    }
    let n = nf + usize::from(dense);
    let mut top = vec![if dense { dim } else { 0 } + n * (n - 1) / 2];
    top.extend((0..rng.random_range(0..3)).map(|_| rng.random_range(2..7)));
    top.push(1);
    let embedding = if full {
        EmbeddingConfig::Full { rows: (0..nf).map(|_| rng.random_range(1..8)).collect() }
    } else {
        let z = rng.random_range(1..=dim as u32 + 1);
        let variant = HashVariant::ALL[rng.random_range(0..HashVariant::ALL.len())];
        EmbeddingConfig::Robe { m: rng.random_range(z as u64 + 1..60), z, hash: variant }
    };
    let key_mode = if rng.random_bool(0.5) {
        KeyMode::Raw
    } else {
        KeyMode::Dictionary { table_sizes: (0..nf).map(|_| rng.random_range(1..100)).collect() }
    };
    let cfg = ModelConfig {
        dense: (0..nd).map(|i| format!("d{i}")).collect(),
        dense_transform: if rng.random_bool(0.5) { DenseTransform::Log1p } else { DenseTransform::Identity },
        fields,
        dim,
        bottom,
        top,
        embedding,
        key_mode,
    };
    let mut model = Dlrm::init(cfg, rng.random()).unwrap();
    // Larger embeddings than the paper's init so the interaction terms matter in the check.
    model.embedding.iter_mut().for_each(|w| *w = rng.random_range(-0.5..0.5));
    model
}

fn check_gradients(seed: u64, full: bool, dense: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let model = random_model(&mut rng, full, dense);
    let rows = rng.random_range(1..7);
    let batch = random_batch(&mut rng, &model.config, rows);
    batch.validate(&model.config).unwrap();

    let mut ws = Workspace::default();
    let logits = model.forward(&batch, &mut ws).to_vec();
    let mut d_logits = vec![0.0; rows];
    let loss32 = bce_with_logits(&logits, &batch.labels, &mut d_logits);
    let mut grads = Gradients::zeros(&model);
    model.backward(&batch, &mut ws, &d_logits, &mut grads);

    let Reference { emb, mlp } = Reference::of(&model);
    let (loss64, logits64) = reference_loss(&model, &emb, &mlp, &batch);
    for (a, b) in logits.iter().zip(&logits64) {
        assert!((*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()), "forward: {a} vs {b} (seed {seed})");
    }
    assert!((loss32 - loss64).abs() <= 1e-5 * (1.0 + loss64.abs()));

    // W, every slot (untouched slots must have zero gradient), then every MLP weight and bias.
    let objective = |e: &[f64], m: &[(Vec<f64>, Vec<f64>)]| reference_loss(&model, e, m, &batch).0;
    assert_gradients_match(&grads, &emb, &mlp, objective, &format!("seed {seed}"));
}

#[test]
fn gradients_match_finite_differences_robe() {
    for seed in 0..40 {
        check_gradients(seed, false, true);
    }
}

/// No dense features: no bottom MLP, and the top MLP sees the embeddings' dots alone.
#[test]
fn gradients_match_finite_differences_without_dense_features() {
    for seed in 200..230 {
        check_gradients(seed, seed % 3 == 0, false);
    }
}

#[test]
fn gradients_match_finite_differences_full_tables() {
    for seed in 100..120 {
        check_gradients(seed, true, true);
    }
}

#[test]
fn sparse_gradient_touches_only_read_slots_and_drains_each_once() {
    let mut rng = StdRng::seed_from_u64(3);
    let model = random_model(&mut rng, false, true);
    let batch = random_batch(&mut rng, &model.config, 5);
    let mut ws = Workspace::default();
    let logits = model.forward(&batch, &mut ws).to_vec();
    let mut d = vec![0.0; 5];
    bce_with_logits(&logits, &batch.labels, &mut d);
    let mut grads = Gradients::zeros(&model);
    model.backward(&batch, &mut ws, &d, &mut grads);
    let mut read = std::collections::HashSet::new();
    for (f, vals) in batch.fields.iter().enumerate() {
        for &v in &vals.values {
            read.extend((0..model.config.dim).map(|i| model.lookup().index(f, v, i)));
        }
    }
    let expected: Vec<(usize, f32)> =
        grads.embedding.values().iter().copied().enumerate().filter(|&(_, g)| g != 0.0).collect();
    assert!(expected.iter().all(|(s, _)| read.contains(s)), "a slot that was not read has a gradient");
    // Cut into one part per thread: the same per-slot sums (rows go in order), and each slot
    // with a gradient is handed over once.
    let len = grads.embedding.values().len();
    for threads in [1, 2, 3] {
        let mut g = Gradients::zeros(&model);
        let (mut sum, mut visits) = (vec![0.0f32; len], vec![0.0f32; len]);
        #[cfg_attr(feature = "parallel", allow(unused_mut))]
        let mut run = || {
            model.backward(&batch, &mut ws, &d, &mut g);
            assert_eq!(g.embedding.values(), grads.embedding.values(), "{threads} threads: another sum");
            g.embedding.drain_into([&mut sum, &mut visits], |[sum, visits], i, grad| {
                sum[i] += grad;
                visits[i] += 1.0;
            })
        };
        #[cfg(feature = "parallel")]
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(run);
        #[cfg(not(feature = "parallel"))]
        run();
        let drained: Vec<(usize, f32)> = sum.iter().copied().enumerate().filter(|&(_, g)| g != 0.0).collect();
        assert_eq!(drained, expected, "{threads} threads");
        assert!(visits.iter().all(|&n| n <= 1.0), "{threads} threads: a slot was visited twice");
        assert!(g.embedding.values().iter().all(|&g| g == 0.0));
    }
}

/// A block that straddles two parts lands in both, each slot once.
#[cfg(feature = "parallel")]
#[test]
fn block_across_parts_is_added_and_drained_once() {
    rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| {
        let mut g = pocketrec::passes::SparseGrad::new(10, 4); // parts 0..3, 3..6, 6..10
        g.add_by_parts(|part| {
            part.add_block(2, 2.0, &[1.0, 2.0, 3.0, 4.0]); // slots 2..6: parts 0 and 1
            part.add_block(6, 1.0, &[5.0, 6.0, 7.0, 8.0]); // slots 6..10: part 2
            part.add_block(2, 1.0, &[1.0, 0.0, 0.0, 0.0]); // slot 2 again
        });
        assert_eq!(g.values(), &[0.0, 0.0, 3.0, 4.0, 6.0, 8.0, 5.0, 6.0, 7.0, 8.0]);
        let mut visits = vec![0.0f32; 10];
        g.drain_into([&mut visits], |[visits], i, _| visits[i] += 1.0);
        assert_eq!(visits, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert!(g.values().iter().all(|&v| v == 0.0));
    });
}

#[test]
fn empty_bag_gives_zero_embedding_not_nan() {
    let cfg = ModelConfig {
        dense: vec!["x".into()],
        dense_transform: DenseTransform::Identity,
        fields: vec![Field { name: "bag".into(), kind: FieldKind::BagMean }],
        dim: 2,
        bottom: vec![1, 2],
        top: vec![3, 1],
        embedding: EmbeddingConfig::Robe { m: 16, z: 2, hash: HashVariant::UmaV1 },
        key_mode: KeyMode::Raw,
    };
    let model = Dlrm::init(cfg, 1).unwrap();
    let batch = Batch {
        rows: 1,
        dense: vec![1.0],
        fields: vec![FieldValues { offsets: vec![0, 0], values: vec![] }],
        labels: vec![],
    };
    batch.validate(&model.config).unwrap();
    let mut ws = Workspace::default();
    assert!(model.forward(&batch, &mut ws)[0].is_finite());
}
