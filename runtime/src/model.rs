//! The Mamba-1 model: weights borrowed from the mapped file, and the forward pass.
//!
//! Dimension glossary (used in every shape comment of this crate):
//!
//! | letter    | meaning                                            |
//! |-----------|----------------------------------------------------|
//! | `d_model` | residual stream width                              |
//! | `d_inner` | expanded width (expand × d_model), one SSM channel each |
//! | `d_state` | N, SSM state size per channel                      |
//! | `d_conv`  | K, causal conv1d kernel width                      |
//! | `dt_rank` | R, rank of the dt projection                       |
//! | `vocab`   | rows of the embedding / LM head                    |
//! | `T`       | tokens in one forward call, all sequences together |
//! | `L`       | tokens of one sequence in one call                 |
//! | `B`       | sequences in a batch                               |

use crate::error::{Result, RuntimeError};
use crate::finite::{all_finite, check_logits, first_bad_row};
use crate::loader::Storage;
use crate::state::{State, StateShape};
use mamba_format::arch::{KEY_BOS_ID, KEY_EOS_ID, KEY_TOKENIZER_JSON};
use mamba_format::{MambaConfig, MbinFile, Metadata, ModelConfig, QuantType, TensorInfo};
use mamba_kernels::ops::act::add_bias;
use mamba_kernels::ops::conv1d::conv1d_silu_threaded;
use mamba_kernels::ops::norm::rmsnorm;
use mamba_kernels::ops::scan::{selective_scan, ScanInputs, ScanParams};
use mamba_kernels::pool;
use mamba_kernels::{matmul, WeightView};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a tensor lives in the file.
#[derive(Clone, Debug)]
struct TRef {
    ty: QuantType,
    rows: usize,
    cols: usize,
    bytes: Range<usize>,
}

/// One layer's tensors.
#[derive(Clone, Debug)]
struct LayerRefs {
    norm: TRef,             // (d_model)
    in_proj: TRef,          // (2 d_inner, d_model)
    in_bias: Option<TRef>,  // (2 d_inner)
    conv_w: TRef,           // (d_inner, d_conv)
    conv_b: Option<TRef>,   // (d_inner)
    x_proj: TRef,           // (R + 2N, d_inner)
    dt_proj: TRef,          // (d_inner, R)
    dt_bias: TRef,          // (d_inner)
    a: TRef,                // (d_inner, N), = -exp(A_log)
    d: TRef,                // (d_inner)
    out_proj: TRef,         // (d_model, d_inner)
    out_bias: Option<TRef>, // (d_model)
}

/// An opened model: immutable after loading and `Sync`, so one model serves any
/// number of sessions on any number of threads.
pub struct Model {
    storage: Storage,
    config: MambaConfig,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    embeddings: TRef, // (vocab, d_model)
    layers: Vec<LayerRefs>,
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
    resid: Vec<f32>,    // (T, d_model)
    xn: Vec<f32>,       // (T, d_model)
    x: Vec<f32>,        // (T, d_inner)
    z: Vec<f32>,        // (T, d_inner)
    xdbl: Vec<f32>,     // (T, R + 2N)
    dt: Vec<f32>,       // (T, d_inner)
    y_t: Vec<f32>,      // (d_inner, L) of one segment
    y: Vec<f32>,        // (T, d_inner)
    out: Vec<f32>,      // (T, d_model)
    fin: Vec<f32>,      // (rows wanted, d_model)
    dt_in: Vec<f32>,    // (T, R)
    conv_buf: Vec<f32>, // (T, d_inner) of one segment, channel-chunk major
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
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
        let ModelConfig::Mamba(config) = ModelConfig::from_file(&file).map_err(fmt)?;
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
        let opt = |name: &str| file.tensor(name).map(|_| tref(name));
        let layers = (0..config.n_layer)
            .map(|i| {
                let p = |s: &str| format!("layers.{i}.{s}");
                LayerRefs {
                    norm: tref(&p("norm.weight")),
                    in_proj: tref(&p("mixer.in_proj.weight")),
                    in_bias: opt(&p("mixer.in_proj.bias")),
                    conv_w: tref(&p("mixer.conv1d.weight")),
                    conv_b: opt(&p("mixer.conv1d.bias")),
                    x_proj: tref(&p("mixer.x_proj.weight")),
                    dt_proj: tref(&p("mixer.dt_proj.weight")),
                    dt_bias: tref(&p("mixer.dt_proj.bias")),
                    a: tref(&p("mixer.A")),
                    d: tref(&p("mixer.D")),
                    out_proj: tref(&p("mixer.out_proj.weight")),
                    out_bias: opt(&p("mixer.out_proj.bias")),
                }
            })
            .collect();
        let embeddings = tref("embeddings.weight");
        let lm_head = if config.tie_embeddings {
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

    /// The hyper-parameters.
    pub fn config(&self) -> &MambaConfig {
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
        self.config.vocab_size
    }

    /// The embedded tokenizer, if any.
    pub fn tokenizer(&self) -> Option<&crate::tokenizer::Tokenizer> {
        self.tokenizer.as_ref()
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

    fn view(&self, t: &TRef) -> WeightView<'_> {
        WeightView {
            ty: t.ty,
            rows: t.rows,
            cols: t.cols,
            data: &self.storage.bytes()[t.bytes.clone()],
        }
    }

    /// Rows `rows` of a matrix, as a smaller matrix view.
    fn view_rows(&self, t: &TRef, rows: Range<usize>) -> WeightView<'_> {
        let v = self.view(t);
        let rb = v.row_bytes();
        WeightView {
            rows: rows.len(),
            data: &v.data[rows.start * rb..rows.end * rb],
            ..v
        }
    }

