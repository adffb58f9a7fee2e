//! The wgpu backend against the CPU: ROBE-Z indices bit for bit, logits within 1e-4, the same
//! top-k apart from exact ties, and context-once ranking on the GPU against full rows on the CPU.
//!
//! Runs on any Vulkan/Metal/DX12 adapter; on a CPU-only Linux machine Mesa's lavapipe
//! (`mesa-vulkan-drivers`) is one. Only a missing adapter makes a test skip, and it says so; with
//! `POCKETREC_REQUIRE_GPU=1` (CI) a missing adapter fails the test instead.
//! `cargo test -p pocketrec --features gpu --test gpu_parity`

mod common;

use common::{assert_close, forward, random_model, random_model_with, random_request, request_split};
use pocketrec::backend::gpu::GpuBackend;
use pocketrec::config::criteo_schema;
use pocketrec::rank::{self, Candidates, Context};
use pocketrec::{
    BackendChoice, Dlrm, EmbeddingConfig, Error, FieldValues, HashVariant, KeyMode, ModelConfig, Preset, RobeHash,
    Scorer, StoredDtype,
};
use pollster::block_on;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// The GPU backend for a model, or `None` when there is no adapter ([`common::no_gpu_adapter`]).
fn gpu(model: &Dlrm) -> Option<GpuBackend> {
    match block_on(GpuBackend::new(model)) {
        Ok(g) => Some(g),
        Err(Error::NoAdapter(why)) => {
            common::no_gpu_adapter(&why);
            None
        }
        Err(e) => panic!("GPU backend failed: {e}"),
    }
}

/// A kaggle-shaped model over Criteo's schema with a given embedding and key mode.
fn criteo_model(embedding: EmbeddingConfig, key_mode: KeyMode) -> Dlrm {
    let (dense, fields) = criteo_schema();
    let mut cfg =
        ModelConfig::preset(Preset::Small, dense, fields, 1_000_000, 4, HashVariant::UmaV1, StoredDtype::F32).unwrap();
    cfg.embedding = embedding;
    cfg.key_mode = key_mode;
    Dlrm::init(cfg, 1).unwrap()
}

#[test]
fn indices_are_bit_exact() {
    let mut rng = StdRng::seed_from_u64(42);
    // Large dictionary tables so the global keys have high words too.
    let dictionary = KeyMode::Dictionary { table_sizes: (0..26).map(|_| rng.random_range(1..1u64 << 36)).collect() };
    let kaggle_tables = KeyMode::Dictionary {
        table_sizes: vec![
            1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10,
            5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
        ],
    };
    let cases = [
        (540201, 1, HashVariant::UmaV1, KeyMode::Raw),
        (540201, 4, HashVariant::UmaV1, kaggle_tables.clone()),
        (2621440, 16, HashVariant::UmaV1, dictionary.clone()),
        (2_499_000, 4, HashVariant::NewRobez, KeyMode::Raw),
        (540201, 4, HashVariant::NewRobez, dictionary),
        (17, 16, HashVariant::NewRobez, kaggle_tables.clone()),
        (1_000_003, 8, HashVariant::UmaV1, KeyMode::Raw),
        (2_024_015, 4, HashVariant::Independent, KeyMode::Raw),
        (540201, 4, HashVariant::Independent, kaggle_tables.clone()),
    ];
    let n = 100_000;
    for (m, z, variant, key_mode) in cases {
        let model = criteo_model(EmbeddingConfig::Robe { m, z, hash: variant }, key_mode.clone());
        let Some(mut g) = gpu(&model) else { return };
        let fields: Vec<u32> = (0..n).map(|i| if i < 26 { i as u32 } else { rng.random_range(0..26) }).collect();
        let values: Vec<u32> = (0..n)
            .map(|i| match i % 5 {
                0 => u32::MAX - rng.random_range(0..3),
                1 => rng.random_range(0..3),
                _ => rng.random(),
            })
            .collect();
        let got = block_on(g.block_offsets(&fields, &values)).unwrap();
        let lookup = model.lookup();
        let hash = RobeHash::new(m, z, variant).unwrap();
        let blocks = lookup.blocks();
        assert_eq!(got.len(), n * blocks);
        let offsets = key_mode.table_offsets();
        for i in 0..n {
            let key = key_mode.global_key(&offsets, fields[i] as usize, values[i]);
            for c in 0..blocks {
                let want = hash.block_offset(key, c as u32);
                assert_eq!(got[i * blocks + c], want, "M={m} Z={z} {variant} key {key:#x} block {c}");
            }
        }
    }
}

