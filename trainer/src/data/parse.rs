//! Line parsers: one Criteo, schema TSV or mapped CSV line into a [`Row`], byte by byte.
//!
//! Parsing is the loader's hot loop (it must do >= 150 MB/s per core), so it works on raw bytes,
//! reuses the row's buffers and allocates nothing per field. A bad line gives a [`BadLine`] reason
//! and the row's contents are then unspecified.
//!
//! Labels: with [`Labels::Required`] every row starts with its label. With [`Labels::Optional`]
//! (scoring) a row with exactly one column fewer than a labelled row has no label, and a schema
//! header may leave out its `label` column.

use super::{Labels, Schema};
use pocketrec::FieldKind;
use pocketrec::robe::{fnv1a32, token_value};

/// One parsed row: label, raw dense values and the sparse values of every field, flattened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// `None` for a row without a label column (only read with [`Labels::Optional`]).
    pub label: Option<f32>,
    pub dense: Vec<f32>,
    /// All sparse values, field after field.
    pub values: Vec<u32>,
    /// `ends[f]` is where field `f`'s values end in `values` (it starts at `ends[f - 1]` or 0).
    pub ends: Vec<u32>,
}

impl Row {
    /// Values of sparse field `f`.
    #[inline]
    pub fn field(&self, f: usize) -> &[u32] {
        let start = if f == 0 { 0 } else { self.ends[f - 1] as usize };
        &self.values[start..self.ends[f] as usize]
    }

    /// Appends this row to a batch.
    pub fn push_to(&self, batch: &mut pocketrec::Batch) {
        batch.push_row(&self.dense, (0..self.ends.len()).map(|f| self.field(f)), self.label);
    }
}

/// Why a line was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadReason {
    Columns {
        expected: usize,
        got: usize,
    },
    Label(String),
    Integer {
        column: usize,
        text: String,
    },
    Hex {
        column: usize,
        text: String,
    },
    Float {
        column: usize,
        text: String,
    },
    TooLong {
        limit: usize,
    },
    Blank,
    /// A cell of a mapped column (see [`super::mapping`]) that is not what its role needs.
    Value {
        column: usize,
        name: String,
        text: String,
        expected: &'static str,
    },
    /// A mapped line with another number of cells than its header.
    Cells {
        expected: usize,
        got: usize,
    },
    /// A quoted cell without its closing quote, or with text after it.
    Quote {
        column: usize,
    },
}

impl std::fmt::Display for BadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadReason::Columns { expected, got } => write!(f, "expected {expected} tab-separated columns, got {got}"),
            BadReason::Cells { expected, got } => write!(f, "expected {expected} columns as in the header, got {got}"),
            BadReason::Label(t) => write!(f, "label {t:?} is not 0 or 1"),
            BadReason::Integer { column, text } => write!(f, "column {column}: {text:?} is not an integer"),
            BadReason::Hex { column, text } => write!(f, "column {column}: {text:?} is not 8 hex digits"),
            BadReason::Float { column, text } => write!(f, "column {column}: {text:?} is not a finite number"),
            BadReason::TooLong { limit } => write!(f, "line is longer than {limit} bytes"),
            BadReason::Blank => write!(f, "blank line"),
            BadReason::Value { column, name, text, expected } => {
                write!(f, "column {column} ({name}): {text:?} is not {expected}")
            }
            BadReason::Quote { column } => write!(
                f,
                "column {column}: unbalanced quotes (a quoted cell ends with a quote right before the next \
                 delimiter, and cannot span lines)"
            ),
        }
    }
}

/// Cuts a cell for an error message (cells can be up to a line long).
fn excerpt(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(&cell[..cell.len().min(40)]).into_owned();
    if cell.len() > 40 { s + "…" } else { s }
}

/// 0..=15 for a hex digit (either case), 0xff otherwise.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Criteo categorical: empty -> 0, else exactly 8 hex digits.
#[inline]
fn parse_hex8(cell: &[u8]) -> Option<u32> {
    if cell.is_empty() {
        return Some(0);
    }
    if cell.len() != 8 {
        return None;
    }
    let mut v: u32 = 0;
    let mut bad: u8 = 0;
    for &b in cell {
        let d = HEX[b as usize];
        bad |= d;
        v = (v << 4) | (d & 0xf) as u32;
    }
    // A valid digit is <= 15, so any high bit set means a non-hex byte.
    if bad & 0xf0 != 0 { None } else { Some(v) }
}

