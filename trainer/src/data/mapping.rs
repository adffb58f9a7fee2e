//! Column mapping: a CSV or TSV with a header, whose columns get their roles from flags or a small
//! mapping file (`--label click --ignore id --dense hour --cat 'C*,site_*'`), read without a
//! converter.
//!
//! The mapping is resolved once against the header into the same [`Schema`] and [`RowParser`] the
//! schema TSV uses, so there is one parser path and the loader streams as before. The resolved
//! mapping (every pattern replaced by the exact column names it matched) is what the trainer
//! stores in the model file; `score` and `eval` resolve it again against their data's header,
//! which then must have the model's feature columns (the label is optional when scoring).

use super::parse::{Column, Label, RowParser, Slot, split_cells};
use super::{Labels, Schema};
use pocketrec::{Field, FieldKind};
use serde::{Deserialize, Serialize};

/// What a column not named by any pattern is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rest {
    Cat,
    Ignore,
    Dense,
}

/// The roles of a header's columns. Each list holds patterns over the header's names: `*` matches
/// any run of characters, `?` one character, anything else itself. A bag pattern may end in
/// `:SEP`, the one-character separator of its tokens (default `,`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The cell separator; `None` detects it from the header (tab, comma, semicolon or `|`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// The label column: `NAME`, or a threshold `NAME>=X` (also `>`, `<=`, `<`) on a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dense: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Bags pooled by mean.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bag: Vec<String>,
    /// Bags pooled by sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bagsum: Vec<String>,
    /// The role of the columns no pattern names; `None` makes them an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<Rest>,
}

/// How the loader learns the columns of its input.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Columns {
    /// From the first line: a schema TSV header or a headerless Criteo row.
    #[default]
    Detect,
    /// A header mapped by the user's patterns (training): every pattern must match a column.
    Map(Mapping),
    /// A header mapped by the layout stored in a model (scoring, evaluation): the model's feature
    /// columns must all be there, and no others but its ignored ones.
    Model(Mapping),
}

/// The roles in the order a column is matched against them, with the flag that names each.
const ROLES: [&str; 5] = ["ignore", "dense", "cat", "bag", "bagsum"];

impl Mapping {
    /// Reads a mapping file: one `ROLE PATTERNS` line per role (`label`, `ignore`, `dense`, `cat`,
    /// `bag`, `bagsum`, `rest`, `delimiter`), patterns comma-separated; `#` starts a comment.
    pub fn parse_file(text: &str) -> Result<Mapping, String> {
        let mut m = Mapping::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", i + 1);
            let (role, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = value.trim();
            if value.is_empty() {
                return Err(at(format!("{role:?} needs a value")));
            }
            let list = || value.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
            match role {
                "label" => m.label = Some(value.to_string()),
                "ignore" => m.ignore.extend(list()),
                "dense" => m.dense.extend(list()),
                "cat" => m.cat.extend(list()),
                "bag" => m.bag.extend(list()),
                "bagsum" => m.bagsum.extend(list()),
                "rest" => {
                    m.rest = Some(
                        <Rest as clap::ValueEnum>::from_str(value, false)
                            .map_err(|_| at(format!("rest {value:?}: use cat, ignore or dense")))?,
                    )
                }
                "delimiter" => m.delimiter = Some(parse_delimiter(value).map_err(at)?),
                _ => {
                    return Err(at(format!(
                        "unknown role {role:?}: use label, ignore, dense, cat, bag, bagsum, rest or delimiter"
                    )));
                }
            }
        }
        Ok(m)
    }

    fn patterns(&self, role: &str) -> &[String] {
        match role {
            "ignore" => &self.ignore,
            "dense" => &self.dense,
            "cat" => &self.cat,
            "bag" => &self.bag,
            _ => &self.bagsum,
        }
    }

