//! Checkpoints: one safetensors file holding the model (f32), the optimizer state as `optim.*`
//! tensors, and in its metadata the training position, the options the run was started with and
//! a digest of all the rest. Written atomically (see [`crate::io`]), so a crash never leaves a
//! half-written checkpoint; [`load`] refuses a file whose digest does not match (a flipped bit, a
//! cut copy), and [`differences`] names the options a resume would change, so `--resume`
//! continues the same run bit-identically or says why it cannot.
//!
//! The digest is xxh3-64 over the safetensors header (as JSON, without the digest entry) followed
//! by the tensor bytes, stored as `__metadata__["checkpoint_digest"]`: every byte of the file is
//! covered, and the file stays a plain safetensors file.

use crate::train::Position;
use anyhow::{Context as _, Result, bail};
use pocketrec::{Dlrm, Optimizer, OptimizerKind, StoredDtype};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The options a run was started with, by flag name, as text.
pub type Options = BTreeMap<String, String>;

pub struct Checkpoint {
    pub model: Dlrm,
    pub optimizer: Optimizer,
    pub position: Position,
    pub options: Options,
}

const PREFIX: &str = "optim.";
const DIGEST_KEY: &str = "checkpoint_digest";

pub fn save(path: &Path, model: &Dlrm, opt: &Optimizer, pos: &Position, options: &Options) -> Result<()> {
    let extras: Vec<(String, &[f32])> =
        opt.named_state(model).into_iter().map(|(n, s)| (format!("{PREFIX}{n}"), s)).collect();
    let meta = serde_json::json!({
        "checkpoint": { "position": pos, "optimizer": opt.kind(), "lr": opt.lr, "optimizer_step": opt.step, "options": options }
    });
    let bytes = seal(pocketrec::file::to_bytes_with(model, StoredDtype::F32, &meta, &extras)?)?;
    crate::io::write_atomic(path, &bytes).with_context(|| format!("writing checkpoint {}", path.display()))
}

pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no checkpoint at {}: nothing to resume (a finished run removes its checkpoint unless --keep-checkpoint)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
    };
    verify(&bytes).with_context(|| format!("checkpoint {}", path.display()))?;
    let (file, mut extras) = pocketrec::file::from_bytes_with(&bytes, Some(PREFIX))
        .with_context(|| format!("loading checkpoint {}", path.display()))?;
    let ck = file
        .provenance
        .get("checkpoint")
        .with_context(|| format!("{} is a model file, not a checkpoint", path.display()))?;
    let position: Position = serde_json::from_value(ck["position"].clone()).context("checkpoint position")?;
    let kind: OptimizerKind = serde_json::from_value(ck["optimizer"].clone()).context("checkpoint optimizer")?;
    let options: Options = serde_json::from_value(ck["options"].clone()).context("checkpoint options")?;
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
    Ok(Checkpoint { model: file.model, optimizer, position, options })
}

/// One option that differs between a checkpoint and the run resuming it.
#[derive(Debug, PartialEq)]
pub struct Difference {
    pub option: String,
    pub saved: String,
    pub now: String,
}

/// Every option whose value differs (or is present on one side only), in name order.
pub fn differences(saved: &Options, now: &Options) -> Vec<Difference> {
    let none = String::from("(not set)");
    let mut keys: Vec<&String> = saved.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| saved.get(*k) != now.get(*k))
        .map(|k| Difference {
            option: k.clone(),
            saved: saved.get(k).unwrap_or(&none).clone(),
            now: now.get(k).unwrap_or(&none).clone(),
        })
        .collect()
}

/// The safetensors header as JSON and the tensor bytes after it.
fn split(bytes: &[u8]) -> Result<(Value, &[u8])> {
    let n = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let end = n.and_then(|n| usize::try_from(n).ok()).and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
    let Some(end) = end else {
        bail!("is corrupt: its header length is wrong (a cut or damaged file); start again without --resume")
    };
    let header = serde_json::from_slice(&bytes[8..end])
        .map_err(|e| anyhow::anyhow!("is corrupt: its header is not JSON ({e}); start again without --resume"))?;
    Ok((header, &bytes[end..]))
}

fn digest(header: &Value, data: &[u8]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&serde_json::to_vec(header).expect("JSON values serialize"));
    h.update(data);
    format!("xxh3-64:{:016x}", h.digest())
}

/// Adds the digest to a serialized checkpoint.
fn seal(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let (mut header, data) = split(&bytes)?;
    let d = digest(&header, data);
    let meta =
        header.get_mut("__metadata__").and_then(Value::as_object_mut).context("the checkpoint has no metadata")?;
    meta.insert(DIGEST_KEY.into(), Value::String(d));
    let mut text = serde_json::to_vec(&header)?;
    // safetensors pads its header with spaces to a multiple of 8 bytes, which keeps tensors aligned.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// Checks the digest [`seal`] wrote.
fn verify(bytes: &[u8]) -> Result<()> {
    let (mut header, data) = split(bytes)?;
    let stored = header
        .get_mut("__metadata__")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(DIGEST_KEY))
        .and_then(|v| v.as_str().map(str::to_string));
    let Some(stored) = stored else {
        bail!(
            "has no digest: it was written by an older pocketrec, or is not a checkpoint; start again without --resume"
        )
    };
    if stored != digest(&header, data) {
        bail!(
            "is corrupt (digest mismatch): the file changed after it was written; delete it and start again without --resume"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocketrec::{ModelConfig, Preset};

    fn checkpoint_bytes(dir: &Path) -> Vec<u8> {
        let (dense, fields) = pocketrec::config::criteo_schema();
        let config = ModelConfig::preset(
            Preset::Small,
            dense,
            fields,
            120_000,
            4,
            pocketrec::HashVariant::UmaV1,
            StoredDtype::F32,
        )
        .unwrap();
        let model = Dlrm::init(config, 1).unwrap();
        let opt = Optimizer::new(OptimizerKind::Adam, 0.01, &model);
        let path = dir.join("c.ckpt");
        let options = Options::from([("--seed".to_string(), "1".to_string())]);
        save(&path, &model, &opt, &Position::default(), &options).unwrap();
        let ck = load(&path).unwrap();
        assert_eq!(ck.options, options);
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let dir = std::env::temp_dir().join(format!("pocketrec-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = checkpoint_bytes(&dir);
        assert!(verify(&bytes).is_ok());
        // Every byte of the header and a spread of the tensor bytes, each with one bit flipped.
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let positions = (0..header_end).chain((header_end..bytes.len()).step_by(997)).chain([bytes.len() - 1]);
        for i in positions {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(verify(&bad).is_err(), "a flip of bit {bit:#x} at byte {i} of {} went unnoticed", bytes.len());
            }
        }
        let err = verify(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("digest mismatch") || err.contains("corrupt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn differences_name_each_changed_option() {
        let a = Options::from([("--seed".into(), "1".into()), ("--batch".into(), "256".into())]);
        let b = Options::from([
            ("--seed".into(), "2".into()),
            ("--batch".into(), "256".into()),
            ("--z".into(), "4".into()),
        ]);
        let d = differences(&a, &b);
        assert_eq!(d.iter().map(|d| d.option.as_str()).collect::<Vec<_>>(), ["--seed", "--z"]);
        assert_eq!((d[0].saved.as_str(), d[0].now.as_str()), ("1", "2"));
        assert_eq!(d[1].saved, "(not set)");
    }
}