/// Criteo integer: empty -> 0, optional '-', up to 18 digits.
#[inline]
fn parse_int(cell: &[u8]) -> Option<f32> {
    let (neg, digits) = match cell.first() {
        None => return Some(0.0),
        Some(b'-') => (true, &cell[1..]),
        Some(_) => (false, cell),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as i64;
    }
    Some(if neg { -v } else { v } as f32)
}

#[inline]
fn parse_label(cell: &[u8]) -> Option<f32> {
    match cell {
        b"0" => Some(0.0),
        b"1" => Some(1.0),
        _ => match std::str::from_utf8(cell).ok()?.trim().parse::<f32>().ok()? {
            x if x == 0.0 || x == 1.0 => Some(x),
            _ => None,
        },
    }
}

/// Splits on tabs without allocating; `next` gives the cells in order.
struct Cells<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Cells<'a> {
    fn new(line: &'a [u8]) -> Self {
        Cells { rest: line, done: false }
    }
    /// Cells left, this one included (for the column-count message).
    fn count_rest(&self) -> usize {
        if self.done { 0 } else { 1 + self.rest.iter().filter(|&&b| b == b'\t').count() }
    }
}

impl<'a> Iterator for Cells<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        match self.rest.iter().position(|&b| b == b'\t') {
            Some(i) => {
                let cell = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                Some(cell)
            }
            None => {
                self.done = true;
                Some(self.rest)
            }
        }
    }
}

/// The feature column kinds, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Dense,
    Cat,
    /// A bag whose tokens are separated by this byte.
    Bag(u8),
}

/// What a mapped column holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Slot {
    Label(Option<Label>),
    Ignore,
    Feature(Column),
}

/// A label read as a threshold on a number: the row is a click when the comparison holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Label {
    AtLeast(f32),
    Above(f32),
    AtMost(f32),
    Below(f32),
}

/// Splits a line of a delimited file into cells, RFC 4180 quoting included: a cell that starts
/// with `"` runs to the next `"` not doubled, `""` inside it is one `"`, and the delimiter inside
/// it is text. A quote inside an unquoted cell is text. Borrows unless a cell holds `""`. An
/// `Err` (unbalanced quotes) ends the line.
pub(crate) fn split_cells(line: &[u8], delimiter: u8) -> SplitCells<'_> {
    SplitCells { rest: line, delimiter, done: false }
}

pub(crate) struct SplitCells<'a> {
    rest: &'a [u8],
    delimiter: u8,
    done: bool,
}

impl<'a> Iterator for SplitCells<'a> {
    type Item = Result<std::borrow::Cow<'a, [u8]>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::borrow::Cow;
        if self.done {
            return None;
        }
        let Some(body) = self.rest.strip_prefix(b"\"") else {
            return Some(Ok(Cow::Borrowed(match self.rest.iter().position(|&b| b == self.delimiter) {
                Some(i) => {
                    let cell = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    cell
                }
                None => {
                    self.done = true;
                    self.rest
                }
            })));
        };
        let mut owned: Option<Vec<u8>> = None;
        let mut start = 0;
        loop {
            let Some(q) = body[start..].iter().position(|&b| b == b'"').map(|p| start + p) else {
                self.done = true;
                return Some(Err(()));
            };
            if body.get(q + 1) == Some(&b'"') {
                owned.get_or_insert_with(Vec::new).extend_from_slice(&body[start..=q]);
                start = q + 2;
                continue;
            }
            let cell = match owned {
                Some(mut v) => {
                    v.extend_from_slice(&body[start..q]);
                    Cow::Owned(v)
                }
                None => Cow::Borrowed(&body[..q]),
            };
            match body.get(q + 1) {
                None => self.done = true,
                Some(&d) if d == self.delimiter => self.rest = &body[q + 2..],
                Some(_) => {
                    self.done = true;
                    return Some(Err(()));
                }
            }
            return Some(Ok(cell));
        }
    }
}

