//! The tiled, threaded matmul driver shared by the quantized-activation tables.
//!
//! ```text
//! quantize each token's activation row once (thread-local buffer, grown, never freed)
//! split the weight rows into tasks (crate::pool), each a run of whole row tiles
//! per task:  for each block of TOKEN_BLOCK tokens          (activations stay in L2)
//!              for each tile of rows_per_tile (≤ MR) rows   (weights stay in L1)
//!                for each group of ≤ toks_per_tile (≤ NR) tokens: one tile kernel call
//! ```
//!
//! A tile kernel unpacks each weight block once and reuses it for every token of
//! the group. Each output is one independent dot product whose arithmetic does not
//! depend on the tile shape, the token count or the thread split, so a token's
//! result is the same whether it is computed alone (decode) or in a batch.
//! Rows and tokens past the end of a partial tile repeat the last valid one; their
//! outputs are discarded.

use crate::cpu::act::{ActType, BlockQ8K, BlockQ8_1, QK8_1, QK_K};
use crate::cpu::{MatmulKernels, TypeKernel};
use crate::pool;
use crate::weights::WeightView;
use bytemuck::Pod;
use std::cell::Cell;
use std::ops::Range;

/// Most weight rows in one tile.
pub const MR: usize = 4;
/// Most tokens in one tile.
pub const NR: usize = 8;

/// A tile kernel: `out[i][j] = dot(rows[i], toks[j])` for `i` below the kernel's
/// rows per tile and `j < rn`, `1 <= rn <=` its tokens per tile (`<= NR`). Entries
/// of `rows` and `toks` past the valid ones repeat the last valid one, so a kernel
/// may compute a larger tile than asked and leave the extra outputs unused.
///
/// Each row slice is one stored weight row; each token slice one activation row in
/// the [`ActType`] form of the kernel's weight type.
///
/// # Safety
/// The CPU must support the instruction set of the table the kernel belongs to.
/// Kernels check slice lengths themselves (and panic on a mismatch).
pub type TileFn =
    unsafe fn(rows: &[&[u8]; MR], toks: &[&[u8]; NR], rn: usize, out: &mut [[f32; NR]; MR]);

/// Tokens whose activations one task keeps hot while walking its rows.
const TOKEN_BLOCK: usize = 64;
/// Below this many (weight bytes × tokens), the calling thread does the whole
/// matmul: splitting costs more than it saves (a region costs about a
/// microsecond; 32 KiB of weights take a few).
const PAR_MIN_WORK: usize = 32 << 10;
/// Tasks per thread, for load balance.
const TASKS_PER_THREAD: usize = 4;

