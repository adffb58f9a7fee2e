//! `pocketrec inspect`: what a model file holds (config, M, Z, hash, dtype) and where its bytes go
//! (embedding array, bottom MLP, top MLP, header). Validates the file fully on the way.

use crate::cli::verify::VerifyArgs;
use anyhow::{Context, Result};
use clap::Args;
use pocketrec::config::{EmbeddingConfig, FieldKind};
use pocketrec::file::{DigestCheck, FORMAT_TAG, FORMAT_VERSION, ModelFile};
use pocketrec::{KeyMode, Linear};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Args)]
pub struct InspectArgs {
    /// Model file (.safetensors).
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let path = args.model.display();
    let bytes = std::fs::read(&args.model).with_context(|| format!("cannot read {path}"))?;
    let file = args.verify.read(&bytes).with_context(|| format!("{path}"))?;
    let report = describe(&file, bytes.len() as u64);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&path.to_string(), &file, &report);
    }
    Ok(())
}

fn mlp_params(layers: &[Linear]) -> u64 {
    layers.iter().map(|l| (l.weight.len() + l.bias.len()) as u64).sum()
}

/// Everything `inspect` reports, as JSON (the `--json` output; the text form prints from it).
fn describe(file: &ModelFile, file_bytes: u64) -> Value {
    let model = &file.model;
    let cfg = &model.config;
    let width = file.dtype.bytes();
    let (embedding, bottom, top) = (model.embedding.len() as u64, mlp_params(&model.bottom), mlp_params(&model.top));
    let parameters = embedding + bottom + top;
    let (z, hash) = match &cfg.embedding {
        EmbeddingConfig::Robe { z, hash, .. } => (json!(z), json!(hash.name())),
        EmbeddingConfig::Full { .. } => (Value::Null, Value::Null),
    };
    json!({
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "dtype": file.dtype.name(),
        "m": embedding,
        "z": z,
        "hash": hash,
        "params": { "embedding": embedding, "bottom_mlp": bottom, "top_mlp": top, "total": parameters },
        "bytes": {
            "embedding": embedding * width,
            "bottom_mlp": bottom * width,
            "top_mlp": top * width,
            "parameters": parameters * width,
            "header": file_bytes - parameters * width,
            "file": file_bytes,
        },
        "config": cfg,
        "provenance": file.provenance,
        "digest": file.digest.recorded(),
        "digest_verified": matches!(file.digest, DigestCheck::Verified(_)),
    })
}

fn print_text(path: &str, file: &ModelFile, r: &Value) {
    let cfg = &file.model.config;
    let widths = |w: &[usize]| w.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("-");
    let count = |kind| cfg.fields.iter().filter(|f| f.kind == kind).count();
    let key_mode = match &cfg.key_mode {
        KeyMode::Raw => "raw".to_string(),
        KeyMode::Dictionary { table_sizes } => format!("dictionary ({} tables)", table_sizes.len()),
    };
    println!("{path}: {FORMAT_TAG} v{FORMAT_VERSION}, {}", file.dtype.name());
    match &cfg.embedding {
        EmbeddingConfig::Robe { m, z, hash } => {
            println!("embedding:  ROBE-Z, M = {m}, Z = {z}, hash {}, keys {key_mode}", hash.name())
        }
        EmbeddingConfig::Full { rows } => println!("embedding:  full tables, rows {rows:?}, keys {key_mode}"),
    }
    println!(
        "features:   {} dense ({:?}), {} sparse ({} categorical, {} bag-sum, {} bag-mean), d = {}",
        cfg.dense.len(),
        cfg.dense_transform,
        cfg.fields.len(),
        count(FieldKind::Categorical),
        count(FieldKind::BagSum),
        count(FieldKind::BagMean),
        cfg.dim
    );
    match cfg.has_bottom() {
        true => println!("bottom MLP: {}", widths(&cfg.bottom)),
        false => println!("bottom MLP: none (no dense features; the top MLP sees the embeddings' dots)"),
    }
    println!("top MLP:    {}", widths(&cfg.top));
    // `Value`'s Display ignores widths: format the numbers themselves.
    let n = |v: &Value| v.as_u64().map_or(String::new(), |x| x.to_string());
    println!("{:<12}{:>14}{:>14}", "part", "parameters", "bytes");
    for (name, key) in [("embedding", "embedding"), ("bottom MLP", "bottom_mlp"), ("top MLP", "top_mlp")] {
        println!("{name:<12}{:>14}{:>14}", n(&r["params"][key]), n(&r["bytes"][key]));
    }
    println!("{:<12}{:>14}{:>14}", "header", "", n(&r["bytes"]["header"]));
    println!("{:<12}{:>14}{:>14}", "file", n(&r["params"]["total"]), n(&r["bytes"]["file"]));
    println!("provenance: {}", file.provenance);
    println!("digest:     {}", file.digest);
}
