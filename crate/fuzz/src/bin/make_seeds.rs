//! Writes a few small, valid model files as the fuzzer's seed corpus:
//! `cargo run --manifest-path crate/fuzz/Cargo.toml --bin make_seeds -- crate/fuzz/corpus/model_file`.

use pocketrec::config::{EmbeddingConfig, Field, FieldKind, ModelConfig, Preset, StoredDtype, criteo_schema};
use pocketrec::file::to_bytes;
use pocketrec::{DenseTransform, Dlrm, HashVariant, KeyMode};

fn tiny(embedding: EmbeddingConfig, key_mode: KeyMode, kinds: &[FieldKind]) -> ModelConfig {
    let fields: Vec<Field> =
        kinds.iter().enumerate().map(|(i, &kind)| Field { name: format!("f{i}"), kind }).collect();
    let n = fields.len() + 1;
    ModelConfig {
        dense: vec!["x".into()],
        dense_transform: DenseTransform::Identity,
        fields,
        dim: 2,
        bottom: vec![1, 2],
        top: vec![2 + n * (n - 1) / 2, 3, 1],
        embedding,
        key_mode,
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_seeds DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let robe = EmbeddingConfig::Robe { m: 8, z: 1, hash: HashVariant::UmaV1 };
    let cat = FieldKind::Categorical;
    let (dense, fields) = criteo_schema();
    let seeds = [
        ("tiny-f32", tiny(robe.clone(), KeyMode::Raw, &[cat]), StoredDtype::F32),
        ("tiny-f16", tiny(robe.clone(), KeyMode::Raw, &[cat]), StoredDtype::F16),
        (
            "tiny-bags-newrobez",
            tiny(EmbeddingConfig::Robe { m: 9, z: 2, hash: HashVariant::NewRobez }, KeyMode::Raw, &[
                FieldKind::BagSum,
                FieldKind::BagMean,
            ]),
            StoredDtype::F32,
        ),
        ("tiny-dictionary", tiny(robe, KeyMode::Dictionary { table_sizes: vec![5, 7] }, &[cat, cat]), StoredDtype::F16),
        ("tiny-full", tiny(EmbeddingConfig::Full { rows: vec![3] }, KeyMode::Raw, &[cat]), StoredDtype::F32),
        (
            "small-preset-f16",
            ModelConfig::preset(Preset::Small, dense, fields, 60_000, 4, HashVariant::UmaV1, StoredDtype::F16).unwrap(),
            StoredDtype::F16,
        ),
    ];
    for (name, config, dtype) in seeds {
        let model = Dlrm::init(config, 1).unwrap();
        let bytes = to_bytes(&model, dtype, &serde_json::json!({"seed": 1, "data": name})).unwrap();
        std::fs::write(format!("{dir}/{name}.safetensors"), &bytes).unwrap();
        println!("{name}: {} bytes", bytes.len());
    }
}
