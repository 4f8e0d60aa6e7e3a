//! Thread scheduling of the scans over the kernels' pool ([`crate::pool`]): how a
//! layer's channels or heads and a prompt's tokens are split into tasks. The
//! arithmetic lives in [`crate::ops`] and the SIMD tables; the model in the runtime
//! only says what to compute.

pub mod mamba2;
pub mod scan;
