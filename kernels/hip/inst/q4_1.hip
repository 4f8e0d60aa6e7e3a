// Kernels for Q4_1 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q4_1)