#[test]
fn full_table_slots_match() {
    let mut rng = StdRng::seed_from_u64(3);
    let model = criteo_model(
        EmbeddingConfig::Full { rows: (0..26).map(|_| rng.random_range(1..5000)).collect() },
        KeyMode::Raw,
    );
    let Some(mut g) = gpu(&model) else { return };
    let n = 20_000;
    let fields: Vec<u32> = (0..n).map(|_| rng.random_range(0..26)).collect();
    let values: Vec<u32> = (0..n).map(|_| rng.random()).collect();
    let got = block_on(g.block_offsets(&fields, &values)).unwrap();
    for i in 0..n {
        assert_eq!(got[i] as usize, model.lookup().block_offset(fields[i] as usize, values[i], 0));
    }
}

#[test]
fn logits_match_the_cpu() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut worst = 0.0f32;
    for case in 0..40 {
        let model = random_model(&mut rng);
        let Some(mut g) = gpu(&model) else { return };
        let rows = [1, 7, 63, 65, 300][case % 5];
        let (ctx, cands) = random_request(&mut rng, &model.config, rows);
        let batch = rank::full_rows(&model.config, &ctx, &cands);
        let want = forward(&model, &batch);
        let got = block_on(g.logits(&batch)).unwrap();
        for (x, y) in got.iter().zip(&want) {
            worst = worst.max((x - y).abs() / (y.abs() + 1.0));
        }
        assert_close(&got, &want, 1e-4, &format!("case {case}"));
    }
    eprintln!("worst |gpu - cpu| / (|cpu| + 1) = {worst:e}");
}

/// Layers wide enough for the 128×128 GEMM tiles, with widths and row counts that fill no tile
/// (nor a 4-wide column group) exactly, and the skinny paths beside them.
#[test]
fn wide_odd_layers_match_the_cpu() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in 0..6 {
        let mut cfg = random_model(&mut rng).config;
        let width = cfg.top[0];
        cfg.bottom = vec![cfg.dense.len(), [131, 97, 250][case % 3], cfg.dim];
        cfg.top = vec![width, [203, 130, 96][case % 3], [97, 129, 5][case % 3], 1];
        let mut model = Dlrm::init(cfg, rng.random()).unwrap();
        model.embedding.iter_mut().for_each(|w| *w = rng.random_range(-0.5..0.5));
        let Some(mut g) = gpu(&model) else { return };
        let rows = [95, 96, 300, 1001, 129, 2][case];
        let (ctx, cands) = random_request(&mut rng, &model.config, rows);
        let batch = rank::full_rows(&model.config, &ctx, &cands);
        let want = forward(&model, &batch);
        assert_close(&block_on(g.logits(&batch)).unwrap(), &want, 1e-4, &format!("full rows, case {case}"));
        let got = block_on(g.rank_logits(&ctx, &cands)).unwrap();
        assert_close(&got, &want, 1e-4, &format!("context-once, case {case}"));
    }
}

#[test]
fn context_once_on_gpu_equals_full_rows_on_cpu() {
    let mut rng = StdRng::seed_from_u64(10);
    let mut worst = 0.0f32;
    for case in 0..40 {
        let model = random_model(&mut rng);
        let Some(mut g) = gpu(&model) else { return };
        let rows = [1, 5, 64, 129, 500][case % 5];
        let (ctx, cands) = random_request(&mut rng, &model.config, rows);
        let want = forward(&model, &rank::full_rows(&model.config, &ctx, &cands));
        let got = block_on(g.rank_logits(&ctx, &cands)).unwrap();
        for (x, y) in got.iter().zip(&want) {
            worst = worst.max((x - y).abs() / (y.abs() + 1.0));
        }
        assert_close(&got, &want, 1e-4, &format!("case {case}"));
    }
    eprintln!("worst |gpu context-once - cpu full rows| / (|cpu| + 1) = {worst:e}");
}

