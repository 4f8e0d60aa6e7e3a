//! Tests for every row of [`QUANT_KINDS`]: error budgets on ggml's test vector and on
//! random data, zeros, determinism, hand-derived exact cases, golden bytes, and the
//! `QuantType` lookups.
//!
//! The quantized bytes were also checked, outside this crate, to be identical to a C
//! transcription of ggml's `ggml-quants.c` reference functions on 32768 values of
//! mixed data; the golden hashes below are those bytes.

use super::k_common::{get_scale_min_k4, nearest_int, pack_scale_min_k4};
use super::*;

/// ggml's `test-quantize-fns` vector `0.1 + 2 cos(i + offset)`. The cosine is taken
/// in f64 and rounded once, so the golden bytes do not depend on the platform's
/// `cosf`.
fn cos_vector(n: usize, offset: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1 + 2.0 * (i as f64 + offset).cos()) as f32)
        .collect()
}

/// xorshift64: deterministic, dependency-free random numbers.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }
}

fn quantize(k: &QuantKind, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; x.len() / k.block_size * k.type_size];
    (k.quantize_row_ref)(x, &mut q);
    q
}

fn dequantize(k: &QuantKind, q: &[u8]) -> Vec<f32> {
    let mut y = vec![0f32; q.len() / k.type_size * k.block_size];
    (k.dequantize_row_ref)(q, &mut y);
    y
}

fn round_trip(k: &QuantKind, x: &[f32]) -> Vec<f32> {
    dequantize(k, &quantize(k, x))
}

/// Root-mean-square difference (a true RMS, not ggml's `sqrt(sum) / n`).
fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

fn std_dev(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn kind(name: &str) -> &'static QuantKind {
    QuantType::from_name(name).unwrap().kind()
}

fn f16_round(x: f32) -> f32 {
    f16_from_le(f16_to_le(x))
}

// ---------------------------------------------------------------- error budgets

#[test]
fn cos_vector_rmse_within_budget_and_budget_tight() {
    let x = cos_vector(4096, 0.0);
    for k in QUANT_KINDS.iter() {
        let e = rmse(&x, &round_trip(k, &x));
        let budget = k.rmse_budget as f64;
        assert!(e <= budget, "{}: rmse {e:e} > budget {budget:e}", k.name);
        if budget == 0.0 {
            assert_eq!(e, 0.0, "{} must be exact", k.name);
        } else {
            assert!(
                e > budget / 4.0,
                "{}: budget {budget:e} is loose for rmse {e:e}",
                k.name
            );
        }
    }
}

#[test]
fn cos_vector_other_offsets_within_budget() {
    for offset in [0.5, 1.0, 100.0] {
        let x = cos_vector(4096, offset);
        for k in QUANT_KINDS.iter() {
            let e = rmse(&x, &round_trip(k, &x));
            assert!(
                e <= k.rmse_budget as f64,
                "{} offset {offset}: rmse {e:e}",
                k.name
            );
        }
    }
}

