//! The GPU context: adapter choice, device creation with the adapter's optional features and full
//! limits, pipelines built once per kernel, and the only place (with `buffer.rs`, `encoder.rs`,
//! `kernels.rs`) that calls wgpu. The next wgpu major is a change to this module alone.
//!
//! Adapter choice: `F8NET_ADAPTER` (a case-insensitive substring of the adapter name, or its index
//! in `f8net adapters`) picks one; otherwise a discrete GPU is preferred, then integrated, virtual
//! and finally a CPU (software) adapter such as lavapipe. No adapter gives `Error::NoAdapter`,
//! which callers turn into the CPU-reference fallback.

mod buffer;
mod encoder;
mod kernels;

pub use buffer::{Bind, GpuBuffer};
pub use encoder::{grid_1d, Encoder, GpuTimer};
pub use kernels::{Kernel, Shader};

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Optional features requested when the adapter has them.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SUBGROUP
        | wgpu::Features::IMMEDIATES
        | wgpu::Features::SHADER_F16
        | wgpu::Features::PIPELINE_CACHE
}

/// Whether compiled kernels keep naga's runtime checks (bounds clamps, loop bounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeChecks {
    /// Debug builds: checked shaders.
    On,
    /// Release builds: tested kernels run unchecked (`create_shader_module_trusted`).
    Off,
}

/// A short description of an adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub backend: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, {})",
            self.name, self.kind, self.backend, self.driver
        )
    }
}

/// The device, queue and compiled kernels. Library code takes `&Gpu`; it never creates one.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    features: wgpu::Features,
    checks: RuntimeChecks,
    pipelines: Mutex<HashMap<Kernel, Arc<wgpu::ComputePipeline>>>,
    /// First uncaptured wgpu error since the last check (validation, out of memory).
    error: Arc<Mutex<Option<String>>>,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn summarize(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        index,
        name: info.name.clone(),
        kind: format!("{:?}", info.device_type),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

fn rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Every adapter the Vulkan backend can see, in enumeration order.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN));
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

impl Gpu {
    /// Pick an adapter (see the module docs) and create the device.
    pub fn new() -> Result<Gpu> {
        let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN));
        if adapters.is_empty() {
            return Err(Error::NoAdapter(
                "no Vulkan adapter; install a Vulkan driver (e.g. mesa-vulkan-drivers)".into(),
            ));
        }
        let chosen = match std::env::var("F8NET_ADAPTER") {
            Ok(want) if !want.is_empty() => {
                let lower = want.to_lowercase();
                let by_index = want.parse::<usize>().ok().filter(|&i| i < adapters.len());
                let found = by_index.or_else(|| {
                    adapters
                        .iter()
                        .position(|a| a.get_info().name.to_lowercase().contains(&lower))
                });
                found.ok_or_else(|| {
                    Error::NoAdapter(format!("F8NET_ADAPTER={want} matches no adapter"))
                })?
            }
            _ => (0..adapters.len())
                .min_by_key(|&i| rank(adapters[i].get_info().device_type))
                .unwrap_or(0),
        };
        let adapter = &adapters[chosen];
        let summary = summarize(chosen, adapter);
        let features = adapter.features() & wanted_features();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("f8net"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::gpu("request_device", e))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let checks = if cfg!(debug_assertions) {
            RuntimeChecks::On
        } else {
            RuntimeChecks::Off
        };
        Ok(Gpu {
            device,
            queue,
            summary,
            limits,
            features,
            checks,
            pipelines: Mutex::new(HashMap::new()),
            error,
        })
    }

    /// The adapter in use, for logs and reports.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Whether the adapter is a software rasterizer (lavapipe/llvmpipe): correct, never fast.
    pub fn is_software(&self) -> bool {
        self.summary.kind == "Cpu" || self.summary.name.to_lowercase().contains("llvmpipe")
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
        )
    }

    pub fn runtime_checks(&self) -> RuntimeChecks {
        self.checks
    }

    /// Largest buffer one storage binding may hold, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Largest number of workgroups in one dispatch dimension.
    pub fn max_workgroups_per_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Names of the optional features the device got.
    pub fn feature_names(&self) -> Vec<String> {
        self.features
            .iter_names()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Take the first uncaptured wgpu error, if any happened.
    pub(crate) fn take_error(&self, op: &'static str) -> Result<()> {
        let taken = self.error.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(msg) => Err(Error::gpu(op, msg)),
            None => Ok(()),
        }
    }

    /// The compiled pipeline of a kernel, built on first use and kept.
    pub(crate) fn pipeline(&self, kernel: Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::gpu("pipeline", "pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&kernel) {
            return Ok(p.clone());
        }
        let p = Arc::new(kernels::build(self, kernel)?);
        cache.insert(kernel, p.clone());
        Ok(p)
    }

    /// Build every kernel now, so a shader error surfaces at startup.
    pub fn warm_up(&self, kernels: &[Kernel]) -> Result<()> {
        for &k in kernels {
            self.pipeline(k)?;
        }
        Ok(())
    }

    /// Block until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("poll", e))?;
        self.take_error("gpu work")
    }
}
