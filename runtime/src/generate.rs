//! The generation loop, shared by every kind of session: prefill the prompt, then
//! sample from the logits, stream the new text, and feed the token back, until the
//! token budget, EOS, or the caller says stop.

use crate::error::{Result, RuntimeError};
use crate::model::Model;
use crate::sampler::Sampler;
use crate::session::{GenerateOptions, Generation};
use crate::tokenizer::StreamDecoder;
use std::time::Instant;

/// One sequence that [`generate`] can drive: [`crate::Session`] on the CPU,
/// [`crate::gpu::GpuSession`] on a GPU.
pub trait Sequence {
    /// Feeds a prompt (at least one token) and keeps the logits after its last.
    fn feed_prompt(&mut self, tokens: &[u32]) -> Result<()>;
    /// Feeds one sampled token and keeps the next logits.
    fn feed_token(&mut self, token: u32) -> Result<()>;
    /// Feeds the token left by [`Sequence::record`], if any, so that
    /// [`Sequence::logits`] follow the whole history.
    fn feed_pending(&mut self) -> Result<()>;
    /// Logits after the last token fed, `(vocab)`; empty before any.
    fn logits(&self) -> &[f32];
    /// Tokens of the sequence so far.
    fn history(&self) -> &[u32];
    /// Appends a sampled token to the history without running the model yet (the
    /// last token of a generation, whose logits are needed only if the sequence
    /// goes on): every later feed, and [`Sequence::feed_pending`], feeds it first.
    fn record(&mut self, token: u32);
}

/// Generates after `prompt` (which may be empty if tokens were already fed),
/// calling `on_token(Some(id), text_piece)` for each new token; `text_piece` is the
/// newly completed UTF-8 text when `model` has a tokenizer (may be empty while a
/// multi-byte character is incomplete), else empty. At the end, text the stream
/// decoder still held (an incomplete character, written lossily) comes as one last
/// call `on_token(None, rest)`: it belongs to no new token, so a caller that
/// counts or prints ids must not see one. Return `false` from the callback to
/// stop. `model` supplies the EOS id and the tokenizer.
pub fn generate(
    seq: &mut impl Sequence,
    model: &Model,
    prompt: &[u32],
    sampler: &mut Sampler,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(Option<u32>, &str) -> bool,
) -> Result<Generation> {
    let t0 = Instant::now();
    if !prompt.is_empty() {
        seq.feed_prompt(prompt)?;
    } else {
        seq.feed_pending()?;
        if seq.logits().is_empty() {
            return Err(RuntimeError::EmptyPrompt);
        }
    }
    let mut gen = Generation {
        prompt_tokens: prompt.len(),
        prompt_seconds: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let t1 = Instant::now();
    let eos = if opts.ignore_eos {
        None
    } else {
        model.eos_id()
    };
    let history = seq.history();
    let mut decoder = StreamDecoder::with_prompt(&history[history.len().saturating_sub(8)..]);
    let tok = model.tokenizer();
    for i in 0..opts.max_tokens {
        let next = sampler.sample(seq.logits(), seq.history());
        if Some(next) == eos {
            gen.hit_eos = true;
            break;
        }
        gen.tokens.push(next);
        let piece = match tok {
            Some(t) => decoder.push(t, next)?,
            None => String::new(),
        };
        if !on_token(Some(next), &piece) {
            break;
        }
        // The last token's logits are not needed unless generation continues.
        if i + 1 < opts.max_tokens {
            seq.feed_token(next)?;
        } else {
            seq.record(next);
        }
    }
    if let Some(t) = tok {
        let rest = decoder.flush(t)?;
        if !rest.is_empty() {
            on_token(None, &rest);
        }
    }
    gen.decode_seconds = t1.elapsed().as_secs_f64();
    Ok(gen)
}
