//! A model: weights borrowed from the mapped file, the steps every architecture
//! shares (embedding, block norm, residual add, head), and the forward call that
//! hands each layer to its architecture's mixer in [`crate::arch`].
//!
//! Dimension glossary (used in every shape comment of this crate):
//!
//! | letter    | meaning                                            |
//! |-----------|----------------------------------------------------|
//! | `d_model` | residual stream width                              |
//! | `d_inner` | expanded width (expand × d_model), one SSM channel each |
//! | `d_state` | N, SSM state size per channel                      |
//! | `d_conv`  | K, causal conv1d kernel width                      |
//! | `dt_rank` | R, rank of the dt projection (Mamba-1)             |
//! | `H`, `P`  | Mamba-2 heads and channels per head (`d_inner = H·P`) |
//! | `G`       | Mamba-2 groups sharing B and C                     |
//! | `conv_dim`| Mamba-2 conv channels, `d_inner + 2·G·N` (x, B, C)  |
//! | `vocab`   | rows of the embedding / LM head                    |
//! | `T`       | tokens in one forward call, all sequences together |
//! | `L`       | tokens of one sequence in one call                 |
//! | `B`       | sequences in a batch                               |

use crate::arch::{self, Layers};
use crate::error::{Result, RuntimeError};
use crate::finite::{all_finite, check_logits, first_bad_row};
use crate::loader::Storage;
use crate::state::{State, StateShape};
use mamba_format::arch::{KEY_BOS_ID, KEY_CHAT_TEMPLATE, KEY_EOS_ID, KEY_TOKENIZER_JSON};
use mamba_format::{MbinFile, Metadata, ModelConfig, QuantType, TensorInfo};
use mamba_kernels::ops::conv1d::conv1d_silu_threaded;
use mamba_kernels::ops::norm::rmsnorm;
use mamba_kernels::pool;
use mamba_kernels::sched::scan::rows_per_task;
use mamba_kernels::{matmul, WeightView};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a tensor lives in the file.
#[derive(Clone, Debug)]
pub(crate) struct TRef {
    ty: QuantType,
    rows: usize,
    cols: usize,
    bytes: Range<usize>,
}

/// An opened model: immutable after loading and `Sync`, so one model serves any
/// number of sessions on any number of threads.
pub struct Model {
    storage: Storage,
    config: ModelConfig,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    embeddings: TRef, // (vocab, d_model)
    layers: Layers,
    norm_f: TRef,  // (d_model)
    lm_head: TRef, // (vocab, d_model); the embedding when tied
    id: u64,
    data_offset: u64,
    tokenizer: Option<crate::tokenizer::Tokenizer>,
    path: String,
    /// The file it was opened from; `None` when built from bytes.
    file: Option<PathBuf>,
}

/// Which logits a forward call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsWanted {
    /// None (advancing state only).
    None,
    /// The last token of each sequence: `(B, vocab)`.
    Last,
    /// Every token: `(T, vocab)`.
    All,
}

/// One sequence's part of a forward call: its state and its new tokens.
pub struct Segment<'s> {
    /// The sequence's recurrent state, advanced in place.
    pub state: &'s mut State,
    /// Tokens to feed (at least one).
    pub tokens: &'s [u32],
}

/// Reusable activation buffers for forward calls; they grow to the largest call
/// and are never shrunk, so the per-token loop does not allocate.
#[derive(Default)]
pub struct Scratch {
    pub(crate) resid: Vec<f32>,    // (T, d_model)
    pub(crate) xn: Vec<f32>,       // (T, d_model)
    pub(crate) out: Vec<f32>,      // (T, d_model), a mixer's output
    fin: Vec<f32>,                 // (rows wanted, d_model)
    pub(crate) conv_buf: Vec<f32>, // (L, conv channels) of one segment, chunk-major
    pub(crate) mamba1: arch::mamba1::Scratch,
    // Boxed: Mamba-2's per-task scan buffers would make every Session large.
    pub(crate) mamba2: Box<arch::mamba2::Scratch>,
}

