//! The wgpu backend: WGSL compute shaders for the hashed lookups (index computation included),
//! pooling, the MLPs and the interaction, on WebGPU in the browser and Vulkan, Metal or DX12
//! natively.
//!
//! Each request is one submission: the copies of its inputs into place, every dispatch, and the
//! copy of the results into a mappable buffer, then one asynchronous read-back (`map_async`;
//! natively `device.poll` drives it, in the browser the promise does). The inputs (CSR values
//! straight from the caller's slices, no offsets for categorical fields, and every dispatch's
//! parameters) are written once into one upload buffer, natively a mapped one (`Upload`).
//! Pipelines are built once; buffers are grow-only and reused across calls. Large requests run in
//! row chunks inside the same submission so every binding stays within the adapter's limits.
//!
//! Ranking mirrors [`crate::rank`]: the context's bottom MLP, embeddings and its fold into the
//! first top layer (`fold.wgsl`) run once per request; then per candidate only its embeddings,
//! their dots among themselves, the folded first layer and the rest of the top MLP. Top-k runs on
//! the GPU (`topk.wgsl`) when that shrinks the read-back; otherwise the logits come back and the
//! CPU selects.
//!
//! Dense layers run on `gemm.wgsl`, in 128×128 output tiles of 256 threads where a layer fills
//! them and 64×64 tiles of 64 threads where it is short or narrow, and the one-output last layer
//! on `gemv.wgsl`. Natively, `POCKETREC_GPU_PROFILE=1` prints each request's host phases (wall
//! clock) and GPU time per kernel to stderr (`profile.rs`).

use crate::Error;
use crate::batch::Batch;
use crate::config::{EmbeddingConfig, FieldKind};
use crate::model::Dlrm;
use crate::rank::{self, Candidates, Context, Ranked};
use crate::robe::{HashVariant, KeyMode, limbs};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use wgpu::util::DeviceExt;

const HASH: &str = include_str!("hash.wgsl");
const EMBED: &str = include_str!("embed.wgsl");
const INDICES: &str = include_str!("indices.wgsl");
const LAYER: &str = include_str!("layer.wgsl");
const GEMM: &str = include_str!("gemm.wgsl");
const GEMV: &str = include_str!("gemv.wgsl");
const DENSE: &str = include_str!("dense.wgsl");
const INTERACT: &str = include_str!("interact.wgsl");
const FOLD: &str = include_str!("fold.wgsl");
const TOPK: &str = include_str!("topk.wgsl");

mod profile;
use profile::Profiler;

/// Where the CSR of each listed field lands in the shared offsets and values buffers, and the
/// slices that fill them, in order: nothing is copied until they are written into the upload
/// buffer. A field with one value per row (categorical, as validated) sends no offsets.
#[derive(Default)]
struct Csr<'a> {
    /// Per field: (config index, where its offsets start or `None` for one value per row, where
    /// its values start), for [`GpuBackend::field_table`].
    list: Vec<(usize, Option<usize>, usize)>,
    offsets: Vec<&'a [u32]>,
    values: Vec<&'a [u32]>,
    offset_words: usize,
    value_words: usize,
}

impl<'a> Csr<'a> {
    fn push(&mut self, f: usize, one_per_row: bool, offsets: &'a [u32], values: &'a [u32]) {
        let obase = (!one_per_row).then_some(self.offset_words);
        self.list.push((f, obase, self.value_words));
        if !one_per_row {
            self.offsets.push(offsets);
            self.offset_words += offsets.len();
        }
        self.values.push(values);
        self.value_words += values.len();
    }
}

/// The field table's offsets base of a field without offsets (`hash.wgsl`'s `ONE_PER_ROW`).
const ONE_PER_ROW: u32 = u32::MAX;

/// Every kernel takes 16 u32 parameters; each dispatch's sit in their own 256-byte slot of one
/// uniform buffer (the minimum uniform offset alignment).
const PARAM_WORDS: usize = 16;
const PARAM_STRIDE: u64 = 256;
/// Words per field in the field tables of `hash.wgsl`.
const FIELD_WORDS: usize = 8;
/// Logits each top-k workgroup sorts (`topk.wgsl`).
const TOPK_SPAN: usize = 1024;
/// The most rows one chunk of dispatches covers (the interaction grid's y dimension).
const MAX_CHUNK_ROWS: usize = 32768;
/// Workgroups per grid dimension that every adapter allows.
const MAX_GROUPS: usize = 65535;

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
}

/// A compute pipeline and the layout of its bind group 0.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    label: &'static str,
}

impl Kernel {
    fn new(device: &wgpu::Device, label: &'static str, source: &str) -> Kernel {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Kernel { pipeline, layout, label }
    }
}

struct Kernels {
    embed: Kernel,
    indices: Kernel,
    /// The GEMM on 128×128 tiles (256 threads), and on 64×64 tiles (64 threads) for layers too
    /// short or narrow to fill the large ones; the one-output layer.
    gemm: Kernel,
    gemm64: Kernel,
    gemv: Kernel,
    dense: Kernel,
    interact: Kernel,
    fold: Kernel,
    topk: Kernel,
}

/// A buffer that only grows (to the next power of two), so steady-state calls allocate nothing.
struct Grow {
    buffer: wgpu::Buffer,
    label: &'static str,
    usage: wgpu::BufferUsages,
}

impl Grow {
    fn new(device: &wgpu::Device, label: &'static str, usage: wgpu::BufferUsages) -> Grow {
        Grow { buffer: Self::create(device, label, usage, 256), label, usage }
    }
    fn storage(device: &wgpu::Device, label: &'static str) -> Grow {
        Grow::new(device, label, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC)
    }
    fn create(device: &wgpu::Device, label: &'static str, usage: wgpu::BufferUsages, size: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
    }
    fn ensure(&mut self, device: &wgpu::Device, bytes: usize) -> &wgpu::Buffer {
        let bytes = (bytes as u64).max(256);
        if self.buffer.size() < bytes {
            self.buffer = Self::create(device, self.label, self.usage, bytes.next_power_of_two());
        }
        &self.buffer
    }
}

