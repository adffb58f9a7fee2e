//! One request's round trip: its inputs and every dispatch's parameters written into the upload
//! buffer, the copies into place, the dispatches and the copy of the result encoded and
//! submitted at once, then the result read back.

use super::contract::{PARAM_BYTES, PARAM_STRIDE};
use super::gpu_err;
use super::plan::Dispatch;
use super::profile::Profile;
use super::scratch::Grow;
use super::upload::{Upload, read_back};
use crate::Error;

/// What a request uploads: per destination buffer, the slices of words that fill it from its
/// start, back to back.
pub(super) type Writes<'a, 'b> = [(&'a wgpu::Buffer, &'b [&'b [u32]])];

/// A request's work: its uploads, its dispatches in order, and the first `bytes` of `result` to
/// read back.
pub(super) struct Work<'a, 'b> {
    pub writes: &'b Writes<'a, 'b>,
    pub dispatches: &'b [Dispatch<'a>],
    pub result: &'a wgpu::Buffer,
    pub bytes: usize,
}

/// The buffers of the round trip: the upload buffer, the dispatches' parameter slots, and the
/// mappable buffer results come back through.
pub(super) struct Transfer {
    pub upload: Upload,
    params: Grow,
    staging: Grow,
}

impl Transfer {
    pub(super) fn new(device: &wgpu::Device) -> Transfer {
        Transfer {
            upload: Upload::new(device, cfg!(not(target_arch = "wasm32"))),
            params: Grow::new(device, "params", wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST),
            staging: Grow::new(device, "staging", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        }
    }

    /// Submits `work` (all dispatches in one compute pass, or with timestamps one pass each) and
    /// reads its result back as `T`s.
    pub(super) async fn run<T: bytemuck::Pod>(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        work: &Work<'_, '_>,
        prof: &mut Profile<'_>,
    ) -> Result<Vec<T>, Error> {
        self.submit(device, queue, work, prof).await?;
        read_back(device, &self.staging.buffer, work.bytes, prof).await
    }

    async fn submit(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        work: &Work<'_, '_>,
        prof: &mut Profile<'_>,
    ) -> Result<(), Error> {
        let Work { writes, dispatches, result, bytes } = *work;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let param_bytes = dispatches.len() * PARAM_STRIDE as usize;
        let input_bytes = 4 * writes.iter().flat_map(|w| w.1).map(|part| part.len()).sum::<usize>();
        let total = input_bytes + param_bytes;
        let Transfer { upload, params, staging } = self;
        params.ensure(device, param_bytes);
        staging.ensure(device, bytes);
        prof.phase("pack");
        prof.uploaded(total);
        // (destination, source offset, bytes) of each copy out of the upload buffer.
        let mut copies = Vec::with_capacity(writes.len() + 1);
        upload
            .write(device, queue, total, prof, |put| {
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
        prof.phase("write");
        let groups: Vec<wgpu::BindGroup> = dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &params.buffer,
                        offset: i as u64 * PARAM_STRIDE,
                        size: std::num::NonZeroU64::new(PARAM_BYTES as u64),
                    }),
                }];
                entries.extend(
                    d.buffers
                        .iter()
                        .enumerate()
                        .map(|(j, b)| wgpu::BindGroupEntry { binding: j as u32 + 1, resource: b.as_entire_binding() }),
                );
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &d.pipeline.layout,
                    entries: &entries,
                })
            })
            .collect();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("pocketrec") });
        let mut copy_in = |encoder: &mut wgpu::CommandEncoder| {
            for &(dst, start, len) in &copies {
                if len > 0 {
                    encoder.copy_buffer_to_buffer(&upload.buffer, start as u64, dst, 0, len as u64);
                }
            }
        };
        if let Some(p) = prof.timestamps() {
            p.encode(&mut encoder, &mut copy_in, dispatches, &groups);
        } else {
            copy_in(&mut encoder);
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            for (d, g) in dispatches.iter().zip(&groups) {
                if d.groups.0 == 0 || d.groups.1 == 0 {
                    continue;
                }
                pass.set_pipeline(&d.pipeline.pipeline);
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
            }
        }
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(result, 0, &staging.buffer, 0, bytes as u64);
        }
        let commands = encoder.finish();
        prof.phase("encode");
        queue.submit([commands]);
        upload.submitted();
        let popped = scope.pop().await;
        prof.phase("submit");
        match popped {
            Some(e) => Err(gpu_err("submitting the work", e)),
            None => Ok(()),
        }
    }
}
