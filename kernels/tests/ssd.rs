//! The Mamba-2 scans: the chunked algorithm and the threaded scheduler against
//! the plain recurrence, the SIMD tables against the scalar ones, independence
//! of the thread count; and the gated and weightless RMS norms against direct
//! formulas.

mod common;

use common::*;
use mamba_kernels::cpu::{Kernels, GENERIC, SCALAR};
use mamba_kernels::ops::gated_norm::{gated_rmsnorm_ref, rms_normalize};
use mamba_kernels::ops::ssd::{
    chunked_scratch_len, mamba2_chunked_ref, mamba2_scan_ref, Mamba2Inputs, Mamba2Params,
    Mamba2Task,
};
use mamba_kernels::pool::{self, Pool};
use mamba_kernels::sched::mamba2::{
    mamba2_scan, mamba2_scan_with, Mamba2Path, Mamba2Scratch, CHUNK, CHUNKED_MIN_L,
};

/// Max error of the chunked algorithm (and of the SIMD and threaded kernels)
/// against the recurrence, relative to the output's scale (`max |y_ref|`, or
/// `max |h_ref|` for the state). The orders of summation differ, so results
/// differ by rounding: at most 7e-7 in these tests (x86-64 and aarch64), the
/// adversarial cases included; the brief's budget was 1e-4.
const REL_TOL: f32 = 1e-5;

/// (H, G, P, N): odd head counts, odd P and N, one to three groups; N = 23 =
/// 16 + 4 + 3 reaches every width step of a 16-state, 4-state, 1-state kernel.
const SHAPES: [(usize, usize, usize, usize); 6] = [
    (3, 1, 5, 7),
    (4, 2, 32, 16),
    (6, 3, 5, 16),
    (4, 2, 32, 7),
    (2, 1, 16, 64),
    (2, 2, 7, 23),
];

/// One layer's parameters and one sequence's inputs and incoming state.
struct Case {
    h: usize,
    g: usize,
    pp: usize,
    n: usize,
    l: usize,
    a: Vec<f32>,
    d: Vec<f32>,
    dt_bias: Vec<f32>,
    dt_min: f32,
    dt_max: f32,
    xbc: Vec<f32>,
    xbc_stride: usize,
    dt: Vec<f32>,
    h0: Vec<f32>,
}

/// Extra columns of the dt rows and where the heads start in them.
const DT_PAD: usize = 5;
const DT_OFF: usize = 2;

impl Case {
    /// Realistic magnitudes: dt_raw ~ N(0,1) − 2, A in [−8, −0.5], x, B, C ~ N(0,1).
    fn new(rng: &mut Rng, (h, g, pp, n): (usize, usize, usize, usize), l: usize) -> Case {
        let di = h * pp;
        let xbc_stride = di + 2 * g * n + 3;
        Case {
            h,
            g,
            pp,
            n,
            l,
            a: (0..h).map(|_| -0.5 - 7.5 * rng.uniform()).collect(),
            d: rng.normals(h, 1.0),
            dt_bias: rng.normals(h, 0.5),
            dt_min: 0.0,
            dt_max: f32::INFINITY,
            xbc: rng.normals(l * xbc_stride, 1.0),
            xbc_stride,
            dt: (0..l * (h + DT_PAD)).map(|_| rng.normal() - 2.0).collect(),
            h0: rng.normals(di * n, 1.0),
        }
    }

    fn d_inner(&self) -> usize {
        self.h * self.pp
    }

