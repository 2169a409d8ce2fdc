//! Recording work: an `Encoder` wraps one wgpu command encoder. Launchers (`src/ops/`) record
//! dispatches into it; the caller submits once per forward pass or benchmark batch.
//! `GpuTimer` brackets recorded work with timestamp queries where the device has them.

use super::{Bind, Gpu, Kernel};
use crate::error::{Error, Result};
use bytemuck::Pod;
use wgpu::util::DeviceExt;

/// A command encoder that launchers record into.
pub struct Encoder {
    enc: wgpu::CommandEncoder,
    dispatches: usize,
}

/// Spread `groups` workgroups over x and y so neither exceeds `max_per_dim`
/// (shaders fold the index back with `gid.x + gid.y * num_workgroups.x * WG`).
pub fn grid_1d(groups: u32, max_per_dim: u32) -> [u32; 3] {
    if groups <= max_per_dim {
        [groups.max(1), 1, 1]
    } else {
        let y = groups.div_ceil(max_per_dim);
        [groups.div_ceil(y), y, 1]
    }
}

impl Gpu {
    pub fn encoder(&self) -> Encoder {
        Encoder {
            enc: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }),
            dispatches: 0,
        }
    }

    /// Submit everything recorded (does not wait).
    pub fn submit(&self, enc: Encoder) -> Result<()> {
        self.queue.submit([enc.enc.finish()]);
        self.take_error("submit")
    }
}

impl Encoder {
    /// Number of dispatches recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Record one dispatch of `kernel` with `binds` (in binding order 0..) and `params` as a
    /// uniform at the next binding.
    pub fn dispatch<P: Pod>(
        &mut self,
        gpu: &Gpu,
        kernel: Kernel,
        binds: &[Bind<'_>],
        params: &P,
        groups: [u32; 3],
    ) -> Result<()> {
        let max = gpu.max_workgroups_per_dim();
        if groups.iter().any(|&g| g > max) {
            return Err(Error::range(
                kernel.name(),
                format!("dispatch {groups:?} exceeds {max} workgroups per dimension"),
            ));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let pipeline = gpu.pipeline(kernel)?;
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.0.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: binds.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.name()),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        drop(pass);
        self.dispatches += 1;
        Ok(())
    }

    /// Copy `src` into `dst` (same element count).
    pub fn copy<T: Pod>(
        &mut self,
        src: &super::GpuBuffer<T>,
        dst: &super::GpuBuffer<T>,
    ) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::shape(
                "copy",
                format!("{} vs {} elements", src.len(), dst.len()),
            ));
        }
        self.enc.copy_buffer_to_buffer(
            &src.buffer,
            0,
            &dst.buffer,
            0,
            src.bytes().next_multiple_of(4),
        );
        Ok(())
    }

    /// Copy `len` elements of `src` from element `src_at` into `dst` at element `dst_at`
    /// (byte offsets and the size must be multiples of 4, e.g. any `f32`/`u32`/`i32` range).
    pub fn copy_range<T: Pod>(
        &mut self,
        src: &super::GpuBuffer<T>,
        src_at: usize,
        dst: &super::GpuBuffer<T>,
        dst_at: usize,
        len: usize,
    ) -> Result<()> {
        let size = std::mem::size_of::<T>();
        let fits = |at: usize, buf_len: usize| at.checked_add(len).is_some_and(|e| e <= buf_len);
        if !fits(src_at, src.len()) || !fits(dst_at, dst.len()) || (len * size) % 4 != 0 {
            return Err(Error::shape(
                "copy",
                format!(
                    "{len} elements from {src_at} of {} into {dst_at} of {}",
                    src.len(),
                    dst.len()
                ),
            ));
        }
        if (src_at * size) % 4 != 0 || (dst_at * size) % 4 != 0 {
            return Err(Error::shape("copy", "offsets must be multiples of 4 bytes"));
        }
        if len > 0 {
            self.enc.copy_buffer_to_buffer(
                &src.buffer,
                (src_at * size) as u64,
                &dst.buffer,
                (dst_at * size) as u64,
                (len * size) as u64,
            );
        }
        Ok(())
    }

    /// Write timestamp `index` (0 = start, 1 = end) of `timer`.
    pub fn timestamp(&mut self, timer: &GpuTimer, index: u32) {
        if let Some(qs) = &timer.query_set {
            self.enc.write_timestamp(qs, index);
            if index == 1 {
                self.enc.resolve_query_set(qs, 0..2, &timer.resolve, 0);
            }
        }
    }
}

/// Two timestamps around recorded work; `None` inside when the device has no timestamp queries.
pub struct GpuTimer {
    query_set: Option<wgpu::QuerySet>,
    resolve: wgpu::Buffer,
    readback: super::GpuBuffer<u32>,
    period_ns: f64,
}

impl GpuTimer {
    pub fn new(gpu: &Gpu) -> Result<GpuTimer> {
        let query_set = gpu.has_timestamps().then(|| {
            gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        });
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer-resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Ok(GpuTimer {
            query_set,
            resolve,
            readback: gpu.alloc::<u32>(4)?,
            period_ns: gpu.queue.get_timestamp_period() as f64,
        })
    }

    /// Whether this timer measures GPU time (else callers use wall time).
    pub fn is_gpu(&self) -> bool {
        self.query_set.is_some()
    }

    /// Nanoseconds between the two timestamps of the last submitted bracket.
    pub fn read_ns(&self, gpu: &Gpu) -> Result<Option<f64>> {
        if self.query_set.is_none() {
            return Ok(None);
        }
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback.buffer, 0, 16);
        gpu.queue.submit([enc.finish()]);
        let words = gpu.read(&self.readback)?;
        let t0 = words[0] as u64 | (words[1] as u64) << 32;
        let t1 = words[2] as u64 | (words[3] as u64) << 32;
        Ok(Some(t1.saturating_sub(t0) as f64 * self.period_ns))
    }
}
