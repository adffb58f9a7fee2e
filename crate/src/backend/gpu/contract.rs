//! The contract between the host and the WGSL kernels, written once, in Rust.
//!
//! Every constant both sides depend on (the hash's, from [`crate::robe`]; the embedding kinds and
//! key modes; the field table's no-offsets mark; workgroup, tile and top-k sizes) and every struct
//! that crosses the boundary (each kernel's parameters, the field table's entries) is declared
//! here and written into a WGSL prelude put before the kernel's own text ([`Shader::new`]), so
//! the `.wgsl` files hold code only and cannot drift from the Rust side: a constant or struct
//! written again by hand in a `.wgsl` file is a redefinition, which fails the pipeline build and
//! the naga check below. The tests validate every kernel's full source with naga (no GPU needed)
//! and compare the layout naga gives each mirrored struct and constant with the Rust one.

use crate::config::EmbeddingConfig;
use crate::robe::{HashVariant, KeyMode, limbs};
use std::fmt::Write;

/// Each dispatch's parameters sit in their own slot of one uniform buffer: at most this many
/// bytes bound, slots this far apart (the minimum uniform offset alignment).
pub(super) const PARAM_BYTES: usize = 64;
pub(super) const PARAM_STRIDE: u64 = 256;
/// The field table's offsets base of a field that sends no offsets (one value per row: row r's
/// value is `values[values_base + r]`, as for categorical fields).
pub(super) const ONE_PER_ROW: u32 = u32::MAX;
/// Threads per workgroup of the one-thread-per-item kernels (`GROUP` in WGSL).
pub(super) const GROUP: u32 = 64;
/// Workgroups per grid dimension that every adapter allows; longer grids spill into y and the
/// kernels index `x + y · MAX_GROUPS · GROUP`.
pub(super) const MAX_GROUPS: u32 = 65535;
/// Logits each top-k workgroup sorts (`topk.wgsl`).
pub(super) const TOPK_SPAN: u32 = 1024;
/// Rows per workgroup of the one-output layer (`gemv.wgsl`).
pub(super) const GEMV_ROWS: u32 = 32;

/// How the embedding kernels find a value's slots (`Params.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Kind {
    UmaV1 = 0,
    NewRobez = 1,
    /// One table per field (no hashing into a shared array).
    Full = 2,
    Independent = 3,
}

impl Kind {
    pub(super) fn of(embedding: &EmbeddingConfig) -> Kind {
        match embedding {
            EmbeddingConfig::Robe { hash: HashVariant::UmaV1, .. } => Kind::UmaV1,
            EmbeddingConfig::Robe { hash: HashVariant::NewRobez, .. } => Kind::NewRobez,
            EmbeddingConfig::Robe { hash: HashVariant::Independent, .. } => Kind::Independent,
            EmbeddingConfig::Full { .. } => Kind::Full,
        }
    }
}

/// How a (field, value) becomes its key (`Params.key_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum KeyCode {
    Raw = 0,
    Dictionary = 1,
}

impl KeyCode {
    pub(super) fn of(mode: &KeyMode) -> KeyCode {
        match mode {
            KeyMode::Raw => KeyCode::Raw,
            KeyMode::Dictionary { .. } => KeyCode::Dictionary,
        }
    }
}

/// The constants of every kernel's prelude, by WGSL name.
const CONSTANTS: [(&str, u32); 16] = [
    ("P", limbs::P),
    ("TWO32_MOD_P", limbs::TWO32_MOD_P),
    ("R1", limbs::R1),
    ("R2", limbs::R2),
    ("R3", limbs::R3),
    ("KIND_UMA_V1", Kind::UmaV1 as u32),
    ("KIND_NEW_ROBEZ", Kind::NewRobez as u32),
    ("KIND_FULL", Kind::Full as u32),
    ("KIND_INDEPENDENT", Kind::Independent as u32),
    ("KEY_RAW", KeyCode::Raw as u32),
    ("KEY_DICTIONARY", KeyCode::Dictionary as u32),
    ("ONE_PER_ROW", ONE_PER_ROW),
    ("GROUP", GROUP),
    ("MAX_GROUPS", MAX_GROUPS),
    ("TOPK_SPAN", TOPK_SPAN),
    ("GEMV_ROWS", GEMV_ROWS),
];

/// A `#[repr(C)]` struct of `u32`s with a WGSL twin: its fields by name and byte offset.
pub(super) trait Mirrored: bytemuck::Pod {
    const FIELDS: &'static [(&'static str, usize)];
}

/// Declares `#[repr(C)]` `Pod` structs of `u32` fields and their [`Mirrored`] field lists (the
/// WGSL text is written from that list, so the two cannot differ). Parameter structs must fit a
/// parameter slot.
macro_rules! mirrored {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident),* $(,)? })*) => {$(
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
        pub(super) struct $name {
            $($(#[$fdoc])* pub $field: u32),*
        }
        impl Mirrored for $name {
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field))),*];
        }
        const _: () = assert!(std::mem::size_of::<$name>() <= PARAM_BYTES);
    )*};
}

