//! The Mamba-2 scan of one sequence, split across threads: the recurrence for
//! decode and short inputs, the chunked SSD algorithm for prompts (both in
//! [`crate::ops::ssd`], run through the table of [`crate::cpu::kernels`]).
//!
//! Tasks are ranges of channels (`c = head·P + p`): whole heads when there are
//! at least as many heads as threads, else parts of heads. A task's state is a
//! contiguous part of `(H, P, N)`; its outputs are not contiguous in `y: (L,
//! d_inner)`, so each task writes a token-major buffer `(L, its channels)` of
//! the scratch and a second parallel pass copies the buffers into `y` by rows
//! (safe code; the copy is a few percent of the chunked scan). A single token
//! needs no copy: the task's outputs are a contiguous piece of the row.
//!
//! The split never changes the results: every channel's arithmetic is the same
//! in any task (see [`crate::ops::ssd`]), so they do not depend on the number of
//! threads; only the choice of kernel, by `L`, does.

use crate::cpu;
use crate::ops::ssd::{chunked_scratch_len, Mamba2Inputs, Mamba2Params, Mamba2Task};
use crate::pool;

/// Tokens per chunk of the chunked scan (the model's training chunk size does
/// not change the math). The work per token and head is about `Q·P/2`
/// (intra-chunk) + `2·N·P` (state in and out) multiply-adds, so small chunks
/// cost less until the per-chunk overhead (decays, `C·Bᵀ`, short `k` loops)
/// takes over. Measured (AVX2, H 8, P 64, N 64, L 512, one thread, ns per token
/// and head, best of 6 runs on a shared machine: `cargo bench --bench matmul --
/// mamba2`): Q 16: 338, 32: 339, 64: 366, 128: 453; two threads 185, 187, 184,
/// 238.
pub const CHUNK: usize = 32;

/// Tokens from which [`mamba2_scan`] runs the chunked algorithm; below, the
/// recurrence. The chunked scan has a fixed cost per call (the state transposed
/// to `(N, P)` and back, the per-chunk set-up: 13 µs more than the recurrence
/// for one token of that layer), so the two are even at 8 tokens. Measured as for [`CHUNK`], µs per call, one thread, recurrence against
/// chunked: L 1: 4.6 / 18.2, L 4: 16.6 / 22.3, L 8: 33.1 / 32.9, L 16:
/// 64.9 / 49.3, L 32: 131 / 91, L 64: 260 / 175, L 512: 2231 / 1387 (1.6×);
/// two threads: L 8: 23.3 / 20.9, L 16: 45.9 / 33.3, L 512: 1641 / 768 (2.1×).
pub const CHUNKED_MIN_L: usize = 16;

/// Reusable buffers of [`mamba2_scan`].
#[derive(Debug, Default)]
pub struct Mamba2Scratch {
    /// Per task: its outputs `(L, channels)`, then the chunked kernel's scratch.
    work: Vec<f32>,
}

/// Which kernel [`mamba2_scan_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mamba2Path {
    /// The recurrence, token by token.
    Recurrence,
    /// The chunked algorithm with chunks of this many tokens (at least 1).
    Chunked(usize),
}

impl Mamba2Path {
    /// The path [`mamba2_scan`] takes for `l` tokens.
    pub fn for_len(l: usize) -> Mamba2Path {
        if l >= CHUNKED_MIN_L {
            Mamba2Path::Chunked(CHUNK)
        } else {
            Mamba2Path::Recurrence
        }
    }
}

/// The Mamba-2 scan of `L` tokens of one sequence over every head: `state: (H,
/// P, N)` updated in place, `y: (L, d_inner)` written. Runs the recurrence for
/// `L <` [`CHUNKED_MIN_L`] and the chunked algorithm with chunks of [`CHUNK`]
/// tokens otherwise ([`Mamba2Path::for_len`]), on this thread's pool.
pub fn mamba2_scan(
    p: &Mamba2Params<'_>,
    inp: &Mamba2Inputs<'_>,
    state: &mut [f32],
    y: &mut [f32],
    scratch: &mut Mamba2Scratch,
) {
    let l = y.len() / p.d_inner().max(1);
    mamba2_scan_with(p, inp, state, y, scratch, Mamba2Path::for_len(l))
}