/// Parses lines of one format into rows.
#[derive(Clone, Debug)]
pub struct RowParser {
    format: Format,
    labels: Labels,
}

#[derive(Clone, Debug)]
enum Format {
    /// label, 13 integers, 26 hex categoricals.
    Criteo,
    /// Columns after the label, in file order; dense and sparse outputs follow that order.
    Schema(Vec<Column>),
    /// A header mapped column by column; the label is where the header has it, or absent.
    Mapped { delimiter: u8, slots: Vec<Slot>, names: Vec<String> },
}

/// Criteo's column count: label + 13 + 26.
pub const CRITEO_COLUMNS: usize = 40;

/// Whether a first line is a schema header rather than a Criteo row: its first cell is `label` or
/// a feature column such as `dense:age` (a header without labels). Criteo cells hold no `:`.
pub fn is_header(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = line.split(|&b| b == b'\t').next().unwrap_or_default();
    first == b"label" || [&b"dense:"[..], b"cat:", b"bag:", b"bagsum:"].iter().any(|k| first.starts_with(k))
}

impl RowParser {
    pub fn criteo() -> Self {
        RowParser { format: Format::Criteo, labels: Labels::Required }
    }

    /// The same parser reading labels as `labels` says.
    pub fn with_labels(self, labels: Labels) -> Self {
        RowParser { labels, ..self }
    }

    /// A parser for the schema TSV whose header is `header` (the first line, without its newline).
    /// Returns the schema and the parser, or a message saying what is wrong with the header.
    /// The header may leave out `label` only when `labels` is [`Labels::Optional`].
    pub fn from_header(header: &[u8], labels: Labels) -> Result<(Schema, RowParser), String> {
        let header = std::str::from_utf8(header).map_err(|_| "the header is not UTF-8".to_string())?;
        let header = header.strip_suffix('\r').unwrap_or(header);
        let features = match header.strip_prefix("label") {
            Some(rest) if rest.is_empty() || rest.starts_with('\t') => rest.strip_prefix('\t').unwrap_or(rest),
            _ if labels == Labels::Optional => header,
            _ => {
                return Err(
                    "a schema header must start with `label`: training and evaluation need labelled rows".into()
                );
            }
        };
        let tokens: Vec<&str> = if features.is_empty() { Vec::new() } else { features.split('\t').collect() };
        let mut schema = Schema { dense: Vec::new(), fields: Vec::new() };
        let mut columns = Vec::new();
        let first = if features.len() < header.len() { 2 } else { 1 };
        for (i, token) in tokens.into_iter().enumerate() {
            let column = first + i;
            let (kind, name) = token.split_once(':').ok_or_else(|| {
                format!("header column {column}: {token:?} must be dense:NAME, cat:NAME, bag:NAME or bagsum:NAME")
            })?;
            if name.is_empty() {
                return Err(format!("header column {column}: {token:?} has an empty name"));
            }
            let (column, field_kind) = match kind {
                "dense" => (Column::Dense, None),
                "cat" => (Column::Cat, Some(FieldKind::Categorical)),
                "bag" => (Column::Bag(b','), Some(FieldKind::BagMean)),
                "bagsum" => (Column::Bag(b','), Some(FieldKind::BagSum)),
                _ => {
                    return Err(format!(
                        "header column {column}: unknown kind {kind:?}: use dense, cat, bag or bagsum"
                    ));
                }
            };
            match field_kind {
                None => schema.dense.push(name.to_string()),
                Some(kind) => schema.fields.push(pocketrec::Field { name: name.to_string(), kind }),
            }
            columns.push(column);
        }
        if columns.is_empty() {
            return Err("the header names no feature columns".into());
        }
        Ok((schema, RowParser { format: Format::Schema(columns), labels }))
    }

    /// A parser for a mapped header (see [`super::mapping`]): one slot and name per column.
    pub(crate) fn mapped(delimiter: u8, slots: Vec<Slot>, names: Vec<String>) -> RowParser {
        RowParser { format: Format::Mapped { delimiter, slots, names }, labels: Labels::Optional }
    }

