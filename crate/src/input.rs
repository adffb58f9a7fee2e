//! Rows given by name, as a JavaScript caller writes them, turned into the model's input.
//!
//! A row is an object keyed by the schema's names: `{"hour": 20, "device": "mobile",
//! "recent_items": ["i00042", "i00007"], ...}`. A dense feature is a finite number. A sparse value
//! is a string, turned into a value by [`token_value`] exactly as the trainer reads schema-TSV
//! tokens (the empty string is the missing value 0), or an integer in `0..2^32` taken as the value
//! itself; an empty string in a bag is dropped, as an empty token in a TSV bag cell. A categorical field takes one value, a bag field
//! a list. Rows can also come as columns (typed arrays in JS, [`Column`] here), which skips the
//! per-value conversion. Values are JSON (`serde_json::Value`) so this is plain Rust, testable
//! natively; the wasm layer only converts JS values into it.
//!
//! Every mistake is an [`Error::Batch`] that names the row and the field: a missing field, an
//! unknown key (usually a typo), a wrong type, a non-finite number.

use crate::Error;
use crate::batch::{Batch, FieldValues};
use crate::config::{FieldKind, ModelConfig};
use crate::rank::{Candidates, Context};
use crate::robe::token_value;
use serde_json::Value;

fn bad<T>(m: String) -> Result<T, Error> {
    Err(Error::Batch(m))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null (null, undefined or NaN in JS)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One sparse value: a string is hashed (the empty one is 0), an integer in `0..2^32` is taken as is.
pub fn sparse_value(v: &Value, what: &dyn Fn() -> String) -> Result<u32, Error> {
    match v {
        Value::String(s) => Ok(token_value(s.as_bytes())),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && (0.0..4_294_967_296.0).contains(&x) => Ok(x as u32),
            _ => bad(format!("{} must be a string or an integer in 0..2^32, got {n}", what())),
        },
        other => bad(format!("{} must be a string or an integer in 0..2^32, got {}", what(), kind_of(other))),
    }
}

/// The values of one sparse field: a scalar for a categorical, a list for a bag.
fn field_values(kind: FieldKind, v: &Value, what: &dyn Fn() -> String) -> Result<Vec<u32>, Error> {
    match (kind, v) {
        (FieldKind::Categorical, Value::Array(_)) => {
            bad(format!("{} is categorical: give one string or integer, not a list", what()))
        }
        (FieldKind::Categorical, v) => Ok(vec![sparse_value(v, what)?]),
        (_, Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter(|(_, x)| x.as_str() != Some(""))
            .map(|(i, x)| sparse_value(x, &|| format!("item {i} of {}", what())))
            .collect(),
        (_, other) => bad(format!("{} is a bag: give a list of strings or integers, got {}", what(), kind_of(other))),
    }
}

fn dense_value(v: &Value, what: &dyn Fn() -> String) -> Result<f32, Error> {
    match v.as_f64().map(|x| x as f32) {
        Some(x) if x.is_finite() => Ok(x),
        Some(_) => bad(format!("{} is outside the f32 range", what())),
        None => bad(format!("{} must be a finite number, got {}", what(), kind_of(v))),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>, Error> {
    v.as_object().map_or_else(|| bad(format!("{what} must be an object keyed by field name, got {}", kind_of(v))), Ok)
}

/// Rejects keys that name nothing in `allowed` (typos would otherwise be silently ignored).
fn no_unknown_keys(obj: &serde_json::Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), Error> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => bad(format!("{what} has unknown key {k:?}; the model's names are {allowed:?}")),
        None => Ok(()),
    }
}

fn dense_of(cfg: &ModelConfig, obj: &serde_json::Map<String, Value>, what: &str) -> Result<Vec<f32>, Error> {
    cfg.dense
        .iter()
        .map(|name| match obj.get(name) {
            Some(v) => dense_value(v, &|| format!("dense feature {name:?} of {what}")),
            None => bad(format!("{what} is missing dense feature {name:?}")),
        })
        .collect()
}

/// Full rows (every dense feature and every field) from a list of objects.
pub fn batch_from_objects(cfg: &ModelConfig, rows: &[Value]) -> Result<Batch, Error> {
    let names: Vec<&str> = cfg.dense.iter().chain(cfg.fields.iter().map(|f| &f.name)).map(String::as_str).collect();
    let mut batch = Batch::with_schema(cfg.fields.len());
    for (r, row) in rows.iter().enumerate() {
        let what = format!("row {r}");
        let obj = object(row, &what)?;
        no_unknown_keys(obj, &names, &what)?;
        let dense = dense_of(cfg, obj, &what)?;
        let mut sparse = Vec::with_capacity(cfg.fields.len());
        for spec in &cfg.fields {
            let Some(v) = obj.get(&spec.name).filter(|v| !v.is_null()) else {
                return bad(format!("{what} is missing field {:?}", spec.name));
            };
            sparse.push(field_values(spec.kind, v, &|| format!("field {:?} of {what}", spec.name))?);
        }
        batch.push_row(&dense, sparse.iter().map(Vec::as_slice), None);
    }
    Ok(batch)
}

/// A ranking context: every dense feature, plus the fields it gives (a missing or null field is
/// left to the candidates).
pub fn context_from_object(cfg: &ModelConfig, context: &Value) -> Result<Context, Error> {
    let names: Vec<&str> = cfg.dense.iter().chain(cfg.fields.iter().map(|f| &f.name)).map(String::as_str).collect();
    let obj = object(context, "the context")?;
    no_unknown_keys(obj, &names, "the context")?;
    let dense = dense_of(cfg, obj, "the context")?;
    let fields = cfg
        .fields
        .iter()
        .map(|spec| match obj.get(&spec.name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => field_values(spec.kind, v, &|| format!("field {:?} of the context", spec.name)).map(Some),
        })
        .collect::<Result<_, _>>()?;
    Ok(Context { dense, fields })
}

/// Names of the fields a context leaves to the candidates, in config order.
pub fn candidate_field_names<'a>(cfg: &'a ModelConfig, context: &Context) -> Vec<&'a str> {
    cfg.fields.iter().zip(&context.fields).filter(|(_, v)| v.is_none()).map(|(f, _)| f.name.as_str()).collect()
}

