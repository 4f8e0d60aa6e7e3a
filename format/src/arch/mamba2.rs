//! Mamba-2: the `mamba2.*` keys and the tensor table (SPEC.md §5.5).

use super::{
    check_derived, def, model_defs, require_dim, require_eps, Architecture, TensorDef, TensorRole,
};
use crate::error::{FormatError, Result};
use crate::metadata::{Metadata, Value};

/// Mamba-2 hyper-parameters (`mamba2.*` metadata keys).
///
/// The inner width is `n_heads × head_dim`; heads are split into `n_groups`
/// groups that share B and C (like grouped-query attention shares keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Mamba2Config {
    /// Residual stream width (`mamba2.d_model`).
    pub d_model: usize,
    /// Number of layers (`mamba2.n_layer`).
    pub n_layer: usize,
    /// SSM state size N per head channel (`mamba2.d_state`).
    pub d_state: usize,
    /// Causal conv1d kernel width (`mamba2.d_conv`).
    pub d_conv: usize,
    /// Number of SSM heads H (`mamba2.n_heads`), each with a scalar A, D and dt.
    pub n_heads: usize,
    /// Channels per head P (`mamba2.head_dim`).
    pub head_dim: usize,
    /// Groups G sharing B and C (`mamba2.n_groups`); divides `n_heads`. Also the
    /// number of groups of the gated RMSNorm.
    pub n_groups: usize,
    /// The chunk length the model was trained with (`mamba2.chunk_size`). The
    /// chunked scan gives the same result for any chunk length; readers may use it
    /// as a hint.
    pub chunk_size: usize,
    /// Rows of the embedding and the LM head (`mamba2.vocab_size`), padding included.
    pub vocab_size: usize,
    /// Epsilon of the block norms and the final norm (`mamba2.rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// Epsilon of the gated grouped RMSNorm (`mamba2.norm_eps`).
    pub norm_eps: f64,
    /// The gated norm normalizes `y` and then gates, `norm(y) · SiLU(z)`, instead of
    /// `norm(y · SiLU(z))` (`mamba2.norm_before_gate`; false in transformers and in
    /// mamba_ssm's default).
    pub norm_before_gate: bool,
    /// Lower clamp of dt after the softplus (`mamba2.dt_min`, ≥ 0).
    pub dt_min: f64,
    /// Upper clamp of dt after the softplus (`mamba2.dt_max`, above `dt_min`; may be
    /// +∞, the usual "no limit").
    pub dt_max: f64,
    /// LM head shares the embedding (`mamba2.tie_embeddings`).
    pub tie_embeddings: bool,
    /// conv1d has a bias (`mamba2.conv_bias`).
    pub conv_bias: bool,
    /// in_proj and out_proj have biases (`mamba2.proj_bias`).
    pub proj_bias: bool,
}

