// Kernels for IQ4_NL (see matmul.h).
#include "../matmul.h"
KQ_INSTANTIATE(IQ4_NL)
