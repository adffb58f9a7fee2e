//! The model's configuration: the field schema, the DLRM shapes (docs/model-file.md) and the embedding
//! storage. It is stored as JSON in the model file, so it fully describes a model.

use crate::Error;
use crate::robe::{HashVariant, KeyMode, RobeHash};
use serde::{Deserialize, Serialize};

/// How a sparse field feeds the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// One value per row.
    Categorical,
    /// Any number of values per row, pooled by sum.
    BagSum,
    /// Any number of values per row, pooled by mean (an empty bag is the zero vector).
    BagMean,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
}

/// Transform applied to dense inputs inside the model, so raw values can be scored anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenseTransform {
    Identity,
    /// Criteo's: negative values become 0, then `ln(1 + x)`.
    Log1p,
}

impl DenseTransform {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            DenseTransform::Identity => x,
            DenseTransform::Log1p => x.max(0.0).ln_1p(),
        }
    }
}

/// Where embeddings live. Every kind is one flat array read in blocks, so one code path serves all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EmbeddingConfig {
    /// ROBE-Z: one shared array of `m` slots read in blocks of `z` (`z = d` is plain feature hashing).
    Robe { m: u64, z: u32, hash: HashVariant },
    /// Uncompressed reference: one table per field, `rows[f]` rows of `d`, the value hashed to a row.
    Full { rows: Vec<u64> },
}

/// Named shape presets (docs/model-file.md): the paper's kaggle and terabyte, and a small one for
/// tests and demos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    Kaggle,
    Terabyte,
    Small,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Kaggle, Preset::Terabyte, Preset::Small];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Kaggle => "kaggle",
            Preset::Terabyte => "terabyte",
            Preset::Small => "small",
        }
    }

    /// Embedding dimension d.
    pub fn dim(self) -> usize {
        self.shapes().0
    }

    /// `(d, bottom hidden sizes ending in d, top hidden sizes ending in 1)`.
    fn shapes(self) -> (usize, Vec<usize>, Vec<usize>) {
        match self {
            Preset::Kaggle => (16, vec![512, 256, 64, 16], vec![512, 256, 1]),
            Preset::Terabyte => (128, vec![512, 256, 128], vec![1024, 1024, 512, 256, 1]),
            Preset::Small => (8, vec![32, 8], vec![64, 32, 1]),
        }
    }

    /// The layer widths on a schema of `dense` dense features and `fields` sparse fields:
    /// (d, bottom MLP, top MLP). No dense features means no bottom MLP (an empty list), and the
    /// top MLP starts with the dots of the embeddings alone.
    fn layers(self, dense: usize, fields: usize) -> (usize, Vec<usize>, Vec<usize>) {
        let (dim, bottom_hidden, top_hidden) = self.shapes();
        let bottom = match dense {
            0 => Vec::new(),
            _ => std::iter::once(dense).chain(bottom_hidden).collect(),
        };
        let lead = if dense > 0 { dim } else { 0 };
        let n = fields + usize::from(dense > 0);
        let mut top = vec![lead + n * n.saturating_sub(1) / 2];
        top.extend(top_hidden);
        (dim, bottom, top)
    }

    /// Bytes of this preset's MLPs on a schema, stored in `dtype`: a memory budget must exceed
    /// them to leave room for embeddings.
    pub fn mlp_bytes(self, dense: usize, fields: usize, dtype: StoredDtype) -> u64 {
        let (_, bottom, top) = self.layers(dense, fields);
        mlp_params(&bottom, &top) as u64 * dtype.bytes()
    }
}

/// Parameters (weights and biases) of the MLPs with these layer widths.
fn mlp_params(bottom: &[usize], top: &[usize]) -> usize {
    let layer = |w: &[usize]| w[0] * w[1] + w[1];
    bottom.windows(2).map(layer).sum::<usize>() + top.windows(2).map(layer).sum::<usize>()
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset {s:?}: use kaggle, terabyte or small"))
    }
}

