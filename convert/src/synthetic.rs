//! Seeded random weights with the shapes of a published Mamba, Mamba-2 or
//! Falcon-Mamba model.
//!
//! Values follow the shapes of `mamba_ssm`'s initialisation so that quantization error
//! and kernel timings are representative, and so that the model runs without
//! overflowing (Mamba §3.6; `state-spaces/mamba@v2.2.2`
//! `mamba_ssm/modules/mamba_simple.py`, `Mamba.__init__`, and
//! `mamba_ssm/modules/mamba2.py`, `Mamba2.__init__`):
//!
//! | tensor | values |
//! |---|---|
//! | embeddings, lm_head | N(0, 0.02) |
//! | in/x/dt/out_proj weights | U(±1/√fan_in), fan_in = row length |
//! | conv1d weight and bias | U(±1/√d_conv) |
//! | Mamba-1 `A` `[d_inner, N]` | −exp(A_log), A_log = log(1..=d_state) per row (S4D-real) |
//! | Mamba-2 `A` `[H]` | −exp(U[log 1, log 16]) per head |
//! | `D`, norm weights (block, final, gated) | 1 |
//! | dt_proj bias, Mamba-2 `dt_bias` | softplus⁻¹(dt), dt log-uniform in [0.001, 0.1], floored at 1e-4 |
//! | projection biases | 0 |
//!
//! Every row is generated from its own seed, `mix(mix(seed ^ fnv1a(name)) ^ row)`, by a
//! splitmix64 stream, so the output depends only on (seed, name, row): generation runs
//! row-parallel and the file is the same whatever the thread count.

use mamba_format::{Mamba2Config, MambaConfig, ModelConfig, TensorDef};

use crate::options::{SyntheticFamily, SyntheticSize};

/// The hyper-parameters of a published size (see [`SyntheticSize`] for each family's
/// constants).
pub fn synthetic_config(size: SyntheticSize) -> ModelConfig {
    let (d_model, n_layer) = size.dims();
    match size.family() {
        // state-spaces/mamba-*: GPT-NeoX vocab padded to 50280, tied.
        SyntheticFamily::Mamba => ModelConfig::Mamba(MambaConfig {
            d_model,
            n_layer,
            d_state: 16,
            d_conv: 4,
            d_inner: 2 * d_model,
            dt_rank: d_model.div_ceil(16),
            vocab_size: 50280,
            rms_norm_eps: 1e-5,
            tie_embeddings: true,
            conv_bias: true,
            proj_bias: false,
            mixer_rms_eps: None,
        }),
        // tiiuae/falcon-mamba-7b: its own 65024-token vocab, untied, and the dt/B/C
        // norms.
        SyntheticFamily::FalconMamba => ModelConfig::Mamba(MambaConfig {
            d_model,
            n_layer,
            d_state: 16,
            d_conv: 4,
            d_inner: 2 * d_model,
            dt_rank: d_model.div_ceil(16),
            vocab_size: 65024,
            rms_norm_eps: 1e-5,
            tie_embeddings: false,
            conv_bias: true,
            proj_bias: false,
            mixer_rms_eps: Some(1e-6),
        }),
        // state-spaces/mamba2-*: heads of 64, one group, d_state 128, GPT-NeoX vocab
        // padded to 50288, tied.
        SyntheticFamily::Mamba2 => ModelConfig::Mamba2(mamba2(d_model, n_layer, 1, 50288, true)),
        // mistralai/Mamba-Codestral-7B-v0.1: 8 groups, its own 32768-token vocab,
        // untied.
        SyntheticFamily::Codestral => {
            ModelConfig::Mamba2(mamba2(d_model, n_layer, 8, 32768, false))
        }
    }
}