/// `v[..n]`, growing `v` first when it is shorter.
pub(crate) fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Model {
    /// Opens and validates a `.mbin` file by memory-mapping it. Tensor data is not
    /// read (nor checksummed) here; see [`Model::verify`].
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let mut model = Model::from_storage(Storage::map(path)?, path.display().to_string())?;
        model.file = Some(path.to_path_buf());
        Ok(model)
    }

    /// Loads a model from bytes in memory (copied into aligned storage).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_storage(Storage::from_bytes(bytes), "<memory>".into())
    }

    fn from_storage(storage: Storage, path: String) -> Result<Model> {
        let fmt = |source| RuntimeError::Format {
            path: path.clone(),
            source,
        };
        let file = MbinFile::parse(storage.bytes()).map_err(fmt)?;
        let config = ModelConfig::from_file(&file).map_err(fmt)?;
        let tref = |name: &str| -> TRef {
            let t = file
                .tensor(name)
                .expect("ModelConfig::from_file checked every tensor exists");
            let start = file.tensor_file_offset(t) as usize;
            TRef {
                ty: t.ty,
                rows: t.n_rows() as usize,
                cols: t.row_len() as usize,
                bytes: start..start + t.size as usize,
            }
        };
        let layers = Layers::new(&config, |name| file.tensor(name).map(|_| tref(name)));
        let embeddings = tref("embeddings.weight");
        let lm_head = if config.tie_embeddings() {
            embeddings.clone()
        } else {
            tref("lm_head.weight")
        };
        let tokenizer = match file
            .metadata
            .get(KEY_TOKENIZER_JSON)
            .and_then(|v| v.as_str())
        {
            Some(json) => Some(crate::tokenizer::Tokenizer::from_json(json.as_bytes())?),
            None => None,
        };
        // Identity for saved states: the index checksum covers every tensor's checksum.
        let id = file.header.index_checksum ^ file.header.metadata_checksum.rotate_left(1);
        let model = Model {
            norm_f: tref("norm_f.weight"),
            metadata: file.metadata.clone(),
            tensors: file.tensors.clone(),
            embeddings,
            lm_head,
            layers,
            config,
            id,
            data_offset: file.header.data_offset,
            tokenizer,
            path,
            file: None,
            storage,
        };
        model.check_f32_alignment()?;
        Ok(model)
    }

    fn check_f32_alignment(&self) -> Result<()> {
        for t in &self.tensors {
            if t.ty == QuantType::F32 {
                let start = (self.data_offset + t.offset) as usize;
                if bytemuck::try_cast_slice::<u8, f32>(
                    &self.storage.bytes()[start..start + t.size as usize],
                )
                .is_err()
                {
                    return Err(RuntimeError::Misaligned(t.name.clone()));
                }
            }
        }
        Ok(())
    }

    /// Verifies every tensor checksum (reads the whole file).
    pub fn verify(&self) -> Result<()> {
        let file =
            MbinFile::parse(self.storage.bytes()).map_err(|source| RuntimeError::Format {
                path: self.path.clone(),
                source,
            })?;
        match file.verify().into_iter().next() {
            None => Ok(()),
            Some(source) => Err(RuntimeError::Format {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The file the model was opened from (`None` when loaded from bytes): an
    /// input that outputs, such as saved states, must never replace.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The architecture and its hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The file's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensor index.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The stored bytes of tensor `name` (its file layout, quantized or not) and its
    /// index record, or `None` if the file has no such tensor. The GPU backend
    /// uploads weights from here as stored.
    pub fn tensor_data(&self, name: &str) -> Option<(&TensorInfo, &[u8])> {
        let t = self.tensors.iter().find(|t| t.name == name)?;
        let start = (self.data_offset + t.offset) as usize;
        Some((t, &self.storage.bytes()[start..start + t.size as usize]))
    }

    /// Size of the model file in bytes.
    pub fn file_size(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Vocabulary size (rows of the LM head).
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size()
    }

    /// The embedded tokenizer, if any.
    pub fn tokenizer(&self) -> Option<&crate::tokenizer::Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// The chat template (Jinja source) the file carries, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.metadata
            .get(KEY_CHAT_TEMPLATE)
            .and_then(|v| v.as_str())
    }

    /// End-of-sequence token id, if the file names one.
    pub fn eos_id(&self) -> Option<u32> {
        self.metadata
            .get(KEY_EOS_ID)
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
    }

    /// Beginning-of-sequence token id, if the file names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.metadata
            .get(KEY_BOS_ID)
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
    }

    /// A fingerprint of this model's weights and metadata, stored in saved states.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A zeroed state for one new sequence.
    pub fn new_state(&self) -> State {
        State::new(&self.config, self.id)
    }

    /// Checks that `state` belongs to this model: its owner id and its shape (every
    /// layer's conv and SSM sizes), so that a forged or foreign state is an error,
    /// not a panic in a kernel.
    pub fn check_state(&self, state: &State) -> Result<()> {
        state.check_fits(self.id, StateShape::of(&self.config))
    }

    pub(crate) fn view(&self, t: &TRef) -> WeightView<'_> {
        WeightView {
            ty: t.ty,
            rows: t.rows,
            cols: t.cols,
            data: &self.storage.bytes()[t.bytes.clone()],
        }
    }

    /// Rows `rows` of a matrix, as a smaller matrix view.
    pub(crate) fn view_rows(&self, t: &TRef, rows: Range<usize>) -> WeightView<'_> {
        self.view(t).rows(rows)
    }

    pub(crate) fn f32s(&self, t: &TRef) -> &[f32] {
        // Checked at load by check_f32_alignment; F32Only roles are F32 by validation.
        bytemuck::cast_slice(&self.storage.bytes()[t.bytes.clone()])
    }

    /// Checks every token id of every segment.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens.iter().find(|&&t| t as usize >= self.vocab_size()) {
            Some(&id) => Err(RuntimeError::TokenOutOfRange {
                id,
                vocab: self.vocab_size(),
            }),
            None => Ok(()),
        }
    }

    /// Runs the model over every segment's tokens, advancing each state, and writes
    /// the wanted logits to `logits` (resized): `(B, vocab)` for
    /// [`LogitsWanted::Last`], `(T, vocab)` in segment order for [`LogitsWanted::All`].
    ///
    /// Sequences are independent: projections run on all `T` tokens together (one
    /// pass over each weight matrix), conv and scan per sequence.
    ///
    /// Every input (tokens, states) is checked before any state changes. The
    /// residual stream is checked after the embedding and after every layer, and
    /// the logits after the head: NaN or infinity stops the call with
    /// [`RuntimeError::NonFinite`] naming where it first appeared; the states are
    /// then partly advanced and `logits` is left empty, so that no caller samples
    /// from a position the states have left.
    pub fn forward(
        &self,
        segs: &mut [Segment<'_>],
        want: LogitsWanted,
        s: &mut Scratch,
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        for seg in segs.iter() {
            if seg.tokens.is_empty() {
                return Err(RuntimeError::EmptyPrompt);
            }
            self.check_tokens(seg.tokens)?;
            self.check_state(seg.state)?;
        }
        let t_total: usize = segs.iter().map(|s| s.tokens.len()).sum();
        if let Err(e) = self.embed(segs, t_total, s) {
            logits.clear();
            return Err(e);
        }
        for li in 0..self.config.n_layer() {
            // x = RMSNorm(residual); the mixer; residual += its output.
            self.block_norm(self.layers.norm(li), t_total, s);
            match (&self.config, &self.layers) {
                (ModelConfig::Mamba(c), Layers::Mamba1(ls)) => {
                    arch::mamba1::mixer(self, c, &ls[li], li, segs, t_total, s)
                }
                (ModelConfig::Mamba2(c), Layers::Mamba2(ls)) => {
                    arch::mamba2::mixer(self, c, &ls[li], li, segs, t_total, s)
                }
                _ => unreachable!("Layers::new follows the config's architecture"),
            }
            if let Err(e) = self.add_residual(li, segs, t_total, s) {
                logits.clear();
                return Err(e);
            }
        }
        self.head(segs, want, t_total, s, logits)?;
        // Positions advance once the whole call has succeeded.
        for seg in segs.iter_mut() {
            seg.state.n_tokens += seg.tokens.len() as u64;
        }
        Ok(())
    }

    // ── the steps every architecture shares ──────────────────────────────────

    /// The token embeddings into `s.resid: (T, d_model)`, checked for NaN.
    fn embed(&self, segs: &[Segment<'_>], t_total: usize, s: &mut Scratch) -> Result<()> {
        let d = self.config.d_model();
        let emb = self.view(&self.embeddings);
        let resid = grow(&mut s.resid, t_total * d);
        for (row, &tok) in resid
            .chunks_exact_mut(d)
            .zip(segs.iter().flat_map(|s| s.tokens))
        {
            emb.dequantize_row(tok as usize, row);
        }
        if !all_finite(resid) {
            return Err(non_finite(
                segs,
                resid,
                d,
                None,
                "the token embeddings".into(),
            ));
        }
        Ok(())
    }

    /// `s.xn = RMSNorm(s.resid)` with the block norm's weight `w`, rows split
    /// across threads.
    fn block_norm(&self, w: &TRef, t_total: usize, s: &mut Scratch) {
        let d = self.config.d_model();
        let eps = self.config.rms_norm_eps() as f32;
        let xn = grow(&mut s.xn, t_total * d);
        let (resid, norm_w) = (&s.resid[..t_total * d], self.f32s(w));
        let rows = rows_per_task(t_total);
        pool::for_each_chunk(xn, rows * d, |i, xn| {
            let r = &resid[i * rows * d..][..xn.len()];
            rmsnorm(r, norm_w, eps, xn);
        });
    }

    /// `s.resid += s.out`, in fp32, checked for NaN (layer `li`).
    fn add_residual(
        &self,
        li: usize,
        segs: &[Segment<'_>],
        t_total: usize,
        s: &mut Scratch,
    ) -> Result<()> {
        let d = self.config.d_model();
        // The finiteness check rides on the add, while the rows are in cache.
        let (out, rows) = (&s.out[..t_total * d], rows_per_task(t_total));
        let finite = AtomicBool::new(true);
        pool::for_each_chunk(&mut s.resid[..t_total * d], rows * d, |i, rv| {
            for (rv, o) in rv.iter_mut().zip(&out[i * rows * d..]) {
                *rv += o;
            }
            if !all_finite(rv) {
                finite.store(false, Ordering::Relaxed);
            }
        });
        if !finite.into_inner() {
            let what = format!("the output of layer {li}");
            return Err(non_finite(segs, &s.resid[..t_total * d], d, Some(li), what));
        }
        Ok(())
    }

    /// The final norm and the LM head over the rows `want` asks for.
    fn head(
        &self,
        segs: &[Segment<'_>],
        want: LogitsWanted,
        t_total: usize,
        s: &mut Scratch,
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        let (d, vocab) = (self.config.d_model(), self.vocab_size());
        let rows: Vec<usize> = match want {
            LogitsWanted::None => Vec::new(),
            LogitsWanted::All => (0..t_total).collect(),
            LogitsWanted::Last => segs
                .iter()
                .scan(0, |end, s| {
                    *end += s.tokens.len();
                    Some(*end - 1)
                })
                .collect(),
        };
        if rows.is_empty() {
            return Ok(());
        }
        let fin = grow(&mut s.fin, rows.len() * d);
        for (dst, &row) in fin.chunks_exact_mut(d).zip(&rows) {
            dst.copy_from_slice(&s.resid[row * d..(row + 1) * d]);
        }
        let normed = grow(&mut s.xn, rows.len() * d);
        rmsnorm(
            &s.fin[..rows.len() * d],
            self.f32s(&self.norm_f),
            self.config.rms_norm_eps() as f32,
            normed,
        );
        logits.resize(rows.len() * vocab, 0.0);
        matmul(&self.view(&self.lm_head), normed, rows.len(), logits);
        if let Err(e) = check_logits(logits, vocab, |bad| locate(segs, rows[bad])) {
            logits.clear();
            return Err(e);
        }
        Ok(())
    }

    /// The causal conv1d + SiLU of layer `li` over `x: (T, channels)`, in place,
    /// sequence by sequence (each with its own conv state).
    pub(crate) fn conv_segments(
        &self,
        li: usize,
        x: &mut [f32],
        channels: usize,
        (w, b): (&TRef, Option<&TRef>),
        segs: &mut [Segment<'_>],
        buf: &mut Vec<f32>,
    ) {
        let mut off = 0;
        for seg in segs.iter_mut() {
            let len = seg.tokens.len();
            conv1d_silu_threaded(
                &mut x[off * channels..(off + len) * channels],
                channels,
                seg.state.conv_mut(li),
                self.f32s(w),
                b.map(|b| self.f32s(b)),
                buf,
            );
            off += len;
        }
    }
}

/// The error for non-finite values in `resid` (rows of `d`), at its first bad row.
fn non_finite(
    segs: &[Segment<'_>],
    resid: &[f32],
    d: usize,
    layer: Option<usize>,
    what: String,
) -> RuntimeError {
    let row = first_bad_row(resid, d).unwrap_or(0);
    let (sequence, position) = locate(segs, row);
    RuntimeError::NonFinite {
        layer,
        what,
        sequence,
        position,
    }
}

/// The segment and the position in its sequence of row `row` of a forward call
/// (positions count from the state's tokens before the call).
fn locate(segs: &[Segment<'_>], mut row: usize) -> (usize, u64) {
    for (i, s) in segs.iter().enumerate() {
        if row < s.tokens.len() {
            return (i, s.state.n_tokens + row as u64);
        }
        row -= s.tokens.len();
    }
    (segs.len(), 0)
}
