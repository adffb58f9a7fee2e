// The model's dense transform on raw dense values: identity, or Criteo's ln(1 + max(x, 0)).

struct Params {
    n: u32, transform: u32, _p0: u32, _p1: u32,
    _p2: u32, _p3: u32, _p4: u32, _p5: u32,
    _p6: u32, _p7: u32, _p8: u32, _p9: u32,
    _p10: u32, _p11: u32, _p12: u32, _p13: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    var x = raw[i];
    if (p.transform == 1u) {
        x = log1p(max(x, 0.0));
    }
    transformed[i] = x;
}
