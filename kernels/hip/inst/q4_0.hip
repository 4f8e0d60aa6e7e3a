// Kernels for Q4_0 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q4_0)
