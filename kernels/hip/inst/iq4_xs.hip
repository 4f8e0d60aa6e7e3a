// Kernels for IQ4_XS (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(IQ4_XS)
