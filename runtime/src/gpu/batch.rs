//! [`GpuBatch`] (several sequences) and [`GpuSession`] (one), with the GPU forward
//! pass: the same sequence of operations per layer as `Model::forward`.

use super::{dev_err, GpuModel};
use crate::batch_plan::{check_inputs, plan_prefill};
use crate::error::{Result, RuntimeError};
use crate::finite::check_logits;
use crate::snapshot::Snapshot;
use crate::state::State;
use mamba_kernels::gpu::{
    self, ConvArgs, DeviceBuffer, DeviceWeight, Mat, MatMut, MatmulArgs, MatmulKernel, NormArgs,
};
use mamba_kernels::gpu::{Graph, RowSelect, ScanArgs, SegTable, StateMut};

/// Most tokens (all sequences together) in one forward call while prefilling:
/// bounds the activation buffers (about `PREFILL_TOKENS × 6 d_inner × 4` bytes).
pub const PREFILL_TOKENS: usize = 4096;

/// Tokens per forward call in [`GpuSession::logits_all`] (its logits buffer is
/// this many rows of the vocabulary).
const LOGITS_ALL_CHUNK: usize = 512;

/// Which logits a forward call computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    None,
    /// The last token of each segment: `(n_seg, vocab)`.
    Last,
    /// Every token: `(T, vocab)`.
    All,
}

/// Device activation buffers, grown to the largest call and reused.
struct Scratch {
    cap_tokens: usize,
    cap_rows: usize,
    /// Bumped whenever a buffer is reallocated (recorded graphs hold the old ones).
    generation: u64,
    tokens: DeviceBuffer<u32>, // (T)
    resid: DeviceBuffer<f32>,  // (T, d_model), fp32 residual stream
    xn: DeviceBuffer<f32>,     // (T, d_model)
    xz: DeviceBuffer<f32>,     // (T, 2 d_inner): in_proj output (x | z)
    xc: DeviceBuffer<f32>,     // (T, d_inner): conv output
    xdbl: DeviceBuffer<f32>,   // (T, R + 2N): x_proj output (dt_in | B | C)
    dt: DeviceBuffer<f32>,     // (T, d_inner)
    y: DeviceBuffer<f32>,      // (T, d_inner): scan output
    fin: DeviceBuffer<f32>,    // (rows, d_model): final norm
    logits: DeviceBuffer<f32>, // (rows, vocab)
}

impl Scratch {
    fn new() -> Scratch {
        let e = DeviceBuffer::empty;
        Scratch {
            cap_tokens: 0,
            cap_rows: 0,
            generation: 0,
            tokens: DeviceBuffer::empty(),
            resid: e(),
            xn: e(),
            xz: e(),
            xc: e(),
            xdbl: e(),
            dt: e(),
            y: e(),
            fin: e(),
            logits: e(),
        }
    }

    fn ensure(&mut self, m: &GpuModel, tokens: usize, rows: usize) -> Result<()> {
        let c = &m.config;
        let (d, di) = (c.d_model, c.d_inner);
        let alloc = |n: usize, what: &str| DeviceBuffer::<f32>::alloc(n, what).map_err(dev_err);
        if tokens > self.cap_tokens {
            // Free the old buffers before allocating the larger ones.
            self.cap_tokens = 0;
            self.tokens = DeviceBuffer::empty();
            for buf in [
                &mut self.resid,
                &mut self.xn,
                &mut self.xz,
                &mut self.xc,
                &mut self.xdbl,
                &mut self.dt,
                &mut self.y,
            ] {
                *buf = DeviceBuffer::empty();
            }
            let t = tokens;
            let what = |name: &str| format!("activations `{name}` for {t} tokens");
            self.tokens = DeviceBuffer::alloc(t, &what("tokens")).map_err(dev_err)?;
            self.resid = alloc(t * d, &what("residual"))?;
            self.xn = alloc(t * d, &what("normed"))?;
            self.xz = alloc(t * 2 * di, &what("in_proj"))?;
            self.xc = alloc(t * di, &what("conv"))?;
            self.xdbl = alloc(t * (c.dt_rank + 2 * c.d_state), &what("x_proj"))?;
            self.dt = alloc(t * di, &what("dt"))?;
            self.y = alloc(t * di, &what("scan"))?;
            self.cap_tokens = t;
            self.generation += 1;
        }
        if rows > self.cap_rows {
            self.cap_rows = 0;
            self.fin = DeviceBuffer::empty();
            self.logits = DeviceBuffer::empty();
            self.fin = alloc(rows * d, &format!("final norm for {rows} rows"))?;
            self.logits = alloc(rows * c.vocab_size, &format!("logits for {rows} rows"))?;
            self.cap_rows = rows;
            self.generation += 1;
        }
        Ok(())
    }
}