#[test]
fn random_data_relative_rmse_within_twice_budget() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for k in QUANT_KINDS.iter() {
        // The float types have 1-weight blocks, whose std is 0: give them 32.
        let unit = k.block_size.max(32);
        for n_blocks in [1, 2, 3, 7, 16] {
            for (scale, shift) in [(1.0f32, 0.0f32), (0.01, 0.005), (300.0, -50.0)] {
                let n = n_blocks * unit;
                let x: Vec<f32> = (0..n).map(|_| rng.uniform() * scale + shift).collect();
                let sd = std_dev(&x);
                let rel = rmse(&x, &round_trip(k, &x)) / sd;
                let limit = 2.0 * k.rmse_budget as f64;
                assert!(
                    rel <= limit,
                    "{} n={n} scale={scale}: rmse/std {rel:e} > {limit:e}",
                    k.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------- zeros, determinism

#[test]
fn all_zero_input_gives_all_zero_output() {
    for k in QUANT_KINDS.iter() {
        for n_blocks in [1, 3] {
            let x = vec![0f32; n_blocks * k.block_size];
            let y = round_trip(k, &x);
            assert!(y.iter().all(|&v| v == 0.0), "{}: {y:?}", k.name);
        }
    }
}

#[test]
fn zero_sub_blocks_inside_nonzero_blocks() {
    // A K-quant super-block whose first sub-blocks are zero, and a small block.
    let mut x = cos_vector(512, 3.0);
    x[..64].fill(0.0);
    x[256..256 + 32].fill(0.0);
    for k in QUANT_KINDS.iter() {
        let y = round_trip(k, &x);
        assert!(y.iter().all(|v| v.is_finite()), "{}", k.name);
        assert!(
            y[..32].iter().all(|&v| v == 0.0),
            "{}: {:?}",
            k.name,
            &y[..32]
        );
    }
}

#[test]
fn quantize_is_deterministic() {
    let mut rng = XorShift(42);
    let x: Vec<f32> = (0..1024).map(|_| rng.uniform()).collect();
    for k in QUANT_KINDS.iter() {
        assert_eq!(quantize(k, &x), quantize(k, &x), "{}", k.name);
    }
}

#[test]
fn constant_and_extreme_blocks_do_not_panic() {
    for k in QUANT_KINDS.iter() {
        for v in [1.0f32, -3.5, 1e-30, 1e6, -1e30] {
            let x = vec![v; 2 * k.block_size.max(256)];
            let y = round_trip(k, &x);
            assert_eq!(y.len(), x.len(), "{}", k.name);
        }
    }
}

// ---------------------------------------------------------------- exact cases

#[test]
fn q8_0_ramp_exact() {
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let q = quantize(kind("q8_0"), &x);
    assert_eq!(q[..2], f16_to_le(31.0 / 127.0));
    let d = f16_round(31.0 / 127.0);
    for (i, &b) in q[2..].iter().enumerate() {
        assert_eq!(b as i8 as i32, (i as f32 * 127.0 / 31.0).round() as i32);
    }
    let y = dequantize(kind("q8_0"), &q);
    assert_eq!(y[31], 127.0 * d);
    assert_eq!(y[0], 0.0);
}

#[test]
fn q4_0_exact_grid() {
    // Values on the grid 2*(q - 8) with -16 present: d = -16 / -8 = 2, all exact.
    let x: Vec<f32> = (0..32).map(|j| 2.0 * ((j % 16) as f32 - 8.0)).collect();
    let q = quantize(kind("q4_0"), &x);
    assert_eq!(q[..2], f16_to_le(2.0));
    assert_eq!(q[2], 0x00); // weights 0 and 16 are both q = 0
    assert_eq!(q[17], 0xFF); // weights 15 and 31 are both q = 15
    assert_eq!(round_trip(kind("q4_0"), &x), x);
}

#[test]
fn q4_1_exact_grid() {
    // min = 1, max = 8.5: d = 0.5, m = 1, all exact.
    let x: Vec<f32> = (0..32).map(|j| 1.0 + 0.5 * (j % 16) as f32).collect();
    let q = quantize(kind("q4_1"), &x);
    assert_eq!(q[..4], [f16_to_le(0.5), f16_to_le(1.0)].concat());
    assert_eq!(round_trip(kind("q4_1"), &x), x);
}

#[test]
fn q5_0_exact_grid() {
    // -16..16: d = -16 / -16 = 1 and q = j; weights 16.. have the fifth bit.
    let x: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
    let q = quantize(kind("q5_0"), &x);
    assert_eq!(q[..2], f16_to_le(1.0));
    assert_eq!(q[2..6], 0xFFFF_0000u32.to_le_bytes());
    assert_eq!(round_trip(kind("q5_0"), &x), x);
}

#[test]
fn q5_1_exact_grid() {
    // min = 3, max = 3 + 31/4: d = 0.25, m = 3, all exact.
    let x: Vec<f32> = (0..32).map(|j| 3.0 + 0.25 * j as f32).collect();
    let q = quantize(kind("q5_1"), &x);
    assert_eq!(q[..4], [f16_to_le(0.25), f16_to_le(3.0)].concat());
    assert_eq!(round_trip(kind("q5_1"), &x), x);
}

#[test]
fn q4_k_q5_k_integer_ramps() {
    // Sub-blocks of integers 0..=nmax - off: the first fit is exact, so every
    // sub-block scale is 1 and its min `off`; both quantize to 6-bit 63 against the
    // f16 super-scales max/63.
    for (name, nmax, off) in [("q4_k", 16, 0.0f32), ("q4_k", 16, 5.0), ("q5_k", 32, 7.0)] {
        let x: Vec<f32> = (0..256).map(|i| (i % nmax) as f32 - off).collect();
        let k = kind(name);
        let q = quantize(k, &x);
        assert_eq!(q[..2], f16_to_le(1.0 / 63.0), "{name}");
        assert_eq!(q[2..4], f16_to_le(off / 63.0), "{name}");
        let d = f16_round(1.0 / 63.0) * 63.0;
        let m = f16_round(off / 63.0) * 63.0;
        let y = dequantize(k, &q);
        for (i, &v) in y.iter().enumerate() {
            assert_eq!(v, d * ((i % nmax) as f32) - m, "{name} off {off} i {i}");
        }
    }
}

#[test]
fn q6_k_exact_grid() {
    // Sub-blocks -8..8: make_qx_quants finds scale 1/4 (l = 4x) everywhere, so
    // d = f16(-1/512), all 8-bit scales -128, and d * sc = 1/4 reconstructs exactly.
    let x: Vec<f32> = (0..256).map(|i| (i % 16) as f32 - 8.0).collect();
    let q = quantize(kind("q6_k"), &x);
    assert_eq!(q[208..210], f16_to_le(-1.0 / 512.0));
    assert!(q[192..208].iter().all(|&s| s as i8 == -128));
    assert_eq!(round_trip(kind("q6_k"), &x), x);
}

#[test]
fn float_types_round_to_nearest_even() {
    // 1 + 2^-11 is halfway between f16 1 and 1 + 2^-10: ties to even gives 1.
    let x = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        65504.0,
        -0.0,
    ];
    let y = round_trip(kind("f16"), &x);
    assert_eq!(y[..3], [1.0, 1.0 + 2f32.powi(-9), 65504.0]);
    assert!(y[3] == 0.0 && y[3].is_sign_negative());
    // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie, goes to 1.
    let x = [1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), 3.0e38];
    let y = round_trip(kind("bf16"), &x);
    assert_eq!(y[..2], [1.0, 1.0 + 2f32.powi(-6)]);
    assert!((y[2] / 3.0e38 - 1.0).abs() < 4e-3);
    let q = quantize(kind("bf16"), &[1.0]);
    assert_eq!(q, [0x80, 0x3F]);
    let q = quantize(kind("f16"), &[1.0]);
    assert_eq!(q, [0x00, 0x3C]);
}

// ---------------------------------------------------------------- k_common helpers

#[test]
fn nearest_int_rounds_ties_to_even() {
    let cases = [
        (0.5, 0),
        (1.5, 2),
        (2.5, 2),
        (-0.5, 0),
        (-1.5, -2),
        (3.49, 3),
        (-7.6, -8),
    ];
    for (x, want) in cases {
        assert_eq!(nearest_int(x), want, "{x}");
    }
    assert_eq!(nearest_int(4_194_303.0), 4_194_303);
    let _ = nearest_int(f32::NAN); // meaningless, must not panic
    let _ = nearest_int(1e30);
}

#[test]
fn scale_min_k4_pack_unpack() {
    let ls = [0, 1, 62, 63, 17, 33, 48, 63];
    let lm = [63, 5, 0, 40, 63, 0, 21, 9];
    let packed = pack_scale_min_k4(&ls, &lm);
    for j in 0..8 {
        assert_eq!(get_scale_min_k4(j, &packed), (ls[j], lm[j]), "j {j}");
    }
}

// ---------------------------------------------------------------- golden bytes

/// The first 2 blocks (64 values for the float types) of the cos vector, quantized: the first 16 bytes spelled out and
/// an xxh3-64 of all of them. Byte-identical to ggml's reference quantizers.
#[test]
fn golden_bytes_of_cos_vector() {
    let golden: [(&str, [u8; 16], u64); 10] = [
        (
            "f16",
            [
                0x33, 0x40, 0xb9, 0x3c, 0xdc, 0xb9, 0x85, 0xbf, 0xd4, 0xbc, 0x57, 0x39, 0x0a, 0x40,
                0x6e, 0x3e,
            ],
            0x3d23_3592_b82e_d3ad,
        ),
        (
            "q4_0",
            [
                0x33, 0xb4, 0xf0, 0xa4, 0x3b, 0x0f, 0x5d, 0xc5, 0xf0, 0xc2, 0x49, 0x0f, 0x3e, 0xa8,
                0xf1, 0xd1,
            ],
            0x8745_8b54_e52f_b0dd,
        ),
        (
            "q4_1",
            [
                0x44, 0x34, 0x9a, 0xbf, 0x0f, 0x5c, 0xc4, 0xf0, 0xb3, 0x3a, 0x0f, 0x4d, 0xb6, 0xf1,
                0xc1, 0x58,
            ],
            0x6360_5224_5dc1_cad9,
        ),
        (
            "q5_0",
            [
                0x33, 0xb0, 0x1c, 0x87, 0xe3, 0x38, 0xe0, 0x37, 0x56, 0x0e, 0x99, 0x8b, 0xe1, 0x74,
                0x91, 0x0d,
            ],
            0x011b_bc05_10b2_da5e,
        ),
        (
            "q5_1",
            [
                0x21, 0x30, 0x9a, 0xbf, 0xe3, 0x78, 0x1c, 0xc7, 0x1f, 0xb8, 0xa9, 0xf0, 0x65, 0x74,
                0x0e, 0x7b,
            ],
            0x1690_5c31_badb_0871,
        ),
        (
            "q8_0",
            [
                0x3c, 0x24, 0x7f, 0x47, 0xd4, 0x8e, 0xb7, 0x28, 0x7a, 0x61, 0xf4, 0x98, 0xa1, 0x07,
                0x6c, 0x74,
            ],
            0x413f_3dca_ded8_80f7,
        ),
        (
            "q4_k",
            [
                0x9a, 0x1c, 0xa8, 0x27, 0xfe, 0xff, 0xfe, 0xfa, 0xfe, 0xff, 0xff, 0xff, 0xea, 0xea,
                0xea, 0xea,
            ],
            0x1adb_e4fe_4ba2_6f38,
        ),
        (
            "q5_k",
            [
                0x3e, 0x18, 0xc5, 0x27, 0xfe, 0xfd, 0xfe, 0xfe, 0xff, 0xfd, 0xff, 0xfe, 0xee, 0xee,
                0xee, 0xff,
            ],
            0xdd40_15ba_d156_a709,
        ),
        (
            "q6_k",
            [
                0x20, 0x0e, 0xdb, 0xed, 0x12, 0x06, 0xb1, 0x87, 0xc3, 0x5a, 0x98, 0x2e, 0x55, 0xf3,
                0x9a, 0xa6,
            ],
            0x20bb_e8c2_31bf_4452,
        ),
        (
            "bf16",
            [
                0x06, 0x40, 0x97, 0x3f, 0x3b, 0xbf, 0xf1, 0xbf, 0x9b, 0xbf, 0x2b, 0x3f, 0x01, 0x40,
                0xce, 0x3f,
            ],
            0x09b0_2f1b_6b60_3570,
        ),
    ];
    for (name, head, hash) in golden {
        let k = kind(name);
        let n = 2 * k.block_size.max(32);
        let q = quantize(k, &cos_vector(n, 0.0));
        assert_eq!(q.len(), n / k.block_size * k.type_size, "{name}");
        assert_eq!(q[..16], head, "{name}");
        assert_eq!(xxhash_rust::xxh3::xxh3_64(&q), hash, "{name}");
    }
}

// ---------------------------------------------------------------- QuantType lookups

#[test]
fn quant_type_lookups_round_trip() {
    assert_eq!(QuantType::ALL.len(), QUANT_KINDS.len());
    for (t, k) in QuantType::ALL.into_iter().zip(QUANT_KINDS.iter()) {
        assert_eq!(k.ty, t, "QUANT_KINDS is in id order");
        assert_eq!(QuantType::from_id(t.id()), Some(t));
        assert_eq!(QuantType::from_name(t.name()), Some(t));
        assert_eq!(QuantType::from_name(&t.name().to_uppercase()), Some(t));
        assert_eq!(t.to_string(), k.name);
        assert_eq!(t.bytes_for(0), Some(0));
        assert_eq!(
            t.bytes_for(7 * k.block_size as u64),
            Some(7 * k.type_size as u64)
        );
        if k.block_size > 1 {
            assert_eq!(t.bytes_for(k.block_size as u64 + 1), None);
        }
    }
    assert_eq!(QuantType::F32.bytes_for(u64::MAX), None);
    assert_eq!(QuantType::F16.bytes_for(1 << 63), None);
    assert_eq!(QuantType::Q4_0.bytes_for(1 << 63), Some((1 << 58) * 18));
    assert_eq!(QuantType::from_id(4), None);
    assert_eq!(QuantType::from_id(u32::MAX), None);
    assert_eq!(QuantType::from_name("q4_2"), None);

    let names = [
        "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k", "bf16",
    ];
    let ids = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 30];
    let sizes = [4, 2, 18, 20, 22, 24, 34, 144, 176, 210, 2];
    for ((name, id), size) in names.into_iter().zip(ids).zip(sizes) {
        let t = QuantType::from_name(name).unwrap();
        assert_eq!((t.id(), t.type_size()), (id, size), "{name}");
    }
    let bpw = [
        ("f32", 32.0),
        ("f16", 16.0),
        ("bf16", 16.0),
        ("q4_0", 4.5),
        ("q4_1", 5.0),
        ("q5_0", 5.5),
        ("q5_1", 6.0),
        ("q8_0", 8.5),
        ("q4_k", 4.5),
        ("q5_k", 5.5),
        ("q6_k", 6.5625),
    ];
    for (name, want) in bpw {
        assert_eq!(
            QuantType::from_name(name).unwrap().bits_per_weight(),
            want,
            "{name}"
        );
    }
}

#[test]
fn quantize_row_checks_lengths() {
    let t = QuantType::Q4_K;
    let x = cos_vector(512, 0.0);
    let mut q = vec![0u8; t.bytes_for(512).unwrap() as usize];
    t.quantize_row(&x, &mut q);
    let mut y = vec![0f32; 512];
    t.dequantize_row(&q, &mut y);
    assert_eq!(y, round_trip(t.kind(), &x));
    let r = std::panic::catch_unwind(|| {
        let mut q = vec![0u8; 144];
        QuantType::Q4_K.quantize_row(&[0.0; 100], &mut q);
    });
    assert!(r.is_err());
}
