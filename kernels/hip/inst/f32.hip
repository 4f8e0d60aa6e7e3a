// Kernels for F32 (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(F32)
