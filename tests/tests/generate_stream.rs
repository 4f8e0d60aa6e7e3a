//! The generation loop's callback contract on a real tokenizer: every new token is
//! reported once with `Some(id)`, and text the stream decoder still holds at the end
//! comes once more, last, with `None` (no token of its own).

use mamba_runtime::{generate, GenerateOptions, Model, Result, Sampler, SamplerParams, Sequence};

/// A sequence whose logits always put all mass on one token: what the model
/// generates is chosen by the test, not by the weights.
struct Forced {
    logits: Vec<f32>,
    history: Vec<u32>,
}

impl Sequence for Forced {
    fn feed_prompt(&mut self, tokens: &[u32]) -> Result<()> {
        self.history.extend_from_slice(tokens);
        Ok(())
    }
    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.history.push(token);
        Ok(())
    }
    fn feed_pending(&mut self) -> Result<()> {
        Ok(())
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

#[test]
fn held_back_text_is_flushed_without_a_token() {
    let Some(shared) = mamba_tests::shared_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    mamba_tests::convert_dir(&shared.join("models/mamba-shakespeare"), &out, "q8_0");
    let model = Model::open(&out).unwrap();
    let tok = model.tokenizer().expect("the model embeds its tokenizer");
    // A byte-level token that is only the first byte of a two-byte character: alone
    // it never completes, so the decoder holds it until the final flush.
    let lead = (0..model.vocab_size() as u32)
        .find(|&id| {
            tok.decode(&[id]).is_ok_and(|t| t == "\u{FFFD}")
                && tok
                    .decode(&[id, id])
                    .is_ok_and(|t| t.chars().all(|c| c == '\u{FFFD}'))
                && Some(id) != model.eos_id()
        })
        .expect("a byte-level vocabulary has partial-character tokens");
    let mut logits = vec![0.0f32; model.vocab_size()];
    logits[lead as usize] = 100.0;
    let mut seq = Forced {
        logits,
        history: Vec::new(),
    };
    let mut sampler = Sampler::new(SamplerParams::greedy()).unwrap();
    let opts = GenerateOptions {
        max_tokens: 3,
        ignore_eos: false,
    };
    let mut calls: Vec<(Option<u32>, String)> = Vec::new();
    let gen = generate(
        &mut seq,
        &model,
        &[1, 2],
        &mut sampler,
        &opts,
        |id, text| {
            calls.push((id, text.to_string()));
            true
        },
    )
    .unwrap();
    assert_eq!(gen.tokens, vec![lead; 3]);
    let ids: Vec<u32> = calls.iter().filter_map(|(id, _)| *id).collect();
    assert_eq!(ids, gen.tokens, "each token reported once, in order");
    let (last_id, last_text) = calls.last().unwrap();
    assert_eq!(*last_id, None, "the flush comes last and carries no token");
    assert!(!last_text.is_empty(), "the held-back bytes are flushed");
    assert_eq!(
        calls.iter().filter(|(id, _)| id.is_none()).count(),
        1,
        "one flush"
    );
}
