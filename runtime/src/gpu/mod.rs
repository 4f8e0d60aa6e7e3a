//! The GPU backend: the model's weights on one device as stored (quantized), the
//! recurrent states on the device, and the forward pass as HIP kernels
//! (`mamba_kernels::gpu`; AMD through hipcc, NVIDIA through nvcc).
//!
//! # API (mirrors the CPU [`crate::Session`] / [`crate::Batch`])
//!
//! ```no_run
//! use mamba_runtime::gpu::{GpuBatch, GpuModel, GpuSession};
//! use mamba_runtime::{Device, Model};
//! let model = Model::open("model.mbin")?;
//! let Device::Gpu(index) = "hip:0".parse::<Device>()? else { unreachable!() };
//! let gpu = GpuModel::upload(&model, index)?; // weights uploaded once, as stored
//!
//! // Several sequences decoded together: each step reads every weight once.
//! let mut batch = GpuBatch::new(&gpu, 2)?;
//! let logits = batch.prefill(&[&[1, 2, 3], &[4, 5]])?; // (B, vocab), prompts may differ in length
//! let next = [7, 8];
//! let logits = batch.step(&next)?; // (B, vocab)
//!
//! // One sequence.
//! let mut s = GpuSession::new(&gpu)?;
//! let last = s.prefill(&[1, 2, 3])?.to_vec(); // (vocab)
//! let last = s.step(42)?; // (vocab)
//! let all = s.logits_all(&[5, 6, 7])?; // (3, vocab), for perplexity
//!
//! // Memory: bytes this process holds on the device, its peak, and hipMemGetInfo.
//! let m = gpu.memory()?;
//! println!("{} allocated, peak {}, {} free of {}", m.allocated, m.peak, m.free, m.total);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`GpuModel::upload`] fails with [`RuntimeError::Device`] when the build has
//!   no GPU support, no device is present, or a tensor does not fit (the message
//!   names it and the free memory).
//! - All work runs on the calling thread's current device; each call selects the
//!   model's device first, so models on different devices can be mixed.
//! - Prompts are processed in chunks of at most [`PREFILL_TOKENS`] tokens (all
//!   sequences together), so activation memory is bounded whatever the prompt
//!   lengths; states are `n_layer × d_inner × (d_conv - 1 + d_state)` fp32 per
//!   sequence.
//! - Results match the CPU forward pass to float rounding (the kernels follow the
//!   scalar references; `runtime/tests/gpu_*.rs` check it).

mod batch;
mod device;

pub use batch::{GpuBatch, GpuSession, PREFILL_TOKENS};
pub use device::Device;

use crate::error::{Result, RuntimeError};
use crate::model::Model;
use crate::state::StateShape;
use mamba_format::{MambaConfig, ModelConfig, QuantType};
use mamba_kernels::gpu::{self, DeviceBuffer, DeviceWeight, GpuError};
use mamba_kernels::WeightView;

pub(crate) fn dev_err(e: GpuError) -> RuntimeError {
    RuntimeError::Device(e.to_string())
}

impl From<GpuError> for RuntimeError {
    fn from(e: GpuError) -> RuntimeError {
        dev_err(e)
    }
}

/// One layer's tensors on the device.
pub(crate) struct GpuLayer {
    pub norm: DeviceBuffer<f32>,
    pub in_proj: DeviceWeight,
    pub in_bias: Option<DeviceBuffer<f32>>,
    pub conv_w: DeviceBuffer<f32>,
    pub conv_b: Option<DeviceBuffer<f32>>,
    pub x_proj: DeviceWeight,
    pub dt_proj: DeviceWeight,
    pub dt_bias: DeviceBuffer<f32>,
    pub a: DeviceBuffer<f32>,
    pub d: DeviceBuffer<f32>,
    pub out_proj: DeviceWeight,
    pub out_bias: Option<DeviceBuffer<f32>>,
}

/// A model's weights on one GPU, in their stored (quantized) layout.
pub struct GpuModel {
    pub(crate) device: usize,
    pub(crate) config: MambaConfig,
    pub(crate) state_shape: StateShape,
    pub(crate) model_id: u64,
    pub(crate) embeddings: DeviceWeight,
    lm_head: Option<DeviceWeight>,
    pub(crate) norm_f: DeviceBuffer<f32>,
    pub(crate) layers: Vec<GpuLayer>,
    weights_bytes: u64,
    info: gpu::DeviceInfo,
}

/// Device memory as [`GpuModel::memory`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes this process holds in device buffers now (weights, states, activations).
    pub allocated: u64,
    /// The most it held since the start or [`GpuModel::reset_peak_memory`].
    pub peak: u64,
    /// Free bytes on the device (`hipMemGetInfo`).
    pub free: u64,
    /// Total bytes on the device.
    pub total: u64,
}

