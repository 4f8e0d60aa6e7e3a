//! Mamba-1 and Falcon-Mamba: the `mamba.*` keys and their tensor table
//! (SPEC.md §5.1–§5.3, §5.4).

use super::{def, model_defs, require_dim, require_eps, Architecture, TensorDef, TensorRole};
use crate::error::{FormatError, Result};
use crate::metadata::{Metadata, Value};

/// The key of Falcon-Mamba's dt/B/C norm epsilon: required for `falcon-mamba`,
/// absent for `mamba`.
pub(super) const KEY_MIXER_RMS_EPS: &str = "mamba.mixer_rms_eps";

/// Mamba-1 hyper-parameters (`mamba.*` metadata keys), shared by Falcon-Mamba.
#[derive(Clone, Debug, PartialEq)]
pub struct MambaConfig {
    /// Residual stream width (`mamba.d_model`).
    pub d_model: usize,
    /// Number of layers (`mamba.n_layer`).
    pub n_layer: usize,
    /// SSM state size N per channel (`mamba.d_state`).
    pub d_state: usize,
    /// Causal conv1d kernel width (`mamba.d_conv`).
    pub d_conv: usize,
    /// Inner width, expand × d_model (`mamba.d_inner`).
    pub d_inner: usize,
    /// Rank of the dt projection (`mamba.dt_rank`).
    pub dt_rank: usize,
    /// Rows of the embedding and the LM head (`mamba.vocab_size`), padding included.
    pub vocab_size: usize,
    /// RMSNorm epsilon (`mamba.rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// LM head shares the embedding (`mamba.tie_embeddings`).
    pub tie_embeddings: bool,
    /// conv1d has a bias (`mamba.conv_bias`).
    pub conv_bias: bool,
    /// in_proj and out_proj have biases (`mamba.proj_bias`).
    pub proj_bias: bool,
    /// Falcon-Mamba: the epsilon of the weightless RMS norms applied to dt, B and C
    /// before the scan (`mamba.mixer_rms_eps`). `Some` exactly when the
    /// architecture is `falcon-mamba`.
    pub mixer_rms_eps: Option<f64>,
}

impl MambaConfig {
    /// The architecture: Falcon-Mamba when the dt/B/C norms are on.
    pub fn architecture(&self) -> Architecture {
        match self.mixer_rms_eps {
            Some(_) => Architecture::FalconMamba,
            None => Architecture::Mamba,
        }
    }

    /// Reads and checks the `mamba.*` keys of a file of architecture `arch`
    /// (`mamba` or `falcon-mamba`).
    pub fn from_metadata(md: &Metadata, arch: Architecture) -> Result<MambaConfig> {
        let mixer_rms_eps = match arch {
            Architecture::FalconMamba => Some(require_eps(md, KEY_MIXER_RMS_EPS)?),
            _ if md.get(KEY_MIXER_RMS_EPS).is_some() => {
                return Err(FormatError::BadValue {
                    key: KEY_MIXER_RMS_EPS.into(),
                    why: format!(
                        "only a falcon-mamba file has it, and this one is {}",
                        arch.name()
                    ),
                })
            }
            _ => None,
        };
        Ok(MambaConfig {
            d_model: require_dim(md, "mamba.d_model")?,
            n_layer: require_dim(md, "mamba.n_layer")?,
            d_state: require_dim(md, "mamba.d_state")?,
            d_conv: require_dim(md, "mamba.d_conv")?,
            d_inner: require_dim(md, "mamba.d_inner")?,
            dt_rank: require_dim(md, "mamba.dt_rank")?,
            vocab_size: require_dim(md, "mamba.vocab_size")?,
            rms_norm_eps: require_eps(md, "mamba.rms_norm_eps")?,
            tie_embeddings: md.require_bool("mamba.tie_embeddings")?,
            conv_bias: md.require_bool("mamba.conv_bias")?,
            proj_bias: md.require_bool("mamba.proj_bias")?,
            mixer_rms_eps,
        })
    }

    /// Writes the `mamba.*` keys and `general.architecture`.
    pub fn to_metadata(&self, md: &mut Metadata) -> Result<()> {
        md.set(
            super::KEY_ARCHITECTURE,
            Value::String(self.architecture().name().into()),
        )?;
        for (k, v) in [
            ("mamba.d_model", self.d_model),
            ("mamba.n_layer", self.n_layer),
            ("mamba.d_state", self.d_state),
            ("mamba.d_conv", self.d_conv),
            ("mamba.d_inner", self.d_inner),
            ("mamba.dt_rank", self.dt_rank),
            ("mamba.vocab_size", self.vocab_size),
        ] {
            md.set(k, Value::U64(v as u64))?;
        }
        md.set("mamba.rms_norm_eps", Value::F64(self.rms_norm_eps))?;
        md.set("mamba.tie_embeddings", Value::Bool(self.tie_embeddings))?;
        md.set("mamba.conv_bias", Value::Bool(self.conv_bias))?;
        md.set("mamba.proj_bias", Value::Bool(self.proj_bias))?;
        if let Some(eps) = self.mixer_rms_eps {
            md.set(KEY_MIXER_RMS_EPS, Value::F64(eps))?;
        }
        Ok(())
    }

    /// The standard tensors, in the order the converter writes them (Falcon-Mamba's
    /// norms have no weights, so both architectures share the table).
    pub fn tensor_defs(&self) -> Vec<TensorDef> {
        self.defs().collect()
    }

    /// [`MambaConfig::tensor_defs`] as a lazy iterator: `n_layer` may be up to
    /// [`super::MAX_DIM`], so checking a file must not materialize every name up
    /// front.
    pub(super) fn defs(&self) -> impl Iterator<Item = TensorDef> + '_ {
        use TensorRole::*;
        let (d, di, n, r, k) = (
            self.d_model as u64,
            self.d_inner as u64,
            self.d_state as u64,
            self.dt_rank as u64,
            self.d_conv as u64,
        );
        let layer = move |i: usize| {
            let p = |s: &str| format!("layers.{i}.{s}");
            [
                Some(def(p("norm.weight"), &[d], F32Only)),
                Some(def(p("mixer.in_proj.weight"), &[2 * di, d], Matrix)),
                self.proj_bias
                    .then(|| def(p("mixer.in_proj.bias"), &[2 * di], F32Only)),
                Some(def(p("mixer.conv1d.weight"), &[di, k], F32Only)),
                self.conv_bias
                    .then(|| def(p("mixer.conv1d.bias"), &[di], F32Only)),
                Some(def(p("mixer.x_proj.weight"), &[r + 2 * n, di], Matrix)),
                Some(def(p("mixer.dt_proj.weight"), &[di, r], Matrix)),
                Some(def(p("mixer.dt_proj.bias"), &[di], F32Only)),
                Some(def(p("mixer.A"), &[di, n], F32Only)),
                Some(def(p("mixer.D"), &[di], F32Only)),
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

    /// Checks that `tensors` are exactly the standard set, with the implied shapes and
    /// allowed types.
    pub fn check_tensors(&self, tensors: &[crate::index::TensorInfo]) -> Result<()> {
        super::check_tensors(self.defs(), tensors)
    }
}
