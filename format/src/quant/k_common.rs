//! Helpers shared by the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): super-block
//! constants, the rounding trick, the per-sub-block scale searches and the 6-bit
//! scale packing.
//!
//! Ported from ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06), functions
//! `nearest_int`, `make_qx_quants`, `make_qkx2_quants`, `get_scale_min_k4`, and the
//! scale/min packing shared by `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref`.
//! Only the non-imatrix reference path is ported. Arithmetic is kept in f32 and in
//! the same order as the C code, so the quantized bytes match ggml's exactly.

use super::{f16_from_le, f16_to_le};

/// Weights per K-quant super-block (ggml `QK_K`).
pub const QK_K: usize = 256;

/// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K (ggml `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// Below this absolute maximum a group counts as all zero (ggml `GROUP_MAX_EPS`).
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// Rounds to the nearest integer, ties to even, the way ggml does: adding
/// `1.5 * 2^23` makes the FPU round, and the integer is read off the mantissa bits.
///
/// Exact for `|x| <= 4194303`; outside that range (or for NaN) the result is
/// meaningless but never panics, and the callers clamp it.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    let val = x + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Symmetric quantization of `x` to `l[i] - nmax` with `l[i]` in `0..2*nmax`,
/// returning the scale (negative when the largest-magnitude value is positive, as in
/// ggml). Port of ggml `make_qx_quants`.
///
/// `rmse_type` 0 rounds once with `-nmax / max`; other values search 18 nearby
/// scales for the best weighted least-squares fit, with weights `qw` if given, else
/// `x²` (1), `1` (2), `|x|` (3) or `sqrt|x|` (4). A negative `rmse_type` returns
/// after the first fit. All-zero input gives `l = 0` and scale 0.
pub fn make_qx_quants(
    x: &[f32],
    nmax: i32,
    l: &mut [i8],
    rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let clamp = |q: i32| q.clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (nmax + clamp(nearest_int(iscale * v))) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = if rmse_type < 0 {
        (-rmse_type, true)
    } else {
        (rmse_type, false)
    };
    let weight = |i: usize| -> f32 {
        match qw {
            Some(w) => w[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => x[i].abs().sqrt(),
            },
        }
    };
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, (li, &xi)) in l.iter_mut().zip(x).enumerate() {
        let q = clamp(nearest_int(iscale * xi));
        *li = (q + nmax) as i8;
        let w = weight(i);
        let qf = q as f32;
        sumlx += w * xi * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &xi) in x.iter().enumerate() {
            let qf = clamp(nearest_int(iscale * xi)) as f32;
            let w = weight(i);
            sumlx += w * xi * qf;
            suml2 += w * qf * qf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (nmax + clamp(nearest_int(iscale * v))) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric 3-bit-style quantization of `x` to `l[i] - nmax` with `l[i]` in
/// `0..2*nmax`, returning the scale (negative when the largest-magnitude value is
/// positive). Port of ggml `make_q3_quants` (used by Q3_K with `nmax = 4`), from
/// ggml-org/llama.cpp@0c1e5709 `ggml/src/ggml-quants.c`.
///
/// With `do_rmse`, the first rounding with `-nmax / max` is refined by up to five
/// passes of coordinate descent that move one quant at a time when that raises
/// `(Σ w·x·l)² / Σ w·l²` (weights `x²`). All-zero input gives `l = 0` (not `nmax`)
/// and scale 0, as in ggml.
pub fn make_q3_quants(x: &[f32], nmax: i32, l: &mut [i8], do_rmse: bool) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let clamp = |q: i32| q.clamp(-nmax, nmax - 1);
    let iscale = -(nmax as f32) / max;
    if !do_rmse {
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (clamp(nearest_int(iscale * v)) + nmax) as i8;
        }
        return 1.0 / iscale;
    }
    // During the search `l` holds the signed quants; the offset is added at the end.
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (li, &xi) in l.iter_mut().zip(x) {
        let q = clamp(nearest_int(iscale * xi));
        *li = q as i8;
        let w = xi * xi;
        let qf = q as f32;
        sumlx += w * xi * qf;
        suml2 += w * qf * qf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (li, &xi) in l.iter_mut().zip(x) {
            let w = xi * xi;
            let lf = *li as f32;
            let mut slx = sumlx - w * xi * lf;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lf * lf;
                let new_l = clamp(nearest_int(xi * sl2 / slx));
                if new_l != *li as i32 {
                    let nf = new_l as f32;
                    slx += w * xi * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l[..n].iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Asymmetric quantization `x ≈ scale * l - min_out` with `l[i]` in `0..=nmax`,
/// searching `nstep + 1` scales `(rmin + rdelta*is + nmax) / (max - min)` for the
/// smallest weighted squared (or, with `use_mad`, absolute) error. Returns
/// `(scale, min_out)`, where `min_out >= 0` is the offset subtracted on
/// dequantization. `laux` is scratch of `x.len()` bytes. Port of ggml
/// `make_qkx2_quants`.
#[allow(clippy::too_many_arguments)]
pub fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        l[i] = nearest_int(iscale * (x[i] - min)).clamp(0, nmax) as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Unpacks the 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes
/// of a Q4_K/Q5_K block. Port of ggml `get_scale_min_k4`.
///
/// Bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4; bytes
/// 8..12 hold the low nibbles of scale and min 4..8, whose top 2 bits sit in the top
/// bits of bytes 0..8.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit scales and mins the way [`get_scale_min_k4`] reads them, as in
/// ggml `quantize_row_q4_K_ref`. Values above 63 lose their high bits.
pub fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let (a, b) = (ls[j], lm[j]);
        if j < 4 {
            s[j] = a;
            s[j + 4] = b;
        } else {
            s[j + 4] = (a & 0xF) | ((b & 0xF) << 4);
            s[j - 4] |= (a >> 4) << 6;
            s[j] |= (b >> 4) << 6;
        }
    }
    s
}

/// The result of [`quantize_super_block_k4`]: the header fields of a Q4_K/Q5_K
/// block and the unpacked quants.
#[derive(Clone, Copy, Debug)]
pub struct SuperBlockK4 {
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
    /// Packed 6-bit sub-block scales and mins.
    pub scales: [u8; K_SCALE_SIZE],
    /// One quant per weight, in `0..=nmax`.
    pub l: [u8; QK_K],
}

/// Quantizes one super-block of 8 sub-blocks of 32 with 6-bit scales and mins:
/// the part of ggml `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` that the two
/// share (they differ in `nmax` and the search parameters, and in how `l` is packed).
///
/// Each sub-block gets [`make_qkx2_quants`] with weights `rms(x) + |x|`; the scales
/// and mins are then quantized to 6 bits against their maxima, and the weights are
/// requantized with the rounded scales.
pub fn quantize_super_block_k4(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> SuperBlockK4 {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; QK_K / 32];
    let mut scales = [0f32; QK_K / 32];

    // As the min is subtracted, scales are never negative.
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            xs,
            &weights,
            nmax,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            rdelta,
            nstep,
            false,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..QK_K / 32 {
        // C converts the int to uint8_t (modulo 256) before taking the MIN.
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = f16_to_le(max_scale / 63.0);
    let dmin = f16_to_le(max_min / 63.0);

    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dj = f16_from_le(d) * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = f16_from_le(dmin) * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / dj);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }

    SuperBlockK4 {
        d,
        dmin,
        scales: packed,
        l,
    }
}
