//! Training progress for people (an indicatif bar on stderr) and for scripts (one JSON line per
//! evaluation on stdout).

use crate::train::{EvalResult, Observer, Position};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pocketrec::{Dlrm, Optimizer};
use std::path::Path;
use std::time::Instant;

pub struct Reporter {
    bar: Option<ProgressBar>,
    start: Instant,
    start_samples: Option<u64>,
    epochs: u64,
    loss: Option<f64>,
    last_auc: Option<f64>,
}

pub type Saver<'a> = dyn FnMut(&Position, &Dlrm, &Optimizer) -> Result<()> + 'a;

/// Steps of the bar: a fraction of the whole run, in thousandths.
const BAR_LEN: u64 = 1000;

impl Reporter {
    pub fn new(quiet: bool, epochs: u64) -> Self {
        let bar = (!quiet).then(|| {
            let bar = ProgressBar::with_draw_target(Some(BAR_LEN), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {percent:>3}% eta {eta:<5} {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        Reporter { bar, start: Instant::now(), start_samples: None, epochs: epochs.max(1), loss: None, last_auc: None }
    }

    pub fn observer<'a>(&'a mut self, saver: &'a mut Saver<'a>) -> ReporterObserver<'a> {
        ReporterObserver { reporter: self, saver }
    }

    fn samples_per_sec(&self, pos: &Position) -> f64 {
        let done = pos.samples - self.start_samples.unwrap_or(0);
        done as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// Prints the final summary on stderr.
    /// `bayes_auc` is the AUC of the data's true probabilities, when known (synthetic data).
    pub fn finish(
        &mut self,
        pos: &Position,
        eval: Option<&EvalResult>,
        bayes_auc: Option<f64>,
        path: &Path,
        bytes: usize,
    ) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "trained {}, {} in {:.1} s ({:.0} samples/s)",
            crate::count(pos.step, "step"),
            crate::count(pos.samples, "sample"),
            self.start.elapsed().as_secs_f64(),
            self.samples_per_sec(pos)
        );
        if let Some(e) = eval {
            let bayes = bayes_auc.map_or(String::new(), |b| format!(" (Bayes-optimal {b:.4})"));
            eprintln!(
                "eval: AUC {:.4}{bayes}, logloss {:.4}, mean prediction {:.4} vs click rate {:.4} ({})",
                e.auc,
                e.logloss,
                e.mean_prediction,
                e.click_rate,
                crate::count(e.rows as u64, "row")
            );
        }
        eprintln!("wrote {} ({:.2} MB)", path.display(), bytes as f64 / 1e6);
    }
}

pub struct ReporterObserver<'a> {
    reporter: &'a mut Reporter,
    saver: &'a mut Saver<'a>,
}

impl Observer for ReporterObserver<'_> {
    fn on_step(&mut self, pos: &Position, loss: f64, progress: Option<f64>) {
        let r = &mut *self.reporter;
        if r.start_samples.is_none() {
            r.start_samples = Some(pos.samples.saturating_sub(1));
            r.start = Instant::now();
        }
        r.loss = Some(r.loss.map_or(loss, |l| 0.98 * l + 0.02 * loss));
        if !pos.step.is_multiple_of(8) {
            return;
        }
        let rate = r.samples_per_sec(pos);
        if let Some(bar) = &r.bar {
            let done = (pos.epoch as f64 + progress.unwrap_or(0.0)) / r.epochs as f64;
            bar.set_position((done * BAR_LEN as f64) as u64);
            let auc = r.last_auc.map_or(String::new(), |a| format!(" | eval AUC {a:.4}"));
            bar.set_message(format!(
                "epoch {} | {:.0} samples/s | loss {:.4}{auc}",
                pos.epoch + 1,
                rate,
                r.loss.unwrap_or(f64::NAN)
            ));
        }
    }

    fn on_eval(&mut self, pos: &Position, eval: &EvalResult) {
        let r = &mut *self.reporter;
        r.last_auc = Some(eval.auc);
        let line = serde_json::json!({
            "event": "eval",
            "step": pos.step,
            "epoch": pos.epoch + u64::from(pos.batch_in_epoch > 0),
            "samples": pos.samples,
            "auc": eval.auc,
            "logloss": eval.logloss,
            "mean_prediction": eval.mean_prediction,
            "click_rate": eval.click_rate,
            "rows": eval.rows,
            "elapsed_s": r.start.elapsed().as_secs_f64(),
        });
        match &r.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn on_checkpoint(&mut self, pos: &Position, model: &Dlrm, opt: &Optimizer) -> Result<()> {
        (self.saver)(pos, model, opt)
    }
}