    fn f32s(&self, t: &TRef) -> &[f32] {
        // Checked at load by check_f32_alignment; F32Only roles are F32 by validation.
        bytemuck::cast_slice(&self.storage.bytes()[t.bytes.clone()])
    }

    /// Checks every token id of every segment.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            Some(&id) => Err(RuntimeError::TokenOutOfRange {
                id,
                vocab: self.config.vocab_size,
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
        let c = &self.config;
        let (d, di, n, r) = (c.d_model, c.d_inner, c.d_state, c.dt_rank);
        let t_total: usize = segs.iter().map(|s| s.tokens.len()).sum();

        // ── embedding ─────────────────────────────────────────────────────────
        let emb = self.view(&self.embeddings);
        let resid = grow(&mut s.resid, t_total * d);
        for (row, &tok) in resid
            .chunks_exact_mut(d)
            .zip(segs.iter().flat_map(|s| s.tokens))
        {
            emb.dequantize_row(tok as usize, row);
        }
        if !all_finite(resid) {
            logits.clear();
            return Err(non_finite(
                segs,
                resid,
                d,
                None,
                "the token embeddings".into(),
            ));
        }

        for (li, l) in self.layers.iter().enumerate() {
            // ── x = RMSNorm(residual) ─────────────────────────────────────────
            let xn = grow(&mut s.xn, t_total * d);
            let (resid, norm_w) = (&s.resid[..t_total * d], self.f32s(&l.norm));
            let rows = rows_per_task(t_total);
            pool::for_each_chunk(xn, rows * d, |i, xn| {
                let r = &resid[i * rows * d..][..xn.len()];
                rmsnorm(r, norm_w, c.rms_norm_eps as f32, xn);
            });
            // ── in_proj → (x, z) ──────────────────────────────────────────────
            let (x, z): (&mut [f32], &mut [f32]) = if t_total == 1 {
                // One token: one matmul (one parallel region), and the output row
                // [x | z] splits in place.
                let xz = grow(&mut s.x, 2 * di);
                matmul(&self.view(&l.in_proj), xn, 1, xz);
                xz.split_at_mut(di)
            } else {
                let x = grow(&mut s.x, t_total * di);
                matmul(&self.view_rows(&l.in_proj, 0..di), xn, t_total, x);
                let z = grow(&mut s.z, t_total * di);
                matmul(&self.view_rows(&l.in_proj, di..2 * di), xn, t_total, z);
                (x, z)
            };
            if let Some(b) = &l.in_bias {
                let b = self.f32s(b);
                add_bias(x, &b[..di]);
                add_bias(z, &b[di..]);
            }
            // ── causal conv1d + SiLU, per sequence ────────────────────────────
            let mut off = 0;
            for seg in segs.iter_mut() {
                let len = seg.tokens.len();
                conv1d_silu_threaded(
                    &mut x[off * di..(off + len) * di],
                    di,
                    seg.state.conv_mut(li),
                    self.f32s(&l.conv_w),
                    l.conv_b.as_ref().map(|b| self.f32s(b)),
                    &mut s.conv_buf,
                );
                off += len;
            }
            // ── x_proj → (dt, B, C) ───────────────────────────────────────────
            let xdbl = grow(&mut s.xdbl, t_total * (r + 2 * n));
            matmul(&self.view(&l.x_proj), x, t_total, xdbl);
            // ── dt_proj; selective scan (dt bias, softplus, D skip, SiLU(z) gate
            // fused), per sequence ─────────────────────────────────────────────
            let p = ScanParams {
                a: self.f32s(&l.a),
                d: self.f32s(&l.d),
                dt_bias: self.f32s(&l.dt_bias),
                d_state: n,
            };
            let y = grow(&mut s.y, t_total * di);
            if t_total == 1 {
                let xdbl = &xdbl[..r + 2 * n];
                self.scan_step(l, &p, x, z, xdbl, segs[0].state.ssm_mut(li), y);
            } else {
                let dt = grow(&mut s.dt, t_total * di);
                dt_proj(
                    &self.view(&l.dt_proj),
                    xdbl,
                    r + 2 * n,
                    r,
                    t_total,
                    &mut s.dt_in,
                    dt,
                );
                let mut off = 0;
                for seg in segs.iter_mut() {
                    let len = seg.tokens.len();
                    let rows = off..off + len;
                    let inp = ScanInputs {
                        x: &x[rows.start * di..rows.end * di],
                        dt: &dt[rows.start * di..rows.end * di],
                        bc: &xdbl[rows.start * (r + 2 * n)..rows.end * (r + 2 * n)],
                        bc_stride: r + 2 * n,
                        b_off: r,
                        c_off: r + n,
                        z: &z[rows.start * di..rows.end * di],
                    };
                    scan_segment(
                        &p,
                        &inp,
                        seg.state.ssm_mut(li),
                        &mut s.y_t,
                        &mut y[rows.start * di..rows.end * di],
                    );
                    off += len;
                }
            }
            // ── out_proj; residual add in fp32 ────────────────────────────────
            let out = grow(&mut s.out, t_total * d);
            matmul(&self.view(&l.out_proj), y, t_total, out);
            if let Some(b) = &l.out_bias {
                add_bias(out, self.f32s(b));
            }
            // The finiteness check rides on the add, while the rows are in cache.
            let (out, rows) = (&*out, rows_per_task(t_total));
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
                logits.clear();
                let what = format!("the output of layer {li}");
                return Err(non_finite(segs, &s.resid[..t_total * d], d, Some(li), what));
            }
        }

        // ── final norm and logits ─────────────────────────────────────────────
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
        if !rows.is_empty() {
            let fin = grow(&mut s.fin, rows.len() * d);
            for (dst, &row) in fin.chunks_exact_mut(d).zip(&rows) {
                dst.copy_from_slice(&s.resid[row * d..(row + 1) * d]);
            }
            let normed = grow(&mut s.xn, rows.len() * d);
            rmsnorm(
                &s.fin[..rows.len() * d],
                self.f32s(&self.norm_f),
                c.rms_norm_eps as f32,
                normed,
            );
            logits.resize(rows.len() * c.vocab_size, 0.0);
            matmul(&self.view(&self.lm_head), normed, rows.len(), logits);
            if let Err(e) = check_logits(logits, c.vocab_size, |bad| locate(segs, rows[bad])) {
                logits.clear();
                return Err(e);
            }
        }
        // Positions advance once the whole call has succeeded.
        for seg in segs.iter_mut() {
            seg.state.n_tokens += seg.tokens.len() as u64;
        }
        Ok(())
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

