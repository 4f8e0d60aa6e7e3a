//! One sequence's recurrent state: what Mamba carries instead of a KV cache.

use crate::error::{Result, RuntimeError};
use mamba_format::MambaConfig;

/// Magic of a saved state.
const STATE_MAGIC: &[u8; 8] = b"MSTATE01";

/// The recurrent state of one sequence, fp32:
/// `conv: (n_layer, d_inner, d_conv - 1)`, the last inputs of each conv channel,
/// oldest first; `ssm: (n_layer, d_inner, d_state)`, the SSM hidden state `h`.
///
/// Its size does not depend on the sequence length. Cloning forks a sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    conv: Vec<f32>,
    ssm: Vec<f32>,
    conv_per_layer: usize,
    ssm_per_layer: usize,
    /// Tokens consumed so far.
    pub n_tokens: u64,
    model_id: u64,
}

impl State {
    /// A zero state for a model with `config`, owned by the model with id `model_id`.
    pub fn new(config: &MambaConfig, model_id: u64) -> State {
        let conv_per_layer = config.d_inner * (config.d_conv - 1);
        let ssm_per_layer = config.d_inner * config.d_state;
        State {
            conv: vec![0.0; conv_per_layer * config.n_layer],
            ssm: vec![0.0; ssm_per_layer * config.n_layer],
            conv_per_layer,
            ssm_per_layer,
            n_tokens: 0,
            model_id,
        }
    }

    /// Back to the empty sequence.
    pub fn reset(&mut self) {
        self.conv.fill(0.0);
        self.ssm.fill(0.0);
        self.n_tokens = 0;
    }

    /// Layer `l`'s conv state `(d_inner, d_conv - 1)`.
    pub fn conv_mut(&mut self, l: usize) -> &mut [f32] {
        &mut self.conv[l * self.conv_per_layer..(l + 1) * self.conv_per_layer]
    }

    /// Layer `l`'s SSM state `(d_inner, d_state)`.
    pub fn ssm_mut(&mut self, l: usize) -> &mut [f32] {
        &mut self.ssm[l * self.ssm_per_layer..(l + 1) * self.ssm_per_layer]
    }

    /// All conv states `(n_layer, d_inner, d_conv - 1)`.
    pub fn conv(&self) -> &[f32] {
        &self.conv
    }

    /// All SSM states `(n_layer, d_inner, d_state)`.
    pub fn ssm(&self) -> &[f32] {
        &self.ssm
    }

    /// Bytes of state (conv + SSM), independent of sequence length.
    pub fn size_bytes(&self) -> usize {
        (self.conv.len() + self.ssm.len()) * 4
    }

    pub(crate) fn check_owner(&self, model_id: u64) -> Result<()> {
        if self.model_id == model_id {
            Ok(())
        } else {
            Err(RuntimeError::BadState(format!(
                "it belongs to model {:#018x}, not this model ({model_id:#018x})",
                self.model_id
            )))
        }
    }

    /// Serialises the state: magic, model id, token count, lengths, values, checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.size_bytes());
        out.extend_from_slice(STATE_MAGIC);
        for v in [
            self.model_id,
            self.n_tokens,
            self.conv.len() as u64,
            self.ssm.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in self.conv.iter().chain(&self.ssm) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let sum = mamba_format::checksum::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Restores a state saved by [`State::to_bytes`] into `self`, which must belong to
    /// the same model (its shape and owner are checked, and the checksum).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = |why: String| RuntimeError::BadState(why);
        if bytes.len() < 48 || &bytes[..8] != STATE_MAGIC {
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
        let (model_id, n_tokens, n_conv, n_ssm) = (u(0), u(1), u(2), u(3));
        self.check_owner(model_id)?;
        if n_conv != self.conv.len() as u64
            || n_ssm != self.ssm.len() as u64
            || body.len() as u64 != 40 + 4 * (n_conv + n_ssm)
        {
            return Err(bad("state sizes do not match this model".into()));
        }
        let vals = body[40..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        for (dst, v) in self.conv.iter_mut().chain(self.ssm.iter_mut()).zip(vals) {
            *dst = v;
        }
        self.n_tokens = n_tokens;
        Ok(())
    }

    /// Writes the state to a file (atomically: temp file + rename).
    pub fn save_file(&self, path: &std::path::Path) -> Result<()> {
        let io = |source| RuntimeError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp-state");
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }

    /// Restores from a file written by [`State::save_file`].
    pub fn load_file(&mut self, path: &std::path::Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.restore(&bytes)
    }
}
