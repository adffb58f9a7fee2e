//! Arguments shared by the data-consuming subcommands (train, eval, bench) and their glue.

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use pocketrec::config::{EmbeddingConfig, parse_bytes};
use pocketrec::{FieldKind, HashVariant, KeyMode, ModelConfig, OptimizerKind, Preset, StoredDtype};
use pocketrec_trainer::data::{Columns, Loader, LoaderOptions, Mapping, Rest, Schema, mapping};
use pocketrec_trainer::train::BatchStream;
use pocketrec_trainer::vocab::Vocabulary;
use std::sync::Arc;

#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Training data: Criteo TSV, schema TSV, or a CSV/TSV with a header whose columns the
    /// mapping flags below name; plain or gzip. "-" reads stdin once: training reads
    /// its data more than once, so stdin is first copied to a hidden temporary file beside the
    /// output (.NAME.stdin.tmpPID, as large as the input), removed when the run ends
    #[arg(long)]
    pub train: String,
    /// Evaluation data (same formats; "-" as for --train)
    #[arg(long)]
    pub eval: Option<String>,
    /// Skip this many data rows of the training file
    #[arg(long, default_value_t = 0)]
    pub skip_rows: usize,
    /// Use at most this many data rows of the training file
    #[arg(long)]
    pub max_rows: Option<usize>,
    /// Skip this many data rows of the evaluation file
    #[arg(long, default_value_t = 0)]
    pub eval_skip_rows: usize,
    /// Use at most this many data rows of the evaluation file
    #[arg(long)]
    pub eval_max_rows: Option<usize>,
    /// Rows held in the seeded shuffle buffer (0: no shuffling)
    #[arg(long, default_value_t = 100_000)]
    pub shuffle_buffer: usize,
    /// Stop at the first malformed line instead of counting and skipping it
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub mapping: MappingArgs,
}

/// The roles of the columns of a CSV/TSV with a header (docs/rows.md). Any of them reads the first
/// line as the header; the model stores the result, so `score` and `eval` need none of them.
#[derive(Args, Clone, Debug, Default)]
pub struct MappingArgs {
    /// The label column: NAME (cells 0 or 1), or a threshold on a number: NAME>=X, NAME>X,
    /// NAME<=X or NAME<X (e.g. 'rating>=4')
    #[arg(long, help_heading = "Column mapping")]
    pub label: Option<String>,
    /// Columns to leave out: names or globs (* and ?), comma-separated
    #[arg(long, value_delimiter = ',', help_heading = "Column mapping")]
    pub ignore: Vec<String>,
    /// Dense (numeric) columns: names or globs, comma-separated; an empty cell is 0
    #[arg(long, value_delimiter = ',', help_heading = "Column mapping")]
    pub dense: Vec<String>,
    /// Categorical columns: names or globs, comma-separated; any text, hashed
    #[arg(long, value_delimiter = ',', help_heading = "Column mapping")]
    pub cat: Vec<String>,
    /// Bag columns (several tokens per cell, pooled by mean): NAME:SEP, e.g. 'tags:|' (SEP defaults to ,)
    #[arg(long, value_delimiter = ',', help_heading = "Column mapping")]
    pub bag: Vec<String>,
    /// Bag columns pooled by sum: as --bag
    #[arg(long, value_delimiter = ',', help_heading = "Column mapping")]
    pub bagsum: Vec<String>,
    /// What the columns no flag names are (default: they are an error that lists them)
    #[arg(long, value_enum, help_heading = "Column mapping")]
    pub rest: Option<Rest>,
    /// The cell separator: one character, or tab (default: detected from the header)
    #[arg(long, value_parser = mapping::parse_delimiter, help_heading = "Column mapping")]
    pub delimiter: Option<char>,
    /// A mapping file instead of the flags: lines `ROLE PATTERNS` (label, ignore, dense, cat, bag,
    /// bagsum, rest, delimiter), e.g. `cat C*,site_*`; # starts a comment
    #[arg(long, help_heading = "Column mapping")]
    pub mapping: Option<std::path::PathBuf>,
}

