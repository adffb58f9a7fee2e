//! `pocketrec bench train`: training throughput on synthetic data, set against this machine's
//! GEMM rate measured in the same run. `pocketrec bench personalize`: on-device learning against
//! the base model, with simulated users of the demo world ([`pocketrec_trainer::personalize`]).

use crate::cli::common::set_threads;
use anyhow::{Context as _, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use ndarray::Array2;
use pocketrec::LearnOptions;
use pocketrec::config::criteo_schema;
use pocketrec::{Dlrm, HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype};
use pocketrec_trainer::count;
use pocketrec_trainer::demo::{DemoOptions, catalog_json, synthetic_world};
use pocketrec_trainer::personalize::{
    Estimate, Measure, NegativesFrom, Sim, SimOptions, estimate, scope_name, standard_variants,
};
use pocketrec_trainer::train::{BatchStream, LoopOptions, Observer, Position, train};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum Bench {
    /// Training samples/s and GFLOP/s of the kaggle preset against a same-run GEMM
    Train(TrainBench),
    /// Hit rate of planted tastes in the demo page's top 24, with and without on-device learning
    Personalize(PersonalizeBench),
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
        Bench::Personalize(b) => personalize_bench(b),
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

#[derive(ClapArgs)]
pub struct PersonalizeBench {
    /// The demo model (`make demo-model`)
    #[arg(long, default_value = "out/demo/model.safetensors")]
    pub model: PathBuf,
    /// The catalog it was trained on [default: catalog.json beside the model]; it must be the
    /// synthetic world of --world-seed and --items
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Seed of the demo world (`pocketrec demo-data --seed`)
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    pub world_seed: u64,
    /// Items of the demo world (`pocketrec demo-data --items`)
    #[arg(long, default_value_t = DemoOptions::default().items)]
    pub items: usize,
    /// Simulated users
    #[arg(long, default_value_t = SimOptions::default().users)]
    pub users: usize,
    /// Seed of the simulated users' tastes and choices
    #[arg(long, default_value_t = SimOptions::default().seed)]
    pub seed: u64,
    /// Measure after these many clicks
    #[arg(long, value_delimiter = ',', default_values_t = SimOptions::default().at)]
    pub at: Vec<usize>,
    /// Items shown, as on the page
    #[arg(long, default_value_t = SimOptions::default().shown)]
    pub shown: usize,
    /// Negatives per like, drawn from the other shown items, as on the page
    #[arg(long, default_value_t = SimOptions::default().negatives)]
    pub negatives: usize,
    /// Which shown items the negatives are drawn from, as on the page: other categories than the
    /// liked item's first, or any
    #[arg(long, value_enum, default_value_t = SimOptions::default().negatives_from)]
    pub negatives_from: NegativesFrom,
    /// Share of the catalog planted as liked by each user (by planted utility in its context)
    #[arg(long, default_value_t = SimOptions::default().liked_share)]
    pub liked_share: f64,
    /// Diversity strength of the list, as on the page (its cost is measured against 0)
    #[arg(long, default_value_t = 0.45)]
    pub diversity: f32,
    /// Learning options [default: the engine's defaults, LearnOptions::default()]
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub steps: Option<u32>,
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    #[arg(long)]
    pub anchor: Option<f32>,
    #[arg(long)]
    pub scope: Option<pocketrec::Scope>,
    /// Only (a) and (b): no other scopes, no run without diversity (for tuning)
    #[arg(long)]
    pub quick: bool,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

/// One number of a shown list, per user.
type Metric = fn(&Measure) -> f64;

fn personalize_bench(b: PersonalizeBench) -> Result<()> {
    set_threads(b.threads)?;
    let bytes = std::fs::read(&b.model)
        .with_context(|| format!("reading {} (build it with `make demo-model`)", b.model.display()))?;
    let model = pocketrec::file::from_bytes(&bytes).with_context(|| format!("loading {}", b.model.display()))?.model;
    let world = DemoOptions { seed: b.world_seed, items: b.items, ..DemoOptions::default() };
    let (catalog, truth) = synthetic_world(&world)?;
    let catalog_path = b.catalog.clone().unwrap_or_else(|| b.model.with_file_name("catalog.json"));
    let on_disk = std::fs::read(&catalog_path).with_context(|| {
        format!("reading {}, the catalog the model was trained on (give it with --catalog)", catalog_path.display())
    })?;
    if on_disk != catalog_json(&catalog)?.as_bytes() {
        bail!(
            "{} is not the synthetic demo world of seed {} with {} items, so its planted tastes are unknown: \
             rebuild the model with `make demo-model`, or give the --world-seed and --items of `pocketrec demo-data`",
            catalog_path.display(),
            b.world_seed,
            b.items
        );
    }
    let defaults = LearnOptions::default();
    let learn = LearnOptions {
        lr: b.lr.unwrap_or(defaults.lr),
        steps: b.steps.unwrap_or(defaults.steps),
        optimizer: b.optimizer.unwrap_or(defaults.optimizer),
        scope: b.scope.unwrap_or(defaults.scope),
        anchor: b.anchor.unwrap_or(defaults.anchor),
    };
    learn.validate()?;
    let mut variants = standard_variants(&learn, b.diversity);
    if b.quick {
        variants.truncate(2);
    }
    let opts = SimOptions {
        users: b.users,
        seed: b.seed,
        at: b.at.clone(),
        shown: b.shown,
        negatives: b.negatives,
        negatives_from: b.negatives_from,
        liked_share: b.liked_share,
    };
    let sim = Sim::new(&model, &catalog, &truth)?;
    let t = Instant::now();
    let results = sim.run(&model, &variants, &opts)?;
    let secs = t.elapsed().as_secs_f64();

    // Per variant and click count: the estimate of each measure, and of its paired difference.
    let metric = |v: usize, a: usize, f: Metric| -> Vec<f64> { results.iter().map(|u| f(&u[v][a])).collect() };
    let measures: [(&str, Metric); 2] = [("hit_rate", |m| m.hit_rate), ("ndcg", |m| m.ndcg)];
    let summary = |v: usize, f: Metric| -> Vec<(Estimate, Option<Estimate>)> {
        (0..opts.at.len())
            .map(|a| {
                let own = metric(v, a, f);
                let diff = variants[v]
                    .against
                    .map(|w| estimate(&own.iter().zip(metric(w, a, f)).map(|(x, y)| x - y).collect::<Vec<_>>()));
                (estimate(&own), diff)
            })
            .collect()
    };
    let liked_items = ((b.liked_share * b.items as f64).round() as usize).clamp(1, b.items);
    if b.json {
        let variants_json: Vec<_> = variants
            .iter()
            .enumerate()
            .map(|(v, var)| {
                let mut o = serde_json::json!({
                    "name": var.name,
                    "learn": var.learn.as_ref().map(learn_json),
                    "diversity": var.diversity,
                    "against": var.against.map(|w| &variants[w].name),
                });
                for (name, f) in measures {
                    let s = summary(v, f);
                    o[name] = serde_json::json!(s.iter().map(|e| e.0).collect::<Vec<_>>());
                    o[format!("{name}_difference")] = serde_json::json!(s.iter().map(|e| e.1).collect::<Vec<_>>());
                }
                o
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"users": b.users, "seed": b.seed, "at": opts.at, "shown": b.shown,
                "negatives": b.negatives, "negatives_from": format!("{:?}", b.negatives_from), "liked_share": b.liked_share, "liked_items": liked_items,
                "learn": learn_json(&learn), "secs": secs, "variants": variants_json})
        );
        return Ok(());
    }
    println!(
        "{} of the demo world ({}), each with a fixed time of day and device; top {} shown; \
         planted-liked = the top {:.0}% of the catalog by planted utility ({}); {} per like, from {}",
        count(b.users as u64, "simulated user"),
        count(b.items as u64, "item"),
        b.shown,
        100.0 * b.liked_share,
        count(liked_items as u64, "item"),
        count(b.negatives as u64, "negative"),
        match b.negatives_from {
            NegativesFrom::Shown => "the other shown items",
            NegativesFrom::OtherCategories => "the shown items of other categories first",
            NegativesFrom::OneOfItsCategory => "one shown item of its category, the rest of others",
        },
    );
    println!(
        "learning: {}; {:.1} s, {}",
        learn_text(&learn),
        secs,
        count(rayon::current_num_threads() as u64, "thread")
    );
    let width = variants.iter().map(|v| v.name.len()).max().unwrap_or(0).max(28);
    let titles = [format!("hit rate in the top {}", b.shown), format!("NDCG@{}", b.shown)];
    for (title, (_, f)) in titles.iter().zip(measures) {
        println!();
        let head: String = opts.at.iter().map(|a| format!("{:>16}", count(*a as u64, "click"))).collect();
        println!("{:width$}{head}", format!("{title} (mean ±95% CI)"));
        for (v, var) in variants.iter().enumerate() {
            let s = summary(v, f);
            let cells: String =
                s.iter().map(|(e, _)| format!("{:>16}", format!("{:.3} ±{:.3}", e.mean, e.ci95))).collect();
            println!("{:width$}{cells}", var.name);
            if let Some(w) = var.against {
                let cells: String = s
                    .iter()
                    .map(|(_, d)| {
                        d.map_or(String::new(), |d| format!("{:>16}", format!("{:+.3} ±{:.3}", d.mean, d.ci95)))
                    })
                    .collect();
                println!(
                    "{:width$}{cells}",
                    format!("    minus {}", variants[w].name.split(' ').next().unwrap_or_default())
                );
            }
        }
    }
    Ok(())
}

fn learn_json(o: &LearnOptions) -> serde_json::Value {
    serde_json::json!({"lr": o.lr, "steps": o.steps, "optimizer": o.optimizer, "scope": scope_name(o.scope), "anchor": o.anchor})
}

fn learn_text(o: &LearnOptions) -> String {
    format!(
        "lr {}, {}, {}, scope {}, anchor {}",
        o.lr,
        count(o.steps as u64, "step"),
        serde_json::to_value(o.optimizer).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        scope_name(o.scope),
        o.anchor
    )
}
