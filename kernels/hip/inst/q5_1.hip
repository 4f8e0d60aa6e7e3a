// Kernels for Q5_1 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q5_1)
