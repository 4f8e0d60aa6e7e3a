//! Safe launchers: every device range a kernel will touch is checked against its
//! buffer here, then the `#[repr(C)]` params go to the C entry point.

use super::{check, ffi, DeviceBuffer, GpuError, Result};
use crate::weights::WeightView;
use mamba_format::QuantType;
use std::ptr::{null, null_mut};

/// A matrix on the device in its stored layout: `rows` rows of `cols` weights of
/// type `ty` (ggml-compatible blocks), uploaded as stored, never expanded.
#[derive(Debug)]
pub struct DeviceWeight {
    buf: DeviceBuffer<u8>,
    ty: QuantType,
    rows: usize,
    cols: usize,
}

impl DeviceWeight {
    /// Uploads a host matrix as stored; `what` names it in an out-of-memory error.
    pub fn upload(w: &WeightView<'_>, what: &str) -> Result<Self> {
        if w.data.len() != w.rows * w.row_bytes() {
            return Err(GpuError::Invalid(format!(
                "{what}: {} bytes for {} rows of {}",
                w.data.len(),
                w.rows,
                w.row_bytes()
            )));
        }
        Ok(DeviceWeight {
            buf: DeviceBuffer::from_slice(w.data, what)?,
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
        })
    }

    /// Element type.
    pub fn ty(&self) -> QuantType {
        self.ty
    }

    /// Rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per stored row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }

    /// Device bytes held.
    pub fn size_bytes(&self) -> usize {
        self.buf.size_bytes()
    }
}

fn i32_of(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        GpuError::Invalid(format!(
            "{what} = {v} does not fit the kernels' 32-bit sizes"
        ))
    })
}

fn span_check(
    len: usize,
    offset: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    what: &str,
) -> Result<()> {
    if rows == 0 {
        return if offset <= len {
            Ok(())
        } else {
            Err(GpuError::Invalid(format!(
                "{what}: offset {offset} past {len}"
            )))
        };
    }
    if rows > 1 && ld < cols {
        return Err(GpuError::Invalid(format!(
            "{what}: row stride {ld} < {cols} columns"
        )));
    }
    let end = (rows - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(offset))
        .and_then(|v| v.checked_add(cols));
    match end {
        Some(e) if e <= len => Ok(()),
        _ => Err(GpuError::Invalid(format!(
            "{what}: {rows} x {cols} (stride {ld}) from {offset} overruns {len} values"
        ))),
    }
}

/// A row-major f32 matrix inside a device buffer: row `i` starts at value
/// `offset + i * ld`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    /// The buffer.
    pub buf: &'a DeviceBuffer<f32>,
    /// First value.
    pub offset: usize,
    /// Row stride in values.
    pub ld: usize,
}

impl<'a> Mat<'a> {
    /// A view from `offset` with row stride `ld`.
    pub fn new(buf: &'a DeviceBuffer<f32>, offset: usize, ld: usize) -> Self {
        Mat { buf, offset, ld }
    }

    fn ptr(&self, rows: usize, cols: usize, what: &str) -> Result<*const f32> {
        span_check(self.buf.len(), self.offset, rows, cols, self.ld, what)?;
        self.buf.ptr_at(self.offset, 0)
    }
}

/// The writable counterpart of [`Mat`].
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The buffer.
    pub buf: &'a mut DeviceBuffer<f32>,
    /// First value.
    pub offset: usize,
    /// Row stride in values.
    pub ld: usize,
}

impl<'a> MatMut<'a> {
    /// A view from `offset` with row stride `ld`.
    pub fn new(buf: &'a mut DeviceBuffer<f32>, offset: usize, ld: usize) -> Self {
        MatMut { buf, offset, ld }
    }

    fn ptr(&mut self, rows: usize, cols: usize, what: &str) -> Result<*mut f32> {
        span_check(self.buf.len(), self.offset, rows, cols, self.ld, what)?;
        self.buf.ptr_at_mut(self.offset, 0)
    }
}

/// One layer's recurrent states inside a device buffer: slot `s` is the
/// `per_slot` values at `offset + s * per_slot`, for `slots` slots.
#[derive(Debug)]
pub struct StateMut<'a> {
    /// The buffer.
    pub buf: &'a mut DeviceBuffer<f32>,
    /// Value of slot 0.
    pub offset: usize,
    /// Slots present.
    pub slots: usize,
}

impl StateMut<'_> {
    fn ptr(&mut self, per_slot: usize, segs: &SegTable, what: &str) -> Result<*mut f32> {
        if segs.slots_needed() > self.slots {
            return Err(GpuError::Invalid(format!(
                "{what}: segments use slot {} of {}",
                segs.slots_needed() - 1,
                self.slots
            )));
        }
        span_check(
            self.buf.len(),
            self.offset,
            self.slots,
            per_slot,
            per_slot,
            what,
        )?;
        self.buf.ptr_at_mut(self.offset, 0)
    }
}

