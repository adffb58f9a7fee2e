//! Training data: streaming readers for Criteo TSV, schema TSV and mapped CSV/TSV, the threaded
//! loader with its seeded shuffle buffer, and the synthetic Criteo-format generator with a planted
//! ground truth.
//!
//! Raw categorical values are hashed straight to u32 keys as they are read (Criteo's 8 hex digits
//! are the u32; other strings go through FNV-1a-32), so there is no vocabulary pass and memory does
//! not grow with the file: the loader holds one shuffle buffer and a few batches in flight.
//!
//! Input rules, in one place:
//! - With a column mapping ([`Columns::Map`] from the trainer's flags, [`Columns::Model`] from a
//!   model file) the first line is a CSV/TSV header whose columns the mapping names (see
//!   [`mapping`]). Without one, the format is detected from the first line: a line whose first
//!   cell is `label` (or, for unlabelled data, a feature column such as `dense:age`) is a schema
//!   header, anything else is a Criteo row.
//! - Training and evaluation need a label on every row ([`Labels::Required`]). Scoring reads
//!   [`Labels::Optional`]: a row with exactly one column fewer than a labelled row (39 for Criteo,
//!   the header's feature columns for a schema TSV) has no label, and the header may omit `label`. Gzip is detected by its magic bytes; `-` reads stdin.
//! - A malformed line (wrong column count, bad label, non-numeric integer, categorical that is not
//!   8 hex digits, non-finite dense value, line over [`MAX_LINE_BYTES`], blank line) is counted
//!   and skipped; the first [`KEPT_BAD_LINES`] are kept with their line numbers in [`ReadStats`].
//!   `strict` turns the first one into an error.
//! - A last line without a trailing newline is an ordinary line: a row if complete, a bad line if
//!   it was cut mid-row.
//! - An empty input is an error at [`Loader::open`]; a schema file with only its header gives zero
//!   rows. A missing file is a one-line error naming it. A gzip stream that ends early (a cut file)
//!   is an error naming the file, never silently fewer rows.

mod loader;
pub mod mapping;
pub mod parse;
pub mod rng;
pub mod synth;

pub use loader::Loader;
pub use mapping::{Columns, Mapping, Rest};
pub use parse::{BadReason, Row, RowParser};

/// Whether rows must start with a label column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Labels {
    /// Every row has one (training, evaluation); a row without is a malformed line.
    #[default]
    Required,
    /// A row one column short has no label (scoring).
    Optional,
}

/// Lines longer than this (without the newline) are skipped as bad lines.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How many bad lines [`ReadStats`] keeps with their line numbers and reasons.
pub const KEPT_BAD_LINES: usize = 5;

/// The columns of the input: dense feature names and sparse fields, in model order.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub dense: Vec<String>,
    pub fields: Vec<pocketrec::Field>,
}

impl Schema {
    /// Criteo's 13 integer features `I1..I13` and 26 categorical fields `C1..C26`.
    pub fn criteo() -> Schema {
        let (dense, fields) = pocketrec::config::criteo_schema();
        Schema { dense, fields }
    }
}

/// How the loader reads, shuffles and batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// Rows held for shuffling; 0 keeps file order. A Criteo row costs about 400 bytes here, so
    /// 100,000 rows is about 40 MB.
    pub shuffle_buffer: usize,
    pub seed: u64,
    /// Make the first malformed line an error instead of a counted skip.
    pub strict: bool,
    /// Data lines (good or bad, header excluded) to skip before reading.
    pub skip_rows: usize,
    /// Data lines (good or bad) to read after the skipped ones; `None` reads to the end.
    pub max_rows: Option<usize>,
    pub labels: Labels,
    /// How the columns of the input are learnt.
    pub columns: Columns,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 128,
            shuffle_buffer: 0,
            seed: 0,
            strict: false,
            skip_rows: 0,
            max_rows: None,
            labels: Labels::Required,
            columns: Columns::Detect,
        }
    }
}

/// A skipped line: its 1-based line number in the input (a header is line 1) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line_no: u64,
    pub reason: String,
}

/// What the reader has seen so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadStats {
    /// Good rows parsed (some may still sit in the shuffle buffer).
    pub rows: u64,
    /// Bytes read from the (decompressed) input, newlines included.
    pub bytes: u64,
    /// Malformed lines skipped.
    pub bad_lines: u64,
    /// The first [`KEPT_BAD_LINES`] of them.
    pub first_bad: Vec<BadLine>,
}

impl std::fmt::Display for ReadStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, bytes, bad) = (
            crate::count(self.rows, "row"),
            crate::count(self.bytes, "byte"),
            crate::count(self.bad_lines, "bad line"),
        );
        write!(f, "{rows}, {bytes}, {bad}")?;
        for bad in &self.first_bad {
            write!(f, "; line {}: {}", bad.line_no, bad.reason)?;
        }
        Ok(())
    }
}
