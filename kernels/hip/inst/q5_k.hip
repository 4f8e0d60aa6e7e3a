// Kernels for Q5_K (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q5_K)
