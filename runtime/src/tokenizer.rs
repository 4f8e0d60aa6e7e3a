//! The embedded Hugging Face tokenizer, and streaming detokenization that never
//! emits half a UTF-8 character.

use crate::error::{Result, RuntimeError};

/// A tokenizer loaded from the model's embedded `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Parses a `tokenizer.json`.
    pub fn from_json(json: &[u8]) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text` (no special tokens added: Mamba models use none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))
    }

    /// The largest token id the tokenizer can produce (added tokens included), or
    /// `None` for an empty vocabulary.
    pub fn max_id(&self) -> Option<u32> {
        self.inner.get_vocab(true).into_values().max()
    }

    /// The vocabulary entry of `id` as the tokenizer stores it: an added (special)
    /// token's content, else the model vocabulary's key (byte-level marks such as
    /// `Ġ` included); `None` for an unknown id. What chat templates call
    /// `bos_token` and `eos_token`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of tokens the tokenizer knows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns a stream of token ids into text pieces, holding back bytes that do not
/// yet form complete UTF-8 characters (a character can span several byte-level
/// tokens). Same scheme as text-generation-inference's `decode_token`: decode a
/// short window before and after the new token and emit the difference.
#[derive(Default, Clone, Debug)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl StreamDecoder {
    /// A decoder with no context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose context is the prompt (so the first generated piece gets
    /// the right leading space handling).
    pub fn with_prompt(prompt: &[u32]) -> Self {
        StreamDecoder {
            ids: prompt.to_vec(),
            prefix_offset: prompt.len(),
            read_offset: prompt.len(),
        }
    }

    /// Feeds one id; returns the new complete text, possibly empty.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = tok.decode(&self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && full.is_char_boundary(prefix.len())
        {
            let piece = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(piece)
        } else {
            Ok(String::new())
        }
    }

    /// Whatever is still held back (at the end of generation), replacement
    /// characters included.
    pub fn flush(&mut self, tok: &Tokenizer) -> Result<String> {
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = tok.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(
            if full.len() > prefix.len() && full.is_char_boundary(prefix.len()) {
                full[prefix.len()..].to_string()
            } else {
                String::new()
            },
        )
    }
}