/// A published Mamba-2 shape: expand 2, heads of 64, d_state 128, d_conv 4, chunks of
/// 256, eps 1e-5, conv bias, no projection biases, no dt clamp.
fn mamba2(
    d_model: usize,
    n_layer: usize,
    n_groups: usize,
    vocab: usize,
    tied: bool,
) -> Mamba2Config {
    Mamba2Config {
        d_model,
        n_layer,
        d_state: 128,
        d_conv: 4,
        n_heads: 2 * d_model / 64,
        head_dim: 64,
        n_groups,
        chunk_size: 256,
        vocab_size: vocab,
        rms_norm_eps: 1e-5,
        norm_eps: 1e-5,
        norm_before_gate: false,
        dt_min: 0.0,
        dt_max: f64::INFINITY,
        tie_embeddings: tied,
        conv_bias: true,
        proj_bias: false,
    }
}

/// Fills one row of a tensor: `(row index, destination)`.
pub type RowFn = Box<dyn Fn(usize, &mut [f32]) + Send + Sync>;

/// The row generator for a standard tensor of `cfg`, seeded by `seed`.
pub fn row_generator(def: &TensorDef, cfg: &ModelConfig, seed: u64) -> RowFn {
    let tensor_seed = mix(seed ^ fnv1a(def.name.as_bytes()));
    let row_rng = move |row: usize| SplitMix64(mix(tensor_seed ^ row as u64));
    let row_len = *def.shape.last().unwrap_or(&1) as usize;
    let name = def.name.as_str();
    let uniform = |bound: f32| -> RowFn {
        Box::new(move |row, dst| {
            let mut rng = row_rng(row);
            dst.iter_mut()
                .for_each(|x| *x = (2.0 * rng.next_f32() - 1.0) * bound);
        })
    };
    let constant = |c: f32| -> RowFn { Box::new(move |_, dst| dst.fill(c)) };
    let d_conv_bound = 1.0 / (cfg.d_conv() as f32).sqrt();
    if name == "embeddings.weight" || name == "lm_head.weight" {
        Box::new(move |row, dst| {
            let mut rng = row_rng(row);
            dst.iter_mut().for_each(|x| *x = 0.02 * rng.next_normal());
        })
    } else if name.ends_with("_proj.weight") {
        uniform(1.0 / (row_len as f32).sqrt())
    } else if name.ends_with("conv1d.weight") || name.ends_with("conv1d.bias") {
        uniform(d_conv_bound)
    } else if name.ends_with("mixer.A") && matches!(cfg, ModelConfig::Mamba2(_)) {
        // mamba_ssm draws A per head from A_init_range = (1, 16); log-uniform keeps
        // the short and the long memories equally represented.
        let (lo, hi) = (1f32.ln(), 16f32.ln());
        Box::new(move |row, dst| {
            let mut rng = row_rng(row);
            dst.iter_mut()
                .for_each(|x| *x = -((lo + rng.next_f32() * (hi - lo)).exp()));
        })
    } else if name.ends_with("mixer.A") {
        Box::new(|_, dst| {
            for (j, x) in dst.iter_mut().enumerate() {
                let a_log = ((j + 1) as f32).ln();
                *x = -(a_log.exp());
            }
        })
    } else if name.ends_with("dt_proj.bias") || name.ends_with("mixer.dt_bias") {
        Box::new(move |row, dst| {
            let mut rng = row_rng(row);
            dst.iter_mut().for_each(|x| *x = dt_bias(rng.next_f32()));
        })
    } else if name.ends_with("_proj.bias") {
        constant(0.0)
    } else {
        // norm weights (block, final, Mamba-2's gated norm) and D
        constant(1.0)
    }
}

/// softplus⁻¹ of a log-uniform dt in [0.001, 0.1] (`u` uniform in [0, 1)), as
/// `mamba_simple.py` initialises `dt_proj.bias` and `mamba2.py` `dt_bias`:
/// `dt + log(-expm1(-dt))`.
fn dt_bias(u: f32) -> f32 {
    let (lo, hi) = (0.001f64.ln(), 0.1f64.ln());
    let dt = (lo + u as f64 * (hi - lo)).exp().max(1e-4);
    (dt + (-(-dt).exp_m1()).ln()) as f32
}