impl Mamba2Config {
    /// Inner width `n_heads × head_dim`.
    pub fn d_inner(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Channels of the causal conv (x, B and C): `d_inner + 2 · n_groups · d_state`.
    pub fn conv_dim(&self) -> usize {
        self.d_inner() + 2 * self.n_groups * self.d_state
    }

    /// Rows of `in_proj`: `[z (d_inner), xBC (conv_dim), dt (n_heads)]`.
    pub fn in_proj_rows(&self) -> usize {
        self.d_inner() + self.conv_dim() + self.n_heads
    }

    /// Reads and checks the `mamba2.*` keys.
    pub fn from_metadata(md: &Metadata) -> Result<Mamba2Config> {
        let c = Mamba2Config {
            d_model: require_dim(md, "mamba2.d_model")?,
            n_layer: require_dim(md, "mamba2.n_layer")?,
            d_state: require_dim(md, "mamba2.d_state")?,
            d_conv: require_dim(md, "mamba2.d_conv")?,
            n_heads: require_dim(md, "mamba2.n_heads")?,
            head_dim: require_dim(md, "mamba2.head_dim")?,
            n_groups: require_dim(md, "mamba2.n_groups")?,
            chunk_size: require_dim(md, "mamba2.chunk_size")?,
            vocab_size: require_dim(md, "mamba2.vocab_size")?,
            rms_norm_eps: require_eps(md, "mamba2.rms_norm_eps")?,
            norm_eps: require_eps(md, "mamba2.norm_eps")?,
            norm_before_gate: md.require_bool("mamba2.norm_before_gate")?,
            dt_min: md.require_f64("mamba2.dt_min")?,
            dt_max: md.require_f64("mamba2.dt_max")?,
            tie_embeddings: md.require_bool("mamba2.tie_embeddings")?,
            conv_bias: md.require_bool("mamba2.conv_bias")?,
            proj_bias: md.require_bool("mamba2.proj_bias")?,
        };
        if !c.n_heads.is_multiple_of(c.n_groups) {
            return Err(FormatError::BadValue {
                key: "mamba2.n_groups".into(),
                why: format!("{} does not divide n_heads {}", c.n_groups, c.n_heads),
            });
        }
        let (h, p, g, n) = (
            c.n_heads as u64,
            c.head_dim as u64,
            c.n_groups as u64,
            c.d_state as u64,
        );
        check_derived("mamba2.head_dim", "d_inner = n_heads × head_dim", h * p)?;
        check_derived("mamba2.n_groups", "n_groups × d_state", g * n)?;
        if !(c.dt_min >= 0.0 && c.dt_min.is_finite()) {
            return Err(FormatError::BadValue {
                key: "mamba2.dt_min".into(),
                why: format!("{} is not a finite value ≥ 0", c.dt_min),
            });
        }
        // +∞ passes; NaN is refused by name.
        if c.dt_max.is_nan() || c.dt_max <= c.dt_min {
            return Err(FormatError::BadValue {
                key: "mamba2.dt_max".into(),
                why: format!("{} is not above dt_min {}", c.dt_max, c.dt_min),
            });
        }
        Ok(c)
    }

    /// Writes the `mamba2.*` keys and `general.architecture`.
    pub fn to_metadata(&self, md: &mut Metadata) -> Result<()> {
        md.set(
            super::KEY_ARCHITECTURE,
            Value::String(Architecture::Mamba2.name().into()),
        )?;
        for (k, v) in [
            ("mamba2.d_model", self.d_model),
            ("mamba2.n_layer", self.n_layer),
            ("mamba2.d_state", self.d_state),
            ("mamba2.d_conv", self.d_conv),
            ("mamba2.n_heads", self.n_heads),
            ("mamba2.head_dim", self.head_dim),
            ("mamba2.n_groups", self.n_groups),
            ("mamba2.chunk_size", self.chunk_size),
            ("mamba2.vocab_size", self.vocab_size),
        ] {
            md.set(k, Value::U64(v as u64))?;
        }
        md.set("mamba2.rms_norm_eps", Value::F64(self.rms_norm_eps))?;
        md.set("mamba2.norm_eps", Value::F64(self.norm_eps))?;
        md.set(
            "mamba2.norm_before_gate",
            Value::Bool(self.norm_before_gate),
        )?;
        md.set("mamba2.dt_min", Value::F64(self.dt_min))?;
        md.set("mamba2.dt_max", Value::F64(self.dt_max))?;
        md.set("mamba2.tie_embeddings", Value::Bool(self.tie_embeddings))?;
        md.set("mamba2.conv_bias", Value::Bool(self.conv_bias))?;
        md.set("mamba2.proj_bias", Value::Bool(self.proj_bias))?;
        Ok(())
    }

    /// The standard tensors, in the order the converter writes them.
    pub fn tensor_defs(&self) -> Vec<TensorDef> {
        self.defs().collect()
    }

    /// [`Mamba2Config::tensor_defs`] as a lazy iterator (see
    /// [`super::MambaConfig::tensor_defs`] for why).
    pub(super) fn defs(&self) -> impl Iterator<Item = TensorDef> + '_ {
        use TensorRole::*;
        let (d, di, h, k, cd, rows) = (
            self.d_model as u64,
            self.d_inner() as u64,
            self.n_heads as u64,
            self.d_conv as u64,
            self.conv_dim() as u64,
            self.in_proj_rows() as u64,
        );
        let layer = move |i: usize| {
            let p = |s: &str| format!("layers.{i}.{s}");
            [
                Some(def(p("norm.weight"), &[d], F32Only)),
                Some(def(p("mixer.in_proj.weight"), &[rows, d], Matrix)),
                self.proj_bias
                    .then(|| def(p("mixer.in_proj.bias"), &[rows], F32Only)),
                Some(def(p("mixer.conv1d.weight"), &[cd, k], F32Only)),
                self.conv_bias
                    .then(|| def(p("mixer.conv1d.bias"), &[cd], F32Only)),
                Some(def(p("mixer.dt_bias"), &[h], F32Only)),
                Some(def(p("mixer.A"), &[h], F32Only)),
                Some(def(p("mixer.D"), &[h], F32Only)),
                Some(def(p("mixer.norm.weight"), &[di], F32Only)),
                Some(def(p("mixer.out_proj.weight"), &[d, di], Matrix)),
                self.proj_bias
                    .then(|| def(p("mixer.out_proj.bias"), &[d], F32Only)),
            ]
            .into_iter()
            .flatten()
            .collect()
        };
        model_defs(
            d,
            self.vocab_size as u64,
            self.n_layer,
            self.tie_embeddings,
            layer,
        )
    }
}