mirrored! {
    /// One listed field of a request, for the kernels that hash (`array<FieldEntry>`).
    FieldEntry {
        /// Its index in the config (the high word of a raw key).
        field,
        /// 1 for mean pooling.
        mean,
        /// Where its CSR offsets start in the offsets buffer, or [`ONE_PER_ROW`].
        offsets_base,
        /// Where its values start in the values buffer.
        values_base,
        /// Its dictionary table offset, low and high word.
        key_lo,
        key_hi,
        /// Full tables: its table's first slot and its rows.
        full_base,
        full_rows,
    }

    /// `embed.wgsl`: gathers and pools the listed fields of rows `row_start..row_start + rows`
    /// into vectors `vec_base..` of `nvec` per row.
    EmbedParams {
        rows, nlist, d, nvec,
        vec_base, kind, block_len, blocks,
        range, key_mode, row_start,
    }

    /// `indices.wgsl`: the first slot of each block of `n` (field, value) pairs.
    IndicesParams { n, blocks, kind, range, key_mode, d }

    /// `layer.wgsl` (the GEMM and GEMV kernels): `c = act(a · wᵀ + bias)` on `m` rows.
    LayerParams { m, n, k, lda, ldc, relu, a_off, c_off }

    /// `dense.wgsl`: the dense transform of `n` values (`transform` 1 = log1p).
    DenseParams { n, transform }

    /// `interact.wgsl`: the top MLP's input of `rows` rows.
    InteractParams { rows, nvec, d, ncopy, npairs, width }

    /// `fold.wgsl`: the context folded into the first top layer. `lead` is the width of the
    /// bottom output at the start of the top MLP's input: `d`, or 0 without a bottom MLP.
    FoldParams { top1, d, lead, nctx, nq, width, top0 }

    /// `topk.wgsl`: the best `keep` of each span of `n` logits.
    TopkParams { n, keep }
}

/// A kernel's full WGSL source, its label, and the Rust layout of its parameters.
pub(super) struct Shader {
    pub label: &'static str,
    pub source: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub params: &'static [(&'static str, usize)],
    #[cfg_attr(not(test), allow(dead_code))]
    pub params_size: usize,
}

impl Shader {
    /// The prelude (every constant, `FieldEntry`, the kernel's `Params` as `p` at binding 0, then
    /// `variant`: constants of this build of the kernel, such as tile sizes), then `parts`.
    pub(super) fn new<P: Mirrored>(label: &'static str, variant: &[(&str, u32)], parts: &[&str]) -> Shader {
        let mut s = String::from("// Prelude written by backend/gpu/contract.rs.\n");
        for (name, value) in CONSTANTS.iter().chain(variant) {
            writeln!(s, "const {name}: u32 = {value}u;").expect("write to a string");
        }
        write_struct(&mut s, "FieldEntry", FieldEntry::FIELDS);
        write_struct(&mut s, "Params", P::FIELDS);
        s.push_str("@group(0) @binding(0) var<uniform> p: Params;\n");
        for part in parts {
            s.push('\n');
            s.push_str(part);
        }
        Shader { label, source: s, params: P::FIELDS, params_size: std::mem::size_of::<P>() }
    }
}

fn write_struct(s: &mut String, name: &str, fields: &[(&str, usize)]) {
    let fields: Vec<String> = fields.iter().map(|(f, _)| format!("{f}: u32")).collect();
    writeln!(s, "struct {name} {{ {} }}", fields.join(", ")).expect("write to a string");
}

