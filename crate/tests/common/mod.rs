//! Random models and requests shared by the ranking and GPU parity tests.
#![allow(dead_code)]

pub mod reference;

use pocketrec::rank::{Candidates, Context};
use pocketrec::{
    Batch, DenseTransform, Dlrm, EmbeddingConfig, Field, FieldKind, FieldValues, HashVariant, KeyMode, ModelConfig,
    Workspace,
};
use rand::{Rng, rngs::StdRng};

/// What a GPU test does when there is no adapter: with `POCKETREC_REQUIRE_GPU=1` (CI, `make
/// test`) it fails, so a CI without a GPU cannot pass by skipping; elsewhere it says loudly that it
/// skipped and returns, and the caller returns too.
pub fn no_gpu_adapter(why: &str) {
    let msg = format!("no GPU adapter ({why}); install mesa-vulkan-drivers for lavapipe");
    if std::env::var("POCKETREC_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{msg}. POCKETREC_REQUIRE_GPU=1: GPU tests must run here");
    }
    eprintln!("\n*** SKIPPED: {msg} (POCKETREC_REQUIRE_GPU=1 makes this a failure) ***\n");
}

/// A random small model: mixed field kinds, one or several top layers, ROBE or full tables.
pub fn random_model(rng: &mut StdRng) -> Dlrm {
    random_model_with(rng, true)
}

/// [`random_model`], or with `dense: false` one without dense features: no bottom MLP, the top
/// MLP on the embeddings' dots alone.
pub fn random_model_with(rng: &mut StdRng, dense: bool) -> Dlrm {
    let nd = if dense { rng.random_range(1..6) } else { 0 };
    let nf = rng.random_range(2..8);
    let dim = [3, 4, 8, 16][rng.random_range(0..4)];
    let kinds = [FieldKind::Categorical, FieldKind::BagSum, FieldKind::BagMean];
    let fields: Vec<Field> =
        (0..nf).map(|i| Field { name: format!("f{i}"), kind: kinds[rng.random_range(0..3)] }).collect();
    let n = nf + usize::from(dense);
    let mut top = vec![if dense { dim } else { 0 } + n * (n - 1) / 2];
    if rng.random_bool(0.8) {
        top.extend([24, 8]);
    }
    top.push(1);
    let embedding = if rng.random_bool(0.8) {
        let z = [1, 2, 4, dim as u32][rng.random_range(0..4)];
        EmbeddingConfig::Robe {
            m: rng.random_range(100..5000),
            z,
            hash: HashVariant::ALL[rng.random_range(0..HashVariant::ALL.len())],
        }
    } else {
        EmbeddingConfig::Full { rows: (0..nf).map(|_| rng.random_range(1..50)).collect() }
    };
    let key_mode = if rng.random_bool(0.5) {
        KeyMode::Raw
    } else {
        KeyMode::Dictionary { table_sizes: (0..nf).map(|_| rng.random_range(1..1u64 << 34)).collect() }
    };
    let cfg = ModelConfig {
        dense: (0..nd).map(|i| format!("d{i}")).collect(),
        dense_transform: if rng.random_bool(0.5) { DenseTransform::Log1p } else { DenseTransform::Identity },
        fields,
        dim,
        bottom: if dense { vec![nd, 16, dim] } else { Vec::new() },
        top,
        embedding,
        key_mode,
    };
    let mut model = Dlrm::init(cfg, rng.random()).unwrap();
    // Larger embeddings than the init range, so the interaction matters in the comparison.
    for w in &mut model.embedding {
        *w = rng.random_range(-0.5..0.5);
    }
    model
}

pub fn values(rng: &mut StdRng, kind: FieldKind) -> Vec<u32> {
    let n = if kind == FieldKind::Categorical { 1 } else { rng.random_range(0..4) };
    (0..n).map(|_| rng.random()).collect()
}

/// A random request for a model: each field goes to the context or the candidates by chance.
pub fn random_request(rng: &mut StdRng, cfg: &ModelConfig, rows: usize) -> (Context, Candidates) {
    let dense = (0..cfg.dense.len()).map(|_| rng.random_range(-1.0..20.0)).collect();
    let fields: Vec<Option<Vec<u32>>> =
        cfg.fields.iter().map(|f| rng.random_bool(0.5).then(|| values(rng, f.kind))).collect();
    let mut cand = Vec::new();
    for (f, v) in cfg.fields.iter().zip(&fields) {
        if v.is_none() {
            let mut fv = FieldValues { offsets: vec![0], values: Vec::new() };
            for _ in 0..rows {
                fv.values.extend(values(rng, f.kind));
                fv.offsets.push(fv.values.len() as u32);
            }
            cand.push(fv);
        }
    }
    (Context { dense, fields }, Candidates { rows, fields: cand })
}

/// A request for a model as `split` says: 0 each field to the context or the candidates by
/// chance ([`random_request`]), 1 every field a candidate's (no context field), 2 every field in
/// the context (no candidate field).
pub fn request_split(rng: &mut StdRng, cfg: &ModelConfig, rows: usize, split: usize) -> (Context, Candidates) {
    let (mut ctx, mut cands) = random_request(rng, cfg, rows);
    match split {
        0 => {}
        1 => {
            let full = pocketrec::rank::full_rows(cfg, &ctx, &cands);
            ctx.fields.iter_mut().for_each(|f| *f = None);
            cands = Candidates { rows, fields: full.fields };
        }
        _ => {
            for (f, spec) in cfg.fields.iter().enumerate() {
                ctx.fields[f].get_or_insert_with(|| values(rng, spec.kind));
            }
            cands = Candidates { rows, fields: Vec::new() };
        }
    }
    (ctx, cands)
}

pub fn forward(model: &Dlrm, batch: &Batch) -> Vec<f32> {
    model.forward(batch, &mut Workspace::default()).to_vec()
}

/// `|a − b| <= tol · (|b| + 1)`: relative for logits above 1, absolute below, where cancellation
/// in the sums makes a purely relative bound meaningless.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && (x - y).abs() <= tol * (y.abs() + 1.0), "{what}: row {i}: {x} vs {y}");
    }
}

/// A labelled batch of `rows` random rows of `cfg`'s schema: bags of 0 to 3 values, values below 50
/// (so rows share embedding blocks).
pub fn random_batch(rng: &mut StdRng, cfg: &ModelConfig, rows: usize) -> Batch {
    let mut batch = Batch::with_schema(cfg.fields.len());
    for _ in 0..rows {
        let dense: Vec<f32> = (0..cfg.dense.len()).map(|_| rng.random_range(-1.0..4.0)).collect();
        let sparse: Vec<Vec<u32>> = cfg
            .fields
            .iter()
            .map(|f| {
                let n = if f.kind == FieldKind::Categorical { 1 } else { rng.random_range(0..4) };
                (0..n).map(|_| rng.random_range(0..50)).collect()
            })
            .collect();
        batch.push_row(&dense, sparse.iter().map(|v| v.as_slice()), Some(rng.random_range(0..2) as f32));
    }
    batch
}
