//! The DLRM's parameters and their initialisation (docs/model-file.md).

use crate::Error;
use crate::config::{EmbeddingConfig, ModelConfig};
use crate::embedding::EmbeddingLookup;
use crate::robe::KeyMode;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// One fully connected layer, `y = W x + b`, with `W` stored `[out, in]` as in the model file.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: Array2<f32>,
    pub bias: Array1<f32>,
}

impl Linear {
    pub fn zeros(fan_in: usize, fan_out: usize) -> Self {
        Linear { weight: Array2::zeros((fan_out, fan_in)), bias: Array1::zeros(fan_out) }
    }
    pub fn fan_in(&self) -> usize {
        self.weight.ncols()
    }
    pub fn fan_out(&self) -> usize {
        self.weight.nrows()
    }
}

/// A DLRM: the shared embedding array `W`, a bottom MLP on dense features (none without dense
/// features) and a top MLP on the interaction. Immutable shape, mutable values.
#[derive(Clone, Debug)]
pub struct Dlrm {
    pub config: ModelConfig,
    pub embedding: Vec<f32>,
    pub bottom: Vec<Linear>,
    pub top: Vec<Linear>,
    lookup: EmbeddingLookup,
}

/// The largest Criteo Kaggle table (C3), which sets the default init range of `W` in raw mode,
/// where no vocabulary is known: `sqrt(1 / 10131227) = 3.14e-4`, as in the authors' Kaggle runs.
pub const KAGGLE_LARGEST_TABLE: u64 = 10_131_227;

impl Dlrm {
    /// Parameters from parts; checks every shape against the config.
    pub fn from_parts(
        config: ModelConfig,
        embedding: Vec<f32>,
        bottom: Vec<Linear>,
        top: Vec<Linear>,
    ) -> Result<Self, Error> {
        config.validate()?;
        if embedding.len() as u64 != config.embedding_len() {
            return Err(Error::Config(format!(
                "embedding array has {} values, config says {}",
                embedding.len(),
                config.embedding_len()
            )));
        }
        for (name, layers, widths) in [("bottom", &bottom, &config.bottom), ("top", &top, &config.top)] {
            if layers.len() != widths.len().saturating_sub(1) {
                return Err(Error::Config(format!(
                    "{name} MLP has {} layers, config says {}",
                    layers.len(),
                    widths.len().saturating_sub(1)
                )));
            }
            for (k, (l, w)) in layers.iter().zip(widths.windows(2)).enumerate() {
                if l.weight.dim() != (w[1], w[0]) || l.bias.len() != w[1] {
                    return Err(Error::Config(format!(
                        "{name}.{k} has weight {:?} and bias {}, config says [{}, {}]",
                        l.weight.dim(),
                        l.bias.len(),
                        w[1],
                        w[0]
                    )));
                }
            }
        }
        let lookup = EmbeddingLookup::new(&config);
        Ok(Dlrm { config, embedding, bottom, top, lookup })
    }

    /// Initialises as the authors' code does, from a seed: `W` uniform in ±sqrt(1 / largest table),
    /// MLP weights normal with std sqrt(2 / (fan_in + fan_out)), biases std sqrt(1 / fan_out).
    pub fn init(config: ModelConfig, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let largest = match (&config.key_mode, &config.embedding) {
            (KeyMode::Dictionary { table_sizes }, _) => table_sizes.iter().copied().max().unwrap_or(1),
            (KeyMode::Raw, EmbeddingConfig::Full { rows }) => rows.iter().copied().max().unwrap_or(1),
            (KeyMode::Raw, EmbeddingConfig::Robe { .. }) => KAGGLE_LARGEST_TABLE,
        };
        let bound = (1.0 / largest.max(1) as f64).sqrt() as f32;
        let embedding = (0..config.embedding_len()).map(|_| rng.random_range(-bound..=bound)).collect();
        let mut mlp = |widths: &[usize]| -> Vec<Linear> {
            widths
                .windows(2)
                .map(|w| {
                    let (fan_in, fan_out) = (w[0], w[1]);
                    let ws = (2.0 / (fan_in + fan_out) as f64).sqrt();
                    let bs = (1.0 / fan_out as f64).sqrt();
                    Linear {
                        weight: Array2::from_shape_simple_fn((fan_out, fan_in), || (normal(&mut rng) * ws) as f32),
                        bias: Array1::from_shape_simple_fn(fan_out, || (normal(&mut rng) * bs) as f32),
                    }
                })
                .collect()
        };
        let bottom = mlp(&config.bottom);
        let top = mlp(&config.top);
        Dlrm::from_parts(config, embedding, bottom, top)
    }

    pub fn lookup(&self) -> &EmbeddingLookup {
        &self.lookup
    }

    /// Number of parameters, embeddings included.
    pub fn param_count(&self) -> usize {
        self.embedding.len() + self.config.mlp_params()
    }

    /// The MLP layers, bottom first.
    pub fn layers(&self) -> impl Iterator<Item = &Linear> {
        self.bottom.iter().chain(&self.top)
    }

    /// Whether every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.embedding.iter().all(|x| x.is_finite())
            && self.layers().all(|l| l.weight.iter().chain(&l.bias).all(|x| x.is_finite()))
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
