//! The model file (docs/model-file.md): safetensors, so any safetensors reader (Python included)
//! can open it, with the config, the stored dtype, the training provenance and a content digest in
//! `__metadata__`.
//!
//! Tensors: `robe.weight` [M] (the embedding array, whatever the embedding kind),
//! `bottom.{k}.weight` [out, in], `bottom.{k}.bias` [out], `top.{k}.weight`, `top.{k}.bias`, all in
//! one stored dtype (f32 or f16). The reader trusts nothing: it checks the header, the format tag
//! and version, the digest of the tensor bytes (a flipped bit in a weight would otherwise load as
//! a different, plausible model), the config, every tensor's name, dtype and shape, and that every
//! value is finite, and answers a [`FileError`] on any bytes, never a panic (`crate/fuzz` fuzzes it).

use crate::config::{ModelConfig, StoredDtype};
use crate::model::{Dlrm, Linear};
use half::f16;
use ndarray::{Array1, Array2, ArrayView1, ArrayViewD};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap, HashSet};

/// `__metadata__["format"]` of every pocketrec model file.
pub const FORMAT_TAG: &str = "pocketrec-dlrm";
/// `__metadata__["format_version"]` this build writes and reads.
pub const FORMAT_VERSION: &str = "1";
/// Name of the embedding array tensor.
pub const EMBEDDING_TENSOR: &str = "robe.weight";
/// `__metadata__` key of the content digest: [`DIGEST_ALGORITHM`], a colon, and the xxh3-64 of
/// every byte after the header as 16 lowercase hex digits.
pub const DIGEST_KEY: &str = "digest";
/// The digest algorithm this build writes and checks.
pub const DIGEST_ALGORITHM: &str = "xxh3-64";

/// The content digest of a file's tensor data (every byte after the header), as stored under
/// [`DIGEST_KEY`]: `"xxh3-64:"` and 16 hex digits.
pub fn digest(data: &[u8]) -> String {
    format!("{DIGEST_ALGORITHM}:{:016x}", xxhash_rust::xxh3::xxh3_64(data))
}

/// How a model file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Check the content digest (the default). Turn it off only on a user's explicit request, to
    /// salvage a damaged file: the values it loads may not be the ones that were written.
    pub verify_digest: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { verify_digest: true }
    }
}

/// What is known of a loaded file's content digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestCheck {
    /// The file's digest matched its tensor bytes.
    Verified(String),
    /// The file has a digest that was not checked ([`LoadOptions::verify_digest`] was off).
    NotChecked(String),
    /// The file has no digest: written before pocketrec recorded one. It loads, unchecked;
    /// writing it again adds one.
    Absent,
}

impl DigestCheck {
    /// The digest the file records, if any.
    pub fn recorded(&self) -> Option<&str> {
        match self {
            DigestCheck::Verified(d) | DigestCheck::NotChecked(d) => Some(d),
            DigestCheck::Absent => None,
        }
    }
}

impl std::fmt::Display for DigestCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DigestCheck::Verified(d) => write!(f, "{d} (verified)"),
            DigestCheck::NotChecked(d) => write!(f, "{d} (not checked)"),
            DigestCheck::Absent => {
                write!(f, "none (an older file: its tensor bytes cannot be checked; write it again to add one)")
            }
        }
    }
}

/// A model read from a file, with how it was stored and where it came from.
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub model: Dlrm,
    pub dtype: StoredDtype,
    /// Whatever the writer recorded: data, steps, seed, eval AUC...
    pub provenance: serde_json::Value,
    /// Whether the tensor bytes were checked against the file's digest.
    pub digest: DigestCheck,
}

