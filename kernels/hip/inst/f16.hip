// Kernels for F16 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(F16)