/// Several independent sequences on the GPU, advanced together: each step reads
/// every weight matrix once for the whole batch. Mirrors [`crate::Batch`].
pub struct GpuBatch<'m> {
    model: &'m GpuModel,
    n: usize,
    conv: DeviceBuffer<f32>, // (n_layer, B, d_inner, d_conv - 1)
    ssm: DeviceBuffer<f32>,  // (n_layer, B, d_inner, d_state)
    n_tokens: Vec<u64>,
    scratch: Scratch,
    segs: SegTable,
    logits: Vec<f32>,
    /// The last decode step's kernels, recorded for replay.
    graph: Option<StepGraph>,
    /// Why recording failed, if it did (decoding then launches kernel by kernel).
    graph_error: Option<String>,
}

/// A recorded decode step and what it was recorded for: the same sequences, one
/// token each, the same device buffers.
struct StepGraph {
    key: GraphKey,
    graph: Graph,
}

#[derive(PartialEq, Eq)]
struct GraphKey {
    slots: Vec<usize>,
    scratch_generation: u64,
    segs_addr: usize,
}

/// Decode steps replay a recorded graph unless `MAMBA_GPU_GRAPHS=0` (to compare).
fn graphs_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MAMBA_GPU_GRAPHS").map_or(true, |v| v != "0"))
}

