// Dequantizing matrix products and the embedding gather, as templates over a block
// trait (quant.h). Explicitly instantiated once per type by inst/<type>.hip
// (KQ_INSTANTIATE), dispatched by type id in dispatch.hip.
//
// Kernels (chosen by launch_matmul, or forced with params.variant for the tests):
//   k_matvec<B, NT>  decode: one warp per weight row, lanes stride over the row's
//                    8-weight chunks, each dequantized once in registers and applied
//                    to NT tokens (NT = 1, or 8 with a run-time count); grid.y covers
//                    further groups of 8 tokens. Warp-size agnostic: a block owns
//                    MV_ROWS rows and its warps loop over them. Each lane keeps
//                    several chunks' loads in flight, and reads activations with
//                    16-byte loads when their rows are aligned.
//   k_tile<B, BN..>  prefill / large batches: 128 rows x BN tokens per block; each
//                    32-column step dequantizes the weight tile into shared memory
//                    (f32) and stages the activations beside it; 8x8 or 4x4 outputs
//                    per thread. Weights are never expanded in device memory.
#pragma once
#include "quant.h"

namespace kq {

constexpr int MM_THREADS = 256;
constexpr int MV_ROWS = 8;  // weight rows per matvec block (any warp size)

// The 8 weights of row `row` starting at column c (a multiple of 8); zeros past
// `cols` (only float types have partial chunks).
template <class B>
KQ_DEV void load_chunk(const uint8_t* row, int c, int cols, float* v) {
    if (c + KQ_CH <= cols) {
        B::load(row + int64_t(c / B::QK) * B::BYTES, (c % B::QK) / KQ_CH, v);
    } else {
#pragma unroll
        for (int i = 0; i < KQ_CH; i++) v[i] = (c + i < cols) ? B::load1(row, c + i) : 0.0f;
    }
}

KQ_DEV void store_out(const MambaMatmulParams& p, int r, int t, float s) {
    if (p.bias) s += p.bias[r];
    float* yp = p.y + int64_t(t) * p.ldy + r;
    *yp = p.accumulate ? *yp + s : s;
}

// The 8 activations x[0..8): two 16-byte loads when `vec` (x and the row stride
// 16-byte aligned, c a multiple of 8), else eight 4-byte ones. With the vector loads
// a warp's activation reads are 2 instructions over 32 whole sectors instead of 8
// instructions each touching 32 sectors: activations, not weights, bound the
// matvec's L1 traffic once several tokens share each weight chunk.
KQ_DEV void load_x8(const float* x, bool vec, float* v) {
    if (vec) {
        const float4 a = reinterpret_cast<const float4*>(x)[0];
        const float4 b = reinterpret_cast<const float4*>(x)[1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
        v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int i = 0; i < KQ_CH; i++) v[i] = x[i];
    }
}

// acc[t] += w · x_t over one 8-weight chunk at column c, for the nt live tokens.
template <int NT>
KQ_DEV void chunk_fma(const float* w, const float* x, int64_t ldx, int c, int nt, bool vec, float* acc) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt) {
            float xv[KQ_CH];
            load_x8(x + int64_t(t) * ldx + c, vec, xv);
#pragma unroll
            for (int i = 0; i < KQ_CH; i++) acc[t] += w[i] * xv[i];
        }
    }
}

template <class B, int NT>
__global__ void __launch_bounds__(MM_THREADS) k_matvec(const MambaMatmulParams p) {
    // Chunks each lane has in flight per iteration: a warp streams one row, so its
    // memory parallelism is what hides the latency when rows are few (out_proj,
    // x_proj at batch 1); fewer for 8 tokens, whose activations already fill the loop.
    constexpr int U = NT == 1 ? 4 : 2;
    const int lane = threadIdx.x % KQ_WARP, warp = threadIdx.x / KQ_WARP;
    const int nwarps = blockDim.x / KQ_WARP;
    const int t0 = blockIdx.y * NT;
    const int nt = min(NT, p.n - t0);
    const int r_end = min(p.rows, int(blockIdx.x + 1) * MV_ROWS);
    const uint8_t* w = static_cast<const uint8_t*>(p.w);
    const float* x = p.x + int64_t(t0) * p.ldx;
    const bool vec = ((reinterpret_cast<uintptr_t>(p.x) | uintptr_t(p.ldx) * sizeof(float)) & 15) == 0;
    constexpr int STEP = KQ_WARP * KQ_CH;
    for (int r = blockIdx.x * MV_ROWS + warp; r < r_end; r += nwarps) {
        const uint8_t* row = w + int64_t(r) * p.row_bytes;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        const int full = p.cols / KQ_CH * KQ_CH;
        int c = lane * KQ_CH;
        // U chunks per lane per iteration, all weight loads issued before any use.
        for (; c + (U - 1) * STEP < full; c += U * STEP) {
            float v[U][KQ_CH];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int cu = c + u * STEP;
                B::load(row + int64_t(cu / B::QK) * B::BYTES, (cu % B::QK) / KQ_CH, v[u]);
            }
#pragma unroll
            for (int u = 0; u < U; u++) chunk_fma<NT>(v[u], x, p.ldx, c + u * STEP, nt, vec, acc);
        }
        for (; c < full; c += STEP) {
            float v[KQ_CH];
            B::load(row + int64_t(c / B::QK) * B::BYTES, (c % B::QK) / KQ_CH, v);
            chunk_fma<NT>(v, x, p.ldx, c, nt, vec, acc);
        }
        // Float types only: the last partial chunk, one weight per lane.
        for (int c = full + lane; c < p.cols; c += KQ_WARP) {
            const float wv = B::load1(row, c);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt) acc[t] += wv * x[int64_t(t) * p.ldx + c];
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float s = warp_sum(acc[t]);
            if (lane == 0 && t < nt) store_out(p, r, t0 + t, s);
        }
    }
}