/// [`mamba2_scan`] with the kernel chosen by the caller (benchmarks, tests).
pub fn mamba2_scan_with(
    p: &Mamba2Params<'_>,
    inp: &Mamba2Inputs<'_>,
    state: &mut [f32],
    y: &mut [f32],
    scratch: &mut Mamba2Scratch,
    path: Mamba2Path,
) {
    let (di, n) = (p.d_inner(), p.d_state);
    assert!(
        di > 0 && y.len().is_multiple_of(di),
        "mamba2 scan: y is not (L, d_inner)"
    );
    assert_eq!(state.len(), di * n, "mamba2 scan: state is not (H, P, N)");
    let l = y.len() / di;
    let k = cpu::kernels();
    let threads = pool::threads();
    if l == 0 {
        return;
    }
    if l == 1 && path == Mamba2Path::Recurrence {
        let per = recurrence_channels(di, threads);
        pool::for_each_chunk_pair(state, per * n, y, per, |i, st, yc| {
            let channels = i * per..i * per + yc.len();
            let task = Mamba2Task {
                channels,
                l,
                state: st,
                y: yc,
                y_stride: di,
            };
            (k.mamba2_scan)(p, inp, task)
        });
        return;
    }
    let (per, extra) = match path {
        Mamba2Path::Chunked(q) => {
            let per = chunked_channels(p, threads);
            (per, chunked_scratch_len(p, per, q))
        }
        Mamba2Path::Recurrence => (recurrence_channels(di, threads), 0),
    };
    let slot = per * l + extra;
    let tasks = di.div_ceil(per);
    if scratch.work.len() < tasks * slot {
        scratch.work.resize(tasks * slot, 0.0);
    }
    let work = &mut scratch.work[..tasks * slot];
    pool::for_each_chunk_pair(state, per * n, work, slot, |i, st, w| {
        let channels = i * per..i * per + st.len() / n;
        let (yb, sc) = w.split_at_mut(channels.len() * l);
        let task = Mamba2Task {
            y_stride: channels.len(),
            channels,
            l,
            state: st,
            y: yb,
        };
        match path {
            Mamba2Path::Chunked(q) => (k.mamba2_chunked)(p, inp, task, q, sc),
            Mamba2Path::Recurrence => (k.mamba2_scan)(p, inp, task),
        }
    });
    let work = &*work;
    let rows = if l < 32 { l } else { l.div_ceil(2 * threads) };
    pool::for_each_chunk(y, rows * di, |i, yr| {
        for (r, row) in yr.chunks_exact_mut(di).enumerate() {
            let t = i * rows + r;
            for (j, dst) in row.chunks_mut(per).enumerate() {
                let w = dst.len();
                dst.copy_from_slice(&work[j * slot + t * w..][..w]);
            }
        }
    });
}

/// Channels per task of the recurrence: two tasks per thread (every channel
/// runs alone, so any split of heads works), in multiples of 8 channels so the
/// AVX2 kernel's pairs of channels stay whole.
fn recurrence_channels(di: usize, threads: usize) -> usize {
    di.div_ceil(2 * threads).next_multiple_of(8).min(di)
}

/// Channels per task of the chunked scan: whole heads, as many per task as
/// gives one task per thread (each task forms `C·Bᵀ` once per group and chunk,
/// so fewer, larger tasks repeat less of it); with fewer heads than threads,
/// parts of a head (multiples of 8 channels).
fn chunked_channels(p: &Mamba2Params<'_>, threads: usize) -> usize {
    let (h, pp) = (p.n_heads(), p.head_dim);
    if h >= threads {
        h.div_ceil(threads) * pp
    } else {
        let pieces = threads.div_ceil(h);
        pp.div_ceil(pieces).next_multiple_of(8).min(pp)
    }
}
