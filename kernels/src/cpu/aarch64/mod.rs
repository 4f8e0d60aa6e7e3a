//! aarch64 kernels. NEON (Advanced SIMD) is part of the aarch64 baseline, so its
//! table needs no run-time check.

mod neon;

use crate::cpu::Kernels;

/// The NEON table (every aarch64 CPU has NEON).
pub(super) fn neon() -> Option<&'static Kernels> {
    Some(&neon::KERNELS)
}