/// Why a model file could not be written or read. Each message names the problem and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not a readable safetensors file ({0}): the file is truncated or corrupt; write or download it again")]
    Safetensors(String),
    #[error("not a pocketrec model: metadata key {key:?} is missing; use a file written by `pocketrec`")]
    MissingMetadata { key: &'static str },
    #[error("not a pocketrec model: format tag is {found:?}, expected {FORMAT_TAG:?}")]
    WrongFormat { found: String },
    #[error(
        "unsupported model file version {found:?}: this build reads version {FORMAT_VERSION}; use a matching pocketrec"
    )]
    WrongVersion { found: String },
    #[error("metadata dtype {found:?} is not f32 or f16: the file is corrupt")]
    UnknownDtype { found: String },
    #[error("the model config in the file is invalid: {0}")]
    Config(String),
    #[error("the provenance in the file is not JSON: {0}")]
    Provenance(String),
    #[error("tensor {name:?} is missing: the file does not match its config")]
    MissingTensor { name: String },
    #[error("unexpected tensor {name:?}: the file does not match its config")]
    UnexpectedTensor { name: String },
    #[error("tensor {name:?} is stored as {found}, the metadata says {expected}: the file is corrupt")]
    TensorDtype { name: String, found: String, expected: &'static str },
    #[error("tensor {name:?} has shape {found:?}, the config says {expected:?}: the file is corrupt")]
    Shape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("tensor {name:?} holds a non-finite value ({value}) at index {index}: the model diverged; retrain it")]
    NonFinite { name: String, index: usize, value: f32 },
    #[error("tensor {name:?} value {value} at index {index} is outside the f16 range (±65504); store it as f32")]
    F16Range { name: String, index: usize, value: f32 },
    #[error(
        "model file is corrupt (digest mismatch): its tensor bytes hash to {actual}, the file records {expected}, \
         so it changed after it was written; download or copy it again, or write it again from its source"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error(
        "model file digest {found:?} is not an {DIGEST_ALGORITHM} digest: the file is corrupt or from a newer pocketrec; use a matching pocketrec"
    )]
    UnknownDigest { found: String },
    #[error("cannot write the model file: {0}")]
    Write(String),
}

/// One tensor of the file: its name and its values (iterated in row-major order whatever the
/// array's memory layout).
struct Part<'a> {
    name: String,
    values: ArrayViewD<'a, f32>,
}

/// The tensors of `model`, in file order.
fn parts(model: &Dlrm) -> Vec<Part<'_>> {
    let mut parts = vec![Part { name: EMBEDDING_TENSOR.into(), values: ArrayView1::from(&model.embedding).into_dyn() }];
    for (mlp, layers) in [("bottom", &model.bottom), ("top", &model.top)] {
        for (k, layer) in layers.iter().enumerate() {
            parts.push(Part { name: format!("{mlp}.{k}.weight"), values: layer.weight.view().into_dyn() });
            parts.push(Part { name: format!("{mlp}.{k}.bias"), values: layer.bias.view().into_dyn() });
        }
    }
    parts
}

/// The tensor names and shapes a config implies, in file order. `None` when a size does not fit
/// this platform's `usize` (only possible on 32-bit targets).
fn expected_tensors(config: &ModelConfig) -> Option<Vec<(String, Vec<usize>)>> {
    let mut expected = vec![(EMBEDDING_TENSOR.to_string(), vec![usize::try_from(config.embedding_len()).ok()?])];
    for (mlp, widths) in [("bottom", &config.bottom), ("top", &config.top)] {
        for (k, w) in widths.windows(2).enumerate() {
            expected.push((format!("{mlp}.{k}.weight"), vec![w[1], w[0]]));
            expected.push((format!("{mlp}.{k}.bias"), vec![w[1]]));
        }
    }
    Some(expected)
}

fn safetensors_dtype(dtype: StoredDtype) -> Dtype {
    match dtype {
        StoredDtype::F32 => Dtype::F32,
        StoredDtype::F16 => Dtype::F16,
    }
}

/// Encodes values little-endian in `dtype`. Non-finite values, and for f16 values beyond its
/// range, are errors: the reader would refuse the file.
fn encode(part: &Part, dtype: StoredDtype) -> Result<Vec<u8>, FileError> {
    let mut out = Vec::with_capacity(part.values.len() * dtype.bytes() as usize);
    for (index, &value) in part.values.iter().enumerate() {
        if !value.is_finite() {
            return Err(FileError::NonFinite { name: part.name.clone(), index, value });
        }
        match dtype {
            StoredDtype::F32 => out.extend_from_slice(&value.to_le_bytes()),
            StoredDtype::F16 => {
                let half = f16::from_f32(value);
                if !half.is_finite() {
                    return Err(FileError::F16Range { name: part.name.clone(), index, value });
                }
                out.extend_from_slice(&half.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// Serializes a model: its parameters in `dtype`, its config, and `provenance` (any JSON the
/// caller wants to keep: data, steps, seed, eval AUC...).
pub fn to_bytes(model: &Dlrm, dtype: StoredDtype, provenance: &serde_json::Value) -> Result<Vec<u8>, FileError> {
    to_bytes_with(model, dtype, provenance, &[])
}

/// [`to_bytes`] plus extra 1-D tensors (a checkpoint's optimizer state), stored in `dtype` too.
/// Read them back with [`from_bytes_with`].
pub fn to_bytes_with(
    model: &Dlrm,
    dtype: StoredDtype,
    provenance: &serde_json::Value,
    extras: &[(String, &[f32])],
) -> Result<Vec<u8>, FileError> {
    let config = serde_json::to_string(&model.config).map_err(|e| FileError::Write(e.to_string()))?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT_TAG.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), config),
        ("dtype".to_string(), dtype.name().to_string()),
        ("provenance".to_string(), provenance.to_string()),
    ]);
    let mut parts = parts(model);
    parts.extend(extras.iter().map(|(name, v)| Part { name: name.clone(), values: ArrayView1::from(*v).into_dyn() }));
    let data = parts.iter().map(|p| encode(p, dtype)).collect::<Result<Vec<_>, _>>()?;
    let mut views = Vec::with_capacity(parts.len());
    for (part, bytes) in parts.iter().zip(&data) {
        let view = TensorView::new(safetensors_dtype(dtype), part.values.shape().to_vec(), bytes)
            .map_err(|e| FileError::Write(format!("tensor {:?}: {e}", part.name)))?;
        views.push((part.name.as_str(), view));
    }
    let bytes = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| FileError::Write(e.to_string()))?;
    finish_header(bytes)
}

