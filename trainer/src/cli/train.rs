//! `pocketrec train`: stream data, train a ROBE-Z DLRM (or a baseline), evaluate, export.
//!
//! Nothing is lost and nothing is silent: stdin is read once (spooled, since training reads its
//! data more than once), a run that trained no step is an error that writes nothing, `--resume`
//! checks the checkpoint's digest and options, and every file goes through [`io::AtomicFile`].
//! The checkpoint is removed once the model is written, unless `--keep-checkpoint`.

use crate::cli::common::{DataArgs, Input, ModelArgs, TrainArgs, open_stream, set_threads, train_schema};
use anyhow::{Context as _, Result, bail};
use clap::Args as ClapArgs;
use pocketrec::{Dlrm, Optimizer};
use pocketrec_trainer::checkpoint::{self, Options};
use pocketrec_trainer::data::LoaderOptions;
use pocketrec_trainer::io::{self, Spool};
use pocketrec_trainer::progress::Reporter;
use pocketrec_trainer::train::{BatchStream, EvalResult, LoopOptions, Position, train};
use std::path::{Path, PathBuf};

#[derive(ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Where to write the trained model (safetensors). Written atomically; a symlink is followed
    /// (its target gets the model), a directory or device is refused
    #[arg(short, long)]
    pub output: PathBuf,
    /// Checkpoint file (default: OUTPUT.ckpt)
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint, bit-identically. Its digest must match, and so must --train
    /// (path and size), --skip-rows, --max-rows, --shuffle-buffer, --preset, --memory, --z, --hash,
    /// --embedding, --dtype, --optimizer, --lr, --lr-decay, --batch and --seed: each that differs
    /// is named and the resume refused. --epochs (e.g. 3 to extend a 2-epoch run), --max-steps,
    /// --checkpoint-every, the --eval options and the output may change; a different --threads
    /// continues soundly but not bit-identically (a note says so)
    #[arg(long)]
    pub resume: bool,
    /// Keep the final checkpoint; by default it is removed once the model is written
    #[arg(long)]
    pub keep_checkpoint: bool,
    /// No progress bar; one JSON line per evaluation still goes to stdout
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    set_threads(args.train.threads)?;
    if args.output.as_os_str() == "-" {
        bail!(
            "-o -: the model is not written to standard output (it carries the evaluation JSON lines); give a file path"
        );
    }
    let inputs = Inputs::prepare(&args.data, &args.output)?;
    train_and_write(&args, &inputs).map(|_| ())
}

/// The training and evaluation inputs of a run. A `-` is read from stdin once, into a spool file
/// beside `beside` that lives as long as this value.
pub struct Inputs {
    pub train: Input,
    pub eval: Option<Input>,
    _spool: Option<Spool>,
}

impl Inputs {
    pub fn prepare(data: &DataArgs, beside: &Path) -> Result<Inputs> {
        let mut train = Input::new(&data.train);
        let mut eval = data.eval.as_deref().map(Input::new);
        if train.path == "-" && eval.as_ref().is_some_and(|e| e.path == "-") {
            bail!("--train and --eval cannot both read standard input");
        }
        let stdin = if train.path == "-" { Some(&mut train) } else { eval.as_mut().filter(|e| e.path == "-") };
        let mut spool = None;
        if let Some(input) = stdin {
            let s = Spool::stdin(&spool_name(beside))?;
            input.path = s
                .path()
                .to_str()
                .context("the output path must be UTF-8 to spool standard input beside it")?
                .to_string();
            spool = Some(s);
        }
        Ok(Inputs { train, eval, _spool: spool })
    }
}

/// The name the spool of stdin is derived from: `.NAME.stdin.tmpPID` for an output `NAME`.
fn spool_name(beside: &Path) -> PathBuf {
    let mut name = beside.as_os_str().to_owned();
    name.push(".stdin");
    PathBuf::from(name)
}

