//! llama.cpp GGUF files as input: the model's hyper-parameters from the `mamba.*` or
//! `mamba2.*` keys, each standard tensor's GGUF tensor, and its bytes.
//!
//! llama.cpp's layouts are byte-compatible with `.mbin`'s: GGUF lists dimensions
//! innermost first, so a `[d_conv, d_inner]` conv1d or a `[d_state, d_inner]`
//! `ssm_a` is `.mbin`'s `[d_inner, d_conv]` / `[d_inner, d_state]` in the same
//! memory order; `ssm_a` already holds `-exp(A_log)`; Mamba-2's per-head `ssm_a`,
//! `ssm_d` (`[1, n_heads]`) and grouped `ssm_norm` (`[d_inner / n_groups,
//! n_groups]`) are flat vectors in the same order. So every tensor's elements are
//! taken as they are; only the element count and the row length are checked.
//!
//! What a GGUF does not store is taken as llama.cpp runs it: Mamba-2 with no dt
//! clamp, the gated norm after the gate, its epsilon the block norms' one, chunks of
//! 256 (a hint only); Falcon-Mamba's dt/B/C norms (`ssm.dt_b_c_rms`) with the block
//! norms' epsilon, as llama.cpp's graph does.

use std::path::{Path, PathBuf};

use mamba_files::open_regular;
use mamba_format::gguf::{Gguf, GgufTensor};
use mamba_format::metadata::MAX_STRING_LEN;
use mamba_format::{
    Mamba2Config, MambaConfig, Metadata, ModelConfig, QuantType, TensorDef, TensorRole,
};
use memmap2::Mmap;

use crate::error::ConvertError;
use crate::plan::Planned;
use crate::preset::Preset;

/// llama.cpp's key of the default chat template (`LLM_KV_TOKENIZER_CHAT_TEMPLATE`).
const KEY_GGUF_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The chunk length written for a GGUF Mamba-2 (GGUF does not store one):
/// mamba_ssm's default. The chunked scan's result does not depend on it.
const MAMBA2_CHUNK: usize = 256;

/// A memory-mapped, parsed GGUF file.
pub struct GgufInput {
    path: PathBuf,
    mmap: Mmap,
    gguf: Gguf,
}

/// The GGUF tensor behind a planned tensor.
#[derive(Clone, Debug)]
pub struct GgufRef {
    /// Index into the file's tensor list.
    index: usize,
    /// Its GGUF name, for errors.
    pub name: String,
    /// Its stored type.
    pub stored: QuantType,
}

impl GgufInput {
    /// Maps and parses `path`; refuses anything but a regular, well-formed GGUF file.
    pub fn open(path: &Path) -> Result<GgufInput, ConvertError> {
        let file =
            open_regular(path).map_err(|e| ConvertError::input_file("GGUF file", path, e))?;
        // SAFETY: the map is read-only and lives as long as this struct. If another process
        // truncates or rewrites the file while it is mapped, reads may fault or see torn
        // data: the documented hazard of every mmap-based model reader. Every range used
        // below was checked against the map's length by `Gguf::parse`.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| ConvertError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let gguf = Gguf::parse(&mmap).map_err(|source| ConvertError::Gguf {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(GgufInput {
            path: path.to_path_buf(),
            mmap,
            gguf,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed index and metadata.
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    fn bad(&self, why: String) -> ConvertError {
        ConvertError::GgufModel {
            path: self.path.clone(),
            why,
        }
    }

    /// A metadata read that turns a wrongly typed value into an error naming it.
    fn md<T>(
        &self,
        r: Result<Option<T>, mamba_format::gguf::GgufError>,
    ) -> Result<Option<T>, ConvertError> {
        r.map_err(|source| ConvertError::Gguf {
            path: self.path.clone(),
            source,
        })
    }

    fn dim(&self, key: &str) -> Result<usize, ConvertError> {
        let v = self
            .md(self.gguf.get_u64(key))?
            .ok_or_else(|| self.bad(format!("no metadata key {key}")))?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| self.bad(format!("{key} is {v}, not a positive size")))
    }

