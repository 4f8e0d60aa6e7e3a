//! Row-parallel quantization with the format crate's scalar reference quantizers,
//! measuring the error of every tensor on the way.
//!
//! Each rayon task takes a run of whole rows: fills each row (copy or generate),
//! quantizes it with [`QuantType::quantize_row`] (the `_ref` implementation, so the
//! output does not depend on the machine or thread count), dequantizes it again and
//! accumulates the absolute error. Dequantizing is a few percent of the cost of
//! quantizing. Per-task sums are combined in task order, so the reported RMS is
//! deterministic too.

use mamba_format::QuantType;
use rayon::prelude::*;

/// Elements per rayon task (whole rows; at least one row).
const TASK_ELEMS: usize = 1 << 16;

/// A quantized tensor and its round-trip error.
#[derive(Debug)]
pub struct Quantized {
    /// The encoded rows, back to back.
    pub bytes: Vec<u8>,
    /// Largest |dequantized − source|.
    pub max_abs_err: f32,
    /// sqrt(mean((dequantized − source)²)).
    pub rms_err: f32,
}

/// The first element whose dequantized value is NaN/Inf (a scale or value that
/// overflowed the target type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteOutput {
    /// Flat element index.
    pub index: usize,
    /// The source value there.
    pub source: f32,
}

#[derive(Default)]
struct TaskStats {
    max_abs: f32,
    sum_sq: f64,
    first_bad: Option<NonFiniteOutput>,
}

/// Quantizes `n_rows` rows of `row_len` elements to `ty`; `fill(r, dst)` writes row `r`
/// into `dst`. `row_len` must be a multiple of `ty`'s block size.
pub fn quantize_rows(
    ty: QuantType,
    n_rows: usize,
    row_len: usize,
    fill: &(dyn Fn(usize, &mut [f32]) + Sync),
) -> Result<Quantized, NonFiniteOutput> {
    let row_bytes = ty
        .bytes_for(row_len as u64)
        .expect("the plan picked a type whose block divides the row") as usize;
    let rows_per_task = (TASK_ELEMS / row_len.max(1)).max(1);
    let mut bytes = vec![0u8; n_rows * row_bytes];
    let stats: Vec<TaskStats> = bytes
        .par_chunks_mut(rows_per_task * row_bytes)
        .enumerate()
        .map(|(task, out)| {
            let mut src = vec![0f32; row_len];
            let mut deq = vec![0f32; row_len];
            let mut st = TaskStats::default();
            for (k, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
                let row = task * rows_per_task + k;
                fill(row, &mut src);
                ty.quantize_row(&src, dst);
                ty.dequantize_row(dst, &mut deq);
                for (j, (&s, &d)) in src.iter().zip(&deq).enumerate() {
                    if !d.is_finite() {
                        st.first_bad.get_or_insert(NonFiniteOutput {
                            index: row * row_len + j,
                            source: s,
                        });
                        continue;
                    }
                    let e = (d - s).abs();
                    st.max_abs = st.max_abs.max(e);
                    st.sum_sq += (e as f64) * (e as f64);
                }
            }
            st
        })
        .collect();
    let mut max_abs = 0f32;
    let mut sum_sq = 0f64;
    for st in stats {
        if let Some(bad) = st.first_bad {
            return Err(bad);
        }
        max_abs = max_abs.max(st.max_abs);
        sum_sq += st.sum_sq;
    }
    let n = (n_rows * row_len).max(1) as f64;
    Ok(Quantized {
        bytes,
        max_abs_err: max_abs,
        rms_err: (sum_sq / n).sqrt() as f32,
    })
}

/// The first NaN/Inf in `data`, as (index, value).
pub fn first_non_finite(data: &[f32]) -> Option<(usize, f32)> {
    data.par_iter()
        .position_first(|x| !x.is_finite())
        .map(|i| (i, data[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_is_lossless_and_q8_beats_q4() {
        let data: Vec<f32> = (0..4096).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
        let fill = |r: usize, dst: &mut [f32]| dst.copy_from_slice(&data[r * 256..(r + 1) * 256]);
        let f = quantize_rows(QuantType::F32, 16, 256, &fill).unwrap();
        assert_eq!((f.max_abs_err, f.rms_err), (0.0, 0.0));
        assert_eq!(f.bytes, bytemuck::cast_slice::<f32, u8>(&data));
        let q8 = quantize_rows(QuantType::Q8_0, 16, 256, &fill).unwrap();
        let q4 = quantize_rows(QuantType::Q4_0, 16, 256, &fill).unwrap();
        assert!(q8.rms_err > 0.0 && q8.rms_err < q4.rms_err);
        assert!(q4.max_abs_err >= q4.rms_err);
    }

    #[test]
    fn overflow_to_f16_is_reported() {
        let fill = |_: usize, dst: &mut [f32]| {
            dst.fill(1.0);
            dst[3] = 1e6;
        };
        let err = quantize_rows(QuantType::F16, 2, 8, &fill).unwrap_err();
        assert_eq!(
            err,
            NonFiniteOutput {
                index: 3,
                source: 1e6
            }
        );
    }

    #[test]
    fn finds_first_nan() {
        let mut v = vec![0f32; 1000];
        v[700] = f32::INFINITY;
        v[500] = f32::NAN;
        let (i, x) = first_non_finite(&v).unwrap();
        assert_eq!(i, 500);
        assert!(x.is_nan());
    }
}
