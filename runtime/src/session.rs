//! Sessions (one sequence) and batches (several), over a shared [`Model`].

use crate::error::{Result, RuntimeError};
use crate::generate::Sequence;
use crate::model::{LogitsWanted, Model, Scratch, Segment};
use crate::sampler::Sampler;
use crate::state::State;

/// Most tokens of one sequence processed in one forward call during prefill:
/// bounds the activation buffers (prefill of any length uses O(chunk) memory).
pub const PREFILL_CHUNK: usize = 512;

/// One sequence being run: its state, scratch buffers and last logits.
pub struct Session<'m> {
    model: &'m Model,
    /// The sequence's recurrent state.
    pub state: State,
    scratch: Scratch,
    logits: Vec<f32>,
    history: Vec<u32>,
}

/// What [`Session::generate`] produced.
#[derive(Clone, Debug, Default)]
pub struct Generation {
    /// Generated token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Seconds spent on the prompt.
    pub prompt_seconds: f64,
    /// Seconds spent generating.
    pub decode_seconds: f64,
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// True if generation stopped at EOS.
    pub hit_eos: bool,
}

/// Controls for [`Session::generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Keep going past EOS.
    pub ignore_eos: bool,
}

impl<'m> Session<'m> {
    /// A session at the start of a sequence.
    pub fn new(model: &'m Model) -> Session<'m> {
        Session {
            model,
            state: model.new_state(),
            scratch: Scratch::default(),
            logits: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Back to the empty sequence.
    pub fn reset(&mut self) {
        self.state.reset();
        self.logits.clear();
        self.history.clear();
    }

    /// A copy of this session at its current position (forks a prompt cheaply: the
    /// state is a few MB at most, whatever the sequence length).
    pub fn fork(&self) -> Session<'m> {
        Session {
            model: self.model,
            state: self.state.clone(),
            scratch: Scratch::default(),
            logits: self.logits.clone(),
            history: self.history.clone(),
        }
    }

    /// Tokens fed so far (prompt and generated).
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Logits after the last token fed (empty before any).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Feeds tokens (a prompt or a continuation) and returns the logits after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        self.model.check_tokens(tokens)?;
        let n_chunks = tokens.len().div_ceil(PREFILL_CHUNK);
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            let want = if i + 1 == n_chunks {
                LogitsWanted::Last
            } else {
                LogitsWanted::None
            };
            let mut seg = [Segment {
                state: &mut self.state,
                tokens: chunk,
            }];
            self.model
                .forward(&mut seg, want, &mut self.scratch, &mut self.logits)?;
        }
        self.history.extend_from_slice(tokens);
        Ok(&self.logits)
    }

    /// Feeds one token and returns the next logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.prefill(&[token])
    }

    /// Feeds tokens and returns the logits after every one of them, `(L, vocab)`
    /// (perplexity); memory is O(L × vocab).
    pub fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        self.model.check_tokens(tokens)?;
        let mut all = Vec::with_capacity(tokens.len() * self.model.vocab_size());
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            let mut seg = [Segment {
                state: &mut self.state,
                tokens: chunk,
            }];
            self.model.forward(
                &mut seg,
                LogitsWanted::All,
                &mut self.scratch,
                &mut self.logits,
            )?;
            all.extend_from_slice(&self.logits);
        }
        let v = self.model.vocab_size();
        self.logits = all[all.len() - v..].to_vec();
        self.history.extend_from_slice(tokens);
        Ok(all)
    }

    /// Generates after `prompt` (which may be empty if tokens were already fed),
    /// calling `on_token(id, text_piece)` for each new token; see
    /// [`crate::generate::generate`], which this runs.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        sampler: &mut Sampler,
        opts: &GenerateOptions,
        on_token: impl FnMut(u32, &str) -> bool,
    ) -> Result<Generation> {
        let model = self.model;
        crate::generate::generate(self, model, prompt, sampler, opts, on_token)
    }
}

impl Sequence for Session<'_> {
    fn feed_prompt(&mut self, tokens: &[u32]) -> Result<()> {
        self.prefill(tokens).map(|_| ())
    }

    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.step(token).map(|_| ())
    }

    fn logits(&self) -> &[f32] {
        &self.logits
    }

    fn history(&self) -> &[u32] {
        &self.history
    }

    fn record(&mut self, token: u32) {
        self.history.push(token);
    }
}

/// Several independent sequences advanced together: each weight matrix is read
/// once per step for the whole batch.
pub struct Batch<'m> {
    model: &'m Model,
    /// One state per sequence.
    pub states: Vec<State>,
    scratch: Scratch,
    logits: Vec<f32>,
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

    /// Feeds each sequence its prompt (lengths may differ); returns the logits after
    /// each sequence's last token, `(B, vocab)`.
    pub fn prefill(&mut self, prompts: &[&[u32]]) -> Result<&[f32]> {
        if prompts.len() != self.states.len() {
            return Err(RuntimeError::Batch(format!(
                "{} prompts for {} sequences",
                prompts.len(),
                self.states.len()
            )));
        }
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
        if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
            return Err(RuntimeError::Batch(format!("prompt {i} is empty")));
        }
        self.logits = out;
        Ok(&self.logits)
    }

    /// Feeds one token to every sequence; returns `(B, vocab)` logits.
    pub fn step(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.len() != self.states.len() {
            return Err(RuntimeError::Batch(format!(
                "{} tokens for {} sequences",
                tokens.len(),
                self.states.len()
            )));
        }
        let mut segs: Vec<Segment<'_>> = self
            .states
            .iter_mut()
            .zip(tokens)
            .map(|(st, t)| Segment {
                state: st,
                tokens: std::slice::from_ref(t),
            })
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