/// Candidates from a list of objects holding exactly the fields the context leaves open.
pub fn candidates_from_objects(cfg: &ModelConfig, context: &Context, rows: &[Value]) -> Result<Candidates, Error> {
    let open: Vec<(usize, &str)> = cfg
        .fields
        .iter()
        .enumerate()
        .filter(|(f, _)| context.fields[*f].is_none())
        .map(|(f, spec)| (f, spec.name.as_str()))
        .collect();
    let names: Vec<&str> = open.iter().map(|(_, n)| *n).collect();
    let mut fields = vec![FieldValues { offsets: vec![0], values: Vec::new() }; open.len()];
    for (r, row) in rows.iter().enumerate() {
        let what = format!("candidate {r}");
        let obj = object(row, &what)?;
        if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
            let given = cfg.fields.iter().any(|f| &f.name == k);
            return bad(if given {
                format!("{what} gives field {k:?}, which the context already gives; candidates give {names:?}")
            } else {
                format!("{what} has unknown key {k:?}; candidates give {names:?}")
            });
        }
        for (out, &(f, name)) in fields.iter_mut().zip(&open) {
            let Some(v) = obj.get(name).filter(|v| !v.is_null()) else {
                return bad(format!("{what} is missing field {name:?}"));
            };
            out.values.extend(field_values(cfg.fields[f].kind, v, &|| format!("field {name:?} of {what}"))?);
            out.offsets.push(out.values.len() as u32);
        }
    }
    Ok(Candidates { rows: rows.len(), fields })
}

/// One sparse field given column-wise: one value per row, or a bag in CSR form.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Single(Vec<u32>),
    Bag { offsets: Vec<u32>, values: Vec<u32> },
}

impl Column {
    fn into_values(self, rows: usize, kind: FieldKind, name: &str) -> Result<FieldValues, Error> {
        let fv = match self {
            Column::Single(v) if v.len() == rows => FieldValues::single(v),
            Column::Single(v) => return bad(format!("column {name:?} has {} values for {rows} rows", v.len())),
            Column::Bag { offsets, values } => {
                let ok = offsets.len() == rows + 1
                    && offsets.first() == Some(&0)
                    && offsets.last().is_some_and(|&l| l as usize == values.len())
                    && offsets.windows(2).all(|w| w[0] <= w[1]);
                if !ok {
                    return bad(format!(
                        "column {name:?} needs {} non-decreasing offsets from 0 to its {} values",
                        rows + 1,
                        values.len()
                    ));
                }
                FieldValues { offsets, values }
            }
        };
        if kind == FieldKind::Categorical
            && let Some(r) = fv.offsets.windows(2).position(|w| w[1] - w[0] != 1)
        {
            return bad(format!("categorical column {name:?} needs exactly one value in row {r}"));
        }
        Ok(fv)
    }
}

