//! What a batch call is given and how it is cut into forward calls, shared by the
//! CPU [`crate::Batch`] and the GPU [`crate::gpu::GpuBatch`] so that both refuse
//! the same inputs and feed prompts in the same pieces.

use crate::error::{Result, RuntimeError};
use std::ops::Range;

/// Checks one input per sequence (`what`: "prompts", "tokens"): as many inputs as
/// sequences, none empty, every id accepted by `check_tokens`. Called before any
/// sequence advances, so a refused call changes nothing.
pub(crate) fn check_inputs(
    inputs: &[&[u32]],
    n_seqs: usize,
    what: &str,
    check_tokens: impl Fn(&[u32]) -> Result<()>,
) -> Result<()> {
    if inputs.len() != n_seqs {
        return Err(RuntimeError::Batch(format!(
            "{} {what} for {n_seqs} sequences",
            inputs.len()
        )));
    }
    if let Some(i) = inputs.iter().position(|p| p.is_empty()) {
        return Err(RuntimeError::Batch(format!("prompt {i} is empty")));
    }
    inputs.iter().try_for_each(|p| check_tokens(p))
}

/// One forward call's share of one prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The sequence (index into the prompts).
    pub seq: usize,
    /// The tokens of its prompt fed in this call.
    pub tokens: Range<usize>,
    /// True when this piece ends the prompt: its logits are the prefill's answer.
    pub finishes: bool,
}

/// Cuts prompts of lengths `lens` into forward calls of at most `budget` tokens
/// in all (at least one). Each call gives every unfinished prompt an equal share,
/// so the sequences advance together and the scan has a sequence dimension to run
/// in parallel over; a call holds whole prompts when they fit. Empty prompts get
/// no pieces.
pub fn plan_prefill(lens: &[usize], budget: usize) -> Vec<Vec<Piece>> {
    let budget = budget.max(1);
    let mut pos = vec![0usize; lens.len()];
    let mut calls = Vec::new();
    loop {
        let active = (0..lens.len()).filter(|&i| pos[i] < lens[i]).count();
        if active == 0 {
            return calls;
        }
        let share = (budget / active).max(1);
        let mut left = budget;
        let mut call = Vec::new();
        for (seq, &len) in lens.iter().enumerate() {
            if pos[seq] >= len || left == 0 {
                continue;
            }
            let take = (len - pos[seq]).min(share).min(left);
            left -= take;
            call.push(Piece {
                seq,
                tokens: pos[seq]..pos[seq] + take,
                finishes: pos[seq] + take == len,
            });
            pos[seq] += take;
        }
        calls.push(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of every prompt is fed exactly once, in order, each call within
    /// the budget, and exactly one piece per non-empty prompt finishes it.
    fn check_plan(lens: &[usize], budget: usize) {
        let calls = plan_prefill(lens, budget);
        let mut next = vec![0usize; lens.len()];
        let mut finished = vec![0usize; lens.len()];
        for call in &calls {
            let total: usize = call.iter().map(|p| p.tokens.len()).sum();
            assert!(
                total >= 1 && total <= budget.max(1),
                "{lens:?} {budget}: {call:?}"
            );
            for p in call {
                assert_eq!(
                    p.tokens.start, next[p.seq],
                    "{lens:?} {budget}: out of order"
                );
                assert!(!p.tokens.is_empty());
                next[p.seq] = p.tokens.end;
                assert_eq!(p.finishes, p.tokens.end == lens[p.seq]);
                finished[p.seq] += p.finishes as usize;
            }
        }
        assert_eq!(next, lens, "{lens:?} {budget}: not every token fed");
        for (i, &len) in lens.iter().enumerate() {
            assert_eq!(finished[i], (len > 0) as usize, "{lens:?} {budget}");
        }
    }

    #[test]
    fn plans_feed_every_token_once_within_the_budget() {
        for budget in [0, 1, 2, 3, 7, 512, 4096] {
            for lens in [
                vec![],
                vec![0],
                vec![1],
                vec![5, 0, 3],
                vec![1000, 1, 1, 1],
                vec![513, 512, 511],
                (0..40).map(|i| i * 37 % 101).collect::<Vec<_>>(),
            ] {
                check_plan(&lens, budget);
            }
        }
    }

    #[test]
    fn prompts_that_fit_go_in_one_call() {
        let calls = plan_prefill(&[3, 4], 512);
        assert_eq!(calls.len(), 1);
        assert!(calls[0].iter().all(|p| p.finishes));
    }

    #[test]
    fn inputs_are_checked_before_anything() {
        let ok = |_: &[u32]| Ok(());
        assert!(check_inputs(&[&[1], &[2]], 2, "tokens", ok).is_ok());
        assert!(matches!(
            check_inputs(&[&[1]], 2, "tokens", ok),
            Err(RuntimeError::Batch(_))
        ));
        assert!(matches!(
            check_inputs(&[&[1], &[]], 2, "prompts", ok),
            Err(RuntimeError::Batch(_))
        ));
        let refuse_7 = |t: &[u32]| {
            if t.contains(&7) {
                Err(RuntimeError::Batch("7".into()))
            } else {
                Ok(())
            }
        };
        assert!(check_inputs(&[&[1], &[2, 7]], 2, "prompts", refuse_7).is_err());
    }
}
