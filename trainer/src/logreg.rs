//! Logistic regression on hashed one-hot features: the classic CTR baseline a DLRM must beat.
//! Dense features go through the model's dense transform; each (field, value) pair is hashed
//! into one of `buckets` weights. Trained with Adagrad, one row at a time.

use crate::train::BatchStream;
use anyhow::Result;
use pocketrec::robe::fnv1a32;
use pocketrec::{Batch, DenseTransform};

pub struct LogReg {
    dense: Vec<f32>,
    sparse: Vec<f32>,
    bias: f32,
    acc_dense: Vec<f32>,
    acc_sparse: Vec<f32>,
    acc_bias: f32,
    transform: DenseTransform,
    lr: f32,
}

impl LogReg {
    pub fn new(n_dense: usize, buckets: usize, transform: DenseTransform, lr: f32) -> Self {
        LogReg {
            dense: vec![0.0; n_dense],
            sparse: vec![0.0; buckets],
            bias: 0.0,
            acc_dense: vec![1e-6; n_dense],
            acc_sparse: vec![1e-6; buckets],
            acc_bias: 1e-6,
            transform,
            lr,
        }
    }

    fn bucket(&self, field: usize, v: u32) -> usize {
        let mut key = [0u8; 8];
        key[..4].copy_from_slice(&(field as u32).to_le_bytes());
        key[4..].copy_from_slice(&v.to_le_bytes());
        fnv1a32(&key) as usize % self.sparse.len()
    }

    fn features(&self, batch: &Batch, r: usize) -> (Vec<f32>, Vec<usize>) {
        let nd = self.dense.len();
        let x = batch.dense[r * nd..(r + 1) * nd].iter().map(|&v| self.transform.apply(v)).collect();
        let ids = batch.fields.iter().enumerate().flat_map(|(f, vals)| vals.row(r).iter().map(move |&v| (f, v)));
        (x, ids.map(|(f, v)| self.bucket(f, v)).collect())
    }

    fn logit(&self, x: &[f32], ids: &[usize]) -> f32 {
        self.bias
            + x.iter().zip(&self.dense).map(|(a, b)| a * b).sum::<f32>()
            + ids.iter().map(|&i| self.sparse[i]).sum::<f32>()
    }

    /// One pass of Adagrad over `stream`.
    pub fn fit_epoch(&mut self, stream: &mut dyn BatchStream) -> Result<()> {
        while let Some(batch) = stream.next_batch()? {
            for r in 0..batch.rows {
                let (x, ids) = self.features(&batch, r);
                let g = pocketrec::passes::sigmoid(self.logit(&x, &ids)) - batch.labels[r];
                let lr = self.lr;
                let step = |w: &mut f32, acc: &mut f32, g: f32| {
                    *acc += g * g;
                    *w -= lr * g / acc.sqrt();
                };
                step(&mut self.bias, &mut self.acc_bias, g);
                for (k, &xk) in x.iter().enumerate() {
                    step(&mut self.dense[k], &mut self.acc_dense[k], g * xk);
                }
                for &i in &ids {
                    step(&mut self.sparse[i], &mut self.acc_sparse[i], g);
                }
            }
        }
        Ok(())
    }

    /// Click probabilities and labels of every row of `stream`.
    pub fn predict(&self, stream: &mut dyn BatchStream) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut probs, mut labels) = (Vec::new(), Vec::new());
        while let Some(batch) = stream.next_batch()? {
            for r in 0..batch.rows {
                let (x, ids) = self.features(&batch, r);
                probs.push(pocketrec::passes::sigmoid(self.logit(&x, &ids)));
            }
            labels.extend_from_slice(&batch.labels);
        }
        Ok((probs, labels))
    }
}