/// Takes the column of every named field out of `columns`, in `names` order; extra columns are an error.
fn take_columns(
    cfg: &ModelConfig,
    rows: usize,
    mut columns: Vec<(String, Column)>,
    names: &[&str],
    what: &str,
) -> Result<Vec<FieldValues>, Error> {
    if let Some((k, _)) = columns.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        return bad(format!("{what} have unknown column {k:?}; expected {names:?}"));
    }
    names
        .iter()
        .map(|&name| {
            let Some(i) = columns.iter().position(|(k, _)| k == name) else {
                return bad(format!("{what} are missing column {name:?}"));
            };
            let kind = cfg.fields.iter().find(|f| f.name == name).expect("a field name").kind;
            columns.swap_remove(i).1.into_values(rows, kind, name)
        })
        .collect()
}

/// Full rows from columns: `dense` row-major `rows × n_dense`, one column per field.
pub fn batch_from_columns(
    cfg: &ModelConfig,
    rows: usize,
    dense: Vec<f32>,
    columns: Vec<(String, Column)>,
) -> Result<Batch, Error> {
    let nd = cfg.dense.len();
    if dense.len() != rows * nd {
        return bad(format!("dense has {} values; {rows} rows × {nd} features need {}", dense.len(), rows * nd));
    }
    if let Some(i) = dense.iter().position(|x| !x.is_finite()) {
        return bad(format!("dense feature {:?} of row {} is not finite", cfg.dense[i % nd], i / nd));
    }
    let names: Vec<&str> = cfg.fields.iter().map(|f| f.name.as_str()).collect();
    let fields = take_columns(cfg, rows, columns, &names, "rows")?;
    Ok(Batch { rows, dense, fields, labels: Vec::new() })
}