    fn params(&self) -> Mamba2Params<'_> {
        Mamba2Params {
            a: &self.a,
            d: &self.d,
            dt_bias: &self.dt_bias,
            head_dim: self.pp,
            d_state: self.n,
            n_groups: self.g,
            dt_min: self.dt_min,
            dt_max: self.dt_max,
        }
    }

    fn inputs(&self) -> Mamba2Inputs<'_> {
        Mamba2Inputs {
            xbc: &self.xbc,
            xbc_stride: self.xbc_stride,
            dt: &self.dt,
            dt_stride: self.h + DT_PAD,
            dt_off: DT_OFF,
        }
    }

    /// The recurrence over all heads: (state, y).
    fn reference(&self) -> (Vec<f32>, Vec<f32>) {
        let (mut h, mut y) = (self.h0.clone(), vec![f32::NAN; self.l * self.d_inner()]);
        mamba2_scan_ref(&self.params(), &self.inputs(), 0, self.h, &mut h, &mut y);
        (h, y)
    }

    /// The chunked reference over heads `h0 .. h0 + nh` (their state, full y rows).
    fn chunked(&self, h0: usize, nh: usize, chunk: usize) -> (Vec<f32>, Vec<f32>) {
        let span = self.pp * self.n;
        let mut h = self.h0[h0 * span..(h0 + nh) * span].to_vec();
        let mut y = vec![f32::NAN; self.l * self.d_inner()];
        let (p, inp) = (self.params(), self.inputs());
        mamba2_chunked_ref(&p, &inp, h0, nh, chunk, &mut h, &mut y, &mut Vec::new());
        (h, y)
    }

    /// The threaded scan on a pool of `threads`.
    fn threaded(&self, threads: usize, path: Option<Mamba2Path>) -> (Vec<f32>, Vec<f32>) {
        let (mut h, mut y) = (self.h0.clone(), vec![f32::NAN; self.l * self.d_inner()]);
        let (p, inp, mut s) = (self.params(), self.inputs(), Mamba2Scratch::default());
        pool::install(&Pool::new(threads), || match path {
            None => mamba2_scan(&p, &inp, &mut h, &mut y, &mut s),
            Some(path) => mamba2_scan_with(&p, &inp, &mut h, &mut y, &mut s, path),
        });
        (h, y)
    }

    /// A table's kernel on channels `chans` (chunked when `chunk` is given):
    /// (their state, their outputs `(L, chans.len())`).
    fn table(
        &self,
        k: &Kernels,
        chans: std::ops::Range<usize>,
        chunk: Option<usize>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (n, nc) = (self.n, chans.len());
        let mut h = self.h0[chans.start * n..chans.end * n].to_vec();
        let mut y = vec![f32::NAN; self.l * nc];
        let (p, inp) = (self.params(), self.inputs());
        let task = Mamba2Task {
            channels: chans,
            l: self.l,
            state: &mut h,
            y: &mut y,
            y_stride: nc,
        };
        match chunk {
            Some(q) => {
                let mut s = vec![0.0; chunked_scratch_len(&p, nc, q)];
                (k.mamba2_chunked)(&p, &inp, task, q, &mut s)
            }
            None => (k.mamba2_scan)(&p, &inp, task),
        }
        (h, y)
    }
}

/// `max |got − want| / max |want|`; NaN anywhere in `got` counts as infinite.
fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    got.iter().zip(want).fold(0.0, |m, (g, w)| {
        let e = (g - w).abs() / scale;
        if e.is_nan() {
            f32::INFINITY
        } else {
            m.max(e)
        }
    })
}

/// Columns `chans` of `(L, d_inner)` rows.
fn columns(y: &[f32], di: usize, chans: std::ops::Range<usize>) -> Vec<f32> {
    y.chunks_exact(di)
        .flat_map(|r| r[chans.clone()].iter().copied())
        .collect()
}

fn assert_close(what: &str, got: &(Vec<f32>, Vec<f32>), want: &(Vec<f32>, Vec<f32>)) -> f32 {
    let (eh, ey) = (max_rel(&got.0, &want.0), max_rel(&got.1, &want.1));
    assert!(
        eh <= REL_TOL && ey <= REL_TOL,
        "{what}: state {eh:e}, y {ey:e}"
    );
    eh.max(ey)
}

/// The lengths the brief asks for around chunk size `q`.
fn lengths(q: usize) -> [usize; 6] {
    [1, 2, q - 1, q, q + 1, 3 * q + 5]
}

