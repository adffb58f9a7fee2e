//! Where a request's time goes, natively with `POCKETREC_GPU_PROFILE=1`: each request prints to
//! stderr its host phases (wall clock: packing the inputs, uploading them, encoding and
//! submitting, waiting for the GPU, reading the results back, and the bytes uploaded), and, on an
//! adapter with timestamp queries, its GPU time per kernel (GEMMs per shape, with their rate):
//! every dispatch then runs in its own compute pass with a timestamp at its start and end. Off,
//! the normal path is unchanged: a request's [`Profile`] guard then holds nothing and each of its
//! calls is one branch.

use super::contract::LayerParams;
use super::plan::Dispatch;
use std::time::{Duration, Instant};

/// Timestamps one submission holds (wgpu's per-set maximum): two around the copies of the inputs
/// out of the upload buffer (each an empty timestamped pass), then two per dispatch.
const QUERIES: u32 = wgpu::QUERY_SET_MAX_QUERIES;
const MARKS: u32 = 4;

pub(super) struct Profiler {
    /// With timestamp queries: the per-kernel GPU times.
    gpu: Option<Timestamps>,
    /// The host phases of the current request, in first-seen order, and when the last ended.
    phases: Vec<(&'static str, Duration)>,
    last: Instant,
    began: Instant,
    uploaded: u64,
}

struct Timestamps {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period: f64,
    /// Per profiled dispatch of the last submission: its key and multiply-adds (GEMMs).
    timed: Vec<(String, u64)>,
}

impl Profiler {
    /// Whether the environment asks for profiling (never in the browser).
    pub(super) fn wanted() -> bool {
        cfg!(not(target_arch = "wasm32")) && std::env::var_os("POCKETREC_GPU_PROFILE").is_some_and(|v| v == "1")
    }

    /// A profiler; `timestamps` when the device has `TIMESTAMP_QUERY`.
    pub(super) fn new(device: &wgpu::Device, queue: &wgpu::Queue, timestamps: bool) -> Profiler {
        let now = Instant::now();
        Profiler {
            gpu: timestamps.then(|| Timestamps::new(device, queue)),
            phases: Vec::new(),
            last: now,
            began: now,
            uploaded: 0,
        }
    }

    /// Starts a request: its host clock when `profiler` is there, and the guard its phases go
    /// through (inert when it is not).
    pub(super) fn start(profiler: &mut Option<Profiler>) -> Profile<'_> {
        if let Some(p) = profiler {
            p.phases.clear();
            p.uploaded = 0;
            p.began = Instant::now();
            p.last = p.began;
        }
        Profile(profiler.as_mut())
    }

    /// Ends a host phase: the time since the last one ended counts to `name`.
    fn phase(&mut self, name: &'static str) {
        let now = Instant::now();
        let dt = now - self.last;
        self.last = now;
        match self.phases.iter_mut().find(|p| p.0 == name) {
            Some(p) => p.1 += dt,
            None => self.phases.push((name, dt)),
        }
    }

    /// See [`Timestamps::encode`].
    pub(super) fn encode(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        copy_in: &mut dyn FnMut(&mut wgpu::CommandEncoder),
        dispatches: &[Dispatch<'_>],
        groups: &[wgpu::BindGroup],
    ) {
        if let Some(t) = &mut self.gpu {
            t.encode(encoder, copy_in, dispatches, groups);
        }
    }

    /// Prints the request's host phases (ended by now), then waits for its timestamps and prints
    /// them. `what` names the request.
    fn report(&mut self, device: &wgpu::Device, what: &str) {
        self.phase("rest");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let phases: Vec<String> =
            self.phases.iter().filter(|p| p.0 != "rest").map(|(name, d)| format!("{name} {:.3}", ms(*d))).collect();
        eprintln!(
            "host profile, {what}: {:.3} ms in the backend: {} ms; {:.2} MB uploaded",
            ms(self.last - self.began),
            phases.join(", "),
            self.uploaded as f64 * 1e-6
        );
        if let Some(t) = &mut self.gpu {
            t.report(device, what);
        }
    }
}

/// One request's profile, from [`Profiler::start`]: does nothing when profiling is off.
pub(super) struct Profile<'a>(Option<&'a mut Profiler>);

impl Profile<'_> {
    /// Ends a host phase: the time since the last one ended counts to `name`.
    pub(super) fn phase(&mut self, name: &'static str) {
        if let Some(p) = &mut self.0 {
            p.phase(name);
        }
    }

    /// Counts bytes written for the GPU to read.
    pub(super) fn uploaded(&mut self, bytes: usize) {
        if let Some(p) = &mut self.0 {
            p.uploaded += bytes as u64;
        }
    }

    /// The profiler, when it timestamps dispatches ([`Profiler::encode`]).
    pub(super) fn timestamps(&mut self) -> Option<&mut Profiler> {
        self.0.as_deref_mut().filter(|p| p.gpu.is_some())
    }

    /// Ends the request (the read-back is its last phase) and prints its profile; `what` names
    /// it, and is called only when profiling.
    pub(super) fn report(mut self, device: &wgpu::Device, what: impl FnOnce() -> String) {
        self.phase("read back");
        if let Some(p) = self.0 {
            p.report(device, &what());
        }
    }
}

