// Kernels for BF16 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(BF16)
