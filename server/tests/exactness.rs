//! What continuous batching and the state cache rely on: `Model::forward` gives
//! the same logits for a sequence alone or inside a multi-segment call, and for a
//! prompt fed in one call or in chunks.

mod common;

use mamba_runtime::{LogitsWanted, Model, Scratch, Segment};

/// Logits after feeding `chunks` one call each, alone, from a fresh state.
fn alone(model: &Model, chunks: &[&[u32]]) -> Vec<f32> {
    let mut state = model.new_state();
    let mut scratch = Scratch::default();
    let mut logits = Vec::new();
    for c in chunks {
        let mut seg = [Segment {
            state: &mut state,
            tokens: c,
        }];
        model
            .forward(&mut seg, LogitsWanted::Last, &mut scratch, &mut logits)
            .unwrap();
    }
    logits
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batched_and_chunked_forward_agree_with_a_lone_call() {
    let Some(model) = common::model() else {
        return;
    };
    let v = model.vocab_size();
    let p = common::val_ids(&model, 300);
    let reference = alone(&model, &[&p]);

    // Chunked prefill of the same prompt.
    let chunked = alone(&model, &[&p[..100], &p[100..299], &p[299..]]);
    let d_chunk = max_diff(&reference, &chunked);

    // The same prompt as the middle segment of a three-sequence call.
    let mut states: Vec<_> = (0..3).map(|_| model.new_state()).collect();
    let others = [&p[7..50], &p[..]];
    let mut scratch = Scratch::default();
    let mut logits = Vec::new();
    {
        let [a, b, c] = &mut states[..] else {
            unreachable!()
        };
        let mut segs = [
            Segment {
                state: a,
                tokens: others[0],
            },
            Segment {
                state: b,
                tokens: &p,
            },
            Segment {
                state: c,
                tokens: &p[200..],
            },
        ];
        model
            .forward(&mut segs, LogitsWanted::Last, &mut scratch, &mut logits)
            .unwrap();
    }
    let d_batch = max_diff(&reference, &logits[v..2 * v]);

    // Decode steps: one token per sequence, alone vs. beside a prefill chunk.
    let mut lone_state = model.new_state();
    let mut batch_state = model.new_state();
    let mut other = model.new_state();
    let mut s1 = Scratch::default();
    let mut l1 = Vec::new();
    let mut d_step = 0.0f32;
    for (i, &t) in p[..20].iter().enumerate() {
        let mut seg = [Segment {
            state: &mut lone_state,
            tokens: std::slice::from_ref(&t),
        }];
        model
            .forward(&mut seg, LogitsWanted::Last, &mut s1, &mut l1)
            .unwrap();
        let mut segs = [
            Segment {
                state: &mut other,
                tokens: &p[i * 10..i * 10 + 10],
            },
            Segment {
                state: &mut batch_state,
                tokens: std::slice::from_ref(&t),
            },
        ];
        model
            .forward(&mut segs, LogitsWanted::Last, &mut scratch, &mut logits)
            .unwrap();
        d_step = d_step.max(max_diff(&l1, &logits[v..2 * v]));
    }
    eprintln!(
        "max |Δlogit| vs a lone call: chunked prefill {d_chunk:e}, inside a batch {d_batch:e}, \
         decode step beside a prefill chunk {d_step:e}"
    );
    // Bit-identical today (each token's row is computed the same way whatever else
    // is in the call): the server's answers then do not depend on who else is being
    // served, nor on how much of a prompt came from the state cache.
    assert_eq!(d_chunk, 0.0, "chunked prefill differs");
    assert_eq!(d_batch, 0.0, "batched prefill differs");
    assert_eq!(d_step, 0.0, "batched decode differs");
}
