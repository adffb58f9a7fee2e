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
//!
//! The backend owns what it needs of the model it was built from (its config and its parameters
//! on the device), so a request cannot be scored against another model's shapes.
//!
//! The files, by job: `contract.rs`, what the host and the WGSL share (constants, parameter and
//! field-table structs, the generated prelude); `pipelines.rs`, the kernels; `scratch.rs`, the
//! reused buffers and their sizes; `plan.rs`, dispatches for a shape; `submit.rs`, one request's
//! round trip; `upload.rs`, the upload buffer and the read-back; `requests.rs`, the request
//! paths; `profile.rs`, the optional profile; this file, the device and the model's buffers.

use crate::Error;
use crate::config::{EmbeddingConfig, FieldKind, ModelConfig};
use crate::learn::Changed;
use crate::model::{Dlrm, Linear};
use crate::robe::limbs;
use contract::{FieldEntry, KeyCode, Kind};
use pipelines::Kernels;
use profile::Profiler;
use scratch::Scratch;
use std::ops::Range;
use submit::Transfer;
use wgpu::util::DeviceExt;

mod contract;
mod pipelines;
mod plan;
mod profile;
mod requests;
mod scratch;
mod submit;
mod upload;

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
}

/// The model's parameters on the device.
struct ModelBuffers {
    embedding: wgpu::Buffer,
    bottom: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    top: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    /// The pairs of the full interaction, `(i, j)` for every `i > j`.
    all_pairs: wgpu::Buffer,
}

/// How the model's embeddings are laid out, for every kernel that hashes.
struct Layout {
    kind: Kind,
    range: u32,
    block_len: u32,
    blocks: u32,
    key_mode: KeyCode,
    /// Per config field, its field table entry but for where its CSR starts (filled per request).
    fields: Vec<FieldEntry>,
}

impl Layout {
    fn new(model: &Dlrm) -> Layout {
        let cfg = &model.config;
        let lookup = model.lookup();
        let range = lookup.hash().map_or(1, limbs::range);
        let offsets = cfg.key_mode.table_offsets();
        let d = cfg.dim as u64;
        let mut full_base = 0u64;
        let fields = (0..cfg.fields.len())
            .map(|f| {
                let toff = offsets.get(f).copied().unwrap_or(0);
                let (full_base, full_rows) = match &cfg.embedding {
                    EmbeddingConfig::Full { rows } => {
                        let b = full_base;
                        full_base += rows[f] * d;
                        (b as u32, rows[f] as u32)
                    }
                    EmbeddingConfig::Robe { .. } => (0, 1),
                };
                FieldEntry {
                    field: f as u32,
                    mean: (cfg.fields[f].kind == FieldKind::BagMean) as u32,
                    offsets_base: 0,
                    values_base: 0,
                    key_lo: toff as u32,
                    key_hi: (toff >> 32) as u32,
                    full_base,
                    full_rows,
                }
            })
            .collect();
        Layout {
            kind: Kind::of(&cfg.embedding),
            range,
            block_len: lookup.block_len() as u32,
            blocks: lookup.blocks() as u32,
            key_mode: KeyCode::of(&cfg.key_mode),
            fields,
        }
    }
}

/// The wgpu backend of one model, built with [`GpuBackend::new`]: it holds the model's config
/// and parameters, so its requests take no model.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_name: String,
    software: bool,
    kernels: Kernels,
    model: ModelBuffers,
    /// The config of the model the backend was built from: every request is read against it.
    config: ModelConfig,
    layout: Layout,
    scratch: Scratch,
    transfer: Transfer,
    chunk_rows: usize,
    profiler: Option<Profiler>,
}

impl GpuBackend {
    /// Finds an adapter, builds the pipelines and uploads the model: the one this backend scores.
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

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::new(&device, pipelines::big_tile_k(limits.max_compute_workgroup_storage_size));
        if let Some(e) = scope.pop().await {
            return Err(gpu_err("building the compute pipelines", e));
        }