/// The sequences of one forward call, on the device: segment `s` is `lens[s]`
/// consecutive tokens of the activations (in order) and owns state slot
/// `slots[s]`. Uploaded only when it changes (decode steps reuse it).
#[derive(Debug)]
pub struct SegTable {
    buf: DeviceBuffer<i32>,
    // [start (n_seg + 1) | slot (n_seg) | last token (n_seg)], as uploaded.
    host: Vec<i32>,
    n_seg: usize,
    n_tokens: usize,
    slots_needed: usize,
}

impl Default for SegTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SegTable {
    /// An empty table.
    pub fn new() -> Self {
        SegTable {
            buf: DeviceBuffer::empty(),
            host: Vec::new(),
            n_seg: 0,
            n_tokens: 0,
            slots_needed: 0,
        }
    }

    /// Sets the segments: every length ≥ 1, slots distinct.
    pub fn set(&mut self, lens: &[usize], slots: &[usize]) -> Result<()> {
        if lens.len() != slots.len() {
            return Err(GpuError::Invalid(format!(
                "{} segment lengths for {} slots",
                lens.len(),
                slots.len()
            )));
        }
        let n = lens.len();
        let mut host = Vec::with_capacity(3 * n + 1);
        let mut start = 0usize;
        host.push(0);
        for &l in lens {
            if l == 0 {
                return Err(GpuError::Invalid("empty segment".into()));
            }
            start += l;
            host.push(i32_of(start, "tokens in a forward call")?);
        }
        let mut seen = vec![false; slots.iter().max().map_or(0, |m| m + 1)];
        for &s in slots {
            if std::mem::replace(&mut seen[s], true) {
                return Err(GpuError::Invalid(format!(
                    "state slot {s} given to two segments"
                )));
            }
            host.push(i32_of(s, "slot")?);
        }
        for i in 0..n {
            host.push(host[i + 1] - 1);
        }
        if host != self.host {
            if self.buf.len() < host.len() {
                self.buf = DeviceBuffer::alloc(host.len().next_power_of_two(), "segment table")?;
            }
            self.buf.upload(0, &host)?;
            self.host = host;
        }
        self.n_seg = n;
        self.n_tokens = start;
        self.slots_needed = seen.len();
        Ok(())
    }

    /// Number of segments.
    pub fn n_seg(&self) -> usize {
        self.n_seg
    }

    /// Tokens of all segments.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// One past the largest slot.
    pub fn slots_needed(&self) -> usize {
        self.slots_needed
    }

    /// Where the table lives on the device. Kernels recorded in a [`super::Graph`]
    /// read it there, so such a graph is valid only while this stays the same.
    pub fn device_addr(&self) -> usize {
        self.starts() as usize
    }

    fn starts(&self) -> *const i32 {
        self.buf.ptr_at(0, 0).unwrap_or(null())
    }

    fn slots(&self) -> *const i32 {
        self.buf.ptr_at(self.n_seg + 1, 0).unwrap_or(null())
    }

    fn lasts(&self) -> *const i32 {
        self.buf.ptr_at(2 * self.n_seg + 1, 0).unwrap_or(null())
    }
}

/// Which matmul kernel to run (tests force each; the runtime uses `Auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// By shape: matvec for ≤ 32 tokens or narrow matrices, else a tile kernel.
    Auto = 0,
    /// One warp per row, up to 8 tokens per pass.
    Matvec = 1,
    /// 128 rows × 32 tokens per block.
    Tile32 = 2,
    /// 128 rows × 128 tokens per block.
    Tile128 = 3,
}

/// Arguments of [`matmul`]: `y[t][r] (+)= bias[r] + Σ_c W[r][c] · x[t][c]`.
#[derive(Debug)]
pub struct MatmulArgs<'a> {
    /// The weights.
    pub w: &'a DeviceWeight,
    /// `(n, w.cols())` activations.
    pub x: Mat<'a>,
    /// `(n, w.rows())` output.
    pub y: MatMut<'a>,
    /// Tokens.
    pub n: usize,
    /// `(w.rows())` bias, or none.
    pub bias: Option<&'a DeviceBuffer<f32>>,
    /// Add to `y` instead of overwriting it (the fp32 residual add).
    pub accumulate: bool,
    /// Kernel choice.
    pub kernel: MatmulKernel,
}

