//! The plan: for every standard tensor of the model, its output type and (for a
//! checkpoint) the source tensor it comes from, checked against the config before
//! anything is written.

use std::collections::HashSet;
use std::path::PathBuf;

use mamba_format::{ModelConfig, QuantType, TensorDef};

use crate::config::{Layout, SourceConfig};
use crate::error::ConvertError;
use crate::preset::{fit_type, Preset, TensorClass};
use crate::source::WeightSource;

/// One tensor of the output.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Standard name, shape and role.
    pub def: TensorDef,
    /// The type the preset asks for.
    pub requested: QuantType,
    /// The type written.
    pub chosen: QuantType,
    /// `chosen != requested` because of the row length.
    pub fallback: bool,
}

impl Planned {
    /// `def` typed as `preset` says, with the row-length fallback.
    pub(crate) fn new(def: TensorDef, model: &ModelConfig, preset: Preset) -> Planned {
        let requested = preset.requested_type(&def, model.n_layer());
        let (chosen, fallback) = fit_type(requested, row_len(&def));
        Planned {
            def,
            requested,
            chosen,
            fallback,
        }
    }

    /// `def` stored as `ty`, as requested (a GGUF tensor kept in its stored type).
    pub(crate) fn fixed(def: TensorDef, ty: QuantType) -> Planned {
        Planned {
            def,
            requested: ty,
            chosen: ty,
            fallback: false,
        }
    }

    /// Elements per row (the last dimension).
    pub fn row_len(&self) -> usize {
        row_len(&self.def)
    }

    /// Number of rows (the product of the other dimensions).
    pub fn n_rows(&self) -> usize {
        self.def.shape.iter().product::<u64>() as usize / self.row_len()
    }
}

fn row_len(def: &TensorDef) -> usize {
    *def.shape.last().unwrap_or(&1) as usize
}

/// How a standard tensor is derived from its checkpoint tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Same values, same shape.
    Copy,
    /// conv1d weight `[channels, 1, d_conv]` → `[channels, d_conv]`: same values.
    DropMiddleDim,
    /// `A = -exp(A_log)`, in f32, as `mamba_ssm` computes it
    /// (`-torch.exp(self.A_log.float())` in state-spaces/mamba
    /// `mamba_ssm/modules/mamba_simple.py`, `Mamba.forward`, and
    /// `mamba_ssm/modules/mamba2.py`, `Mamba2.forward`; `[d_inner, d_state]` for
    /// Mamba-1, one per head for Mamba-2).
    NegExp,
}

/// The checkpoint tensor behind a planned tensor.
#[derive(Clone, Debug)]
pub struct SourceRef {
    /// Its name in the checkpoint.
    pub name: String,
    /// What to do to its values.
    pub transform: Transform,
    /// The file holding it.
    pub file: PathBuf,
}

/// Plans a checkpoint conversion: every standard tensor must exist, widen to f32 and
/// have the shape the config implies. Returns the plan and, index for index, the
/// source of each tensor.
pub fn plan_checkpoint(
    cfg: &SourceConfig,
    weights: &dyn WeightSource,
    preset: Preset,
) -> Result<(Vec<Planned>, Vec<SourceRef>), ConvertError> {
    let mut plan = Vec::new();
    let mut refs = Vec::new();
    for def in cfg.model.tensor_defs() {
        let (name, expected, transform) = checkpoint_name(cfg.layout, &def);
        let t = weights
            .tensor(&name)?
            .ok_or_else(|| ConvertError::MissingTensor {
                tensor: name.clone(),
                file: weights.location().to_path_buf(),
            })?;
        if !t.widens {
            return Err(ConvertError::UnsupportedDtype {
                tensor: name,
                file: t.file,
                dtype: t.dtype,
            });
        }
        if t.shape != expected {
            if let Some(rows) = in_proj_rows_mismatch(&cfg.model, &def, &t.shape) {
                return Err(ConvertError::InProjRows {
                    tensor: name,
                    file: t.file,
                    found: rows,
                    expected: expected[0],
                });
            }
            return Err(ConvertError::ShapeMismatch {
                tensor: name,
                file: t.file,
                found: t.shape,
                expected,
            });
        }
        plan.push(Planned::new(def, &cfg.model, preset));
        refs.push(SourceRef {
            name,
            transform,
            file: t.file,
        });
    }
    Ok((plan, refs))
}

/// For a Mamba-2 `in_proj.weight` whose columns are right but rows are not: the rows
/// found, so the error can say what the extra (or missing) rows are.
fn in_proj_rows_mismatch(model: &ModelConfig, def: &TensorDef, found: &[usize]) -> Option<usize> {
    let is_in_proj =
        matches!(model, ModelConfig::Mamba2(_)) && def.name.ends_with(".mixer.in_proj.weight");
    match found {
        &[rows, cols] if is_in_proj && cols as u64 == def.shape[1] => Some(rows),
        _ => None,
    }
}