/// splitmix64's output mix (Steele, Lea, Flood 2014), used to derive seeds.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of a tensor name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// splitmix64: a tiny, fast generator with a 64-bit state; enough for test weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1) with 24 bits.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Standard normal (Box–Muller, one of the pair).
    fn next_normal(&mut self) -> f32 {
        let u1 = 1.0 - self.next_f32(); // (0, 1]
        let u2 = self.next_f32();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, shape: &[u64]) -> TensorDef {
        TensorDef {
            name: name.into(),
            shape: shape.to_vec(),
            role: mamba_format::TensorRole::Matrix,
        }
    }

    #[test]
    fn rows_depend_on_seed_name_and_row_only() {
        let cfg = synthetic_config(SyntheticSize::M130);
        let d = def("layers.0.mixer.in_proj.weight", &[3072, 768]);
        let (mut a, mut b) = (vec![0f32; 768], vec![0f32; 768]);
        row_generator(&d, &cfg, 7)(5, &mut a);
        row_generator(&d, &cfg, 7)(5, &mut b);
        assert_eq!(a, b);
        row_generator(&d, &cfg, 8)(5, &mut b);
        assert_ne!(a, b);
        row_generator(&d, &cfg, 7)(6, &mut b);
        assert_ne!(a, b);
        let bound = 1.0 / 768f32.sqrt();
        assert!(a.iter().all(|x| x.abs() <= bound));
    }

    #[test]
    fn distributions_look_right() {
        let cfg = synthetic_config(SyntheticSize::M130);
        let mut e = vec![0f32; 768];
        let mut sq = 0f64;
        for r in 0..64 {
            row_generator(&def("embeddings.weight", &[50280, 768]), &cfg, 0)(r, &mut e);
            sq += e.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        }
        let std = (sq / (64.0 * 768.0)).sqrt();
        assert!((std - 0.02).abs() < 0.001, "std {std}");

        let mut a = vec![0f32; 16];
        row_generator(&def("layers.0.mixer.A", &[1536, 16]), &cfg, 0)(3, &mut a);
        assert!((a[0] + 1.0).abs() < 1e-6 && (a[15] + 16.0).abs() < 1e-4);

        let mut b = vec![0f32; 1536];
        row_generator(&def("layers.0.mixer.dt_proj.bias", &[1536]), &cfg, 0)(0, &mut b);
        // softplus(bias) = dt in [0.001, 0.1]
        for &x in &b {
            let dt = (x as f64).exp().ln_1p();
            assert!((0.000_99..=0.100_1).contains(&dt), "dt {dt}");
        }
    }

    #[test]
    fn mamba2_a_and_dt_bias_are_per_head_and_in_range() {
        let cfg = synthetic_config(SyntheticSize::Mamba2M130);
        let ModelConfig::Mamba2(m) = &cfg else {
            panic!("{cfg:?}")
        };
        let h = m.n_heads;
        let mut a = vec![0f32; h];
        row_generator(&def("layers.0.mixer.A", &[h as u64]), &cfg, 0)(0, &mut a);
        assert!(a.iter().all(|&x| (-16.0..=-1.0).contains(&x)), "{a:?}");
        // Not constant: each head has its own decay.
        assert!(a.iter().any(|&x| x != a[0]));
        let mut b = vec![0f32; h];
        row_generator(&def("layers.0.mixer.dt_bias", &[h as u64]), &cfg, 0)(0, &mut b);
        for &x in &b {
            let dt = (x as f64).exp().ln_1p();
            assert!((0.000_99..=0.100_1).contains(&dt), "dt {dt}");
        }
        let mut n = vec![0f32; m.d_inner()];
        row_generator(
            &def("layers.0.mixer.norm.weight", &[n.len() as u64]),
            &cfg,
            0,
        )(0, &mut n);
        assert!(n.iter().all(|&x| x == 1.0));
    }
}