impl MappingArgs {
    /// The mapping the flags or the file give, `None` when neither does.
    pub fn mapping(&self) -> Result<Option<Mapping>> {
        let m = Mapping {
            delimiter: self.delimiter,
            label: self.label.clone(),
            ignore: self.ignore.clone(),
            dense: self.dense.clone(),
            cat: self.cat.clone(),
            bag: self.bag.clone(),
            bagsum: self.bagsum.clone(),
            rest: self.rest,
        };
        let flags = m != Mapping::default();
        match &self.mapping {
            Some(path) if flags => {
                bail!("--mapping {} and mapping flags both given: use one or the other", path.display())
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                Mapping::parse_file(&text).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            None => Ok(flags.then_some(m)),
        }
    }

    /// How the loader learns the columns of the training and evaluation data.
    pub fn columns(&self) -> Result<Columns> {
        Ok(self.mapping()?.map_or(Columns::Detect, Columns::Map))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmbeddingKind {
    /// ROBE-Z: one shared array read in blocks of Z
    Robe,
    /// Feature hashing into one shared array (ROBE-Z with Z = d)
    Hashed,
    /// One uncompressed table per field from a vocabulary pass over the training data
    Full,
}

#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// DLRM shapes: kaggle, terabyte or small
    #[arg(long, default_value = "kaggle")]
    pub preset: Preset,
    /// Budget for the whole stored model, e.g. 10MB (10^7 bytes) or 10MiB (units in any case)
    #[arg(long, default_value = "10MB", value_parser = parse_bytes)]
    pub memory: u64,
    /// ROBE block size Z
    #[arg(long, default_value_t = 4)]
    pub z: u32,
    /// ROBE hash variant: uma-v1 (the papers' code), new-robez, or independent (a per-block multiplier)
    #[arg(long, default_value = "uma-v1")]
    pub hash: HashVariant,
    /// Embedding storage: robe, or the hashed / full baselines
    #[arg(long, value_enum, default_value = "robe")]
    pub embedding: EmbeddingKind,
    /// Stored dtype of the model file: f32 or f16
    #[arg(long, default_value = "f32")]
    pub dtype: StoredDtype,
}

#[derive(Args, Clone, Debug, serde::Serialize)]
pub struct TrainArgs {
    /// adam (lazy on the embeddings; the default), adagrad, or sgd (the paper's)
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: 0.1 for sgd, 0.05 for adagrad, 0.003 for adam)
    #[arg(long)]
    pub lr: Option<f32>,
    /// Multiply the learning rate by this at every new epoch. CTR models overfit in their second
    /// epoch at a constant rate; on the synthetic data 0.003 to 0.01 made it improve instead
    #[arg(long, default_value_t = 1.0)]
    pub lr_decay: f32,
    #[arg(long, default_value_t = 2048)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Worker threads for the GEMMs and the per-row work (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Evaluate every this many training samples (0: only at the end)
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Write a checkpoint every this many steps (0: only at the end)
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Stop after this many steps
    #[arg(long)]
    pub max_steps: Option<u64>,
}

impl TrainArgs {
    pub fn learning_rate(&self) -> f32 {
        self.lr.unwrap_or(match self.optimizer {
            OptimizerKind::Sgd => 0.1,
            OptimizerKind::Adagrad => 0.05,
            OptimizerKind::Adam => 0.003,
        })
    }
}

/// The schema of the training data, from its first line (or header), and the column mapping
/// resolved against it when the data is mapped.
pub fn train_schema(train: &Input, data: &DataArgs) -> Result<(Schema, Option<Mapping>)> {
    let opts = LoaderOptions { max_rows: Some(1), ..data.train_rows(1)? };
    let loader = Loader::open_named(&train.path, &train.name, opts)?;
    Ok((loader.schema().clone(), loader.mapping().cloned()))
}

impl DataArgs {
    /// Reads the training rows the flags select (`--skip-rows`, `--max-rows`, `--strict`, the
    /// column mapping), unshuffled.
    pub fn train_rows(&self, batch_size: usize) -> Result<LoaderOptions> {
        Ok(LoaderOptions {
            batch_size,
            strict: self.strict,
            skip_rows: self.skip_rows,
            max_rows: self.max_rows,
            columns: self.mapping.columns()?,
            ..LoaderOptions::default()
        })
    }
}

impl ModelArgs {
    /// The model config for the schema of the training data.
    pub fn config(&self, train: &Input, data: &DataArgs, vocab: Option<&Vocabulary>) -> Result<ModelConfig> {
        self.config_for(train_schema(train, data)?.0, vocab)
            .with_context(|| format!("--preset {} --memory {}", self.preset.name(), self.memory))
    }