/// No dense features: no bottom MLP on the GPU either, full rows and context-once, including
/// requests with no context field and with no candidate field; and top-k selected on the GPU.
#[test]
fn model_without_dense_features_matches_the_cpu() {
    let mut rng = StdRng::seed_from_u64(16);
    for case in 0..24 {
        let model = random_model_with(&mut rng, false);
        let Some(mut g) = gpu(&model) else { return };
        let rows = [1, 7, 65, 300][case % 4];
        let (ctx, cands) = request_split(&mut rng, &model.config, rows, case % 3);
        let batch = rank::full_rows(&model.config, &ctx, &cands);
        let want = forward(&model, &batch);
        assert_close(&block_on(g.logits(&batch)).unwrap(), &want, 1e-4, &format!("full rows, case {case}"));
        let got = block_on(g.rank_logits(&ctx, &cands)).unwrap();
        assert_close(&got, &want, 1e-4, &format!("context-once, case {case}"));
    }
    // An Avazu-like schema on the kaggle shapes: 22 categorical fields, 3 of them the candidate's.
    let fields = (0..22).map(|i| pocketrec::Field { name: format!("c{i}"), kind: pocketrec::FieldKind::Categorical });
    let cfg = ModelConfig::preset(
        Preset::Kaggle,
        Vec::new(),
        fields.collect(),
        4_000_000,
        4,
        HashVariant::UmaV1,
        StoredDtype::F32,
    )
    .unwrap();
    let mut model = Dlrm::init(cfg, 6).unwrap();
    model.embedding.iter_mut().for_each(|w| *w = rng.random_range(-0.05..0.05));
    let Some(_) = gpu(&model) else { return };
    let mut scorer = block_on(Scorer::new(model, BackendChoice::WebGpu)).unwrap();
    let rows = 5000; // top-k on the GPU
    let ctx = Context { dense: Vec::new(), fields: (0..22).map(|f| (f < 19).then(|| vec![rng.random()])).collect() };
    let cands = Candidates {
        rows,
        fields: (0..3).map(|_| FieldValues::single((0..rows).map(|_| rng.random()).collect())).collect(),
    };
    let cpu_logits = rank::logits(scorer.model(), &ctx, &cands).unwrap();
    let got = block_on(scorer.rank(&ctx, &cands, 10)).unwrap();
    assert_same_top_k(&got, &rank::top_k(&cpu_logits, 10), &cpu_logits);
}

/// A backend scores the model it was built from and no other: its requests take no model (so a
/// request cannot be read against another model's shapes), it keeps that model's config, and it
/// needs nothing more from the caller's copy, which may change or go.
#[test]
fn backend_scores_the_model_it_was_built_from() {
    let mut rng = StdRng::seed_from_u64(15);
    let mut model = random_model(&mut rng);
    let Some(mut g) = gpu(&model) else { return };
    assert_eq!(g.config(), &model.config);
    let (ctx, cands) = random_request(&mut rng, &model.config, 70);
    let batch = rank::full_rows(&model.config, &ctx, &cands);
    let want = forward(&model, &batch);
    model.embedding.iter_mut().for_each(|w| *w += 1.0);
    model.top.clear();
    drop(model);
    assert_close(&block_on(g.logits(&batch)).unwrap(), &want, 1e-4, "full rows");
    assert_close(&block_on(g.rank_logits(&ctx, &cands)).unwrap(), &want, 1e-4, "context-once");
}

/// The inputs go up the same whether written into the mapped upload buffer (native) or through
/// `queue.write_buffer` (the browser): the same bits, as requests grow and shrink.
#[test]
fn both_upload_paths_give_the_same_bits() {
    let mut rng = StdRng::seed_from_u64(14);
    for case in 0..6 {
        let model = random_model(&mut rng);
        let Some(mut mapped) = gpu(&model) else {
            return;
        };
        let mut written = gpu(&model).unwrap();
        written.set_in_place_uploads(false);
        for rows in [3, 700, 40, 2500] {
            let (ctx, cands) = random_request(&mut rng, &model.config, rows);
            let batch = rank::full_rows(&model.config, &ctx, &cands);
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let a = bits(block_on(mapped.logits(&batch)).unwrap());
            let b = bits(block_on(written.logits(&batch)).unwrap());
            assert_eq!(a, b, "full rows, case {case}, {rows} rows");
            let a = bits(block_on(mapped.rank_logits(&ctx, &cands)).unwrap());
            let b = bits(block_on(written.rank_logits(&ctx, &cands)).unwrap());
            assert_eq!(a, b, "context-once, case {case}, {rows} rows");
            assert_eq!(a.len(), rows);
        }
    }
}

/// A kaggle-shaped request: dense and the first 20 fields in the context, the last 6 per candidate.
fn kaggle_request(rng: &mut StdRng, rows: usize) -> (Context, Candidates) {
    let ctx = Context {
        dense: (0..13).map(|_| rng.random_range(0.0..100.0)).collect(),
        fields: (0..26).map(|f| (f < 20).then(|| vec![rng.random()])).collect(),
    };
    let fields = (0..6).map(|_| FieldValues::single((0..rows).map(|_| rng.random()).collect())).collect();
    (ctx, Candidates { rows, fields })
}

