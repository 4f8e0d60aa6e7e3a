"""A random-weight mamba2-130m-shaped GGUF (f32) for llama.cpp's `mamba2`
architecture, the twin of `mamba-convert --synthetic mamba2-130m`: d_model 768,
24 layers, d_inner 1536, 24 heads of 64, 1 group, d_state 128, d_conv 4, vocab
50288 (llama.cpp's built-in gpt-neox vocab, padded to a multiple of 16 as its
converter pads it for Mamba-2), tied embeddings, rms eps 1e-5. Metadata keys,
tensor names and shapes as llama.cpp's `conversion/mamba.py` (`Mamba2Model`)
writes them and `src/models/mamba2.cpp` loads them. (llama.cpp has no chunk-size
key: its SSD runs its own way; mamba-convert's chunk is 256.)

Values: projections and embeddings N(0, 0.02); conv1d weight and bias
U(+-1/sqrt(d_conv)); A = -exp(U[log 1, log 16]) per head; dt_bias =
softplus^-1(dt), dt log-uniform in [1e-3, 1e-1]; D, norms 1.

usage: mamba2_gguf.py LLAMA_CPP_SRC OUT.gguf   (needs numpy)
"""
import sys
import numpy as np

sys.path.insert(0, sys.argv[1] + "/gguf-py")
import gguf  # noqa: E402
from gguf_vocab import add_gpt_neox_vocab  # noqa: E402

V, D, L, DI, N, K, P, G = 50288, 768, 24, 1536, 128, 4, 64, 1
H = DI // P                     # 24 heads
CONV = DI + 2 * G * N           # conv1d channels: x, B, C
IN = DI + CONV + H              # in_proj rows: z, xBC, dt
out = sys.argv[2]
w = gguf.GGUFWriter(out, "mamba2")
w.add_name("mamba2-130m-random")
w.add_context_length(2**20)
w.add_embedding_length(D)
w.add_feed_forward_length(0)
w.add_head_count(0)
w.add_block_count(L)
w.add_ssm_conv_kernel(K)
w.add_ssm_inner_size(DI)
w.add_ssm_state_size(N)
w.add_ssm_time_step_rank(H)
w.add_ssm_group_count(G)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(0)
n_tokens = add_gpt_neox_vocab(w, sys.argv[1], V)
rng = np.random.default_rng(0)
g = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
u = lambda b, *s: rng.uniform(-b, b, s).astype(np.float32)
# numpy shapes are ggml's reversed: ssm_in {n_embd, d_in_proj} is (IN, D) here.
w.add_tensor("token_embd.weight", g(V, D))
for i in range(L):
    p = f"blk.{i}."
    w.add_tensor(p + "attn_norm.weight", np.ones(D, np.float32))
    w.add_tensor(p + "ssm_in.weight", g(IN, D))
    w.add_tensor(p + "ssm_conv1d.weight", u(K ** -0.5, CONV, K))
    w.add_tensor(p + "ssm_conv1d.bias", u(K ** -0.5, CONV))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    w.add_tensor(p + "ssm_dt.bias", (dt + np.log(-np.expm1(-dt))).astype(np.float32))
    # A and D as {1, n_head} (the converter unsqueezes them), A = -exp(A_log)
    w.add_tensor(p + "ssm_a", -np.exp(rng.uniform(0.0, np.log(16.0), (H, 1))).astype(np.float32))
    w.add_tensor(p + "ssm_d", np.ones((H, 1), np.float32))
    # the gated norm, grouped: {d_inner / n_group, n_group}
    w.add_tensor(p + "ssm_norm.weight", np.ones((G, DI // G), np.float32))
    w.add_tensor(p + "ssm_out.weight", g(D, DI))
w.add_tensor("output_norm.weight", np.ones(D, np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out, "tokens", n_tokens)