#[test]
fn chunked_reference_matches_the_recurrence() {
    let mut rng = Rng::new(70);
    let mut worst = 0.0f32;
    for shape in SHAPES {
        for q in [8, CHUNK] {
            for l in lengths(q) {
                let c = Case::new(&mut rng, shape, l);
                let want = c.reference();
                let what = format!("{shape:?} chunk {q} L {l}");
                worst = worst.max(assert_close(&what, &c.chunked(0, c.h, q), &want));
            }
        }
    }
    eprintln!("chunked vs recurrence: max rel err {worst:.2e} (tolerance {REL_TOL:.0e})");
}

#[test]
fn references_on_a_head_range_write_only_those_heads() {
    let mut rng = Rng::new(71);
    let c = Case::new(&mut rng, (6, 3, 5, 16), 37);
    let (h_all, y_all) = c.reference();
    let (di, span) = (c.d_inner(), c.pp * c.n);
    for (h0, nh) in [(1, 4), (5, 1), (0, 2)] {
        let chans = h0 * c.pp..(h0 + nh) * c.pp;
        let mut h = c.h0[h0 * span..(h0 + nh) * span].to_vec();
        let mut y = vec![f32::NAN; c.l * di];
        mamba2_scan_ref(&c.params(), &c.inputs(), h0, nh, &mut h, &mut y);
        assert_eq!(h, h_all[h0 * span..(h0 + nh) * span]);
        assert_eq!(
            columns(&y, di, chans.clone()),
            columns(&y_all, di, chans.clone())
        );
        let (hc, yc) = c.chunked(h0, nh, 8);
        let want = (h, columns(&y, di, chans.clone()));
        assert_close(
            "chunked head range",
            &(hc, columns(&yc, di, chans.clone())),
            &want,
        );
        // Other heads' columns untouched.
        let others: Vec<f32> = y
            .chunks_exact(di)
            .flat_map(|r| r[..chans.start].iter().chain(&r[chans.end..]).copied())
            .collect();
        assert!(others.iter().all(|v| v.is_nan()), "h0 {h0} nh {nh}");
    }
}

#[test]
fn threaded_scan_matches_the_recurrence() {
    let mut rng = Rng::new(72);
    let mut worst = 0.0f32;
    for shape in SHAPES {
        let mut ls = lengths(CHUNK).to_vec();
        ls.extend([CHUNKED_MIN_L - 1, CHUNKED_MIN_L]);
        for l in ls {
            let c = Case::new(&mut rng, shape, l);
            let want = c.reference();
            for threads in [1, 2] {
                let what = format!("{shape:?} L {l} threads {threads}");
                worst = worst.max(assert_close(&what, &c.threaded(threads, None), &want));
            }
            // Both paths at every length, on 3 threads.
            for path in [Mamba2Path::Recurrence, Mamba2Path::Chunked(CHUNK)] {
                let what = format!("{shape:?} L {l} {path:?}");
                worst = worst.max(assert_close(&what, &c.threaded(3, Some(path)), &want));
            }
        }
    }
    eprintln!("threaded vs recurrence: max rel err {worst:.2e} (tolerance {REL_TOL:.0e})");
}

#[test]
fn threaded_scan_does_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(73);
    // H = 3 < 5 threads: heads split into parts.
    for shape in [(3, 1, 32, 16), (4, 2, 32, 7), (8, 1, 16, 16)] {
        for l in [1, 5, CHUNKED_MIN_L, 2 * CHUNK + 3] {
            let c = Case::new(&mut rng, shape, l);
            let one = c.threaded(1, None);
            for threads in [2, 3, 5] {
                let got = c.threaded(threads, None);
                assert!(
                    got.0 == one.0 && got.1 == one.1,
                    "{shape:?} L {l}: {threads} threads differ from 1"
                );
            }
        }
    }
}

