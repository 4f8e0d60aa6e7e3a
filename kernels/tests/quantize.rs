//! Activation quantizers: every SIMD table's quantizers are bit-identical to the
//! scalar references, and the references meet their definition.

mod common;

use bytemuck::Zeroable;
use common::*;
use mamba_kernels::cpu::act::{BlockQ8K, BlockQ8_1, Q8_1_GROUP};
use mamba_kernels::cpu::scalar::{
    quantize_row_q8_0_ref, quantize_row_q8_1_ref, quantize_row_q8_k_ref,
};

fn inputs(rng: &mut Rng, len: usize) -> Vec<Vec<f32>> {
    let mut v = vec![
        rng.normals(len, 1.0),
        rng.normals(len, 1e-30),
        rng.normals(len, 1e30),
        vec![0.0; len],
    ];
    // Exact halves (ties), a lone spike, negative zeros.
    let mut ties: Vec<f32> = (0..len).map(|i| (i as f32 - 64.0) * 0.5).collect();
    ties[0] = 127.0;
    v.push(ties);
    let mut spike = vec![-0.0; len];
    spike[len / 2] = -3.0;
    v.push(spike);
    v
}

#[test]
fn simd_q8_1_quantizer_is_bit_identical() {
    let mut rng = Rng::new(10);
    for k in simd_tables() {
        let mk = k.tiled.unwrap();
        for nb in BLOCKS {
            for x in inputs(&mut rng, nb * 32) {
                let (mut a, mut b) = (vec![BlockQ8_1::zeroed(); nb], vec![BlockQ8_1::zeroed(); nb]);
                quantize_row_q8_1_ref(&x, &mut a);
                // SAFETY: `k` comes from cpu::simd(), so this CPU supports it.
                unsafe { (mk.quantize_q8_1)(&x, &mut b) };
                assert_eq!(
                    bytemuck::cast_slice::<_, u8>(&a),
                    bytemuck::cast_slice::<_, u8>(&b),
                    "{} nb {nb}",
                    k.name
                );
                quantize_row_q8_0_ref(&x, &mut a);
                // SAFETY: as above.
                unsafe { (mk.quantize_q8_0)(&x, &mut b) };
                assert_eq!(
                    bytemuck::cast_slice::<_, u8>(&a),
                    bytemuck::cast_slice::<_, u8>(&b),
                    "{} nb {nb}: a scale per block",
                    k.name
                );
            }
        }
    }
}

#[test]
fn simd_q8_k_quantizer_is_bit_identical() {
    let mut rng = Rng::new(11);
    for k in simd_tables() {
        let mk = k.tiled.unwrap();
        for nb in [1, 2, 3, 5] {
            for x in inputs(&mut rng, nb * 256) {
                let (mut a, mut b) = (vec![BlockQ8K::zeroed(); nb], vec![BlockQ8K::zeroed(); nb]);
                quantize_row_q8_k_ref(&x, &mut a);
                // SAFETY: `k` comes from cpu::simd(), so this CPU supports it.
                unsafe { (mk.quantize_q8_k)(&x, &mut b) };
                assert_eq!(
                    bytemuck::cast_slice::<_, u8>(&a),
                    bytemuck::cast_slice::<_, u8>(&b),
                    "{} nb {nb}",
                    k.name
                );
            }
        }
    }
}

#[test]
fn reference_quantizers_meet_their_definition() {
    let mut rng = Rng::new(12);
    // 19 blocks: two full groups of 8 and a short one of 3.
    let x = rng.normals(19 * 32, 2.0);
    let mut b = vec![BlockQ8_1::zeroed(); 19];
    quantize_row_q8_1_ref(&x, &mut b);
    for (i, (blk, xs)) in b.iter().zip(x.chunks_exact(32)).enumerate() {
        let g = i / Q8_1_GROUP * Q8_1_GROUP * 32;
        let amax = x[g..(g + Q8_1_GROUP * 32).min(x.len())]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(blk.d, amax / 127.0);
        assert!(blk.qs.iter().all(|&q| q != -128));
        let sum: i32 = blk.qs.iter().map(|&q| q as i32).sum();
        assert_eq!(blk.s, blk.d * sum as f32);
        for (&q, &v) in blk.qs.iter().zip(xs) {
            assert!((q as f32 * blk.d - v).abs() <= blk.d * 0.5001);
        }
    }
    // A scale per block: each block's own amax.
    quantize_row_q8_0_ref(&x, &mut b);
    for (blk, xs) in b.iter().zip(x.chunks_exact(32)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(blk.d, amax / 127.0);
        let sum: i32 = blk.qs.iter().map(|&q| q as i32).sum();
        assert_eq!(blk.s, blk.d * sum as f32);
    }
    let mut k = vec![BlockQ8K::zeroed(); 2];
    quantize_row_q8_k_ref(&x[..512], &mut k);
    for blk in &k {
        for (g, &s) in blk.bsums.iter().enumerate() {
            assert_eq!(
                s as i32,
                blk.qs[16 * g..16 * g + 16]
                    .iter()
                    .map(|&q| q as i32)
                    .sum::<i32>()
            );
        }
    }
}