/// What a request uploads: per destination buffer, the slices of words that fill it from its
/// start, back to back.
type Writes<'a, 'b> = [(&'a wgpu::Buffer, &'b [&'b [u32]])];

/// The one buffer every request's inputs (and dispatch parameters) travel through, copied on the
/// GPU into the buffers the kernels bind at the start of the request's own submission. Natively it
/// is host-visible (`MAP_WRITE`) and written in place while mapped; it is mapped again as soon as
/// the submission is queued, so it is ready by the next request (whose read-back waited for the
/// same submission). Unlike `queue.write_buffer` per input, nothing allocates a staging buffer per
/// call and the inputs are copied once on the host, straight from the caller's slices. In the
/// browser, where a mapped range is a copy in the wasm heap anyway, the inputs are gathered in a
/// reused host vector and sent with one `queue.write_buffer`.
struct Upload {
    buffer: wgpu::Buffer,
    /// Written in place while mapped (else through `host` and `queue.write_buffer`).
    in_place: bool,
    /// Whether `buffer` is mapped now.
    mapped: bool,
    /// The map asked for after the last submission, not yet seen done.
    pending: Option<MapDone>,
    host: Vec<u8>,
}

impl Upload {
    fn new(device: &wgpu::Device, in_place: bool) -> Upload {
        let buffer = Self::create(device, in_place, 256);
        Upload { buffer, in_place, mapped: in_place, pending: None, host: Vec::new() }
    }

    fn create(device: &wgpu::Device, in_place: bool, size: u64) -> wgpu::Buffer {
        let usage = match in_place {
            true => wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            false => wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        };
        let desc = wgpu::BufferDescriptor { label: Some("upload"), size, usage, mapped_at_creation: in_place };
        device.create_buffer(&desc)
    }

    /// Writes the first `bytes` of the buffer through `fill`, which gets `put(at, data)` to write
    /// `data` at byte `at` (each byte once, nothing read back), and leaves the buffer unmapped for
    /// the submission that copies out of it.
    async fn write(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        bytes: usize,
        profiler: Option<&mut Profiler>,
        fill: impl FnOnce(&mut dyn FnMut(usize, &[u8])),
    ) -> Result<(), Error> {
        if !self.in_place {
            if self.host.len() < bytes {
                self.host.resize(bytes, 0);
            }
            let host = &mut self.host;
            fill(&mut |at, data| host[at..at + data.len()].copy_from_slice(data));
            if self.buffer.size() < bytes as u64 {
                self.buffer = Self::create(device, false, (bytes as u64).max(256).next_power_of_two());
            }
            if bytes > 0 {
                queue.write_buffer(&self.buffer, 0, &self.host[..bytes]);
            }
            return Ok(());
        }
        self.ready(device, bytes as u64).await?;
        if let Some(p) = profiler {
            p.phase("map");
        }
        if bytes > 0 {
            let slice = self.buffer.slice(..bytes as u64);
            let mut view = slice.get_mapped_range_mut().map_err(|e| gpu_err("mapping the upload buffer", e))?;
            fill(&mut |at, data| view.slice(at..at + data.len()).copy_from_slice(data));
        }
        self.buffer.unmap();
        self.mapped = false;
        Ok(())
    }

    /// Makes the buffer mapped and at least `bytes` long (natively, waiting for the last
    /// submission if its map is still pending).
    async fn ready(&mut self, device: &wgpu::Device, bytes: u64) -> Result<(), Error> {
        if let Some(done) = self.pending.take() {
            #[cfg(not(target_arch = "wasm32"))]
            if !done.is_done() {
                device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_err("waiting for the GPU", e))?;
            }
            // A failed map (the device lost, say) is asked again below.
            self.mapped = done.await.is_ok();
        }
        if self.buffer.size() < bytes {
            if self.mapped {
                self.buffer.unmap();
            }
            self.buffer = Self::create(device, true, bytes.max(256).next_power_of_two());
            self.mapped = true;
        }
        if !self.mapped {
            let done = map(&self.buffer.slice(..), wgpu::MapMode::Write);
            #[cfg(not(target_arch = "wasm32"))]
            device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_err("waiting for the GPU", e))?;
            done.await.map_err(|e| gpu_err("mapping the upload buffer", e))?;
            self.mapped = true;
        }
        Ok(())
    }

    /// Once the submission that reads the buffer is queued: asks for it to be mapped again when
    /// that submission is done.
    fn submitted(&mut self) {
        if self.in_place {
            self.pending = Some(map(&self.buffer.slice(..), wgpu::MapMode::Write));
        }
    }

}

/// Per-request buffers, reused across calls.
struct Scratch {
    upload: Upload,
    params: Grow,
    fields_a: Grow,
    fields_b: Grow,
    offsets: Grow,
    values: Grow,
    dense_raw: Grow,
    dense_x: Grow,
    act: [Grow; 2],
    vectors: Grow,
    top_in: Grow,
    pairs: Grow,
    fold_index: Grow,
    ctx_vectors: Grow,
    folded: Grow,
    folded_bias: Grow,
    logits: Grow,
    topk: Grow,
    staging: Grow,
}

/// The model's parameters on the device.
struct ModelBuffers {
    embedding: wgpu::Buffer,
    bottom: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    top: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    /// The pairs of the full interaction, `(i, j)` for every `i > j`.
    all_pairs: wgpu::Buffer,
}

/// Embedding layout constants, shared by every kernel that hashes.
struct Layout {
    kind: u32,
    range: u32,
    block_len: u32,
    blocks: u32,
    key_mode: u32,
    /// Per config field: (table offset lo, hi, full base, full rows).
    per_field: Vec<[u32; 4]>,
}

/// One dispatch: a kernel, its parameters, its storage buffers in binding order (from 1), and
/// its workgroup grid.
struct Dispatch<'a> {
    kernel: &'a Kernel,
    params: [u32; PARAM_WORDS],
    buffers: Vec<&'a wgpu::Buffer>,
    groups: (u32, u32),
}

