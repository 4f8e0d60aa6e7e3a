// Kernels for Q5_0 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q5_0)