    /// Resolves the mapping against a header line (without its newline): the schema, the parser
    /// of the rows below it, and the mapping with exact names (what a model stores). `from_model`
    /// says the mapping is a model's stored layout (see [`Columns::Model`]). The label may be
    /// absent only when `labels` is [`Labels::Optional`].
    pub fn resolve(
        &self,
        header: &[u8],
        labels: Labels,
        from_model: bool,
    ) -> Result<(Schema, RowParser, Mapping), String> {
        let header = std::str::from_utf8(header).map_err(|_| "the header is not UTF-8".to_string())?;
        let header = header.strip_suffix('\r').unwrap_or(header);
        let delimiter = match self.delimiter {
            Some(d) if d.is_ascii() && d != '"' && d != '\n' => d as u8,
            Some(d) => return Err(format!("the delimiter {d:?} must be one ASCII character other than a quote")),
            None => detect_delimiter(header.as_bytes()),
        };
        let names: Vec<String> = split_cells(header.as_bytes(), delimiter)
            .map(|cell| cell.map(|c| String::from_utf8_lossy(&c).into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| "the header has unbalanced quotes".to_string())?;
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("header column {} has no name: every column needs one to be mapped", i + 1));
            }
            if names[..i].contains(name) {
                return Err(format!("the header names column {name:?} twice"));
            }
        }
        let label = self.label.as_deref().map(parse_label_rule).transpose()?;

        // Each column's role, by the patterns that match it.
        let mut roles: Vec<Option<(&str, String)>> = vec![None; names.len()];
        let mut unused = Vec::new();
        for role in ROLES {
            for pattern in self.patterns(role) {
                let pat = if role.starts_with("bag") { split_bag(pattern)?.0 } else { pattern.as_str() };
                let mut hit = false;
                for (i, name) in names.iter().enumerate() {
                    if !(pat == name || glob(pat, name)) {
                        continue;
                    }
                    hit = true;
                    if label.as_ref().is_some_and(|(l, _)| l == name) {
                        return Err(format!("column {name:?} is mapped twice: --label and --{role} {pattern}"));
                    }
                    if let Some((other, other_pattern)) = &roles[i] {
                        return Err(format!(
                            "column {name:?} is mapped twice: --{other} {other_pattern} and --{role} {pattern}; \
                             give each column one role"
                        ));
                    }
                    roles[i] = Some((role, pattern.clone()));
                }
                // A stored layout's ignored columns may be left out of the data.
                let optional = from_model && role == "ignore";
                if !hit && !optional {
                    unused.push((format!("--{role} {pattern}"), pat));
                }
            }
        }
        let label_at = match &label {
            Some((name, _)) => names.iter().position(|n| n == name),
            None => None,
        };
        let label_missing = label_at.is_none() && labels == Labels::Required;
        let unmapped: Vec<&str> = (0..names.len())
            .filter(|&i| roles[i].is_none() && Some(i) != label_at)
            .map(|i| names[i].as_str())
            .collect();
        if from_model && (label_missing || !unused.is_empty() || !unmapped.is_empty()) {
            let mut missing: Vec<&str> =
                label.iter().filter(|_| label_missing).map(|(name, _)| name.as_str()).collect();
            missing.extend(unused.iter().map(|(_, name)| *name));
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing columns: {}", missing.join(", ")));
            }
            if !unmapped.is_empty() {
                parts.push(format!("columns the model does not know: {}", unmapped.join(", ")));
            }
            return Err(format!(
                "the header does not match the columns the model was trained on ({}); give data with the model's header",
                parts.join("; ")
            ));
        }
        if label_missing {
            return Err(match &label {
                Some((name, _)) => {
                    format!("the label column {name:?} is not in the header; the columns are: {}", names.join(", "))
                }
                None => "give the label column: --label NAME (or NAME>=X for a threshold on a number)".to_string(),
            });
        }
        if !unused.is_empty() {
            return Err(format!(
                "{} matched no column of the header; the columns are: {}",
                unused.iter().map(|(flag, _)| flag.as_str()).collect::<Vec<_>>().join(", "),
                names.join(", ")
            ));
        }
        if !unmapped.is_empty() && self.rest.is_none() {
            return Err(format!(
                "{} not mapped: {}; give each a role (--ignore, --dense, --cat, --bag) or say what the rest is \
                 with --rest cat|ignore|dense",
                if unmapped.len() == 1 { "this column is" } else { "these columns are" },
                unmapped.join(", ")
            ));
        }

        // The slots of the parser, the schema and the exact mapping, in header order.
        let mut schema = Schema { dense: Vec::new(), fields: Vec::new() };
        let mut exact = Mapping { delimiter: Some(delimiter as char), label: self.label.clone(), ..Mapping::default() };
        let mut slots = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if Some(i) == label_at {
                slots.push(Slot::Label(label.as_ref().and_then(|(_, t)| *t)));
                continue;
            }
            let (role, pattern) = match &roles[i] {
                Some((role, pattern)) => (*role, pattern.as_str()),
                None => match self.rest.expect("checked above") {
                    Rest::Cat => ("cat", ""),
                    Rest::Ignore => ("ignore", ""),
                    Rest::Dense => ("dense", ""),
                },
            };
            let field = |kind| Field { name: name.clone(), kind };
            let slot = match role {
                "ignore" => {
                    exact.ignore.push(name.clone());
                    Slot::Ignore
                }
                "dense" => {
                    exact.dense.push(name.clone());
                    schema.dense.push(name.clone());
                    Slot::Feature(Column::Dense)
                }
                "cat" => {
                    exact.cat.push(name.clone());
                    schema.fields.push(field(FieldKind::Categorical));
                    Slot::Feature(Column::Cat)
                }
                _ => {
                    let sep = split_bag(pattern)?.1.unwrap_or(',');
                    let (list, kind) = if role == "bag" {
                        (&mut exact.bag, FieldKind::BagMean)
                    } else {
                        (&mut exact.bagsum, FieldKind::BagSum)
                    };
                    list.push(format!("{name}:{sep}"));
                    schema.fields.push(field(kind));
                    Slot::Feature(Column::Bag(sep as u8))
                }
            };
            slots.push(slot);
        }
        if schema.dense.is_empty() && schema.fields.is_empty() {
            return Err("the mapping leaves no feature columns: map at least one with --dense, --cat or --bag".into());
        }
        Ok((schema, RowParser::mapped(delimiter, slots, names), exact))
    }
}

