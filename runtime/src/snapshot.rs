//! A sequence's saved position ([`Snapshot`]) and its file format.
//!
//! A session continues from its state *and* its last logits (the next token is
//! sampled from them) *and* its history (the repetition penalty reads it), so a
//! snapshot holds all three; restoring one leaves a session exactly where it was.
//!
//! # Format, version 3 (all integers and floats little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MSTATE03` |
//! | 8 | 8 | owner model id ([`crate::Model::id`]) |
//! | 16 | 8 | tokens consumed (`n_tokens`) |
//! | 24 | 8 | architecture: 1 `mamba`, 2 `falcon-mamba`, 3 `mamba2` |
//! | 32 | 40 | shape: `n_layer`, `d_inner`, `conv_channels`, `d_conv - 1`, `d_state` (u64 each) |
//! | 72 | 8 | `n_history`: tokens of history |
//! | 80 | 8 | `n_logits`: 0, or the vocabulary size |
//! | 88 | | conv state, f32 `(n_layer, conv_channels, d_conv - 1)` |
//! | | | SSM state, f32 `(n_layer, d_inner, d_state)` |
//! | | | history, u32 × `n_history` |
//! | | | last logits, f32 × `n_logits` |
//! | end − 8 | 8 | XXH3-64 of everything before it |
//!
//! Version 2 (`MSTATE02`, Mamba-1 only: no architecture, and conv channels equal
//! to `d_inner`) is still read. Version 1 (`MSTATE01`: no shape, history or logits)
//! is refused with a message saying so: it cannot be restored exactly.

use crate::error::{Result, RuntimeError};
use crate::finite::first_bad;
use crate::state::{State, StateShape};
use mamba_files::limits::MAX_STATE_BYTES;
use mamba_files::AtomicFile;
use mamba_format::Architecture;
use std::io::Write;
use std::path::Path;

/// Magic of the current version.
const MAGIC_V3: &[u8; 8] = b"MSTATE03";
/// Magic of version 2, still read (Mamba-1 states).
const MAGIC_V2: &[u8; 8] = b"MSTATE02";
/// Magic of version 1, recognised only to refuse it clearly.
const MAGIC_V1: &[u8; 8] = b"MSTATE01";

/// The architecture codes of the header, in the order of [`Architecture::ALL`]
/// starting at 1 (0 is never written, so a zeroed header is refused).
fn arch_code(a: Architecture) -> u64 {
    match a {
        Architecture::Mamba => 1,
        Architecture::FalconMamba => 2,
        Architecture::Mamba2 => 3,
    }
}

fn arch_of_code(code: u64) -> Option<Architecture> {
    Architecture::ALL
        .into_iter()
        .find(|&a| arch_code(a) == code)
}

/// A sequence's position: its recurrent state, the tokens fed so far, and the
/// logits after the last of them (empty when none were computed, e.g. a batch
/// sequence's state saved alone). See [`crate::Session::snapshot`] and
/// [`crate::Session::restore`].
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The recurrent state.
    pub state: State,
    /// Tokens of the sequence so far.
    pub history: Vec<u32>,
    /// Logits after the last token, `(vocab)`, or empty.
    pub logits: Vec<f32>,
}

impl Snapshot {
    /// A snapshot of a bare state: no history, no logits (continuing from it needs
    /// at least one new token before sampling).
    pub fn of_state(state: State) -> Snapshot {
        Snapshot {
            state,
            history: Vec::new(),
            logits: Vec::new(),
        }
    }

