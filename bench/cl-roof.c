/*
 * cl-roof: what one OpenCL call costs on a device before any attention math,
 * measured with kernels of its own, for the floors of the GPU decode figures:
 *   - an empty kernel: the time of a call (enqueue to clFinish returning),
 *     the device's queued-to-start latency and its start-to-end time;
 *   - a streaming read of N MiB (uint4 loads, four independent per loop, a
 *     sum kept so that the loads stay), for several work-groups per compute
 *     unit: what the cache of a decode call could be read at, per call.
 * Each figure is the median of 40 calls after 3 untimed ones, with caches
 * cold (an untimed 512 MiB copy between two other buffers before each call,
 * as decode-bench does by default) and hot. Work-groups of 256.
 *
 *   cl-roof [--device N] [--mib A,B,...]
 *       N: index among the GPU and accelerator devices of all platforms
 *       (default 0; where there are none, among all devices: PoCL's CPU
 *       device, to try it out); MiB read per streaming call (default 128,512: an f16
 *       cache of L = 32768 and 131072 at Hkv = 8, D = 128)
 *
 * OpenCL is loaded with dlopen, as libattn does.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CL_FUNCS(X)                                                                            \
    X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo)             \
    X(clCreateContext) X(clCreateCommandQueue) X(clCreateProgramWithSource)                   \
    X(clBuildProgram) X(clGetProgramBuildInfo) X(clCreateKernel) X(clCreateBuffer)            \
    X(clEnqueueFillBuffer) X(clEnqueueCopyBuffer) X(clSetKernelArg)                           \
    X(clEnqueueNDRangeKernel) X(clFinish) X(clGetEventProfilingInfo) X(clReleaseEvent)        \
    X(clReleaseMemObject) X(clReleaseKernel) X(clReleaseProgram)                              \
    X(clReleaseCommandQueue) X(clReleaseContext)
#define DECLARE(f) static __typeof__(&f) f##_;
CL_FUNCS(DECLARE)

static const char *kernels =
    "__kernel void empty(__global uint *o) { }\n"
    "__kernel void stream(__global const uint4 *a, __global uint *o, long n) {\n"
    "    uint s0 = 0, s1 = 0, s2 = 0, s3 = 0;\n"
    "    const long g = get_global_size(0);\n"
    "    long i = get_global_id(0);\n"
    "    for (; i + 3 * g < n; i += 4 * g) {\n"
    "        const uint4 x = a[i], y = a[i + g], z = a[i + 2 * g], w = a[i + 3 * g];\n"
    "        s0 += x.x ^ x.y ^ x.z ^ x.w;\n"
    "        s1 += y.x ^ y.y ^ y.z ^ y.w;\n"
    "        s2 += z.x ^ z.y ^ z.z ^ z.w;\n"
    "        s3 += w.x ^ w.y ^ w.z ^ w.w;\n"
    "    }\n"
    "    for (; i < n; i += g) { const uint4 x = a[i]; s0 += x.x ^ x.y ^ x.z ^ x.w; }\n"
    "    if ((s0 ^ s1 ^ s2 ^ s3) == 0x9e3779b9u) o[0] = s0;\n"   /* never: keeps the loads */
    "}\n";

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int load_cl(void)
{
    void *lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "cl-roof: cannot load libOpenCL.so.1: %s\n", dlerror());
        return 0;
    }
