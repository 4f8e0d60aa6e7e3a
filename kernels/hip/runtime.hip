// The runtime calls the Rust host needs, as a small C ABI (no hip-sys: see
// kernels/GPU.md). Each is a thin wrapper over hip* (cuda* through the NVIDIA shim)
// returning the platform's error code as an int.
#include <string.h>

#include "common.h"

// A failed runtime call also sets the "last error" that the next launch's
// hipGetLastError() would report: clear it here, and return the code.
static int status(hipError_t e) {
    if (e != hipSuccess) (void)hipGetLastError();
    return int(e);
}

extern "C" const char* mamba_gpu_platform(void) {
#if defined(__HIP_PLATFORM_NVIDIA__)
    return "nvidia";
#else
    return "amd";
#endif
}

extern "C" const char* mamba_gpu_error_string(int code) {
    switch (code) {
        case MAMBA_GPU_ERR_BAD_TYPE: return "quant type not supported by the GPU kernels";
        case MAMBA_GPU_ERR_BAD_ARGS: return "invalid kernel arguments";
        default: break;
    }
    if (code < 0) return "unknown error";
    const char* s = hipGetErrorString(hipError_t(code));
    return s ? s : "unknown error";
}

extern "C" int mamba_gpu_is_no_device(int code) {
#if defined(__HIP_PLATFORM_NVIDIA__)
    // No GPU, or no driver at all (cudart then reports an insufficient driver).
    return code == int(cudaErrorNoDevice) || code == int(cudaErrorInsufficientDriver);
#else
    return code == int(hipErrorNoDevice);
#endif
}

extern "C" int mamba_gpu_device_count(int* n) {
    *n = 0;
    const hipError_t e = hipGetDeviceCount(n);
    if (e != hipSuccess) *n = 0;
    return status(e);
}

extern "C" int mamba_gpu_set_device(int dev) { return status(hipSetDevice(dev)); }

extern "C" int mamba_gpu_device_info(int dev, char* name, size_t name_len, int* warp_size, int* sm_count,
                                     size_t* total_mem) {
    hipDeviceProp_t prop;
    const hipError_t e = hipGetDeviceProperties(&prop, dev);
    if (e != hipSuccess) return status(e);
    if (name && name_len > 0) {
        strncpy(name, prop.name, name_len - 1);
        name[name_len - 1] = 0;
    }
    *warp_size = prop.warpSize;
    *sm_count = prop.multiProcessorCount;
    *total_mem = prop.totalGlobalMem;
    return 0;
}

extern "C" int mamba_gpu_malloc(void** ptr, size_t bytes) {
    *ptr = nullptr;
    return status(hipMalloc(ptr, bytes));
}

extern "C" int mamba_gpu_free(void* ptr) { return status(hipFree(ptr)); }

extern "C" int mamba_gpu_memcpy_htod(void* dst, const void* src, size_t bytes) {
    return status(hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice));
}

extern "C" int mamba_gpu_memcpy_dtoh(void* dst, const void* src, size_t bytes) {
    return status(hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost));
}

extern "C" int mamba_gpu_memcpy_dtod(void* dst, const void* src, size_t bytes) {
    return status(hipMemcpy(dst, src, bytes, hipMemcpyDeviceToDevice));
}

extern "C" int mamba_gpu_memset(void* ptr, int value, size_t bytes) { return status(hipMemset(ptr, value, bytes)); }

extern "C" int mamba_gpu_synchronize(void) { return status(hipDeviceSynchronize()); }

extern "C" int mamba_gpu_mem_info(size_t* free_bytes, size_t* total_bytes) {
    return status(hipMemGetInfo(free_bytes, total_bytes));
}

extern "C" int mamba_gpu_host_alloc(void** ptr, size_t bytes) {
    *ptr = nullptr;
    return status(hipHostMalloc(ptr, bytes, 0));
}

extern "C" int mamba_gpu_host_free(void* ptr) { return status(hipHostFree(ptr)); }

// ---- graphs: a forward pass recorded once and replayed -----------------------------
// Decoding launches the same ~7 kernels per layer every step with the same
// arguments (only the token ids and the states, in device memory, change): replaying
// a recorded graph costs one launch instead of hundreds. The capturing stream is
// created with default flags (a blocking stream), so the default-stream copies
// before and after a replay stay ordered with it, as they are with direct launches.

thread_local hipStream_t kq_capture_stream = nullptr;
static thread_local hipStream_t t_graph_stream = nullptr;

static hipError_t graph_stream(hipStream_t* s) {
    if (!t_graph_stream) {
        const hipError_t e = hipStreamCreate(&t_graph_stream);
        if (e != hipSuccess) {
            t_graph_stream = nullptr;
            return e;
        }
    }
    *s = t_graph_stream;
    return hipSuccess;
}

extern "C" int mamba_gpu_capture_begin(void) {
    if (kq_capture_stream) return MAMBA_GPU_ERR_BAD_ARGS;  // already capturing
    hipStream_t s;
    hipError_t e = graph_stream(&s);
    if (e == hipSuccess) e = hipStreamBeginCapture(s, hipStreamCaptureModeThreadLocal);
    if (e == hipSuccess) kq_capture_stream = s;
    return status(e);
}

extern "C" int mamba_gpu_capture_end(void** exec) {
    *exec = nullptr;
    if (!kq_capture_stream) return MAMBA_GPU_ERR_BAD_ARGS;
    hipGraph_t g = nullptr;
    hipError_t e = hipStreamEndCapture(kq_capture_stream, &g);
    kq_capture_stream = nullptr;
    if (e == hipSuccess) {
        hipGraphExec_t x = nullptr;
        e = hipGraphInstantiate(&x, g, nullptr, nullptr, 0);
        if (e == hipSuccess) *exec = x;
    }
    if (g) (void)hipGraphDestroy(g);
    return status(e);
}

extern "C" int mamba_gpu_graph_launch(void* exec) {
    hipStream_t s;
    hipError_t e = graph_stream(&s);
    if (e == hipSuccess) e = hipGraphLaunch(static_cast<hipGraphExec_t>(exec), s);
    return status(e);
}

extern "C" int mamba_gpu_graph_destroy(void* exec) {
    return status(hipGraphExecDestroy(static_cast<hipGraphExec_t>(exec)));
}
