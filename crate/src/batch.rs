//! A batch of rows in the model's input form: raw dense values and u32 sparse values.
//!
//! Sparse fields are stored column-wise in CSR form (offsets + values), so a categorical field
//! and a bag field share one representation; a categorical has exactly one value per row.

use crate::Error;
use crate::config::{FieldKind, ModelConfig};

/// Whether every value is finite, in one pass that vectorizes (no early exit per value).
pub(crate) fn all_finite(x: &[f32]) -> bool {
    x.chunks(1024).all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()))
}

/// Whether CSR offsets that start at 0 are valid for a field of this kind: non-decreasing, and
/// for a categorical 0, 1, 2, ... (one value per row). One pass that vectorizes.
pub(crate) fn offsets_ok(kind: FieldKind, o: &[u32]) -> bool {
    const CHUNK: usize = 1024;
    match kind {
        FieldKind::Categorical => o.chunks(CHUNK).enumerate().all(|(i, c)| {
            let first = (i * CHUNK) as u32;
            c.iter().zip(first..).fold(true, |ok, (&x, r)| ok & (x == r))
        }),
        _ => {
            let mut pairs = o.chunks(CHUNK).zip(o.get(1..).unwrap_or_default().chunks(CHUNK));
            pairs.all(|(a, b)| a.iter().zip(b).fold(true, |ok, (x, y)| ok & (x <= y)))
        }
    }
}

/// The values of one sparse field for every row of a batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldValues {
    /// `offsets[r]..offsets[r+1]` indexes row `r`'s values; `offsets.len() == rows + 1`.
    pub offsets: Vec<u32>,
    pub values: Vec<u32>,
}

impl FieldValues {
    /// Values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[u32] {
        &self.values[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }

    /// One value per row.
    pub fn single(values: Vec<u32>) -> Self {
        FieldValues { offsets: (0..=values.len() as u32).collect(), values }
    }
}

/// Rows to score or train on. Dense values are raw; the model applies its dense transform.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub rows: usize,
    /// Row-major `rows × n_dense`.
    pub dense: Vec<f32>,
    /// One entry per sparse field, in config order.
    pub fields: Vec<FieldValues>,
    /// Click labels in {0, 1}; empty when scoring.
    pub labels: Vec<f32>,
}

impl Batch {
    /// An empty batch for a schema, to be filled with [`Batch::push_row`].
    pub fn with_schema(n_fields: usize) -> Self {
        Batch {
            rows: 0,
            dense: Vec::new(),
            fields: vec![FieldValues { offsets: vec![0], values: Vec::new() }; n_fields],
            labels: Vec::new(),
        }
    }

