// Kernels for Q8_0 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(Q8_0)