/// `--delimiter`: one character, or `tab` / `\t`.
pub fn parse_delimiter(s: &str) -> Result<char, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok('\t'),
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii() && c != '"' && c != '\n' => Ok(c),
                _ => Err(format!("delimiter {s:?}: give one ASCII character (not a quote), or tab")),
            }
        }
    }
}

/// The most frequent of tab, comma, semicolon and `|` in the header; a comma when none occurs.
pub fn detect_delimiter(header: &[u8]) -> u8 {
    let count = |d: u8| header.iter().filter(|&&b| b == d).count();
    let mut best = (0, b',');
    for d in [b'\t', b',', b';', b'|'] {
        if count(d) > best.0 {
            best = (count(d), d);
        }
    }
    best.1
}

/// `NAME` or `NAME>=X` (also `>`, `<=`, `<`): the column and its threshold.
fn parse_label_rule(rule: &str) -> Result<(String, Option<Label>), String> {
    let Some(at) = rule.find(['<', '>']) else { return Ok((rule.to_string(), None)) };
    let name = &rule[..at];
    let (op, value) = [">=", "<=", ">", "<"]
        .into_iter()
        .find_map(|op| rule[at..].strip_prefix(op).map(|v| (op, v)))
        .expect("starts with < or >");
    let threshold: f32 = value.trim().parse().ok().filter(|x: &f32| x.is_finite()).ok_or_else(|| {
        format!("--label {rule}: the threshold {:?} is not a number; write NAME>=X, NAME>X, NAME<=X or NAME<X", value)
    })?;
    if name.is_empty() {
        return Err(format!("--label {rule}: name the column before the comparison"));
    }
    let label = match op {
        ">=" => Label::AtLeast(threshold),
        ">" => Label::Above(threshold),
        "<=" => Label::AtMost(threshold),
        _ => Label::Below(threshold),
    };
    Ok((name.to_string(), Some(label)))
}

