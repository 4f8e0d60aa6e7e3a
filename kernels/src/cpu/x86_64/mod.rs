//! x86-64 kernels, chosen at run time.

mod avx2;

use crate::cpu::Kernels;

/// The AVX2 table when this CPU has AVX2, FMA and F16C.
pub(super) fn avx2() -> Option<&'static Kernels> {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    ok.then_some(&avx2::KERNELS)
}
