//! [`convert`]: prepare (read the config, open the weights, plan and check every
//! tensor, build the metadata), then stream the tensors one at a time into the
//! `.mbin` writer. [`dry_run`] stops after preparing.
//!
//! Memory stays near one tensor: its f32 values and its encoded bytes (a synthetic
//! tensor is generated row by row, so only its encoded bytes). On any error the
//! function returns before [`Writer::finish`], and dropping the writer deletes the
//! temporary file, so a failed conversion leaves nothing behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mamba_files::{check_output, file_kind, stale_temp_files, FileError};
use mamba_format::checksum::checksum;
use mamba_format::{FormatError, Metadata, ModelConfig, TensorSpec, Writer};
use rayon::prelude::*;

use crate::chat_template::{find_in_dir, load_chat_template, FILES as CHAT_TEMPLATE_FILES};
use crate::config::{read_config, Layout};
use crate::error::ConvertError;
use crate::metadata::{build_metadata, dir_name, token_ids, Described};
use crate::options::{ConvertOptions, Input, Overrides, SyntheticSize};
use crate::plan::{
    note_fallbacks, note_unused, plan_checkpoint, plan_synthetic, tied_lm_head, Planned, SourceRef,
    Transform,
};
use crate::quantize::{first_non_finite, quantize_rows, NonFiniteOutput, Quantized};
use crate::report::{DryRun, PlannedTensor, Summary, TensorReport};
use crate::source::{
    open_weights, rebuild_tokenizer, GgufInput, GgufRef, StorageKind, WeightSource,
};
use crate::synthetic::{row_generator, synthetic_config};
use crate::tokenizer::{check_tokenizer, load_tokenizer};

/// Converts a checkpoint (or a synthetic model) into one `.mbin` file.
///
/// The output is refused before anything is read when it is not a regular file or
/// is one of the files the conversion reads. Temporary files that killed runs left
/// beside it are reported in [`Summary::warnings`].
///
/// # Errors
/// A [`ConvertError`] naming the file and tensor at fault; the output path is then
/// left as it was (absent, or the old file when it existed).
pub fn convert(opts: &ConvertOptions) -> Result<Summary, ConvertError> {
    convert_with(opts, &Overrides::default())
}

/// [`convert`], with what `overrides` names replacing what the input brings (a chat
/// template).
///
/// # Errors
/// As [`convert`]; an override file that cannot be used is an error naming it.
pub fn convert_with(opts: &ConvertOptions, overrides: &Overrides) -> Result<Summary, ConvertError> {
    let start = Instant::now();
    // Before anything is read: the output must be absent, or (with `force`) a regular
    // file that is none of the files the conversion is known to read. The complete
    // list (shards named by an index) is checked again once the weights are opened.
    let named = named_inputs(opts, overrides);
    let named: Vec<&Path> = named.iter().map(PathBuf::as_path).collect();
    check_output(&opts.output, &named, opts.force)
        .map_err(|e| ConvertError::output(&opts.output, e))?;
    Job::prepare(opts, overrides, true)?.run(opts, start)
}

/// Everything [`convert`] checks before writing, without writing: reads the config
/// and the tokenizer, opens the weights (their headers, not their data) and checks
/// every tensor's presence, dtype and shape, and reports what would be written.
///
/// `opts.output` and `opts.force` are not used: nothing is written and no output
/// is checked. Tensor values are not read, so NaN/Inf in a weight, or a value
/// beyond the range of the chosen type, is only found by [`convert`].
///
/// # Errors
/// The [`ConvertError`] that [`convert`] would give before writing its first tensor.
pub fn dry_run(opts: &ConvertOptions) -> Result<DryRun, ConvertError> {
    dry_run_with(opts, &Overrides::default())
}

