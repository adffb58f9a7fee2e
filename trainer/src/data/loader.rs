//! The threaded loader: a reader thread opens the input, parses lines, shuffles rows in a bounded
//! seeded buffer and sends whole batches over a bounded channel, so training overlaps with I/O and
//! memory stays constant. Everything the thread does depends only on the input and the options,
//! so the same path and options give the same batch sequence.

use super::parse::{BadReason, Row, RowParser, is_header};
use super::rng::Rng;
use super::{BadLine, Columns, KEPT_BAD_LINES, LoaderOptions, MAX_LINE_BYTES, Mapping, ReadStats, Schema};
use anyhow::{Context, anyhow, bail};
use flate2::bufread::MultiGzDecoder;
use pocketrec::Batch;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Batches that may wait in the channel ahead of the trainer.
const BATCHES_IN_FLIGHT: usize = 4;
const READ_BUFFER: usize = 1 << 20;

enum Message {
    Batch(Batch, ReadStats),
    End(ReadStats),
    Fail(anyhow::Error),
}

/// Streams batches from a Criteo or schema TSV file, or a mapped CSV/TSV (plain or gzip), or from
/// stdin (`-`).
pub struct Loader {
    schema: Schema,
    mapping: Option<Mapping>,
    receiver: Receiver<Message>,
    stats: ReadStats,
    finished: bool,
    gzip: bool,
}

impl Loader {
    /// Opens `path` (`-` = stdin), reads its first line to learn the format, and starts the reader
    /// thread. Fails on a missing or empty input, a bad schema header or bad options.
    pub fn open(path: &str, opts: LoaderOptions) -> anyhow::Result<Loader> {
        let name = if path == "-" { "standard input" } else { path };
        Loader::open_named(path, name, opts)
    }

    /// [`Loader::open`], calling the input `name` in messages (a spooled copy of stdin is still
    /// "standard input").
    pub fn open_named(path: &str, name: &str, opts: LoaderOptions) -> anyhow::Result<Loader> {
        if opts.batch_size == 0 {
            bail!("the batch size must be at least 1");
        }
        let name = name.to_string();
        let (input, gzip) = open_input(path, &name)?;
        let mut lines = Lines { input, gzip, name, line_no: 0, bytes: 0 };
        let mut first = Vec::new();
        let kind = lines.next(&mut first)?;
        let mut mapping = None;
        let (schema, parser, pending) = match (kind, &opts.columns) {
            (Line::Eof, _) => bail!("{} is empty: it holds no rows", lines.name),
            (Line::TooLong, Columns::Map(_) | Columns::Model(_)) => {
                bail!("{}: line 1: the header is longer than {MAX_LINE_BYTES} bytes", lines.name)
            }
            (Line::Text, Columns::Map(m) | Columns::Model(m)) => {
                let from_model = matches!(opts.columns, Columns::Model(_));
                let (schema, parser, exact) = m
                    .resolve(&first, opts.labels, from_model)
                    .map_err(|e| anyhow!("{}: line 1 (the header): {e}", lines.name))?;
                mapping = Some(exact);
                (schema, parser, None)
            }
            (Line::Text, Columns::Detect) if is_header(&first) => {
                let (schema, parser) =
                    RowParser::from_header(&first, opts.labels).map_err(|e| anyhow!("{}: line 1: {e}", lines.name))?;
                (schema, parser, None)
            }
            (kind, Columns::Detect) => (Schema::criteo(), RowParser::criteo().with_labels(opts.labels), Some(kind)),
        };
        let (sender, receiver) = sync_channel(BATCHES_IN_FLIGHT);
        let n_fields = schema.fields.len();
        let header = mapping.is_some().then(|| first.strip_suffix(b"\r").unwrap_or(&first).to_vec());
        std::thread::Builder::new()
            .name("pocketrec-loader".into())
            .spawn(move || {
                let mut reader = Reader {
                    lines,
                    parser,
                    opts,
                    sender,
                    n_fields,
                    header,
                    stats: ReadStats::default(),
                    stopped: false,
                };
                if let Err(e) = reader.run(pending.map(|p| (p, first))) {
                    let _ = reader.sender.send(Message::Fail(e));
                }
            })
            .context("cannot start the loader thread")?;
        Ok(Loader { schema, mapping, receiver, stats: ReadStats::default(), finished: false, gzip })
    }