#[test]
fn adversarial_inputs() {
    let mut rng = Rng::new(74);
    let shape = (4, 2, 8, 16);
    let l = 2 * CHUNK + 7;
    let mut cases = Vec::new();
    // dt clamped from both sides: most tokens hit dt_max, some dt_min.
    let mut c = Case::new(&mut rng, shape, l);
    c.dt.iter_mut().for_each(|v| *v = 3.0 * *v + 4.0);
    (c.dt_min, c.dt_max) = (0.01, 0.05);
    cases.push(("dt clamp", c));
    // A so negative that every step forgets the state (exp underflows to 0).
    let mut c = Case::new(&mut rng, shape, l);
    c.a = vec![-1e4, -3e3, -8.0, -1e5];
    cases.push(("decay to 0", c));
    // Huge dt (softplus' linear branch above 20): exp(dt·A) far below f32's range.
    let mut c = Case::new(&mut rng, shape, l);
    c.dt.iter_mut().for_each(|v| *v = 40.0 + 10.0 * *v);
    cases.push(("huge dt", c));
    // Tiny |A|: almost no decay, the state grows over the whole sequence.
    let mut c = Case::new(&mut rng, shape, l);
    c.a = vec![-1e-4, -1e-3, -1e-6, -0.5];
    cases.push(("no decay", c));
    let mut worst = 0.0f32;
    for (what, c) in cases {
        let want = c.reference();
        assert!(want.1.iter().all(|v| v.is_finite()), "{what}: reference");
        let mut runs = vec![
            ("chunked", c.chunked(0, c.h, CHUNK)),
            ("chunked 5", c.chunked(0, c.h, 5)),
            ("threaded", c.threaded(2, None)),
        ];
        for path in [Mamba2Path::Recurrence, Mamba2Path::Chunked(CHUNK)] {
            runs.push(("threaded path", c.threaded(2, Some(path))));
        }
        for (how, got) in runs {
            worst = worst.max(assert_close(&format!("{what}: {how}"), &got, &want));
        }
    }
    eprintln!("adversarial: max rel err {worst:.2e} (tolerance {REL_TOL:.0e})");
}

#[test]
fn simd_and_portable_tables_match_the_scalar_one() {
    let mut rng = Rng::new(75);
    let mut tables = simd_tables();
    tables.push(&GENERIC);
    for k in tables {
        let mut worst = 0.0f32;
        for shape in SHAPES {
            // Around chunk 8: L = 1, chunk − 1, chunk, chunk + 1, 3·chunk + 5.
            for l in [1, 7, 8, 9, 3 * 8 + 5] {
                let c = Case::new(&mut rng, shape, l);
                let di = c.d_inner();
                // All channels, a range across heads, part of one head.
                for chans in [0..di, 3..di - 2, c.pp..c.pp + c.pp / 2 + 1] {
                    // Chunk 5: chunk products whose widths are not multiples of 4.
                    for chunk in [None, Some(8), Some(5)] {
                        let what = format!("{} {shape:?} L {l} {chans:?} chunk {chunk:?}", k.name);
                        let got = c.table(k, chans.clone(), chunk);
                        let want = c.table(&SCALAR, chans.clone(), chunk);
                        worst = worst.max(assert_close(&what, &got, &want));
                    }
                }
            }
        }
        eprintln!("{}: max rel err vs scalar table {worst:.2e}", k.name);
    }
}

#[test]
fn table_kernels_do_not_depend_on_the_channel_split() {
    let mut rng = Rng::new(76);
    let mut tables = simd_tables();
    tables.extend([&GENERIC, &SCALAR]);
    for k in tables {
        let c = Case::new(&mut rng, (4, 2, 32, 16), 21);
        let di = c.d_inner();
        for chunk in [None, Some(8)] {
            let (h_all, y_all) = c.table(k, 0..di, chunk);
            for (a, b) in [(0, 13), (13, 70), (70, di)] {
                let (h, y) = c.table(k, a..b, chunk);
                assert_eq!(h, h_all[a * c.n..b * c.n], "{} {chunk:?}", k.name);
                assert_eq!(y, columns(&y_all, di, a..b), "{} {chunk:?}", k.name);
            }
        }
    }
}

