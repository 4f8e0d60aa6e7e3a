//! IQ4_NL: 4-bit non-linear quants. 32 weights per block, one f16 scale, and 4-bit
//! indices into a fixed table of 16 values: `x = d * KVALUES[q]`.
//!
//! Layout: ggml `block_iq4_nl` (`ggml-common.h`): `{ ggml_half d; uint8_t qs[16]; }`,
//! 18 bytes (4.5 bits per weight). Byte `j` of `qs` holds the index of weight `j` in
//! its low nibble and that of weight `j + 16` in its high nibble, as in Q4_0.
//!
//! The scale search ([`quantize_sub_blocks`]) is shared with IQ4_XS.
//!
//! Reference: ggml-org/llama.cpp@0c1e5709 `ggml/src/ggml-quants.c`,
//! `quantize_row_iq4_nl_impl`, `quantize_iq4_nl`, `quantize_row_iq4_nl_ref`,
//! `best_index_int8` / `dequantize_row_iq4_nl`; the table is `kvalues_iq4nl` of
//! `ggml-common.h`.
//!
//! # Which ggml quantizer
//!
//! ggml has two quantizers for this type that give different bytes.
//! `quantize_iq4_nl` (what `ggml_quantize_chunk`, and so `llama-quantize`, writes into
//! GGUF files; without importance weights here) searches 15 scales per block
//! (`ntry = 7`). `quantize_row_iq4_nl_ref` (the CPU backend's `from_float`) fits once
//! (`ntry = -1`). [`quantize_row_ref`], the converter's quantizer, is the first,
//! so a converted file has the bytes `llama-quantize --pure` would write;
//! [`quantize_row_single_fit`] is the second. Both are checked byte for byte against
//! ggml (`scripts/ggml-quants/check.sh`).
//!
//! A block with |x| ≥ 1.9e19 has infinite weights `x²`, and its scale is then
//! `inf/inf`, a NaN whose sign is the CPU's default NaN (negative on x86-64,
//! positive on aarch64), in ggml as here. Such a block decodes to NaN either way.

use super::k_common::{nearest_int, GROUP_MAX_EPS};
use super::{f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK4_NL: usize = 32;

/// The 16 values a 4-bit index selects (ggml `kvalues_iq4nl`), in increasing order.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The scale search of `quantize_iq4_nl` (what `llama-quantize` uses).
const NTRY_FILE: i32 = 7;
/// The single fit of `quantize_row_iq4_nl_ref`.
const NTRY_SINGLE_FIT: i32 = -1;

/// One IQ4_NL block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockIq4Nl {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Table indices: weight `j` low nibble, weight `j + 16` high nibble.
    pub qs: [u8; QK4_NL / 2],
}
const _: () = assert!(std::mem::size_of::<BlockIq4Nl>() == 18);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::IQ4_NL,
    name: "iq4_nl",
    block_size: QK4_NL,
    type_size: std::mem::size_of::<BlockIq4Nl>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.10,
};

