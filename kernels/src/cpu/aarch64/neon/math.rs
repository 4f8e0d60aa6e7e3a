//! Vector `exp`, `ln`, softplus and SiLU for the scan and conv1d (4 lanes of
//! f32): the AVX2 functions of `cpu/x86_64/avx2/math.rs`, operation for
//! operation, with the same constants and the same documented accuracy.
//!
//! `exp`: Cody–Waite range reduction `x = n·ln2 + r`, `|r| <= ln2/2`, with `ln2`
//! split in two (Cephes' `C1`, `C2`) so `n·ln2_hi` is exact; `e^r` by a degree-6
//! near-minimax polynomial (Chebyshev fit, relative error 2e-8 with its f32
//! coefficients; Horner with FMA); then `·2ⁿ` as two exact power-of-two factors,
//! so results down to the subnormal range (and overflow to +inf above 88.72) come
//! out right. [`exp2_nonpos`] is the scan's cheaper `2^y` for `y <= 0`. Max error
//! against `f32::exp` over `[-88, 0]`, measured by the tests below: 1 ulp.
//!
//! `ln`: Cephes `logf` (frexp to `[√½, √2)`, degree-8 polynomial, Cody–Waite
//! recombination), for positive normal inputs. `log1p(u)` uses Goldberg's
//! `ln(1+u) · u / ((1+u) − 1)`, accurate for small `u`.
//!
//! Sources: Cephes Math Library, `expf.c`, `logf.c` (S. L. Moshier);
//! D. Goldberg, "What every computer scientist should know about floating-point
//! arithmetic" (1991), Theorem 4.
//!
//! NEON is baseline on aarch64, so these are safe `fn`s: the intrinsics they call
//! are register-only (no memory access), and `unsafe` blocks only say that the
//! instructions exist, which they do on every aarch64 CPU.

use std::arch::aarch64::*;

/// `v` in every lane.
#[inline]
pub(super) fn splat(v: f32) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; a register-only instruction.
    unsafe { vdupq_n_f32(v) }
}

/// `e^r` for `|r| <= ln2/2`: degree-6 polynomial, Horner with FMA.
#[inline]
fn exp_reduced(r: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        // vfmaq_f32(c, a, b) = a·b + c, fused: the operand order of _mm256_fmadd_ps(a, b, c).
        let mut p = splat(1.394_111_9e-3);
        p = vfmaq_f32(splat(8.375_134e-3), p, r);
        p = vfmaq_f32(splat(4.166_635e-2), p, r);
        p = vfmaq_f32(splat(1.666_641_5e-1), p, r);
        p = vfmaq_f32(splat(0.5), p, r);
        p = vfmaq_f32(splat(1.0), p, r);
        vfmaq_f32(splat(1.0), p, r)
    }
}

/// `(n, r)` with `x = n·ln2 + r`, `n` integral (as f32), `|r| <= ln2/2`.
#[inline]
fn reduce(x: float32x4_t) -> (float32x4_t, float32x4_t) {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        // frintn: round to nearest, ties to even, as _MM_FROUND_TO_NEAREST_INT.
        let n = vrndnq_f32(vmulq_f32(x, splat(std::f32::consts::LOG2_E)));
        // vfmsq_f32(c, a, b) = c − a·b, fused (AVX2's fnmadd).
        let r = vfmsq_f32(x, n, splat(0.693_359_4));
        (n, vfmsq_f32(r, n, splat(-2.121_944_4e-4)))
    }
}

/// `2^n` for integral `n` (as i32 lanes) in `-126..=127`.
#[inline]
fn pow2i(n: int32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe { vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n, vdupq_n_s32(127)))) }
}

