//! Run Mamba models stored as `.mbin` files.
//!
//! ```no_run
//! use mamba_runtime::{Model, Session, Sampler, SamplerParams, GenerateOptions};
//! let model = Model::open("model.mbin")?;
//! let tok = model.tokenizer().expect("embedded tokenizer");
//! let prompt = tok.encode("ROMEO:")?;
//! let mut session = Session::new(&model);
//! let mut sampler = Sampler::new(SamplerParams::default())?;
//! let opts = GenerateOptions { max_tokens: 32, ignore_eos: false };
//! session.generate(&prompt, &mut sampler, &opts, |_, text| { print!("{text}"); true })?;
//! # Ok::<(), mamba_runtime::RuntimeError>(())
//! ```
//!
//! [`Model`] is immutable and `Sync` (weights stay in the memory-mapped file, in
//! their stored quantized layout); [`Session`] holds one sequence's state,
//! [`Batch`] several. [`gpu`] runs the same on a GPU ([`gpu::GpuModel`],
//! [`gpu::GpuSession`], [`gpu::GpuBatch`]; selected by [`Device`]).
#![deny(missing_docs)]

pub mod error;
pub mod generate;
pub mod gpu;
pub mod loader;
pub mod model;
pub mod sampler;
pub mod session;
pub mod state;
pub mod tokenizer;

pub use error::{Result, RuntimeError};
pub use generate::{generate, Sequence};
pub use gpu::Device;
pub use model::{LogitsWanted, Model, Scratch, Segment};
pub use sampler::{Sampler, SamplerParams};
pub use session::{Batch, GenerateOptions, Generation, Session};
pub use state::State;
pub use tokenizer::{StreamDecoder, Tokenizer};

/// Sets the number of CPU threads used by the kernels (call once, before any work;
/// later calls are ignored). 0 means one per physical core. It sizes the kernels'
/// own pool ([`mamba_kernels::pool`], which runs the forward pass) and rayon's
/// global pool (the scalar reference path under `MAMBA_FORCE_SCALAR`).
pub fn set_threads(n: usize) {
    let n = if n == 0 { physical_cores() } else { n };
    mamba_kernels::pool::set_threads(n);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Number of physical cores, falling back to logical CPUs.
pub fn physical_cores() -> usize {
    // /proc/cpuinfo lists (physical id, core id) pairs; count the distinct ones.
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let mut cores = std::collections::HashSet::new();
        let mut phys = "";
        for line in info.lines() {
            if let Some(v) = line.strip_prefix("physical id") {
                phys = v;
            } else if let Some(v) = line.strip_prefix("core id") {
                cores.insert((phys.to_string(), v.to_string()));
            }
        }
        if !cores.is_empty() {
            return cores.len();
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
