//! The training loop: forward, loss, backward and a sparse optimizer step per batch, with periodic
//! evaluation, atomic checkpoints and exact resume.
//!
//! Batches come from a [`BatchStream`] reopened once per epoch; for a given seed a stream yields the
//! same batches in the same order, so resuming replays the stream to the saved position and goes on
//! bit-identically.

use anyhow::{Context as _, Result, bail};
use pocketrec::passes::{Workspace, sigmoid};
use pocketrec::{Batch, Dlrm, Optimizer, TrainStep};

/// A source of batches for one pass over the data.
pub trait BatchStream {
    fn next_batch(&mut self) -> Result<Option<Batch>>;
    /// Fraction of the pass done, when the source knows it (for the progress bar's ETA).
    fn progress(&self) -> Option<f64> {
        None
    }
}

/// In-memory batches (tests, benchmarks).
impl BatchStream for std::vec::IntoIter<Batch> {
    fn next_batch(&mut self) -> Result<Option<Batch>> {
        Ok(self.next())
    }
}

/// Eval-set quality.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct EvalResult {
    pub rows: usize,
    pub auc: f64,
    pub logloss: f64,
    /// Mean predicted click probability, against the actual click rate.
    pub mean_prediction: f64,
    pub click_rate: f64,
}

/// Scores every batch of `stream` and returns (probabilities, labels).
pub fn predict(model: &Dlrm, stream: &mut dyn BatchStream) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut ws = Workspace::default();
    let (mut probs, mut labels) = (Vec::new(), Vec::new());
    while let Some(batch) = stream.next_batch()? {
        batch.validate(&model.config)?;
        probs.extend(model.forward(&batch, &mut ws).iter().map(|&z| sigmoid(z)));
        labels.extend_from_slice(&batch.labels);
    }
    Ok((probs, labels))
}

/// AUC, logloss and calibration of `model` on `stream`.
pub fn evaluate(model: &Dlrm, stream: &mut dyn BatchStream) -> Result<EvalResult> {
    let (probs, labels) = predict(model, stream)?;
    if probs.is_empty() {
        bail!("the evaluation data has no rows");
    }
    if labels.len() != probs.len() {
        bail!("the evaluation data has no labels");
    }
    let n = probs.len() as f64;
    Ok(EvalResult {
        rows: probs.len(),
        auc: crate::metrics::auc(&probs, &labels),
        logloss: crate::metrics::logloss(&probs, &labels),
        mean_prediction: probs.iter().map(|&p| p as f64).sum::<f64>() / n,
        click_rate: labels.iter().map(|&l| l as f64).sum::<f64>() / n,
    })
}

/// Where training stands; saved in checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub epoch: u64,
    /// Batches of the current epoch already trained on.
    pub batch_in_epoch: u64,
    pub step: u64,
    pub samples: u64,
}

/// What the loop reports to its caller as it goes (progress bar, JSON lines, checkpoints).
pub trait Observer {
    fn on_step(&mut self, _pos: &Position, _loss: f64, _progress: Option<f64>) {}
    fn on_eval(&mut self, _pos: &Position, _eval: &EvalResult) {}
    /// Called every `checkpoint_every` steps and at the end, with a model known to be finite.
    fn on_checkpoint(&mut self, _pos: &Position, _model: &Dlrm, _opt: &Optimizer) -> Result<()> {
        Ok(())
    }
}

pub struct LoopOptions {
    pub epochs: u64,
    /// Evaluate every this many training samples (0: only at the end).
    pub eval_every: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Stop after this many steps in total (benchmarks).
    pub max_steps: Option<u64>,
    /// The learning rate of epoch `e` (from 0) is `lr · lr_decay^e`.
    pub lr: f32,
    pub lr_decay: f32,
}

/// Trains `model` in place from `start` (a fresh or restored position). `open(epoch)` opens the
/// training stream of an epoch; `open_eval()` the evaluation stream, if any.
pub fn train(
    model: &mut Dlrm,
    opt: &mut Optimizer,
    start: Position,
    opts: &LoopOptions,
    open: &mut dyn FnMut(u64) -> Result<Box<dyn BatchStream>>,
    open_eval: &mut dyn FnMut() -> Result<Option<Box<dyn BatchStream>>>,
    observer: &mut dyn Observer,
) -> Result<(Position, Option<EvalResult>)> {
    let mut stepper = TrainStep::new();
    let mut pos = start;
    let mut next_eval = pos.samples.checked_div(opts.eval_every).map_or(u64::MAX, |k| (k + 1) * opts.eval_every);
    let mut last_eval: Option<(u64, EvalResult)> = None;
    let mut run_eval = |model: &Dlrm, pos: &Position, observer: &mut dyn Observer| -> Result<Option<EvalResult>> {
        let Some(mut stream) = open_eval()? else { return Ok(None) };
        let eval = evaluate(model, stream.as_mut())?;
        observer.on_eval(pos, &eval);
        Ok(Some(eval))
    };

    'epochs: while pos.epoch < opts.epochs {
        opt.lr = opts.lr * opts.lr_decay.powi(pos.epoch as i32);
        let mut stream =
            open(pos.epoch).with_context(|| format!("opening the training data for epoch {}", pos.epoch + 1))?;
        for _ in 0..pos.batch_in_epoch {
            if stream.next_batch()?.is_none() {
                bail!("the training data ended before the checkpoint's position: resume with the same data and seed");
            }
        }
        while let Some(batch) = stream.next_batch()? {
            if opts.max_steps.is_some_and(|m| pos.step >= m) {
                break 'epochs;
            }
            batch.validate(&model.config)?;
            if batch.labels.len() != batch.rows {
                bail!("training rows need labels");
            }
            let loss = stepper.step(model, opt, &batch);
            if !loss.is_finite() {
                bail!(
                    "the loss became {loss} at step {}: training stopped, the last checkpoint is kept; \
                     lower the learning rate or check the input data",
                    pos.step + 1
                );
            }
            pos.step += 1;
            pos.batch_in_epoch += 1;
            pos.samples += batch.rows as u64;
            observer.on_step(&pos, loss, stream.progress());
            if pos.samples >= next_eval {
                next_eval += opts.eval_every;
                last_eval = run_eval(model, &pos, observer)?.map(|e| (pos.samples, e));
            }
            if opts.checkpoint_every > 0 && pos.step.is_multiple_of(opts.checkpoint_every) {
                checkpoint(model, opt, &pos, observer)?;
            }
        }
        pos.epoch += 1;
        pos.batch_in_epoch = 0;
    }
    if pos.step == 0 {
        bail!(
            "training made no step, so no model was written: the training data has no valid rows \
             (see any skipped lines above), or --epochs or --max-steps is 0"
        );
    }
    let eval = match last_eval {
        Some((at, e)) if at == pos.samples => Some(e),
        _ => run_eval(model, &pos, observer)?,
    };
    checkpoint(model, opt, &pos, observer)?;
    Ok((pos, eval))
}

fn checkpoint(model: &Dlrm, opt: &Optimizer, pos: &Position, observer: &mut dyn Observer) -> Result<()> {
    if !model.is_finite() {
        bail!(
            "the model has non-finite parameters at step {}: not checkpointed, the last checkpoint is kept",
            pos.step
        );
    }
    observer.on_checkpoint(pos, model, opt)
}