/// Rewrites the header with the digest of the tensor data (known only once the safetensors crate
/// has laid the tensors out) and `__metadata__` in key order: the crate writes it from a
/// `HashMap`, in a different order on every run; sorted, the same model always gives the same bytes.
fn finish_header(bytes: Vec<u8>) -> Result<Vec<u8>, FileError> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<String, serde_json::Value>,
    }
    let write_err = |e: serde_json::Error| FileError::Write(e.to_string());
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: Header = serde_json::from_slice(&bytes[8..8 + n]).map_err(write_err)?;
    header.metadata.insert(DIGEST_KEY.to_string(), digest(&bytes[8 + n..]));
    let mut text = serde_json::to_vec(&header).map_err(write_err)?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(bytes.len() + text.len() - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Parses and validates a model file, its content digest included. Never panics, on any bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<ModelFile, FileError> {
    from_bytes_with_options(bytes, LoadOptions::default())
}

/// [`from_bytes`] with the digest check as `options` say.
pub fn from_bytes_with_options(bytes: &[u8], options: LoadOptions) -> Result<ModelFile, FileError> {
    read(bytes, None, options).map(|(file, _)| file)
}

/// [`from_bytes`] that also accepts and returns the 1-D tensors whose names start with
/// `extra_prefix` (a checkpoint's optimizer state), by name.
pub fn from_bytes_with(
    bytes: &[u8],
    extra_prefix: Option<&str>,
) -> Result<(ModelFile, BTreeMap<String, Vec<f32>>), FileError> {
    read(bytes, extra_prefix, LoadOptions::default())
}

/// Checks `data` (the tensor bytes) against the digest in the metadata, if any.
fn check_digest(recorded: Option<&String>, data: &[u8], options: LoadOptions) -> Result<DigestCheck, FileError> {
    let Some(recorded) = recorded else {
        return Ok(DigestCheck::Absent);
    };
    if !options.verify_digest {
        return Ok(DigestCheck::NotChecked(recorded.clone()));
    }
    if !recorded.starts_with(&format!("{DIGEST_ALGORITHM}:")) {
        return Err(FileError::UnknownDigest { found: recorded.clone() });
    }
    let actual = digest(data);
    if actual != *recorded {
        return Err(FileError::DigestMismatch { expected: recorded.clone(), actual });
    }
    Ok(DigestCheck::Verified(actual))
}

fn read(
    bytes: &[u8],
    extra_prefix: Option<&str>,
    options: LoadOptions,
) -> Result<(ModelFile, BTreeMap<String, Vec<f32>>), FileError> {
    check_offsets(bytes)?;
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(|e| FileError::Safetensors(e.to_string()))?;
    // `read_metadata` checked that the offsets tile exactly the bytes after the header.
    let data = bytes.get(8 + header_len..).unwrap_or_default();
    let empty = HashMap::new();
    let metadata = header.metadata().as_ref().unwrap_or(&empty);
    let get = |key: &'static str| metadata.get(key).ok_or(FileError::MissingMetadata { key });

    let format = get("format")?;
    if format != FORMAT_TAG {
        return Err(FileError::WrongFormat { found: format.clone() });
    }
    let version = get("format_version")?;
    if version != FORMAT_VERSION {
        return Err(FileError::WrongVersion { found: version.clone() });
    }
    // Before anything reads the tensors: a damaged value is reported as damage, not as a NaN.
    let digest = check_digest(metadata.get(DIGEST_KEY), data, options)?;
    let dtype = get("dtype")?;
    let dtype: StoredDtype = dtype.parse().map_err(|_| FileError::UnknownDtype { found: dtype.clone() })?;
    let config: ModelConfig = serde_json::from_str(get("config")?).map_err(|e| FileError::Config(e.to_string()))?;
    config.validate().map_err(|e| FileError::Config(e.to_string()))?;
    let provenance: serde_json::Value =
        serde_json::from_str(get("provenance")?).map_err(|e| FileError::Provenance(e.to_string()))?;

    let expected = expected_tensors(&config)
        .ok_or_else(|| FileError::Config("the embedding array is too large for this platform".into()))?;
    let names: HashSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    let is_extra = |n: &str| extra_prefix.is_some_and(|p| n.starts_with(p));
    if let Some(extra) = header.tensors().into_keys().filter(|n| !names.contains(n.as_str()) && !is_extra(n)).min() {
        return Err(FileError::UnexpectedTensor { name: extra });
    }
    let mut extras = BTreeMap::new();
    for (name, info) in header.tensors() {
        if !is_extra(&name) {
            continue;
        }
        if info.dtype != safetensors_dtype(dtype) || info.shape.len() != 1 {
            return Err(FileError::Shape { name, found: info.shape.clone(), expected: vec![] });
        }
        let (start, end) = info.data_offsets;
        let Some(values) = data.get(start..end) else {
            return Err(FileError::Safetensors(format!("tensor {name:?} lies past the end of the file")));
        };
        let values = decode(&name, values, dtype)?;
        extras.insert(name, values);
    }
    let mut tensors = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let Some(info) = header.info(&name) else {
            return Err(FileError::MissingTensor { name });
        };
        if info.dtype != safetensors_dtype(dtype) {
            return Err(FileError::TensorDtype { name, found: info.dtype.to_string(), expected: dtype.name() });
        }
        if info.shape != shape {
            return Err(FileError::Shape { name, found: info.shape.clone(), expected: shape });
        }
        let (start, end) = info.data_offsets;
        let Some(values) = data.get(start..end) else {
            return Err(FileError::Safetensors(format!("tensor {name:?} lies past the end of the file")));
        };
        tensors.push(decode(&name, values, dtype)?);
    }

    let mut tensors = tensors.into_iter();
    let embedding = tensors.next().unwrap_or_default();
    let mut mlp = |widths: &[usize]| -> Result<Vec<Linear>, FileError> {
        let mut layers = Vec::with_capacity(widths.len().saturating_sub(1));
        for w in widths.windows(2) {
            let (weight, bias) = (tensors.next().unwrap_or_default(), tensors.next().unwrap_or_default());
            let weight = Array2::from_shape_vec((w[1], w[0]), weight).map_err(|e| FileError::Config(e.to_string()))?;
            layers.push(Linear { weight, bias: Array1::from_vec(bias) });
        }
        Ok(layers)
    };
    let bottom = mlp(&config.bottom)?;
    let top = mlp(&config.top)?;
    let model = Dlrm::from_parts(config, embedding, bottom, top).map_err(|e| FileError::Config(e.to_string()))?;
    Ok((ModelFile { model, dtype, provenance, digest }, extras))
}