    /// Encodes the snapshot (version 3 of the format above).
    pub fn to_bytes(&self) -> Vec<u8> {
        let s = &self.state;
        let shape = s.shape();
        let n_values = s.conv().len() + s.ssm().len() + self.logits.len();
        let mut out = Vec::with_capacity(88 + 4 * (n_values + self.history.len()) + 8);
        out.extend_from_slice(MAGIC_V3);
        for v in [
            s.model_id(),
            s.n_tokens,
            arch_code(shape.arch),
            shape.n_layer as u64,
            shape.d_inner as u64,
            shape.conv_channels as u64,
            shape.conv_width as u64,
            shape.d_state as u64,
            self.history.len() as u64,
            self.logits.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in s.conv().iter().chain(s.ssm()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in &self.history {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in &self.logits {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let sum = mamba_format::checksum::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes a snapshot written by [`Snapshot::to_bytes`]: checks the magic, the
    /// checksum, that the sizes add up to the length, and that every state value
    /// and logit is finite. Whether it fits a model is checked when it is restored.
    ///
    /// # Errors
    /// [`RuntimeError::BadState`] saying what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot> {
        let bad = |why: String| RuntimeError::BadState(why);
        if bytes.starts_with(MAGIC_V1) {
            return Err(bad(
                "it is a version-1 state file (MSTATE01), which lacks the \
                 shapes, history and last logits needed to resume exactly; save it again"
                    .into(),
            ));
        }
        let v3 = bytes.starts_with(MAGIC_V3);
        // Version 2 is version 3 without the architecture and conv channel fields.
        let header_bytes = if v3 { 88 } else { 72 };
        if bytes.len() < header_bytes + 8 || !(v3 || bytes.starts_with(MAGIC_V2)) {
            return Err(bad(
                "not a saved Mamba state (bad magic or too short)".into()
            ));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if mamba_format::checksum::checksum(body)
            != u64::from_le_bytes(sum.try_into().expect("8 bytes"))
        {
            return Err(bad("checksum mismatch (damaged or truncated)".into()));
        }
        let u =
            |i: usize| u64::from_le_bytes(body[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
        let (model_id, n_tokens) = (u(0), u(1));
        let (arch, dims, n_history, n_logits) = if v3 {
            let arch = arch_of_code(u(2))
                .ok_or_else(|| bad(format!("it names an unknown architecture (code {})", u(2))))?;
            (arch, [u(3), u(4), u(5), u(6), u(7)], u(8), u(9))
        } else {
            (
                Architecture::Mamba,
                [u(2), u(3), u(3), u(4), u(5)],
                u(6),
                u(7),
            )
        };
        // Checked arithmetic: the header is checksummed, not trusted.
        let sizes = (|| {
            // In the order State computes them (per layer, then layers).
            let [l, di, cc, w, n] = dims;
            let conv = cc.checked_mul(w)?.checked_mul(l)?;
            let ssm = di.checked_mul(n)?.checked_mul(l)?;
            let values = conv
                .checked_add(ssm)?
                .checked_add(n_history)?
                .checked_add(n_logits)?;
            Some((conv, ssm, values.checked_mul(4)?))
        })();
        let (n_conv, n_ssm) = match sizes {
            Some((c, s, b)) if b == (body.len() - header_bytes) as u64 => (c as usize, s as usize),
            _ => return Err(bad("its sizes do not add up to its length (damaged)".into())),
        };
        let mut words = body[header_bytes..].chunks_exact(4).map(|c| {
            let w: [u8; 4] = c.try_into().expect("4 bytes");
            w
        });
        let mut f32s =
            |n: usize| -> Vec<f32> { words.by_ref().take(n).map(f32::from_le_bytes).collect() };
        let conv = f32s(n_conv);
        let ssm = f32s(n_ssm);
        let history = words
            .by_ref()
            .take(n_history as usize)
            .map(u32::from_le_bytes)
            .collect();
        let logits: Vec<f32> = words.map(f32::from_le_bytes).collect();
        let shape = StateShape {
            arch,
            n_layer: dims[0] as usize,
            d_inner: dims[1] as usize,
            conv_channels: dims[2] as usize,
            conv_width: dims[3] as usize,
            d_state: dims[4] as usize,
        };
        let snap = Snapshot {
            state: State::from_parts(shape, model_id, n_tokens, conv, ssm),
            history,
            logits,
        };
        snap.check_finite()?;
        Ok(snap)
    }

    /// Checks that every state value and logit is finite, naming the first that is
    /// not: restoring a NaN would make every later token garbage.
    pub(crate) fn check_finite(&self) -> Result<()> {
        self.state.check_finite()?;
        match first_bad(&self.logits) {
            Some((i, v)) => Err(RuntimeError::BadState(format!(
                "its last logits hold a non-finite value ({v}) at index {i}"
            ))),
            None => Ok(()),
        }
    }

    /// Checks that the snapshot can be restored on the model with id `model_id`,
    /// state shape `shape` and vocabulary size `vocab`: the state fits, the logits
    /// are empty or one vocabulary long, the history holds ids of the vocabulary,
    /// and every value is finite.
    pub(crate) fn check_for(&self, model_id: u64, shape: StateShape, vocab: usize) -> Result<()> {
        self.state.check_fits(model_id, shape)?;
        if !self.logits.is_empty() && self.logits.len() != vocab {
            return Err(RuntimeError::BadState(format!(
                "it holds {} logits, not this model's vocabulary size {vocab}",
                self.logits.len()
            )));
        }
        if let Some(&id) = self.history.iter().find(|&&t| t as usize >= vocab) {
            return Err(RuntimeError::BadState(format!(
                "its history holds token id {id}, out of this model's vocabulary ({vocab})"
            )));
        }
        self.check_finite()
    }

    /// Writes the snapshot to `path` atomically (temporary file + rename). `path`
    /// may name a new file or an existing regular file, never a directory or a
    /// special file, nor one of `inputs` (pass the model's path, so that a state
    /// cannot be saved over the model).
    ///
    /// # Errors
    /// [`RuntimeError::File`].
    pub fn save_file(&self, path: &Path, inputs: &[&Path]) -> Result<()> {
        let mut out = AtomicFile::create(path, inputs, true)?;
        out.write_all(&self.to_bytes())
            .map_err(|source| mamba_files::FileError::Io {
                context: format!("cannot write {}", out.tmp_path().display()),
                source,
            })?;
        out.commit()?;
        Ok(())
    }

    /// Reads a snapshot written by [`Snapshot::save_file`]. Only a regular file is
    /// read (a FIFO or device is refused without blocking), and only up to
    /// [`MAX_STATE_BYTES`].
    ///
    /// # Errors
    /// [`RuntimeError::File`], or [`RuntimeError::BadState`] as
    /// [`Snapshot::from_bytes`].
    pub fn load_file(path: &Path) -> Result<Snapshot> {
        let bytes = mamba_files::read_capped(path, MAX_STATE_BYTES, "a saved state")?;
        Snapshot::from_bytes(&bytes)
    }
}