impl Timestamps {
    fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Timestamps {
        let bytes = QUERIES as u64 * 8;
        let buffer = |label, usage| {
            let desc = wgpu::BufferDescriptor { label: Some(label), size: bytes, usage, mapped_at_creation: false };
            device.create_buffer(&desc)
        };
        Timestamps {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES,
            }),
            resolve: buffer("profile resolve", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            read: buffer("profile read", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period: queue.get_timestamp_period() as f64,
            timed: Vec::new(),
        }
    }

    /// Encodes the copies of the inputs between two timestamped empty passes, every dispatch in a
    /// pass of its own, timestamped (past the query set's capacity, untimed), then the copy of the
    /// timestamps to the readable buffer.
    fn encode(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        copy_in: &mut dyn FnMut(&mut wgpu::CommandEncoder),
        dispatches: &[Dispatch<'_>],
        groups: &[wgpu::BindGroup],
    ) {
        self.timed.clear();
        let mark = |encoder: &mut wgpu::CommandEncoder, at: u32| {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &self.queries,
                beginning_of_pass_write_index: Some(at),
                end_of_pass_write_index: Some(at + 1),
            };
            let desc = wgpu::ComputePassDescriptor { label: Some("mark"), timestamp_writes: Some(writes) };
            encoder.begin_compute_pass(&desc);
        };
        mark(encoder, 0);
        copy_in(encoder);
        mark(encoder, 2);
        for (d, g) in dispatches.iter().zip(groups) {
            if d.groups.0 == 0 || d.groups.1 == 0 {
                continue;
            }
            let at = MARKS + 2 * self.timed.len() as u32;
            let writes = (at < QUERIES).then(|| wgpu::ComputePassTimestampWrites {
                query_set: &self.queries,
                beginning_of_pass_write_index: Some(at),
                end_of_pass_write_index: Some(at + 1),
            });
            if writes.is_some() {
                self.timed.push(match d.pipeline.label {
                    l if l.starts_with("gemm") => {
                        let bytes = &bytemuck::cast_slice(&d.params)[..std::mem::size_of::<LayerParams>()];
                        let p: LayerParams = bytemuck::pod_read_unaligned(bytes);
                        let [m, n, k] = [p.m, p.n, p.k].map(u64::from);
                        (format!("{l} {k}->{n}"), m * n * k)
                    }
                    l => (l.to_string(), 0),
                });
            }
            let desc = wgpu::ComputePassDescriptor { label: Some(d.pipeline.label), timestamp_writes: writes };
            let mut pass = encoder.begin_compute_pass(&desc);
            pass.set_pipeline(&d.pipeline.pipeline);
            pass.set_bind_group(0, g, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
        }
        let n = MARKS + 2 * self.timed.len() as u32;
        encoder.resolve_query_set(&self.queries, 0..n, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, n as u64 * 8);
    }

    /// Waits for the last submission's timestamps and prints them per kernel, in first-dispatch
    /// order: dispatches, milliseconds, and for GEMMs the rate; and the time the copies of the
    /// inputs took. `what` names the request.
    fn report(&mut self, device: &wgpu::Device, what: &str) {
        if self.timed.is_empty() {
            return;
        }
        let slice = self.read.slice(..(MARKS as u64 + 2 * self.timed.len() as u64) * 8);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = device.poll(wgpu::PollType::wait_indefinitely()) {
            eprintln!("gpu profile: {e}");
            return;
        }
        #[cfg(target_arch = "wasm32")]
        let _ = device;
        let ticks: Vec<u64> = match slice.get_mapped_range() {
            Ok(v) => bytemuck::cast_slice(&v).to_vec(),
            Err(e) => {
                eprintln!("gpu profile: {e}");
                return;
            }
        };
        self.read.unmap();
        let ms = |t: u64| t as f64 * self.period * 1e-6;
        let copy_in = ticks[2].saturating_sub(ticks[1]);
        let ticks = &ticks[MARKS as usize..];
        let mut rows: Vec<(&str, usize, u64, u64)> = Vec::new();
        for ((key, macs), t) in self.timed.iter().zip(ticks.chunks_exact(2)) {
            let dt = t[1].saturating_sub(t[0]);
            match rows.iter_mut().find(|r| r.0 == key) {
                Some(r) => (r.1, r.2, r.3) = (r.1 + 1, r.2 + dt, r.3 + macs),
                None => rows.push((key, 1, dt, *macs)),
            }
        }
        let busy: u64 = rows.iter().map(|r| r.2).sum();
        let span = ticks[ticks.len() - 1].saturating_sub(ticks[0]);
        eprintln!(
            "gpu profile, {what}: {} dispatches, kernels {:.3} ms, first start to last end {:.3} ms; \
             inputs copied into place in {:.3} ms before",
            self.timed.len(),
            ms(busy),
            ms(span),
            ms(copy_in)
        );
        for (key, count, t, macs) in rows {
            let rate = match macs > 0 && t > 0 {
                true => format!("  {:.0} GFLOP/s", 2.0 * macs as f64 / (ms(t) * 1e6)),
                false => String::new(),
            };
            eprintln!("  {key:<22} {count:>4} x {:>9.3} ms{rate}", ms(t));
        }
    }
}
