//! Compute primitives for Mamba inference.
//!
//! - [`ops`]: the scalar references of every operation (RMSNorm, causal conv1d,
//!   selective scan, activations). Plain, safe, always compiled; the optimised CPU
//!   and GPU kernels are tested against them.
//! - [`matmul`]: matrix × activations with the weight in its stored quantized
//!   layout, dequantized block by block inside the dot product — no f32 copy of a
//!   weight matrix is ever made.
//! - [`cpu`]: run-time CPU feature detection into a function table.
//! - [`pool`]: the threads the CPU kernels split their work over.
//! - [`sched`]: how the scans split a layer's channels, heads and tokens over
//!   [`pool`]'s threads.
//! - [`gpu`]: the HIP kernels (AMD or NVIDIA) behind a safe wrapper; a stub
//!   returning `GpuError::NotCompiled` unless built with the `gpu` feature.
#![deny(missing_docs)]

pub mod cpu;
pub mod gpu;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod sched;
pub mod weights;

pub use matmul::matmul;
pub use weights::WeightView;
