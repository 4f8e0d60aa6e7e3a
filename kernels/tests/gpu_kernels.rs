//! The GPU kernels against their scalar CPU references (`ops::*`, `matmul::dot_ref`,
//! the format's dequantizers), per op and per quant type, on odd sizes.
//!
//! Without a GPU (or in a build without GPU support) each test prints `SKIPPED: …`
//! and passes; with `MAMBA_REQUIRE_GPU=1` that is a failure instead. See
//! `mamba_kernels::gpu::test_device`.

use mamba_format::QuantType;
use mamba_kernels::gpu::{
    self, ConvArgs, DeviceBuffer, DeviceWeight, GpuError, Mat, MatMut, MatmulArgs, MatmulKernel,
};
use mamba_kernels::gpu::{NormArgs, RowSelect, ScanArgs, SegTable, StateMut};
use mamba_kernels::matmul::dot_ref;
use mamba_kernels::ops::conv1d::conv1d_silu_ref;
use mamba_kernels::ops::norm::rmsnorm;
use mamba_kernels::ops::scan::{selective_scan_ref, ScanInputs, ScanParams};
use mamba_kernels::WeightView;

/// splitmix64: deterministic test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// `max |got - want|` over `scale`, which must be within `tol`.
fn assert_close(got: &[f32], want: &[f32], scale: f32, tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs();
        if e > worst || e.is_nan() {
            worst = e;
            at = i;
        }
    }
    let rel = worst / scale.max(f32::MIN_POSITIVE);
    assert!(rel <= tol, "{what}: max error {worst:e} at {at} (got {}, want {}), {rel:e} of scale {scale:e} > {tol:e}", got[at], want[at]);
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// A `rows × cols` matrix of type `ty` from random values (quantized by the format's
/// reference quantizer), as stored bytes.
fn random_matrix(ty: QuantType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let row_bytes = ty.bytes_for(cols as u64).expect("cols fit the block") as usize;
    let mut data = vec![0u8; rows * row_bytes];
    for r in 0..rows {
        let vals = rng.vec(cols, -1.0, 1.0);
        ty.quantize_row(&vals, &mut data[r * row_bytes..(r + 1) * row_bytes]);
    }
    data
}

/// Row lengths exercising each type: odd for the float types (partial chunks), a
/// few whole blocks otherwise.
fn test_cols(ty: QuantType) -> usize {
    if ty.block_size() == 1 {
        77
    } else {
        ty.block_size() * 3
    }
}

/// Rows long enough for the matvec's unrolled main loop (4 chunks of 8 per lane,
/// 64-lane warps included) plus a remainder, still odd for the float types.
fn long_cols(ty: QuantType) -> usize {
    if ty.block_size() == 1 {
        2101
    } else {
        ty.block_size() * (2100 / ty.block_size() + 1)
    }
}

#[test]
fn without_gpu_support_calls_say_so() {
    if gpu::platform().is_none() {
        assert!(matches!(gpu::device_count(), Err(GpuError::NotCompiled)));
        assert!(matches!(
            DeviceBuffer::<f32>::alloc(4, "x"),
            Err(GpuError::NotCompiled)
        ));
        assert!(gpu::error_string(-1).contains("no GPU support"));
    }
    // Empty buffers never touch the device.
    let b = DeviceBuffer::<f32>::empty();
    assert!(b.is_empty() && b.to_vec().unwrap().is_empty());
}

