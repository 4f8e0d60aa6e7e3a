"""The gpt-neox vocabulary of llama.cpp's `models/ggml-vocab-gpt-neox.gguf`, padded
to `n_vocab` entries with unused `[PADi]` tokens as llama.cpp's converters pad it:
what both random-weight GGUF writers (`mamba_gguf.py`, `mamba2_gguf.py`) embed.
"""
import gguf


def add_gpt_neox_vocab(w, llama_src, n_vocab):
    """Adds the tokenizer keys to GGUFWriter `w`; returns the number of tokens."""
    r = gguf.GGUFReader(llama_src + "/models/ggml-vocab-gpt-neox.gguf", "r")
    f = r.get_field(gguf.Keys.Tokenizer.MODEL); w.add_tokenizer_model(bytes(f.parts[-1]).decode())
    f = r.get_field(gguf.Keys.Tokenizer.PRE); w.add_tokenizer_pre(bytes(f.parts[-1]).decode() if f else "mpt")
    toks = [bytes(r.get_field(gguf.Keys.Tokenizer.LIST).parts[i]) for i in r.get_field(gguf.Keys.Tokenizer.LIST).data][:n_vocab]
    types = [r.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).parts[i].tolist()[0] for i in r.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).data][:n_vocab]
    for i in range(len(toks), n_vocab):
        toks.append(f"[PAD{i}]".encode()); types.append(gguf.TokenType.UNUSED)
    w.add_token_list(toks); w.add_token_types(types)
    f = r.get_field(gguf.Keys.Tokenizer.MERGES); w.add_token_merges([bytes(f.parts[i]) for i in f.data])
    for key, fn in ((gguf.Keys.Tokenizer.BOS_ID, w.add_bos_token_id), (gguf.Keys.Tokenizer.EOS_ID, w.add_eos_token_id), (gguf.Keys.Tokenizer.UNK_ID, w.add_unk_token_id)):
        f = r.get_field(key)
        if f: fn(int(f.parts[-1][0]))
    return len(toks)
