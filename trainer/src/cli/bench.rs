//! `pocketrec bench train`: training throughput on synthetic data, set against this machine's
//! GEMM rate measured in the same run.

use crate::cli::common::set_threads;
use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use ndarray::Array2;
use pocketrec::config::criteo_schema;
use pocketrec::{Dlrm, HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype};
use pocketrec_trainer::count;
use pocketrec_trainer::train::{BatchStream, LoopOptions, Observer, Position, train};
use std::time::Instant;

#[derive(Subcommand)]
pub enum Bench {
    /// Training samples/s and GFLOP/s of the kaggle preset against a same-run GEMM
    Train(TrainBench),
}

#[derive(ClapArgs)]
pub struct TrainBench {
    #[arg(long, default_value = "kaggle")]
    pub preset: Preset,
    #[arg(long, default_value = "10MB", value_parser = pocketrec::config::parse_bytes)]
    pub memory: u64,
    #[arg(long, default_value_t = 2048)]
    pub batch: usize,
    /// Timed steps (after 3 warm-up steps)
    #[arg(long, default_value_t = 30)]
    pub steps: u64,
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Train(b) => train_bench(b),
    }
}

/// FLOP/s of a GEMM of 2048x512x256 on the kernels the model uses, the best of a few runs.
fn gemm_rate() -> f64 {
    let (m, k, n) = (2048, 512, 256);
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.1);
    let mut c = Array2::<f32>::zeros((m, n));
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        pocketrec::gemm::matmul(a.view(), b.view(), c.view_mut(), false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best
}

/// Seconds of the GEMMs of one training step alone, the best of a few runs: every layer's forward
/// product, weight gradient and (except the first bottom layer's) input gradient, with the
/// operand layouts of `Dlrm::forward`/`backward`, on one shard of rows per thread as `TrainStep`
/// cuts the batch. A step whose other work took no time would run at this speed.
fn step_gemm_secs(cfg: &ModelConfig, batch: usize) -> f64 {
    use rayon::prelude::*;
    let shards = rayon::current_num_threads().min(batch / 32).max(1);
    let rows = batch.div_ceil(shards);
    let fill = |m, n| Array2::from_shape_fn((m, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1);
    let layers: Vec<(usize, usize, bool)> = cfg
        .bottom
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[0], w[1], i > 0))
        .chain(cfg.top.windows(2).map(|w| (w[0], w[1], true)))
        .collect();
    // Per layer: input, weight [out, in], output gradient, and the three outputs.
    let mut work: Vec<Vec<_>> = (0..shards)
        .map(|_| {
            layers
                .iter()
                .map(|&(i, o, d_in)| {
                    (
                        fill(rows, i),
                        fill(o, i),
                        fill(rows, o),
                        Array2::zeros((rows, o)),
                        Array2::zeros((o, i)),
                        Array2::zeros((rows, i)),
                        d_in,
                    )
                })
                .collect()
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        work.par_iter_mut().for_each(|shard| {
            for (x, w, dz, y, dw, dx, d_in) in shard.iter_mut() {
                pocketrec::gemm::matmul(x.view(), w.t(), y.view_mut(), false);
                pocketrec::gemm::matmul(dz.t(), x.view(), dw.view_mut(), false);
                if *d_in {
                    pocketrec::gemm::matmul(dz.view(), w.view(), dx.view_mut(), false);
                }
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

const BENCH_LR: f32 = 0.01;

struct Quiet;
impl Observer for Quiet {}

fn train_bench(b: TrainBench) -> Result<()> {
    set_threads(b.threads)?;
    let (dense, fields) = criteo_schema();
    let cfg = ModelConfig::preset(b.preset, dense, fields, b.memory, 4, HashVariant::UmaV1, StoredDtype::F32)?;
    let flops_per_row = cfg.train_flops_per_row();
    let gemm_only_secs = step_gemm_secs(&cfg, b.batch);
    let mut model = Dlrm::init(cfg, 1)?;
    let mut opt = Optimizer::new(b.optimizer, BENCH_LR, &model);
    let synth = pocketrec_trainer::data::synth::Synth::new(1);
    let batches: Vec<_> = (0..b.steps + 3).map(|i| synth.batch(i * b.batch as u64, b.batch).0).collect();

    let gemm_before = gemm_rate();
    let mut run = |batches: Vec<pocketrec::Batch>, steps: u64| -> Result<f64> {
        let mut iter = Some(batches.into_iter());
        let mut open = |_| -> Result<Box<dyn BatchStream>> { Ok(Box::new(iter.take().expect("one epoch"))) };
        let mut no_eval = || -> Result<Option<Box<dyn BatchStream>>> { Ok(None) };
        let opts = LoopOptions {
            epochs: 1,
            eval_every: 0,
            checkpoint_every: 0,
            max_steps: Some(steps),
            lr: BENCH_LR,
            lr_decay: 1.0,
        };
        let t = Instant::now();
        train(&mut model, &mut opt, Position::default(), &opts, &mut open, &mut no_eval, &mut Quiet)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (warm, timed) = batches.split_at(3);
    run(warm.to_vec(), 3)?;
    let secs = run(timed.to_vec(), b.steps)?;
    let gemm = gemm_before.max(gemm_rate());

    let samples_per_s = (b.steps as f64 * b.batch as f64) / secs;
    let achieved = samples_per_s * flops_per_row as f64;
    // The same FLOP count at the speed of the step's GEMMs alone: the ceiling of the ratio below.
    let ceiling = b.batch as f64 / gemm_only_secs * flops_per_row as f64;
    if b.json {
        println!(
            "{}",
            serde_json::json!({"batch": b.batch, "steps": b.steps, "samples_per_s": samples_per_s,
                "train_flops_per_row": flops_per_row, "gflops": achieved / 1e9, "gemm_gflops": gemm / 1e9,
                "ratio_to_gemm": achieved / gemm,
                "step_gemms_only_ratio_to_gemm": ceiling / gemm})
        );
    } else {
        let shards = rayon::current_num_threads().min(b.batch / 32).max(1);
        let (steps, threads) = (count(b.steps, "step"), count(rayon::current_num_threads() as u64, "thread"));
        println!("preset {:?}, batch {}, {steps}, {threads}", b.preset, b.batch);
        println!(
            "training   {samples_per_s:.0} samples/s = {:.1} GFLOP/s ({flops_per_row} FLOP per sample)",
            achieved / 1e9
        );
        println!("GEMM       {:.1} GFLOP/s (2048x512x256, the model's kernels, same run)", gemm / 1e9);
        println!("ratio      {:.0}% of the GEMM rate", 100.0 * achieved / gemm);
        println!(
            "ceiling    {:.0}% of the GEMM rate: the step's own GEMMs alone ({} of {}, {:.2} ms, same run)",
            100.0 * ceiling / gemm,
            count(shards as u64, "shard"),
            count(b.batch.div_ceil(shards) as u64, "row"),
            1e3 * gemm_only_secs
        );
    }
    Ok(())
}
