//! Streaming detokenization across multi-byte UTF-8 characters split over tokens.

use mamba_runtime::{StreamDecoder, Tokenizer};

fn tokenizer() -> Option<Tokenizer> {
    let path = mamba_testkit::shared_path("tokenizers/gpt-neox-20b/tokenizer.json")?;
    Some(Tokenizer::from_json(&std::fs::read(path).unwrap()).unwrap())
}

#[test]
fn pieces_concatenate_to_the_text_and_never_split_a_character() {
    let Some(tok) = tokenizer() else { return };
    let text = "Héllo wörld — 日本語のテキスト 🙂🚀 done.\nNew line";
    let ids = tok.encode(text).unwrap();
    // At least one character must span several tokens, or the test proves nothing.
    let split_chars = ids
        .iter()
        .filter(|&&id| tok.decode(&[id]).unwrap().contains('\u{FFFD}'))
        .count();
    assert!(
        split_chars > 0,
        "expected byte-level tokens that are partial characters"
    );
    let mut dec = StreamDecoder::new();
    let mut out = String::new();
    for &id in &ids {
        let piece = dec.push(&tok, id).unwrap();
        assert!(
            !piece.contains('\u{FFFD}'),
            "piece {piece:?} holds a broken character"
        );
        out.push_str(&piece);
    }
    out.push_str(&dec.flush(&tok).unwrap());
    assert_eq!(out, text);
}

#[test]
fn prompt_context_keeps_leading_spaces() {
    let Some(tok) = tokenizer() else { return };
    let prompt = tok.encode("Hello").unwrap();
    let cont = tok.encode("Hello there friend").unwrap();
    assert_eq!(&cont[..prompt.len()], &prompt[..]);
    let mut dec = StreamDecoder::with_prompt(&prompt);
    let mut out = String::new();
    for &id in &cont[prompt.len()..] {
        out.push_str(&dec.push(&tok, id).unwrap());
    }
    assert_eq!(out, " there friend");
}

#[test]
fn id_to_token_gives_special_and_vocabulary_entries() {
    let Some(tok) = tokenizer() else { return };
    assert_eq!(tok.id_to_token(0).as_deref(), Some("<|endoftext|>"));
    let hello = tok.encode(" hello").unwrap();
    assert_eq!(hello.len(), 1, "one token in this vocabulary");
    assert_eq!(tok.id_to_token(hello[0]).as_deref(), Some("Ġhello"));
    assert_eq!(tok.id_to_token(u32::MAX), None);
}
