//! CPU feature detection, once, into a table of kernel functions.
//!
//! Four tables exist:
//!
//! | table       | matmul                                          | scan, conv1d      | chosen when |
//! |-------------|-------------------------------------------------|-------------------|-------------|
//! | [`SCALAR`]  | [`matmul_ref`]: f32 activations, exact reference | `_ref`            | `MAMBA_FORCE_SCALAR=1` |
//! | [`GENERIC`] | tiled, quantized activations, `vec_dot_*_ref`    | `_ref`            | no SIMD table fits the CPU |
//! | `avx2`      | tiled, quantized activations, AVX2 + FMA + F16C  | AVX2, fast `exp`  | x86-64 with AVX2, FMA and F16C (run-time check) |
//! | `neon`      | tiled, quantized activations: NEON for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL and the quantizers, `GENERIC`'s tiles for the other types | NEON, fast `exp` (scan over the state for d_state a multiple of 4 up to 32, or 64; conv1d for widths 2–8; else `_ref`) | aarch64 (NEON is baseline there) |
//!
//! The Mamba-2 scans ([`crate::sched::mamba2`]) are the `_ref` ones in
//! [`SCALAR`]; [`GENERIC`] runs the recurrence in partial sums that the compiler
//! vectorises and the chunked reference; `avx2` and `neon` have their own
//! recurrence and matrix-product tiles (`neon`'s: AVX2's at half the width).
//!
//! The choice is made on first use of [`kernels`] and never changes. Nothing is
//! logged; [`Kernels::name`] says what was chosen. A binary built without
//! `-C target-cpu=native` still gets the AVX2 table: detection is at run time
//! (`is_x86_feature_detected!`), and the AVX2 functions carry their own
//! `#[target_feature]`. The NEON table needs no check: every aarch64 CPU has NEON,
//! and its kernels do not use the optional `dotprod` extension.
//!
//! The tiled tables quantize activations to 8 bits, as ggml does (see [`act`]), so
//! their results differ from [`matmul_ref`] by a documented, tested budget per
//! weight type ([`act_nmse_budget`]). F32, F16 and BF16 weights keep f32 activations on every path.
//! AVX-512 paths are not written: the development machine lacks it, and untested
//! SIMD code is not shipped. The NEON kernels are tested under qemu user-mode
//! emulation (`.ci/arm-test.sh`), which runs the same SIMD-vs-portable tests.
//!
//! [`matmul_ref`]: crate::matmul::matmul_ref

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod act;
pub mod scalar;
pub mod tile;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::ops::scan::{ScanInputs, ScanParams};
use crate::ops::ssd::{Mamba2Inputs, Mamba2Params, Mamba2Task};
use crate::weights::WeightView;
use mamba_format::QuantType;
use std::sync::OnceLock;

pub use act::{act_nmse_budget, ActType, BlockQ8K, BlockQ8_1};