    /// The model config for a schema; errors are the library's, for the caller to name its flags.
    pub fn config_for(&self, schema: Schema, vocab: Option<&Vocabulary>) -> Result<ModelConfig> {
        let z = match self.embedding {
            EmbeddingKind::Hashed => self.preset.dim() as u32,
            _ => self.z,
        };
        let mut cfg =
            ModelConfig::preset(self.preset, schema.dense, schema.fields, self.memory, z, self.hash, self.dtype)?;
        if let (EmbeddingKind::Full, Some(vocab)) = (self.embedding, vocab) {
            let sizes = vocab.table_sizes();
            cfg.embedding = EmbeddingConfig::Full { rows: sizes.clone() };
            cfg.key_mode = KeyMode::Dictionary { table_sizes: sizes };
            cfg.validate()?;
        }
        Ok(cfg)
    }

    /// The vocabulary of the `full` baseline (a pass over the training rows), else `None`.
    pub fn vocabulary(&self, train: &Input, data: &DataArgs) -> Result<Option<Arc<Vocabulary>>> {
        if self.embedding != EmbeddingKind::Full {
            return Ok(None);
        }
        let mut stream = open_stream(train, data.train_rows(8192)?, None)?;
        let mut vocab = Vocabulary::default();
        while let Some(batch) = stream.next_batch()? {
            vocab.add(&batch);
        }
        if vocab.is_empty() {
            bail!("the training data has no rows to build a vocabulary from");
        }
        Ok(Some(Arc::new(vocab)))
    }
}

/// Sets the worker threads (rayon's pool, which the GEMMs and the per-row work share); call
/// before any parallel work.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the worker threads")?;
    Ok(())
}

/// A data argument ready to open: `path` is read, `name` is what messages call it (stdin copied
/// to a spool file is still "standard input").
#[derive(Clone, Debug)]
pub struct Input {
    pub path: String,
    pub name: String,
}

impl Input {
    /// The argument as given: a file path, or `-` for stdin.
    pub fn new(arg: &str) -> Input {
        let name = if arg == "-" { "standard input" } else { arg };
        Input { path: arg.to_string(), name: name.to_string() }
    }
}

/// A loader as a batch stream, remapping keys through a vocabulary when given; reports skipped
/// lines on stderr when the data ends.
struct LoaderStream {
    loader: Loader,
    path: String,
    vocab: Option<Arc<Vocabulary>>,
    /// Plain-file size, or the row limit, to tell how far the pass is.
    total_bytes: Option<u64>,
    max_rows: Option<usize>,
}

impl BatchStream for LoaderStream {
    fn next_batch(&mut self) -> Result<Option<pocketrec::Batch>> {
        let mut batch = self.loader.next_batch()?;
        match batch.as_mut() {
            Some(b) => {
                if let Some(v) = &self.vocab {
                    v.remap(b);
                }
            }
            None => {
                let stats = self.loader.stats();
                if stats.bad_lines > 0 {
                    eprintln!("pocketrec: skipped malformed lines of {}: {stats}", self.path);
                }
            }
        }
        Ok(batch)
    }

