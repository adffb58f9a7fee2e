//! Optimizer properties: the sparse SGD update of W is bit-identical to the dense one, and every
//! optimizer lowers the loss on a fixed batch.

use pocketrec::config::criteo_schema;
use pocketrec::passes::{Gradients, Workspace, bce_with_logits};
use pocketrec::{Batch, Dlrm, HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn setup(seed: u64) -> (Dlrm, Batch) {
    let (dense, fields) = criteo_schema();
    let cfg =
        ModelConfig::preset(Preset::Small, dense, fields, 2_000_000, 4, HashVariant::UmaV1, StoredDtype::F32).unwrap();
    let model = Dlrm::init(cfg, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut batch = Batch::with_schema(26);
    for _ in 0..64 {
        let dense: Vec<f32> = (0..13).map(|_| rng.random_range(0.0..50.0f32)).collect();
        let keys: Vec<[u32; 1]> = (0..26).map(|_| [rng.random_range(0..20)]).collect();
        let label = (dense[0] > 25.0) as u32 as f32;
        batch.push_row(&dense, keys.iter().map(|k| k.as_slice()), Some(label));
    }
    (model, batch)
}

fn loss_and_grads(model: &Dlrm, batch: &Batch, ws: &mut Workspace, grads: &mut Gradients) -> f64 {
    grads.embedding.clear();
    let logits = model.forward(batch, ws).to_vec();
    let mut d = vec![0.0; batch.rows];
    let loss = bce_with_logits(&logits, &batch.labels, &mut d);
    model.backward(batch, ws, &d, grads);
    loss
}

#[test]
fn sparse_sgd_equals_dense_sgd_bit_for_bit() {
    let (mut sparse, batch) = setup(1);
    let mut dense = sparse.clone();
    let lr = 0.5;
    let mut opt = Optimizer::new(OptimizerKind::Sgd, lr, &sparse);
    let (mut ws, mut grads) = (Workspace::default(), Gradients::zeros(&sparse));
    for _ in 0..5 {
        loss_and_grads(&sparse, &batch, &mut ws, &mut grads);
        opt.apply(&mut sparse, &mut grads);
        loss_and_grads(&dense, &batch, &mut ws, &mut grads);
        // The dense reference: every slot moves by its accumulated gradient (zero if unread).
        for (w, g) in dense.embedding.iter_mut().zip(grads.embedding.values()) {
            *w -= lr * g;
        }
        for (p, g) in dense.bottom.iter_mut().chain(dense.top.iter_mut()).zip(grads.bottom.iter().chain(&grads.top)) {
            p.weight.zip_mut_with(&g.weight, |p, g| *p -= lr * g);
            p.bias.zip_mut_with(&g.bias, |p, g| *p -= lr * g);
        }
        let nonzero = grads.embedding.values().iter().filter(|&&g| g != 0.0).count();
        assert!(nonzero > 0 && nonzero < dense.embedding.len() / 10, "the update must be sparse");
    }
    let bits = |m: &Dlrm| m.embedding.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&sparse), bits(&dense));
    for (a, b) in sparse.layers().zip(dense.layers()) {
        assert_eq!(a, b);
    }
}

#[test]
fn every_optimizer_lowers_the_loss() {
    for (kind, lr) in [(OptimizerKind::Sgd, 1.0), (OptimizerKind::Adagrad, 0.05), (OptimizerKind::Adam, 0.005)] {
        let (mut model, batch) = setup(2);
        let mut opt = Optimizer::new(kind, lr, &model);
        let (mut ws, mut grads) = (Workspace::default(), Gradients::zeros(&model));
        let first = loss_and_grads(&model, &batch, &mut ws, &mut grads);
        for _ in 0..300 {
            loss_and_grads(&model, &batch, &mut ws, &mut grads);
            opt.apply(&mut model, &mut grads);
        }
        let last = loss_and_grads(&model, &batch, &mut ws, &mut grads);
        assert!(last < 0.8 * first, "{kind:?}: loss {first} -> {last}");
        assert_eq!(opt.kind(), kind);
        let buffers = match kind {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adagrad => 1,
            OptimizerKind::Adam => 2,
        };
        assert_eq!(opt.named_state(&model).len(), buffers * (1 + 2 * model.layers().count()), "{kind:?}");
    }
}
