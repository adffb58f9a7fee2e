// The model's dense transform on raw dense values: identity, or Criteo's ln(1 + max(x, 0)).

// p: DenseParams: the prelude (contract.rs).
@group(0) @binding(1) var<storage, read> raw: array<f32>;
@group(0) @binding(2) var<storage, read_write> transformed: array<f32>;

// ln(1 + x) accurate for small x, as Rust's ln_1p.
fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    if (u == 1.0) {
        return x;
    }
    return log(u) * x / (u - 1.0);
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * MAX_GROUPS * GROUP;
    if (i >= p.n) {
        return;
    }
    var x = raw[i];
    if (p.transform == 1u) {
        x = log1p(max(x, 0.0));
    }
    transformed[i] = x;
}
