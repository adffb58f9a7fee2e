//! Checkpoints: one safetensors file holding the model (f32), the optimizer state as `optim.*`
//! tensors and the training position in its metadata, written atomically (temp file, rename), so
//! a crash never leaves a half-written checkpoint and `--resume` continues bit-identically.

use crate::train::Position;
use anyhow::{Context as _, Result, bail};
use pocketrec::{Dlrm, Optimizer, OptimizerKind, StoredDtype};
use std::path::Path;

pub struct Checkpoint {
    pub model: Dlrm,
    pub optimizer: Optimizer,
    pub position: Position,
}

const PREFIX: &str = "optim.";

pub fn save(path: &Path, model: &Dlrm, opt: &Optimizer, pos: &Position, args: &impl serde::Serialize) -> Result<()> {
    let extras: Vec<(String, &[f32])> =
        opt.named_state(model).into_iter().map(|(n, s)| (format!("{PREFIX}{n}"), s)).collect();
    let meta = serde_json::json!({
        "checkpoint": { "position": pos, "optimizer": opt.kind(), "lr": opt.lr, "optimizer_step": opt.step, "args": args }
    });
    let bytes = pocketrec::file::to_bytes_with(model, StoredDtype::F32, &meta, &extras)?;
    crate::io::write_atomic(path, &bytes).with_context(|| format!("writing checkpoint {}", path.display()))
}

pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let (file, mut extras) = pocketrec::file::from_bytes_with(&bytes, Some(PREFIX))
        .with_context(|| format!("loading checkpoint {}", path.display()))?;
    let ck = file.provenance.get("checkpoint").with_context(|| format!("{} is a model file, not a checkpoint", path.display()))?;
    let position: Position = serde_json::from_value(ck["position"].clone()).context("checkpoint position")?;
    let kind: OptimizerKind = serde_json::from_value(ck["optimizer"].clone()).context("checkpoint optimizer")?;
    let lr = ck["lr"].as_f64().context("checkpoint learning rate")? as f32;
    let mut optimizer = Optimizer::new(kind, lr, &file.model);
    optimizer.step = ck["optimizer_step"].as_u64().context("checkpoint optimizer step")?;
    let named = optimizer.named_state_mut(&file.model);
    if named.len() != extras.len() {
        bail!("checkpoint {} has {} optimizer tensors, expected {}", path.display(), extras.len(), named.len());
    }
    for (name, state) in named {
        match extras.remove(&format!("{PREFIX}{name}")) {
            Some(values) if values.len() == state.len() => *state = values,
            _ => bail!("checkpoint {} lacks optimizer tensor {PREFIX}{name} of {} values", path.display(), state.len()),
        }
    }
    Ok(Checkpoint { model: file.model, optimizer, position })
}