impl<'m> GpuBatch<'m> {
    /// `n` empty sequences, their states zeroed on the device.
    pub fn new(model: &'m GpuModel, n: usize) -> Result<GpuBatch<'m>> {
        model.select()?;
        let c = &model.config;
        let conv_len = c.n_layer * n * c.d_inner * (c.d_conv - 1);
        let ssm_len = c.n_layer * n * c.d_inner * c.d_state;
        Ok(GpuBatch {
            model,
            n,
            conv: DeviceBuffer::zeroed(conv_len, &format!("conv states of {n} sequences"))
                .map_err(dev_err)?,
            ssm: DeviceBuffer::zeroed(ssm_len, &format!("SSM states of {n} sequences"))
                .map_err(dev_err)?,
            n_tokens: vec![0; n],
            scratch: Scratch::new(),
            segs: SegTable::new(),
            logits: Vec::new(),
            graph: None,
            graph_error: None,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m GpuModel {
        self.model
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The logits of the last call, `(B, vocab)`.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Tokens fed to sequence `i` so far.
    pub fn n_tokens(&self, i: usize) -> u64 {
        self.n_tokens[i]
    }

    /// Whether decode steps replay a recorded graph: `Ok(true)` once one is
    /// recorded, `Ok(false)` before the first step or with `MAMBA_GPU_GRAPHS=0`,
    /// `Err(why)` if recording failed (steps then launch kernel by kernel).
    pub fn graph_status(&self) -> std::result::Result<bool, &str> {
        match &self.graph_error {
            Some(e) => Err(e),
            None => Ok(self.graph.is_some()),
        }
    }

    /// Back to empty sequences.
    pub fn reset(&mut self) -> Result<()> {
        self.model.select()?;
        self.conv.fill_zero().map_err(dev_err)?;
        self.ssm.fill_zero().map_err(dev_err)?;
        self.n_tokens.fill(0);
        self.logits.clear();
        Ok(())
    }

    /// Feeds each sequence its prompt (lengths may differ, none empty) and returns
    /// the logits after each one's last token, `(B, vocab)`.
    ///
    /// Work is chunked by [`plan_prefill`] (the CPU batch's plan): each forward call
    /// takes up to `PREFILL_TOKENS / active` tokens from every unfinished sequence,
    /// so all sequences advance together and the scan runs in parallel over
    /// sequences as well as channels. Every input is checked before any sequence
    /// advances.
    pub fn prefill(&mut self, prompts: &[&[u32]]) -> Result<&[f32]> {
        check_inputs(prompts, self.n, "prompts", |t| self.model.check_tokens(t))?;
        self.model.select()?;
        let vocab = self.model.vocab_size();
        let mut out = vec![0.0f32; self.n * vocab];
        let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        for call in plan_prefill(&lens, PREFILL_TOKENS) {
            let mut slots = Vec::with_capacity(call.len());
            let mut chunks = Vec::with_capacity(call.len());
            let mut finishing = Vec::new();
            for piece in call {
                if piece.finishes {
                    finishing.push((piece.seq, chunks.len()));
                }
                slots.push(piece.seq);
                chunks.push(&prompts[piece.seq][piece.tokens]);
            }
            let want = if finishing.is_empty() {
                Want::None
            } else {
                Want::Last
            };
            let rows = self.forward(&slots, &chunks, want)?;
            if rows > 0 {
                let mut host = vec![0.0f32; rows * vocab];
                self.scratch
                    .logits
                    .download(0, &mut host)
                    .map_err(dev_err)?;
                if let Err(e) = self.check_rows(&host, &slots) {
                    self.logits.clear();
                    return Err(e);
                }
                for (i, s) in finishing {
                    out[i * vocab..(i + 1) * vocab]
                        .copy_from_slice(&host[s * vocab..(s + 1) * vocab]);
                }
            }
        }
        self.logits = out;
        Ok(&self.logits)
    }

    /// Feeds one token to every sequence; returns `(B, vocab)` logits.
    pub fn step(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        let inputs: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        check_inputs(&inputs, self.n, "tokens", |t| self.model.check_tokens(t))?;
        self.model.select()?;
        let slots: Vec<usize> = (0..self.n).collect();
        let chunks: Vec<&[u32]> = tokens.chunks(1).collect();
        let rows = self.forward(&slots, &chunks, Want::Last)?;
        self.logits.resize(rows * self.model.vocab_size(), 0.0);
        self.scratch
            .logits
            .download(0, &mut self.logits)
            .map_err(dev_err)?;
        if let Err(e) = self.check_rows(&self.logits, &slots) {
            self.logits.clear();
            return Err(e);
        }
        Ok(&self.logits)
    }

    /// Refuses NaN or infinity in logits rows computed for `slots` (one row per
    /// slot, after its last token): sampling must never see them. The GPU pass is
    /// checked at the logits only, not per layer.
    fn check_rows(&self, logits: &[f32], slots: &[usize]) -> Result<()> {
        check_logits(logits, self.model.vocab_size(), |row| {
            let slot = slots[row];
            (slot, self.n_tokens[slot].saturating_sub(1))
        })
    }

    /// A copy of sequence `i`'s state on the host (for saving, or forking onto the CPU).
    pub fn state(&self, i: usize) -> Result<State> {
        self.check_index(i)?;
        self.model.select()?;
        let c = &self.model.config;
        let mut st = State::zeroed(self.model.state_shape, self.model.model_id);
        let (pc, ps) = (c.d_inner * (c.d_conv - 1), c.d_inner * c.d_state);
        for l in 0..c.n_layer {
            self.conv
                .download((l * self.n + i) * pc, st.conv_mut(l))
                .map_err(dev_err)?;
            self.ssm
                .download((l * self.n + i) * ps, st.ssm_mut(l))
                .map_err(dev_err)?;
        }
        st.n_tokens = self.n_tokens[i];
        Ok(st)
    }

    /// Replaces sequence `i`'s state with `state`, which must belong to this model
    /// (owner id and shape) and hold only finite values. The batch's logits, which
    /// no longer follow every state, are cleared.
    pub fn set_state(&mut self, i: usize, state: &State) -> Result<()> {
        self.check_index(i)?;
        state.check_fits(self.model.model_id, self.model.state_shape)?;
        state.check_finite()?;
        self.logits.clear();
        self.model.select()?;
        let c = &self.model.config;
        let (pc, ps) = (c.d_inner * (c.d_conv - 1), c.d_inner * c.d_state);
        for l in 0..c.n_layer {
            self.conv
                .upload((l * self.n + i) * pc, &state.conv()[l * pc..(l + 1) * pc])
                .map_err(dev_err)?;
            self.ssm
                .upload((l * self.n + i) * ps, &state.ssm()[l * ps..(l + 1) * ps])
                .map_err(dev_err)?;
        }
        self.n_tokens[i] = state.n_tokens;
        Ok(())
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i < self.n {
            Ok(())
        } else {
            Err(RuntimeError::Batch(format!(
                "sequence {i} of a batch of {}",
                self.n
            )))
        }
    }

    /// One forward call: segment `s` feeds `chunks[s]` to sequence `slots[s]`.
    /// Returns the number of logits rows left in `scratch.logits`.
    fn forward(&mut self, slots: &[usize], chunks: &[&[u32]], want: Want) -> Result<usize> {
        let lens: Vec<usize> = chunks.iter().map(|t| t.len()).collect();
        let t: usize = lens.iter().sum();
        let rows = match want {
            Want::None => 0,
            Want::Last => chunks.len(),
            Want::All => t,
        };
        self.segs.set(&lens, slots).map_err(dev_err)?;
        self.scratch.ensure(self.model, t, rows)?;
        let flat: Vec<u32> = chunks.concat();
        self.scratch.tokens.upload(0, &flat).map_err(dev_err)?;
        // A decode step (one token per sequence) repeats the last one's launches
        // exactly: replay them when recorded for these sequences and buffers.
        let decode = want == Want::Last && t == slots.len() && graphs_enabled();
        if decode && self.graph_error.is_none() {
            let key = GraphKey {
                slots: slots.to_vec(),
                scratch_generation: self.scratch.generation,
                segs_addr: self.segs.device_addr(),
            };
            if self.graph.as_ref().is_none_or(|g| g.key != key) {
                self.graph = None;
                match Graph::capture(|| self.launch_forward(t, want)) {
                    Ok(((), graph)) => self.graph = Some(StepGraph { key, graph }),
                    Err(e) => self.graph_error = Some(e.to_string()),
                }
            }
        }
        match self.graph.as_ref().filter(|_| decode) {
            Some(g) => g.graph.launch().map_err(dev_err)?,
            None => self.launch_forward(t, want)?,
        }
        for (&slot, &len) in slots.iter().zip(&lens) {
            self.n_tokens[slot] += len as u64;
        }
        Ok(rows)
    }

    /// Launches the forward pass over the `t` tokens already in `scratch.tokens`,
    /// segmented as `segs` says: device work only (no copies, no allocations), so
    /// that it can be recorded as a graph.
    fn launch_forward(&mut self, t: usize, want: Want) -> Result<()> {
        let m = self.model;
        let c = &m.config;
        let (d, di, n, r, k) = (c.d_model, c.d_inner, c.d_state, c.dt_rank, c.d_conv);
        let (b, ldbc, eps) = (self.n, r + 2 * n, c.rms_norm_eps as f32);
        let rows = match want {
            Want::None => 0,
            Want::Last => self.segs.n_seg(),
            Want::All => t,
        };
        let Self {
            scratch: s,
            conv,
            ssm,
            segs,
            ..
        } = self;

        // ── embedding ─────────────────────────────────────────────────────────
        gpu::embed(
            &m.embeddings,
            &s.tokens,
            0,
            t,
            MatMut::new(&mut s.resid, 0, d),
        )
        .map_err(dev_err)?;
        for (li, l) in m.layers.iter().enumerate() {
            // ── x = RMSNorm(residual) ─────────────────────────────────────────
            let norm = NormArgs {
                x: Mat::new(&s.resid, 0, d),
                w: &l.norm,
                eps,
                rows: RowSelect::All(t),
                out: MatMut::new(&mut s.xn, 0, d),
            };
            gpu::rmsnorm(norm).map_err(dev_err)?;
            // ── in_proj → (x | z) ─────────────────────────────────────────────
            mm(
                &l.in_proj,
                Mat::new(&s.xn, 0, d),
                MatMut::new(&mut s.xz, 0, 2 * di),
                t,
                l.in_bias.as_ref(),
                false,
            )?;
            // ── causal conv1d + SiLU, per sequence ────────────────────────────
            gpu::conv1d_silu(ConvArgs {
                x: Mat::new(&s.xz, 0, 2 * di),
                out: MatMut::new(&mut s.xc, 0, di),
                state: StateMut {
                    buf: conv,
                    offset: li * b * di * (k - 1),
                    slots: b,
                },
                w: &l.conv_w,
                bias: l.conv_b.as_ref(),
                segs,
                d_inner: di,
                k,
            })
            .map_err(dev_err)?;
            // ── x_proj → (dt_in | B | C); dt_proj reads dt_in in place ─────────
            mm(
                &l.x_proj,
                Mat::new(&s.xc, 0, di),
                MatMut::new(&mut s.xdbl, 0, ldbc),
                t,
                None,
                false,
            )?;
            mm(
                &l.dt_proj,
                Mat::new(&s.xdbl, 0, ldbc),
                MatMut::new(&mut s.dt, 0, di),
                t,
                None,
                false,
            )?;
            // ── selective scan (dt bias, softplus, D skip, SiLU(z) gate fused) ─
            gpu::selective_scan(ScanArgs {
                x: Mat::new(&s.xc, 0, di),
                dt: Mat::new(&s.dt, 0, di),
                bc: Mat::new(&s.xdbl, 0, ldbc),
                b_off: r,
                c_off: r + n,
                z: Mat::new(&s.xz, di, 2 * di),
                y: MatMut::new(&mut s.y, 0, di),
                h: StateMut {
                    buf: ssm,
                    offset: li * b * di * n,
                    slots: b,
                },
                a: &l.a,
                d: &l.d,
                dt_bias: &l.dt_bias,
                segs,
                d_inner: di,
                d_state: n,
            })
            .map_err(dev_err)?;
            // ── out_proj, added to the fp32 residual in the epilogue ───────────
            mm(
                &l.out_proj,
                Mat::new(&s.y, 0, di),
                MatMut::new(&mut s.resid, 0, d),
                t,
                l.out_bias.as_ref(),
                true,
            )?;
        }
        // ── final norm and logits ─────────────────────────────────────────────
        let select = match want {
            Want::None => return Ok(()),
            Want::Last => RowSelect::SegmentLast(&self.segs),
            Want::All => RowSelect::All(t),
        };
        let s = &mut self.scratch;
        let norm = NormArgs {
            x: Mat::new(&s.resid, 0, d),
            w: &m.norm_f,
            eps,
            rows: select,
            out: MatMut::new(&mut s.fin, 0, d),
        };
        gpu::rmsnorm(norm).map_err(dev_err)?;
        mm(
            m.lm_head(),
            Mat::new(&s.fin, 0, d),
            MatMut::new(&mut s.logits, 0, c.vocab_size),
            rows,
            None,
            false,
        )?;
        Ok(())
    }
}

/// `y (+)= bias + W·x` for `n` tokens, the kernel chosen by shape.
fn mm(
    w: &DeviceWeight,
    x: Mat<'_>,
    y: MatMut<'_>,
    n: usize,
    bias: Option<&DeviceBuffer<f32>>,
    accumulate: bool,
) -> Result<()> {
    gpu::matmul(MatmulArgs {
        w,
        x,
        y,
        n,
        bias,
        accumulate,
        kernel: MatmulKernel::Auto,
    })
    .map_err(dev_err)
}

/// One sequence on the GPU. Mirrors [`crate::Session`].
pub struct GpuSession<'m> {
    batch: GpuBatch<'m>,
    history: Vec<u32>,
    /// As in [`crate::Session`]: the last generated token, in `history`, not fed yet.
    pending: Option<u32>,
}

impl<'m> GpuSession<'m> {
    /// A session at the start of a sequence.
    pub fn new(model: &'m GpuModel) -> Result<GpuSession<'m>> {
        Ok(GpuSession {
            batch: GpuBatch::new(model, 1)?,
            history: Vec::new(),
            pending: None,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m GpuModel {
        self.batch.model
    }

    /// Back to the empty sequence.
    pub fn reset(&mut self) -> Result<()> {
        self.history.clear();
        self.pending = None;
        self.batch.reset()
    }

    /// Tokens fed so far.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Logits after the last token fed (empty before any).
    pub fn logits(&self) -> &[f32] {
        self.batch.logits()
    }

    /// Feeds tokens and returns the logits after the last one, `(vocab)`.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        self.batch.model.check_tokens(tokens)?;
        self.feed_pending()?;
        self.batch.prefill(&[tokens])?;
        self.history.extend_from_slice(tokens);
        Ok(self.batch.logits())
    }

    /// Feeds one token and returns the next logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.batch.model.check_tokens(&[token])?;
        self.feed_pending()?;
        self.batch.step(&[token])?;
        self.history.push(token);
        Ok(self.batch.logits())
    }

    /// Feeds tokens and returns the logits after every one of them, `(L, vocab)`.
    pub fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        let m = self.batch.model;
        m.check_tokens(tokens)?;
        self.feed_pending()?;
        m.select()?;
        let v = m.vocab_size();
        let start = self.batch.n_tokens[0];
        let mut all = vec![0.0f32; tokens.len() * v];
        let mut done = 0;
        for chunk in tokens.chunks(LOGITS_ALL_CHUNK) {
            let rows = self.batch.forward(&[0], &[chunk], Want::All)?;
            self.batch
                .scratch
                .logits
                .download(0, &mut all[done * v..(done + rows) * v])
                .map_err(dev_err)?;
            done += rows;
        }
        if let Err(e) = check_logits(&all, v, |row| (0, start + row as u64)) {
            self.batch.logits.clear();
            return Err(e);
        }
        self.batch.logits = all[all.len() - v..].to_vec();
        self.history.extend_from_slice(tokens);
        Ok(all)
    }

    /// A copy of the state on the host.
    pub fn state(&self) -> Result<State> {
        self.batch.state(0)
    }

    /// Replaces the state (e.g. a CPU session's, to continue on the GPU). The
    /// history and logits, which belong to the old state, are cleared: the next
    /// call must feed tokens. To resume a saved position exactly, use
    /// [`GpuSession::restore`].
    pub fn set_state(&mut self, state: &State) -> Result<()> {
        self.batch.set_state(0, state)?;
        self.history.clear();
        self.pending = None;
        Ok(())
    }

    /// The session's position (as [`crate::Session::snapshot`]).
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        self.feed_pending()?;
        Ok(Snapshot {
            state: self.batch.state(0)?,
            history: self.history.clone(),
            logits: self.batch.logits.clone(),
        })
    }

    /// Puts the session exactly where `snap` was taken (as
    /// [`crate::Session::restore`]); nothing changes unless it fits this model.
    pub fn restore(&mut self, snap: Snapshot) -> Result<()> {
        let m = self.batch.model;
        snap.check_for(m.model_id, m.state_shape, m.vocab_size())?;
        self.batch.set_state(0, &snap.state)?;
        self.batch.logits = snap.logits;
        self.history = snap.history;
        self.pending = None;
        Ok(())
    }

    /// Feeds the token recorded but not fed by the last generation, if any.
    fn feed_pending(&mut self) -> Result<()> {
        if let Some(t) = self.pending {
            self.batch.step(&[t])?;
            self.pending = None;
        }
        Ok(())
    }
}

impl crate::generate::Sequence for GpuSession<'_> {
    fn feed_prompt(&mut self, tokens: &[u32]) -> Result<()> {
        self.prefill(tokens).map(|_| ())
    }

    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.step(token).map(|_| ())
    }

    fn feed_pending(&mut self) -> Result<()> {
        GpuSession::feed_pending(self)
    }

    fn logits(&self) -> &[f32] {
        self.batch.logits()
    }

    fn history(&self) -> &[u32] {
        &self.history
    }

    fn record(&mut self, token: u32) {
        self.history.push(token);
        self.pending = Some(token);
    }
}