// ── norms ────────────────────────────────────────────────────────────────────

fn silu64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The direct formula in f64, one token at a time.
fn gated_direct(
    y: &[f32],
    z: &[f32],
    w: &[f32],
    groups: usize,
    eps: f64,
    before: bool,
) -> Vec<f64> {
    let (d, gs) = (w.len(), w.len() / groups);
    let mut out = Vec::new();
    for t in 0..y.len() / d {
        for g in 0..groups {
            let idx = (t * d + g * gs)..(t * d + (g + 1) * gs);
            let v: Vec<f64> = idx
                .clone()
                .map(|i| {
                    let gate = if before { 1.0 } else { silu64(z[i] as f64) };
                    y[i] as f64 * gate
                })
                .collect();
            let rms = (v.iter().map(|x| x * x).sum::<f64>() / gs as f64 + eps).sqrt();
            for (j, i) in idx.enumerate() {
                let gate = if before { silu64(z[i] as f64) } else { 1.0 };
                out.push(w[g * gs + j] as f64 * v[j] / rms * gate);
            }
        }
    }
    out
}

#[test]
fn gated_rmsnorm_matches_the_direct_formula() {
    let y = [1.0, -2.0, 3.0, 0.5, 4.0, -1.5, 0.25, 2.0];
    let z = [0.5, -1.0, 2.0, 3.0, -0.25, 1.5, 4.0, -2.0];
    let w = [1.0, 0.5, -2.0, 1.5];
    let eps = 1e-5;
    for groups in [1, 2, 4] {
        for before in [false, true] {
            let mut out = [0.0f32; 8];
            gated_rmsnorm_ref(&y, &z, &w, groups, eps, before, &mut out);
            let want = gated_direct(&y, &z, &w, groups, eps as f64, before);
            for (o, e) in out.iter().zip(&want) {
                assert!(
                    (*o as f64 - e).abs() <= 1e-6 * e.abs().max(1.0),
                    "groups {groups} before {before}: {out:?} vs {want:?}"
                );
            }
        }
    }
    // By hand: y = (3, 4), eps 0, silu(30) = 30 in f32; gate first: v = (90, 120),
    // rms = sqrt((8100 + 14400)/2) = 106.066; gate after: (3, 4)/3.5355 · 30.
    let mut out = [0.0f32; 2];
    gated_rmsnorm_ref(
        &[3.0, 4.0],
        &[30.0, 30.0],
        &[1.0, 2.0],
        1,
        0.0,
        false,
        &mut out,
    );
    assert!((out[0] - 0.848_528).abs() < 1e-5 && (out[1] - 2.262_742).abs() < 1e-5);
    gated_rmsnorm_ref(
        &[3.0, 4.0],
        &[30.0, 30.0],
        &[1.0, 2.0],
        1,
        0.0,
        true,
        &mut out,
    );
    assert!((out[0] - 25.455_844).abs() < 1e-4 && (out[1] - 67.882_25).abs() < 1e-4);
}

#[test]
fn rms_normalize_scales_each_row() {
    // Rows (3, 4) and (0, 0): rms sqrt(12.5), and eps alone.
    let mut x = [3.0f32, 4.0, 0.0, 0.0, 1.0, 1.0];
    rms_normalize(&mut x, 2, 0.0);
    let s = 1.0 / 12.5f32.sqrt();
    assert!((x[0] - 3.0 * s).abs() < 1e-6 && (x[1] - 4.0 * s).abs() < 1e-6);
    assert!(x[2..4].iter().all(|v| v.is_nan()), "0/0 without eps: {x:?}");
    assert_eq!(&x[4..], &[1.0, 1.0]);
    let mut x = [0.0f32, 0.0, 2.0, -2.0];
    rms_normalize(&mut x, 2, 1e-6);
    assert_eq!(&x[..2], &[0.0, 0.0]);
    assert!((x[2] - 2.0 / (4.0f32 + 1e-6).sqrt()).abs() < 1e-6 && x[3] == -x[2]);
}