fn params(words: &[u32]) -> [u32; PARAM_WORDS] {
    let mut p = [0u32; PARAM_WORDS];
    p[..words.len()].copy_from_slice(words);
    p
}

/// A grid of `n` invocations in workgroups of 64, split over y past the per-dimension limit (the
/// kernels index `x + y · 65535 · 64`).
fn linear_groups(n: usize) -> (u32, u32) {
    let g = n.div_ceil(64).max(1);
    if g <= MAX_GROUPS { (g as u32, 1) } else { (MAX_GROUPS as u32, g.div_ceil(MAX_GROUPS) as u32) }
}

/// The wgpu backend of one model. Build it with [`GpuBackend::new`], then pass the same model to
/// every call (the [`crate::Scorer`] does).
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_name: String,
    software: bool,
    kernels: Kernels,
    model: ModelBuffers,
    layout: Layout,
    scratch: Scratch,
    chunk_rows: usize,
    profiler: Option<Profiler>,
}

impl GpuBackend {
    /// Finds an adapter, builds the pipelines and uploads the model.
    pub async fn new(model: &Dlrm) -> Result<GpuBackend, Error> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let cfg = &model.config;
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let embedding_bytes = model.embedding.len() as u64 * 4;
        if embedding_bytes > max_binding {
            return Err(Error::Unsupported(format!(
                "the embedding array takes {embedding_bytes} bytes, adapter {:?} binds at most {max_binding}",
                info.name
            )));
        }
        let timestamps = Profiler::wanted() && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        if Profiler::wanted() && !timestamps {
            eprintln!("POCKETREC_GPU_PROFILE: adapter {:?} has no timestamp queries, host phases only", info.name);
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pocketrec"),
                required_features: if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() },
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err("requesting a device", e))?;

        // The 128×128 GEMM stages k in slices of 16 (2 × 16 × 33 vec4s of workgroup memory)
        // where the adapter allows it, else of 8 (WebGPU's default limit is 16 KiB).
        let gemm_tk = if limits.max_compute_workgroup_storage_size >= 2 * 16 * 33 * 16 { 16 } else { 8 };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let with_hash = |src: &str| format!("{HASH}\n{src}");
        let layer = |src: &str| format!("{LAYER}\n{src}");
        let kernels = Kernels {
            embed: Kernel::new(&device, "embed", &with_hash(EMBED)),
            indices: Kernel::new(&device, "indices", &with_hash(INDICES)),
            gemm: Kernel::new(&device, "gemm", &layer(&GEMM.replace("TK: u32 = 16u", &format!("TK: u32 = {gemm_tk}u")))),
            gemm64: Kernel::new(
                &device,
                "gemm64",
                &layer(&GEMM.replace("TM: u32 = 128u", "TM: u32 = 64u").replace("TN: u32 = 128u", "TN: u32 = 64u")),
            ),
            gemv: Kernel::new(&device, "gemv", &layer(GEMV)),
            dense: Kernel::new(&device, "dense", DENSE),
            interact: Kernel::new(&device, "interact", INTERACT),
            fold: Kernel::new(&device, "fold", FOLD),
            topk: Kernel::new(&device, "topk", TOPK),
        };
        if let Some(e) = scope.pop().await {
            return Err(gpu_err("building the compute pipelines", e));
        }

        let init = |label: &str, data: &[f32]| {
            let data: &[f32] = if data.is_empty() { &[0.0] } else { data };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let layers = |ls: &[crate::model::Linear], name: &str| {
            ls.iter()
                .map(|l| {
                    let w = l.weight.as_standard_layout();
                    (init(name, w.as_slice().expect("standard layout")), init(name, l.bias.as_slice().expect("contiguous")))
                })
                .collect()
        };
        let n = cfg.interacting() as u32;
        let all_pairs: Vec<u32> = (1..n).flat_map(|i| (0..i).flat_map(move |j| [i, j])).collect();
        let model_buffers = ModelBuffers {
            embedding: init("robe.weight", &model.embedding),
            bottom: layers(&model.bottom, "bottom"),
            top: layers(&model.top, "top"),
            all_pairs: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("all pairs"),
                contents: bytemuck::cast_slice(if all_pairs.is_empty() { &[0u32, 0] } else { &all_pairs }),
                usage: wgpu::BufferUsages::STORAGE,
            }),
        };

        let lookup = model.lookup();
        // Params.kind, as hash.wgsl's KIND_* constants.
        let (kind, range) = match (&cfg.embedding, lookup.hash()) {
            (EmbeddingConfig::Robe { hash, .. }, Some(h)) => {
                let kind = match hash {
                    HashVariant::UmaV1 => 0,
                    HashVariant::NewRobez => 1,
                    HashVariant::Independent => 3,
                };
                (kind, limbs::range(h))
            }
            _ => (2, 1),
        };
        let offsets = cfg.key_mode.table_offsets();
        let d = cfg.dim as u64;
        let mut full_base = 0u64;
        let per_field = (0..cfg.fields.len())
            .map(|f| {
                let toff = offsets.get(f).copied().unwrap_or(0);
                let (base, rows) = match &cfg.embedding {
                    EmbeddingConfig::Full { rows } => {
                        let b = full_base;
                        full_base += rows[f] * d;
                        (b as u32, rows[f] as u32)
                    }
                    EmbeddingConfig::Robe { .. } => (0, 1),
                };
                [toff as u32, (toff >> 32) as u32, base, rows]
            })
            .collect();
        let layout = Layout {
            kind,
            range,
            block_len: lookup.block_len() as u32,
            blocks: lookup.blocks() as u32,
            key_mode: matches!(cfg.key_mode, KeyMode::Dictionary { .. }) as u32,
            per_field,
        };

        // Widest per-row activation of any chunk, to keep every binding under the limit.
        let nq_max = cfg.fields.len();
        let widest = [
            cfg.bottom.iter().chain(&cfg.top).copied().max().unwrap_or(1),
            cfg.interacting() * cfg.dim,
            nq_max * cfg.dim + nq_max * nq_max.saturating_sub(1) / 2,
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        let fit = (max_binding / (4 * widest as u64)).max(64) as usize;
        let chunk_rows = if fit >= MAX_CHUNK_ROWS { MAX_CHUNK_ROWS } else { 1 << fit.ilog2() };

        let s = |label| Grow::storage(&device, label);
        let scratch = Scratch {
            upload: Upload::new(&device, cfg!(not(target_arch = "wasm32"))),
            params: Grow::new(&device, "params", wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST),
            fields_a: s("fields a"),
            fields_b: s("fields b"),
            offsets: s("offsets"),
            values: s("values"),
            dense_raw: s("dense raw"),
            dense_x: s("dense"),
            act: [s("act 0"), s("act 1")],
            vectors: s("vectors"),
            top_in: s("top input"),
            pairs: s("pairs"),
            fold_index: s("fold index"),
            ctx_vectors: s("context vectors"),
            folded: s("folded"),
            folded_bias: s("folded bias"),
            logits: s("logits"),
            topk: s("top-k"),
            staging: Grow::new(&device, "staging", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        };
        let profiler = Profiler::wanted().then(|| Profiler::new(&device, &queue, timestamps));
        Ok(GpuBackend {
            device,
            queue,
            // Browsers hide the adapter's name (an empty string) for privacy.
            adapter_name: match info.name.trim() {
                "" => format!("{:?}", info.backend),
                name => format!("{name} ({:?})", info.backend),
            },
            software: info.device_type == wgpu::DeviceType::Cpu,
            kernels,
            model: model_buffers,
            layout,
            scratch,
            chunk_rows,
            profiler,
        })
    }

    /// The adapter's name and API, e.g. `"llvmpipe (LLVM 19.1.7, 256 bits) (Vulkan)"`.
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Whether the adapter is a software rasterizer on the CPU (lavapipe, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.software
    }

    /// Sends the inputs as in the browser (gathered on the host, then one `queue.write_buffer`)
    /// when `in_place` is false, else writes them into the mapped upload buffer (the native
    /// default): lets the tests run the browser's path on a native adapter.
    #[doc(hidden)]
    pub fn set_in_place_uploads(&mut self, in_place: bool) {
        self.scratch.upload = Upload::new(&self.device, in_place);
    }

    /// Rows per chunk of dispatches (each chunk's activations fit one binding).
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// A field table for `hash.wgsl`: per listed field, its config index, pooling, and where its
    /// CSR starts in the offsets and values buffers (no offsets: one value per row).
    fn field_table(&self, model: &Dlrm, list: &[(usize, Option<usize>, usize)]) -> Vec<u32> {
        let mut t = Vec::with_capacity(list.len() * FIELD_WORDS);
        for &(f, obase, vbase) in list {
            let [lo, hi, base, rows] = self.layout.per_field[f];
            let mean = (model.config.fields[f].kind == FieldKind::BagMean) as u32;
            let obase = obase.map_or(ONE_PER_ROW, |o| o as u32);
            t.extend([f as u32, mean, obase, vbase as u32, lo, hi, base, rows]);
        }
        t
    }

    /// The first slot of every block of each (field, value), computed on the GPU by the same
    /// hash the gather uses: `out[i · blocks + c]`.
    pub async fn block_offsets(&mut self, model: &Dlrm, fields: &[u32], values: &[u32]) -> Result<Vec<u32>, Error> {
        let nf = model.config.fields.len();
        if fields.len() != values.len() || fields.iter().any(|&f| f as usize >= nf) {
            return Err(Error::Request(format!("need one value per field index, each below {nf}")));
        }
        let n = fields.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(p) = &mut self.profiler {
            p.start();
        }
        let blocks = self.layout.blocks as usize;
        let table = self.field_table(model, &(0..nf).map(|f| (f, Some(0), 0)).collect::<Vec<_>>());
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.fields_a.ensure(device, table.len() * 4);
        s.offsets.ensure(device, n * 4);
        s.values.ensure(device, n * 4);
        s.logits.ensure(device, n * blocks * 4);
        let writes =
            [(&s.fields_a.buffer, &[&table[..]][..]), (&s.offsets.buffer, &[fields]), (&s.values.buffer, &[values])];
        let l = &self.layout;
        let dispatch = Dispatch {
            kernel: &self.kernels.indices,
            params: params(&[n as u32, l.blocks, l.kind, l.range, l.key_mode, model.config.dim as u32]),
            buffers: vec![&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &s.logits.buffer],
            groups: linear_groups(n),
        };
        let bytes = n * blocks * 4;
        let prof = &mut self.profiler;
        let (upload, staging) = (&mut s.upload, &mut s.staging);
        let (result, ds) = (&s.logits.buffer, [dispatch]);
        submit(device, queue, upload, &mut s.params, staging, &writes, &ds, result, bytes, prof.as_mut()).await?;
        let out = read_back(device, &s.staging.buffer, bytes, prof.as_mut()).await?;
        if let Some(p) = prof {
            p.phase("read back");
            p.report(device, &format!("indices, {n} values"));
        }
        Ok(out)
    }

    /// Logits of a validated, non-empty batch: full rows, as [`Dlrm::forward`].
    pub async fn logits(&mut self, model: &Dlrm, batch: &Batch) -> Result<Vec<f32>, Error> {
        let cfg = &model.config;
        let (rows, nd, d) = (batch.rows, cfg.dense.len(), cfg.dim);
        let nvec = cfg.interacting();
        if let Some(p) = &mut self.profiler {
            p.start();
        }
        let mut csr = Csr::default();
        for (f, fv) in batch.fields.iter().enumerate() {
            csr.push(f, cfg.fields[f].kind == FieldKind::Categorical, &fv.offsets, &fv.values);
        }
        let table = self.field_table(model, &csr.list);
        let chunk = self.chunk_rows.min(rows);
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.fields_a.ensure(device, table.len() * 4);
        s.offsets.ensure(device, csr.offset_words * 4);
        s.values.ensure(device, csr.value_words * 4);
        s.dense_raw.ensure(device, rows * nd * 4);
        s.dense_x.ensure(device, rows * nd * 4);
        let widest = cfg.bottom.iter().chain(&cfg.top).copied().max().unwrap_or(1);
        s.act[0].ensure(device, chunk * widest * 4);
        s.act[1].ensure(device, chunk * widest * 4);
        s.vectors.ensure(device, chunk * nvec * d * 4);
        s.top_in.ensure(device, chunk * cfg.top[0] * 4);
        s.logits.ensure(device, rows * 4);
        let dense = [bytemuck::cast_slice(&batch.dense[..rows * nd])];
        let writes = [
            (&s.fields_a.buffer, &[&table[..]][..]),
            (&s.offsets.buffer, &csr.offsets),
            (&s.values.buffer, &csr.values),
            (&s.dense_raw.buffer, &dense),
        ];

        let k = &self.kernels;
        let l = &self.layout;
        let mut ds = vec![Dispatch {
            kernel: &k.dense,
            params: params(&[(rows * nd) as u32, (cfg.dense_transform == crate::DenseTransform::Log1p) as u32]),
            buffers: vec![&s.dense_raw.buffer, &s.dense_x.buffer],
            groups: linear_groups(rows * nd),
        }];
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start);
            let act = [&s.act[0].buffer, &s.act[1].buffer];
            // Bottom MLP; the last layer writes vector 0 of each row.
            mlp(&mut ds, k, &self.model.bottom, &cfg.bottom, m, true, (&s.dense_x.buffer, start * nd), act, (&s.vectors.buffer, 0, nvec * d));
            let bufs = [&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &self.model.embedding, &s.vectors.buffer];
            ds.push(embed(&k.embed, l, bufs, [m, cfg.fields.len(), d, nvec, 1, start]));
            let width = cfg.top[0];
            ds.push(Dispatch {
                kernel: &k.interact,
                params: params(&[m as u32, nvec as u32, d as u32, 1, (nvec * (nvec - 1) / 2) as u32, width as u32]),
                buffers: vec![&self.model.all_pairs, &s.vectors.buffer, &s.top_in.buffer],
                groups: (width.div_ceil(64) as u32, m as u32),
            });
            mlp(&mut ds, k, &self.model.top, &cfg.top, m, false, (&s.top_in.buffer, 0), act, (&s.logits.buffer, start, 1));
            start += m;
        }
        let prof = &mut self.profiler;
        let (upload, staging, result) = (&mut s.upload, &mut s.staging, &s.logits.buffer);
        submit(device, queue, upload, &mut s.params, staging, &writes, &ds, result, rows * 4, prof.as_mut()).await?;
        let out = read_back(device, &s.staging.buffer, rows * 4, prof.as_mut()).await?;
        if let Some(p) = prof {
            p.phase("read back");
            p.report(device, &format!("full rows, {rows} rows"));
        }
        Ok(out)
    }

    /// Runs only the top MLP's second layer (512 -> 256 on the kaggle preset) on `rows` rows of
    /// the scratch activations, whatever they hold, in row chunks in one submission, and waits
    /// for it: the rank bench's measure of the GEMM kernel through this backend. Returns the
    /// layer's (inputs, outputs).
    #[doc(hidden)]
    pub async fn top_layer_only(&mut self, model: &Dlrm, rows: usize) -> Result<(usize, usize), Error> {
        let top = &model.config.top;
        if top.len() < 3 || rows == 0 {
            return Err(Error::Request("needs rows and a top MLP of two layers or more".into()));
        }
        let (k_in, n) = (top[1], top[2]);
        let chunk = self.chunk_rows.min(rows);
        if let Some(p) = &mut self.profiler {
            p.start();
        }
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.act[0].ensure(device, chunk * k_in * 4);
        s.act[1].ensure(device, chunk * n * 4);
        let (w, b) = &self.model.top[1];
        let mut ds = Vec::new();
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start);
            ds.push(linear(&self.kernels, [m, n, k_in, k_in, n, 1, 0, 0], [&s.act[0].buffer, w, b, &s.act[1].buffer]));
            start += m;
        }
        let prof = &mut self.profiler;
        let (upload, staging, result) = (&mut s.upload, &mut s.staging, &s.act[1].buffer);
        submit(device, queue, upload, &mut s.params, staging, &[], &ds, result, 4, prof.as_mut()).await?;
        read_back::<u32>(device, &s.staging.buffer, 4, prof.as_mut()).await?;
        if let Some(p) = prof {
            p.phase("read back");
            p.report(device, &format!("one top layer, {rows} rows"));
        }
        Ok((k_in, n))
    }

    /// Logits of every candidate of a request, in candidate order, context-once (as
    /// [`crate::rank::logits`] on the CPU).
    pub async fn rank_logits(&mut self, model: &Dlrm, context: &Context, candidates: &Candidates) -> Result<Vec<f32>, Error> {
        rank::validate(&model.config, context, candidates)?;
        if candidates.rows == 0 {
            return Ok(Vec::new());
        }
        self.run_rank(model, context, candidates, None).await.map(|r| match r {
            RankOut::Logits(l) => l,
            RankOut::Winners(_) => unreachable!("no top-k asked"),
        })
    }

    /// The `k` best candidates of a validated request with `k >= 1` and at least one candidate.
    pub async fn rank(&mut self, model: &Dlrm, context: &Context, candidates: &Candidates, k: usize) -> Result<Vec<Ranked>, Error> {
        let n = candidates.rows;
        let keep = k.min(TOPK_SPAN);
        let groups = n.div_ceil(TOPK_SPAN);
        // Top-k on the GPU when the read-back is large and it shrinks it at least fourfold.
        let on_gpu = n >= 4096 && k <= TOPK_SPAN / 4 && 8 * groups * keep <= n;
        match self.run_rank(model, context, candidates, on_gpu.then_some(keep)).await? {
            RankOut::Logits(l) => Ok(rank::top_k(&l, k)),
            RankOut::Winners(w) => {
                let pairs: Vec<(f32, u32)> =
                    w.chunks_exact(2).filter(|p| (p[1] as usize) < n).map(|p| (f32::from_bits(p[0]), p[1])).collect();
                Ok(rank::top_k_of(&pairs, k))
            }
        }
    }

    async fn run_rank(&mut self, model: &Dlrm, context: &Context, candidates: &Candidates, topk: Option<usize>) -> Result<RankOut, Error> {
        let cfg = &model.config;
        let (rows, nd, d) = (candidates.rows, cfg.dense.len(), cfg.dim);
        let cand_fields = rank::candidate_fields(context);
        let nq = cand_fields.len();
        // Context vectors: 0 = bottom output, then the context fields; their global indices.
        let ctx_fields: Vec<usize> = (0..cfg.fields.len()).filter(|f| context.fields[*f].is_some()).collect();
        let nctx = ctx_fields.len() + 1;
        let mut fold_index: Vec<u32> = std::iter::once(0).chain(ctx_fields.iter().map(|&f| f as u32 + 1)).collect();
        fold_index.extend(cand_fields.iter().map(|&f| f as u32 + 1));
        let width = nq * d + nq * nq.saturating_sub(1) / 2;
        let top1 = cfg.top[1];
        if let Some(p) = &mut self.profiler {
            p.start();
        }

        // CSR of the context (one row per field), then of the candidates.
        let categorical = |f: usize| cfg.fields[f].kind == FieldKind::Categorical;
        let ctx_offsets: Vec<[u32; 2]> =
            ctx_fields.iter().map(|&f| [0, context.fields[f].as_ref().map_or(0, |v| v.len() as u32)]).collect();
        let mut csr = Csr::default();
        for (&f, o) in ctx_fields.iter().zip(&ctx_offsets) {
            csr.push(f, categorical(f), o, context.fields[f].as_ref().expect("context field"));
        }
        for (&f, fv) in cand_fields.iter().zip(&candidates.fields) {
            csr.push(f, categorical(f), &fv.offsets, &fv.values);
        }
        let qq_pairs: Vec<u32> = (1..nq as u32).flat_map(|a| (0..a).flat_map(move |b| [a, b])).collect();
        let ctx_table = self.field_table(model, &csr.list[..ctx_fields.len()]);
        let cand_table = self.field_table(model, &csr.list[ctx_fields.len()..]);
        let chunk = self.chunk_rows.min(rows);

        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.fields_a.ensure(device, ctx_table.len() * 4);
        s.fields_b.ensure(device, cand_table.len() * 4);
        s.offsets.ensure(device, csr.offset_words * 4);
        s.values.ensure(device, csr.value_words * 4);
        s.dense_raw.ensure(device, nd * 4);
        s.dense_x.ensure(device, nd * 4);
        s.fold_index.ensure(device, fold_index.len() * 4);
        s.pairs.ensure(device, qq_pairs.len() * 4);
        s.ctx_vectors.ensure(device, nctx * d * 4);
        s.folded.ensure(device, top1 * width * 4);
        s.folded_bias.ensure(device, top1 * 4);
        let widest = cfg.bottom.iter().chain(&cfg.top).copied().max().unwrap_or(1);
        s.act[0].ensure(device, chunk * widest * 4);
        s.act[1].ensure(device, chunk * widest * 4);
        s.vectors.ensure(device, chunk * nq * d * 4);
        s.top_in.ensure(device, chunk * width * 4);
        s.logits.ensure(device, rows * 4);
        let groups = rows.div_ceil(TOPK_SPAN);
        if let Some(keep) = topk {
            s.topk.ensure(device, groups * keep * 8);
        }
        let dense = [bytemuck::cast_slice(&context.dense)];
        let writes = [
            (&s.fields_a.buffer, &[&ctx_table[..]][..]),
            (&s.fields_b.buffer, &[&cand_table[..]]),
            (&s.offsets.buffer, &csr.offsets),
            (&s.values.buffer, &csr.values),
            (&s.dense_raw.buffer, &dense),
            (&s.fold_index.buffer, &[&fold_index[..]]),
            (&s.pairs.buffer, &[&qq_pairs[..]]),
        ];

        let k = &self.kernels;
        let l = &self.layout;
        let act = [&s.act[0].buffer, &s.act[1].buffer];
        // Once per request: the context's bottom MLP, embeddings, and the fold.
        let mut ds = vec![Dispatch {
            kernel: &k.dense,
            params: params(&[nd as u32, (cfg.dense_transform == crate::DenseTransform::Log1p) as u32]),
            buffers: vec![&s.dense_raw.buffer, &s.dense_x.buffer],
            groups: linear_groups(nd),
        }];
        mlp(&mut ds, k, &self.model.bottom, &cfg.bottom, 1, true, (&s.dense_x.buffer, 0), act, (&s.ctx_vectors.buffer, 0, nctx * d));
        if !ctx_fields.is_empty() {
            let bufs = [&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &self.model.embedding, &s.ctx_vectors.buffer];
            ds.push(embed(&k.embed, l, bufs, [1, ctx_fields.len(), d, nctx, 1, 0]));
        }
        ds.push(Dispatch {
            kernel: &k.fold,
            params: params(&[top1 as u32, d as u32, nctx as u32, nq as u32, width as u32, cfg.top[0] as u32]),
            buffers: vec![
                &s.fold_index.buffer,
                &s.ctx_vectors.buffer,
                &self.model.top[0].0,
                &self.model.top[0].1,
                &s.folded.buffer,
                &s.folded_bias.buffer,
            ],
            groups: ((width + 1).div_ceil(64) as u32, top1 as u32),
        });
        // Per candidate chunk.
        let folded_first = (&s.folded.buffer, &s.folded_bias.buffer);
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start);
            if nq > 0 {
                let bufs = [&s.fields_b.buffer, &s.offsets.buffer, &s.values.buffer, &self.model.embedding, &s.vectors.buffer];
                ds.push(embed(&k.embed, l, bufs, [m, nq, d, nq, 0, start]));
                ds.push(Dispatch {
                    kernel: &k.interact,
                    params: params(&[m as u32, nq as u32, d as u32, nq as u32, (qq_pairs.len() / 2) as u32, width as u32]),
                    buffers: vec![&s.pairs.buffer, &s.vectors.buffer, &s.top_in.buffer],
                    groups: (width.div_ceil(64).max(1) as u32, m as u32),
                });
            }
            let mut layers: Vec<(&wgpu::Buffer, &wgpu::Buffer)> = vec![folded_first];
            layers.extend(self.model.top[1..].iter().map(|(w, b)| (w, b)));
            let mut widths = vec![width];
            widths.extend_from_slice(&cfg.top[1..]);
            mlp_refs(&mut ds, k, &layers, &widths, m, false, (&s.top_in.buffer, 0), act, (&s.logits.buffer, start, 1));
            start += m;
        }
        let (src, bytes) = match topk {
            Some(keep) => {
                ds.push(Dispatch {
                    kernel: &k.topk,
                    params: params(&[rows as u32, keep as u32]),
                    buffers: vec![&s.logits.buffer, &s.topk.buffer],
                    groups: (groups as u32, 1),
                });
                (&s.topk.buffer, groups * keep * 8)
            }
            None => (&s.logits.buffer, rows * 4),
        };
        let prof = &mut self.profiler;
        let (upload, staging) = (&mut s.upload, &mut s.staging);
        submit(device, queue, upload, &mut s.params, staging, &writes, &ds, src, bytes, prof.as_mut()).await?;
        let staging = &s.staging.buffer;
        let out = match topk {
            Some(_) => RankOut::Winners(read_back(device, staging, bytes, prof.as_mut()).await?),
            None => RankOut::Logits(read_back(device, staging, bytes, prof.as_mut()).await?),
        };
        if let Some(p) = prof {
            p.phase("read back");
            p.report(device, &format!("context-once, {rows} candidates"));
        }
        Ok(out)
    }
}