/// Most channels one task of [`Model::scan_step`] takes (its dt lives on the stack).
const STEP_CHANNELS_MAX: usize = 512;

// Decode's fused step, apart from `forward` for length.
impl Model {
    /// The scan of a single token of a single sequence (decode), with `dt_proj`
    /// fused in: each task computes dt for its own channels (its rows of
    /// `dt_proj`) and scans them at once, so the small matmul needs no parallel
    /// region (nor a pass over dt) of its own. With one token, the channel-major
    /// scan output is the output row, written in place.
    #[allow(clippy::too_many_arguments)]
    fn scan_step(
        &self,
        l: &LayerRefs,
        p: &ScanParams<'_>,
        x: &[f32],
        z: &[f32],
        xdbl: &[f32],
        h: &mut [f32],
        y: &mut [f32],
    ) {
        let (n, r, di) = (p.d_state, self.config.dt_rank, p.d.len());
        let per_task = di
            .div_ceil(2 * pool::threads())
            .next_multiple_of(8)
            .min(STEP_CHANNELS_MAX);
        pool::for_each_chunk_pair(h, per_task * n, y, per_task, |i, hc, yc| {
            let cs = i * per_task..i * per_task + yc.len();
            let mut dt = [0.0f32; STEP_CHANNELS_MAX];
            let dt = &mut dt[..cs.len()];
            matmul(&self.view_rows(&l.dt_proj, cs.clone()), &xdbl[..r], 1, dt);
            let sub = ScanParams {
                a: &p.a[cs.start * n..cs.end * n],
                d: &p.d[cs.clone()],
                dt_bias: &p.dt_bias[cs.clone()],
                d_state: n,
            };
            let inp = ScanInputs {
                x: &x[cs.clone()],
                dt,
                bc: xdbl,
                bc_stride: xdbl.len(),
                b_off: r,
                c_off: r + n,
                z: &z[cs.clone()],
            };
            selective_scan(&sub, &inp, 0, cs.len(), hc, yc);
        });
    }
}

