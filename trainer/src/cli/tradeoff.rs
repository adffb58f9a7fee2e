//! `pocketrec tradeoff`: the paper's size/quality trade-off measured with one tool. Trains ROBE-Z
//! at several memory budgets and the `hashed` and `full` baselines on the same data, then writes a
//! markdown table and a PNG plot of eval AUC against stored model size.

use crate::cli::common::{DataArgs, EmbeddingKind, ModelArgs, TrainArgs, set_threads, train_schema};
use crate::cli::train::{Args as TrainCmd, Inputs, train_and_write};
use anyhow::{Context as _, Result, bail};
use clap::Args as ClapArgs;
use image::ImageEncoder as _;
use plotters::prelude::*;
use pocketrec::config::parse_bytes;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// ROBE-Z budgets to train, comma-separated, e.g. 4MB,20MB (default: 2, 10 and 100 times the
    /// bytes of the preset's MLPs on the data's schema, rounded up; each must exceed the MLPs)
    #[arg(long, value_delimiter = ',', value_parser = parse_bytes)]
    pub budgets: Vec<u64>,
    /// Also train the `hashed` (at the --memory budget) and `full` baselines
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub baselines: bool,
    /// Folder for the models, tradeoff.md and tradeoff.png
    #[arg(long)]
    pub out_dir: PathBuf,
    #[arg(long)]
    pub quiet: bool,
}

struct Point {
    label: String,
    bytes: u64,
    auc: f64,
    logloss: f64,
}

pub fn run(args: Args) -> Result<()> {
    if args.data.eval.is_none() {
        bail!("tradeoff compares the models by their eval AUC: give --eval data");
    }
    set_threads(args.train.threads)?;
    let reads_stdin = args.data.train == "-" || args.data.eval.as_deref() == Some("-");
    if reads_stdin {
        // Standard input is spooled beside the outputs, so their folder must exist first.
        std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    }
    let inputs = Inputs::prepare(&args.data, &args.out_dir.join("tradeoff"))?;
    let (schema, _) = train_schema(&inputs.train, &args.data)?;
    let budgets = if args.budgets.is_empty() {
        default_budgets(args.model.preset.mlp_bytes(schema.dense.len(), schema.fields.len(), args.model.dtype))
    } else {
        args.budgets.clone()
    };
    // (label, the flag that sets its budget, model options)
    let mut runs: Vec<(String, &str, ModelArgs)> = Vec::new();
    for memory in budgets {
        let model = ModelArgs { memory, embedding: EmbeddingKind::Robe, ..args.model.clone() };
        runs.push((format!("robe {}", budget_label(memory)), "--budgets", model));
    }
    if args.baselines {
        runs.push(("hashed".into(), "--memory", ModelArgs { embedding: EmbeddingKind::Hashed, ..args.model.clone() }));
        runs.push(("full".into(), "--memory", ModelArgs { embedding: EmbeddingKind::Full, ..args.model.clone() }));
    }
    // Every model must fit its budget before any of them trains.
    for (label, flag, model) in &runs {
        model.config_for(schema.clone(), None).with_context(|| format!("{label}: {flag} {}", model.memory))?;
    }
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut points = Vec::new();
    for (label, _, model) in runs {
        eprintln!("== {label}");
        let file = args.out_dir.join(format!("{}.safetensors", label.replace(' ', "-")));
        let cmd = TrainCmd {
            data: args.data.clone(),
            model,
            train: args.train.clone(),
            output: file,
            checkpoint: None,
            resume: false,
            keep_checkpoint: false,
            quiet: args.quiet,
        };
        let outcome = train_and_write(&cmd, &inputs)?;
        let Some(eval) = outcome.eval else { bail!("tradeoff needs --eval data") };
        points.push(Point { label, bytes: outcome.param_bytes, auc: eval.auc, logloss: eval.logloss });
    }
    let table = table(&points);
    print!("{table}");
    pocketrec_trainer::io::write_atomic(args.out_dir.join("tradeoff.md"), table.as_bytes())?;
    plot(&points, &args.out_dir.join("tradeoff.png"))?;
    eprintln!("wrote {0}/tradeoff.md and {0}/tradeoff.png", args.out_dir.display());
    Ok(())
}

/// 2, 10 and 100 times the MLPs' bytes, rounded up to one significant digit: the smallest gives the
/// embeddings about as many bytes as the MLPs.
fn default_budgets(mlp_bytes: u64) -> Vec<u64> {
    let round_up = |x: u64| {
        let p = 10u64.pow(x.max(1).ilog10());
        x.div_ceil(p) * p
    };
    [2, 10, 100].iter().map(|k| round_up(k * mlp_bytes)).collect()
}

