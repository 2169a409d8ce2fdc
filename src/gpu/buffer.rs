//! Typed storage buffers: `GpuBuffer<T>` holds `len` elements of a plain-data type (`u32` for
//! packed int8 — four codes per word, lane 0 in the low byte — `i32` for accumulators, `f32`).
//! Upload, allocation, poisoning and readback live here.

use super::Gpu;
use crate::error::{Error, Result};
use bytemuck::Pod;
use std::marker::PhantomData;
use wgpu::util::DeviceExt;

/// A storage buffer of `len` elements of `T`.
pub struct GpuBuffer<T: Pod> {
    pub(crate) buffer: wgpu::Buffer,
    len: usize,
    _t: PhantomData<T>,
}

/// A buffer handed to a dispatch (bindings in shader order: inputs, outputs, params last).
#[derive(Clone, Copy)]
pub struct Bind<'a>(pub(crate) &'a wgpu::Buffer);

impl<T: Pod> GpuBuffer<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> u64 {
        (self.len * std::mem::size_of::<T>()) as u64
    }

    pub fn bind(&self) -> Bind<'_> {
        Bind(&self.buffer)
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    fn check_size(&self, op: &'static str, bytes: u64) -> Result<()> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                op,
                bytes,
                limit,
                msg: "split the batch or use a device with a larger binding limit".into(),
            });
        }
        Ok(())
    }

    /// Upload host data into a new storage buffer (an empty slice gets one padding element,
    /// since wgpu rejects zero-sized bindings).
    pub fn upload<T: Pod>(&self, data: &[T]) -> Result<GpuBuffer<T>> {
        let bytes = std::mem::size_of_val(data) as u64;
        self.check_size("upload", bytes)?;
        let padded;
        let contents: &[u8] = if data.is_empty() {
            padded = vec![0u8; 4.max(std::mem::size_of::<T>())];
            &padded
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents,
                usage: STORAGE,
            });
        Ok(GpuBuffer {
            buffer,
            len: data.len(),
            _t: PhantomData,
        })
    }

    /// A new storage buffer of `len` elements, every element set to `fill` (a poison value in
    /// tests, so an unwritten output cannot pass for a correct zero).
    pub fn alloc_filled<T: Pod>(&self, len: usize, fill: T) -> Result<GpuBuffer<T>> {
        self.upload(&vec![fill; len])
    }

    /// A new zero-initialized storage buffer of `len` elements.
    pub fn alloc<T: Pod>(&self, len: usize) -> Result<GpuBuffer<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        self.check_size("alloc", bytes)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4).next_multiple_of(4),
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuBuffer {
            buffer,
            len,
            _t: PhantomData,
        })
    }

    /// Overwrite a buffer's contents from the host (queued before the next submit).
    pub fn write<T: Pod>(&self, buf: &GpuBuffer<T>, data: &[T]) -> Result<()> {
        if data.len() != buf.len() {
            return Err(Error::shape(
                "write",
                format!("{} elements into a buffer of {}", data.len(), buf.len()),
            ));
        }
        if !data.is_empty() {
            self.queue
                .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Copy a buffer back to the host (waits for all submitted work).
    pub fn read<T: Pod>(&self, buf: &GpuBuffer<T>) -> Result<Vec<T>> {
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = buf.bytes();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, bytes.next_multiple_of(4));
        let index = self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::gpu("readback", e))?;
        self.take_error("readback")?;
        rx.recv()
            .map_err(|e| Error::gpu("readback", e))?
            .map_err(|e| Error::gpu("readback", e))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu("readback", e))?;
        let bytes_used = &view[..bytes as usize];
        let out = bytemuck::pod_collect_to_vec(bytes_used);
        drop(view);
        staging.unmap();
        Ok(out)
    }
}