        let init = |label: &str, data: &[f32]| {
            let data: &[f32] = if data.is_empty() { &[0.0] } else { data };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                // COPY_DST: learning on the device rewrites the weights ([`GpuBackend::write_weights`]).
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            })
        };
        let layers = |ls: &[Linear], name: &str| {
            ls.iter()
                .map(|l| {
                    let w = l.weight.as_standard_layout();
                    (
                        init(name, w.as_slice().expect("standard layout")),
                        init(name, l.bias.as_slice().expect("contiguous")),
                    )
                })
                .collect()
        };
        let n = cfg.interacting() as u32;
        let all_pairs: Vec<u32> = (1..n).flat_map(|i| (0..i).flat_map(move |j| [i, j])).collect();
        let model_buffers = ModelBuffers {
            embedding: init(crate::file::EMBEDDING_TENSOR, &model.embedding),
            bottom: layers(&model.bottom, "bottom"),
            top: layers(&model.top, "top"),
            all_pairs: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("all pairs"),
                contents: bytemuck::cast_slice(if all_pairs.is_empty() { &[0u32, 0] } else { &all_pairs }),
                usage: wgpu::BufferUsages::STORAGE,
            }),
        };

        let profiler = Profiler::wanted().then(|| Profiler::new(&device, &queue, timestamps));
        Ok(GpuBackend {
            // Browsers hide the adapter's name (an empty string) for privacy.
            adapter_name: match info.name.trim() {
                "" => format!("{:?}", info.backend),
                name => format!("{name} ({:?})", info.backend),
            },
            software: info.device_type == wgpu::DeviceType::Cpu,
            kernels,
            model: model_buffers,
            layout: Layout::new(model),
            config: cfg.clone(),
            scratch: Scratch::new(&device),
            transfer: Transfer::new(&device),
            chunk_rows: scratch::chunk_rows(cfg, max_binding),
            profiler,
            device,
            queue,
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
        self.transfer.upload = upload::Upload::new(&self.device, in_place);
    }

    /// Rows per chunk of dispatches (each chunk's activations fit one binding).
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// The config of the model this backend was built from (and scores).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Uploads what learning changed ([`Changed`]; [`Changed::everything`] for all of it): the
    /// MLP tensors that moved, and of `W` the writes [`upload_ranges`] plans. `model` must have
    /// the config the backend was built from.
    pub fn write_weights(&mut self, model: &Dlrm, changed: &Changed) -> Result<(), Error> {
        if model.config != self.config {
            return Err(Error::Config("new weights are for another model than the backend's".into()));
        }
        let write = |buf: &wgpu::Buffer, at: usize, data: &[f32]| {
            if !data.is_empty() {
                self.queue.write_buffer(buf, (at * 4) as u64, bytemuck::cast_slice(data));
            }
        };
        for r in upload_ranges(&changed.embedding) {
            write(&self.model.embedding, r.start, &model.embedding[r]);
        }
        for (moved, bufs, layers) in
            [(changed.bottom, &self.model.bottom, &model.bottom), (changed.top, &self.model.top, &model.top)]
        {
            for ((w, b), l) in bufs.iter().zip(layers).filter(|_| moved) {
                write(w, 0, l.weight.as_slice().expect("standard layout"));
                write(b, 0, l.bias.as_slice().expect("contiguous"));
            }
        }
        Ok(())
    }
}

/// What one more write costs beside its bytes, in slots (4 KiB): a guess at the fixed cost of a
/// `queue.write_buffer` (a staging allocation and a copy command; in the browser also a call out
/// of wasm), not measured.
pub const WRITE_COST_SLOTS: usize = 1024;

/// The writes that send the slot `ranges` (sorted, disjoint) of a tensor: ranges closer than
/// [`WRITE_COST_SLOTS`] are merged, since sending the gap costs less than another write. So the
/// writes never cost more than the whole tensor in one, and where the changes cover it, they are
/// that one write.
pub fn upload_ranges(ranges: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges.iter().filter(|r| !r.is_empty()) {
        match out.last_mut() {
            Some(last) if r.start <= last.end + WRITE_COST_SLOTS => last.end = last.end.max(r.end),
            _ => out.push(r.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{WRITE_COST_SLOTS as C, upload_ranges};

    #[test]
    fn uploads_the_changed_ranges_merging_near_ones() {
        // Near ranges merge, far ones stay apart.
        assert_eq!(upload_ranges(&[0..4, 8..12, 20 * C..20 * C + 4]), vec![0..12, 20 * C..20 * C + 4]);
        assert_eq!(
            upload_ranges(&[10..20, 20 + C..24 + C, 25 + 2 * C..30 + 2 * C]),
            vec![10..24 + C, 25 + 2 * C..30 + 2 * C]
        );
        assert_eq!(upload_ranges(&[]), vec![]);
        // Changes all over the tensor, each gap shorter than a write: one write of all of it.
        let dense: Vec<_> = (0..100).map(|i| i * C..i * C + 4).collect();
        assert_eq!(upload_ranges(&dense), vec![0..99 * C + 4]);
    }
}
