//! Which type each tensor gets: [`Preset`], the tensor classes, and llama.cpp's
//! fallback for rows that a block does not divide.
//!
//! # Presets
//!
//! Only tensors of role [`TensorRole::Matrix`] (embeddings, `in_proj`, `x_proj`,
//! `dt_proj`, `out_proj`, `lm_head`) are ever quantized; every `F32Only` tensor
//! (norms, conv1d, biases, `A`, `D`, Mamba-2's `dt_bias` and gated norm) stays f32
//! under every preset. The rules go by tensor name, so they apply unchanged to
//! Falcon-Mamba (Mamba-1's tensors) and to Mamba-2, which has no `x_proj` or
//! `dt_proj`: its `in_proj` (z, x, B, C and dt in one matrix) and `out_proj` are
//! typed like Mamba-1's.
//!
//! | preset | embeddings / lm_head | `out_proj` of layer *i* | other matrices |
//! |---|---|---|---|
//! | any type name (`f32`, `f16`, `bf16`, `q8_0`, `q5_1`, `q5_0`, `q4_1`, `q4_0`, `q6_k`, `q5_k`, `q4_k`, `q3_k`, `q2_k`, `iq4_nl`, `iq4_xs`) | that type | that type | that type |
//! | `q2_k_m` | q6_k | q3_k | q2_k |
//! | `q3_k_m` | q6_k | q5_k if `i < n_layer/16`, else q4_k | q3_k |
//! | `q4_k_m` | q6_k | q6_k if `use_more_bits(i, n_layer)`, else q4_k | q4_k |
//! | `q5_k_m` | q6_k | q6_k if `use_more_bits(i, n_layer)`, else q5_k | q5_k |
//!
//! The mixes are llama.cpp's `LLAMA_FTYPE_MOSTLY_{Q2_K,Q3_K_M,Q4_K_M,Q5_K_M}`
//! (`llama_tensor_get_type`) mapped onto Mamba's tensors: `out_proj` plays the part
//! of `ffn_down`/`attn_output` (it writes into the residual stream), and a tied
//! embedding is also the LM head (the `output.weight` rule: q6_k). llama.cpp calls
//! its Q2_K mix "Q2_K - Medium"; here it is `q2_k_m`, because `q2_k` is the uniform
//! preset of that type, as every type name is. llama.cpp's rules for `attn_v` and
//! `attn_qkv` have no counterpart (Mamba has no attention), so `in_proj` keeps the
//! base type, as in the q4_k_m and q5_k_m mixes. For Q3_K_M the `ffn_down` rule's
//! q3_k branch is Falcon-only (`LLM_ARCH_FALCON`, the attention model, not
//! Falcon-Mamba, which llama.cpp runs as `mamba`), so `out_proj` is q4_k from layer
//! `n_layer/16` on.
//!
//! `use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2` (integer
//! division), llama.cpp's rule for its `_M` mixes: the first and last eighth of the
//! layers and every third layer between get the larger type.
//!
//! # Fallback
//!
//! A row (the last dimension) must be a whole number of blocks. When it is not, the
//! type falls back as llama.cpp's `tensor_type_fallback` does: q2_k and q3_k → q4_0,
//! q4_k → q5_0, q5_k → q5_1, q6_k → q8_0, iq4_xs → iq4_nl; if 32 does not divide the
//! row either (or the requested type was already a 32-block type), f16. `dt_proj`
//! rows are `dt_rank` long (4, 16, 48, 80, ...) and so often fall back; Mamba-2 has
//! no such narrow matrix, and only small test models fall back on `in_proj` (rows of
//! `d_model`) or `out_proj` (rows of `d_inner`). The fallback is recorded in
//! [`crate::TensorReport::fallback`] and printed.
//!
//! Sources: `ggml-org/llama.cpp@007dbbf3fd17eefe9b47fee45f48f7ba5e62b714`
//! `src/llama-quant.cpp` (`use_more_bits`, `tensor_type_fallback`,
//! `llama_tensor_get_type`); the Q2_K and Q3_K_M rules and the fallbacks of the
//! 2- and 3-bit and IQ4 types from `ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f`
//! (the same file; `llama_tensor_get_type_impl`), where the older rules are unchanged.

use std::fmt;
use std::str::FromStr;

use mamba_format::{QuantType, TensorDef, TensorRole};