/// Plans a synthetic model: every standard tensor, generated.
pub fn plan_synthetic(model: &ModelConfig, preset: Preset) -> Vec<Planned> {
    model
        .tensor_defs()
        .into_iter()
        .map(|def| Planned::new(def, model, preset))
        .collect()
}

/// The checkpoint's name for a standard tensor, the shape it must have there, and the
/// transform to apply.
///
/// One mapping serves every architecture: transformers and `mamba_ssm` name each
/// Mamba-1, Falcon-Mamba and Mamba-2 tensor `backbone.` + its standard name, except
/// the embedding (`embedding` in `mamba_ssm`), the LM head (no prefix), `A` (stored
/// as `A_log`) and the conv1d weight (with its grouped-conv middle dimension).
fn checkpoint_name(layout: Layout, def: &TensorDef) -> (String, Vec<usize>, Transform) {
    let shape: Vec<usize> = def.shape.iter().map(|&d| d as usize).collect();
    let name = def.name.as_str();
    if name == "embeddings.weight" {
        let n = match layout {
            Layout::HuggingFace => "backbone.embeddings.weight",
            Layout::MambaSsm => "backbone.embedding.weight",
        };
        (n.into(), shape, Transform::Copy)
    } else if name == "lm_head.weight" {
        (name.into(), shape, Transform::Copy)
    } else if let Some(layer) = name.strip_suffix(".mixer.A") {
        (
            format!("backbone.{layer}.mixer.A_log"),
            shape,
            Transform::NegExp,
        )
    } else if name.ends_with(".mixer.conv1d.weight") {
        (
            format!("backbone.{name}"),
            vec![shape[0], 1, shape[1]],
            Transform::DropMiddleDim,
        )
    } else {
        (format!("backbone.{name}"), shape, Transform::Copy)
    }
}

/// For a tied model whose checkpoint still has an `lm_head.weight` (every `mamba_ssm`
/// state dict does, sharing the embedding's storage): the tensor to compare with the
/// embedding at the end. One that cannot match (shape, dtype) is only a warning,
/// since it is not written.
pub fn tied_lm_head(
    cfg: &SourceConfig,
    weights: &dyn WeightSource,
    warnings: &mut Vec<String>,
) -> Result<Option<SourceRef>, ConvertError> {
    if !cfg.model.tie_embeddings() {
        return Ok(None);
    }
    let Some(t) = weights.tensor("lm_head.weight")? else {
        return Ok(None);
    };
    let emb = [cfg.model.vocab_size(), cfg.model.d_model()];
    if t.shape != emb || !t.widens {
        warnings.push(format!(
            "lm_head.weight in {} ({} {:?}) is ignored: the config ties it to the embedding {:?}",
            t.file.display(),
            t.dtype,
            t.shape,
            emb
        ));
        return Ok(None);
    }
    Ok(Some(SourceRef {
        name: "lm_head.weight".into(),
        transform: Transform::Copy,
        file: t.file,
    }))
}

/// One warning per group of fallbacks (same class, types and row length).
pub fn note_fallbacks(plan: &[Planned], warnings: &mut Vec<String>) {
    let mut groups: Vec<((TensorClass, QuantType, QuantType, usize), usize)> = Vec::new();
    for p in plan.iter().filter(|p| p.fallback) {
        let key = (
            TensorClass::of(&p.def.name),
            p.requested,
            p.chosen,
            p.row_len(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => groups.push((key, 1)),
        }
    }
    for ((class, req, chosen, row), n) in groups {
        warnings.push(format!(
            "fallback: {n} {} tensor(s) have rows of {row}, not a multiple of {req}'s {}-weight block; writing {chosen}",
            class.label(),
            req.block_size()
        ));
    }
}

/// Warns about checkpoint tensors that no output tensor uses.
pub fn note_unused(weights: &dyn WeightSource, used: &[&SourceRef], warnings: &mut Vec<String>) {
    const SHOW: usize = 4;
    let used: HashSet<&str> = used.iter().map(|r| r.name.as_str()).collect();
    let unused: Vec<String> = weights
        .names()
        .into_iter()
        .filter(|n| !used.contains(n.as_str()))
        .collect();
    if unused.is_empty() {
        return;
    }
    let mut list = unused
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if unused.len() > SHOW {
        list.push_str(&format!(", ... ({} more)", unused.len() - SHOW));
    }
    warnings.push(format!(
        "{} checkpoint tensor(s) not used and not written: {list}",
        unused.len()
    ));
}
