//! `pocketrec train`: stream data, train a ROBE-Z DLRM (or a baseline), evaluate, export.

use crate::cli::common::{DataArgs, ModelArgs, TrainArgs, open_stream, set_threads};
use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use pocketrec::{Dlrm, Optimizer};
use pocketrec_trainer::checkpoint;
use pocketrec_trainer::progress::Reporter;
use pocketrec_trainer::train::{BatchStream, EvalResult, LoopOptions, Position, train};
use std::path::PathBuf;

#[derive(ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Where to write the trained model (safetensors)
    #[arg(short, long)]
    pub output: PathBuf,
    /// Checkpoint file (default: OUTPUT.ckpt)
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint, bit-identically (same data, seed and options)
    #[arg(long)]
    pub resume: bool,
    /// No progress bar; one JSON line per evaluation still goes to stdout
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    set_threads(args.train.threads)?;
    train_and_write(&args).map(|_| ())
}

/// The AUC of the true click probabilities that `pocketrec synth --with-probability` wrote beside
/// `path` (as `path.prob`), over the same rows: the best any model can do on this data.
fn bayes_auc(path: &str, skip: usize, max: Option<usize>) -> Option<f64> {
    let text = std::fs::read_to_string(format!("{path}.prob")).ok()?;
    let probs: Vec<f32> = text.lines().skip(skip).take(max.unwrap_or(usize::MAX)).map(|l| l.parse().ok()).collect::<Option<_>>()?;
    let mut stream = open_stream(path, skip, max, 8192, 0, 0, true, None).ok()?;
    let mut labels = Vec::with_capacity(probs.len());
    while let Some(batch) = stream.next_batch().ok()? {
        labels.extend_from_slice(&batch.labels);
    }
    (labels.len() == probs.len()).then(|| pocketrec_trainer::metrics::auc(&probs, &labels))
}

/// What one training run produced.
pub struct Outcome {
    pub eval: Option<EvalResult>,
    /// Bytes of the stored parameters (the model file minus its header).
    pub param_bytes: u64,
}

/// Trains as `args` say and writes the model; the worker threads must already be set.
pub fn train_and_write(args: &Args) -> Result<Outcome> {
    let ckpt_path = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.output.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    let (lr, lr_decay) = (args.train.learning_rate(), args.train.lr_decay);
    if !(lr.is_finite() && lr > 0.0 && lr_decay.is_finite() && lr_decay > 0.0) {
        anyhow::bail!("--lr ({lr}) and --lr-decay ({lr_decay}) must be positive numbers");
    }
    let vocab = args.model.vocabulary(&args.data)?;
    let (mut model, mut opt, start) = if args.resume {
        let ck = checkpoint::load(&ckpt_path)?;
        eprintln!(
            "resuming from {} at step {} (epoch {}, {} samples)",
            ckpt_path.display(),
            ck.position.step,
            ck.position.epoch + 1,
            ck.position.samples
        );
        (ck.model, ck.optimizer, ck.position)
    } else {
        let config = args.model.config(&args.data, vocab.as_deref())?;
        let model = Dlrm::init(config, args.train.seed)?;
        let opt = Optimizer::new(args.train.optimizer, lr, &model);
        (model, opt, Position::default())
    };
    let mut reporter = Reporter::new(args.quiet, args.train.epochs);
    let opts = LoopOptions {
        epochs: args.train.epochs,
        eval_every: args.train.eval_every,
        checkpoint_every: args.train.checkpoint_every,
        max_steps: args.train.max_steps,
        lr,
        lr_decay,
    };
    let mut saver =
        |pos: &Position, model: &Dlrm, opt: &Optimizer| checkpoint::save(&ckpt_path, model, opt, pos, &args.train);
    let data = &args.data;
    let seed = args.train.seed;
    let batch = args.train.batch;
    let mut open = |epoch: u64| -> Result<Box<dyn BatchStream>> {
        open_stream(&data.train, data.skip_rows, data.max_rows, batch, data.shuffle_buffer, seed ^ epoch, data.strict, vocab.clone())
    };
    let mut open_eval = || -> Result<Option<Box<dyn BatchStream>>> {
        data.eval
            .as_ref()
            .map(|p| open_stream(p, data.eval_skip_rows, data.eval_max_rows, 4096, 0, 0, data.strict, vocab.clone()))
            .transpose()
    };
    let mut observer = reporter.observer(&mut saver);
    let (pos, eval) = train(&mut model, &mut opt, start, &opts, &mut open, &mut open_eval, &mut observer)?;

    let provenance = serde_json::json!({
        "data": data.train,
        "eval_data": data.eval,
        "steps": pos.step,
        "samples": pos.samples,
        "epochs": opts.epochs,
        "seed": seed,
        "optimizer": opt.kind(),
        "lr": opt.lr,
        "batch": batch,
        "eval": eval,
        "vocabulary": if vocab.is_some() { "built from the training data; not stored: score remapped ids only" } else { "none (raw keys)" },
    });
    let bytes = pocketrec::file::to_bytes(&model, args.model.dtype, &provenance)?;
    pocketrec_trainer::io::write_atomic(&args.output, &bytes).with_context(|| format!("writing {}", args.output.display()))?;
    let bayes = data.eval.as_deref().and_then(|p| bayes_auc(p, data.eval_skip_rows, data.eval_max_rows));
    reporter.finish(&pos, eval.as_ref(), bayes, &args.output, bytes.len());
    let param_bytes = model.param_count() as u64 * args.model.dtype.bytes();
    Ok(Outcome { eval, param_bytes })
}