#[test]
fn matmul_matches_dot_ref_for_every_type_and_kernel() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(1);
    for ty in QuantType::ALL {
        for (cols, rows) in [
            (test_cols(ty), 37usize),
            (test_cols(ty), 600),
            (long_cols(ty), 37),
        ] {
            let w_bytes = random_matrix(ty, rows, cols, &mut rng);
            let view = WeightView::new(ty, rows, cols, &w_bytes).unwrap();
            let w = DeviceWeight::upload(&view, "test weight").unwrap();
            let bias = rng.vec(rows, -0.5, 0.5);
            let bias_d = DeviceBuffer::from_slice(&bias, "bias").unwrap();
            // Dequantized rows, for the error scale only.
            let deq: Vec<Vec<f32>> = (0..rows)
                .map(|r| {
                    let mut o = vec![0.0; cols];
                    view.dequantize_row(r, &mut o);
                    o
                })
                .collect();
            // An odd row stride (scalar activation loads) and a 16-byte-aligned one
            // (vector loads), with every token count's kernel.
            let aligned = cols.next_multiple_of(4) + 4;
            for (n, ldx) in [
                (1usize, cols + 5),
                (1, aligned),
                (3, cols + 5),
                (8, aligned),
                (13, aligned),
                (13, cols + 5),
                (40, cols + 5),
                (130, aligned),
            ] {
                let ldy = rows + 3;
                let x = rng.vec(n * ldx, -1.0, 1.0);
                let y0 = rng.vec(n * ldy, -1.0, 1.0);
                let x_d = DeviceBuffer::from_slice(&x, "x").unwrap();
                // s[t][r] = bias[r] + W[r]·x[t] by the reference, and the error scale.
                let mut s = vec![0.0f32; n * rows];
                let mut scale = 1.0f32;
                for t in 0..n {
                    let xt = &x[t * ldx..t * ldx + cols];
                    for r in 0..rows {
                        s[t * rows + r] = dot_ref(ty, view.row(r), xt) + bias[r];
                        let abs: f32 = deq[r].iter().zip(xt).map(|(a, b)| (a * b).abs()).sum();
                        scale = scale.max(abs + bias[r].abs() + 1.0);
                    }
                }
                for kernel in [
                    MatmulKernel::Auto,
                    MatmulKernel::Matvec,
                    MatmulKernel::Tile32,
                    MatmulKernel::Tile128,
                ] {
                    for accumulate in [false, true] {
                        let mut y_d = DeviceBuffer::from_slice(&y0, "y").unwrap();
                        gpu::matmul(MatmulArgs {
                            w: &w,
                            x: Mat::new(&x_d, 0, ldx),
                            y: MatMut::new(&mut y_d, 0, ldy),
                            n,
                            bias: Some(&bias_d),
                            accumulate,
                            kernel,
                        })
                        .unwrap();
                        let mut want = y0.clone();
                        for t in 0..n {
                            for r in 0..rows {
                                let y = &mut want[t * ldy + r];
                                *y = if accumulate {
                                    *y + s[t * rows + r]
                                } else {
                                    s[t * rows + r]
                                };
                            }
                        }
                        let what = format!(
                            "matmul {ty} {rows}x{cols} n={n} ldx={ldx} {kernel:?} acc={accumulate}"
                        );
                        assert_close(&y_d.to_vec().unwrap(), &want, scale, 1e-5, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn embedding_gather_matches_dequantize_row_for_every_type() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(2);
    for ty in QuantType::ALL {
        let (vocab, cols) = (37, test_cols(ty));
        let w_bytes = random_matrix(ty, vocab, cols, &mut rng);
        let view = WeightView::new(ty, vocab, cols, &w_bytes).unwrap();
        let w = DeviceWeight::upload(&view, "embeddings").unwrap();
        let tokens = [0u32, 36, 5, 5, 17, 1];
        let tok_d = DeviceBuffer::from_slice(&tokens, "tokens").unwrap();
        let ldo = cols + 2;
        // Tokens 1.. (an offset into the token buffer).
        let n = tokens.len() - 1;
        let mut out_d = DeviceBuffer::zeroed(n * ldo, "out").unwrap();
        gpu::embed(&w, &tok_d, 1, n, MatMut::new(&mut out_d, 0, ldo)).unwrap();
        let got = out_d.to_vec().unwrap();
        let mut want = vec![0.0f32; n * ldo];
        for (t, &tok) in tokens[1..].iter().enumerate() {
            view.dequantize_row(tok as usize, &mut want[t * ldo..t * ldo + cols]);
        }
        assert_close(&got, &want, max_abs(&want), 1e-6, &format!("embed {ty}"));
    }
}

#[test]
fn rmsnorm_matches_reference_on_all_rows_and_segment_ends() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(3);
    let (d, rows, ldx) = (77, 5, 80);
    let x = rng.vec(rows * ldx, -3.0, 3.0);
    let w = rng.vec(d, 0.5, 1.5);
    let (x_d, w_d) = (
        DeviceBuffer::from_slice(&x, "x").unwrap(),
        DeviceBuffer::from_slice(&w, "w").unwrap(),
    );
    let packed: Vec<f32> = (0..rows)
        .flat_map(|r| x[r * ldx..r * ldx + d].to_vec())
        .collect();
    let mut want_all = vec![0.0; rows * d];
    rmsnorm(&packed, &w, 1e-5, &mut want_all);

    let mut out_d = DeviceBuffer::zeroed(rows * d, "out").unwrap();
    let args = NormArgs {
        x: Mat::new(&x_d, 0, ldx),
        w: &w_d,
        eps: 1e-5,
        rows: RowSelect::All(rows),
        out: MatMut::new(&mut out_d, 0, d),
    };
    gpu::rmsnorm(args).unwrap();
    assert_close(
        &out_d.to_vec().unwrap(),
        &want_all,
        max_abs(&want_all),
        1e-6,
        "rmsnorm all rows",
    );

    // Segments of 2, 1 and 2 tokens: their last rows are 1, 2 and 4.
    let mut segs = SegTable::new();
    segs.set(&[2, 1, 2], &[0, 1, 2]).unwrap();
    let mut out_d = DeviceBuffer::zeroed(3 * d, "out").unwrap();
    let args = NormArgs {
        x: Mat::new(&x_d, 0, ldx),
        w: &w_d,
        eps: 1e-5,
        rows: RowSelect::SegmentLast(&segs),
        out: MatMut::new(&mut out_d, 0, d),
    };
    gpu::rmsnorm(args).unwrap();
    let want: Vec<f32> = [1, 2, 4]
        .iter()
        .flat_map(|&r| want_all[r * d..(r + 1) * d].to_vec())
        .collect();
    assert_close(
        &out_d.to_vec().unwrap(),
        &want,
        max_abs(&want),
        1e-6,
        "rmsnorm segment ends",
    );
}

/// Segment lengths and (shuffled) state slots used by the sequence kernels.
const SEG_LENS: [usize; 4] = [1, 5, 17, 2];
const SEG_SLOTS: [usize; 4] = [2, 0, 4, 1];
const N_SLOTS: usize = 5;

#[test]
fn conv1d_silu_matches_reference_per_segment() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(4);
    let t: usize = SEG_LENS.iter().sum();
    for (di, k, with_bias) in [(37usize, 4usize, true), (37, 3, false), (130, 4, true)] {
        let ldx = 2 * di; // x is the first half of the in_proj output (x | z)
        let x = rng.vec(t * ldx, -2.0, 2.0);
        let w = rng.vec(di * k, -0.5, 0.5);
        let bias = rng.vec(di, -0.5, 0.5);
        let state0 = rng.vec(N_SLOTS * di * (k - 1), -1.0, 1.0);
        let x_d = DeviceBuffer::from_slice(&x, "x").unwrap();
        let w_d = DeviceBuffer::from_slice(&w, "w").unwrap();
        let b_d = DeviceBuffer::from_slice(&bias, "b").unwrap();
        let mut st_d = DeviceBuffer::from_slice(&state0, "state").unwrap();
        let mut out_d = DeviceBuffer::zeroed(t * di, "out").unwrap();
        let mut segs = SegTable::new();
        segs.set(&SEG_LENS, &SEG_SLOTS).unwrap();
        gpu::conv1d_silu(ConvArgs {
            x: Mat::new(&x_d, 0, ldx),
            out: MatMut::new(&mut out_d, 0, di),
            state: StateMut {
                buf: &mut st_d,
                offset: 0,
                slots: N_SLOTS,
            },
            w: &w_d,
            bias: with_bias.then_some(&b_d),
            segs: &segs,
            d_inner: di,
            k,
        })
        .unwrap();

        let mut want = vec![0.0f32; t * di];
        let mut state = state0.clone();
        let per = di * (k - 1);
        let mut t0 = 0;
        for (&len, &slot) in SEG_LENS.iter().zip(&SEG_SLOTS) {
            let mut xs: Vec<f32> = (t0..t0 + len)
                .flat_map(|r| x[r * ldx..r * ldx + di].to_vec())
                .collect();
            conv1d_silu_ref(
                &mut xs,
                di,
                &mut state[slot * per..(slot + 1) * per],
                &w,
                with_bias.then_some(&bias[..]),
            );
            want[t0 * di..(t0 + len) * di].copy_from_slice(&xs);
            t0 += len;
        }
        let what = format!("conv1d d_inner={di} k={k}");
        assert_close(
            &out_d.to_vec().unwrap(),
            &want,
            max_abs(&want),
            1e-5,
            &format!("{what} output"),
        );
        assert_close(
            &st_d.to_vec().unwrap(),
            &state,
            max_abs(&state),
            0.0,
            &format!("{what} state"),
        );
    }
}

#[test]
fn selective_scan_matches_reference_per_segment() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(5);
    let t: usize = SEG_LENS.iter().sum();
    for (di, n, r) in [(37usize, 16usize, 3usize), (130, 5, 4), (20, 40, 2)] {
        let ldbc = r + 2 * n;
        let x = rng.vec(t * di, -2.0, 2.0);
        let dt = rng.vec(t * di, -4.0, 1.0);
        let bc = rng.vec(t * ldbc, -1.0, 1.0);
        let z = rng.vec(t * 2 * di, -2.0, 2.0); // the second half of (x | z)
        let a: Vec<f32> = (0..di * n)
            .map(|i| -((i % n) as f32 + 1.0) * rng.uniform(0.5, 1.5))
            .collect();
        let d = rng.vec(di, 0.5, 1.5);
        let dt_bias = rng.vec(di, -4.0, -1.0);
        let h0 = rng.vec(N_SLOTS * di * n, -1.0, 1.0);
        let up = |v: &[f32]| DeviceBuffer::from_slice(v, "input").unwrap();
        let (x_d, dt_d, bc_d, z_d, a_d, d_d, db_d) = (
            up(&x),
            up(&dt),
            up(&bc),
            up(&z),
            up(&a),
            up(&d),
            up(&dt_bias),
        );
        let mut h_d = up(&h0);
        let mut y_d = DeviceBuffer::zeroed(t * di, "y").unwrap();
        let mut segs = SegTable::new();
        segs.set(&SEG_LENS, &SEG_SLOTS).unwrap();
        gpu::selective_scan(ScanArgs {
            x: Mat::new(&x_d, 0, di),
            dt: Mat::new(&dt_d, 0, di),
            bc: Mat::new(&bc_d, 0, ldbc),
            b_off: r,
            c_off: r + n,
            z: Mat::new(&z_d, di, 2 * di),
            y: MatMut::new(&mut y_d, 0, di),
            h: StateMut {
                buf: &mut h_d,
                offset: 0,
                slots: N_SLOTS,
            },
            a: &a_d,
            d: &d_d,
            dt_bias: &db_d,
            segs: &segs,
            d_inner: di,
            d_state: n,
        })
        .unwrap();

        let mut want = vec![0.0f32; t * di];
        let mut h = h0.clone();
        let p = ScanParams {
            a: &a,
            d: &d,
            dt_bias: &dt_bias,
            d_state: n,
        };
        let mut t0 = 0;
        for (&len, &slot) in SEG_LENS.iter().zip(&SEG_SLOTS) {
            let rows = t0..t0 + len;
            let zs: Vec<f32> = rows
                .clone()
                .flat_map(|i| z[i * 2 * di + di..(i + 1) * 2 * di].to_vec())
                .collect();
            let inp = ScanInputs {
                x: &x[rows.start * di..rows.end * di],
                dt: &dt[rows.start * di..rows.end * di],
                bc: &bc[rows.start * ldbc..rows.end * ldbc],
                bc_stride: ldbc,
                b_off: r,
                c_off: r + n,
                z: &zs,
            };
            let mut y_t = vec![0.0f32; di * len];
            selective_scan_ref(
                &p,
                &inp,
                0,
                di,
                &mut h[slot * di * n..(slot + 1) * di * n],
                &mut y_t,
            );
            for c in 0..di {
                for i in 0..len {
                    want[(t0 + i) * di + c] = y_t[c * len + i];
                }
            }
            t0 += len;
        }
        let what = format!("scan d_inner={di} N={n}");
        assert_close(
            &y_d.to_vec().unwrap(),
            &want,
            max_abs(&want),
            1e-5,
            &format!("{what} y"),
        );
        assert_close(
            &h_d.to_vec().unwrap(),
            &h,
            max_abs(&h),
            1e-5,
            &format!("{what} state"),
        );
    }
}

#[test]
fn bad_arguments_are_errors_not_faults() {
    let Some(_) = gpu::test_device() else { return };
    let mut rng = Rng(6);
    let data = random_matrix(QuantType::Q8_0, 4, 64, &mut rng);
    let w = DeviceWeight::upload(
        &WeightView::new(QuantType::Q8_0, 4, 64, &data).unwrap(),
        "w",
    )
    .unwrap();
    let x = DeviceBuffer::<f32>::zeroed(64, "x").unwrap();
    let mut y = DeviceBuffer::<f32>::zeroed(4, "y").unwrap();
    // Two tokens do not fit one-row buffers.
    let r = gpu::matmul(MatmulArgs {
        w: &w,
        x: Mat::new(&x, 0, 64),
        y: MatMut::new(&mut y, 0, 4),
        n: 2,
        bias: None,
        accumulate: false,
        kernel: MatmulKernel::Auto,
    });
    assert!(matches!(r, Err(GpuError::Invalid(_))), "{r:?}");
    let mut segs = SegTable::new();
    assert!(
        segs.set(&[1, 2], &[0, 0]).is_err(),
        "a slot shared by two segments"
    );
    assert!(segs.set(&[1, 0], &[0, 1]).is_err(), "an empty segment");
    // Out of memory is a named error, and the device stays usable.
    match DeviceBuffer::<u8>::alloc(1 << 50, "a petabyte") {
        Err(GpuError::OutOfMemory { what, .. }) => assert_eq!(what, "a petabyte"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert_eq!(
        DeviceBuffer::from_slice(&[1.0f32, 2.0], "after")
            .unwrap()
            .to_vec()
            .unwrap(),
        [1.0, 2.0]
    );
}
