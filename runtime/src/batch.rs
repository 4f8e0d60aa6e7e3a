//! Batches: several sequences over a shared [`Model`], advanced together.

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
        if inputs.len() != self.states.len() {
            return Err(RuntimeError::Batch(format!(
                "{} {what} for {} sequences",
                inputs.len(),
                self.states.len()
            )));
        }
        if let Some(i) = inputs.iter().position(|p| p.is_empty()) {
            return Err(RuntimeError::Batch(format!("prompt {i} is empty")));
        }
        for p in inputs {
            self.model.check_tokens(p)?;
        }
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
        // Chunk so that each call holds at most PREFILL_CHUNK tokens in all (bounded
        // activation memory), with whole sequences or pieces of one.
        let mut pos = vec![0usize; prompts.len()];
        loop {
            let mut budget = PREFILL_CHUNK;
            let mut segs = Vec::new();
            let mut finishing = Vec::new();
            for (i, (st, p)) in self.states.iter_mut().zip(prompts).enumerate() {
                if pos[i] >= p.len() || budget == 0 {
                    continue;
                }
                let take = (p.len() - pos[i]).min(budget);
                budget -= take;
                if pos[i] + take == p.len() {
                    finishing.push((i, segs.len()));
                }
                segs.push(Segment {
                    state: st,
                    tokens: &p[pos[i]..pos[i] + take],
                });
                pos[i] += take;
            }
            if segs.is_empty() {
                break;
            }
            self.model.forward(
                &mut segs,
                LogitsWanted::Last,
                &mut self.scratch,
                &mut self.logits,
            )?;
            for (i, s) in finishing {
                out[i * vocab..(i + 1) * vocab]
                    .copy_from_slice(&self.logits[s * vocab..(s + 1) * vocab]);
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