/// The full description of a model. `bottom` and `top` list every layer width, input included:
/// kaggle is `bottom = [13, 512, 256, 64, 16]`, `top = [367, 512, 256, 1]`. A model without dense
/// features has no bottom MLP: `bottom` is empty and the top MLP's input is the dots of the
/// embeddings alone (kaggle on 22 fields: `top = [231, 512, 256, 1]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub dense: Vec<String>,
    pub dense_transform: DenseTransform,
    pub fields: Vec<Field>,
    pub dim: usize,
    pub bottom: Vec<usize>,
    pub top: Vec<usize>,
    pub embedding: EmbeddingConfig,
    pub key_mode: KeyMode,
}

/// Criteo's schema: 13 integer features `I1..I13` and 26 categorical fields `C1..C26`.
pub fn criteo_schema() -> (Vec<String>, Vec<Field>) {
    let dense = (1..=13).map(|i| format!("I{i}")).collect();
    let fields = (1..=26).map(|i| Field { name: format!("C{i}"), kind: FieldKind::Categorical }).collect();
    (dense, fields)
}

/// Size in bytes of one stored parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredDtype {
    F32,
    F16,
}

impl StoredDtype {
    pub fn bytes(self) -> u64 {
        match self {
            StoredDtype::F32 => 4,
            StoredDtype::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "f32",
            StoredDtype::F16 => "f16",
        }
    }
}

impl std::str::FromStr for StoredDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(StoredDtype::F32),
            "f16" => Ok(StoredDtype::F16),
            _ => Err(format!("unknown dtype {s:?}: use f32 or f16")),
        }
    }
}

/// Parses a memory budget: `10MB` is 10^7 bytes, `10MiB` is 10·2^20; `KB`, `GB`, `KiB`, `GiB`
/// and plain byte counts too. Units ignore case (`10mb`, `10mib`) and may follow a space.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit {:?} in {s:?}: use B, KB, MB, GB, KiB, MiB or GiB (any case)",
                unit.trim()
            ));
        }
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size such as 10MB or 10MiB"))?;
    let bytes = n * scale as f64;
    if !(bytes.is_finite() && (1.0..1e18).contains(&bytes)) {
        return Err(format!("{s:?} is not a usable size"));
    }
    Ok(bytes.floor() as u64)
}

