// Kernels for Q3_K (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q3_K)
