//! Batches: several sequences over a shared [`Model`], advanced together.

use crate::batch_plan::{check_inputs, plan_prefill};
use crate::error::{Result, RuntimeError};
use crate::model::{LogitsWanted, Model, Scratch, Segment};
use crate::session::PREFILL_CHUNK;
use crate::state::State;

/// Several independent sequences advanced together: each weight matrix is read
/// once per step for the whole batch.
///
/// Every call checks all its inputs (counts, empty prompts, token ids, and that
/// every state belongs to the model) before any sequence advances, so a refused
/// call leaves the batch as it was.
pub struct Batch<'m> {
    model: &'m Model,
    /// One state per sequence; a state put here must belong to the model
    /// ([`Model::check_state`]), or every call fails until it is replaced.
    pub states: Vec<State>,
    scratch: Scratch,
    logits: Vec<f32>, // (B, vocab)
}

impl<'m> Batch<'m> {
    /// `n` empty sequences.
    pub fn new(model: &'m Model, n: usize) -> Batch<'m> {
        Batch {
            model,
            states: (0..n).map(|_| model.new_state()).collect(),
            scratch: Scratch::default(),
            logits: Vec::new(),
        }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Checks one input per sequence (`what`: "prompts", "tokens"), none empty,
    /// every id in the vocabulary, and every state.
    fn check_inputs(&self, inputs: &[&[u32]], what: &str) -> Result<()> {
        check_inputs(inputs, self.states.len(), what, |t| {
            self.model.check_tokens(t)
        })?;
        for (i, st) in self.states.iter().enumerate() {
            self.model.check_state(st).map_err(|e| match e {
                RuntimeError::BadState(why) => {
                    RuntimeError::BadState(format!("sequence {i}: {why}"))
                }
                e => e,
            })?;
        }
        Ok(())
    }

    /// Feeds each sequence its prompt (lengths may differ, none empty); returns the
    /// logits after each sequence's last token, `(B, vocab)`.
    pub fn prefill(&mut self, prompts: &[&[u32]]) -> Result<&[f32]> {
        self.check_inputs(prompts, "prompts")?;
        let vocab = self.model.vocab_size();
        let mut out = vec![0.0f32; prompts.len() * vocab];
        let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        for call in plan_prefill(&lens, PREFILL_CHUNK) {
            let mut wanted = vec![None; prompts.len()];
            let mut segs = Vec::with_capacity(call.len());
            // Pieces come in sequence order, one per sequence at most.
            let mut states = self.states.iter_mut().enumerate();
            for piece in &call {
                let (_, state) = states
                    .find(|(i, _)| *i == piece.seq)
                    .expect("pieces are in sequence order");
                if piece.finishes {
                    wanted[piece.seq] = Some(segs.len());
                }
                segs.push(Segment {
                    state,
                    tokens: &prompts[piece.seq][piece.tokens.clone()],
                });
            }
            self.model.forward(
                &mut segs,
                LogitsWanted::Last,
                &mut self.scratch,
                &mut self.logits,
            )?;
            for (i, s) in wanted.iter().enumerate() {
                if let Some(s) = *s {
                    out[i * vocab..(i + 1) * vocab]
                        .copy_from_slice(&self.logits[s * vocab..(s + 1) * vocab]);
                }
            }
        }
        self.logits = out;
        Ok(&self.logits)
    }

    /// Feeds one token to every sequence; returns `(B, vocab)` logits.
    pub fn step(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        let inputs: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        self.check_inputs(&inputs, "tokens")?;
        let mut segs: Vec<Segment<'_>> = self
            .states
            .iter_mut()
            .zip(inputs)
            .map(|(state, tokens)| Segment { state, tokens })
            .collect();
        self.model.forward(
            &mut segs,
            LogitsWanted::Last,
            &mut self.scratch,
            &mut self.logits,
        )?;
        Ok(&self.logits)
    }
}