    /// The model's hyper-parameters, checked as a `.mbin` reader checks them.
    pub fn model(&self) -> Result<ModelConfig, ConvertError> {
        let arch = self
            .md(self.gguf.get_str("general.architecture"))?
            .ok_or_else(|| self.bad("no metadata key general.architecture".into()))?;
        let mamba2 = match arch {
            "mamba" => false,
            "mamba2" => true,
            other => {
                return Err(self.bad(format!(
                    "architecture {other:?} is not a Mamba family; GGUF import supports \
                     mamba (Falcon-Mamba included) and mamba2"
                )))
            }
        };
        let p = |k: &str| format!("{arch}.{k}");
        let embd = self
            .gguf
            .tensor("token_embd.weight")
            .ok_or_else(|| self.bad("no tensor token_embd.weight".into()))?;
        let vocab_size = match embd.dims[..] {
            [_, v] => v as usize,
            _ => {
                return Err(self.bad(format!(
                    "token_embd.weight has dimensions {:?}, not [d_model, vocab]",
                    embd.dims
                )))
            }
        };
        let has = |name: &str| self.gguf.tensor(name).is_some();
        let tie_embeddings = !has("output.weight");
        let eps_key = p("attention.layer_norm_rms_epsilon");
        let eps = self
            .md(self.gguf.get_f64(&eps_key))?
            .ok_or_else(|| self.bad(format!("no metadata key {eps_key}")))?;
        // llama.cpp writes the epsilon as an f32 (1e-5 becomes 9.99999974e-6); its
        // shortest decimal is the value the model was configured with.
        let eps = if eps == eps as f32 as f64 {
            (eps as f32).to_string().parse().unwrap_or(eps)
        } else {
            eps
        };
        let d_inner = self.dim(&p("ssm.inner_size"))?;
        let model = if !mamba2 {
            let falcon = self
                .md(self.gguf.get_bool(&p("ssm.dt_b_c_rms")))?
                .unwrap_or(false);
            ModelConfig::Mamba(MambaConfig {
                d_model: self.dim(&p("embedding_length"))?,
                n_layer: self.dim(&p("block_count"))?,
                d_state: self.dim(&p("ssm.state_size"))?,
                d_conv: self.dim(&p("ssm.conv_kernel"))?,
                d_inner,
                dt_rank: self.dim(&p("ssm.time_step_rank"))?,
                vocab_size,
                rms_norm_eps: eps,
                tie_embeddings,
                conv_bias: has("blk.0.ssm_conv1d.bias"),
                proj_bias: has("blk.0.ssm_in.bias"),
                mixer_rms_eps: falcon.then_some(eps),
            })
        } else {
            let n_heads = self.dim(&p("ssm.time_step_rank"))?;
            if d_inner % n_heads != 0 {
                return Err(self.bad(format!(
                    "{} = {d_inner} is not a multiple of {} = {n_heads} heads",
                    p("ssm.inner_size"),
                    p("ssm.time_step_rank")
                )));
            }
            ModelConfig::Mamba2(Mamba2Config {
                d_model: self.dim(&p("embedding_length"))?,
                n_layer: self.dim(&p("block_count"))?,
                d_state: self.dim(&p("ssm.state_size"))?,
                d_conv: self.dim(&p("ssm.conv_kernel"))?,
                n_heads,
                head_dim: d_inner / n_heads,
                n_groups: self.dim(&p("ssm.group_count"))?,
                chunk_size: MAMBA2_CHUNK,
                vocab_size,
                rms_norm_eps: eps,
                norm_eps: eps,
                norm_before_gate: false,
                dt_min: 0.0,
                dt_max: f64::INFINITY,
                tie_embeddings,
                conv_bias: has("blk.0.ssm_conv1d.bias"),
                proj_bias: has("blk.0.ssm_in.bias"),
            })
        };
        // The same range and consistency checks a reader of the written file applies.
        let mut md = Metadata::new();
        let checked = model.to_metadata(&mut md).and_then(|()| match &model {
            ModelConfig::Mamba(c) => MambaConfig::from_metadata(&md, c.architecture()).map(|_| ()),
            ModelConfig::Mamba2(_) => Mamba2Config::from_metadata(&md).map(|_| ()),
        });
        checked.map_err(|e| self.bad(format!("its hyper-parameters are out of range: {e}")))?;
        Ok(model)
    }