impl ModelConfig {
    /// A preset's shapes on a schema, with the ROBE array sized to fill `budget_bytes` in `dtype`.
    pub fn preset(
        preset: Preset,
        dense: Vec<String>,
        fields: Vec<Field>,
        budget_bytes: u64,
        z: u32,
        hash: HashVariant,
        dtype: StoredDtype,
    ) -> Result<Self, Error> {
        let (dim, bottom, top) = preset.layers(dense.len(), fields.len());
        let mut cfg = ModelConfig {
            dense_transform: DenseTransform::Log1p,
            dense,
            fields,
            dim,
            bottom,
            top,
            embedding: EmbeddingConfig::Robe { m: 0, z, hash },
            key_mode: KeyMode::Raw,
        };
        let mlp_bytes = preset.mlp_bytes(cfg.dense.len(), cfg.fields.len(), dtype);
        let m = budget_bytes.saturating_sub(mlp_bytes) / dtype.bytes();
        if m <= z as u64 {
            return Err(Error::Config(format!(
                "a budget of {budget_bytes} bytes leaves no room for embeddings: the MLPs alone take \
                 {mlp_bytes} bytes in {}; raise the memory budget",
                dtype.name()
            )));
        }
        cfg.embedding = EmbeddingConfig::Robe { m, z, hash };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of parameters in the MLPs (weights and biases).
    pub fn mlp_params(&self) -> usize {
        mlp_params(&self.bottom, &self.top)
    }

    /// Floating-point operations of one row's forward pass: the MLP multiply-adds and the dot
    /// interaction, two FLOPs each. Gathers and activations are not counted.
    pub fn forward_flops_per_row(&self) -> u64 {
        let n = self.interacting() as u64;
        let mlp: u64 = self.bottom.windows(2).chain(self.top.windows(2)).map(|w| (w[0] * w[1]) as u64).sum();
        2 * mlp + 2 * self.dim as u64 * n * (n - 1) / 2
    }

    /// FLOPs of one row's training step: the forward pass, then per layer the weight gradient and
    /// (except for the first bottom layer) the input gradient, and the interaction backward.
    pub fn train_flops_per_row(&self) -> u64 {
        let n = self.interacting() as u64;
        let first = self.bottom.get(1).map_or(0, |&out| (self.bottom[0] * out) as u64);
        let mlp: u64 = self.bottom.windows(2).chain(self.top.windows(2)).map(|w| (w[0] * w[1]) as u64).sum();
        self.forward_flops_per_row() + 2 * (2 * mlp - first) + 4 * self.dim as u64 * n * (n - 1) / 2
    }

    /// Length of the embedding array `W`.
    pub fn embedding_len(&self) -> u64 {
        match &self.embedding {
            EmbeddingConfig::Robe { m, .. } => *m,
            // Saturating, so a corrupt config read from a file fails `validate` instead of overflowing.
            EmbeddingConfig::Full { rows } => {
                rows.iter().fold(0u64, |sum, &r| sum.saturating_add(r)).saturating_mul(self.dim as u64)
            }
        }
    }

    /// Whether the model has a bottom MLP: it has one exactly when it has dense features.
    pub fn has_bottom(&self) -> bool {
        !self.dense.is_empty()
    }

    /// Width of the bottom MLP's output, `d`, or 0 without one. The bottom output leads both the
    /// interacting vectors of a row and the top MLP's input, so this is also where the fields'
    /// vectors and the dots start.
    pub fn bottom_width(&self) -> usize {
        if self.has_bottom() { self.dim } else { 0 }
    }

    /// Number of vectors that interact: the bottom output (when there is one), then one per field.
    pub fn interacting(&self) -> usize {
        self.fields.len() + usize::from(self.has_bottom())
    }

    /// Index among the interacting vectors of field `f`'s embedding.
    pub fn field_vector(&self, f: usize) -> usize {
        f + usize::from(self.has_bottom())
    }

    /// Width of the top MLP's input: the bottom output, then the strict lower triangle of the
    /// interaction.
    pub fn interaction_width(&self) -> usize {
        let n = self.interacting();
        self.bottom_width() + n * n.saturating_sub(1) / 2
    }

    /// Checks every invariant the model code relies on; errors say what to change.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.fields.is_empty() {
            return bad("the model needs at least one sparse field".into());
        }
        if !self.has_bottom() && self.fields.len() < 2 {
            return bad("a model without dense features needs at least two sparse fields: its top MLP sees only \
                 the dots between their embeddings"
                .into());
        }
        if self.dim == 0 {
            return bad("embedding dimension d must be at least 1".into());
        }
        if !self.has_bottom() && !self.bottom.is_empty() {
            return bad(format!("bottom MLP {:?} must be empty: the model has no dense features", self.bottom));
        }
        if self.has_bottom() && (self.bottom.len() < 2 || self.bottom[0] != self.dense.len()) {
            return bad(format!(
                "bottom MLP {:?} must start with the {} dense features and have at least one layer",
                self.bottom,
                self.dense.len()
            ));
        }
        if self.has_bottom() && *self.bottom.last().unwrap() != self.dim {
            return bad(format!("bottom MLP {:?} must end with d = {}", self.bottom, self.dim));
        }
        if self.top.len() < 2 || self.top[0] != self.interaction_width() || *self.top.last().unwrap() != 1 {
            return bad(format!(
                "top MLP {:?} must start with the bottom output and the n(n-1)/2 dots ({}) and end with 1",
                self.top,
                self.interaction_width()
            ));
        }
        if self.bottom.iter().chain(&self.top).any(|&w| w == 0 || w > 1 << 16) {
            return bad("every layer width must be between 1 and 65536".into());
        }
        match &self.embedding {
            EmbeddingConfig::Robe { m, z, hash } => {
                if RobeHash::new(*m, *z, *hash).is_none() {
                    return bad(format!("ROBE array needs Z >= 1 and Z < M < 2^32; got M = {m}, Z = {z}"));
                }
            }
            EmbeddingConfig::Full { rows } => {
                if rows.len() != self.fields.len() || rows.contains(&0) {
                    return bad(format!(
                        "full embeddings need one non-zero row count per field ({})",
                        self.fields.len()
                    ));
                }
                if self.embedding_len() >= 1 << 32 {
                    return bad("full embedding tables must hold fewer than 2^32 floats".into());
                }
            }
        }
        if let KeyMode::Dictionary { table_sizes } = &self.key_mode {
            // Keeps `table_offset + id` below 2^64 for every u32 id.
            if table_sizes.iter().try_fold(0u64, |sum, &s| sum.checked_add(s)).is_none_or(|sum| sum >= 1 << 63) {
                return bad("dictionary table sizes must sum to less than 2^63".into());
            }
            if table_sizes.len() != self.fields.len() {
                return bad(format!(
                    "dictionary mode needs one table size per sparse field ({}), got {}",
                    self.fields.len(),
                    table_sizes.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("1.5KB"), Ok(1500));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("10mb"), Ok(10_000_000));
        assert_eq!(parse_bytes("10 Mb"), Ok(10_000_000));
        assert_eq!(parse_bytes("2kib"), Ok(2048));
        assert_eq!(parse_bytes("1gB"), Ok(1_000_000_000));
        assert!(parse_bytes("ten MB").is_err());
        assert!(parse_bytes("10XB").is_err());
        assert!(parse_bytes("0MB").is_err());
    }

    #[test]
    fn kaggle_preset_matches_design_shapes() {
        let (dense, fields) = criteo_schema();
        let cfg =
            ModelConfig::preset(Preset::Kaggle, dense, fields, 10_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
                .unwrap();
        assert_eq!(cfg.bottom, vec![13, 512, 256, 64, 16]);
        assert_eq!(cfg.top, vec![367, 512, 256, 1]);
        let total = cfg.mlp_params() as u64 * 4 + cfg.embedding_len() * 4;
        assert_eq!(Preset::Kaggle.mlp_bytes(13, 26, StoredDtype::F32), cfg.mlp_params() as u64 * 4);
        assert!(total <= 10_000_000 && total > 10_000_000 - 8, "{total}");
    }

    #[test]
    fn terabyte_preset_matches_design_shapes() {
        let (dense, fields) = criteo_schema();
        let cfg =
            ModelConfig::preset(Preset::Terabyte, dense, fields, 100_000_000, 4, HashVariant::UmaV1, StoredDtype::F16)
                .unwrap();
        assert_eq!(cfg.bottom, vec![13, 512, 256, 128]);
        assert_eq!(cfg.top, vec![479, 1024, 1024, 512, 256, 1]);
    }

    #[test]
    fn no_dense_features_means_no_bottom_mlp() {
        let fields: Vec<Field> =
            (0..22).map(|i| Field { name: format!("C{i}"), kind: FieldKind::Categorical }).collect();
        let preset = |fields: Vec<Field>| {
            ModelConfig::preset(Preset::Kaggle, vec![], fields, 10_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
        };
        let cfg = preset(fields.clone()).unwrap();
        assert_eq!(cfg.bottom, Vec::<usize>::new());
        assert_eq!(cfg.top, vec![22 * 21 / 2, 512, 256, 1]);
        assert_eq!((cfg.interacting(), cfg.bottom_width(), cfg.field_vector(0)), (22, 0, 0));
        assert_eq!(Preset::Kaggle.mlp_bytes(0, 22, StoredDtype::F32), cfg.mlp_params() as u64 * 4);
        assert!(cfg.train_flops_per_row() > cfg.forward_flops_per_row());
        // One field alone has no pair to dot.
        let err = preset(fields[..1].to_vec()).unwrap_err();
        assert!(err.to_string().contains("needs at least two sparse fields"), "{err}");
        // A bottom MLP without dense features, or dense features without one, is refused.
        let mut bad = cfg.clone();
        bad.bottom = vec![0, 16];
        assert!(bad.validate().unwrap_err().to_string().contains("must be empty"));
        let mut bad = cfg;
        bad.dense = vec!["x".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("must start with the 1 dense features"));
    }

    #[test]
    fn tiny_budget_is_a_clear_error() {
        let (dense, fields) = criteo_schema();
        let err = ModelConfig::preset(Preset::Kaggle, dense, fields, 1000, 4, HashVariant::UmaV1, StoredDtype::F32)
            .unwrap_err();
        assert!(err.to_string().contains("raise the memory budget"), "{err}");
    }
}
