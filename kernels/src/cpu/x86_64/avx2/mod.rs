//! AVX2 + FMA + F16C kernels (x86-64-v3 minus the rest): quantized-activation
//! matmul tiles, activation quantizers, the selective scan, conv1d and the
//! Mamba-2 scans.
//!
//! Every function here is `#[target_feature(enable = "avx2,fma,f16c")] unsafe fn`
//! or a safe wrapper that is reachable only through [`KERNELS`], which
//! [`super::avx2`] hands out after checking those features at run time.

mod float;
mod iq4_nl;
mod kquant;
mod math;
mod q4;
mod q8_0;
mod quantize;
mod ssd;
mod ssm;

use crate::cpu::act::ActType;
use crate::cpu::tile;
use crate::cpu::{Kernels, MatmulKernels, TypeKernel};
use crate::weights::WeightView;
use mamba_format::QuantType;
use std::arch::x86_64::*;

/// The AVX2 table.
pub(super) static KERNELS: Kernels = Kernels {
    name: "avx2",
    matmul,
    selective_scan: ssm::selective_scan,
    conv1d_silu: ssm::conv1d_silu,
    mamba2_scan: ssd::mamba2_scan,
    mamba2_chunked: ssd::mamba2_chunked,
    tiled: Some(&MATMUL),
};

/// One table row: `shape` = (rows, tokens) per tile and its kernel; `decode` =
/// rows per tile and kernel for a single token.
const fn row(
    ty: QuantType,
    shape: (usize, usize),
    tile: tile::TileFn,
    decode: (usize, tile::TileFn),
) -> TypeKernel {
    let (rows_per_tile, toks_per_tile) = shape;
    let (decode_rows_per_tile, decode_tile) = decode;
    TypeKernel {
        ty,
        act: ActType::for_weights(ty),
        rows_per_tile,
        toks_per_tile,
        tile,
        decode_rows_per_tile,
        decode_tile,
    }
}

/// Tile shapes, rows × tokens (`_RM`, `_RN`), and rows for a single token (`_DM`),
/// of the float, 32-block (`Q_`: Q4_0..Q5_1, `Q8_`: Q8_0) and K-quant kernels;
/// measured best on Zen 3 with `cargo bench --bench matmul -- tune` (as many
/// accumulators as the 16 YMM registers hold beside the operands).
///
/// The 32-block kernels put 4 rows in each register (8 bytes of each), so their
/// row count is fixed and one accumulator serves the 4 outputs of a token.
/// Measured with one pool thread (256×768, fastest call, on a machine shared with
/// other work, GFLOP/s at n = 8 / 64): Q8_0 with 4, 6, 8 tokens 83/83, 79/84,
/// 85/86 (previous form, one row per register, 4 × 4 with spills: 70 at n = 64);
/// Q4_0 102/103, 97/104, 106/107 and Q5_1 77/77, 72/79, 92/93 (previous, two
/// rows per register, 4 × 4: 82 and 64 at n = 64).
const F_RM: usize = 3;
const F_RN: usize = 4;
const F_DM: usize = 4;
const Q_RM: usize = q4::ROWS;
const Q_RN: usize = 8;
const Q_DM: usize = q4::ROWS;
const Q8_RM: usize = q8_0::ROWS;
const Q8_RN: usize = 8;
const Q8_DM: usize = q8_0::ROWS;
const K_RM: usize = 1;
const K_RN: usize = 8;
const K_DM: usize = 4;
/// IQ4_NL: one row of 8 tokens (8 accumulators), 4 rows for a single token, as the
/// K-quants; not tuned (the shapes the register budget allows).
const NL_RM: usize = 1;
const NL_RN: usize = 8;
const NL_DM: usize = 4;