/// `dt = dt_proj(xdbl[:, :R])`: the first R columns of each x_proj row, which are not
/// contiguous across rows, so they are gathered per token first.
fn dt_proj(
    w: &WeightView<'_>,
    xdbl: &[f32],
    stride: usize,
    r: usize,
    t: usize,
    buf: &mut Vec<f32>,
    dt: &mut [f32],
) {
    let gathered = grow(buf, t * r);
    for (dst, row) in gathered.chunks_exact_mut(r).zip(xdbl.chunks_exact(stride)) {
        dst.copy_from_slice(&row[..r]);
    }
    matmul(w, gathered, t, dt);
}

/// Channels per scan task for long sequences (prefill): each task's `A` and state
/// stay in L1 while it walks the tokens.
const SCAN_CHANNELS_PER_TASK: usize = 32;
/// Below this many tokens the scan reads `A` and the state once, like a weight
/// matrix, so each thread gets long contiguous runs of channels (two tasks per
/// thread) that the hardware prefetcher can stream.
const SCAN_SHORT: usize = 16;

/// Tokens per block of a long segment's scan: one block's inputs (x, dt, z: 3 ×
/// 64 rows) span few enough pages and bytes to stay in the TLB and L2 while every
/// channel group walks them. Walking all 512 rows of a prompt per channel group
/// instead (rows 6 KB apart in mamba-130m) took 23.8 ns per channel and token
/// against 12.7 in blocks (kernel bench, one thread, same run).
const SCAN_BLOCK_L: usize = 64;

/// The scan of one segment's `L` tokens with the output `y: (L, d_inner)`
/// token-major: channels split across threads, long segments in blocks of
/// [`SCAN_BLOCK_L`] tokens (the state carries over from block to block), each
/// block's channel-major output transposed into `y` while it is hot.
fn scan_segment(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    h: &mut [f32],
    y_t: &mut Vec<f32>,
    y: &mut [f32],
) {
    let di = p.d.len();
    let len = inp.x.len() / di;
    let w = inp.bc_stride;
    for t0 in (0..len).step_by(SCAN_BLOCK_L) {
        let lb = SCAN_BLOCK_L.min(len - t0);
        let rows = t0 * di..(t0 + lb) * di;
        let blk = ScanInputs {
            x: &inp.x[rows.clone()],
            dt: &inp.dt[rows.clone()],
            z: &inp.z[rows.clone()],
            bc: &inp.bc[t0 * w..(t0 + lb) * w],
            ..*inp
        };
        let y_t = grow(y_t, di * lb);
        scan_parallel(p, &blk, h, y_t, lb);
        let y_t = &*y_t;
        let per = rows_per_task(lb);
        pool::for_each_chunk(&mut y[rows], per * di, |i, dst| {
            transpose(y_t, di, lb, i * per, dst);
        });
    }
}

fn scan_parallel(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    h: &mut [f32],
    y_t: &mut [f32],
    len: usize,
) {
    let n = p.d_state;
    let d_inner = p.d.len();
    let per_task = if len < SCAN_SHORT {
        d_inner.div_ceil(2 * pool::threads()).next_multiple_of(8)
    } else {
        SCAN_CHANNELS_PER_TASK
    };
    pool::for_each_chunk_pair(h, per_task * n, y_t, per_task * len, |i, hc, yc| {
        let c0 = i * per_task;
        selective_scan(p, inp, c0, hc.len() / n, hc, yc);
    });
}

/// Rows (tokens) per task of the row-wise element work (norms, residual adds,
/// the scan output's transposition): one task below 32 rows (decode), else about
/// two tasks per thread.
fn rows_per_task(rows: usize) -> usize {
    if rows < 32 {
        rows.max(1)
    } else {
        rows.div_ceil(2 * pool::threads())
    }
}

/// Rows `j0 ..` of the transpose `(rows, cols)` → `(cols, rows)` of `src`, as many
/// as `dst` holds (whole rows of `rows` values).
fn transpose(src: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [f32]) {
    for (j, dr) in dst.chunks_exact_mut(rows).enumerate() {
        for (i, v) in dr.iter_mut().enumerate() {
            *v = src[i * cols + j0 + j];
        }
    }
}
