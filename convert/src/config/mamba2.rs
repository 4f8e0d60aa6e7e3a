//! Mamba-2 configs.
//!
//! - **Hugging Face** `Mamba2ForCausalLM` (`model_type: "mamba2"`): `hidden_size`,
//!   `num_hidden_layers`, `num_heads`, `head_dim`, `n_groups`, `state_size`,
//!   `expand`, `conv_kernel`, `chunk_size`, `vocab_size`, `layer_norm_epsilon` (for
//!   the block norms and the gated norm alike), `time_step_limit`, `use_bias`,
//!   `use_conv_bias`, `tie_word_embeddings`. Absent optional keys take the defaults
//!   of transformers' `Mamba2Config` (those of Mamba-Codestral: 128 heads of 64,
//!   8 groups, d_state 128, untied). transformers sizes the mixer by
//!   `expand × hidden_size` but splits it into `num_heads × head_dim`, so the two
//!   must agree. Its gated norm multiplies by the gate before normalizing
//!   (`norm_before_gate = false`).
//!   Sources: `huggingface/transformers`
//!   `src/transformers/models/mamba2/configuration_mamba2.py`,
//!   `modeling_mamba2.py` (`Mamba2Mixer.__init__`, `MambaRMSNormGated`).
//! - **state-spaces** `ssm_cfg` with `layer: "Mamba2"`, with the defaults of
//!   `Mamba2.__init__` (`state-spaces/mamba` `mamba_ssm/modules/mamba2.py`): d_state
//!   128, d_conv 4, expand 2, headdim 64, ngroups 1, chunk_size 256, rmsnorm true,
//!   norm_before_gate false, dt_limit (0, ∞), D_has_hdim false, bias false,
//!   conv_bias true, d_ssm = d_inner; the gated norm's epsilon is `RMSNormGated`'s
//!   1e-5. Variants the `.mbin` format cannot describe are refused: no gated norm
//!   (`rmsnorm: false`), one D per channel (`D_has_hdim: true`), and an SSM
//!   narrower than the inner width (`d_ssm`, whose remaining channels form a gated
//!   MLP).

use mamba_format::arch::MAX_DIM;
use mamba_format::Mamba2Config;
use serde_json::Value;

use super::json::{short, Json};
use super::{unknown_arch, SsmCommon};
use crate::error::ConvertError;

/// A Hugging Face `Mamba2ForCausalLM` config.
pub(super) fn from_hf(cfg: &Json<'_>) -> Result<Mamba2Config, ConvertError> {
    let d_model = cfg.dim("hidden_size")?;
    let d_inner = cfg.inner_from_expand("expand", d_model)?;
    let n_heads = cfg.opt_dim("num_heads")?.unwrap_or(128);
    let head_dim = cfg.opt_dim("head_dim")?.unwrap_or(64);
    if n_heads as u64 * head_dim as u64 != d_inner as u64 {
        let expand = cfg.get("expand").map_or_else(|| "2".into(), short);
        return Err(cfg.inconsistent(format!(
            "heads × head_dim (num_heads {n_heads} × head_dim {head_dim} = {}) does not equal \
             expand × hidden_size ({expand} × {d_model} = {d_inner}), the mixer's inner width",
            n_heads as u64 * head_dim as u64
        )));
    }
    let eps = cfg.eps("layer_norm_epsilon")?;
    let (dt_min, dt_max) = cfg.dt_limit("time_step_limit")?;
    let c = Mamba2Config {
        d_model,
        n_layer: cfg.dim("num_hidden_layers")?,
        d_state: cfg.opt_dim("state_size")?.unwrap_or(128),
        d_conv: cfg.opt_dim("conv_kernel")?.unwrap_or(4),
        n_heads,
        head_dim,
        n_groups: cfg.opt_dim("n_groups")?.unwrap_or(8),
        chunk_size: cfg.opt_dim("chunk_size")?.unwrap_or(256),
        vocab_size: cfg.dim("vocab_size")?,
        rms_norm_eps: eps,
        norm_eps: eps,
        norm_before_gate: false,
        dt_min,
        dt_max,
        tie_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        conv_bias: cfg.opt_bool("use_conv_bias")?.unwrap_or(true),
        proj_bias: cfg.opt_bool("use_bias")?.unwrap_or(false),
    };
    check_groups(cfg, &c, "n_groups", "num_heads")?;
    Ok(c)
}

