//! The SIMD kernels against scalar references, on small batches: the GEMM under every layer, and
//! whole scoring and ranking paths against the f64 DLRM. The same tests run natively (AVX-512 or
//! AVX2 kernels) and on wasm32 with SIMD128 under Node (`make test-wasm-kernels`), so the kernels the
//! browser runs are the ones checked.

mod common;

use common::reference::Reference;
use common::{forward, random_model, random_request};
use ndarray::{Array2, ShapeBuilder};
use pocketrec::gemm::matmul;
use pocketrec::rank;
use rand::{Rng, SeedableRng, rngs::StdRng};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

// Without SIMD128 the gemm crate falls back to scalar kernels, and this suite would not test what
// the browser runs.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!("build the wasm32 kernel tests with RUSTFLAGS=\"-C target-feature=+simd128\" (make test-wasm-kernels)");

/// A random matrix in row-major or column-major layout, so both stride patterns reach the kernels.
fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f32> {
    let shape = (rows, cols).set_f(rng.random_bool(0.5));
    Array2::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0))
}

#[test]
fn matmul_matches_scalar_reference_on_small_batches() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut worst = 0.0f64;
    for case in 0..400 {
        // Mostly the batch sizes of ranking a few candidates or scoring one row, some larger.
        let m = if rng.random_bool(0.7) { rng.random_range(1..=16) } else { rng.random_range(17..300) };
        let k = rng.random_range(1..600);
        let n = [1, 2, 3, 7, 16, 64, 256, 512][rng.random_range(0..8)] + rng.random_range(0..3);
        let a = random_matrix(&mut rng, m, k);
        let b = random_matrix(&mut rng, k, n);
        let accumulate = rng.random_bool(0.5);
        let c0 = random_matrix(&mut rng, m, n);
        let mut c = c0.clone();
        matmul(a.view(), b.view(), c.view_mut(), accumulate);
        for i in 0..m {
            for j in 0..n {
                let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
                for t in 0..k {
                    let p = a[[i, t]] as f64 * b[[t, j]] as f64;
                    exact += p;
                    magnitude += p.abs();
                }
                if accumulate {
                    exact += c0[[i, j]] as f64;
                    magnitude += (c0[[i, j]] as f64).abs();
                }
                // Any summation order stays within k·u·Σ|terms| (u = 2^-24); allow twice that.
                let bound = 2.0 * (k + 1) as f64 * f32::EPSILON as f64 / 2.0 * magnitude;
                let err = (c[[i, j]] as f64 - exact).abs();
                worst = worst.max(err / magnitude.max(f64::MIN_POSITIVE));
                assert!(
                    err <= bound,
                    "case {case}: {m}x{k}x{n} accumulate={accumulate} [{i},{j}]: {} vs {exact}",
                    c[[i, j]]
                );
            }
        }
    }
    eprintln!("matmul: worst error / Σ|terms| = {worst:e}");
}

/// `|a − b| <= tol · (|b| + 1)` against the f64 reference.
fn assert_near(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (r, (&x, &y)) in got.iter().zip(want).enumerate() {
        assert!(x.is_finite() && (x as f64 - y).abs() <= tol * (y.abs() + 1.0), "{what}: row {r}: {x} vs {y}");
    }
}

#[test]
fn small_batch_scoring_matches_f64_reference() {
    let mut rng = StdRng::seed_from_u64(9);
    for case in 0..150 {
        let model = random_model(&mut rng);
        let rows = rng.random_range(1..=16);
        let (ctx, cands) = random_request(&mut rng, &model.config, rows);
        let batch = rank::full_rows(&model.config, &ctx, &cands);
        let want = Reference::of(&model).logits(&model, &batch);
        assert_near(&forward(&model, &batch), &want, 1e-5, &format!("forward, case {case}"));
        let once = rank::logits(&model, &ctx, &cands).unwrap();
        assert_near(&once, &want, 1e-5, &format!("context-once, case {case}"));
    }
}
