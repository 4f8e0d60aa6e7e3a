"""A random-weight mamba-130m-shaped GGUF (f32) for llama.cpp, the twin of
`mamba-convert --synthetic 130m`: d_model 768, 24 layers, d_inner 1536, N 16,
K 4, dt_rank 48, vocab 50280 (llama.cpp's built-in gpt-neox vocab, padded as its
converter pads it), tied embeddings. Metadata and tensor names as llama.cpp's
`conversion/mamba.py` writes them.

usage: mamba_gguf.py LLAMA_CPP_SRC OUT.gguf   (needs numpy)
"""
import sys
import numpy as np

sys.path.insert(0, sys.argv[1] + "/gguf-py")
import gguf  # noqa: E402
from gguf_vocab import add_gpt_neox_vocab  # noqa: E402
V, D, L, DI, N, K, R = 50280, 768, 24, 1536, 16, 4, 48
out = sys.argv[2]
w = gguf.GGUFWriter(out, "mamba")
w.add_name("mamba-130m-random")
w.add_context_length(2**20)
w.add_embedding_length(D)
w.add_feed_forward_length(0)
w.add_head_count(0)
w.add_block_count(L)
w.add_ssm_conv_kernel(K)
w.add_ssm_inner_size(DI)
w.add_ssm_state_size(N)
w.add_ssm_time_step_rank(R)
w.add_layer_norm_rms_eps(1e-5)
w.add_ssm_dt_b_c_rms(False)
w.add_file_type(0)
n_tokens = add_gpt_neox_vocab(w, sys.argv[1], V)
rng = np.random.default_rng(0)
g = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
w.add_tensor("token_embd.weight", g(V, D))
for i in range(L):
    p = f"blk.{i}."
    w.add_tensor(p + "attn_norm.weight", np.ones(D, np.float32))
    w.add_tensor(p + "ssm_in.weight", g(2 * DI, D))
    w.add_tensor(p + "ssm_conv1d.weight", g(DI, K) * 10)
    w.add_tensor(p + "ssm_conv1d.bias", np.zeros(DI, np.float32))
    w.add_tensor(p + "ssm_x.weight", g(R + 2 * N, DI))
    w.add_tensor(p + "ssm_dt.weight", g(DI, R))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), DI)).astype(np.float32)
    w.add_tensor(p + "ssm_dt.bias", (dt + np.log(-np.expm1(-dt))).astype(np.float32))
    w.add_tensor(p + "ssm_a", -np.tile(np.arange(1, N + 1, dtype=np.float32), (DI, 1)))
    w.add_tensor(p + "ssm_d", np.ones(DI, np.float32))
    w.add_tensor(p + "ssm_out.weight", g(D, DI))
w.add_tensor("output_norm.weight", np.ones(D, np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out, "tokens", n_tokens)