/// The dequantizing matrix product (see [`MatmulArgs`]).
pub fn matmul(mut a: MatmulArgs<'_>) -> Result<()> {
    let w = a.w;
    if let Some(b) = a.bias {
        if b.len() < w.rows {
            return Err(GpuError::Invalid(format!(
                "bias of {} for {} rows",
                b.len(),
                w.rows
            )));
        }
    }
    let p = ffi::MatmulParams {
        w: w.buf.ptr_at(0, 0)?.cast(),
        x: a.x.ptr(a.n, w.cols, "matmul x")?,
        y: a.y.ptr(a.n, w.rows, "matmul y")?,
        bias: a.bias.map_or(null(), |b| b.ptr_at(0, 0).unwrap_or(null())),
        row_bytes: w.row_bytes() as i64,
        ldx: a.x.ld as i64,
        ldy: a.y.ld as i64,
        ty: w.ty.id() as i32,
        rows: i32_of(w.rows, "rows")?,
        cols: i32_of(w.cols, "cols")?,
        n: i32_of(a.n, "tokens")?,
        accumulate: a.accumulate as i32,
        variant: a.kernel as i32,
    };
    // SAFETY: every range the kernel reads or writes was checked above.
    check("mamba_matmul", unsafe { ffi::mamba_matmul(&p, null_mut()) })
}

/// Embedding gather: `out[t] = dequant(w[tokens[offset + t]])` for `t < n`; token
/// ids ≥ `w.rows()` give zero rows (callers check ids first).
pub fn embed(
    w: &DeviceWeight,
    tokens: &DeviceBuffer<u32>,
    offset: usize,
    n: usize,
    mut out: MatMut<'_>,
) -> Result<()> {
    let p = ffi::EmbedParams {
        w: w.buf.ptr_at(0, 0)?.cast(),
        tokens: tokens.ptr_at(offset, n)?,
        out: out.ptr(n, w.cols, "embed out")?,
        row_bytes: w.row_bytes() as i64,
        ldo: out.ld as i64,
        ty: w.ty.id() as i32,
        cols: i32_of(w.cols, "cols")?,
        n: i32_of(n, "tokens")?,
        vocab: i32_of(w.rows, "rows")?,
    };
    // SAFETY: checked ranges; token ids are bounds-checked by the kernel.
    check("mamba_embed", unsafe { ffi::mamba_embed(&p, null_mut()) })
}

/// Rows an [`rmsnorm`] normalises.
#[derive(Clone, Copy, Debug)]
pub enum RowSelect<'a> {
    /// Rows `0..n`.
    All(usize),
    /// The last token of each segment (the final norm before the logits).
    SegmentLast(&'a SegTable),
}

/// Arguments of [`rmsnorm`].
#[derive(Debug)]
pub struct NormArgs<'a> {
    /// Input rows of `w.len()` values.
    pub x: Mat<'a>,
    /// `(d)` weight.
    pub w: &'a DeviceBuffer<f32>,
    /// Epsilon.
    pub eps: f32,
    /// Which rows of `x`.
    pub rows: RowSelect<'a>,
    /// One output row per selected row.
    pub out: MatMut<'a>,
}

/// RMSNorm: `out[i] = w * x[row_i] / sqrt(mean(x[row_i]²) + eps)`.
pub fn rmsnorm(mut a: NormArgs<'_>) -> Result<()> {
    let d = a.w.len();
    let (x_rows, out_rows, idx) = match a.rows {
        RowSelect::All(n) => (n, n, null()),
        RowSelect::SegmentLast(s) => (s.n_tokens, s.n_seg, s.lasts()),
    };
    let p = ffi::NormParams {
        x: a.x.ptr(x_rows, d, "rmsnorm x")?,
        w: a.w.ptr_at(0, d)?,
        out: a.out.ptr(out_rows, d, "rmsnorm out")?,
        rows_idx: idx,
        ldx: a.x.ld as i64,
        ldo: a.out.ld as i64,
        rows: i32_of(out_rows, "rows")?,
        d: i32_of(d, "width")?,
        eps: a.eps,
        _pad: 0,
    };
    // SAFETY: checked ranges; segment-last indices are < n_tokens by construction.
    check("mamba_rmsnorm", unsafe {
        ffi::mamba_rmsnorm(&p, null_mut())
    })
}

/// Arguments of [`conv1d_silu`].
#[derive(Debug)]
pub struct ConvArgs<'a> {
    /// `(T, d_inner)` inputs.
    pub x: Mat<'a>,
    /// `(T, d_inner)` outputs (a different buffer).
    pub out: MatMut<'a>,
    /// Conv states, `d_inner * (k - 1)` per slot, oldest input first.
    pub state: StateMut<'a>,
    /// `(d_inner, k)` weights.
    pub w: &'a DeviceBuffer<f32>,
    /// `(d_inner)` bias, or none.
    pub bias: Option<&'a DeviceBuffer<f32>>,
    /// The segments.
    pub segs: &'a SegTable,
    /// Channels.
    pub d_inner: usize,
    /// Kernel width (1..=8).
    pub k: usize,
}