/// The gather of `[rows, fields listed, d, vectors per row, first vector, first row]`, with
/// buffers `[field table, offsets, values, embedding, vectors out]`.
fn embed<'a>(kernel: &'a Kernel, l: &Layout, buffers: [&'a wgpu::Buffer; 5], dims: [usize; 6]) -> Dispatch<'a> {
    let [rows, n_list, d, nvec, base, start] = dims.map(|x| x as u32);
    Dispatch {
        kernel,
        params: params(&[rows, n_list, d, nvec, base, l.kind, l.block_len, l.blocks, l.range, l.key_mode, start]),
        buffers: buffers.to_vec(),
        groups: (rows.div_ceil(64), n_list),
    }
}

enum RankOut {
    Logits(Vec<f32>),
    /// `(logit bits, index)` pairs, the best of each top-k workgroup.
    Winners(Vec<u32>),
}

/// Appends the dispatches of an MLP on `m` rows: input `(buffer, element offset)` with row
/// stride `widths[0]`, hidden layers ping-ponging through `act`, the last layer writing
/// `(buffer, row offset, row stride)`. ReLU after every layer, or every layer but the last.
#[allow(clippy::too_many_arguments)]
fn mlp<'a>(
    ds: &mut Vec<Dispatch<'a>>,
    kernels: &'a Kernels,
    layers: &'a [(wgpu::Buffer, wgpu::Buffer)],
    widths: &[usize],
    m: usize,
    relu_last: bool,
    input: (&'a wgpu::Buffer, usize),
    act: [&'a wgpu::Buffer; 2],
    out: (&'a wgpu::Buffer, usize, usize),
) {
    let refs: Vec<(&wgpu::Buffer, &wgpu::Buffer)> = layers.iter().map(|(w, b)| (w, b)).collect();
    mlp_refs(ds, kernels, &refs, widths, m, relu_last, input, act, out);
}

#[allow(clippy::too_many_arguments)]
fn mlp_refs<'a>(
    ds: &mut Vec<Dispatch<'a>>,
    kernels: &'a Kernels,
    layers: &[(&'a wgpu::Buffer, &'a wgpu::Buffer)],
    widths: &[usize],
    m: usize,
    relu_last: bool,
    input: (&'a wgpu::Buffer, usize),
    act: [&'a wgpu::Buffer; 2],
    out: (&'a wgpu::Buffer, usize, usize),
) {
    let last = layers.len() - 1;
    for (i, &(w, b)) in layers.iter().enumerate() {
        let (n_in, n_out) = (widths[i], widths[i + 1]);
        let (a, a_off) = if i == 0 { input } else { (act[(i - 1) % 2], 0) };
        let (c, c_off, ldc) = if i == last { (out.0, out.1 * out.2, out.2) } else { (act[i % 2], 0, n_out) };
        let relu = i < last || relu_last;
        let shape = [m, n_out, n_in, n_in, ldc, relu as usize, a_off, c_off];
        ds.push(linear(kernels, shape, [a, w, b, c]));
    }
}

/// The dispatch of one dense layer, `[m, n, k, lda, ldc, relu, a_off, c_off]` as `gemm.wgsl`'s
/// parameters, buffers `[a, w, bias, c]`: the one-output kernel for n = 1, 128×128 tiles when
/// both m and n fill most of one, else 64×64 tiles.
fn linear<'a>(k: &'a Kernels, shape: [usize; 8], buffers: [&'a wgpu::Buffer; 4]) -> Dispatch<'a> {
    let [m, n] = [shape[0], shape[1]];
    let (kernel, groups) = if n == 1 {
        let g = m.div_ceil(32);
        (&k.gemv, if g <= MAX_GROUPS { (g as u32, 1) } else { (MAX_GROUPS as u32, g.div_ceil(MAX_GROUPS) as u32) })
    } else if m >= 96 && n >= 96 {
        (&k.gemm, (n.div_ceil(128) as u32, m.div_ceil(128) as u32))
    } else {
        (&k.gemm64, (n.div_ceil(64) as u32, m.div_ceil(64) as u32))
    };
    Dispatch { kernel, params: params(&shape.map(|x| x as u32)), buffers: buffers.to_vec(), groups }
}

/// Writes the request's inputs and every dispatch's parameters into the upload buffer, then
/// encodes their copies into place, all dispatches in one compute pass (with timestamps, one pass
/// each) and the copy of `bytes` of `result` into the staging buffer, and submits it all at once.
#[allow(clippy::too_many_arguments)]
async fn submit(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    upload: &mut Upload,
    params: &mut Grow,
    staging: &mut Grow,
    writes: &Writes<'_, '_>,
    dispatches: &[Dispatch<'_>],
    result: &wgpu::Buffer,
    bytes: usize,
    mut profiler: Option<&mut Profiler>,
) -> Result<(), Error> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let param_bytes = dispatches.len() * PARAM_STRIDE as usize;
    let input_bytes = 4 * writes.iter().flat_map(|w| w.1).map(|part| part.len()).sum::<usize>();
    let total = input_bytes + param_bytes;
    params.ensure(device, param_bytes);
    staging.ensure(device, bytes);
    if let Some(p) = profiler.as_mut() {
        p.phase("pack");
        p.uploaded(total);
    }
    // (destination, source offset, bytes) of each copy out of the upload buffer.
    let mut copies = Vec::with_capacity(writes.len() + 1);
    upload
        .write(device, queue, total, profiler.as_deref_mut(), |put| {
            let mut at = 0;
            for &(dst, parts) in writes {
                let start = at;
                for part in parts {
                    put(at, bytemuck::cast_slice(part));
                    at += part.len() * 4;
                }
                copies.push((dst, start, at - start));
            }
            // Each dispatch's parameters at the start of its slot; the rest of the slot is not read.
            for (i, d) in dispatches.iter().enumerate() {
                put(at + i * PARAM_STRIDE as usize, bytemuck::cast_slice(&d.params));
            }
            copies.push((&params.buffer, at, param_bytes));
        })
        .await?;
    if let Some(p) = profiler.as_mut() {
        p.phase("write");
    }
    let groups: Vec<wgpu::BindGroup> = dispatches
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params.buffer,
                    offset: i as u64 * PARAM_STRIDE,
                    size: std::num::NonZeroU64::new(PARAM_WORDS as u64 * 4),
                }),
            }];
            entries.extend(
                d.buffers.iter().enumerate().map(|(j, b)| wgpu::BindGroupEntry { binding: j as u32 + 1, resource: b.as_entire_binding() }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &d.kernel.layout, entries: &entries })
        })
        .collect();
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("pocketrec") });
    let timestamps = profiler.as_mut().filter(|p| p.timestamps());
    let mut copy_in = |encoder: &mut wgpu::CommandEncoder| {
        for &(dst, start, len) in &copies {
            if len > 0 {
                encoder.copy_buffer_to_buffer(&upload.buffer, start as u64, dst, 0, len as u64);
            }
        }
    };
    if let Some(p) = timestamps {
        p.encode(&mut encoder, &mut copy_in, dispatches, &groups);
    } else {
        copy_in(&mut encoder);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        for (d, g) in dispatches.iter().zip(&groups) {
            if d.groups.0 == 0 || d.groups.1 == 0 {
                continue;
            }
            pass.set_pipeline(&d.kernel.pipeline);
            pass.set_bind_group(0, g, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
        }
    }
    if bytes > 0 {
        encoder.copy_buffer_to_buffer(result, 0, &staging.buffer, 0, bytes as u64);
    }
    let commands = encoder.finish();
    if let Some(p) = profiler.as_mut() {
        p.phase("encode");
    }
    queue.submit([commands]);
    upload.submitted();
    let popped = scope.pop().await;
    if let Some(p) = profiler {
        p.phase("submit");
    }
    match popped {
        Some(e) => Err(gpu_err("submitting the work", e)),
        None => Ok(()),
    }
}

