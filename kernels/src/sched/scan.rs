//! The Mamba-1 selective scan of one sequence, split across threads: the fused
//! single-token step of decode and the blocked scan of a prompt.

use crate::matmul;
use crate::ops::scan::{selective_scan, ScanInputs, ScanParams};
use crate::pool;
use crate::weights::WeightView;

/// Most channels one task of [`scan_step`] takes (its dt lives on the stack).
const STEP_CHANNELS_MAX: usize = 512;

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

/// The scan of a single token of a single sequence (decode), with the dt
/// projection fused in: each task computes dt for its own channels (its rows of
/// `dt_proj`, from the first `dt_proj.cols` values of `xdbl`) and scans them at
/// once, so the small matmul needs no parallel region (nor a pass over dt) of its
/// own. `inp` gives x, z and where B and C sit in `xdbl` (its `dt` is ignored);
/// with one token, the channel-major scan output is the output row `y`, written in
/// place.
pub fn scan_step(
    dt_proj: &WeightView<'_>,
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    h: &mut [f32],
    y: &mut [f32],
) {
    let (n, r, di) = (p.d_state, dt_proj.cols, p.d.len());
    let per_task = di
        .div_ceil(2 * pool::threads())
        .next_multiple_of(8)
        .min(STEP_CHANNELS_MAX);
    pool::for_each_chunk_pair(h, per_task * n, y, per_task, |i, hc, yc| {
        let cs = i * per_task..i * per_task + yc.len();
        let mut dt = [0.0f32; STEP_CHANNELS_MAX];
        let dt = &mut dt[..cs.len()];
        matmul(&dt_proj.rows(cs.clone()), &inp.bc[..r], 1, dt);
        let sub = ScanParams {
            a: &p.a[cs.start * n..cs.end * n],
            d: &p.d[cs.clone()],
            dt_bias: &p.dt_bias[cs.clone()],
            d_state: n,
        };
        let inp = ScanInputs {
            x: &inp.x[cs.clone()],
            dt,
            z: &inp.z[cs.clone()],
            ..*inp
        };
        selective_scan(&sub, &inp, 0, cs.len(), hc, yc);
    });
}

/// The scan of one segment's `L` tokens with the output `y: (L, d_inner)`
/// token-major: channels split across threads, long segments in blocks of
/// [`SCAN_BLOCK_L`] tokens (the state carries over from block to block), each
/// block's channel-major output transposed into `y` while it is hot. `y_t` is
/// scratch, grown as needed.
pub fn scan_segment(
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
        if y_t.len() < di * lb {
            y_t.resize(di * lb, 0.0);
        }
        let y_t = &mut y_t[..di * lb];
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

/// Rows (tokens) per task of row-wise element work (norms, residual adds, a scan
/// output's transposition): one task below 32 rows (decode), else about two tasks
/// per thread.
pub fn rows_per_task(rows: usize) -> usize {
    if rows < 32 {
        rows.max(1)
    } else {
        rows.div_ceil(2 * pool::threads())
    }
}

/// Rows `j0 ..` of the transpose `(rows, cols)` → `(cols, rows)` of `src`, as many
/// as `dst` holds (whole rows of `rows` values).
pub fn transpose(src: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [f32]) {
    for (j, dr) in dst.chunks_exact_mut(rows).enumerate() {
        for (i, v) in dr.iter_mut().enumerate() {
            *v = src[i * cols + j0 + j];
        }
    }
}
