//! An independent f64 DLRM, written for clarity, not speed: the reference for the finite-difference
//! gradient checks and for the SIMD kernels' property tests.

use pocketrec::{Batch, DenseTransform, Dlrm, FieldKind, Gradients, Linear};

/// A model's parameters in f64: `W`, then `(weight, bias)` of every layer, bottom first.
#[derive(Clone)]
pub struct Reference {
    pub emb: Vec<f64>,
    pub mlp: Vec<(Vec<f64>, Vec<f64>)>,
}

impl Reference {
    pub fn of(model: &Dlrm) -> Self {
        let emb = model.embedding.iter().map(|&x| x as f64).collect();
        let mlp = model
            .layers()
            .map(|l| (l.weight.iter().map(|&x| x as f64).collect(), l.bias.iter().map(|&x| x as f64).collect()))
            .collect();
        Reference { emb, mlp }
    }

    /// The logits of every row of `batch`.
    pub fn logits(&self, model: &Dlrm, batch: &Batch) -> Vec<f64> {
        reference_loss(model, &self.emb, &self.mlp, batch).1
    }
}

/// Plain f64 DLRM forward + mean BCE, written for clarity, not speed.
pub fn reference_loss(model: &Dlrm, emb: &[f64], mlp: &[(Vec<f64>, Vec<f64>)], batch: &Batch) -> (f64, Vec<f64>) {
    let cfg = &model.config;
    let (d, nd) = (cfg.dim, cfg.dense.len());
    let nb = model.bottom.len();
    let dense_layer = |x: &[f64], k: usize, relu: bool| -> Vec<f64> {
        let (w, b) = &mlp[k];
        let fan_in = x.len();
        (0..b.len())
            .map(|o| {
                let z = b[o] + (0..fan_in).map(|i| w[o * fan_in + i] * x[i]).sum::<f64>();
                if relu { z.max(0.0) } else { z }
            })
            .collect()
    };
    let mut loss = 0.0;
    let mut logits = Vec::new();
    for r in 0..batch.rows {
        let mut x: Vec<f64> = batch.dense[r * nd..(r + 1) * nd]
            .iter()
            .map(|&v| match cfg.dense_transform {
                DenseTransform::Identity => v as f64,
                DenseTransform::Log1p => (v as f64).max(0.0).ln_1p(),
            })
            .collect();
        for k in 0..nb {
            x = dense_layer(&x, k, true);
        }
        // The bottom output interacts only when there is a bottom MLP (and dense features).
        let mut vectors = if nb > 0 { vec![x.clone()] } else { Vec::new() };
        for (f, spec) in cfg.fields.iter().enumerate() {
            let vals = batch.fields[f].row(r);
            let mut e = vec![0.0; d];
            for &v in vals {
                for (i, ei) in e.iter_mut().enumerate() {
                    *ei += emb[model.lookup().index(f, v, i)];
                }
            }
            if spec.kind == FieldKind::BagMean && !vals.is_empty() {
                e.iter_mut().for_each(|x| *x /= vals.len() as f64);
            }
            vectors.push(e);
        }
        let mut t = x.clone();
        for i in 1..vectors.len() {
            for j in 0..i {
                t.push((0..d).map(|k| vectors[i][k] * vectors[j][k]).sum());
            }
        }
        let nt = model.top.len();
        for k in 0..nt {
            t = dense_layer(&t, nb + k, k + 1 < nt);
        }
        let z = t[0];
        let y = batch.labels.get(r).map_or(0.0, |&y| y as f64); // unlabelled rows: loss unused
        loss += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
        logits.push(z);
    }
    (loss / batch.rows as f64, logits)
}

/// Parameter `i` of layer `k`'s weight (`which` 0) or bias (1).
pub fn param(m: &mut [(Vec<f64>, Vec<f64>)], k: usize, which: usize, i: usize) -> &mut f64 {
    if which == 0 { &mut m[k].0[i] } else { &mut m[k].1[i] }
}

/// Asserts that every gradient in `grads` (each slot of `W`, then every MLP weight and bias) equals
/// the central difference of the f64 `objective` at (`emb`, `mlp`), within 2e-5 + 2e-3·|g|; slots no
/// row touches must have a zero gradient. `what` prefixes the failure message.
pub fn assert_gradients_match(
    grads: &Gradients,
    emb: &[f64],
    mlp: &[(Vec<f64>, Vec<f64>)],
    objective: impl Fn(&[f64], &[(Vec<f64>, Vec<f64>)]) -> f64,
    what: &str,
) {
    let eps = 1e-6;
    let close = |analytic: f32, numeric: f64, name: &str| {
        let tol = 2e-5 + 2e-3 * numeric.abs().max(analytic.abs() as f64);
        assert!((analytic as f64 - numeric).abs() <= tol, "{what} {name}: analytic {analytic} vs numeric {numeric}");
    };
    for s in 0..emb.len() {
        let mut e = emb.to_vec();
        e[s] += eps;
        let up = objective(&e, mlp);
        e[s] -= 2.0 * eps;
        let down = objective(&e, mlp);
        close(grads.embedding.values()[s], (up - down) / (2.0 * eps), &format!("W[{s}]"));
    }
    let layers: Vec<&Linear> = grads.bottom.iter().chain(&grads.top).collect();
    for (k, g) in layers.iter().enumerate() {
        let analytic = [g.weight.iter().copied().collect::<Vec<f32>>(), g.bias.to_vec()];
        for (which, analytic) in analytic.iter().enumerate() {
            assert_eq!(analytic.len(), if which == 0 { mlp[k].0.len() } else { mlp[k].1.len() });
            for (i, &grad) in analytic.iter().enumerate() {
                let mut m = mlp.to_vec();
                *param(&mut m, k, which, i) += eps;
                let up = objective(emb, &m);
                *param(&mut m, k, which, i) -= 2.0 * eps;
                let down = objective(emb, &m);
                close(grad, (up - down) / (2.0 * eps), &format!("layer {k} {} [{i}]", ["weight", "bias"][which]));
            }
        }
    }
}