    /// Every standard tensor with its GGUF tensor and output type. `preset` `None`
    /// keeps each matrix's stored type (F32Only tensors are always f32); `Some`
    /// types them as for a checkpoint. A GGUF tensor that no standard tensor takes is
    /// refused: it would change the computation (extra norms, biases) silently.
    pub fn plan(
        &self,
        model: &ModelConfig,
        preset: Option<Preset>,
    ) -> Result<(Vec<Planned>, Vec<GgufRef>), ConvertError> {
        let defs = model.tensor_defs();
        let mut plan = Vec::with_capacity(defs.len());
        let mut refs = Vec::with_capacity(defs.len());
        let mut used = vec![false; self.gguf.tensors.len()];
        for def in defs {
            let gname = gguf_name(&def.name);
            let index = self
                .gguf
                .tensors
                .iter()
                .position(|t| t.name == gname)
                .ok_or_else(|| self.bad(format!("tensor {gname} (for {}) is missing", def.name)))?;
            let t = &self.gguf.tensors[index];
            self.check_shape(&def, t)?;
            used[index] = true;
            let planned = match (preset, def.role) {
                (_, TensorRole::F32Only) => Planned::fixed(def, QuantType::F32),
                (None, TensorRole::Matrix) => Planned::fixed(def, t.ty),
                (Some(p), TensorRole::Matrix) => Planned::new(def, model, p),
            };
            plan.push(planned);
            refs.push(GgufRef {
                index,
                name: t.name.clone(),
                stored: t.ty,
            });
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(self.bad(format!(
                "tensor {} has no place in a {} model",
                self.gguf.tensors[i].name,
                model.architecture().name()
            )));
        }
        Ok((plan, refs))
    }

    /// Same element count, and for a matrix (or any 2-D tensor) the same row length.
    fn check_shape(&self, def: &TensorDef, t: &GgufTensor) -> Result<(), ConvertError> {
        let want: u64 = def.shape.iter().product();
        let row = *def.shape.last().unwrap_or(&1);
        let rows_match = def.shape.len() < 2 || t.dims[0] == row;
        if t.n_elements() != want || !rows_match {
            return Err(ConvertError::ShapeMismatch {
                tensor: t.name.clone(),
                file: self.path.clone(),
                found: t.shape().iter().map(|&d| d as usize).collect(),
                expected: def.shape.iter().map(|&d| d as usize).collect(),
            });
        }
        Ok(())
    }

    /// The stored bytes of `r`.
    pub fn raw(&self, r: &GgufRef) -> &[u8] {
        self.gguf
            .tensor_data(&self.mmap, &self.gguf.tensors[r.index])
    }

    /// The values of `r`, dequantized with the format's scalar reference.
    pub fn read_f32(&self, r: &GgufRef) -> Vec<f32> {
        let t = &self.gguf.tensors[r.index];
        let mut out = vec![0f32; t.n_elements() as usize];
        t.ty.dequantize_row(self.raw(r), &mut out);
        out
    }

    /// bos, eos and pad from `tokenizer.ggml.*_token_id`; an id beyond u32 is absent.
    pub fn special_ids(&self) -> Result<[Option<u32>; 3], ConvertError> {
        let id = |key: &str| -> Result<Option<u32>, ConvertError> {
            let v = self.md(self.gguf.get_u64(key))?;
            Ok(v.and_then(|v| u32::try_from(v).ok()))
        };
        Ok([
            id("tokenizer.ggml.bos_token_id")?,
            id("tokenizer.ggml.eos_token_id")?,
            id("tokenizer.ggml.padding_token_id")?,
        ])
    }