/// A budget in decimal units for labels and file names: 4MB, 20MB, 1.5KB.
fn budget_label(bytes: u64) -> String {
    let units = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3)];
    match units.iter().find(|(_, scale)| bytes as f64 >= *scale) {
        Some((unit, scale)) => format!("{}{unit}", bytes as f64 / scale),
        None => format!("{bytes}B"),
    }
}

fn table(points: &[Point]) -> String {
    let mut t = String::from("| model | stored parameters | eval AUC | eval logloss |\n|---|---:|---:|---:|\n");
    for p in points {
        let _ = writeln!(t, "| {} | {:.2} MB | {:.4} | {:.4} |", p.label, p.bytes as f64 / 1e6, p.auc, p.logloss);
    }
    t
}

/// Registers DejaVu Sans (Debian's fonts-dejavu-core) for the plot's text.
fn load_font() -> Result<()> {
    let path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {path}: install fonts-dejavu-core for the plot"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{path} is not a usable font"))
}

/// Draws into memory and writes the PNG through the atomic writer.
fn plot(points: &[Point], path: &Path) -> Result<()> {
    const SIZE: (u32, u32) = (900, 560);
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(points, BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area())?;
    let mut file = pocketrec_trainer::io::AtomicFile::create(path)?;
    image::codecs::png::PngEncoder::new(&mut file)
        .write_image(&rgb, SIZE.0, SIZE.1, image::ColorType::Rgb8)
        .with_context(|| format!("encoding {}", path.display()))?;
    file.commit()
}

fn draw(points: &[Point], root: DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()> {
    load_font()?;
    root.fill(&WHITE)?;
    let mb = |b: u64| (b as f64 / 1e6).max(1e-3);
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(mb(p.bytes)), h.max(mb(p.bytes))));
    let (alo, ahi) = points.iter().fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.auc), h.max(p.auc)));
    let mut chart = ChartBuilder::on(&root)
        .caption("eval AUC against stored model size", ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((lo / 2.0..hi * 2.0).log_scale(), (alo - 0.01)..(ahi + 0.01))?;
    chart.configure_mesh().x_desc("stored parameters (MB, log scale)").y_desc("eval AUC").draw()?;
    let robe: Vec<(f64, f64)> =
        points.iter().filter(|p| p.label.starts_with("robe")).map(|p| (mb(p.bytes), p.auc)).collect();
    chart
        .draw_series(LineSeries::new(robe.clone(), BLUE.stroke_width(2)))?
        .label("ROBE-Z")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart.draw_series(robe.iter().map(|&p| Circle::new(p, 5, BLUE.filled())))?;
    // Baselines are named in the legend (a marker each), ROBE-Z points by their budget beside them.
    for p in points.iter().filter(|p| !p.label.starts_with("robe")) {
        let color = if p.label == "full" { RED } else { GREEN };
        let name = if p.label == "hashed" { "hashed (Z = d)".to_string() } else { format!("{} tables", p.label) };
        chart
            .draw_series(std::iter::once(TriangleMarker::new((mb(p.bytes), p.auc), 8, color.filled())))?
            .label(name)
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
    }
    for p in points.iter().filter(|p| p.label.starts_with("robe")) {
        let at = (mb(p.bytes) * 1.08, p.auc - 0.0008);
        chart.draw_series(std::iter::once(Text::new(p.label.clone(), at, ("sans-serif", 15))))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocketrec::HashVariant;
    use pocketrec::config::{ModelConfig, Preset, StoredDtype, criteo_schema};

    #[test]
    fn default_budgets_fit_every_preset() {
        for preset in Preset::ALL {
            for dtype in [StoredDtype::F32, StoredDtype::F16] {
                let (dense, fields) = criteo_schema();
                let mlp = preset.mlp_bytes(dense.len(), fields.len(), dtype);
                let budgets = default_budgets(mlp);
                assert!(budgets.windows(2).all(|w| w[0] < w[1]), "{budgets:?}");
                for budget in budgets {
                    let cfg = ModelConfig::preset(
                        preset,
                        dense.clone(),
                        fields.clone(),
                        budget,
                        4,
                        HashVariant::UmaV1,
                        dtype,
                    );
                    assert!(cfg.is_ok(), "{} {budget}: {:?}", preset.name(), cfg.err());
                }
            }
        }
        // Kaggle's MLPs take 1.9 MB in f32.
        assert_eq!(
            default_budgets(Preset::Kaggle.mlp_bytes(13, 26, StoredDtype::F32)),
            [4_000_000, 20_000_000, 200_000_000]
        );
    }

    #[test]
    fn budget_labels() {
        assert_eq!(budget_label(4_000_000), "4MB");
        assert_eq!(budget_label(1_500), "1.5KB");
        assert_eq!(budget_label(999), "999B");
    }
}