/// Maps the first `bytes` of the staging buffer and copies them out as `T`s. Natively `poll`
/// waits for the submission; in the browser the map promise resolves when it is done.
async fn read_back<T: bytemuck::Pod>(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    bytes: usize,
    mut profiler: Option<&mut Profiler>,
) -> Result<Vec<T>, Error> {
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let slice = staging.slice(..bytes as u64);
    let done = map(&slice, wgpu::MapMode::Read);
    #[cfg(not(target_arch = "wasm32"))]
    device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_err("waiting for the GPU", e))?;
    #[cfg(target_arch = "wasm32")]
    let _ = device;
    done.await.map_err(|e| gpu_err("reading results back", e))?;
    if let Some(p) = profiler.as_mut() {
        p.phase("wait");
    }
    let out = bytemuck::pod_collect_to_vec(&slice.get_mapped_range().map_err(|e| gpu_err("mapping the results", e))?);
    staging.unmap();
    Ok(out)
}

/// Asks for `slice` to be mapped; the future resolves when it is.
fn map(slice: &wgpu::BufferSlice<'_>, mode: wgpu::MapMode) -> MapDone {
    let done = MapDone::default();
    let signal = done.0.clone();
    slice.map_async(mode, move |r| {
        let mut s = signal.lock().expect("map state");
        s.result = Some(r);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    done
}

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when a `map_async` callback has run.
#[derive(Default)]
struct MapDone(Arc<Mutex<MapState>>);

impl MapDone {
    /// Whether the callback has run.
    #[cfg(not(target_arch = "wasm32"))]
    fn is_done(&self) -> bool {
        self.0.lock().expect("map state").result.is_some()
    }
}

impl Future for MapDone {
    type Output = Result<(), wgpu::BufferAsyncError>;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().expect("map state");
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