/// The index of the table value nearest to `x` (ties to the upper one; NaN gives 15).
/// Port of ggml `best_index_int8` over [`KVALUES_IQ4NL`].
#[inline]
pub fn best_index(x: f32) -> u8 {
    let val = |i: usize| KVALUES_IQ4NL[i] as f32;
    if x <= val(0) {
        return 0;
    }
    if x >= val(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < val(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - val(mu - 1) < val(mu) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The super-block fields of IQ4_XS that [`quantize_sub_blocks`] fills (IQ4_NL has
/// a single sub-block and none of them).
#[derive(Clone, Copy, Debug, Default)]
pub struct SubBlockScales {
    /// High 2 bits of each 6-bit sub-block scale (plus 32), 2 bits per sub-block.
    pub scales_h: u16,
    /// Low 4 bits of each sub-block scale (plus 32), two sub-blocks per byte.
    pub scales_l: [u8; 4],
}

/// Quantizes `x` (32 or 256 weights: one IQ4_NL block or one IQ4_XS super-block) in
/// sub-blocks of 32, each with the table scale that best fits it by weighted least
/// squares (weights `x²`). Port of ggml `quantize_row_iq4_nl_impl` without importance
/// weights.
///
/// `l` holds one index per weight on return and is also the input for the quants
/// of an all-zero single block, which ggml leaves as they were: carry it across the
/// blocks of a row, starting from zeros, to reproduce ggml's bytes. (Only
/// `ntry < 1` reaches that case; its weights decode to 0 whatever the indices.)
///
/// With `ntry > 0`, each sub-block tries the `2·ntry + 1` scales
/// `(k + KVALUES[0]) / max` after the first fit. Several sub-blocks share the f16
/// super-scale `d = -max_scale / 32` with 6-bit sub-scales, and are requantized
/// with them (against the unrounded `d`, as in ggml). Returns `d` as f16 bytes, the
/// packed indices and, for several sub-blocks, their scales.
pub fn quantize_sub_blocks(
    x: &[f32],
    ntry: i32,
    l: &mut [u8],
    q4: &mut [u8],
) -> ([u8; 2], SubBlockScales) {
    let n_sub = x.len() / 32;
    let mut scales = [0f32; 8];
    let v0 = KVALUES_IQ4NL[0] as f32;
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    let mut weight = [0f32; 32];
    for ib in 0..n_sub {
        let xb = &x[32 * ib..32 * ib + 32];
        let lb = &mut l[32 * ib..32 * ib + 32];
        for (w, &v) in weight.iter_mut().zip(xb) {
            *w = v * v;
        }
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut d = if ntry > 0 { -max / v0 } else { max / v0 };
        let mut id = 1.0 / d;
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for ((li, &xj), &w) in lb.iter_mut().zip(xb).zip(&weight) {
            *li = best_index(id * xj);
            let q = KVALUES_IQ4NL[*li as usize] as f32;
            sumqx += w * q * xj;
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -ntry..=ntry {
            id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for (&xj, &w) in xb.iter().zip(&weight) {
                let q = KVALUES_IQ4NL[best_index(id * xj) as usize] as f32;
                sumqx += w * q * xj;
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }

    let mut sb = SubBlockScales::default();
    let dh;
    if n_sub > 1 {
        let d = -max_scale / 32.0;
        dh = f16_to_le(d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for ib in 0..n_sub {
            let ls = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * ls as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for (li, &xj) in l[32 * ib..32 * ib + 32]
                .iter_mut()
                .zip(&x[32 * ib..32 * ib + 32])
            {
                *li = best_index(idl * xj);
            }
            let ls = (ls + 32) as u8;
            if ib % 2 == 0 {
                sb.scales_l[ib / 2] = ls & 0xF;
            } else {
                sb.scales_l[ib / 2] |= (ls & 0xF) << 4;
            }
            sb.scales_h |= ((ls >> 4) as u16) << (2 * ib);
        }
    } else {
        dh = f16_to_le(scales[0]);
        if ntry > 0 {
            let id = if scales[0] != 0.0 {
                1.0 / scales[0]
            } else {
                0.0
            };
            for (li, &xj) in l.iter_mut().zip(x) {
                *li = best_index(id * xj);
            }
        }
    }

    for (q, l) in q4.chunks_exact_mut(16).zip(l.chunks_exact(32)) {
        for j in 0..16 {
            q[j] = l[j] | (l[16 + j] << 4);
        }
    }
    (dh, sb)
}

/// Quantizes one block with `ntry` (see [`quantize_sub_blocks`]); `l` is the index
/// scratch carried across a row.
fn quantize_block_with(x: &[f32], ntry: i32, l: &mut [u8; QK4_NL]) -> BlockIq4Nl {
    let mut qs = [0u8; QK4_NL / 2];
    let (d, _) = quantize_sub_blocks(x, ntry, l, &mut qs);
    BlockIq4Nl { d, qs }
}

/// Quantizes one block as `llama-quantize` does (ggml `quantize_iq4_nl` without
/// importance weights: 15 scales tried).
pub fn quantize_block(x: &[f32]) -> BlockIq4Nl {
    // With ntry > 0 every index is rewritten, so the scratch's contents do not matter.
    quantize_block_with(x, NTRY_FILE, &mut [0; QK4_NL])
}

/// Scalar reference quantizer: ggml `quantize_iq4_nl` without importance weights
/// (see the module docs).
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockIq4Nl] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK4_NL)) {
        *b = quantize_block(x);
    }
}

/// ggml `quantize_row_iq4_nl_ref`: one least-squares fit per block, no scale search.
/// Not used by the converter (see the module docs); an all-zero block keeps the
/// indices of the block before it (zeros at the start of the row), as ggml's
/// reused buffer does.
pub fn quantize_row_single_fit(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockIq4Nl] = bytemuck::cast_slice_mut(dst);
    let mut l = [0u8; QK4_NL];
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK4_NL)) {
        *b = quantize_block_with(x, NTRY_SINGLE_FIT, &mut l);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockIq4Nl] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_NL)) {
        let d = f16_from_le(b.d);
        let (lo, hi) = y.split_at_mut(QK4_NL / 2);
        for ((q, l), h) in b.qs.iter().zip(lo).zip(hi) {
            *l = d * KVALUES_IQ4NL[(q & 0xF) as usize] as f32;
            *h = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
        }
    }
}