/// Candidates from columns, one per field the context leaves open.
pub fn candidates_from_columns(
    cfg: &ModelConfig,
    context: &Context,
    rows: usize,
    columns: Vec<(String, Column)>,
) -> Result<Candidates, Error> {
    let names = candidate_field_names(cfg, context);
    let fields = take_columns(cfg, rows, columns, &names, "candidates")?;
    Ok(Candidates { rows, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Field, Preset, StoredDtype};
    use crate::robe::HashVariant;
    use crate::robe::fnv1a32;
    use serde_json::json;

    fn cfg() -> ModelConfig {
        let f = |n: &str, kind| Field { name: n.into(), kind };
        let fields = vec![
            f("recent", FieldKind::BagMean),
            f("device", FieldKind::Categorical),
            f("item", FieldKind::Categorical),
            f("tags", FieldKind::BagSum),
        ];
        ModelConfig::preset(
            Preset::Small,
            vec!["hour".into()],
            fields,
            100_000,
            4,
            HashVariant::UmaV1,
            StoredDtype::F32,
        )
        .unwrap()
    }

    #[test]
    fn objects_hash_strings_like_the_trainer_and_take_integers_as_values() {
        let rows = [json!({"hour": 20, "recent": ["i1", 7], "device": "mobile", "item": 42, "tags": []})];
        let b = batch_from_objects(&cfg(), &rows).unwrap();
        b.validate(&cfg()).unwrap();
        assert_eq!(b.dense, [20.0]);
        assert_eq!(b.fields[0].values, [fnv1a32(b"i1"), 7]);
        assert_eq!(b.fields[1].values, [fnv1a32(b"mobile")]);
        assert_eq!(b.fields[2].values, [42]);
        assert_eq!(b.fields[3].offsets, [0, 0]);
    }

    #[test]
    fn empty_strings_read_as_an_empty_tsv_cell() {
        // The trainer reads an empty categorical cell as 0 and drops empty bag tokens; the engine
        // must see the same values, or a model meets other inputs in the browser than in training.
        let rows = [json!({"hour": 1, "recent": ["", "i1", ""], "device": "", "item": 3, "tags": [""]})];
        let b = batch_from_objects(&cfg(), &rows).unwrap();
        assert_eq!(b.fields[0].values, [fnv1a32(b"i1")]);
        assert_eq!(b.fields[1].values, [0]);
        assert_eq!(b.fields[3].offsets, [0, 0]);
    }

    #[test]
    fn mistakes_name_the_row_and_field() {
        let c = cfg();
        let ok = json!({"hour": 1, "recent": [], "device": "d", "item": "x", "tags": ["a"]});
        let err = |row: Value| batch_from_objects(&c, &[ok.clone(), row]).unwrap_err().to_string();
        let mut missing = ok.clone();
        missing.as_object_mut().unwrap().remove("device");
        assert!(err(missing).contains("row 1 is missing field \"device\""));
        let mut typo = ok.clone();
        typo["devise"] = json!("x");
        assert!(err(typo).contains("unknown key \"devise\""));
        let mut wrong = ok.clone();
        wrong["device"] = json!({"a": 1});
        assert!(err(wrong).contains("field \"device\" of row 1 must be a string or an integer"));
        let mut frac = ok.clone();
        frac["item"] = json!(1.5);
        assert!(err(frac).contains("got 1.5"));
        let mut neg = ok.clone();
        neg["item"] = json!(-1);
        assert!(err(neg).contains("integer in 0..2^32"));
        let mut list = ok.clone();
        list["item"] = json!(["a"]);
        assert!(err(list).contains("is categorical"));
        let mut scalar_bag = ok.clone();
        scalar_bag["tags"] = json!("a");
        assert!(err(scalar_bag).contains("is a bag"));
        let mut nan = ok.clone();
        nan["hour"] = Value::Null; // what a JS NaN becomes
        assert!(err(nan).contains("dense feature \"hour\" of row 1 must be a finite number"));
        let mut text = ok.clone();
        text["hour"] = json!("20");
        assert!(err(text).contains("must be a finite number, got a string"));
        assert!(batch_from_objects(&c, &[json!([1, 2])]).unwrap_err().to_string().contains("must be an object"));
    }

    #[test]
    fn context_and_candidates_split_the_fields() {
        let c = cfg();
        let ctx = context_from_object(&c, &json!({"hour": 9, "recent": ["a", "b"], "device": "tablet"})).unwrap();
        assert_eq!(ctx.fields[0], Some(vec![fnv1a32(b"a"), fnv1a32(b"b")]));
        assert_eq!(ctx.fields[2], None);
        assert_eq!(candidate_field_names(&c, &ctx), ["item", "tags"]);
        let cands =
            candidates_from_objects(&c, &ctx, &[json!({"item": "x", "tags": ["t"]}), json!({"item": 3, "tags": []})])
                .unwrap();
        assert_eq!(cands.rows, 2);
        assert_eq!(cands.fields[0].values, [fnv1a32(b"x"), 3]);
        assert_eq!(cands.fields[1].offsets, [0, 1, 1]);
        crate::rank::validate(&c, &ctx, &cands).unwrap();

        let e = candidates_from_objects(&c, &ctx, &[json!({"item": "x", "tags": [], "device": "d"})]).unwrap_err();
        assert!(e.to_string().contains("which the context already gives"), "{e}");
        let e = candidates_from_objects(&c, &ctx, &[json!({"item": "x"})]).unwrap_err();
        assert!(e.to_string().contains("candidate 0 is missing field \"tags\""), "{e}");
        let e = context_from_object(&c, &json!({"recent": []})).unwrap_err();
        assert!(e.to_string().contains("missing dense feature \"hour\""), "{e}");
        assert_eq!(candidates_from_objects(&c, &ctx, &[]).unwrap().rows, 0);
    }

    #[test]
    fn columns_match_objects_and_are_checked() {
        let c = cfg();
        let ctx = context_from_object(&c, &json!({"hour": 9, "recent": [], "device": "tablet"})).unwrap();
        let objects =
            candidates_from_objects(&c, &ctx, &[json!({"item": 5, "tags": [1, 2]}), json!({"item": 6, "tags": []})])
                .unwrap();
        let cols = vec![
            ("tags".to_string(), Column::Bag { offsets: vec![0, 2, 2], values: vec![1, 2] }),
            ("item".to_string(), Column::Single(vec![5, 6])),
        ];
        assert_eq!(candidates_from_columns(&c, &ctx, 2, cols).unwrap(), objects);

        let short = vec![("item".into(), Column::Single(vec![5])), ("tags".into(), Column::Single(vec![1, 2]))];
        assert!(candidates_from_columns(&c, &ctx, 2, short).unwrap_err().to_string().contains("1 values for 2 rows"));
        let bad_offsets = vec![
            ("item".into(), Column::Single(vec![5, 6])),
            ("tags".into(), Column::Bag { offsets: vec![0, 3, 2], values: vec![1, 2] }),
        ];
        assert!(candidates_from_columns(&c, &ctx, 2, bad_offsets).unwrap_err().to_string().contains("non-decreasing"));
        let missing = vec![("item".into(), Column::Single(vec![5, 6]))];
        assert!(
            candidates_from_columns(&c, &ctx, 2, missing).unwrap_err().to_string().contains("missing column \"tags\"")
        );

        let cols = vec![
            ("recent".into(), Column::Bag { offsets: vec![0, 0], values: vec![] }),
            ("device".into(), Column::Single(vec![1])),
            ("item".into(), Column::Single(vec![2])),
            ("tags".into(), Column::Bag { offsets: vec![0, 1], values: vec![3] }),
        ];
        batch_from_columns(&c, 1, vec![4.0], cols.clone()).unwrap().validate(&c).unwrap();
        let e = batch_from_columns(&c, 1, vec![f32::NAN], cols.clone()).unwrap_err();
        assert!(e.to_string().contains("not finite"), "{e}");
        assert!(batch_from_columns(&c, 1, vec![], cols).unwrap_err().to_string().contains("need 1"));
    }
}