    /// Whether the input is gzip (its read bytes then count decompressed data).
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The column mapping resolved against the header, with exact names (what a model stores);
    /// `None` for Criteo or schema TSV.
    pub fn mapping(&self) -> Option<&Mapping> {
        self.mapping.as_ref()
    }

    /// The next batch (the last one may be short), `None` at the end of the data.
    pub fn next_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        if self.finished {
            return Ok(None);
        }
        match self.receiver.recv() {
            Ok(Message::Batch(batch, stats)) => {
                self.stats = stats;
                Ok(Some(batch))
            }
            Ok(Message::End(stats)) => {
                self.stats = stats;
                self.finished = true;
                Ok(None)
            }
            Ok(Message::Fail(e)) => {
                self.finished = true;
                Err(e)
            }
            Err(_) => {
                self.finished = true;
                bail!("the loader thread stopped unexpectedly")
            }
        }
    }

    /// What the reader had read when it produced the last batch returned (final after `None`).
    pub fn stats(&self) -> ReadStats {
        self.stats.clone()
    }
}

/// Opens the file or stdin and unwraps gzip when the first two bytes are its magic.
fn open_input(path: &str, name: &str) -> anyhow::Result<(Box<dyn BufRead + Send>, bool)> {
    let mut raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?)
    };
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match raw.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
        }
    }
    let raw = io::Cursor::new(magic[..n].to_vec()).chain(raw);
    if magic[..n] == [0x1f, 0x8b] {
        let gz = MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, raw));
        Ok((Box::new(BufReader::with_capacity(READ_BUFFER, gz)), true))
    } else {
        Ok((Box::new(BufReader::with_capacity(READ_BUFFER, raw)), false))
    }
}

enum Line {
    Eof,
    Text,
    TooLong,
}

/// Splits the input into lines of at most [`MAX_LINE_BYTES`], counting lines and bytes.
struct Lines {
    input: Box<dyn BufRead + Send>,
    gzip: bool,
    name: String,
    line_no: u64,
    bytes: u64,
}

impl Lines {
    /// Reads the next line into `buf` (without `\n`). A too-long line is consumed but not kept.
    fn next(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<Line> {
        buf.clear();
        let mut started = false;
        let mut too_long = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            if available.is_empty() {
                if !started {
                    return Ok(Line::Eof);
                }
                break;
            }
            started = true;
            let (piece, used, end) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if !too_long {
                if buf.len() + piece.len() > MAX_LINE_BYTES {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(piece);
                }
            }
            self.input.consume(used);
            self.bytes += used as u64;
            if end {
                break;
            }
        }
        self.line_no += 1;
        Ok(if too_long { Line::TooLong } else { Line::Text })
    }

    fn read_error(&self, e: io::Error) -> anyhow::Error {
        let at = format!("after {} bytes (line {})", self.bytes, self.line_no + 1);
        if self.gzip {
            anyhow!("{}: the gzip data is truncated or corrupt {at}: {e}; the file may have been cut short", self.name)
        } else {
            anyhow!("{}: read failed {at}: {e}", self.name)
        }
    }
}

/// The reader thread's state.
struct Reader {
    lines: Lines,
    parser: RowParser,
    opts: LoaderOptions,
    sender: SyncSender<Message>,
    n_fields: usize,
    /// A mapped input's header: lines equal to it are skipped, so files concatenated on stdin
    /// (`cat a.csv b.csv`) read as one.
    header: Option<Vec<u8>>,
    stats: ReadStats,
    /// The loader was dropped: stop reading.
    stopped: bool,
}

