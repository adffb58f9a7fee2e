//! Moving bytes between the host and the GPU: the upload buffer every request's inputs travel
//! through ([`Upload`]), and reading results back (`map_async` as a future, [`MapDone`]).

use super::gpu_err;
use super::profile::Profile;
use crate::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// The one buffer every request's inputs (and dispatch parameters) travel through, copied on the
/// GPU into the buffers the kernels bind at the start of the request's own submission. Natively it
/// is host-visible (`MAP_WRITE`) and written in place while mapped; it is mapped again as soon as
/// the submission is queued, so it is ready by the next request (whose read-back waited for the
/// same submission). Unlike `queue.write_buffer` per input, nothing allocates a staging buffer per
/// call and the inputs are copied once on the host, straight from the caller's slices. In the
/// browser, where a mapped range is a copy in the wasm heap anyway, the inputs are gathered in a
/// reused host vector and sent with one `queue.write_buffer`.
pub(super) struct Upload {
    pub buffer: wgpu::Buffer,
    /// Written in place while mapped (else through `host` and `queue.write_buffer`).
    in_place: bool,
    /// Whether `buffer` is mapped now.
    mapped: bool,
    /// The map asked for after the last submission, not yet seen done.
    pending: Option<MapDone>,
    host: Vec<u8>,
}

impl Upload {
    pub(super) fn new(device: &wgpu::Device, in_place: bool) -> Upload {
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
    pub(super) async fn write(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        bytes: usize,
        prof: &mut Profile<'_>,
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
        prof.phase("map");
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
    pub(super) fn submitted(&mut self) {
        if self.in_place {
            self.pending = Some(map(&self.buffer.slice(..), wgpu::MapMode::Write));
        }
    }
}

/// Maps the first `bytes` of the staging buffer and copies them out as `T`s. Natively `poll`
/// waits for the submission; in the browser the map promise resolves when it is done.
pub(super) async fn read_back<T: bytemuck::Pod>(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    bytes: usize,
    prof: &mut Profile<'_>,
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
    prof.phase("wait");
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