thread_local! {
    /// Quantized activations of the current call (u32 for alignment 4).
    static ACT_BUF: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// `y = x · Wᵀ` through `mk`'s kernels; see [`crate::matmul::matmul`].
///
/// # Safety
/// The CPU must support the instruction set of `mk`.
pub unsafe fn matmul_tiled(
    mk: &MatmulKernels,
    w: &WeightView<'_>,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    assert_eq!(x.len(), n * w.cols, "x has the wrong length");
    assert_eq!(y.len(), n * w.rows, "y has the wrong length");
    assert_eq!(
        w.data.len(),
        w.rows * w.row_bytes(),
        "weight view has the wrong length"
    );
    if n == 0 || w.rows == 0 {
        return;
    }
    if w.cols == 0 {
        y.fill(0.0);
        return;
    }
    let tk = mk.get(w.ty);
    let a_stride = tk.act.row_bytes(w.cols);
    // Taken, not borrowed: a nested call on this thread (a matmul inside a task)
    // then finds an empty buffer and allocates its own instead of aliasing this one.
    let mut buf = ACT_BUF.with(Cell::take);
    let acts: &[u8] = match tk.act {
        ActType::F32 => bytemuck::cast_slice(x),
        ActType::Q8_1 | ActType::Q8_0 => {
            let nb = w.cols / QK8_1;
            let blocks: &mut [BlockQ8_1] = grow(&mut buf, n * nb);
            let quantize = if tk.act == ActType::Q8_0 {
                mk.quantize_q8_0
            } else {
                mk.quantize_q8_1
            };
            // SAFETY: the caller guarantees the CPU features of `mk`.
            for_each_token(x, w.cols, blocks, nb, |xr, br| unsafe { quantize(xr, br) });
            bytemuck::cast_slice(blocks)
        }
        ActType::Q8K => {
            let nb = w.cols / QK_K;
            let blocks: &mut [BlockQ8K] = grow(&mut buf, n * nb);
            // SAFETY: the caller guarantees the CPU features of `mk`.
            for_each_token(x, w.cols, blocks, nb, |xr, br| unsafe {
                (mk.quantize_q8_k)(xr, br)
            });
            bytemuck::cast_slice(blocks)
        }
    };
    run(tk, w, acts, a_stride, n, y);
    ACT_BUF.with(|b| b.set(buf));
}

/// Activation values from which their quantization is split across threads.
const PAR_MIN_QUANT_VALUES: usize = 1 << 15;

/// `f(token's activations, token's blocks)` for every token, in parallel for
/// large inputs.
fn for_each_token<B: Send>(
    x: &[f32],
    cols: usize,
    blocks: &mut [B],
    nb: usize,
    f: impl Fn(&[f32], &mut [B]) + Sync,
) {
    let n = x.len() / cols;
    // One task (run inline) for small inputs.
    let per_task = if x.len() >= PAR_MIN_QUANT_VALUES {
        n.div_ceil(pool::threads() * TASKS_PER_THREAD)
    } else {
        n
    };
    pool::for_each_chunk(blocks, per_task.max(1) * nb, |t, br| {
        let xs = &x[t * per_task * cols..][..br.len() / nb * cols];
        for (xr, br) in xs.chunks_exact(cols).zip(br.chunks_exact_mut(nb)) {
            f(xr, br);
        }
    });
}

/// `count` values of `T` at the start of `buf`, grown as needed.
fn grow<T: Pod>(buf: &mut Vec<u32>, count: usize) -> &mut [T] {
    let words = count * std::mem::size_of::<T>() / 4;
    if buf.len() < words {
        buf.resize(words, 0);
    }
    bytemuck::cast_slice_mut(&mut buf[..words])
}

/// Splits the rows into tasks and runs them.
///
/// # Safety
/// As [`matmul_tiled`].
unsafe fn run(
    tk: &TypeKernel,
    w: &WeightView<'_>,
    acts: &[u8],
    a_stride: usize,
    n: usize,
    y: &mut [f32],
) {
    let rm = if n == 1 {
        tk.decode_rows_per_tile
    } else {
        tk.rows_per_tile
    };
    let row_tiles = w.rows.div_ceil(rm);
    let threads = pool::threads();
    let work = w.data.len().saturating_mul(n);
    let tasks = if threads == 1 || work < PAR_MIN_WORK {
        1
    } else {
        (threads * TASKS_PER_THREAD).min(row_tiles)
    };
    let tiles_per_task = row_tiles.div_ceil(tasks);
    let out = Out(y.as_mut_ptr(), y.len());
    let task = |t: usize| {
        let rows =
            (t * tiles_per_task * rm).min(w.rows)..((t + 1) * tiles_per_task * rm).min(w.rows);
        // SAFETY: the caller guarantees the CPU features; tasks write disjoint rows.
        unsafe { rows_task(tk, w, acts, a_stride, n, rows, &out) }
    };
    pool::run(tasks, &task);
}

/// Computes rows `rows` of every token.
///
/// # Safety
/// As [`matmul_tiled`]; no other task writes these rows of `out`.
unsafe fn rows_task(
    tk: &TypeKernel,
    w: &WeightView<'_>,
    acts: &[u8],
    a_stride: usize,
    n: usize,
    rows: Range<usize>,
    out: &Out,
) {
    let (rm, rn_max, tile) = if n == 1 {
        (tk.decode_rows_per_tile, 1, tk.decode_tile)
    } else {
        (tk.rows_per_tile, tk.toks_per_tile, tk.tile)
    };
    let rb = w.row_bytes();
    let mut o = [[0.0f32; NR]; MR];
    if n == 1 {
        // Decode: one token, the weights streamed once; nothing to block.
        let toks = [&acts[..a_stride]; NR];
        for r0 in rows.clone().step_by(rm) {
            let valid_rows = rm.min(rows.end - r0);
            let wr: [&[u8]; MR] =
                std::array::from_fn(|i| &w.data[(r0 + i.min(valid_rows - 1)) * rb..][..rb]);
            tile(&wr, &toks, 1, &mut o);
            for (i, oi) in o.iter().enumerate().take(valid_rows) {
                out.write(r0 + i, oi[0]);
            }
        }
        return;
    }
    for t0 in (0..n).step_by(TOKEN_BLOCK) {
        let t1 = n.min(t0 + TOKEN_BLOCK);
        for r0 in rows.clone().step_by(rm) {
            let valid_rows = rm.min(rows.end - r0);
            let wr: [&[u8]; MR] =
                std::array::from_fn(|i| &w.data[(r0 + i.min(valid_rows - 1)) * rb..][..rb]);
            for tt in (t0..t1).step_by(rn_max) {
                let rn = rn_max.min(t1 - tt);
                let toks: [&[u8]; NR] =
                    std::array::from_fn(|j| &acts[(tt + j.min(rn - 1)) * a_stride..][..a_stride]);
                tile(&wr, &toks, rn, &mut o);
                for j in 0..rn {
                    let dst = out.slice((tt + j) * w.rows + r0, valid_rows);
                    for (d, oi) in dst.iter_mut().zip(&o) {
                        *d = oi[j];
                    }
                }
            }
        }
    }
}

/// The output matrix, shared by tasks that write disjoint elements.
struct Out(*mut f32, usize);

// SAFETY: tasks write disjoint elements (their own rows), and the matrix outlives
// the parallel section that uses it.
unsafe impl Sync for Out {}
unsafe impl Send for Out {}

impl Out {
    /// Elements `start .. start + len`.
    ///
    /// # Safety
    /// No other thread accesses them while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.1, "output range out of bounds");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }

    /// # Safety
    /// No other thread accesses element `i` concurrently.
    #[inline]
    unsafe fn write(&self, i: usize, v: f32) {
        assert!(i < self.1, "output index out of range");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { *self.0.add(i) = v }
    }
}