    /// Appends a row: its dense values, then one slice of values per sparse field.
    pub fn push_row<'a>(&mut self, dense: &[f32], sparse: impl IntoIterator<Item = &'a [u32]>, label: Option<f32>) {
        self.dense.extend_from_slice(dense);
        for (f, vals) in self.fields.iter_mut().zip(sparse) {
            f.values.extend_from_slice(vals);
            f.offsets.push(f.values.len() as u32);
        }
        if let Some(l) = label {
            self.labels.push(l);
        }
        self.rows += 1;
    }

    /// Overwrites `out` with rows `range` of this batch (reusing its allocations).
    pub fn copy_rows_into(&self, range: std::ops::Range<usize>, out: &mut Batch) {
        let nd = self.dense.len().checked_div(self.rows).unwrap_or(0);
        out.rows = range.len();
        out.dense.clear();
        out.dense.extend_from_slice(&self.dense[range.start * nd..range.end * nd]);
        out.labels.clear();
        if !self.labels.is_empty() {
            out.labels.extend_from_slice(&self.labels[range.clone()]);
        }
        out.fields.resize_with(self.fields.len(), FieldValues::default);
        for (src, dst) in self.fields.iter().zip(&mut out.fields) {
            let (lo, hi) = (src.offsets[range.start], src.offsets[range.end]);
            dst.values.clear();
            dst.values.extend_from_slice(&src.values[lo as usize..hi as usize]);
            dst.offsets.clear();
            dst.offsets.extend(src.offsets[range.start..=range.end].iter().map(|&o| o - lo));
        }
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.rows = 0;
        self.dense.clear();
        self.labels.clear();
        for f in &mut self.fields {
            f.values.clear();
            f.offsets.truncate(1);
        }
    }

    /// Checks the batch against a model's schema: sizes, offsets, one value per categorical, finite
    /// dense values and labels in {0, 1}.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Batch(m));
        if self.rows == 0 {
            return bad("the batch is empty: give at least one row".into());
        }
        let nd = cfg.dense.len();
        if self.dense.len() != self.rows * nd {
            return bad(format!(
                "expected {} dense values ({} rows × {nd}), got {}",
                self.rows * nd,
                self.rows,
                self.dense.len()
            ));
        }
        if !all_finite(&self.dense)
            && let Some(i) = self.dense.iter().position(|x| !x.is_finite())
        {
            return bad(format!("dense feature {:?} of row {} is not finite", cfg.dense[i % nd], i / nd));
        }
        if self.fields.len() != cfg.fields.len() {
            return bad(format!("expected {} sparse fields, got {}", cfg.fields.len(), self.fields.len()));
        }
        for (f, (vals, spec)) in self.fields.iter().zip(&cfg.fields).enumerate() {
            let o = &vals.offsets;
            if o.len() != self.rows + 1 || o[0] != 0 || o[self.rows] as usize != vals.values.len() {
                return bad(format!("field {:?} (#{f}) has malformed offsets", spec.name));
            }
            // The usual cases in one branch-free pass each; the slow scans below only to name
            // what is wrong.
            if offsets_ok(spec.kind, o) {
                continue;
            }
            if o.windows(2).any(|w| w[0] > w[1]) {
                return bad(format!("field {:?} (#{f}) has decreasing offsets", spec.name));
            }
            if spec.kind == FieldKind::Categorical
                && let Some(r) = o.windows(2).position(|w| w[1] - w[0] != 1)
            {
                return bad(format!("categorical field {:?} needs exactly one value in row {r}", spec.name));
            }
        }
        if !self.labels.is_empty() {
            if self.labels.len() != self.rows {
                return bad(format!("expected {} labels, got {}", self.rows, self.labels.len()));
            }
            if let Some(r) = self.labels.iter().position(|&l| l != 0.0 && l != 1.0) {
                return bad(format!("label of row {r} is {}, not 0 or 1", self.labels[r]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass checks agree with the plain definitions, across chunk boundaries.
    #[test]
    fn fast_checks_match_the_definitions() {
        let slow = |kind: FieldKind, o: &[u32]| {
            let one_each = kind != FieldKind::Categorical || o.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 1);
            o.windows(2).all(|w| w[0] <= w[1]) && one_each
        };
        for n in [1usize, 2, 1023, 1024, 1025, 3000] {
            let identity: Vec<u32> = (0..n as u32).collect();
            let bag: Vec<u32> = (0..n as u32).map(|r| r / 3).collect();
            for at in [0, n / 2, n - 1] {
                for o in [identity.clone(), bag.clone()] {
                    for bump in [0u32, 1, 2] {
                        let mut o = o.clone();
                        if at > 0 {
                            o[at] = o[at].wrapping_add(bump).wrapping_sub(1);
                        }
                        for kind in [FieldKind::Categorical, FieldKind::BagSum] {
                            assert_eq!(offsets_ok(kind, &o), slow(kind, &o), "{kind:?} n {n} at {at} bump {bump}");
                        }
                    }
                }
            }
            let mut x = vec![1.0f32; n];
            assert!(all_finite(&x));
            x[n - 1] = f32::NAN;
            assert!(!all_finite(&x));
            x[n - 1] = f32::NEG_INFINITY;
            assert!(!all_finite(&x));
        }
    }
}
