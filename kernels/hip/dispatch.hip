// The C entry points of the matrix kernels: check the arguments, then dispatch on
// the quant type id to the per-type instantiation (inst/<type>.hip).
#include "matmul.h"

KQ_FOR_EACH_TYPE(KQ_DECLARE)

extern "C" int mamba_matmul(const MambaMatmulParams* p, MambaStream stream) {
    if (!p || p->rows < 0 || p->cols < 0 || p->n < 0 || p->variant < 0 || p->variant > 3) return MAMBA_GPU_ERR_BAD_ARGS;
    if (p->rows == 0 || p->n == 0) return 0;
    if (!p->w || !p->x || !p->y) return MAMBA_GPU_ERR_BAD_ARGS;
    hipStream_t s = kq_stream(stream);
    switch (p->ty) {
#define KQ_CASE(T, ID) \
    case ID: return kq::launch_matmul<kq::T>(p, s);
        KQ_FOR_EACH_TYPE(KQ_CASE)
#undef KQ_CASE
        default: return MAMBA_GPU_ERR_BAD_TYPE;
    }
}

extern "C" int mamba_embed(const MambaEmbedParams* p, MambaStream stream) {
    if (!p || p->cols < 0 || p->n < 0) return MAMBA_GPU_ERR_BAD_ARGS;
    if (p->n == 0) return 0;
    if (!p->w || !p->tokens || !p->out) return MAMBA_GPU_ERR_BAD_ARGS;
    hipStream_t s = kq_stream(stream);
    switch (p->ty) {
#define KQ_CASE(T, ID) \
    case ID: return kq::launch_embed<kq::T>(p, s);
        KQ_FOR_EACH_TYPE(KQ_CASE)
#undef KQ_CASE
        default: return MAMBA_GPU_ERR_BAD_TYPE;
    }
}