template <class B, int BN, int TM, int TN>
__global__ void __launch_bounds__(MM_THREADS) k_tile(const MambaMatmulParams p) {
    constexpr int BM = 128, KT = 32;
    constexpr int NTM = BM / TM, NTN = BN / TN;  // threads along rows, tokens
    static_assert(NTM * NTN == MM_THREADS, "tile shape must use 256 threads");
    __shared__ float ws[KT][BM];
    __shared__ float xs[KT][BN + 1];
    const int tid = threadIdx.x, tm = tid % NTM, tn = tid / NTM;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const uint8_t* w = static_cast<const uint8_t*>(p.w);
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < p.cols; k0 += KT) {
        // Weight tile: BM rows x KT/8 chunks, each dequantized once.
        for (int e = tid; e < BM * (KT / KQ_CH); e += MM_THREADS) {
            const int m = e % BM, j = e / BM, r = m0 + m;
            float v[KQ_CH];
            if (r < p.rows) {
                load_chunk<B>(w + int64_t(r) * p.row_bytes, k0 + KQ_CH * j, p.cols, v);
            } else {
#pragma unroll
                for (int i = 0; i < KQ_CH; i++) v[i] = 0.0f;
            }
#pragma unroll
            for (int i = 0; i < KQ_CH; i++) ws[KQ_CH * j + i][m] = v[i];
        }
        // Activation tile: BN tokens x KT columns.
        for (int e = tid; e < BN * KT; e += MM_THREADS) {
            const int kk = e % KT, n = e / KT, t = n0 + n, c = k0 + kk;
            xs[kk][n] = (t < p.n && c < p.cols) ? p.x[int64_t(t) * p.ldx + c] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < KT; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = ws[kk][tm + i * NTM];
#pragma unroll
            for (int j = 0; j < TN; j++) b[j] = xs[kk][tn + j * NTN];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int r = m0 + tm + i * NTM;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int t = n0 + tn + j * NTN;
            if (r < p.rows && t < p.n) store_out(p, r, t, acc[i][j]);
        }
    }
}

template <class B>
__global__ void __launch_bounds__(MM_THREADS) k_embed(const MambaEmbedParams p) {
    const int t = blockIdx.x;
    const uint32_t tok = p.tokens[t];
    float* out = p.out + int64_t(t) * p.ldo;
    const uint8_t* row = static_cast<const uint8_t*>(p.w) + int64_t(tok) * p.row_bytes;
    for (int c = threadIdx.x * KQ_CH; c < p.cols; c += MM_THREADS * KQ_CH) {
        float v[KQ_CH];
        if (tok < uint32_t(p.vocab)) {
            load_chunk<B>(row, c, p.cols, v);
        } else {
#pragma unroll
            for (int i = 0; i < KQ_CH; i++) v[i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < KQ_CH; i++)
            if (c + i < p.cols) out[c + i] = v[i];
    }
}

template <class B>
int launch_matmul(const MambaMatmulParams* pp, hipStream_t s) {
    const MambaMatmulParams& p = *pp;
    int v = p.variant;
    if (v == 0) {
        // Up to 32 tokens (decode of small batches) or a narrow matrix (x_proj): the
        // weights are streamed once per 8 tokens, the extra passes mostly from L2.
        // Else tiles, the 128-token ones when they still make enough blocks.
        if (p.n <= 32 || p.rows < 512) v = 1;
        else if (long(cdiv(p.rows, 128)) * cdiv(p.n, 128) >= 256) v = 3;
        else v = 2;
    }
    const dim3 block(MM_THREADS);
    switch (v) {
        case 1:
            if (p.n == 1)
                k_matvec<B, 1><<<dim3(cdiv(p.rows, MV_ROWS), 1), block, 0, s>>>(p);
            else
                k_matvec<B, 8><<<dim3(cdiv(p.rows, MV_ROWS), cdiv(p.n, 8)), block, 0, s>>>(p);
            break;
        case 2: k_tile<B, 32, 4, 4><<<dim3(cdiv(p.rows, 128), cdiv(p.n, 32)), block, 0, s>>>(p); break;
        case 3: k_tile<B, 128, 8, 8><<<dim3(cdiv(p.rows, 128), cdiv(p.n, 128)), block, 0, s>>>(p); break;
        default: return MAMBA_GPU_ERR_BAD_ARGS;
    }
    return kq_launch_status("matmul");
}

template <class B>
int launch_embed(const MambaEmbedParams* p, hipStream_t s) {
    k_embed<B><<<dim3(p->n), dim3(MM_THREADS), 0, s>>>(*p);
    return kq_launch_status("embed");
}

}  // namespace kq

// Explicit instantiation of one type's launchers (inst/<type>.hip) and the matching
// declarations (dispatch.hip).
#define KQ_INSTANTIATE(T)                                                         \
    template int kq::launch_matmul<kq::T>(const MambaMatmulParams*, hipStream_t); \
    template int kq::launch_embed<kq::T>(const MambaEmbedParams*, hipStream_t);
#define KQ_DECLARE(T, ID)                                                                \
    extern template int kq::launch_matmul<kq::T>(const MambaMatmulParams*, hipStream_t); \
    extern template int kq::launch_embed<kq::T>(const MambaEmbedParams*, hipStream_t);