    /// Columns of a row after its label.
    fn feature_columns(&self) -> usize {
        match &self.format {
            Format::Criteo => CRITEO_COLUMNS - 1,
            Format::Schema(columns) => columns.len(),
            Format::Mapped { slots, .. } => slots.len(),
        }
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored) into `row`.
    pub fn parse(&self, line: &[u8], row: &mut Row) -> Result<(), BadReason> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(BadReason::Blank);
        }
        if let Format::Mapped { delimiter, slots, names } = &self.format {
            return parse_mapped(*delimiter, slots, names, line, row);
        }
        let labelled = self.labels == Labels::Required || Cells::new(line).count_rest() != self.feature_columns();
        let mut cells = Cells::new(line);
        row.label = if labelled {
            let label = cells.next().unwrap_or_default();
            Some(parse_label(label).ok_or_else(|| BadReason::Label(excerpt(label)))?)
        } else {
            None
        };
        // Columns in messages count from 1 over the whole line, label included.
        let first = 1 + usize::from(labelled);
        match &self.format {
            Format::Criteo => parse_criteo(cells, first, row),
            Format::Schema(columns) => parse_schema(columns, cells, first, row),
            Format::Mapped { .. } => unreachable!("parsed above"),
        }
    }
}

/// The cells after the label; `first` is the line's column number of the first of them.
fn parse_criteo(mut cells: Cells, first: usize, row: &mut Row) -> Result<(), BadReason> {
    row.dense.resize(13, 0.0);
    row.values.resize(26, 0);
    if row.ends.len() != 26 {
        row.ends.clear();
        row.ends.extend(1..=26);
    }
    let expected = first - 1 + CRITEO_COLUMNS - 1;
    let columns = |cells: &Cells, seen: usize| BadReason::Columns { expected, got: seen + cells.count_rest() };
    for i in 0..13 {
        let cell = cells.next().ok_or_else(|| columns(&cells, first - 1 + i))?;
        row.dense[i] = parse_int(cell).ok_or_else(|| BadReason::Integer { column: first + i, text: excerpt(cell) })?;
    }
    for i in 0..26 {
        let cell = cells.next().ok_or_else(|| columns(&cells, first + 12 + i))?;
        row.values[i] =
            parse_hex8(cell).ok_or_else(|| BadReason::Hex { column: first + 13 + i, text: excerpt(cell) })?;
    }
    if !cells.done {
        return Err(columns(&cells, expected));
    }
    Ok(())
}

fn parse_schema(columns: &[Column], mut cells: Cells, first: usize, row: &mut Row) -> Result<(), BadReason> {
    row.dense.clear();
    row.values.clear();
    row.ends.clear();
    let expected = first - 1 + columns.len();
    for (i, column) in columns.iter().enumerate() {
        let got = first - 1 + i + cells.count_rest();
        let cell = cells.next().ok_or(BadReason::Columns { expected, got })?;
        push_feature(*column, cell, row).map_err(|()| BadReason::Float { column: first + i, text: excerpt(cell) })?;
    }
    if !cells.done {
        return Err(BadReason::Columns { expected, got: expected + cells.count_rest() });
    }
    Ok(())
}

/// A number (anything Rust's `f32` parser takes, spaces trimmed) that is finite; empty is 0.
/// Plain integers take the fast path (the same value: both round to the nearest f32).
#[inline]
fn parse_number(cell: &[u8]) -> Option<f32> {
    if let Some(x) = parse_int(cell) {
        return Some(x);
    }
    std::str::from_utf8(cell).ok().and_then(|s| s.trim().parse::<f32>().ok()).filter(|x| x.is_finite())
}

/// Adds one feature cell to the row; `Err` for a dense cell that is not a finite number.
#[inline]
fn push_feature(column: Column, cell: &[u8], row: &mut Row) -> Result<(), ()> {
    match column {
        Column::Dense => row.dense.push(parse_number(cell).ok_or(())?),
        Column::Cat => row.values.push(token_value(cell)),
        Column::Bag(sep) => row.values.extend(cell.split(|&b| b == sep).filter(|t| !t.is_empty()).map(fnv1a32)),
    }
    if column != Column::Dense {
        row.ends.push(row.values.len() as u32);
    }
    Ok(())
}

