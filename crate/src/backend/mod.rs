//! One seam over the scoring backends: the CPU (always there) and wgpu (feature `gpu`; WebGPU in
//! the browser, Vulkan, Metal or DX12 natively). Both take the same requests, validate them the
//! same way and agree on the results (logits within 1e-4 relative, same top-k apart from exact
//! ties). The API is async because reading results back from a GPU is; natively callers block
//! with `pollster::block_on`.

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;

use crate::Error;
use crate::batch::Batch;
use crate::learn::{LearnOptions, LearnReport, Learner};
use crate::model::Dlrm;
use crate::rank::{self, Candidates, Context, Ranked};

/// Which backend a [`Scorer`] should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// WebGPU when an adapter exists, else the CPU, recording why.
    #[default]
    Auto,
    Cpu,
    WebGpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cpu" => Ok(BackendChoice::Cpu),
            "webgpu" | "gpu" => Ok(BackendChoice::WebGpu),
            _ => Err(format!("unknown backend {s:?}: use auto, cpu or webgpu")),
        }
    }
}

enum Backend {
    Cpu(Box<cpu::CpuBackend>),
    #[cfg(feature = "gpu")]
    Gpu(Box<gpu::GpuBackend>),
}

/// Scores rows and ranks candidates for one model on the chosen backend.
pub struct Scorer {
    model: Dlrm,
    backend: Backend,
    reason: String,
}

impl Scorer {
    /// A CPU scorer (no GPU needed, never fails).
    pub fn cpu(model: Dlrm) -> Scorer {
        Scorer { model, backend: Backend::Cpu(Box::default()), reason: "the CPU backend was asked for".into() }
    }

    /// A scorer on the chosen backend. `Auto` falls back to the CPU when no GPU is usable and
    /// records why in [`Scorer::backend_reason`]; `WebGpu` fails instead.
    pub async fn new(model: Dlrm, choice: BackendChoice) -> Result<Scorer, Error> {
        match choice {
            BackendChoice::Cpu => Ok(Scorer::cpu(model)),
            BackendChoice::WebGpu => Self::gpu(model).await.map_err(|(e, _)| e),
            BackendChoice::Auto => match Self::gpu(model).await {
                Ok(s) => Ok(s),
                Err((e, model)) => {
                    let mut s = Scorer::cpu(model);
                    // A missing adapter is the common case; wgpu's details would only confuse users.
                    s.reason = match e {
                        Error::NoAdapter(_) => "fell back to the CPU: no WebGPU adapter".to_string(),
                        e => format!("fell back to the CPU: {e}"),
                    };
                    Ok(s)
                }
            },
        }
    }

    /// A wgpu scorer, or the error with the model handed back (no second copy of it is made).
    #[cfg(feature = "gpu")]
    async fn gpu(model: Dlrm) -> Result<Scorer, (Error, Dlrm)> {
        let backend = match gpu::GpuBackend::new(&model).await {
            Ok(b) => b,
            Err(e) => return Err((e, model)),
        };
        let reason = format!("WebGPU adapter: {}", backend.adapter_name());
        Ok(Scorer { model, backend: Backend::Gpu(Box::new(backend)), reason })
    }

    #[cfg(not(feature = "gpu"))]
    async fn gpu(model: Dlrm) -> Result<Scorer, (Error, Dlrm)> {
        Err((Error::Unsupported("this build has no WebGPU backend (built without feature `gpu`)".into()), model))
    }

    /// `"cpu"` or `"webgpu"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Cpu(_) => "cpu",
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => "webgpu",
        }
    }

    /// Why this backend runs, e.g. "fell back to the CPU: no WebGPU adapter".
    pub fn backend_reason(&self) -> &str {
        &self.reason
    }

    pub fn model(&self) -> &Dlrm {
        &self.model
    }

    /// The wgpu backend, when it is the one in use (for tests and benchmarks).
    #[cfg(feature = "gpu")]
    pub fn gpu_backend(&mut self) -> Option<&mut gpu::GpuBackend> {
        match &mut self.backend {
            Backend::Gpu(g) => Some(g),
            Backend::Cpu(_) => None,
        }
    }

    /// [`Learner::learn`] on this scorer's model; afterwards the backend scores the new weights
    /// (the GPU's copy takes what changed, [`Learner::changed`]). On error nothing changed.
    pub fn learn(
        &mut self,
        learner: &mut Learner,
        batch: &Batch,
        labels: &[f32],
        opts: &LearnOptions,
    ) -> Result<LearnReport, Error> {
        let report = learner.learn(&mut self.model, batch, labels, opts)?;
        match &mut self.backend {
            Backend::Cpu(_) => {}
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.write_weights(&self.model, learner.changed())?,
        }
        Ok(report)
    }

    /// Logits of every row of a batch; an empty batch gives an empty result.
    pub async fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, Error> {
        if batch.rows == 0 {
            return Ok(Vec::new());
        }
        batch.validate(&self.model.config)?;
        match &mut self.backend {
            Backend::Cpu(c) => Ok(c.logits(&self.model, batch)),
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.logits(batch).await,
        }
    }

    /// The `k` best candidates for a context, best first, ties to the lower index. `k = 0` or no
    /// candidates give an empty result; a malformed request gives [`Error::Request`].
    pub async fn rank(&mut self, context: &Context, candidates: &Candidates, k: usize) -> Result<Vec<Ranked>, Error> {
        rank::validate(&self.model.config, context, candidates)?;
        if k == 0 || candidates.rows == 0 {
            return Ok(Vec::new());
        }
        match &mut self.backend {
            Backend::Cpu(c) => c.rank(&self.model, context, candidates, k),
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.rank(context, candidates, k).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, Preset, StoredDtype, criteo_schema};
    use crate::robe::HashVariant;

    #[test]
    fn parses_backend_names() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("cpu".parse(), Ok(BackendChoice::Cpu));
        assert_eq!("webgpu".parse(), Ok(BackendChoice::WebGpu));
        assert_eq!("gpu".parse(), Ok(BackendChoice::WebGpu));
        assert!("tpu".parse::<BackendChoice>().unwrap_err().contains("auto, cpu or webgpu"));
    }

    #[test]
    fn auto_says_which_backend_runs_and_why() {
        let (dense, fields) = criteo_schema();
        let cfg = ModelConfig::preset(Preset::Small, dense, fields, 1_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
            .unwrap();
        let scorer = pollster::block_on(Scorer::new(Dlrm::init(cfg, 1).unwrap(), BackendChoice::Auto)).unwrap();
        match scorer.backend_name() {
            "cpu" => {
                assert!(scorer.backend_reason().starts_with("fell back to the CPU: "), "{}", scorer.backend_reason());
                // In CI a machine without an adapter is a failure, not a fallback to accept.
                let required = std::env::var("POCKETREC_REQUIRE_GPU").is_ok_and(|v| v == "1");
                assert!(!required, "POCKETREC_REQUIRE_GPU=1 but auto chose the CPU: {}", scorer.backend_reason());
            }
            name => assert_eq!(name, "webgpu"),
        }
        assert!(!scorer.backend_reason().is_empty());
    }
}