static MATMUL: MatmulKernels = MatmulKernels {
    quantize_q8_1: quantize::quantize_row_q8_1,
    quantize_q8_0: quantize::quantize_row_q8_0,
    quantize_q8_k: quantize::quantize_row_q8_k,
    types: [
        row(
            QuantType::F32,
            (F_RM, F_RN),
            float::tile::<float::F32, F_RM, F_RN>,
            (F_DM, float::tile::<float::F32, F_DM, 1>),
        ),
        row(
            QuantType::F16,
            (F_RM, F_RN),
            float::tile::<float::F16, F_RM, F_RN>,
            (F_DM, float::tile::<float::F16, F_DM, 1>),
        ),
        row(
            QuantType::Q4_0,
            (Q_RM, Q_RN),
            q4::tile::<q4::Q4_0, Q_RN>,
            (Q_DM, q4::tile::<q4::Q4_0, 1>),
        ),
        row(
            QuantType::Q4_1,
            (Q_RM, Q_RN),
            q4::tile::<q4::Q4_1, Q_RN>,
            (Q_DM, q4::tile::<q4::Q4_1, 1>),
        ),
        row(
            QuantType::Q5_0,
            (Q_RM, Q_RN),
            q4::tile::<q4::Q5_0, Q_RN>,
            (Q_DM, q4::tile::<q4::Q5_0, 1>),
        ),
        row(
            QuantType::Q5_1,
            (Q_RM, Q_RN),
            q4::tile::<q4::Q5_1, Q_RN>,
            (Q_DM, q4::tile::<q4::Q5_1, 1>),
        ),
        row(
            QuantType::Q8_0,
            (Q8_RM, Q8_RN),
            q8_0::tile::<Q8_RN>,
            (Q8_DM, q8_0::tile::<1>),
        ),
        row(
            QuantType::Q2_K,
            (K_RM, K_RN),
            kquant::tile::<kquant::Q2K, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Q2K, K_DM, 1>),
        ),
        row(
            QuantType::Q3_K,
            (K_RM, K_RN),
            kquant::tile::<kquant::Q3K, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Q3K, K_DM, 1>),
        ),
        row(
            QuantType::Q4_K,
            (K_RM, K_RN),
            kquant::tile::<kquant::Q4K, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Q4K, K_DM, 1>),
        ),
        row(
            QuantType::Q5_K,
            (K_RM, K_RN),
            kquant::tile::<kquant::Q5K, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Q5K, K_DM, 1>),
        ),
        row(
            QuantType::Q6_K,
            (K_RM, K_RN),
            kquant::tile::<kquant::Q6K, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Q6K, K_DM, 1>),
        ),
        row(
            QuantType::IQ4_NL,
            (NL_RM, NL_RN),
            iq4_nl::tile::<NL_RM, NL_RN>,
            (NL_DM, iq4_nl::tile::<NL_DM, 1>),
        ),
        row(
            QuantType::IQ4_XS,
            (K_RM, K_RN),
            kquant::tile::<kquant::Iq4Xs, K_RM, K_RN>,
            (K_DM, kquant::tile::<kquant::Iq4Xs, K_DM, 1>),
        ),
        row(
            QuantType::BF16,
            (F_RM, F_RN),
            float::tile::<float::Bf16, F_RM, F_RN>,
            (F_DM, float::tile::<float::Bf16, F_DM, 1>),
        ),
    ],
};

fn matmul(w: &WeightView<'_>, x: &[f32], n: usize, y: &mut [f32]) {
    // SAFETY: this function is reachable only through KERNELS, which is handed out
    // only after run-time detection of AVX2, FMA and F16C.
    unsafe { tile::matmul_tiled(&MATMUL, w, x, n, y) }
}

// ── shared helpers ───────────────────────────────────────────────────────────

/// Sum of the 8 lanes, as `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))` (the order of
/// the scalar references).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Sum of the 8 i32 lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
}

/// The f16 (little-endian) at `p`, widened with F16C.
///
/// # Safety
/// `p` is valid for reading 2 bytes; the CPU must support F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    let h = u16::from_le_bytes(std::ptr::read_unaligned(p as *const [u8; 2]));
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// How far ahead single-token kernels prefetch, in bytes (see [`prefetch_ahead`]).
const PREFETCH_BYTES: usize = 8192;

/// Prefetches the byte [`PREFETCH_BYTES`] past byte `offset` of `row`. Decode
/// streams each weight once, several rows at a time in an interleaved pattern that
/// the hardware prefetcher does not follow well; rows of a weight matrix are
/// stored back to back, so this hint keeps the stream ahead of the kernel (without
/// it, throughput from DRAM drops to about half of the memory bandwidth). The
/// `_rm` argument is unused: the distance does not depend on the tile shape.
///
/// # Safety
/// The CPU must support SSE (any x86-64). Never faults: it is only a hint, and the
/// address is formed with wrapping arithmetic.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn prefetch_ahead(row: &[u8], _rm: usize, offset: usize) {
    let p = row.as_ptr().wrapping_add(offset + PREFETCH_BYTES);
    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
}

/// The f16 at byte `off` of each of the 4 blocks, widened: one conversion for
/// the 4 rows of a tile (the u16s are gathered in a general register).
///
/// # Safety
/// Each `p[i] + off` is valid for reading 2 bytes; the CPU supports F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16x4(p: [*const u8; 4], off: usize) -> __m128 {
    let h = |i: usize| {
        u16::from_le_bytes(std::ptr::read_unaligned(p[i].add(off) as *const [u8; 2])) as u64
    };
    let bits = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}