/// e^x in each lane (NaN stays NaN; below -104 gives 0; above 88.72 gives +inf).
#[inline]
pub(super) fn exp(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        // fmax/fmin return NaN when either operand is NaN: NaN passes through.
        let x = vmaxq_f32(splat(-104.0), x);
        let x = vminq_f32(splat(89.0), x);
        let (n, r) = reduce(x);
        // 2ⁿ = 2^(n/2) · 2^(n − n/2), each factor a normal float for n in [-150, 129].
        // n is integral, so the truncating conversion is exact.
        let ni = vcvtq_s32_f32(n);
        let n1 = vshrq_n_s32::<1>(ni);
        vmulq_f32(
            vmulq_f32(exp_reduced(r), pow2i(n1)),
            pow2i(vsubq_s32(ni, n1)),
        )
    }
}

/// ln(x) in each lane, for positive normal finite `x`.
#[inline]
pub(super) fn ln(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        let bits = vreinterpretq_u32_f32(x);
        // x = m · 2^e with m in [0.5, 1).
        let e = vsubq_s32(
            vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits)),
            vdupq_n_s32(126),
        );
        let m = vreinterpretq_f32_u32(vorrq_u32(
            vandq_u32(bits, vdupq_n_u32(0x007f_ffff)),
            vdupq_n_u32(0x3f00_0000),
        ));
        let mut e = vcvtq_f32_s32(e);
        // Below √½: use 2m − 1 and e − 1, so t = m' − 1 lies in [√½ − 1, √2 − 1).
        let small = vcltq_f32(m, splat(std::f32::consts::FRAC_1_SQRT_2));
        let zero = splat(0.0);
        e = vsubq_f32(e, vbslq_f32(small, splat(1.0), zero));
        let t = vaddq_f32(vsubq_f32(m, splat(1.0)), vbslq_f32(small, m, zero));
        let z = vmulq_f32(t, t);
        let mut p = splat(7.037_683_6e-2);
        p = vfmaq_f32(splat(-1.151_461e-1), p, t);
        p = vfmaq_f32(splat(1.167_699_9e-1), p, t);
        p = vfmaq_f32(splat(-1.242_014_1e-1), p, t);
        p = vfmaq_f32(splat(1.424_932_3e-1), p, t);
        p = vfmaq_f32(splat(-1.666_805_8e-1), p, t);
        p = vfmaq_f32(splat(2.000_071_4e-1), p, t);
        p = vfmaq_f32(splat(-2.499_999_4e-1), p, t);
        p = vfmaq_f32(splat(3.333_333e-1), p, t);
        let mut y = vmulq_f32(vmulq_f32(p, t), z);
        y = vfmaq_f32(y, e, splat(-2.121_944_4e-4));
        y = vfmsq_f32(y, z, splat(0.5));
        let r = vaddq_f32(t, y);
        vfmaq_f32(r, e, splat(0.693_359_4))
    }
}

/// ln(1 + u) for `u` in `[0, 1]`.
#[inline]
fn ln_1p_unit(u: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        let one = splat(1.0);
        let w = vaddq_f32(one, u);
        let wm1 = vsubq_f32(w, one); // exact (Sterbenz)
        let exact = vceqq_f32(wm1, splat(0.0));
        let corrected = vmulq_f32(ln(w), vdivq_f32(u, vbslq_f32(exact, one, wm1)));
        // 1 + u == 1: ln(1 + u) = u to within rounding.
        vbslq_f32(exact, u, corrected)
    }
}

/// PyTorch's softplus (threshold 20): `x` above 20, else `ln(1 + e^x)`, computed as
/// `max(x, 0) + ln(1 + e^-|x|)`.
#[inline]
pub(super) fn softplus(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        let soft = vaddq_f32(
            vmaxq_f32(x, splat(0.0)),
            ln_1p_unit(exp(vnegq_f32(vabsq_f32(x)))),
        );
        let big = vcgtq_f32(x, splat(20.0));
        vbslq_f32(big, x, soft)
    }
}

