//! Mamba-1 and Falcon-Mamba configs.
//!
//! - **Hugging Face** `MambaForCausalLM` / `FalconMambaForCausalLM`: `hidden_size`,
//!   `num_hidden_layers`, `vocab_size`, `state_size`, `expand`/`intermediate_size`,
//!   `conv_kernel`, `time_step_rank`, `use_bias`, `use_conv_bias`,
//!   `layer_norm_epsilon`, `tie_word_embeddings`, and for Falcon-Mamba
//!   `mixer_rms_eps` (the epsilon of its weightless norms on dt, B and C; 1e-6 by
//!   default). Absent optional keys take transformers' defaults.
//!   Sources: `huggingface/transformers`
//!   `src/transformers/models/mamba/configuration_mamba.py`,
//!   `src/transformers/models/falcon_mamba/configuration_falcon_mamba.py`.
//! - **state-spaces** `ssm_cfg` of a Mamba-1 layer, with the defaults of
//!   `Mamba.__init__` (`state-spaces/mamba` `mamba_ssm/modules/mamba_simple.py`):
//!   d_state 16, d_conv 4, expand 2, dt_rank "auto", conv_bias true, bias false.

use mamba_format::MambaConfig;

use super::json::Json;
use super::SsmCommon;
use crate::error::ConvertError;

/// A Hugging Face Mamba-1 config, or Falcon-Mamba's when `falcon` is set.
pub(super) fn from_hf(cfg: &Json<'_>, falcon: bool) -> Result<MambaConfig, ConvertError> {
    let d_model = cfg.dim("hidden_size")?;
    let d_inner = match cfg.opt_dim("intermediate_size")? {
        Some(di) => di,
        None => cfg.inner_from_expand("expand", d_model)?,
    };
    Ok(MambaConfig {
        d_model,
        n_layer: cfg.dim("num_hidden_layers")?,
        d_state: cfg.opt_dim("state_size")?.unwrap_or(16),
        d_conv: cfg.opt_dim("conv_kernel")?.unwrap_or(4),
        d_inner,
        dt_rank: cfg.dt_rank("time_step_rank", d_model)?,
        vocab_size: cfg.dim("vocab_size")?,
        rms_norm_eps: cfg.eps("layer_norm_epsilon")?,
        tie_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(true),
        conv_bias: cfg.opt_bool("use_conv_bias")?.unwrap_or(true),
        proj_bias: cfg.opt_bool("use_bias")?.unwrap_or(false),
        mixer_rms_eps: falcon
            .then(|| cfg.eps_or("mixer_rms_eps", 1e-6))
            .transpose()?,
    })
}

/// A state-spaces Mamba-1 model.
pub(super) fn from_ssm(c: &SsmCommon<'_>) -> Result<MambaConfig, ConvertError> {
    let ssm = &c.ssm;
    Ok(MambaConfig {
        d_model: c.d_model,
        n_layer: c.n_layer,
        d_state: ssm.opt_dim("d_state")?.unwrap_or(16),
        d_conv: ssm.opt_dim("d_conv")?.unwrap_or(4),
        d_inner: ssm.inner_from_expand("expand", c.d_model)?,
        dt_rank: ssm.dt_rank("dt_rank", c.d_model)?,
        vocab_size: c.vocab_size,
        rms_norm_eps: c.rms_norm_eps,
        tie_embeddings: c.tie_embeddings,
        conv_bias: ssm.opt_bool("conv_bias")?.unwrap_or(true),
        proj_bias: ssm.opt_bool("bias")?.unwrap_or(false),
        mixer_rms_eps: None,
    })
}