/// Decodes little-endian `dtype` values (the length was checked against the shape), refusing
/// non-finite ones.
fn decode(name: &str, data: &[u8], dtype: StoredDtype) -> Result<Vec<f32>, FileError> {
    let values: Vec<f32> = match dtype {
        StoredDtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        StoredDtype::F16 => data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
    };
    if let Some(index) = values.iter().position(|x| !x.is_finite()) {
        return Err(FileError::NonFinite { name: name.to_string(), index, value: values[index] });
    }
    Ok(values)
}

/// Refuses tensor offsets beyond the end of the file before the safetensors crate sums them:
/// 0.8.0 adds the last offset to the header length unchecked, which overflows (a panic in debug
/// builds) on crafted offsets near `usize::MAX`.
fn check_offsets(bytes: &[u8]) -> Result<(), FileError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        data_offsets: Option<(u64, u64)>,
    }
    let corrupt = |why: &str| Err(FileError::Safetensors(why.to_string()));
    let Some(len) = bytes.get(..8) else {
        return corrupt("shorter than its 8-byte header length");
    };
    let n = u64::from_le_bytes(len.try_into().unwrap_or_default());
    let Some(header) = usize::try_from(n).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?)) else {
        return corrupt("header length runs past the end of the file");
    };
    let data_len = (bytes.len() - 8 - header.len()) as u64;
    // Anything that does not parse here is left to the safetensors crate to report.
    let Ok(entries) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(header) else {
        return Ok(());
    };
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        if let Ok(Entry { data_offsets: Some((start, end)) }) = serde_json::from_value::<Entry>(value)
            && (start > data_len || end > data_len)
        {
            return Err(FileError::Safetensors(format!("tensor {name:?} lies past the end of the file")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Preset, criteo_schema};
    use crate::robe::HashVariant;
    use serde_json::json;

    fn small_model(dtype: StoredDtype) -> Dlrm {
        let (dense, fields) = criteo_schema();
        let cfg = ModelConfig::preset(Preset::Small, dense, fields, 200_000, 4, HashVariant::UmaV1, dtype).unwrap();
        Dlrm::init(cfg, 7).unwrap()
    }

    fn bits(model: &Dlrm) -> Vec<u32> {
        let mut v: Vec<u32> = model.embedding.iter().map(|x| x.to_bits()).collect();
        for l in model.layers() {
            v.extend(l.weight.iter().chain(&l.bias).map(|x| x.to_bits()));
        }
        v
    }

    /// Rewrites the header of a valid file through `edit`, keeping the data as it was.
    fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        edit(&mut header);
        let mut text = header.to_string().into_bytes();
        text.resize(text.len().next_multiple_of(8), b' ');
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text);
        out.extend(&bytes[8 + n..]);
        out
    }

    fn set_meta(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
        edit_header(bytes, |h| h["__metadata__"][key] = json!(value))
    }

    /// Records the digest of the data as it now is: a file whose tensors someone else changed and
    /// wrote out properly, so that the checks after the digest's see it.
    fn reseal(bytes: &[u8]) -> Vec<u8> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        set_meta(bytes, DIGEST_KEY, &digest(&bytes[8 + n..]))
    }

    #[test]
    fn f32_round_trip_is_bit_exact() {
        let model = small_model(StoredDtype::F32);
        let prov = json!({"data": "synthetic", "steps": 12, "seed": 7, "eval_auc": 0.75});
        let bytes = to_bytes(&model, StoredDtype::F32, &prov).unwrap();
        let file = from_bytes(&bytes).unwrap();
        assert_eq!(file.dtype, StoredDtype::F32);
        assert_eq!(file.provenance, prov);
        assert_eq!(file.model.config, model.config);
        assert_eq!(bits(&file.model), bits(&model));
        // The file adds only its header to the parameters.
        let params = model.param_count() * 4;
        assert!(bytes.len() > params && bytes.len() < params + 8192, "{} vs {params}", bytes.len());
    }

    /// A schema with no dense column: no bottom MLP, so no `bottom.*` tensors and `"bottom": []`.
    #[test]
    fn model_without_dense_features_round_trips() {
        let (_, fields) = criteo_schema();
        let cfg =
            ModelConfig::preset(Preset::Small, Vec::new(), fields, 200_000, 4, HashVariant::UmaV1, StoredDtype::F32)
                .unwrap();
        assert_eq!((cfg.bottom.clone(), cfg.top.clone()), (vec![], vec![26 * 25 / 2, 64, 32, 1]));
        let model = Dlrm::init(cfg, 7).unwrap();
        let bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        let file = from_bytes(&bytes).unwrap();
        assert_eq!(file.model.config, model.config);
        assert_eq!(bits(&file.model), bits(&model));
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let names: Vec<&String> = header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").collect();
        assert_eq!(names.len(), 1 + 2 * 3, "robe.weight and three top layers: {names:?}");
        assert!(names.iter().all(|k| !k.starts_with("bottom.")), "{names:?}");
        let config: serde_json::Value =
            serde_json::from_str(header["__metadata__"]["config"].as_str().unwrap()).unwrap();
        assert_eq!((&config["dense"], &config["bottom"]), (&json!([]), &json!([])));
        // A bottom layer in such a file is refused by name.
        let with_bottom = reseal(&edit_header(&bytes, |h| {
            let config = h["__metadata__"]["config"].as_str().unwrap().replace("\"bottom\":[]", "\"bottom\":[1,8]");
            h["__metadata__"]["config"] = json!(config);
        }));
        let err = from_bytes(&with_bottom).unwrap_err();
        assert!(err.to_string().contains("must be empty: the model has no dense features"), "{err}");
    }

    /// The bytes of a model with dense features are the ones earlier builds wrote: the file of a
    /// seeded small Criteo model, whole, hashed.
    #[test]
    fn model_with_dense_features_writes_the_same_bytes() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!({"seed": 7})).unwrap();
        assert_eq!(digest(&bytes), "xxh3-64:065c86270730e30c");
    }

    #[test]
    fn f16_round_trip_is_within_f16_rounding() {
        let model = small_model(StoredDtype::F16);
        let bytes = to_bytes(&model, StoredDtype::F16, &json!(null)).unwrap();
        assert!(bytes.len() < model.param_count() * 2 + 8192);
        let file = from_bytes(&bytes).unwrap();
        assert_eq!(file.dtype, StoredDtype::F16);
        let original = model.embedding.iter().chain(model.layers().flat_map(|l| l.weight.iter().chain(&l.bias)));
        let loaded =
            file.model.embedding.iter().chain(file.model.layers().flat_map(|l| l.weight.iter().chain(&l.bias)));
        let mut n = 0;
        for (&a, &b) in original.zip(loaded) {
            // Round to nearest: the error is at most half a unit in the last place of f16
            // (relative 2^-11), or half the smallest subnormal step (2^-25) near zero.
            assert!((a - b).abs() <= (a.abs() * 2f32.powi(-11)).max(2f32.powi(-25)), "{a} -> {b}");
            assert_eq!(b, f16::from_f32(a).to_f32());
            n += 1;
        }
        assert_eq!(n, model.param_count());
        // Writing the loaded model again is lossless.
        assert_eq!(to_bytes(&file.model, StoredDtype::F16, &json!(null)).unwrap(), bytes);
    }

    #[test]
    fn f16_write_out_of_range_is_an_error() {
        let mut model = small_model(StoredDtype::F16);
        model.top[1].bias[3] = 70000.0;
        let err = to_bytes(&model, StoredDtype::F16, &json!(null)).unwrap_err();
        assert!(matches!(err, FileError::F16Range { ref name, index: 3, .. } if name == "top.1.bias"), "{err}");
        assert!(to_bytes(&model, StoredDtype::F32, &json!(null)).is_ok());
    }

    #[test]
    fn nan_is_refused_on_write_and_read() {
        let mut model = small_model(StoredDtype::F32);
        model.embedding[5] = f32::NAN;
        let err = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap_err();
        assert!(matches!(err, FileError::NonFinite { ref name, index: 5, .. } if name == EMBEDDING_TENSOR), "{err}");

        // A NaN written by someone else: patch the bytes of bottom.0.bias[2] in a valid file.
        let model = small_model(StoredDtype::F32);
        let mut bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let start = header["bottom.0.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
        let at = 8 + n + start + 2 * 4;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, FileError::DigestMismatch { .. }), "{err}");
        let err = from_bytes(&reseal(&bytes)).unwrap_err();
        assert!(matches!(err, FileError::NonFinite { ref name, index: 2, .. } if name == "bottom.0.bias"), "{err}");
        assert!(err.to_string().contains("non-finite"), "{err}");
    }

    /// Where the tensor data starts, and where `tensor`'s bytes start, in a valid file.
    fn offsets(bytes: &[u8], tensor: &str) -> (usize, usize) {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        (8 + n, 8 + n + header[tensor]["data_offsets"][0].as_u64().unwrap() as usize)
    }

    #[test]
    fn digest_covers_every_byte_after_the_header() {
        // xxh3-64 of no bytes, so an independent reader can check its hash function.
        assert_eq!(digest(b""), "xxh3-64:2d06800538d394c2");
        let model = small_model(StoredDtype::F32);
        let bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        let (data, _) = offsets(&bytes, EMBEDDING_TENSOR);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["__metadata__"][DIGEST_KEY], json!(digest(&bytes[data..])));
        assert_eq!(from_bytes(&bytes).unwrap().digest, DigestCheck::Verified(digest(&bytes[data..])));
    }

    #[test]
    fn a_flipped_tensor_byte_anywhere_is_a_digest_mismatch() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        for dtype in [StoredDtype::F32, StoredDtype::F16] {
            let bytes = to_bytes(&small_model(dtype), dtype, &json!({"seed": 7})).unwrap();
            let (data, embedding) = offsets(&bytes, EMBEDDING_TENSOR);
            let (_, bias) = offsets(&bytes, "bottom.0.bias");
            let mut rng = StdRng::seed_from_u64(3);
            let mut positions =
                vec![data, bytes.len() - 1, embedding + 5, bias + 1, bias + dtype.bytes() as usize * 3 - 1];
            positions.extend((0..20).map(|_| rng.random_range(data..bytes.len())));
            for at in positions {
                // Low bits of whatever byte: the value stays finite, so only the digest can tell.
                for flip in [0x01u8, 0x10] {
                    let mut bad = bytes.clone();
                    bad[at] ^= flip;
                    let err = from_bytes(&bad).unwrap_err();
                    assert!(matches!(err, FileError::DigestMismatch { .. }), "{dtype:?} byte {at} ^ {flip:#x}: {err}");
                    assert!(err.to_string().starts_with("model file is corrupt (digest mismatch)"), "{err}");
                    assert!(from_bytes_with(&bad, None).is_err(), "checkpoints are checked too");
                }
            }
            // Skipping the check on request loads the damaged values, and says the digest was not checked.
            let mut bad = bytes.clone();
            bad[bias + 3] ^= 0x01;
            let file = from_bytes_with_options(&bad, LoadOptions { verify_digest: false }).unwrap();
            assert!(matches!(file.digest, DigestCheck::NotChecked(_)), "{:?}", file.digest);
            assert_ne!(file.model.bottom[0].bias, from_bytes(&bytes).unwrap().model.bottom[0].bias);
        }
    }

    #[test]
    fn files_without_a_digest_load_and_say_so() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!(null)).unwrap();
        let old =
            edit_header(&bytes, |h| h["__metadata__"].as_object_mut().unwrap().remove(DIGEST_KEY).map(drop).unwrap());
        let file = from_bytes(&old).unwrap();
        assert_eq!(file.digest, DigestCheck::Absent);
        assert!(file.digest.to_string().starts_with("none"), "{}", file.digest);
        // Written again, it gets one.
        let again = to_bytes(&file.model, file.dtype, &file.provenance).unwrap();
        assert_eq!(again, bytes);
        // A digest of another algorithm is not silently ignored.
        let err = from_bytes(&set_meta(&bytes, DIGEST_KEY, "blake3:00")).unwrap_err();
        assert!(matches!(err, FileError::UnknownDigest { .. }), "{err}");
    }

    #[test]
    fn truncated_bytes_are_refused() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!(null)).unwrap();
        for len in [0, 3, 8, 100, bytes.len() / 2, bytes.len() - 1] {
            let err = from_bytes(&bytes[..len]).unwrap_err();
            assert!(matches!(err, FileError::Safetensors(_)), "{len}: {err}");
            assert!(err.to_string().contains("truncated or corrupt"), "{err}");
        }
    }

    #[test]
    fn random_bytes_are_refused() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(1);
        for len in [1usize, 8, 64, 4096, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert!(matches!(from_bytes(&bytes), Err(FileError::Safetensors(_))));
        }
        // A plausible header length followed by junk.
        let mut bytes = 16u64.to_le_bytes().to_vec();
        bytes.extend(b"{\"a\": [1, 2, 3]}");
        assert!(matches!(from_bytes(&bytes), Err(FileError::Safetensors(_))));
    }

    #[test]
    fn wrong_tag_and_version_are_refused() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!(null)).unwrap();
        let err = from_bytes(&set_meta(&bytes, "format", "llama")).unwrap_err();
        assert!(matches!(err, FileError::WrongFormat { ref found } if found == "llama"), "{err}");
        let err = from_bytes(&set_meta(&bytes, "format_version", "2")).unwrap_err();
        assert!(matches!(err, FileError::WrongVersion { ref found } if found == "2"), "{err}");
        let err =
            from_bytes(&edit_header(&bytes, |h| h.as_object_mut().unwrap().remove("__metadata__").map(drop).unwrap()))
                .unwrap_err();
        assert!(matches!(err, FileError::MissingMetadata { key: "format" }), "{err}");
        let err = from_bytes(&set_meta(&bytes, "dtype", "bf16")).unwrap_err();
        assert!(matches!(err, FileError::UnknownDtype { .. }), "{err}");
        let err = from_bytes(&set_meta(&bytes, "provenance", "{oops")).unwrap_err();
        assert!(matches!(err, FileError::Provenance(_)), "{err}");
    }

    #[test]
    fn bad_config_is_refused() {
        let model = small_model(StoredDtype::F32);
        let bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        let err = from_bytes(&set_meta(&bytes, "config", "not json")).unwrap_err();
        assert!(matches!(err, FileError::Config(_)), "{err}");
        // Parses, but fails validation: the bottom MLP no longer ends in d.
        let mut cfg = serde_json::to_value(&model.config).unwrap();
        cfg["dim"] = json!(9);
        let err = from_bytes(&set_meta(&bytes, "config", &cfg.to_string())).unwrap_err();
        assert!(matches!(err, FileError::Config(ref m) if m.contains("must end with d")), "{err}");
    }

    #[test]
    fn overflowing_table_sizes_are_a_config_error() {
        let model = small_model(StoredDtype::F32);
        let bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        let huge = u64::MAX / 2;
        let mut cfg = serde_json::to_value(&model.config).unwrap();
        cfg["key_mode"] = json!({"dictionary": {"table_sizes": vec![huge; 26]}});
        let err = from_bytes(&set_meta(&bytes, "config", &cfg.to_string())).unwrap_err();
        assert!(matches!(err, FileError::Config(_)), "{err}");
        let mut cfg = serde_json::to_value(&model.config).unwrap();
        cfg["embedding"] = json!({"kind": "full", "rows": vec![huge; 26]});
        let err = from_bytes(&set_meta(&bytes, "config", &cfg.to_string())).unwrap_err();
        assert!(matches!(err, FileError::Config(_)), "{err}");
    }

    #[test]
    fn shape_mismatch_is_refused() {
        let model = small_model(StoredDtype::F32);
        let bytes = to_bytes(&model, StoredDtype::F32, &json!(null)).unwrap();
        // The config promises a larger array than the file holds.
        let mut cfg = model.config.clone();
        if let crate::EmbeddingConfig::Robe { m, .. } = &mut cfg.embedding {
            *m += 1;
        }
        let err = from_bytes(&set_meta(&bytes, "config", &serde_json::to_string(&cfg).unwrap())).unwrap_err();
        assert!(matches!(err, FileError::Shape { ref name, .. } if name == EMBEDDING_TENSOR), "{err}");
        // A weight declared transposed: same bytes, wrong shape.
        let err = from_bytes(&edit_header(&bytes, |h| {
            let shape = h["top.0.weight"]["shape"].as_array_mut().unwrap();
            shape.swap(0, 1);
        }))
        .unwrap_err();
        assert!(matches!(err, FileError::Shape { ref name, .. } if name == "top.0.weight"), "{err}");
        assert!(err.to_string().contains("shape"), "{err}");
    }

    #[test]
    fn missing_and_extra_tensors_are_refused() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!(null)).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data_len = (bytes.len() - 8 - n) as u64;

        // Missing: drop the tensor stored last, and its bytes.
        let mut last = (String::new(), 0);
        let mut missing = edit_header(&bytes, |h| {
            let obj = h.as_object_mut().unwrap();
            for (name, t) in obj.iter().filter(|(name, _)| *name != "__metadata__") {
                let start = t["data_offsets"][0].as_u64().unwrap();
                if start >= last.1 {
                    last = (name.clone(), start);
                }
            }
            obj.remove(&last.0);
        });
        missing.truncate(missing.len() - (data_len - last.1) as usize);
        let err = from_bytes(&reseal(&missing)).unwrap_err();
        assert!(matches!(err, FileError::MissingTensor { ref name } if *name == last.0), "{err}");

        // Extra: one more tensor appended with valid offsets.
        let mut extra = edit_header(&bytes, |h| {
            h["zzz"] = json!({"dtype": "F32", "shape": [1], "data_offsets": [data_len, data_len + 4]});
        });
        extra.extend(1f32.to_le_bytes());
        let err = from_bytes(&reseal(&extra)).unwrap_err();
        assert!(matches!(err, FileError::UnexpectedTensor { ref name } if name == "zzz"), "{err}");

        // Renamed: both at once; the unknown name is reported.
        let renamed = edit_header(&bytes, |h| {
            let obj = h.as_object_mut().unwrap();
            let t = obj.remove("bottom.1.bias").unwrap();
            obj.insert("bottom.1.extra".into(), t);
        });
        let err = from_bytes(&renamed).unwrap_err();
        assert!(matches!(err, FileError::UnexpectedTensor { ref name } if name == "bottom.1.extra"), "{err}");
    }

    #[test]
    fn wrong_tensor_dtype_is_refused() {
        let bytes = to_bytes(&small_model(StoredDtype::F32), StoredDtype::F32, &json!(null)).unwrap();
        let err = from_bytes(&edit_header(&bytes, |h| h["top.2.bias"]["dtype"] = json!("I32"))).unwrap_err();
        assert!(matches!(err, FileError::TensorDtype { ref name, .. } if name == "top.2.bias"), "{err}");
    }

    #[test]
    fn offsets_near_usize_max_are_refused() {
        // Eight consistent tensors of 2^61 - 1 bytes each end at 2^64 - 8, so the safetensors crate
        // would compute `2^64 - 8 + 8 + header length` (overflow) before noticing the missing data.
        let size = (1u64 << 61) - 1;
        let mut header = serde_json::Map::new();
        for k in 0..8 {
            header.insert(
                format!("t{k}"),
                json!({"dtype": "U8", "shape": [size], "data_offsets": [k * size, (k + 1) * size]}),
            );
        }
        let header = serde_json::Value::Object(header).to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        assert!(matches!(from_bytes(&bytes), Err(FileError::Safetensors(_))));
    }
}