/// [`dry_run`] with `overrides`, as [`convert_with`] would use them (their files are
/// read and checked).
///
/// # Errors
/// The [`ConvertError`] that [`convert_with`] would give before writing its first
/// tensor.
pub fn dry_run_with(opts: &ConvertOptions, overrides: &Overrides) -> Result<DryRun, ConvertError> {
    let job = Job::prepare(opts, overrides, false)?;
    let quantization = job.quantization();
    let tensors: Vec<PlannedTensor> = job
        .plan
        .iter()
        .map(|p| PlannedTensor {
            name: p.def.name.clone(),
            shape: p.def.shape.clone(),
            requested: p.requested,
            chosen: p.chosen,
            fallback: p.fallback,
            bytes: p
                .chosen
                .bytes_for(p.def.shape.iter().product())
                .unwrap_or(0),
        })
        .collect();
    Ok(DryRun {
        n_params: tensors.iter().map(PlannedTensor::n_elements).sum(),
        tensors,
        model: job.model,
        preset: opts.preset,
        quantization,
        source_format: job.source_format,
        warnings: job.warnings,
    })
}

/// The files a conversion reads that are known from the options alone: the
/// tokenizer and chat template given, and in a checkpoint directory its config, every
/// weights file name the converter looks for, its `tokenizer.json` and the files a
/// chat template is looked for in.
fn named_inputs(opts: &ConvertOptions, overrides: &Overrides) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = opts.tokenizer.iter().cloned().collect();
    v.extend(overrides.chat_template.iter().cloned());
    if let Input::Dir(dir) = &opts.input {
        v.extend(
            [
                "config.json",
                "model.safetensors",
                "model.safetensors.index.json",
                "pytorch_model.bin",
                "tokenizer.json",
            ]
            .map(|n| dir.join(n)),
        );
        v.extend(CHAT_TEMPLATE_FILES.map(|n| dir.join(n)));
    }
    v
}

/// Where the tensor values come from.
enum Weights {
    /// A checkpoint; `refs[i]` is the source of `plan[i]`.
    Checkpoint {
        source: Box<dyn WeightSource>,
        refs: Vec<SourceRef>,
        /// A tied checkpoint's own `lm_head`, compared with the embedding at the end.
        tied_lm_head: Option<SourceRef>,
    },
    /// A GGUF file; `refs[i]` is the tensor behind `plan[i]`.
    Gguf {
        input: GgufInput,
        refs: Vec<GgufRef>,
    },
    /// Seeded random rows.
    Synthetic { seed: u64 },
}

/// Everything decided before the first byte is written.
struct Job {
    model: ModelConfig,
    weights: Weights,
    plan: Vec<Planned>,
    metadata: Metadata,
    source_format: &'static str,
    warnings: Vec<String>,
    /// Every file read, which the output may never replace.
    inputs: Vec<PathBuf>,
}

// -----------------------------------------------------------------------------------
// Preparing
// -----------------------------------------------------------------------------------