use crate::error::ParseNameError;

/// How tensors are typed; see the module docs for the exact table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Every matrix gets this type (F32Only tensors stay f32).
    Uniform(QuantType),
    /// llama.cpp-style Q2_K ("Q2_K - Medium"): q2_k, with q3_k for every
    /// `out_proj` and q6_k for embeddings and lm_head.
    Q2KM,
    /// llama.cpp-style Q3_K_M: q3_k, with q5_k/q4_k for `out_proj` and q6_k for
    /// embeddings and lm_head.
    Q3KM,
    /// llama.cpp-style Q4_K_M: q4_k, with q6_k for embeddings, lm_head and some
    /// `out_proj`s.
    Q4KM,
    /// llama.cpp-style Q5_K_M: q5_k, with q6_k for embeddings, lm_head and some
    /// `out_proj`s.
    Q5KM,
}

impl Preset {
    /// Every preset: the uniform ones in type-id order, then the mixes.
    pub fn all() -> Vec<Preset> {
        let mut v: Vec<Preset> = QuantType::ALL.into_iter().map(Preset::Uniform).collect();
        v.extend([Preset::Q2KM, Preset::Q3KM, Preset::Q4KM, Preset::Q5KM]);
        v
    }

    /// The command-line name (`"q8_0"`, `"q4_k_m"`), also written as
    /// `general.quantization`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Uniform(t) => t.name(),
            Preset::Q2KM => "q2_k_m",
            Preset::Q3KM => "q3_k_m",
            Preset::Q4KM => "q4_k_m",
            Preset::Q5KM => "q5_k_m",
        }
    }

    /// The type this preset asks for `def` (before any fallback) in a model of
    /// `n_layer` layers.
    pub fn requested_type(self, def: &TensorDef, n_layer: usize) -> QuantType {
        if def.role == TensorRole::F32Only {
            return QuantType::F32;
        }
        let base = match self {
            Preset::Uniform(t) => return t,
            Preset::Q2KM => QuantType::Q2_K,
            Preset::Q3KM => QuantType::Q3_K,
            Preset::Q4KM => QuantType::Q4_K,
            Preset::Q5KM => QuantType::Q5_K,
        };
        match TensorClass::of(&def.name) {
            TensorClass::Embeddings | TensorClass::LmHead => QuantType::Q6_K,
            TensorClass::OutProj => self.out_proj_type(base, layer_index(&def.name), n_layer),
            _ => base,
        }
    }

    /// The type of layer `layer`'s `out_proj` under a mix of base type `base`:
    /// llama.cpp's `ffn_down` rule of the mix.
    fn out_proj_type(self, base: QuantType, layer: Option<usize>, n_layer: usize) -> QuantType {
        match (self, layer) {
            (Preset::Q2KM, _) => QuantType::Q3_K,
            (Preset::Q3KM, Some(i)) if i < n_layer / 16 => QuantType::Q5_K,
            (Preset::Q3KM, _) => QuantType::Q4_K,
            (Preset::Q4KM | Preset::Q5KM, Some(i)) if use_more_bits(i, n_layer) => QuantType::Q6_K,
            _ => base,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::all()
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseNameError {
                what: "type",
                found: s.to_string(),
                accepted: Preset::all()
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// llama.cpp's `use_more_bits`: true for the first and last eighth of the layers and
/// every third layer in between.
pub fn use_more_bits(i_layer: usize, n_layers: usize) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type actually written for a row of `row_len` elements when `requested` is
/// asked for, and whether that is a fallback (see the module docs).
pub fn fit_type(requested: QuantType, row_len: usize) -> (QuantType, bool) {
    if row_len.is_multiple_of(requested.block_size()) {
        return (requested, false);
    }
    let next = match requested {
        QuantType::Q2_K | QuantType::Q3_K => QuantType::Q4_0,
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        QuantType::IQ4_XS => QuantType::IQ4_NL,
        // The 32-block types (IQ4_NL included) have no smaller block to go to.
        _ => QuantType::F16,
    };
    if row_len.is_multiple_of(next.block_size()) {
        (next, true)
    } else {
        (QuantType::F16, true)
    }
}

/// The groups of tensors the summary table reports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorClass {
    /// `embeddings.weight`.
    Embeddings,
    /// `layers.N.mixer.in_proj.weight`.
    InProj,
    /// `layers.N.mixer.x_proj.weight`.
    XProj,
    /// `layers.N.mixer.dt_proj.weight`.
    DtProj,
    /// `layers.N.mixer.out_proj.weight`.
    OutProj,
    /// `lm_head.weight` (untied models only).
    LmHead,
    /// Everything that always stays f32: norms, conv1d, biases, `A`, `D`, `dt_bias`.
    F32,
}

impl TensorClass {
    /// Every class, in table order.
    pub const ALL: [TensorClass; 7] = [
        TensorClass::Embeddings,
        TensorClass::InProj,
        TensorClass::XProj,
        TensorClass::DtProj,
        TensorClass::OutProj,
        TensorClass::LmHead,
        TensorClass::F32,
    ];

    /// The class of a standard tensor name.
    pub fn of(name: &str) -> TensorClass {
        if name == "embeddings.weight" {
            TensorClass::Embeddings
        } else if name == "lm_head.weight" {
            TensorClass::LmHead
        } else if name.ends_with(".mixer.in_proj.weight") {
            TensorClass::InProj
        } else if name.ends_with(".mixer.x_proj.weight") {
            TensorClass::XProj
        } else if name.ends_with(".mixer.dt_proj.weight") {
            TensorClass::DtProj
        } else if name.ends_with(".mixer.out_proj.weight") {
            TensorClass::OutProj
        } else {
            TensorClass::F32
        }
    }

    /// Label in the summary table.
    pub fn label(self) -> &'static str {
        match self {
            TensorClass::Embeddings => "embeddings",
            TensorClass::InProj => "in_proj",
            TensorClass::XProj => "x_proj",
            TensorClass::DtProj => "dt_proj",
            TensorClass::OutProj => "out_proj",
            TensorClass::LmHead => "lm_head",
            TensorClass::F32 => "f32 tensors",
        }
    }
}

/// The layer number of a `layers.N.…` name.
fn layer_index(name: &str) -> Option<usize> {
    name.strip_prefix("layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Preset::all() {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert!("q4_k_s".parse::<Preset>().is_err());
        // Type names are the uniform presets; the Q2_K mix has its own name.
        assert_eq!(
            "q2_k".parse::<Preset>(),
            Ok(Preset::Uniform(QuantType::Q2_K))
        );
        assert_eq!("q2_k_m".parse::<Preset>(), Ok(Preset::Q2KM));
        assert_eq!("Q3_K_M".parse::<Preset>(), Ok(Preset::Q3KM));
        assert_eq!(
            "iq4_xs".parse::<Preset>(),
            Ok(Preset::Uniform(QuantType::IQ4_XS))
        );
        let names: Vec<&str> = Preset::all().iter().map(|p| p.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn use_more_bits_matches_llama_cpp() {
        // n = 24 (mamba-130m): n/8 = 3, 7n/8 = 21.
        let picked: Vec<usize> = (0..24).filter(|&i| use_more_bits(i, 24)).collect();
        assert_eq!(picked, [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
        // n = 2: n/8 = 0, 7n/8 = 1.
        assert!(!use_more_bits(0, 2));
        assert!(use_more_bits(1, 2));
    }

    #[test]
    fn fallback_chain() {
        use QuantType::*;
        assert_eq!(fit_type(Q4_K, 768), (Q4_K, false));
        assert_eq!(fit_type(Q4_K, 64), (Q5_0, true));
        assert_eq!(fit_type(Q5_K, 160), (Q5_1, true));
        assert_eq!(fit_type(Q6_K, 96), (Q8_0, true));
        assert_eq!(fit_type(Q4_K, 48), (F16, true));
        assert_eq!(fit_type(Q4_0, 4), (F16, true));
        assert_eq!(fit_type(Q8_0, 16), (F16, true));
        assert_eq!(fit_type(BF16, 3), (BF16, false));
        // The 2- and 3-bit K-quants go to q4_0, IQ4_XS to its 32-block sibling.
        assert_eq!(fit_type(Q2_K, 512), (Q2_K, false));
        assert_eq!(fit_type(Q2_K, 96), (Q4_0, true));
        assert_eq!(fit_type(Q3_K, 160), (Q4_0, true));
        assert_eq!(fit_type(Q3_K, 48), (F16, true));
        assert_eq!(fit_type(IQ4_XS, 64), (IQ4_NL, true));
        assert_eq!(fit_type(IQ4_XS, 40), (F16, true));
        assert_eq!(fit_type(IQ4_NL, 96), (IQ4_NL, false));
        assert_eq!(fit_type(IQ4_NL, 16), (F16, true));
    }

    /// Every 256-block type has a fallback other than f16 for rows of 32·k, as
    /// llama.cpp's `tensor_type_fallback` has for each.
    #[test]
    fn every_256_block_type_falls_back_to_a_32_block_type() {
        for t in QuantType::ALL.into_iter().filter(|t| t.block_size() == 256) {
            let (chosen, fell_back) = fit_type(t, 96);
            assert!(fell_back, "{t}");
            assert_eq!(chosen.block_size(), 32, "{t} -> {chosen}");
        }
    }

    fn matrix(name: &str) -> TensorDef {
        TensorDef {
            name: name.into(),
            shape: vec![1536, 768],
            role: TensorRole::Matrix,
        }
    }

    /// The types of (embeddings, lm_head, in_proj, x_proj, dt_proj, out_proj) of
    /// layer `i` of `n`, under `p`.
    fn mix(p: Preset, i: usize, n: usize) -> [QuantType; 6] {
        let layer = |t: &str| matrix(&format!("layers.{i}.mixer.{t}.weight"));
        [
            p.requested_type(&matrix("embeddings.weight"), n),
            p.requested_type(&matrix("lm_head.weight"), n),
            p.requested_type(&layer("in_proj"), n),
            p.requested_type(&layer("x_proj"), n),
            p.requested_type(&layer("dt_proj"), n),
            p.requested_type(&layer("out_proj"), n),
        ]
    }

    #[test]
    fn q2_k_m_is_llama_cpps_q2_k() {
        use QuantType::*;
        // ffn_down/attn_output -> q3_k in every layer; output -> q6_k.
        for (i, n) in [(0, 24), (5, 24), (23, 24), (0, 1)] {
            assert_eq!(
                mix(Preset::Q2KM, i, n),
                [Q6_K, Q6_K, Q2_K, Q2_K, Q2_K, Q3_K],
                "layer {i} of {n}"
            );
        }
    }

    #[test]
    fn q3_k_m_is_llama_cpps_q3_k_m() {
        use QuantType::*;
        // ffn_down: q5_k below n/16, q4_k after (non-Falcon arch); output -> q6_k.
        let out: Vec<QuantType> = (0..64).map(|i| mix(Preset::Q3KM, i, 64)[5]).collect();
        assert_eq!(out[..4], [Q5_K; 4]);
        assert!(out[4..].iter().all(|&t| t == Q4_K));
        assert_eq!(
            mix(Preset::Q3KM, 0, 24),
            [Q6_K, Q6_K, Q3_K, Q3_K, Q3_K, Q5_K]
        );
        assert_eq!(
            mix(Preset::Q3KM, 1, 24),
            [Q6_K, Q6_K, Q3_K, Q3_K, Q3_K, Q4_K]
        );
        // n/16 = 0 for fewer than 16 layers: no q5_k at all.
        assert_eq!(mix(Preset::Q3KM, 0, 4)[5], Q4_K);
    }

    #[test]
    fn f32_only_tensors_stay_f32_under_every_preset() {
        let def = TensorDef {
            name: "layers.0.mixer.A_log".into(),
            shape: vec![1536, 16],
            role: TensorRole::F32Only,
        };
        for p in Preset::all() {
            assert_eq!(p.requested_type(&def, 24), QuantType::F32, "{p}");
        }
    }

    #[test]
    fn classes() {
        assert_eq!(
            TensorClass::of("layers.3.mixer.dt_proj.weight"),
            TensorClass::DtProj
        );
        assert_eq!(
            TensorClass::of("layers.3.mixer.dt_proj.bias"),
            TensorClass::F32
        );
        assert_eq!(layer_index("layers.17.mixer.out_proj.weight"), Some(17));
        // Mamba-2's per-head tensors and gated norm.
        for name in [
            "layers.0.mixer.dt_bias",
            "layers.0.mixer.norm.weight",
            "layers.0.mixer.A",
        ] {
            assert_eq!(TensorClass::of(name), TensorClass::F32, "{name}");
        }
    }
}