/// Causal depthwise conv1d + SiLU over each segment, advancing its conv state.
pub fn conv1d_silu(mut a: ConvArgs<'_>) -> Result<()> {
    let (t, di) = (a.segs.n_tokens, a.d_inner);
    if !(1..=8).contains(&a.k) {
        return Err(GpuError::Invalid(format!(
            "conv width {} not in 1..=8",
            a.k
        )));
    }
    if a.bias.is_some_and(|b| b.len() < di) {
        return Err(GpuError::Invalid("conv bias too short".into()));
    }
    let p = ffi::ConvParams {
        x: a.x.ptr(t, di, "conv x")?,
        out: a.out.ptr(t, di, "conv out")?,
        state: a.state.ptr(di * (a.k - 1), a.segs, "conv state")?,
        w: a.w.ptr_at(0, di * a.k)?,
        bias: a.bias.map_or(null(), |b| b.ptr_at(0, 0).unwrap_or(null())),
        seg_start: a.segs.starts(),
        seg_slot: a.segs.slots(),
        ldx: a.x.ld as i64,
        ldo: a.out.ld as i64,
        n_seg: i32_of(a.segs.n_seg, "segments")?,
        d_inner: i32_of(di, "d_inner")?,
        k: a.k as i32,
        _pad: 0,
    };
    // SAFETY: checked ranges; the segment table covers exactly T tokens and slots
    // below `state.slots`.
    check("mamba_conv1d_silu", unsafe {
        ffi::mamba_conv1d_silu(&p, null_mut())
    })
}

/// Arguments of [`selective_scan`].
#[derive(Debug)]
pub struct ScanArgs<'a> {
    /// `(T, d_inner)` conv output.
    pub x: Mat<'a>,
    /// `(T, d_inner)` dt before bias and softplus.
    pub dt: Mat<'a>,
    /// Rows holding B at `b_off` and C at `c_off` (the x_proj output).
    pub bc: Mat<'a>,
    /// Offset of B in a row of `bc`.
    pub b_off: usize,
    /// Offset of C in a row of `bc`.
    pub c_off: usize,
    /// `(T, d_inner)` gate.
    pub z: Mat<'a>,
    /// `(T, d_inner)` output.
    pub y: MatMut<'a>,
    /// SSM states, `d_inner * d_state` per slot.
    pub h: StateMut<'a>,
    /// `(d_inner, d_state)` A = -exp(A_log).
    pub a: &'a DeviceBuffer<f32>,
    /// `(d_inner)` D.
    pub d: &'a DeviceBuffer<f32>,
    /// `(d_inner)` dt bias.
    pub dt_bias: &'a DeviceBuffer<f32>,
    /// The segments.
    pub segs: &'a SegTable,
    /// Channels.
    pub d_inner: usize,
    /// N (1..=64).
    pub d_state: usize,
}

/// The fused selective scan over each segment (see `ops::scan`), advancing its state.
pub fn selective_scan(mut a: ScanArgs<'_>) -> Result<()> {
    let (t, di, n) = (a.segs.n_tokens, a.d_inner, a.d_state);
    if !(1..=64).contains(&n) {
        return Err(GpuError::Invalid(format!("d_state {n} not in 1..=64")));
    }
    let bc_cols = a.b_off.max(a.c_off) + n;
    let p = ffi::ScanParams {
        x: a.x.ptr(t, di, "scan x")?,
        dt: a.dt.ptr(t, di, "scan dt")?,
        bc: a.bc.ptr(t, bc_cols, "scan B/C")?,
        z: a.z.ptr(t, di, "scan z")?,
        y: a.y.ptr(t, di, "scan y")?,
        h: a.h.ptr(di * n, a.segs, "ssm state")?,
        a: a.a.ptr_at(0, di * n)?,
        d: a.d.ptr_at(0, di)?,
        dt_bias: a.dt_bias.ptr_at(0, di)?,
        seg_start: a.segs.starts(),
        seg_slot: a.segs.slots(),
        ldx: a.x.ld as i64,
        lddt: a.dt.ld as i64,
        ldbc: a.bc.ld as i64,
        ldz: a.z.ld as i64,
        ldy: a.y.ld as i64,
        b_off: i32_of(a.b_off, "B offset")?,
        c_off: i32_of(a.c_off, "C offset")?,
        n_seg: i32_of(a.segs.n_seg, "segments")?,
        d_inner: i32_of(di, "d_inner")?,
        d_state: n as i32,
        _pad: 0,
    };
    // SAFETY: checked ranges, as for conv1d_silu.
    check("mamba_selective_scan", unsafe {
        ffi::mamba_selective_scan(&p, null_mut())
    })
}
