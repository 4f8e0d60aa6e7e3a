//! One sequence's recurrent state: what Mamba carries instead of a KV cache.

use crate::error::{Result, RuntimeError};
use crate::finite::first_bad;
use mamba_format::{Architecture, ModelConfig};

/// The dimensions of a [`State`]; two models' states are interchangeable only when
/// these match (and the owner id, which [`crate::Model::check_state`] checks too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateShape {
    /// The architecture the state belongs to.
    pub arch: Architecture,
    /// Layers.
    pub n_layer: usize,
    /// SSM channels per layer (`d_inner`; Mamba-2's `n_heads × head_dim`).
    pub d_inner: usize,
    /// Channels of the causal conv (`d_inner` for Mamba-1; Mamba-2 convolves x, B
    /// and C, `d_inner + 2 · n_groups · d_state`).
    pub conv_channels: usize,
    /// Conv inputs kept per channel (`d_conv - 1`).
    pub conv_width: usize,
    /// SSM state per channel (`d_state`).
    pub d_state: usize,
}

impl StateShape {
    /// The state shape of a model with `config`.
    pub fn of(config: &ModelConfig) -> StateShape {
        StateShape {
            arch: config.architecture(),
            n_layer: config.n_layer(),
            d_inner: config.d_inner(),
            conv_channels: config.conv_channels(),
            // d_conv >= 1 in every loaded model (the format checks dims > 0).
            conv_width: config.d_conv().saturating_sub(1),
            d_state: config.d_state(),
        }
    }

    /// Conv values per layer, `conv_channels × conv_width`.
    pub fn conv_per_layer(&self) -> usize {
        self.conv_channels * self.conv_width
    }

    /// SSM values per layer, `d_inner × d_state`.
    pub fn ssm_per_layer(&self) -> usize {
        self.d_inner * self.d_state
    }
}

impl std::fmt::Display for StateShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} layers × {} channels, conv {} × {}, d_state {}",
            self.arch,
            self.n_layer,
            self.d_inner,
            self.conv_channels,
            self.conv_width,
            self.d_state
        )
    }
}

/// The recurrent state of one sequence, fp32:
/// `conv: (n_layer, conv_channels, d_conv - 1)`, the last inputs of each conv
/// channel, oldest first; `ssm: (n_layer, d_inner, d_state)`, the SSM hidden state
/// `h` (for Mamba-2, `(n_layer, n_heads, head_dim, d_state)`, the same size).
///
/// Its size does not depend on the sequence length. Cloning forks a sequence.
/// States come from [`crate::Model::new_state`] or a saved [`crate::Snapshot`];
/// the forward pass refuses a state of another model, by owner id and by shape.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    conv: Vec<f32>, // (n_layer, conv_channels, d_conv - 1)
    ssm: Vec<f32>,  // (n_layer, d_inner, d_state)
    shape: StateShape,
    /// Tokens consumed so far.
    pub n_tokens: u64,
    model_id: u64,
}

impl State {
    /// A zero state for a model with `config`, owned by the model with id
    /// `model_id`. Crate-private: a public constructor could pair one model's id
    /// with another's shapes.
    pub(crate) fn new(config: &ModelConfig, model_id: u64) -> State {
        State::zeroed(StateShape::of(config), model_id)
    }

    /// A zero state of `shape` owned by `model_id`.
    pub(crate) fn zeroed(shape: StateShape, model_id: u64) -> State {
        State {
            conv: vec![0.0; shape.conv_per_layer() * shape.n_layer],
            ssm: vec![0.0; shape.ssm_per_layer() * shape.n_layer],
            shape,
            n_tokens: 0,
            model_id,
        }
    }

    /// A state from its parts (a parsed snapshot); the lengths must match `shape`.
    pub(crate) fn from_parts(
        shape: StateShape,
        model_id: u64,
        n_tokens: u64,
        conv: Vec<f32>,
        ssm: Vec<f32>,
    ) -> State {
        assert_eq!(conv.len(), shape.conv_per_layer() * shape.n_layer);
        assert_eq!(ssm.len(), shape.ssm_per_layer() * shape.n_layer);
        State {
            conv,
            ssm,
            shape,
            n_tokens,
            model_id,
        }
    }

    /// Back to the empty sequence.
    pub fn reset(&mut self) {
        self.conv.fill(0.0);
        self.ssm.fill(0.0);
        self.n_tokens = 0;
    }

    /// The dimensions.
    pub fn shape(&self) -> StateShape {
        self.shape
    }

    /// The id of the model this state belongs to ([`crate::Model::id`]).
    pub fn model_id(&self) -> u64 {
        self.model_id
    }

    /// Layer `l`'s conv state `(conv_channels, d_conv - 1)`.
    ///
    /// # Panics
    /// When `l` is not below the number of layers.
    pub fn conv_mut(&mut self, l: usize) -> &mut [f32] {
        let n = self.shape.conv_per_layer();
        &mut self.conv[l * n..(l + 1) * n]
    }

    /// Layer `l`'s SSM state `(d_inner, d_state)`.
    ///
    /// # Panics
    /// When `l` is not below the number of layers.
    pub fn ssm_mut(&mut self, l: usize) -> &mut [f32] {
        let n = self.shape.ssm_per_layer();
        &mut self.ssm[l * n..(l + 1) * n]
    }

    /// All conv states `(n_layer, conv_channels, d_conv - 1)`.
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

    /// Checks that this state can run on the model with id `model_id` and state
    /// shape `shape`.
    pub(crate) fn check_fits(&self, model_id: u64, shape: StateShape) -> Result<()> {
        // The shape first: it names the architecture, the clearer message.
        if self.shape != shape {
            return Err(RuntimeError::BadState(format!(
                "its shape ({}) is not this model's ({shape})",
                self.shape
            )));
        }
        if self.model_id != model_id {
            return Err(RuntimeError::BadState(format!(
                "it belongs to model {:#018x}, not this model ({model_id:#018x})",
                self.model_id
            )));
        }
        Ok(())
    }

    /// Checks that every value is finite, naming the first one that is not.
    pub(crate) fn check_finite(&self) -> Result<()> {
        let bad = |what: &str, per_layer: usize, (i, v): (usize, f32)| {
            RuntimeError::BadState(format!(
                "the {what} state of layer {} holds a non-finite value ({v}) at index {}",
                i / per_layer,
                i % per_layer
            ))
        };
        if let Some(b) = first_bad(&self.conv) {
            return Err(bad("conv", self.shape.conv_per_layer().max(1), b));
        }
        if let Some(b) = first_bad(&self.ssm) {
            return Err(bad("SSM", self.shape.ssm_per_layer().max(1), b));
        }
        Ok(())
    }
}
