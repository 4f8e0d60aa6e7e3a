//! The state cache: (state, logits) after exact token prefixes, so that a prompt
//! sharing a prefix with an earlier sequence is prefilled from there.
//!
//! Keyed by (prefix length, hash of the prefix); every hit is verified against the
//! stored tokens, so a hash collision is a miss, never a wrong state. Least
//! recently used entries go first once the byte budget is exceeded.

use mamba_runtime::State;
use std::collections::HashMap;

/// What a lookup found: the state after `len` tokens and the logits after the last.
pub struct Hit {
    /// Tokens of the prompt covered by the entry.
    pub len: usize,
    /// The state after those tokens (a copy).
    pub state: State,
    /// Logits after the last of them, `(vocab)`.
    pub logits: Vec<f32>,
}

struct Entry {
    tokens: Vec<u32>,
    state: State,
    logits: Vec<f32>,
    last_used: u64,
    bytes: usize,
}

/// Token-exact prefix cache under a byte budget.
pub struct StateCache {
    capacity: usize,
    map: HashMap<(usize, u64), Entry>,
    bytes: usize,
    clock: u64,
}

/// Hashes of every prefix: `h[i]` covers `tokens[..=i]`.
fn prefix_hashes(tokens: &[u32]) -> Vec<u64> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    tokens
        .iter()
        .map(|&t| {
            h = (h ^ t as u64).wrapping_mul(0x0000_0100_0000_01b3);
            h = h.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h
        })
        .collect()
}

impl StateCache {
    /// An empty cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> StateCache {
        StateCache {
            capacity,
            map: HashMap::new(),
            bytes: 0,
            clock: 0,
        }
    }

    /// Bytes held (states, logits and keys).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry for the longest cached prefix of `prompt` (the whole prompt
    /// included), copied out.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<Hit> {
        if self.map.is_empty() {
            return None;
        }
        let hashes = prefix_hashes(prompt);
        self.clock += 1;
        for len in (1..=prompt.len()).rev() {
            if let Some(e) = self.map.get_mut(&(len, hashes[len - 1])) {
                if e.tokens == prompt[..len] {
                    e.last_used = self.clock;
                    return Some(Hit {
                        len,
                        state: e.state.clone(),
                        logits: e.logits.clone(),
                    });
                }
            }
        }
        None
    }

    /// Keeps (a copy of) `state` and `logits` as those after `tokens`, replacing an
    /// entry for the same tokens, then evicts the least recently used entries
    /// until the budget holds.
    pub fn insert(&mut self, tokens: &[u32], state: &State, logits: &[f32]) {
        let bytes = state.size_bytes() + 4 * (logits.len() + tokens.len());
        if tokens.is_empty() || bytes > self.capacity {
            return;
        }
        self.clock += 1;
        let key = (
            tokens.len(),
            *prefix_hashes(tokens).last().expect("not empty"),
        );
        let entry = Entry {
            tokens: tokens.to_vec(),
            state: state.clone(),
            logits: logits.to_vec(),
            last_used: self.clock,
            bytes,
        };
        if let Some(old) = self.map.insert(key, entry) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.bytes > self.capacity {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
                .expect("over budget means not empty");
            let e = self.map.remove(&oldest).expect("key just found");
            self.bytes -= e.bytes;
        }
    }
}
