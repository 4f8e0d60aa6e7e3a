// Kernels for Q6_K (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q6_K)