impl Reader {
    /// Reads to the end (or `max_rows`), sending batches; `pending` is a first line already read.
    fn run(&mut self, mut pending: Option<(Line, Vec<u8>)>) -> anyhow::Result<()> {
        let opts = self.opts.clone();
        let mut rng = Rng::new(opts.seed);
        let mut buffer: Vec<Row> = Vec::with_capacity(opts.shuffle_buffer.min(1 << 20));
        let mut row = Row::default();
        let mut batch = self.new_batch();
        let mut line = Vec::new();
        let mut data_lines = 0usize;
        let limit = opts.max_rows.map(|m| opts.skip_rows.saturating_add(m)).unwrap_or(usize::MAX);
        while data_lines < limit {
            let kind = match pending.take() {
                Some((kind, text)) => {
                    line = text;
                    kind
                }
                None => self.lines.next(&mut line)?,
            };
            let parsed = match kind {
                Line::Eof => break,
                Line::Text if self.is_header(&line) => continue,
                _ if data_lines < opts.skip_rows => {
                    data_lines += 1;
                    continue;
                }
                Line::TooLong => Err(BadReason::TooLong { limit: MAX_LINE_BYTES }),
                Line::Text => self.parser.parse(&line, &mut row),
            };
            data_lines += 1;
            self.stats.bytes = self.lines.bytes;
            if let Err(reason) = parsed {
                self.bad_line(reason)?;
                continue;
            }
            self.stats.rows += 1;
            if opts.shuffle_buffer == 0 {
                self.emit(&row, &mut batch);
            } else if buffer.len() < opts.shuffle_buffer {
                buffer.push(std::mem::take(&mut row));
            } else {
                let j = rng.below(buffer.len());
                self.emit(&buffer[j], &mut batch);
                std::mem::swap(&mut buffer[j], &mut row);
            }
            if self.stopped {
                return Ok(());
            }
        }
        self.stats.bytes = self.lines.bytes;
        // Drain the buffer in a seeded random order (Fisher-Yates from the back).
        for i in (1..buffer.len()).rev() {
            buffer.swap(i, rng.below(i + 1));
        }
        for r in &buffer {
            self.emit(r, &mut batch);
            if self.stopped {
                return Ok(());
            }
        }
        if batch.rows > 0 {
            self.send(Message::Batch(batch, self.stats.clone()));
        }
        self.send(Message::End(self.stats.clone()));
        Ok(())
    }

    /// Whether `line` repeats a mapped input's header.
    fn is_header(&self, line: &[u8]) -> bool {
        self.header.as_deref().is_some_and(|h| line.strip_suffix(b"\r").unwrap_or(line) == h)
    }

    fn new_batch(&self) -> Batch {
        let mut b = Batch::with_schema(self.n_fields);
        b.labels.reserve(self.opts.batch_size);
        b
    }

    fn bad_line(&mut self, reason: BadReason) -> anyhow::Result<()> {
        let line_no = self.lines.line_no;
        if self.opts.strict {
            bail!("{}: line {line_no}: {reason}", self.lines.name);
        }
        self.stats.bad_lines += 1;
        if self.stats.first_bad.len() < KEPT_BAD_LINES {
            self.stats.first_bad.push(BadLine { line_no, reason: reason.to_string() });
        }
        Ok(())
    }

    /// Adds a row to the batch and sends the batch when full.
    fn emit(&mut self, row: &Row, batch: &mut Batch) {
        row.push_to(batch);
        if batch.rows == self.opts.batch_size {
            let full = std::mem::replace(batch, self.new_batch());
            self.send(Message::Batch(full, self.stats.clone()));
        }
    }

    /// Sends a message; a hung-up receiver (the loader was dropped) sets `stopped`.
    fn send(&mut self, m: Message) {
        if self.sender.send(m).is_err() {
            self.stopped = true;
        }
    }
}