/// A parameter struct as the words of its slot (the rest zero).
pub(super) fn param_words<P: Mirrored>(params: &P) -> [u32; PARAM_BYTES / 4] {
    let mut words = [0u32; PARAM_BYTES / 4];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..std::mem::size_of::<P>()]
        .copy_from_slice(bytemuck::bytes_of(params));
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::pipelines::Kernels;
    use naga::{Expression, Literal, TypeInner};

    /// Parses and validates `shader` with naga, then checks what it declares against the Rust
    /// side: every prelude constant with its value, `FieldEntry` and `Params` with the Rust
    /// fields at the Rust offsets and the Rust size, and `p` at binding 0 of type `Params`.
    fn check(shader: &Shader) -> Result<(), String> {
        let fail = |what: String| format!("{}: {what}", shader.label);
        let module =
            naga::front::wgsl::parse_str(&shader.source).map_err(|e| fail(e.emit_to_string(&shader.source)))?;
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
            .validate(&module)
            .map_err(|e| fail(e.emit_to_string(&shader.source)))?;
        for (name, want) in CONSTANTS {
            let c = module.constants.iter().map(|(_, c)| c).find(|c| c.name.as_deref() == Some(name));
            let got = c.map(|c| &module.global_expressions[c.init]);
            if !matches!(got, Some(Expression::Literal(Literal::U32(v))) if *v == want) {
                return Err(fail(format!("constant {name} is {got:?}, Rust says {want}u")));
            }
        }
        let layout = |name: &str| {
            module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).and_then(|(h, t)| match &t.inner {
                TypeInner::Struct { members, span } => {
                    let fields: Vec<(String, usize)> =
                        members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize)).collect();
                    Some((h, fields, *span as usize))
                }
                _ => None,
            })
        };
        let rust = |fields: &[(&str, usize)], size| {
            (fields.iter().map(|&(f, o)| (f.to_string(), o)).collect::<Vec<_>>(), size)
        };
        let entry = std::mem::size_of::<FieldEntry>();
        for (name, want) in
            [("FieldEntry", rust(FieldEntry::FIELDS, entry)), ("Params", rust(shader.params, shader.params_size))]
        {
            let Some((_, fields, size)) = layout(name) else {
                return Err(fail(format!("no struct {name}")));
            };
            if (&fields, size) != (&want.0, want.1) {
                return Err(fail(format!(
                    "struct {name} is {fields:?} in {size} bytes in WGSL, {:?} in {} in Rust",
                    want.0, want.1
                )));
            }
        }
        let params = layout("Params").map(|l| l.0);
        let p = module
            .global_variables
            .iter()
            .map(|(_, v)| v)
            .find(|v| v.binding.as_ref().is_some_and(|b| b.group == 0 && b.binding == 0));
        if p.map(|v| (v.name.as_deref(), Some(v.ty))) != Some((Some("p"), params)) {
            return Err(fail("binding 0 is not `p: Params`".into()));
        }
        Ok(())
    }

    /// Every kernel's source as the device gets it, both GEMM staging depths.
    fn shaders() -> Vec<Shader> {
        let mut all = Vec::new();
        for tk in [8, 16] {
            Kernels::build(tk, |shader| all.push(shader));
        }
        all
    }

    #[test]
    fn every_kernel_validates_and_matches_the_rust_layouts() {
        let shaders = shaders();
        assert_eq!(shaders.len(), 18);
        for shader in &shaders {
            check(shader).unwrap_or_else(|e| panic!("{e}\n--- source ---\n{}", shader.source));
        }
    }

    /// The check is not vacuous: a constant or struct written again by hand in a kernel, or a
    /// WGSL struct whose fields differ from the Rust one's, fails it.
    #[test]
    fn hand_edits_of_the_contract_fail_the_check() {
        let embed = || shaders().into_iter().find(|s| s.label == "embed").unwrap();
        let edit = |f: &dyn Fn(&str) -> String| {
            let mut s = embed();
            s.source = f(&s.source);
            check(&s)
        };
        assert!(check(&embed()).is_ok());
        // A constant repeated in a .wgsl file, even with the right value.
        let e = edit(&|s| format!("{s}\nconst P: u32 = 2038074743u;\n")).unwrap_err();
        assert!(e.contains("redefinition of `P`"), "{e}");
        // A constant whose generated value changed.
        let e = edit(&|s| s.replace("const R2: u32 = 1825252241u;", "const R2: u32 = 1825252240u;")).unwrap_err();
        assert!(e.contains("constant R2"), "{e}");
        // A struct repeated by hand.
        let e = edit(&|s| format!("{s}\nstruct FieldEntry {{ field: u32 }}\n")).unwrap_err();
        assert!(e.contains("redefinition of `FieldEntry`"), "{e}");
        // Params with two fields swapped: valid WGSL, wrong offsets.
        let e = edit(&|s| s.replacen("rows: u32, nlist: u32", "nlist: u32, rows: u32", 1)).unwrap_err();
        assert!(e.contains("struct Params"), "{e}");
        // A field table entry one word longer than Rust's.
        let e = edit(&|s| s.replacen("full_rows: u32 }", "full_rows: u32, extra: u32 }", 1)).unwrap_err();
        assert!(e.contains("struct FieldEntry"), "{e}");
    }

    #[test]
    fn kinds_and_key_modes_follow_the_config() {
        let robe = |hash| EmbeddingConfig::Robe { m: 100, z: 4, hash };
        assert_eq!(Kind::of(&robe(HashVariant::UmaV1)), Kind::UmaV1);
        assert_eq!(Kind::of(&robe(HashVariant::NewRobez)), Kind::NewRobez);
        assert_eq!(Kind::of(&robe(HashVariant::Independent)), Kind::Independent);
        assert_eq!(Kind::of(&EmbeddingConfig::Full { rows: vec![3] }), Kind::Full);
        assert_eq!(KeyCode::of(&KeyMode::Raw), KeyCode::Raw);
        assert_eq!(KeyCode::of(&KeyMode::Dictionary { table_sizes: vec![1] }), KeyCode::Dictionary);
    }

    #[test]
    fn parameters_fill_the_front_of_their_slot() {
        let words = param_words(&DenseParams { n: 7, transform: 1 });
        assert_eq!(words[..3], [7, 1, 0]);
    }
}