impl GpuModel {
    /// Uploads `model`'s weights to GPU `device` (an index as in `hip:N`), once and
    /// as stored: quantized matrices stay quantized on the device.
    pub fn upload(model: &Model, device: usize) -> Result<GpuModel> {
        // The device kernels are Mamba-1's; the other families run on the CPU for
        // now, and say so rather than run wrong: checked before any device call, so
        // every build, with or without a GPU, gives the same answer.
        let config = match model.config() {
            ModelConfig::Mamba(c) if c.mixer_rms_eps.is_none() => c.clone(),
            other => {
                return Err(RuntimeError::Device(format!(
                    "the GPU backend runs Mamba-1 models; this one is {}, which runs on \
                     the CPU (--device cpu)",
                    other.architecture()
                )))
            }
        };
        let state_shape = StateShape::of(model.config());
        gpu::set_device(device).map_err(dev_err)?;
        let info = gpu::device_info(device).map_err(dev_err)?;
        let tensor = |name: &str| {
            model
                .tensor_data(name)
                .ok_or_else(|| RuntimeError::Device(format!("the model has no tensor `{name}`")))
        };
        let matrix = |name: &str| -> Result<DeviceWeight> {
            let (t, bytes) = tensor(name)?;
            let view = WeightView::new(t.ty, t.n_rows() as usize, t.row_len() as usize, bytes)
                .ok_or_else(|| {
                    RuntimeError::Device(format!(
                        "tensor `{name}` has a size its shape does not imply"
                    ))
                })?;
            DeviceWeight::upload(&view, name).map_err(dev_err)
        };
        let vector = |name: &str| -> Result<DeviceBuffer<f32>> {
            let (t, bytes) = tensor(name)?;
            if t.ty != QuantType::F32 {
                return Err(RuntimeError::Device(format!(
                    "tensor `{name}` is {}, expected f32",
                    t.ty
                )));
            }
            let vals: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            DeviceBuffer::from_slice(&vals, name).map_err(dev_err)
        };
        let optional = |name: &str| model.tensor_data(name).map(|_| vector(name)).transpose();
        let layers = (0..config.n_layer)
            .map(|i| {
                let p = |s: &str| format!("layers.{i}.{s}");
                Ok(GpuLayer {
                    norm: vector(&p("norm.weight"))?,
                    in_proj: matrix(&p("mixer.in_proj.weight"))?,
                    in_bias: optional(&p("mixer.in_proj.bias"))?,
                    conv_w: vector(&p("mixer.conv1d.weight"))?,
                    conv_b: optional(&p("mixer.conv1d.bias"))?,
                    x_proj: matrix(&p("mixer.x_proj.weight"))?,
                    dt_proj: matrix(&p("mixer.dt_proj.weight"))?,
                    dt_bias: vector(&p("mixer.dt_proj.bias"))?,
                    a: vector(&p("mixer.A"))?,
                    d: vector(&p("mixer.D"))?,
                    out_proj: matrix(&p("mixer.out_proj.weight"))?,
                    out_bias: optional(&p("mixer.out_proj.bias"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embeddings = matrix("embeddings.weight")?;
        let lm_head = if config.tie_embeddings {
            None
        } else {
            Some(matrix("lm_head.weight")?)
        };
        let norm_f = vector("norm_f.weight")?;
        let mut weights_bytes = embeddings.size_bytes()
            + norm_f.size_bytes()
            + lm_head.as_ref().map_or(0, |w| w.size_bytes());
        for l in &layers {
            weights_bytes += [&l.in_proj, &l.x_proj, &l.dt_proj, &l.out_proj]
                .iter()
                .map(|w| w.size_bytes())
                .sum::<usize>();
            weights_bytes += [&l.norm, &l.conv_w, &l.dt_bias, &l.a, &l.d]
                .iter()
                .map(|b| b.size_bytes())
                .sum::<usize>();
            weights_bytes += [&l.in_bias, &l.conv_b, &l.out_bias]
                .iter()
                .map(|b| b.as_ref().map_or(0, |b| b.size_bytes()))
                .sum::<usize>();
        }
        Ok(GpuModel {
            device,
            config,
            state_shape,
            model_id: model.id(),
            embeddings,
            lm_head,
            norm_f,
            layers,
            weights_bytes: weights_bytes as u64,
            info,
        })
    }

    /// The device index.
    pub fn device(&self) -> usize {
        self.device
    }

    /// The device's name, warp size, memory, platform.
    pub fn device_info(&self) -> &gpu::DeviceInfo {
        &self.info
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &MambaConfig {
        &self.config
    }

    /// Vocabulary size (rows of the logits).
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// The source model's id (saved states are checked against it).
    pub fn model_id(&self) -> u64 {
        self.model_id
    }

    /// Device bytes of the weights.
    pub fn weights_bytes(&self) -> u64 {
        self.weights_bytes
    }

    /// Bytes this process holds on GPUs now: weights, plus the states and
    /// activations of live batches and sessions.
    pub fn memory_used(&self) -> u64 {
        gpu::allocated_bytes()
    }

    /// The largest [`GpuModel::memory_used`] since the start or the last
    /// [`GpuModel::reset_peak_memory`].
    pub fn peak_memory_used(&self) -> u64 {
        gpu::peak_allocated_bytes()
    }

    /// Restarts the peak from the current use (e.g. per benchmark point).
    pub fn reset_peak_memory(&self) {
        gpu::reset_peak()
    }

    /// Own allocations (now and peak) and the device's free and total memory.
    pub fn memory(&self) -> Result<DeviceMemory> {
        self.select()?;
        let (free, total) = gpu::mem_info().map_err(dev_err)?;
        Ok(DeviceMemory {
            allocated: gpu::allocated_bytes(),
            peak: gpu::peak_allocated_bytes(),
            free,
            total,
        })
    }

    /// Makes this model's device current for the calling thread.
    pub(crate) fn select(&self) -> Result<()> {
        gpu::set_device(self.device).map_err(dev_err)
    }

    /// The LM head (the embedding when tied).
    pub(crate) fn lm_head(&self) -> &DeviceWeight {
        self.lm_head.as_ref().unwrap_or(&self.embeddings)
    }

    pub(crate) fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let vocab = self.config.vocab_size;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&id) => Err(RuntimeError::TokenOutOfRange { id, vocab }),
            None => Ok(()),
        }
    }
}
