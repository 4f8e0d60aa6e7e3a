//! One mixer per architecture, each reading top to bottom as its block does; the
//! steps around it (embedding, block norm, residual add, head) are shared, in
//! [`crate::model`].

pub(crate) mod mamba1;
pub(crate) mod mamba2;

use crate::model::TRef;
use mamba_format::ModelConfig;

/// Every layer's tensors, by architecture.
#[derive(Clone, Debug)]
pub(crate) enum Layers {
    /// Mamba-1 and Falcon-Mamba layers.
    Mamba1(Vec<mamba1::Layer>),
    /// Mamba-2 layers.
    Mamba2(Vec<mamba2::Layer>),
}

impl Layers {
    /// The layers of a model with `config`; `tref(name)` finds a tensor, which the
    /// format's validation guarantees for every required one.
    pub(crate) fn new(config: &ModelConfig, tref: impl Fn(&str) -> Option<TRef>) -> Layers {
        let req = |name: &str| tref(name).expect("ModelConfig::from_file checked every tensor");
        match config {
            ModelConfig::Mamba(c) => Layers::Mamba1(
                (0..c.n_layer)
                    .map(|i| mamba1::Layer::new(|s| format!("layers.{i}.{s}"), req, &tref))
                    .collect(),
            ),
            ModelConfig::Mamba2(c) => Layers::Mamba2(
                (0..c.n_layer)
                    .map(|i| mamba2::Layer::new(|s| format!("layers.{i}.{s}"), req, &tref))
                    .collect(),
            ),
        }
    }

    /// Layer `li`'s block norm weight `(d_model)`.
    pub(crate) fn norm(&self, li: usize) -> &TRef {
        match self {
            Layers::Mamba1(ls) => &ls[li].norm,
            Layers::Mamba2(ls) => &ls[li].norm,
        }
    }
}
