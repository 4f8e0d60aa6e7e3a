//! Loads a model and generates text: the smallest embedding of the runtime.
//!
//! `cargo run --release -p mamba-runtime --example generate -- model.mbin "ROMEO:"`

use mamba_runtime::{GenerateOptions, Model, Sampler, SamplerParams, Session};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: generate MODEL.mbin [PROMPT]")?;
    let prompt = args.next().unwrap_or_else(|| "ROMEO:".to_string());
    let model = Model::open(&path)?;
    let tokenizer = model.tokenizer().ok_or("this model has no tokenizer")?;
    let ids = tokenizer.encode(&prompt)?;
    let mut session = Session::new(&model);
    let mut sampler = Sampler::new(SamplerParams {
        seed: 42,
        ..SamplerParams::default()
    })?;
    let opts = GenerateOptions {
        max_tokens: 64,
        ignore_eos: false,
    };
    print!("{prompt}");
    session.generate(&ids, &mut sampler, &opts, |_, piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
        true
    })?;
    println!();
    Ok(())
}