    /// `tokenizer.chat_template`: llama.cpp's copy of the model's default chat
    /// template (`convert_hf_to_gguf.py` writes `tokenizer_config.json`'s). The named
    /// ones it may add (`tokenizer.chat_template.<name>`) are not carried: `.mbin`
    /// stores one template. `Err` is why the template is not used, for a warning: the
    /// template is optional, so a wrongly typed or empty one must not stop the import.
    pub fn chat_template(&self) -> Result<Option<String>, String> {
        let Some(t) = self
            .gguf
            .get_str(KEY_GGUF_CHAT_TEMPLATE)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        if t.trim().is_empty() {
            return Err(format!("{KEY_GGUF_CHAT_TEMPLATE} is empty"));
        }
        if t.len() as u64 > MAX_STRING_LEN {
            return Err(format!(
                "{KEY_GGUF_CHAT_TEMPLATE} has {} bytes, more than a metadata string holds \
                 ({MAX_STRING_LEN})",
                t.len()
            ));
        }
        Ok(Some(t.to_string()))
    }

    /// `general.name`, when the file has one.
    pub fn name(&self) -> Option<String> {
        self.gguf
            .get_str("general.name")
            .ok()
            .flatten()
            .map(str::to_string)
    }

    /// llama.cpp's name of the file's quantization mix (`general.file_type`), e.g.
    /// `q4_k_m`; `None` when absent or unknown.
    pub fn file_type(&self) -> Option<&'static str> {
        let id = self.gguf.get_u64("general.file_type").ok().flatten()?;
        llama_ftype_name(id)
    }
}

/// llama.cpp's name for a standard tensor (`src/llama-arch.cpp`, `LLM_TENSOR_NAMES`).
fn gguf_name(mbin: &str) -> String {
    match mbin {
        "embeddings.weight" => return "token_embd.weight".into(),
        "norm_f.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let Some(rest) = mbin.strip_prefix("layers.") else {
        return mbin.into();
    };
    let (layer, what) = rest.split_once('.').unwrap_or((rest, ""));
    let g = match what {
        "norm.weight" => "attn_norm.weight",
        "mixer.in_proj.weight" => "ssm_in.weight",
        "mixer.in_proj.bias" => "ssm_in.bias",
        "mixer.conv1d.weight" => "ssm_conv1d.weight",
        "mixer.conv1d.bias" => "ssm_conv1d.bias",
        "mixer.x_proj.weight" => "ssm_x.weight",
        "mixer.dt_proj.weight" => "ssm_dt.weight",
        "mixer.dt_proj.bias" | "mixer.dt_bias" => "ssm_dt.bias",
        "mixer.A" => "ssm_a",
        "mixer.D" => "ssm_d",
        "mixer.norm.weight" => "ssm_norm.weight",
        "mixer.out_proj.weight" => "ssm_out.weight",
        "mixer.out_proj.bias" => "ssm_out.bias",
        other => other,
    };
    format!("blk.{layer}.{g}")
}

/// llama.cpp's `llama_ftype` names (`include/llama.h`), lower case as
/// `--type` spells presets.
fn llama_ftype_name(id: u64) -> Option<&'static str> {
    Some(match id {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_k",
        11 => "q3_k_s",
        12 => "q3_k_m",
        13 => "q3_k_l",
        14 => "q4_k_s",
        15 => "q4_k_m",
        16 => "q5_k_s",
        17 => "q5_k_m",
        18 => "q6_k",
        19 => "iq2_xxs",
        20 => "iq2_xs",
        21 => "q2_k_s",
        22 => "iq3_xs",
        23 => "iq3_xxs",
        24 => "iq1_s",
        25 => "iq4_nl",
        26 => "iq3_s",
        27 => "iq3_m",
        28 => "iq2_s",
        29 => "iq2_m",
        30 => "iq4_xs",
        31 => "iq1_m",
        32 => "bf16",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(gguf_name("embeddings.weight"), "token_embd.weight");
        assert_eq!(gguf_name("layers.12.mixer.A"), "blk.12.ssm_a");
        assert_eq!(gguf_name("layers.0.mixer.dt_bias"), "blk.0.ssm_dt.bias");
        assert_eq!(
            gguf_name("layers.3.mixer.dt_proj.bias"),
            "blk.3.ssm_dt.bias"
        );
        assert_eq!(gguf_name("layers.1.norm.weight"), "blk.1.attn_norm.weight");
        assert_eq!(
            gguf_name("layers.1.mixer.norm.weight"),
            "blk.1.ssm_norm.weight"
        );
        assert_eq!(llama_ftype_name(15), Some("q4_k_m"));
        assert_eq!(llama_ftype_name(4), None);
    }
}