/// `2^y` for `y <= 0` (the scan's `exp(dt·A)` as `2^(dt·A·log2 e)`, with
/// `A·log2 e` formed once per channel and state): Cephes `exp2f`'s polynomial
/// (`1 + f·P(f)` on `[-½, ½]`, 1.7e-7 relative error) evaluated as Horner in
/// `f²`, and `2ⁿ` applied by adding `n` to the exponent bits (taken from a
/// magic-number addition). Within 1 ulp on `[-126, 0]` (measured by the tests
/// below); below `y = -126` it returns `2^-126`. The same construction as the
/// AVX2 `exp2_nonpos`, so both tables' scans round alike.
#[inline]
pub(super) fn exp2_nonpos(y: float32x4_t) -> float32x4_t {
    // 1.5·2²³: adding it rounds y to an integer n in the low mantissa bits (as
    // 2²² + n, whose low 9 bits are n mod 2⁹), so shifting them to the exponent
    // field gives n·2²³ mod 2³², which added to p's bits scales p by 2ⁿ.
    const MAGIC: f32 = 12_582_912.0;
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe {
        let y = vmaxq_f32(splat(-126.0), y);
        let t = vaddq_f32(y, splat(MAGIC));
        // The same n as t − MAGIC (both round to nearest even), one step sooner.
        let n = vrndnq_f32(y);
        let f = vsubq_f32(y, n);
        // Horner in f² (odd and even coefficients paired): 4 dependent steps
        // instead of 6, so more of the scan's independent chains fit in flight
        // (measured on x86-64; there is no ARM machine to measure this on).
        let f2 = vmulq_f32(f, f);
        let q01 = vfmaq_f32(splat(1.0), splat(6.931_472e-1), f);
        let q23 = vfmaq_f32(splat(2.402_264_8e-1), splat(5.550_332_5e-2), f);
        let q45 = vfmaq_f32(splat(9.618_437e-3), splat(1.339_887_4e-3), f);
        let q = vfmaq_f32(q45, splat(1.535_336_2e-4), f2);
        let q = vfmaq_f32(q23, q, f2);
        let p = vfmaq_f32(q01, q, f2);
        // An integer add instead of a multiply by 2ⁿ: exact, as the result is
        // normal (n >= -126, and p >= 1 when n = -126 because f >= 0).
        let n23 = vshlq_n_s32::<23>(vreinterpretq_s32_f32(t));
        vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), n23))
    }
}

