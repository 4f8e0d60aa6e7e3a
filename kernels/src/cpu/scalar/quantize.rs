//! Scalar reference activation quantizers (see [`crate::cpu::act`]).

use crate::cpu::act::{BlockQ8K, BlockQ8_1, Q8_1_GROUP, QK8_1, QK_K};

/// `(d, 1/d)` for a block whose largest magnitude is `amax`: `d = amax / 127`.
#[inline]
fn scales(amax: f32) -> (f32, f32) {
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

#[inline]
fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Quantizes `x` (length a multiple of 32) into `y` (`x.len() / 32` blocks), one
/// scale per group of [`Q8_1_GROUP`] blocks.
pub fn quantize_row_q8_1_ref(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups(x, y, Q8_1_GROUP)
}

/// [`quantize_row_q8_1_ref`] with a scale per block (the activations of Q8_0
/// weights, [`crate::cpu::ActType::Q8_0`]).
pub fn quantize_row_q8_0_ref(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups(x, y, 1)
}

/// Quantizes `x` into `y` with one scale per `group` blocks.
fn quantize_groups(x: &[f32], y: &mut [BlockQ8_1], group: usize) {
    assert_eq!(
        x.len(),
        y.len() * QK8_1,
        "quantize_row_q8_1_ref: wrong lengths"
    );
    for (g, x) in y.chunks_mut(group).zip(x.chunks(group * QK8_1)) {
        let (d, id) = scales(amax(x));
        for (b, x) in g.iter_mut().zip(x.chunks_exact(QK8_1)) {
            let mut sum = 0i32;
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = (v * id).round_ties_even() as i8;
                sum += *q as i32;
            }
            b.d = d;
            b.s = d * sum as f32;
        }
    }
}

/// Quantizes `x` (length a multiple of 256) into `y` (`x.len() / 256` blocks).
pub fn quantize_row_q8_k_ref(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "quantize_row_q8_k_ref: wrong lengths"
    );
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (d, id) = scales(amax(x));
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
        }
        for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i16).sum();
        }
        b.d = d;
    }
}