/// The AUC of the true click probabilities that `pocketrec synth --with-probability` wrote beside
/// `path` (as `path.prob`), over the same rows: the best any model can do on this data.
fn bayes_auc(input: &Input, skip: usize, max: Option<usize>) -> Option<f64> {
    let text = std::fs::read_to_string(format!("{}.prob", input.path)).ok()?;
    let probs: Vec<f32> =
        text.lines().skip(skip).take(max.unwrap_or(usize::MAX)).map(|l| l.parse().ok()).collect::<Option<_>>()?;
    let opts =
        LoaderOptions { batch_size: 8192, strict: true, skip_rows: skip, max_rows: max, ..LoaderOptions::default() };
    let mut stream = open_stream(input, opts, None).ok()?;
    let mut labels = Vec::with_capacity(probs.len());
    while let Some(batch) = stream.next_batch().ok()? {
        labels.extend_from_slice(&batch.labels);
    }
    (labels.len() == probs.len()).then(|| pocketrec_trainer::metrics::auc(&probs, &labels))
}

/// The options a checkpoint records and `--resume` compares (see `--resume`'s help).
fn resume_options(args: &Args, inputs: &Inputs) -> Options {
    let (d, m, t) = (&args.data, &args.model, &args.train);
    let train = match std::fs::canonicalize(&d.train) {
        Ok(p) if d.train != "-" => p.display().to_string(),
        _ => d.train.clone(),
    };
    let bytes = std::fs::metadata(&inputs.train.path).map_or("unknown".to_string(), |m| m.len().to_string());
    let optimizer =
        serde_json::to_value(t.optimizer).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let max_rows = d.max_rows.map_or("all".to_string(), |m| m.to_string());
    let embedding = format!("{:?}", m.embedding).to_lowercase();
    [
        ("--train", train),
        ("--train (bytes)", bytes),
        ("--skip-rows", d.skip_rows.to_string()),
        ("--max-rows", max_rows),
        ("--shuffle-buffer", d.shuffle_buffer.to_string()),
        ("--preset", m.preset.name().to_string()),
        ("--memory", m.memory.to_string()),
        ("--z", m.z.to_string()),
        ("--hash", m.hash.name().to_string()),
        ("--embedding", embedding),
        ("--dtype", m.dtype.name().to_string()),
        ("--optimizer", optimizer),
        ("--lr", t.learning_rate().to_string()),
        ("--lr-decay", t.lr_decay.to_string()),
        ("--batch", t.batch.to_string()),
        ("--seed", t.seed.to_string()),
        ("--threads", rayon::current_num_threads().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    // The column mapping, only when given, so checkpoints of unmapped runs still match.
    .chain(d.mapping.mapping().ok().flatten().map(|m| ("column mapping".to_string(), serde_json::json!(m).to_string())))
    .collect()
}

/// Options a resume may change and still train soundly, though not bit-identically.
const SOUND_TO_CHANGE: [&str; 1] = ["--threads"];

/// Refuses a resume with other options than the checkpoint's, naming each.
fn check_resume(saved: &Options, now: &Options, path: &Path) -> Result<()> {
    let (notes, refused): (Vec<_>, Vec<_>) =
        checkpoint::differences(saved, now).into_iter().partition(|d| SOUND_TO_CHANGE.contains(&d.option.as_str()));
    for d in notes {
        eprintln!(
            "pocketrec: note: {} was {} in the checkpoint, now {}: training continues, but not bit-identically to an uninterrupted run",
            d.option, d.saved, d.now
        );
    }
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|d| format!("{} {} (now {})", d.option, d.saved, d.now)).collect();
        bail!(
            "cannot resume from {}: it was written with other options: {}; rerun with the checkpoint's options, or start again without --resume",
            path.display(),
            list.join(", ")
        );
    }
    Ok(())
}

/// What one training run produced.
pub struct Outcome {
    pub eval: Option<EvalResult>,
    /// Bytes of the stored parameters (the model file minus its header).
    pub param_bytes: u64,
}