/// A bag pattern and its separator: `tags:|` is `tags` with `|`.
fn split_bag(pattern: &str) -> Result<(&str, Option<char>), String> {
    match pattern.rsplit_once(':') {
        Some((name, sep)) if sep.chars().count() == 1 => {
            let sep = sep.chars().next().expect("one character");
            if !sep.is_ascii() {
                return Err(format!("--bag {pattern}: the separator must be one ASCII character"));
            }
            Ok((name, Some(sep)))
        }
        _ => Ok((pattern, None)),
    }
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character).
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with one backtrack point.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(label: &str) -> Mapping {
        Mapping { label: Some(label.into()), ..Mapping::default() }
    }

    #[test]
    fn globs() {
        assert!(glob("C*", "C1") && glob("C*", "C") && glob("site_*", "site_id") && glob("?1", "C1"));
        assert!(glob("*", "") && glob("a*b*c", "axxbyyc") && glob("*_id", "site_id"));
        assert!(!glob("C*", "banner_pos") && !glob("?", "") && !glob("a*b", "ac") && !glob("C1", "C10"));
    }

    #[test]
    fn resolves_roles_in_header_order() {
        let m = Mapping {
            ignore: vec!["id".into()],
            dense: vec!["hour".into()],
            cat: vec!["C*".into(), "site_*".into()],
            bag: vec!["tags:|".into()],
            ..map("click")
        };
        let (schema, _, exact) = m.resolve(b"id,click,hour,C1,site_id,tags,C2", Labels::Required, false).unwrap();
        assert_eq!(schema.dense, ["hour"]);
        let names: Vec<_> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["C1", "site_id", "tags", "C2"]);
        assert_eq!(exact.cat, ["C1", "site_id", "C2"]);
        assert_eq!(exact.bag, ["tags:|"]);
        assert_eq!(exact.delimiter, Some(','));
        // The exact mapping resolves to the same schema.
        let (again, _, _) = exact.resolve(b"id,click,hour,C1,site_id,tags,C2", Labels::Required, true).unwrap();
        assert_eq!(again, schema);
    }

    #[test]
    fn wrong_mappings_name_the_columns() {
        let header = b"id\tclick\thour\tC1\tC2";
        let err = |m: Mapping| m.resolve(header, Labels::Required, false).unwrap_err();
        let e = err(Mapping { cat: vec!["C*".into()], ..map("click") });
        assert!(e.contains("id, hour") && e.contains("--rest"), "{e}");
        let e = err(Mapping { cat: vec!["C*".into()], dense: vec!["C1".into(), "hour".into()], ..map("click") });
        assert!(e.contains("\"C1\" is mapped twice: --dense C1 and --cat C*"), "{e}");
        let e = err(Mapping { rest: Some(Rest::Cat), ..map("clicked") });
        assert!(e.contains("label column \"clicked\""), "{e}");
        let e = err(Mapping { rest: Some(Rest::Cat), cat: vec!["click".into()], ..map("click") });
        assert!(e.contains("mapped twice"), "{e}");
        let e = err(Mapping { rest: Some(Rest::Cat), dense: vec!["I1".into()], ..map("click") });
        assert!(e.contains("--dense I1 matched no column"), "{e}");
        let e = err(Mapping { rest: Some(Rest::Cat), ..map("click>=x") });
        assert!(e.contains("not a number"), "{e}");
        assert!(Mapping { rest: Some(Rest::Cat), ..map("click") }.resolve(header, Labels::Required, false).is_ok());
    }

    #[test]
    fn a_stored_layout_names_missing_and_unknown_columns() {
        let m = Mapping { ignore: vec!["id".into()], cat: vec!["C1".into(), "C2".into()], ..map("click") };
        // Scoring: the label and ignored columns may be absent, the features may not.
        assert!(m.resolve(b"C1,C2", Labels::Optional, true).is_ok());
        let e = m.resolve(b"id,C1,x", Labels::Optional, true).unwrap_err();
        assert!(e.contains("missing columns: C2") && e.contains("does not know: x"), "{e}");
        assert!(m.resolve(b"C1,C2", Labels::Required, true).unwrap_err().contains("missing columns: click"));
    }

    #[test]
    fn mapping_files() {
        let m = Mapping::parse_file("# roles\nlabel rating>=4\ncat userId, movieId\nignore timestamp\ndelimiter tab\n")
            .unwrap();
        assert_eq!(m.label.as_deref(), Some("rating>=4"));
        assert_eq!(m.cat, ["userId", "movieId"]);
        assert_eq!(m.delimiter, Some('\t'));
        assert!(Mapping::parse_file("colour red").unwrap_err().contains("line 1: unknown role"));
        assert!(Mapping::parse_file("rest maybe").is_err());
    }

    #[test]
    fn delimiters() {
        assert_eq!(detect_delimiter(b"a,b,c"), b',');
        assert_eq!(detect_delimiter(b"a\tb,x\tc"), b'\t');
        assert_eq!(detect_delimiter(b"a;b;c"), b';');
        assert_eq!(detect_delimiter(b"single"), b',');
        assert_eq!(parse_delimiter("tab"), Ok('\t'));
        assert!(parse_delimiter(",,").is_err() && parse_delimiter("\"").is_err());
    }
}