#define LOAD(f)                                                                                \
    if (!(*(void **)&f##_ = dlsym(lib, #f))) {                                                 \
        fprintf(stderr, "cl-roof: libOpenCL.so.1 lacks %s\n", #f);                             \
        return 0;                                                                              \
    }
    CL_FUNCS(LOAD)
#undef LOAD
    return 1;
}

/* The index-th device of the types over all platforms. */
static cl_device_id pick_device(cl_device_type types, int index, char *name, size_t name_size)
{
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (clGetPlatformIDs_(16, plats, &np) != CL_SUCCESS)
        return NULL;
    int seen = 0;
    for (cl_uint i = 0; i < np; i++) {
        cl_device_id devs[16];
        cl_uint nd = 0;
        if (clGetDeviceIDs_(plats[i], types, 16, devs, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint j = 0; j < nd; j++, seen++)
            if (seen == index) {
                clGetDeviceInfo_(devs[j], CL_DEVICE_NAME, name_size, name, NULL);
                return devs[j];
            }
    }
    return NULL;
}

enum { REPS = 40, WARMUP = 3 };

typedef struct timing {
    double wall, gpu, start;   /* medians, us: call, start to end, queued to start */
} timing;

/* REPS calls of kernel k over `global` work-items (groups of `local`), each
 * after an untimed copy of src into dst when cold. */
static int time_calls(cl_command_queue q, cl_kernel k, size_t global, size_t local, int cold,
                      cl_mem src, cl_mem dst, size_t copy_bytes, timing *t)
{
    double wall[REPS], gpu[REPS], start[REPS];
    for (int r = 0; r < REPS + WARMUP; r++) {
        if (cold) {
            clEnqueueCopyBuffer_(q, src, dst, 0, 0, copy_bytes, 0, NULL, NULL);
            clFinish_(q);
        }
        cl_event ev;
        const double t0 = now_us();
        if (clEnqueueNDRangeKernel_(q, k, 1, NULL, &global, &local, 0, NULL, &ev) != CL_SUCCESS)
            return 0;
        clFinish_(q);
        const double t1 = now_us();
        cl_ulong qd = 0, st = 0, en = 0;
        clGetEventProfilingInfo_(ev, CL_PROFILING_COMMAND_QUEUED, sizeof qd, &qd, NULL);
        clGetEventProfilingInfo_(ev, CL_PROFILING_COMMAND_START, sizeof st, &st, NULL);
        clGetEventProfilingInfo_(ev, CL_PROFILING_COMMAND_END, sizeof en, &en, NULL);
        clReleaseEvent_(ev);
        if (r >= WARMUP) {
            wall[r - WARMUP] = t1 - t0;
            gpu[r - WARMUP] = (double)(en - st) / 1e3;
            start[r - WARMUP] = (double)(st - qd) / 1e3;
        }
    }
    qsort(wall, REPS, sizeof *wall, cmp_double);
    qsort(gpu, REPS, sizeof *gpu, cmp_double);
    qsort(start, REPS, sizeof *start, cmp_double);
    t->wall = wall[REPS / 2];
    t->gpu = gpu[REPS / 2];
    t->start = start[REPS / 2];
    return 1;
}

int main(int argc, char **argv)
{
    int index = 0;
    size_t mib[8] = { 128, 512 };
    int nmib = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            index = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
            nmib = 0;
            for (char *s = argv[++i]; *s && nmib < 8; s += strspn(s, ","))
                mib[nmib++] = strtoul(s, &s, 10);
        } else {
            fprintf(stderr, "usage: cl-roof [--device N] [--mib A,B,...]\n");
            return 2;
        }
    }
    size_t max_bytes = 0;   /* the largest read */
    for (int i = 0; i < nmib; i++) {
        if (mib[i] == 0 || mib[i] > 8192) {
            fprintf(stderr, "cl-roof: --mib takes sizes of 1 to 8192\n");
            return 2;
        }
        if (mib[i] << 20 > max_bytes)
            max_bytes = mib[i] << 20;
    }
    if (!load_cl())
        return 1;
    char name[256] = "";
    cl_device_id dev = pick_device(CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR, index, name,
                                   sizeof name);
    if (!dev && !pick_device(CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR, 0, name,
                             sizeof name))
        dev = pick_device(CL_DEVICE_TYPE_ALL, index, name, sizeof name);
    if (!dev) {
        fprintf(stderr, "cl-roof: no OpenCL device %d\n", index);
        return 1;
    }
    cl_uint cus = 0;
    clGetDeviceInfo_(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    cl_int err;
    cl_context ctx = clCreateContext_(NULL, 1, &dev, NULL, NULL, &err);
    cl_command_queue q = ctx ? clCreateCommandQueue_(ctx, dev, CL_QUEUE_PROFILING_ENABLE, &err)
                             : NULL;
    cl_program prog = q ? clCreateProgramWithSource_(ctx, 1, &kernels, NULL, &err) : NULL;
    if (!prog || clBuildProgram_(prog, 1, &dev, "", NULL, NULL) != CL_SUCCESS) {
        char log[4096] = "";
        if (prog)
            clGetProgramBuildInfo_(prog, dev, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
        fprintf(stderr, "cl-roof: cannot set up the device (%d) %s\n", (int)err, log);
        return 1;
    }
    cl_kernel k_empty = clCreateKernel_(prog, "empty", &err);
    cl_kernel k_stream = clCreateKernel_(prog, "stream", &err);
    const size_t evict = (size_t)512 << 20;
    cl_mem a = clCreateBuffer_(ctx, CL_MEM_READ_WRITE, max_bytes, NULL, &err);
    cl_mem e0 = clCreateBuffer_(ctx, CL_MEM_READ_WRITE, evict, NULL, &err);
    cl_mem e1 = clCreateBuffer_(ctx, CL_MEM_READ_WRITE, evict, NULL, &err);
    cl_mem o = clCreateBuffer_(ctx, CL_MEM_READ_WRITE, 64, NULL, &err);
    if (!k_empty || !k_stream || !a || !e0 || !e1 || !o) {
        fprintf(stderr, "cl-roof: cannot allocate %zu MiB and 2 x 512 MiB on the device\n",
                max_bytes >> 20);
        return 1;
    }
    const cl_uint one = 1;
    clEnqueueFillBuffer_(q, a, &one, sizeof one, 0, max_bytes, 0, NULL, NULL);
    clEnqueueFillBuffer_(q, e0, &one, sizeof one, 0, evict, 0, NULL, NULL);
    clFinish_(q);
    printf("cl-roof: device %d: %s, %u compute units; medians of %d calls, us\n", index, name,
           cus, REPS);
    printf("caches  kernel   MiB  wg/cu      call  start->end  queued->start  GB/s call  "
           "GB/s start->end\n");
    const size_t local = 256;
    const int per_cu[] = { 4, 8, 16, 32 };
    clSetKernelArg_(k_empty, 0, sizeof o, &o);
    clSetKernelArg_(k_stream, 0, sizeof a, &a);
    clSetKernelArg_(k_stream, 1, sizeof o, &o);
    for (int cold = 1; cold >= 0; cold--) {
        timing t;
        if (time_calls(q, k_empty, local * cus * 4, local, cold, e0, e1, evict, &t))
            printf("%-6s  empty      0      4  %8.1f  %10.1f  %13.1f\n", cold ? "cold" : "hot",
                   t.wall, t.gpu, t.start);
        for (int m = 0; m < nmib; m++)
            for (int w = 0; w < 4; w++) {
                const cl_long n = (cl_long)((mib[m] << 20) / 16);
                clSetKernelArg_(k_stream, 2, sizeof n, &n);
                if (!time_calls(q, k_stream, local * cus * (size_t)per_cu[w], local, cold, e0, e1,
                                evict, &t))
                    continue;
                const double bytes = (double)(mib[m] << 20);
                printf("%-6s  stream  %4zu  %5d  %8.1f  %10.1f  %13.1f  %9.0f  %15.0f\n",
                       cold ? "cold" : "hot", mib[m], per_cu[w], t.wall, t.gpu, t.start,
                       bytes / t.wall / 1e3, bytes / t.gpu / 1e3);
            }
    }
    clReleaseMemObject_(e1);
    clReleaseMemObject_(e0);
    clReleaseMemObject_(o);
    clReleaseMemObject_(a);
    clReleaseKernel_(k_stream);
    clReleaseKernel_(k_empty);
    clReleaseProgram_(prog);
    clReleaseCommandQueue_(q);
    clReleaseContext_(ctx);
    return 0;
}