/// Trains as `args` say on `inputs` and writes the model; the worker threads must already be set.
pub fn train_and_write(args: &Args, inputs: &Inputs) -> Result<Outcome> {
    let ckpt_path = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.output.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    // Refuse an output that cannot be written before training, not after; and remove what
    // killed runs left behind.
    for path in [&args.output, &ckpt_path] {
        io::resolve(path)?;
        io::clean_stale_temps(path);
    }
    io::clean_stale_temps(&spool_name(&args.output));
    let (lr, lr_decay) = (args.train.learning_rate(), args.train.lr_decay);
    if !(lr.is_finite() && lr > 0.0 && lr_decay.is_finite() && lr_decay > 0.0) {
        anyhow::bail!("--lr ({lr}) and --lr-decay ({lr_decay}) must be positive numbers");
    }
    if args.train.eval_every > 0 && args.data.eval.is_none() {
        anyhow::bail!("--eval-every needs evaluation data: give --eval");
    }
    let vocab = args.model.vocabulary(&inputs.train, &args.data)?;
    let options = resume_options(args, inputs);
    let (mut model, mut opt, start) = if args.resume {
        let ck = checkpoint::load(&ckpt_path)?;
        check_resume(&ck.options, &options, &ckpt_path)?;
        eprintln!(
            "resuming from {} at step {} (epoch {}, {})",
            ckpt_path.display(),
            ck.position.step,
            ck.position.epoch + 1,
            pocketrec_trainer::count(ck.position.samples, "sample")
        );
        (ck.model, ck.optimizer, ck.position)
    } else {
        let config = args.model.config(&inputs.train, &args.data, vocab.as_deref())?;
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
        |pos: &Position, model: &Dlrm, opt: &Optimizer| checkpoint::save(&ckpt_path, model, opt, pos, &options);
    let data = &args.data;
    let seed = args.train.seed;
    let batch = args.train.batch;
    let mut open = |epoch: u64| -> Result<Box<dyn BatchStream>> {
        let opts = LoaderOptions { shuffle_buffer: data.shuffle_buffer, seed: seed ^ epoch, ..data.train_rows(batch)? };
        open_stream(&inputs.train, opts, vocab.clone())
    };
    let eval_opts = LoaderOptions {
        batch_size: 4096,
        strict: data.strict,
        skip_rows: data.eval_skip_rows,
        max_rows: data.eval_max_rows,
        columns: data.mapping.columns()?,
        ..LoaderOptions::default()
    };
    let mut open_eval = || -> Result<Option<Box<dyn BatchStream>>> {
        inputs.eval.as_ref().map(|input| open_stream(input, eval_opts.clone(), vocab.clone())).transpose()
    };
    let mut observer = reporter.observer(&mut saver);
    let (pos, eval) = train(&mut model, &mut opt, start, &opts, &mut open, &mut open_eval, &mut observer)?;

    let mut provenance = serde_json::json!({
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
    // The column mapping with exact names: `score` and `eval` read their data by it.
    if let Some(mapping) = train_schema(&inputs.train, data)?.1 {
        provenance["input"] = serde_json::to_value(mapping)?;
    }
    let bytes = pocketrec::file::to_bytes(&model, args.model.dtype, &provenance)?;
    io::write_atomic(&args.output, &bytes).with_context(|| format!("writing {}", args.output.display()))?;
    if !args.keep_checkpoint {
        // The model holds everything now; the checkpoint (about 3x its size) would only be litter.
        let real = io::resolve(&ckpt_path)?;
        match std::fs::remove_file(&real) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("pocketrec: warning: cannot remove the checkpoint {}: {e}", real.display())
            }
            _ => {}
        }
    }
    let bayes = inputs.eval.as_ref().and_then(|p| bayes_auc(p, data.eval_skip_rows, data.eval_max_rows));
    reporter.finish(&pos, eval.as_ref(), bayes, &args.output, bytes.len());
    let param_bytes = model.param_count() as u64 * args.model.dtype.bytes();
    Ok(Outcome { eval, param_bytes })
}
