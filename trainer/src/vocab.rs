//! The vocabulary of the `full` baseline: per field, raw value -> dense id (1-based; 0 is every
//! value unseen in training). pocketrec itself needs no vocabulary; this exists only so the
//! uncompressed reference has one row per value, as in the paper's comparison.

use pocketrec::Batch;
use std::collections::HashMap;

#[derive(Default, Debug, Clone)]
pub struct Vocabulary {
    ids: Vec<HashMap<u32, u32>>,
}

impl Vocabulary {
    /// Adds every value of a batch.
    pub fn add(&mut self, batch: &Batch) {
        self.ids.resize_with(batch.fields.len(), HashMap::new);
        for (ids, field) in self.ids.iter_mut().zip(&batch.fields) {
            for &v in &field.values {
                let next = ids.len() as u32 + 1;
                ids.entry(v).or_insert(next);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.iter().all(|m| m.is_empty())
    }

    /// Rows per field table: every id plus the unseen row 0.
    pub fn table_sizes(&self) -> Vec<u64> {
        self.ids.iter().map(|m| m.len() as u64 + 1).collect()
    }

    /// Replaces raw values by their ids in place.
    pub fn remap(&self, batch: &mut Batch) {
        for (ids, field) in self.ids.iter().zip(&mut batch.fields) {
            for v in &mut field.values {
                *v = ids.get(v).copied().unwrap_or(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_unseen_is_zero() {
        let mut b = Batch::with_schema(2);
        b.push_row(&[], [&[7u32][..], &[9][..]], None);
        b.push_row(&[], [&[8u32][..], &[9][..]], None);
        let mut v = Vocabulary::default();
        v.add(&b);
        assert_eq!(v.table_sizes(), vec![3, 2]);
        let mut c = Batch::with_schema(2);
        c.push_row(&[], [&[8u32][..], &[5][..]], None);
        v.remap(&mut c);
        assert_eq!(c.fields[0].values, vec![2]);
        assert_eq!(c.fields[1].values, vec![0]);
    }
}
