// Kernels for Q4_K (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q4_K)