/// Same top-k apart from ties: where the order differs, the CPU logits of the two candidates
/// are equal, or within a few float roundings (1e-6 relative), closer than the two backends'
/// summation orders can separate (seen on lavapipe: 0.24192253 vs 0.2419225).
fn assert_same_top_k(got: &[pocketrec::Ranked], want: &[pocketrec::Ranked], cpu_logits: &[f32]) {
    assert_eq!(got.len(), want.len());
    let tied = |a: f32, b: f32| (a - b).abs() <= 1e-6 * (b.abs() + 1.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.index == w.index || tied(cpu_logits[g.index], cpu_logits[w.index]),
            "position {i}: gpu {g:?} vs cpu {w:?}"
        );
        assert!((g.score - w.score).abs() <= 1e-4);
    }
}

#[test]
fn top_k_matches_the_cpu_on_and_off_the_gpu() {
    let (dense, fields) = criteo_schema();
    let cfg =
        ModelConfig::preset(Preset::Kaggle, dense, fields, 4_000_000, 4, HashVariant::UmaV1, StoredDtype::F32).unwrap();
    let mut model = Dlrm::init(cfg, 5).unwrap();
    // Embeddings as large as a trained model's, so candidates' logits spread out.
    let mut rng = StdRng::seed_from_u64(12);
    model.embedding.iter_mut().for_each(|w| *w = rng.random_range(-0.05..0.05));
    let Some(_) = gpu(&model) else { return };
    let mut scorer = block_on(Scorer::new(model, BackendChoice::WebGpu)).unwrap();
    assert_eq!(scorer.backend_name(), "webgpu");
    // 300 rows read the logits back; 40,000 rows select on the GPU (and span two row chunks when
    // chunks are 32,768 rows).
    for (rows, k) in [(300, 10), (40_000, 10), (40_000, 100), (3000, 3000)] {
        let (ctx, cands) = kaggle_request(&mut rng, rows);
        let cpu_logits = rank::logits(scorer.model(), &ctx, &cands).unwrap();
        let want = rank::top_k(&cpu_logits, k);
        let got = block_on(scorer.rank(&ctx, &cands, k)).unwrap();
        assert_same_top_k(&got, &want, &cpu_logits);
    }
    // Exact ties: identical candidates rank by index on both paths.
    let (ctx, mut cands) = kaggle_request(&mut rng, 10_000);
    for f in &mut cands.fields {
        f.values.iter_mut().for_each(|v| *v %= 7);
    }
    let cpu_logits = rank::logits(scorer.model(), &ctx, &cands).unwrap();
    let want = rank::top_k(&cpu_logits, 20);
    let got = block_on(scorer.rank(&ctx, &cands, 20)).unwrap();
    assert_same_top_k(&got, &want, &cpu_logits);
}

#[test]
fn scorer_on_gpu_handles_bad_and_empty_requests() {
    let mut rng = StdRng::seed_from_u64(13);
    let model = criteo_model(EmbeddingConfig::Robe { m: 100_000, z: 4, hash: HashVariant::UmaV1 }, KeyMode::Raw);
    let Some(_) = gpu(&model) else { return };
    let mut scorer = block_on(Scorer::new(model, BackendChoice::Auto)).unwrap();
    assert_eq!(scorer.backend_name(), "webgpu", "{}", scorer.backend_reason());
    let (ctx, cands) = kaggle_request(&mut rng, 50);
    assert!(block_on(scorer.rank(&ctx, &cands, 0)).unwrap().is_empty());
    let none = Candidates { rows: 0, fields: vec![FieldValues { offsets: vec![0], values: vec![] }; 6] };
    assert!(block_on(scorer.rank(&ctx, &none, 5)).unwrap().is_empty());
    let mut bad = cands.clone();
    bad.fields.pop();
    assert!(matches!(block_on(scorer.rank(&ctx, &bad, 5)), Err(Error::Request(_))));
    // Every field in the context: all candidates score the same and rank by index.
    let all = Context { dense: ctx.dense.clone(), fields: (0..26).map(|_| Some(vec![1])).collect() };
    let same = Candidates { rows: 5, fields: vec![] };
    let top = block_on(scorer.rank(&all, &same, 3)).unwrap();
    assert_eq!(top.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
    let cpu = rank::logits(scorer.model(), &all, &same).unwrap();
    assert!((top[0].logit - cpu[0]).abs() <= 1e-4 * (cpu[0].abs() + 1.0));
}