    fn progress(&self) -> Option<f64> {
        let stats = self.loader.stats();
        let by_rows = self.max_rows.map(|m| stats.rows as f64 / m.max(1) as f64);
        let by_bytes = self.total_bytes.map(|t| stats.bytes as f64 / t.max(1) as f64);
        by_rows.or(by_bytes).map(|p| p.min(1.0))
    }
}

impl LoaderStream {
    fn boxed(
        loader: Loader,
        input: &Input,
        max_rows: Option<usize>,
        vocab: Option<Arc<Vocabulary>>,
    ) -> Box<dyn BatchStream> {
        let plain = input.path != "-" && !loader.is_gzip();
        let total_bytes = if plain { std::fs::metadata(&input.path).ok().map(|m| m.len()) } else { None };
        Box::new(LoaderStream { loader, path: input.name.clone(), vocab, total_bytes, max_rows })
    }
}

/// Fails unless data of `schema` (read from `source`) has the columns `model` was trained on.
pub fn check_schema(source: &str, schema: &Schema, model: &ModelConfig) -> Result<()> {
    if schema.dense == model.dense && schema.fields == model.fields {
        return Ok(());
    }
    // Fields as a schema header writes them.
    let kind = |k: FieldKind| match k {
        FieldKind::Categorical => "cat",
        FieldKind::BagMean => "bag",
        FieldKind::BagSum => "bagsum",
    };
    let fields =
        |f: &[pocketrec::Field]| f.iter().map(|f| format!("{}:{}", kind(f.kind), f.name)).collect::<Vec<_>>().join(" ");
    bail!(
        "{source} does not match the model's schema: the data has {} ({}) and {} ({}), the model {} ({}) and {} ({}); \
         use data with the columns the model was trained on",
        pocketrec_trainer::count(schema.dense.len() as u64, "dense column"),
        schema.dense.join(" "),
        pocketrec_trainer::count(schema.fields.len() as u64, "sparse field"),
        fields(&schema.fields),
        pocketrec_trainer::count(model.dense.len() as u64, "dense column"),
        model.dense.join(" "),
        pocketrec_trainer::count(model.fields.len() as u64, "sparse field"),
        fields(&model.fields),
    )
}

/// How to read data for a model: by the column mapping its provenance stores (a model trained on
/// a mapped CSV/TSV), else by detecting Criteo or schema TSV as before.
pub fn model_columns(provenance: &serde_json::Value) -> Result<Columns> {
    match provenance.get("input") {
        None => Ok(Columns::Detect),
        Some(input) => {
            let m: Mapping = serde_json::from_value(input.clone())
                .context("the model's stored column mapping (provenance \"input\") is unreadable")?;
            Ok(Columns::Model(m))
        }
    }
}

/// A stream of the rows of `path` for scoring or evaluating `model`, whose schema it must match;
/// `opts.columns` should come from [`model_columns`].
pub fn open_for_model(path: &str, opts: LoaderOptions, model: &ModelConfig) -> Result<Box<dyn BatchStream>> {
    let max_rows = opts.max_rows;
    let input = Input::new(path);
    let loader = Loader::open_named(&input.path, &input.name, opts)?;
    check_schema(&input.name, loader.schema(), model)?;
    Ok(LoaderStream::boxed(loader, &input, max_rows, None))
}

/// Opens `input` as a batch stream, remapping keys through `vocab` when given.
pub fn open_stream(input: &Input, opts: LoaderOptions, vocab: Option<Arc<Vocabulary>>) -> Result<Box<dyn BatchStream>> {
    let max_rows = opts.max_rows;
    let loader = Loader::open_named(&input.path, &input.name, opts)?;
    Ok(LoaderStream::boxed(loader, input, max_rows, vocab))
}