/// SiLU: `x / (1 + e^-x)`.
#[inline]
pub(super) fn silu(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only instructions.
    unsafe { vdivq_f32(x, vaddq_f32(splat(1.0), exp(vnegq_f32(x)))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place (ordered-integer distance).
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 {
                i32::MIN - i
            } else {
                i
            }
        };
        (key(a) as i64 - key(b) as i64).unsigned_abs() as u32
    }

    /// `f` applied to `xs` (length a multiple of 4), 4 lanes at a time.
    fn map(f: fn(float32x4_t) -> float32x4_t, xs: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; xs.len()];
        for (o, x) in out.chunks_exact_mut(4).zip(xs.chunks_exact(4)) {
            // SAFETY: NEON is baseline; 4 floats are read from `x` and written to `o`.
            unsafe { vst1q_f32(o.as_mut_ptr(), f(vld1q_f32(x.as_ptr()))) };
        }
        out
    }

    /// `n` evenly spaced values in `[lo, hi]`, plus the edges and a few special
    /// values, padded to a multiple of 4.
    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect();
        v.extend([lo, hi, -0.0, 1e-30, -1e-30, -87.33, -87.34]);
        while v.len() & 3 != 0 {
            v.push(0.0);
        }
        v
    }

    #[test]
    fn exp_is_within_1_ulp_on_minus_88_to_0() {
        let xs = grid(-88.0, 0.0, 4_000_000);
        let got = map(exp, &xs);
        let (mut worst, mut worst_normal, mut at) = (0, 0, 0.0);
        for (&x, &g) in xs.iter().zip(&got) {
            let u = ulps(g, x.exp());
            if u > worst {
                (worst, at) = (u, x);
            }
            if x.exp() >= f32::MIN_POSITIVE {
                worst_normal = worst_normal.max(u);
            }
        }
        eprintln!(
            "neon exp on [-88, 0]: max {worst} ulp (at {at}), {worst_normal} ulp on normal results"
        );
        assert!(worst <= 2, "exp: {worst} ulp at {at}");
    }

    #[test]
    fn exp2_nonpos_is_within_2_ulp_down_to_the_normal_range() {
        let mut ys = grid(-126.0, 0.0, 4_000_000);
        ys.extend(grid(-1.0, 0.0, 1_000_000));
        for v in ys.iter_mut().filter(|v| !(-126.0..=0.0).contains(*v)) {
            *v = 0.0;
        }
        let got = map(exp2_nonpos, &ys);
        let (mut worst, mut at) = (0, 0.0);
        for (&y, &g) in ys.iter().zip(&got) {
            let want = (y as f64).exp2() as f32;
            let u = ulps(g, want);
            if u > worst {
                (worst, at) = (u, y);
            }
        }
        eprintln!("neon exp2_nonpos on [-126, 0]: max {worst} ulp (at {at})");
        assert!(worst <= 2, "exp2_nonpos: {worst} ulp at {at}");
        let tiny = map(
            exp2_nonpos,
            &[
                -126.5,
                -127.0,
                -1e4,
                f32::NEG_INFINITY,
                -200.0,
                -126.0,
                -0.0,
                0.0,
            ],
        );
        assert!(
            tiny[..6].iter().all(|&v| v == f32::MIN_POSITIVE),
            "{tiny:?}"
        );
        assert_eq!(&tiny[6..], &[1.0, 1.0]);
    }

    #[test]
    fn exp_handles_the_edges() {
        let xs = [
            0.0,
            1.0,
            10.0,
            88.7,
            88.8,
            200.0,
            -103.0,
            -200.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
        ];
        let mut padded = xs.to_vec();
        padded.resize(12, 0.0);
        let got = map(exp, &padded);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.exp();
            assert!(
                ulps(g, want) <= 2 || (g == want),
                "exp({x}) = {g}, want {want}"
            );
        }
        let nan = map(exp, &[f32::NAN; 4]);
        assert!(nan.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn ln_softplus_silu_are_accurate() {
        let mut xs = grid(1e-3, 1e4, 200_000);
        xs.retain(|&v| v > 0.0);
        let r2 = std::f32::consts::FRAC_1_SQRT_2;
        xs.extend([
            f32::MIN_POSITIVE,
            r2,
            f32::from_bits(r2.to_bits() + 1),
            f32::from_bits(r2.to_bits() - 1),
            1.0 + f32::EPSILON,
            3e38,
            1e-37,
            1e-37,
            2.0,
        ]);
        while xs.len() & 3 != 0 {
            xs.push(1.0);
        }
        let got = map(ln, &xs);
        let worst = xs
            .iter()
            .zip(&got)
            .map(|(&x, &g)| ulps(g, x.ln()))
            .max()
            .unwrap();
        eprintln!("neon ln: max {worst} ulp");
        assert!(worst <= 2);

        let xs = grid(-60.0, 30.0, 400_000);
        let sp = map(softplus, &xs);
        let worst = xs
            .iter()
            .zip(&sp)
            .map(|(&x, &g)| ulps(g, crate::ops::act::softplus(x)))
            .max()
            .unwrap();
        eprintln!("neon softplus: max {worst} ulp");
        assert!(worst <= 4);

        let si = map(silu, &xs);
        let worst = xs
            .iter()
            .zip(&si)
            .map(|(&x, &g)| ulps(g, crate::ops::act::silu(x)))
            .max()
            .unwrap();
        eprintln!("neon silu: max {worst} ulp");
        assert!(worst <= 4);
    }
}
