//! Sessions: one sequence over a shared [`Model`] (several: [`crate::Batch`]).

use crate::error::{Result, RuntimeError};
use crate::generate::Sequence;
use crate::model::{LogitsWanted, Model, Scratch, Segment};
use crate::sampler::Sampler;
use crate::snapshot::Snapshot;
use crate::state::{State, StateShape};
use std::path::Path;

/// Most tokens of one sequence processed in one forward call during prefill:
/// bounds the activation buffers (prefill of any length uses O(chunk) memory).
pub const PREFILL_CHUNK: usize = 512;

/// One sequence being run: its state, scratch buffers, last logits and history.
///
/// The three always describe the same position: the state is changed only through
/// the session (feeding tokens, [`Session::reset`], [`Session::restore`]), so the
/// logits sampled next are never those of another position.
pub struct Session<'m> {
    model: &'m Model,
    state: State,
    scratch: Scratch,
    logits: Vec<f32>,  // (vocab), after the last token fed; empty before any
    history: Vec<u32>, // every token of the sequence, `pending` included
    /// The last generated token, recorded in `history` but not fed yet (its logits
    /// are needed only if the sequence goes on); fed before anything else.
    pending: Option<u32>,
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
            pending: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The sequence's recurrent state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Back to the empty sequence.
    pub fn reset(&mut self) {
        self.state.reset();
        self.logits.clear();
        self.history.clear();
        self.pending = None;
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
            pending: self.pending,
        }
    }

    /// The session's position, to save ([`Snapshot::save_file`]) and resume later
    /// with [`Session::restore`]. A token recorded by [`Session::generate`] but not
    /// yet fed is fed first, so the snapshot's logits follow its whole history.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        self.feed_pending()?;
        Ok(Snapshot {
            state: self.state.clone(),
            history: self.history.clone(),
            logits: self.logits.clone(),
        })
    }

    /// Puts the session exactly where `snap` was taken: state, history and last
    /// logits, so that generating next gives what it would have given then.
    /// Nothing changes unless `snap` belongs to this model (owner id and state
    /// shape), its logits are empty or one vocabulary long, its history holds
    /// only tokens of the vocabulary, and all its values are finite.
    ///
    /// # Errors
    /// [`RuntimeError::BadState`] saying which check failed.
    pub fn restore(&mut self, snap: Snapshot) -> Result<()> {
        let m = self.model;
        snap.check_for(m.id(), StateShape::of(m.config()), m.vocab_size())?;
        self.state = snap.state;
        self.history = snap.history;
        self.logits = snap.logits;
        self.pending = None;
        Ok(())
    }

    /// Saves the session's position to `path` ([`Session::snapshot`], then
    /// [`Snapshot::save_file`]; never over the model file, a directory or a
    /// special file).
    pub fn save_state(&mut self, path: &Path) -> Result<()> {
        let inputs: Vec<&Path> = self.model.path().into_iter().collect();
        self.snapshot()?.save_file(path, &inputs)
    }

    /// Restores a position saved by [`Session::save_state`] ([`Snapshot::load_file`],
    /// then [`Session::restore`]).
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        self.restore(Snapshot::load_file(path)?)
    }

    /// Tokens of the sequence so far (prompt and generated).
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Logits after the last token fed (empty before any). After
    /// [`Session::generate`] the last generated token is in the history but not fed
    /// until the sequence goes on; [`Session::snapshot`] feeds it.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Feeds tokens (a prompt or a continuation) and returns the logits after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
        self.model.check_tokens(tokens)?;
        self.feed_pending()?;
        self.run_chunks(tokens)?;
        self.history.extend_from_slice(tokens);
        Ok(&self.logits)
    }

    /// Feeds the token recorded but not fed by the last generation, if any.
    fn feed_pending(&mut self) -> Result<()> {
        if let Some(t) = self.pending {
            self.run_chunks(&[t])?;
            self.pending = None;
        }
        Ok(())
    }

    /// The forward pass over `tokens` (checked, not empty) in chunks, keeping the
    /// logits after the last (left empty by a failed pass, [`Model::forward`]).
    fn run_chunks(&mut self, tokens: &[u32]) -> Result<()> {
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
        Ok(())
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
        self.feed_pending()?;
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
    /// calling `on_token(Some(id), text_piece)` for each new token and
    /// `on_token(None, rest)` for held-back text at the end; see
    /// [`crate::generate::generate`], which this runs.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        sampler: &mut Sampler,
        opts: &GenerateOptions,
        on_token: impl FnMut(Option<u32>, &str) -> bool,
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

    fn feed_pending(&mut self) -> Result<()> {
        Session::feed_pending(self)
    }

    fn logits(&self) -> &[f32] {
        &self.logits
    }

    fn history(&self) -> &[u32] {
        &self.history
    }

    fn record(&mut self, token: u32) {
        self.history.push(token);
        self.pending = Some(token);
    }
}
