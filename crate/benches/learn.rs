//! On-device learning latency, the native side of `make bench-browser`: one like (one positive and
//! four negatives) learned with the default [`LearnOptions`], on the kaggle preset at 10 MB (Criteo
//! rows, `pocketrec init --preset kaggle --memory 10MB --seed 1`) and on the demo model (a like on
//! its catalog, the rows the browser bench builds). Each iteration is one more `Learner::learn`
//! call on the same model and rows, as repeated likes are.
//!
//! Single thread (what wasm runs): `cargo bench -p pocketrec --no-default-features --bench learn`.
//! The demo model is read from `$POCKETREC_DEMO` (default `out/demo`, made by `make demo-model`);
//! without it only the kaggle case runs.

use criterion::{Criterion, criterion_group, criterion_main};
use pocketrec::config::criteo_schema;
use pocketrec::{Batch, Dlrm, HashVariant, LearnOptions, Learner, ModelConfig, Preset, StoredDtype};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// One like: the first row a positive, the other four negatives.
const LABELS: [f32; 5] = [1.0, 0.0, 0.0, 0.0, 0.0];

fn kaggle() -> (Dlrm, Batch) {
    let (dense, fields) = criteo_schema();
    let cfg = ModelConfig::preset(Preset::Kaggle, dense, fields, 10_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
        .expect("kaggle preset fits 10 MB");
    let mut rng = StdRng::seed_from_u64(1);
    let mut batch = Batch::with_schema(26);
    for _ in 0..LABELS.len() {
        let dense: Vec<f32> = (0..13).map(|_| rng.random_range(0.0..1000.0f32).floor()).collect();
        let keys: Vec<[u32; 1]> = (0..26).map(|_| [rng.random()]).collect();
        batch.push_row(&dense, keys.iter().map(|k| k.as_slice()), None);
    }
    (Dlrm::init(cfg, 1).expect("valid config"), batch)
}

/// The demo model and one like on its catalog, or why not: the context of a user in the evening
/// who liked items 10 to 19, item 0 the positive and items 1 to 4 the negatives (the browser bench
/// builds the same rows).
fn demo() -> Result<(Dlrm, Batch), String> {
    let dir = std::env::var_os("POCKETREC_DEMO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../out/demo"));
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e} (run make demo-model)", dir.join(name).display()))
    };
    let model = pocketrec::file::from_bytes(&read("model.safetensors")?).map_err(|e| e.to_string())?.model;
    let catalog: Value = serde_json::from_slice(&read("catalog.json")?).map_err(|e| e.to_string())?;
    let items = catalog["items"].as_array().ok_or("catalog.json has no items")?;
    let recent = &items[10..20];
    let context = json!({
        "hour": 20, "session_length": 1, "history_length": 10, "time_of_day": "evening", "device": "mobile",
        "recent_items": recent.iter().map(|i| i["id"].clone()).collect::<Vec<_>>(),
        "recent_categories": recent.iter().map(|i| i["category"].clone()).collect::<Vec<_>>(),
    });
    let rows: Vec<Value> = items[..LABELS.len()]
        .iter()
        .map(|it| {
            let mut row = context.clone();
            for key in ["category", "attributes"] {
                row[key] = it[key].clone();
            }
            row["item"] = it["id"].clone();
            row
        })
        .collect();
    let batch = pocketrec::input::batch_from_objects(&model.config, &rows).map_err(|e| e.to_string())?;
    Ok((model, batch))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("learn one like");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let mut cases = vec![("kaggle 10MB", kaggle())];
    match demo() {
        Ok(d) => cases.push(("demo 1MB", d)),
        Err(why) => eprintln!("demo model skipped: {why}"),
    }
    let opts = LearnOptions::default();
    eprintln!("options: {opts:?}");
    for (name, (mut model, batch)) in cases {
        let mut learner = Learner::new(&model);
        g.bench_function(name, |b| b.iter(|| learner.learn(&mut model, &batch, &LABELS, &opts).expect("learns")));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