/// A mapped line: one cell per slot, the label where the header has it (or none).
fn parse_mapped(delimiter: u8, slots: &[Slot], names: &[String], line: &[u8], row: &mut Row) -> Result<(), BadReason> {
    row.dense.clear();
    row.values.clear();
    row.ends.clear();
    row.label = None;
    let mut cells = split_cells(line, delimiter);
    let value = |i: usize, cell: &[u8], expected| BadReason::Value {
        column: i + 1,
        name: names[i].clone(),
        text: excerpt(cell),
        expected,
    };
    for (i, slot) in slots.iter().enumerate() {
        let cell = match cells.next() {
            None => return Err(BadReason::Cells { expected: slots.len(), got: i }),
            Some(Err(())) => return Err(BadReason::Quote { column: i + 1 }),
            Some(Ok(cell)) => cell,
        };
        match slot {
            Slot::Ignore => {}
            Slot::Label(None) => row.label = Some(parse_label(&cell).ok_or_else(|| value(i, &cell, "0 or 1"))?),
            Slot::Label(Some(rule)) => {
                let x = (!cell.is_empty()).then(|| parse_number(&cell)).flatten();
                let x = x.ok_or_else(|| value(i, &cell, "a number (the label is a threshold on it)"))?;
                let click = match *rule {
                    Label::AtLeast(t) => x >= t,
                    Label::Above(t) => x > t,
                    Label::AtMost(t) => x <= t,
                    Label::Below(t) => x < t,
                };
                row.label = Some(if click { 1.0 } else { 0.0 });
            }
            Slot::Feature(column) => {
                push_feature(*column, &cell, row).map_err(|()| value(i, &cell, "a finite number"))?;
            }
        }
    }
    let extra = cells.count();
    if extra > 0 {
        return Err(BadReason::Cells { expected: slots.len(), got: slots.len() + extra });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteo_line() -> String {
        let mut cells = vec!["1".to_string()];
        cells.extend((0..13).map(|i| if i == 3 { String::new() } else { format!("{}", i as i64 * 7 - 2) }));
        cells.extend(
            (0..26).map(|i| if i == 5 { String::new() } else { format!("{:08x}", 0x1234_5678u32.wrapping_mul(i + 1)) }),
        );
        cells.join("\t")
    }

    #[test]
    fn parses_a_criteo_line() {
        let mut row = Row::default();
        RowParser::criteo().parse(criteo_line().as_bytes(), &mut row).unwrap();
        assert_eq!(row.label, Some(1.0));
        assert_eq!(row.dense[0], -2.0);
        assert_eq!(row.dense[3], 0.0);
        assert_eq!(row.dense[12], 82.0);
        assert_eq!(row.field(0), &[0x1234_5678]);
        assert_eq!(row.field(5), &[0]);
        assert_eq!(row.field(25), &[0x1234_5678u32.wrapping_mul(26)]);
    }

    #[test]
    fn hex_accepts_both_cases_and_rejects_the_rest() {
        assert_eq!(parse_hex8(b"ffFF0a9B"), Some(0xffff_0a9b));
        assert_eq!(parse_hex8(b""), Some(0));
        for bad in [&b"zz"[..], b"0000000g", b"1234567", b"123456789", b"-1234567", b"1234 567"] {
            assert_eq!(parse_hex8(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn numbers_read_integers_as_the_float_parser_does() {
        for text in ["0", "7", "-3", "16777217", "123456789012345678", "-999999999999999999"] {
            assert_eq!(parse_number(text.as_bytes()), text.parse::<f32>().ok(), "{text}");
        }
        assert_eq!(parse_number(b""), Some(0.0));
        assert_eq!(parse_number(b" 2.5e1 "), Some(25.0));
        assert_eq!(parse_number(b"inf"), None);
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int(b""), Some(0.0));
        assert_eq!(parse_int(b"-3"), Some(-3.0));
        assert_eq!(parse_int(b"1382"), Some(1382.0));
        for bad in [&b"-"[..], b"1.5", b"x", b"12a", b"1234567890123456789"] {
            assert_eq!(parse_int(bad), None);
        }
    }

    #[test]
    fn bad_criteo_lines_say_why() {
        let p = RowParser::criteo();
        let mut row = Row::default();
        let good = criteo_line();
        let cut = good.rsplit_once('\t').unwrap().0;
        assert_eq!(p.parse(cut.as_bytes(), &mut row), Err(BadReason::Columns { expected: 40, got: 39 }));
        let extra = format!("{good}\t");
        assert_eq!(p.parse(extra.as_bytes(), &mut row), Err(BadReason::Columns { expected: 40, got: 41 }));
        let zz = good.replacen("12345678", "zz", 1);
        assert!(matches!(p.parse(zz.as_bytes(), &mut row), Err(BadReason::Hex { column: 15, .. })));
        let label = format!("2{}", &good[1..]);
        assert!(matches!(p.parse(label.as_bytes(), &mut row), Err(BadReason::Label(_))));
        assert_eq!(p.parse(b"", &mut row), Err(BadReason::Blank));
        assert_eq!(p.parse(b"\r", &mut row), Err(BadReason::Blank));
        let crlf = format!("{good}\r");
        assert_eq!(p.parse(crlf.as_bytes(), &mut row), Ok(()));
    }

    #[test]
    fn optional_labels_read_rows_one_column_short_as_unlabelled() {
        let good = criteo_line();
        let unlabelled = good.split_once('\t').unwrap().1;
        let (mut a, mut b) = (Row::default(), Row::default());
        let p = RowParser::criteo().with_labels(Labels::Optional);
        p.parse(good.as_bytes(), &mut a).unwrap();
        p.parse(unlabelled.as_bytes(), &mut b).unwrap();
        assert_eq!((a.label, b.label), (Some(1.0), None));
        assert_eq!((&a.dense, &a.values), (&b.dense, &b.values));
        // Column numbers count from the line's first cell, which is now a feature.
        let zz = unlabelled.replacen("12345678", "zz", 1);
        assert!(matches!(p.parse(zz.as_bytes(), &mut b), Err(BadReason::Hex { column: 14, .. })));
        // Required labels: the first cell is read as the label, so the row stays a malformed line.
        assert!(matches!(RowParser::criteo().parse(unlabelled.as_bytes(), &mut b), Err(BadReason::Label(_))));

        // A schema header may leave out `label` only when labels are optional.
        assert!(is_header(b"dense:age\tcat:user") && is_header(b"label\r") && !is_header(good.as_bytes()));
        assert!(RowParser::from_header(b"dense:age\tcat:user", Labels::Required).is_err());
        let (schema, p) = RowParser::from_header(b"dense:age\tcat:user", Labels::Optional).unwrap();
        assert_eq!(schema.dense, ["age"]);
        p.parse(b"3.5\tu42", &mut b).unwrap();
        assert_eq!((b.label, b.dense.as_slice(), b.field(0)), (None, &[3.5f32][..], &[fnv1a32(b"u42")][..]));
        assert!(matches!(p.parse(b"x\tu42", &mut b), Err(BadReason::Float { column: 1, .. })));
    }

    #[test]
    fn schema_header_and_rows() {
        let (schema, p) =
            RowParser::from_header(b"label\tdense:age\tcat:user\tbag:genres\tbagsum:tags\tdense:x", Labels::Required)
                .unwrap();
        assert_eq!(schema.dense, ["age", "x"]);
        let kinds: Vec<_> = schema.fields.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FieldKind::Categorical, FieldKind::BagMean, FieldKind::BagSum]);
        let mut row = Row::default();
        p.parse(b"1\t3.5\tu42\tdrama,comedy\t\t-1e2", &mut row).unwrap();
        assert_eq!(row.dense, [3.5, -100.0]);
        assert_eq!(row.field(0), &[fnv1a32(b"u42")]);
        assert_eq!(row.field(1), &[fnv1a32(b"drama"), fnv1a32(b"comedy")]);
        assert_eq!(row.field(2), &[] as &[u32]);
        assert!(matches!(p.parse(b"0\tabc\tu\t\t\t1", &mut row), Err(BadReason::Float { column: 2, .. })));
        assert!(matches!(p.parse(b"0\tnan\tu\t\t\t1", &mut row), Err(BadReason::Float { .. })));
        assert!(matches!(p.parse(b"0\t1\tu", &mut row), Err(BadReason::Columns { expected: 6, got: 3 })));
        assert!(RowParser::from_header(b"label\tfoo:x", Labels::Required).is_err());
        assert!(RowParser::from_header(b"label", Labels::Required).is_err());
    }

    fn split(line: &str, delimiter: u8) -> Result<Vec<String>, ()> {
        split_cells(line.as_bytes(), delimiter).map(|c| c.map(|c| String::from_utf8(c.into_owned()).unwrap())).collect()
    }

    #[test]
    fn csv_cells_follow_rfc_4180_quoting() {
        assert_eq!(
            split("a,\"b,c\",,\"say \"\"hi\"\"\",\"\"", b','),
            Ok(vec!["a".into(), "b,c".into(), "".into(), "say \"hi\"".into(), "".into()])
        );
        assert_eq!(split("", b','), Ok(vec![String::new()]));
        assert_eq!(
            split("a\"b,c", b','),
            Ok(vec!["a\"b".into(), "c".into()]),
            "a quote inside an unquoted cell is text"
        );
        assert_eq!(split("x\t\"a\tb\"", b'\t'), Ok(vec!["x".into(), "a\tb".into()]));
        for bad in ["\"open", "a,\"open,b", "\"ab\"c,d", "\"\"\""] {
            assert_eq!(split(bad, b','), Err(()), "{bad}");
        }
    }

    /// Random cells over an alphabet of the characters that matter, written as a CSV writer would
    /// (quoted when needed, and sometimes when not), split back to the same cells.
    #[test]
    fn csv_cells_round_trip_random_rows() {
        let mut rng = crate::data::rng::Rng::new(11);
        let alphabet = ['a', 'b', ',', '"', ' ', ';'];
        for _ in 0..2000 {
            let cells: Vec<String> = (0..1 + rng.below(5))
                .map(|_| (0..rng.below(6)).map(|_| alphabet[rng.below(alphabet.len())]).collect())
                .collect();
            let line: Vec<String> = cells
                .iter()
                .map(|c| {
                    if c.contains([',', '"']) || c.starts_with(' ') || rng.below(4) == 0 {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            let line = line.join(",");
            assert_eq!(split(&line, b','), Ok(cells), "{line}");
        }
    }

    #[test]
    fn mapped_lines_read_their_slots_and_name_bad_cells() {
        let slots = vec![
            Slot::Ignore,
            Slot::Label(Some(Label::AtLeast(4.0))),
            Slot::Feature(Column::Dense),
            Slot::Feature(Column::Cat),
            Slot::Feature(Column::Bag(b'|')),
        ];
        let names = ["id", "rating", "age", "city", "tags"].map(String::from).to_vec();
        let p = RowParser::mapped(b',', slots, names);
        let mut row = Row::default();
        p.parse(b"7,4.5,,\"Paris, FR\",a|b||c\r", &mut row).unwrap();
        assert_eq!((row.label, row.dense.as_slice()), (Some(1.0), &[0.0f32][..]));
        assert_eq!(row.field(0), &[fnv1a32(b"Paris, FR")]);
        assert_eq!(row.field(1), &[fnv1a32(b"a"), fnv1a32(b"b"), fnv1a32(b"c")]);
        p.parse(b"7,3.5,2,x,", &mut row).unwrap();
        assert_eq!((row.label, row.field(1)), (Some(0.0), &[][..]));
        let e = p.parse(b"7,4,abc,x,y", &mut row).unwrap_err();
        assert_eq!(e.to_string(), "column 3 (age): \"abc\" is not a finite number");
        assert!(p.parse(b"7,,1,x,y", &mut row).unwrap_err().to_string().contains("column 2 (rating)"));
        assert_eq!(p.parse(b"7,4,1,x", &mut row), Err(BadReason::Cells { expected: 5, got: 4 }));
        assert_eq!(p.parse(b"7,4,1,x,y,z", &mut row), Err(BadReason::Cells { expected: 5, got: 6 }));
        assert_eq!(p.parse(b"7,4,1,\"x,y", &mut row), Err(BadReason::Quote { column: 4 }));
    }
}
