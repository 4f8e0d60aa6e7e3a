//! NEON kernels: activation quantizers and quantized-activation matmul tiles for
//! the 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL), and the
//! selective scan and conv1d + SiLU ([`ssm`], over the vector `exp`, softplus and
//! SiLU of [`math`]). The float types, the K-quants (Q2_K … Q6_K) and IQ4_XS use
//! the portable one-row tiles of [`crate::cpu::scalar`].
//!
//! The scan is vectorised over the state (4 states per register) for d_state a
//! multiple of 4 up to 32, or 64, and is the `_ref` one for other sizes; unlike
//! AVX2 it has no channels-vectorised path for long sequences. conv1d is
//! vectorised over 4 channels for kernel widths 2 to 8 (`_ref` otherwise), with
//! a scalar-sum path for a single token. Both follow the AVX2 formulas and
//! accuracy (see [`ssm`]); `tests/ops.rs` compares them with the references.
//! The Mamba-2 recurrence and chunked scan ([`ssd`]) are the AVX2 kernels at
//! half the width; `tests/ssd.rs` compares them with the references.
//!
//! NEON is baseline on aarch64 (`aarch64-unknown-linux-gnu` enables it for every
//! function), so the `unsafe fn`s here have no `#[target_feature]` of their own:
//! they are `unsafe` for the raw-pointer reads they do and to fit
//! [`TileFn`](crate::cpu::tile::TileFn).
//!
//! The `dotprod` extension (`sdot`) is not used: its intrinsic `vdotq_s32` is
//! still unstable in Rust (`stdarch_neon_dotprod`, rust-lang/rust#117224), and
//! an inline-`asm!` version, a second table behind
//! `is_aarch64_feature_detected!("dotprod")`, is left for when it can be measured
//! on ARM hardware. The integer dot products are `smull` + `sadalp`, exact on
//! every aarch64 CPU.

mod block32;
mod iq4_nl;
mod math;
mod q4;
mod q8_0;
mod quantize;
mod ssd;
mod ssm;

use crate::cpu::act::ActType;
use crate::cpu::scalar::{self, row as generic_row, tile_ref};
use crate::cpu::tile;
use crate::cpu::{Kernels, MatmulKernels, TypeKernel};
use crate::weights::WeightView;
use mamba_format::QuantType;

/// The NEON table.
pub(super) static KERNELS: Kernels = Kernels {
    name: "neon",
    matmul,
    selective_scan: ssm::selective_scan,
    conv1d_silu: ssm::conv1d_silu,
    mamba2_scan: ssd::mamba2_scan,
    mamba2_chunked: ssd::mamba2_chunked,
    tiled: Some(&MATMUL),
};

/// Tokens per tile of the 32-block kernels. With 4 tokens the per-token f32
/// accumulators (3 × 4 registers), the 4 rows' unpacked quants (8) and the
/// activations fit in the 32 NEON registers; not tuned (no ARM machine to measure
/// on), so this is the register budget, not a benchmark result.
const Q_RN: usize = 4;

/// The row of a 32-block type whose kernels are [`block32::tile`] with [`Q_RN`]
/// tokens (`tile`) and with 1 (`decode`): 4 rows per tile in both.
const fn row32(ty: QuantType, tile: tile::TileFn, decode: tile::TileFn) -> TypeKernel {
    TypeKernel {
        ty,
        act: ActType::for_weights(ty),
        rows_per_tile: block32::ROWS,
        toks_per_tile: Q_RN,
        tile,
        decode_rows_per_tile: block32::ROWS,
        decode_tile: decode,
    }
}

static MATMUL: MatmulKernels = MatmulKernels {
    quantize_q8_1: quantize::quantize_row_q8_1,
    quantize_q8_0: quantize::quantize_row_q8_0,
    quantize_q8_k: quantize::quantize_row_q8_k,
    types: [
        generic_row(QuantType::F32, tile_ref::<scalar::F32>),
        generic_row(QuantType::F16, tile_ref::<scalar::F16>),
        row32(
            QuantType::Q4_0,
            block32::tile::<q4::Q4_0, Q_RN>,
            block32::tile::<q4::Q4_0, 1>,
        ),
        row32(
            QuantType::Q4_1,
            block32::tile::<q4::Q4_1, Q_RN>,
            block32::tile::<q4::Q4_1, 1>,
        ),
        row32(
            QuantType::Q5_0,
            block32::tile::<q4::Q5_0, Q_RN>,
            block32::tile::<q4::Q5_0, 1>,
        ),
        row32(
            QuantType::Q5_1,
            block32::tile::<q4::Q5_1, Q_RN>,
            block32::tile::<q4::Q5_1, 1>,
        ),
        row32(
            QuantType::Q8_0,
            block32::tile::<q8_0::Q8_0, Q_RN>,
            block32::tile::<q8_0::Q8_0, 1>,
        ),
        // Why the 256-weight types have no NEON tile: an `sdot`-less K-quant kernel
        // (the super-block unpacking plus `smull`/`sadalp`) has to be tuned on ARM
        // hardware to be worth its code, and there is none here to measure on (qemu
        // runs it but says nothing of speed); Q4_K..Q6_K were left portable for the
        // same reason, and Q2_K, Q3_K and IQ4_XS follow them.
        generic_row(QuantType::Q2_K, tile_ref::<scalar::Q2K>),
        generic_row(QuantType::Q3_K, tile_ref::<scalar::Q3K>),
        generic_row(QuantType::Q4_K, tile_ref::<scalar::Q4K>),
        generic_row(QuantType::Q5_K, tile_ref::<scalar::Q5K>),
        generic_row(QuantType::Q6_K, tile_ref::<scalar::Q6K>),
        row32(
            QuantType::IQ4_NL,
            block32::tile::<iq4_nl::Iq4Nl, Q_RN>,
            block32::tile::<iq4_nl::Iq4Nl, 1>,
        ),
        generic_row(QuantType::IQ4_XS, tile_ref::<scalar::Iq4Xs>),
        generic_row(QuantType::BF16, tile_ref::<scalar::Bf16>),
    ],
};

fn matmul(w: &WeightView<'_>, x: &[f32], n: usize, y: &mut [f32]) {
    // SAFETY: NEON is baseline on aarch64, the only target this module is built for.
    unsafe { tile::matmul_tiled(&MATMUL, w, x, n, y) }
}