/// `y = x · Wᵀ`; see [`crate::matmul::matmul`].
pub type MatmulFn = fn(&WeightView<'_>, &[f32], usize, &mut [f32]);
/// The selective scan; see [`crate::ops::scan::selective_scan`].
pub type ScanFn = fn(&ScanParams<'_>, &ScanInputs<'_>, usize, usize, &mut [f32], &mut [f32]);
/// The Mamba-2 recurrence over a task; see [`crate::ops::ssd::mamba2_scan_task_ref`].
pub type Mamba2ScanFn = fn(&Mamba2Params<'_>, &Mamba2Inputs<'_>, Mamba2Task<'_>);
/// The chunked Mamba-2 scan over a task (chunk size, scratch); see
/// [`crate::ops::ssd::mamba2_chunked_task_ref`].
pub type Mamba2ChunkedFn =
    fn(&Mamba2Params<'_>, &Mamba2Inputs<'_>, Mamba2Task<'_>, usize, &mut [f32]);
/// Causal conv1d + SiLU; see [`crate::ops::conv1d::conv1d_silu`].
pub type Conv1dFn = fn(&mut [f32], usize, &mut [f32], &[f32], Option<&[f32]>);

/// The kernels chosen for this CPU.
#[derive(Debug)]
pub struct Kernels {
    /// Name of the instruction set used (`"scalar"`, `"generic"`, `"avx2"`, `"neon"`).
    pub name: &'static str,
    /// `y = x · Wᵀ`; see [`crate::matmul::matmul`].
    pub matmul: MatmulFn,
    /// The selective scan; see [`crate::ops::scan::selective_scan`].
    pub selective_scan: ScanFn,
    /// Causal conv1d + SiLU; see [`crate::ops::conv1d::conv1d_silu`].
    pub conv1d_silu: Conv1dFn,
    /// The Mamba-2 recurrence (decode, short prompts); see
    /// [`crate::sched::mamba2::mamba2_scan`].
    pub mamba2_scan: Mamba2ScanFn,
    /// The chunked Mamba-2 scan (prefill); see [`crate::sched::mamba2::mamba2_scan`].
    pub mamba2_chunked: Mamba2ChunkedFn,
    /// The tile kernels and activation quantizers behind `matmul`, for tables that
    /// use the tiled driver (`None` for [`SCALAR`]). Their `unsafe fn`s may be
    /// called only on a CPU that this table was chosen for (any table returned by
    /// [`kernels`], [`best`] or [`simd`]).
    pub tiled: Option<&'static MatmulKernels>,
}

/// The scalar reference table: [`crate::matmul::matmul_ref`] and the `_ref` ops.
pub static SCALAR: Kernels = Kernels {
    name: "scalar",
    matmul: crate::matmul::matmul_ref,
    selective_scan: crate::ops::scan::selective_scan_ref,
    conv1d_silu: crate::ops::conv1d::conv1d_silu_ref,
    mamba2_scan: crate::ops::ssd::mamba2_scan_task_ref,
    mamba2_chunked: crate::ops::ssd::mamba2_chunked_task_ref,
    tiled: None,
};

/// The portable table: the tiled, threaded matmul with quantized activations over
/// the scalar `vec_dot_*_ref` kernels (the same arithmetic as the SIMD tables, in
/// plain Rust), and the `_ref` ops.
pub static GENERIC: Kernels = Kernels {
    name: "generic",
    matmul: scalar::matmul_generic,
    selective_scan: crate::ops::scan::selective_scan_ref,
    conv1d_silu: crate::ops::conv1d::conv1d_silu_ref,
    // The recurrence in partial sums, which vectorises on any target (no FMA:
    // without the feature `mul_add` is a libm call).
    mamba2_scan: crate::ops::ssd::scan_task_with::<false>,
    mamba2_chunked: crate::ops::ssd::mamba2_chunked_task_ref,
    tiled: Some(&scalar::GENERIC_MATMUL),
};

static CHOSEN: OnceLock<&'static Kernels> = OnceLock::new();

/// True when `MAMBA_FORCE_SCALAR` is set to something other than `0` or empty.
pub fn scalar_forced() -> bool {
    std::env::var("MAMBA_FORCE_SCALAR").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The best kernels for this CPU, detected on first use.
pub fn kernels() -> &'static Kernels {
    CHOSEN.get_or_init(|| if scalar_forced() { &SCALAR } else { best() })
}

/// The best table this CPU supports, ignoring `MAMBA_FORCE_SCALAR`.
pub fn best() -> &'static Kernels {
    simd().first().copied().unwrap_or(&GENERIC)
}

/// Every SIMD table this CPU supports, best first (empty when none does). Tests
/// compare each against the portable tables.
pub fn simd() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    v.extend(x86_64::avx2());
    #[cfg(target_arch = "aarch64")]
    v.extend(aarch64::neon());
    v
}

/// One weight type's matmul kernel on one instruction set: a row of a
/// [`MatmulKernels`] table.
#[derive(Debug)]
pub struct TypeKernel {
    /// The weight type.
    pub ty: QuantType,
    /// The form the activations take.
    pub act: ActType,
    /// Weight rows per tile (at most [`tile::MR`]).
    pub rows_per_tile: usize,
    /// Tokens per tile (at most [`tile::NR`]).
    pub toks_per_tile: usize,
    /// The tile kernel.
    pub tile: tile::TileFn,
    /// Weight rows per tile when there is a single token (decode).
    pub decode_rows_per_tile: usize,
    /// The tile kernel for a single token: the same arithmetic per output as
    /// `tile`, with a tile shape suited to streaming the weights once.
    pub decode_tile: tile::TileFn,
}

/// The matmul kernels of one instruction set: activation quantizers and one row
/// per weight type.
#[derive(Debug)]
pub struct MatmulKernels {
    /// Quantizes one activation row (length a multiple of 32) to [`BlockQ8_1`],
    /// a scale per group ([`ActType::Q8_1`]).
    pub quantize_q8_1: unsafe fn(&[f32], &mut [BlockQ8_1]),
    /// The same with a scale per block ([`ActType::Q8_0`]).
    pub quantize_q8_0: unsafe fn(&[f32], &mut [BlockQ8_1]),
    /// Quantizes one activation row (length a multiple of 256) to [`BlockQ8K`].
    pub quantize_q8_k: unsafe fn(&[f32], &mut [BlockQ8K]),
    /// One row per [`QuantType`], in [`QuantType::ALL`] order.
    pub types: [TypeKernel; QuantType::ALL.len()],
}

impl MatmulKernels {
    /// The row for `ty`.
    pub fn get(&self, ty: QuantType) -> &TypeKernel {
        self.types
            .iter()
            .find(|k| k.ty == ty)
            .expect("every QuantType has a kernel row")
    }
}