impl Job {
    /// `general.quantization` as the metadata has it.
    fn quantization(&self) -> String {
        match self.metadata.get(crate::metadata::KEY_QUANTIZATION) {
            Some(mamba_format::Value::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// Reads and checks everything; `check_out` also checks the output path against
    /// every file read (not for a dry run, which writes nothing).
    fn prepare(
        opts: &ConvertOptions,
        overrides: &Overrides,
        check_out: bool,
    ) -> Result<Job, ConvertError> {
        // The override is read first: a bad file named on the command line is reported
        // before minutes of downloading or planning.
        let chat_template = overrides
            .chat_template
            .as_deref()
            .map(|p| load_chat_template(p).map(|t| (t, p.to_path_buf())))
            .transpose()?;
        match &opts.input {
            Input::Dir(dir) => Job::from_dir(dir, None, opts, chat_template, check_out),
            Input::Hub { repo, revision } => {
                let dir = crate::hub::fetch(repo, revision.as_deref(), opts.progress)?;
                let hub = (repo.as_str(), revision.as_deref());
                Job::from_dir(&dir, Some(hub), opts, chat_template, check_out)
            }
            Input::Gguf { path, requantize } => {
                Job::from_gguf(path, *requantize, opts, chat_template, check_out)
            }
            Input::Synthetic { size, seed } => Job::synthetic(*size, *seed, opts, chat_template),
        }
    }

    /// `hub` is the repository (`owner/name`) and revision a Hub download came from;
    /// they name the model and the source instead of the cache's snapshot directory.
    /// `given` is the chat template given explicitly and its file, which replace the
    /// folder's.
    fn from_dir(
        dir: &Path,
        hub: Option<(&str, Option<&str>)>,
        opts: &ConvertOptions,
        given: Option<(String, PathBuf)>,
        check_out: bool,
    ) -> Result<Job, ConvertError> {
        let found = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Ok(m) => Some(format!("it is a {}", file_kind(&m))),
            Err(e) => Some(e.to_string()),
        };
        if let Some(found) = found {
            return Err(ConvertError::InputNotADirectory {
                path: dir.to_path_buf(),
                found,
            });
        }
        let mut warnings = Vec::new();
        let cfg = read_config(dir)?;
        let source = open_weights(dir)?;
        let tokenizer_path = match &opts.tokenizer {
            Some(p) => Some(p.clone()),
            // Anything there is loaded (and refused if it is not a regular file), so a
            // FIFO or directory named tokenizer.json is reported, not silently skipped.
            None => Some(dir.join("tokenizer.json")).filter(|p| p.symlink_metadata().is_ok()),
        };
        let mut inputs = vec![dir.join("config.json")];
        inputs.extend(source.files());
        inputs.extend(tokenizer_path.clone());
        // The folder's template files are not even read when one is given: a broken
        // tokenizer_config.json the user has worked around should not warn.
        let chat_template = match given {
            Some((template, path)) => {
                inputs.push(path);
                Some(template)
            }
            None => {
                let (template, read) = find_in_dir(dir, &mut warnings);
                inputs.extend(read);
                template
            }
        };
        // Before any tensor data is read: the output is none of these files.
        if check_out {
            let checked: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            check_output(&opts.output, &checked, opts.force)
                .map_err(|e| ConvertError::output(&opts.output, e))?;
        }
        let (plan, refs) = plan_checkpoint(&cfg, source.as_ref(), opts.preset)?;
        note_fallbacks(&plan, &mut warnings);
        let tied_lm_head = tied_lm_head(&cfg, source.as_ref(), &mut warnings)?;
        let used: Vec<&SourceRef> = refs.iter().chain(&tied_lm_head).collect();
        note_unused(source.as_ref(), &used, &mut warnings);
        let tokenizer = tokenizer_path
            .map(|p| load_tokenizer(&p, cfg.model.vocab_size()))
            .transpose()?;
        let source_format = match (cfg.layout, source.kind()) {
            (Layout::HuggingFace, StorageKind::Safetensors) => "huggingface-safetensors",
            (Layout::HuggingFace, StorageKind::Pytorch) => "huggingface-pytorch",
            (Layout::MambaSsm, StorageKind::Pytorch) => "mamba_ssm-pytorch",
            (Layout::MambaSsm, StorageKind::Safetensors) => "mamba_ssm-safetensors",
        };
        let (name, label) = match hub {
            Some((repo, revision)) => {
                let name = repo.rsplit('/').next().unwrap_or(repo).to_string();
                let at = revision.map(|r| format!("@{r}")).unwrap_or_default();
                (name, format!("hf:{repo}{at}"))
            }
            None => (dir_name(dir), dir.display().to_string()),
        };
        let described = Described {
            name,
            source: label,
            source_format,
            ids: token_ids(&cfg, tokenizer.as_ref()),
            tokenizer,
            chat_template,
            quantization: None,
        };
        let metadata = build_metadata(opts, &cfg.model, &described, &mut warnings)?;
        Ok(Job {
            model: cfg.model,
            weights: Weights::Checkpoint {
                source,
                refs,
                tied_lm_head,
            },
            plan,
            metadata,
            source_format,
            warnings,
            inputs,
        })
    }

    /// A llama.cpp GGUF file: hyper-parameters from its keys, tensors as stored
    /// (or requantized), the tokenizer rebuilt from `tokenizer.ggml.*`, the chat
    /// template from `tokenizer.chat_template` unless one is `given`.
    fn from_gguf(
        path: &Path,
        requantize: bool,
        opts: &ConvertOptions,
        given: Option<(String, PathBuf)>,
        check_out: bool,
    ) -> Result<Job, ConvertError> {
        let mut inputs = vec![path.to_path_buf()];
        inputs.extend(opts.tokenizer.iter().cloned());
        inputs.extend(given.as_ref().map(|(_, p)| p.clone()));
        if check_out {
            let checked: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            check_output(&opts.output, &checked, opts.force)
                .map_err(|e| ConvertError::output(&opts.output, e))?;
        }
        let input = GgufInput::open(path)?;
        let model = input.model()?;
        let mut warnings = Vec::new();
        let (plan, refs) = input.plan(&model, requantize.then_some(opts.preset))?;
        note_fallbacks(&plan, &mut warnings);
        let tokenizer = match &opts.tokenizer {
            Some(p) => Some(load_tokenizer(p, model.vocab_size())?),
            None => match rebuild_tokenizer(input.gguf()) {
                Ok(Some(json)) => Some(check_tokenizer(json, path, model.vocab_size())?),
                Ok(None) => None,
                Err(why) => {
                    warnings.push(format!(
                        "the tokenizer of {} is not rebuilt: {why}; pass --tokenizer \
                         tokenizer.json to embed one",
                        path.display()
                    ));
                    None
                }
            },
        };
        let chat_template = match given {
            Some((template, _)) => Some(template),
            None => input.chat_template().unwrap_or_else(|why| {
                warnings.push(format!(
                    "{}: {why}; no chat template taken from it",
                    path.display()
                ));
                None
            }),
        };
        let described = Described {
            name: input.name().unwrap_or_else(|| {
                path.file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned())
            }),
            source: path.display().to_string(),
            source_format: "gguf",
            ids: input.special_ids()?,
            tokenizer,
            chat_template,
            quantization: (!requantize).then(|| input.file_type().unwrap_or("gguf").into()),
        };
        let metadata = build_metadata(opts, &model, &described, &mut warnings)?;
        Ok(Job {
            model,
            weights: Weights::Gguf { input, refs },
            plan,
            metadata,
            source_format: "gguf",
            warnings,
            inputs,
        })
    }

    /// Seeded random weights; a chat template only when one is `given`.
    fn synthetic(
        size: SyntheticSize,
        seed: u64,
        opts: &ConvertOptions,
        given: Option<(String, PathBuf)>,
    ) -> Result<Job, ConvertError> {
        let mut warnings = Vec::new();
        let model = synthetic_config(size);
        let plan = plan_synthetic(&model, opts.preset);
        note_fallbacks(&plan, &mut warnings);
        let tokenizer = opts
            .tokenizer
            .as_deref()
            .map(|p| load_tokenizer(p, model.vocab_size()))
            .transpose()?;
        let eot = tokenizer.as_ref().and_then(|t| t.endoftext_id);
        let described = Described {
            name: format!("synthetic-{size}"),
            source: format!("synthetic {size} seed {seed}"),
            source_format: "synthetic",
            ids: [eot; 3],
            tokenizer,
            quantization: None,
            chat_template: given.as_ref().map(|(t, _)| t.clone()),
        };
        let metadata = build_metadata(opts, &model, &described, &mut warnings)?;
        Ok(Job {
            model,
            weights: Weights::Synthetic { seed },
            plan,
            metadata,
            source_format: "synthetic",
            warnings,
            inputs: opts
                .tokenizer
                .iter()
                .cloned()
                .chain(given.map(|(_, p)| p))
                .collect(),
        })
    }
}

// -----------------------------------------------------------------------------------
// Writing
// -----------------------------------------------------------------------------------

impl Job {
    fn run(self, opts: &ConvertOptions, start: Instant) -> Result<Summary, ConvertError> {
        let quantization = self.quantization();
        let write_err = |source: FormatError| match source {
            // The output became unwritable while converting (replaced by a FIFO, ...):
            // the same refusal as up front, not an I/O failure.
            FormatError::File(e) if !matches!(e, FileError::Io { .. }) => {
                ConvertError::output(&opts.output, e)
            }
            source => ConvertError::Write {
                path: opts.output.clone(),
                source,
            },
        };
        let specs: Vec<TensorSpec> = self
            .plan
            .iter()
            .map(|p| TensorSpec::new(&p.def.name, p.chosen, &p.def.shape))
            .collect();
        let total: u64 = specs
            .iter()
            .map(|s| s.ty.bytes_for(s.shape.iter().product()).unwrap_or(0))
            .sum();
        let pb = progress_bar(opts.progress, total);
        let mut warnings = self.warnings;
        warnings.extend(
            stale_temp_files(&opts.output)
                .iter()
                .map(|p| stale_warning(p)),
        );
        let warn = |msg: &str| {
            if opts.progress {
                pb.suspend(|| eprintln!("warning: {msg}"));
            }
        };
        warnings.iter().for_each(|w| warn(w));
        let inputs: Vec<&Path> = self.inputs.iter().map(PathBuf::as_path).collect();
        let mut writer =
            Writer::create_checked(&opts.output, &inputs, &self.metadata, &specs, opts.force)
                .map_err(write_err)?;

        let n = self.plan.len();
        let mut reports = Vec::with_capacity(n);
        let mut embedding_hash = None;
        for (i, p) in self.plan.iter().enumerate() {
            pb.set_message(format!("[{}/{n}] {}", i + 1, p.def.name));
            let (n_rows, row_len) = (p.n_rows(), p.row_len());
            let quantized = match &self.weights {
                Weights::Checkpoint {
                    source,
                    refs,
                    tied_lm_head,
                } => {
                    let data = load(source.as_ref(), p, &refs[i], n_rows * row_len)?;
                    if p.def.name == "embeddings.weight" && tied_lm_head.is_some() {
                        embedding_hash = Some(checksum(bytemuck::cast_slice(&data)));
                    }
                    let fill = |r: usize, dst: &mut [f32]| {
                        dst.copy_from_slice(&data[r * row_len..(r + 1) * row_len])
                    };
                    quantize_rows(p.chosen, n_rows, row_len, &fill)
                }
                Weights::Gguf { input, refs } => gguf_tensor(input, &refs[i], p, n_rows, row_len)?,
                Weights::Synthetic { seed } => {
                    let gen = row_generator(&p.def, &self.model, *seed);
                    quantize_rows(p.chosen, n_rows, row_len, &*gen)
                }
            };
            let Quantized {
                bytes,
                max_abs_err,
                rms_err,
            } = quantized.map_err(|NonFiniteOutput { index, source }| {
                ConvertError::QuantizedNonFinite {
                    tensor: p.def.name.clone(),
                    ty: p.chosen,
                    index,
                    value: source,
                }
            })?;
            writer
                .write_tensor(&p.def.name, &bytes)
                .map_err(write_err)?;
            pb.inc(bytes.len() as u64);
            reports.push(TensorReport {
                name: p.def.name.clone(),
                shape: p.def.shape.clone(),
                requested: p.requested,
                chosen: p.chosen,
                fallback: p.fallback,
                max_abs_err,
                rms_err,
                bytes: bytes.len() as u64,
            });
        }

        if let Weights::Checkpoint {
            source,
            tied_lm_head: Some(head),
            ..
        } = &self.weights
        {
            pb.set_message("comparing lm_head.weight with the embedding");
            let values = source.read_f32(&head.name)?;
            if Some(checksum(bytemuck::cast_slice(&values))) != embedding_hash {
                let msg = format!(
                    "{} in {} differs from the embedding but the config ties them: it was ignored",
                    head.name,
                    head.file.display()
                );
                warn(&msg);
                warnings.push(msg);
            }
        }

        pb.set_message("syncing");
        writer.finish().map_err(write_err)?;
        pb.finish_and_clear();
        let file_bytes = std::fs::metadata(&opts.output)
            .map_err(|source| ConvertError::Read {
                path: opts.output.clone(),
                source,
            })?
            .len();
        Ok(Summary {
            model: self.model,
            n_params: reports.iter().map(TensorReport::n_elements).sum(),
            tensors: reports,
            output: opts.output.clone(),
            file_bytes,
            seconds: start.elapsed().as_secs_f64(),
            preset: opts.preset,
            quantization,
            source_format: self.source_format,
            warnings,
        })
    }
}

/// The warning for a temporary file that an earlier, killed conversion left beside
/// the output. It is reported, not removed: this run did not create it.
fn stale_warning(path: &Path) -> String {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    format!(
        "{} ({}) is a temporary file left by a conversion that no longer runs; \
         remove it to free the space",
        path.display(),
        crate::report::human_bytes(size)
    )
}

/// Reads one checkpoint tensor, refuses NaN/Inf, and applies its transform.
fn load(
    w: &dyn WeightSource,
    p: &Planned,
    src: &SourceRef,
    n_elems: usize,
) -> Result<Vec<f32>, ConvertError> {
    let mut data = w.read_f32(&src.name)?;
    if data.len() != n_elems {
        // The planner checked the shape; a reader returning another length is a broken
        // file or reader, not something to index past.
        return Err(ConvertError::ShapeMismatch {
            tensor: src.name.clone(),
            file: src.file.clone(),
            found: vec![data.len()],
            expected: vec![n_elems],
        });
    }
    let non_finite = |tensor: String, (index, value): (usize, f32)| ConvertError::NonFinite {
        tensor,
        file: src.file.clone(),
        index,
        value,
    };
    if let Some(bad) = first_non_finite(&data) {
        return Err(non_finite(src.name.clone(), bad));
    }
    match src.transform {
        Transform::Copy | Transform::DropMiddleDim => {}
        Transform::NegExp => {
            data.par_iter_mut().for_each(|a| *a = -(a.exp()));
            if let Some(bad) = first_non_finite(&data) {
                return Err(non_finite(
                    format!("{} (= -exp({}))", p.def.name, src.name),
                    bad,
                ));
            }
        }
    }
    Ok(data)
}

/// One GGUF tensor in its planned type: its blocks as stored when the type is
/// unchanged, else dequantized (and checked finite) and quantized again.
fn gguf_tensor(
    input: &GgufInput,
    r: &GgufRef,
    p: &Planned,
    n_rows: usize,
    row_len: usize,
) -> Result<Result<Quantized, NonFiniteOutput>, ConvertError> {
    // Even blocks copied as stored are decoded once: a NaN/Inf weight (or f16 scale)
    // is refused as it is from a checkpoint, not carried into the output.
    let data = input.read_f32(r);
    if let Some((index, value)) = first_non_finite(&data) {
        return Err(ConvertError::NonFinite {
            tensor: r.name.clone(),
            file: input.path().to_path_buf(),
            index,
            value,
        });
    }
    if p.chosen == r.stored {
        return Ok(Ok(Quantized {
            bytes: input.raw(r).to_vec(),
            max_abs_err: 0.0,
            rms_err: 0.0,
        }));
    }
    let fill = |row: usize, dst: &mut [f32]| {
        dst.copy_from_slice(&data[row * row_len..(row + 1) * row_len])
    };
    Ok(quantize_rows(p.chosen, n_rows, row_len, &fill))
}

/// A bytes-done progress bar on stderr, or a hidden one. indicatif draws nothing when
/// stderr is not a terminal.
fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb
}
