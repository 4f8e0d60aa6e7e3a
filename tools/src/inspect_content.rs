//! What `mamba-inspect --verify` checks beyond the format rules: everything the
//! runtime will load, loaded the way the runtime loads it, and the values the
//! checksums cannot vouch for (a file can be intact and still poisoned: NaN weights
//! written on purpose, a tokenizer that is not JSON or that emits ids the embedding
//! does not have).

use mamba_format::{MbinFile, TensorInfo};
use mamba_runtime::Model;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The problems the runtime would meet: the model as [`Model::open`] loads it
/// (configuration, alignment, embedded tokenizer), the tokenizer's ids against the
/// vocabulary, and every tensor value finite. Call only on a file whose architecture
/// rules already pass (otherwise the loader repeats that error).
pub fn content_problems(path: &Path, file: &MbinFile<'_>) -> Vec<String> {
    let mut problems = non_finite_tensors(file);
    match Model::open(path) {
        Ok(model) => problems.extend(tokenizer_problem(&model)),
        Err(e) => problems.push(format!("runtime load: {e}")),
    }
    problems
}

/// The embedded tokenizer may only produce ids the embedding has rows for.
fn tokenizer_problem(model: &Model) -> Option<String> {
    let tok = model.tokenizer()?;
    let max = tok.max_id()?;
    (max as usize >= model.vocab_size()).then(|| {
        format!(
            "tokenizer: token id {max} is not below the model's vocab_size {}",
            model.vocab_size()
        )
    })
}

/// One problem per tensor holding a NaN or an infinity (after dequantization, so a
/// NaN block scale counts), in file order. Tensors are shared among threads: this
/// reads every byte of the file.
fn non_finite_tensors(file: &MbinFile<'_>) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads.min(file.tensors.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = file.tensors.get(i) else { break };
                if let Some(p) = first_non_finite(t, file.tensor_data(t)) {
                    found.lock().unwrap_or_else(|e| e.into_inner()).push((i, p));
                }
            });
        }
    });
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Where tensor `t` first holds a non-finite value, as a problem line.
fn first_non_finite(t: &TensorInfo, data: &[u8]) -> Option<String> {
    let cols = t.row_len() as usize;
    let rows = t.n_rows() as usize;
    if cols == 0 || rows == 0 {
        return None;
    }
    let row_bytes = data.len() / rows;
    let mut values = vec![0f32; cols];
    for (r, bytes) in data.chunks_exact(row_bytes).enumerate() {
        t.ty.dequantize_row(bytes, &mut values);
        if let Some((c, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Some(format!(
                "tensor `{}`: non-finite value {v} at row {r}, column {c}",
                t.name
            ));
        }
    }
    None
}