/// A state-spaces Mamba-2 model.
pub(super) fn from_ssm(c: &SsmCommon<'_>) -> Result<Mamba2Config, ConvertError> {
    let ssm = &c.ssm;
    let refuse = |what: &str| {
        Err(unknown_arch(
            ssm.path,
            format!("mamba_ssm Mamba2 layer with {what}"),
        ))
    };
    if ssm.opt_bool("rmsnorm")? == Some(false) {
        return refuse("no gated RMSNorm (ssm_cfg.rmsnorm: false)");
    }
    if ssm.opt_bool("D_has_hdim")? == Some(true) {
        return refuse("one D per channel (ssm_cfg.D_has_hdim: true)");
    }
    let d_inner = ssm.inner_from_expand("expand", c.d_model)?;
    if let Some(d_ssm) = ssm.opt_dim("d_ssm")? {
        if d_ssm != d_inner {
            return refuse(&format!(
                "an SSM narrower than the inner width and a gated MLP beside it \
                 (ssm_cfg.d_ssm {d_ssm}, inner width {d_inner})"
            ));
        }
    }
    let head_dim = ssm.opt_dim("headdim")?.unwrap_or(64);
    if !d_inner.is_multiple_of(head_dim) {
        return Err(ssm.inconsistent(format!(
            "ssm_cfg.headdim {head_dim} does not divide the inner width expand × d_model = \
             {d_inner}, so the heads cannot tile it"
        )));
    }
    let (dt_min, dt_max) = ssm.dt_limit("dt_limit")?;
    let m = Mamba2Config {
        d_model: c.d_model,
        n_layer: c.n_layer,
        d_state: ssm.opt_dim("d_state")?.unwrap_or(128),
        d_conv: ssm.opt_dim("d_conv")?.unwrap_or(4),
        n_heads: d_inner / head_dim,
        head_dim,
        n_groups: ssm.opt_dim("ngroups")?.unwrap_or(1),
        chunk_size: ssm.opt_dim("chunk_size")?.unwrap_or(256),
        vocab_size: c.vocab_size,
        rms_norm_eps: c.rms_norm_eps,
        // RMSNormGated's default; Mamba2.__init__ does not pass one.
        norm_eps: 1e-5,
        norm_before_gate: ssm.opt_bool("norm_before_gate")?.unwrap_or(false),
        dt_min,
        dt_max,
        tie_embeddings: c.tie_embeddings,
        conv_bias: ssm.opt_bool("conv_bias")?.unwrap_or(true),
        proj_bias: ssm.opt_bool("bias")?.unwrap_or(false),
    };
    check_groups(ssm, &m, "ngroups", "heads (inner width / headdim)")?;
    Ok(m)
}

/// B and C are shared by groups of heads, so the groups must divide the heads; and
/// `n_groups × d_state` (half of B and C's channels) must stay within the format's
/// dimension limit.
fn check_groups(
    cfg: &Json<'_>,
    c: &Mamba2Config,
    groups_key: &str,
    heads_name: &str,
) -> Result<(), ConvertError> {
    if !c.n_heads.is_multiple_of(c.n_groups) {
        return Err(cfg.inconsistent(format!(
            "{} {} does not divide the {} heads: {heads_name} must be a multiple of it",
            cfg.key(groups_key),
            c.n_groups,
            c.n_heads
        )));
    }
    let bc = c.n_groups as u64 * c.d_state as u64;
    if bc > MAX_DIM as u64 {
        return Err(cfg.bad(
            groups_key,
            &format!("a group count with groups × d_state ≤ {MAX_DIM}"),
            &Value::from(c.n_groups),
        ));
    }
    Ok(())
}
