// Kernels for Q2_K (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q2_K)
