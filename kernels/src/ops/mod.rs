//! Scalar reference operations. Shapes use the glossary of `runtime/src/model.rs`:
//! `L` tokens, `d_model`, `d_inner`, `d_state` (N), `d_conv` (K).

pub mod act;
pub mod conv1d;
pub mod gated_norm;
pub mod norm;
pub mod scan;
pub mod ssd;
