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
//!
//! A [`Snapshot`] saves a session's position (state, history, last logits) to
//! resume exactly. A forward pass that meets NaN or infinity stops with
//! [`RuntimeError::NonFinite`], naming the first layer that produced it: nothing
//! samples from it.
#![deny(missing_docs)]

mod arch;
pub mod batch;
pub mod batch_plan;
pub mod error;
mod finite;
pub mod generate;
pub mod gpu;
pub mod loader;
pub mod model;
pub mod sampler;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod tokenizer;

pub use batch::Batch;
pub use error::{Result, RuntimeError};
pub use generate::{generate, Sequence};
pub use gpu::Device;
pub use model::{LogitsWanted, Model, Scratch, Segment};
pub use sampler::{Sampler, SamplerParams};
pub use session::{GenerateOptions, Generation, Session};
pub use snapshot::Snapshot;
pub use state::{State, StateShape};
pub use tokenizer::{StreamDecoder, Tokenizer};

/// Sets the number of CPU threads used by the kernels (call once, before any work)
/// and returns the number in use. 0 means one per physical core. It starts the
/// kernels' own pool ([`mamba_kernels::pool`], which runs the forward pass) now, so
/// that a thread that cannot be started is reported here rather than at the first
/// token, and sizes rayon's global pool (the scalar reference path under
/// `MAMBA_FORCE_SCALAR`). Once the kernels' pool exists, later calls leave it as it
/// is and return its size.
///
/// # Errors
/// [`mamba_kernels::pool::SpawnError`] when a thread cannot be started (the
/// process or user thread limit, `ulimit -u`, or memory). When the kernels' pool
/// is the one that failed, none of its threads is left running and the caller may
/// retry with fewer.
pub fn set_threads(n: usize) -> std::result::Result<usize, mamba_kernels::pool::SpawnError> {
    let n = if n == 0 { physical_cores() } else { n };
    let in_use = mamba_kernels::pool::set_threads(n)?;
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(in_use)
        .build_global()
    {
        // An already built global pool is fine (a second call); only a failed
        // spawn, which rayon reports with an I/O error as its source, is one.
        if let Some(io) =
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>())
        {
            return Err(mamba_kernels::pool::SpawnError {
                requested: in_use,
                started: 0,
                source: std::io::Error::new(io.kind(), io.to_string()),
            });
        }
    }
    Ok(in_use)
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
