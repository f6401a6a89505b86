/* Internal interface of the OpenCL backend.
 *
 * libOpenCL is never linked: loader.c dlopen()s it when a context is
 * created and fills attn_cl, a table of the entry points the backend uses.
 * Only the headers are needed at build time (OpenCL 1.2 API). */
#ifndef ATTN_OCL_H
#define ATTN_OCL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif
#include <pthread.h>
#include "../backend.h"

/* X-macro list of every OpenCL entry point the backend calls. */
#define ATTN_CL_FUNCS(X) \
    X(cl_int, GetPlatformIDs, (cl_uint, cl_platform_id *, cl_uint *)) \
    X(cl_int, GetPlatformInfo, (cl_platform_id, cl_platform_info, size_t, void *, size_t *)) \
    X(cl_int, GetDeviceIDs, (cl_platform_id, cl_device_type, cl_uint, cl_device_id *, cl_uint *)) \
    X(cl_int, GetDeviceInfo, (cl_device_id, cl_device_info, size_t, void *, size_t *)) \
    X(cl_context, CreateContext, (const cl_context_properties *, cl_uint, const cl_device_id *, \
        void (CL_CALLBACK *)(const char *, const void *, size_t, void *), void *, cl_int *)) \
    X(cl_int, ReleaseContext, (cl_context)) \
    X(cl_command_queue, CreateCommandQueue, (cl_context, cl_device_id, \
        cl_command_queue_properties, cl_int *)) \
    X(cl_int, ReleaseCommandQueue, (cl_command_queue)) \
    X(cl_mem, CreateBuffer, (cl_context, cl_mem_flags, size_t, void *, cl_int *)) \
    X(cl_int, ReleaseMemObject, (cl_mem)) \
    X(cl_int, EnqueueWriteBuffer, (cl_command_queue, cl_mem, cl_bool, size_t, size_t, \
        const void *, cl_uint, const cl_event *, cl_event *)) \
    X(cl_int, EnqueueCopyBuffer, (cl_command_queue, cl_mem, cl_mem, size_t, size_t, size_t, \
        cl_uint, const cl_event *, cl_event *)) \
    X(cl_int, EnqueueReadBuffer, (cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, \
        cl_uint, const cl_event *, cl_event *)) \
    X(cl_program, CreateProgramWithSource, (cl_context, cl_uint, const char **, const size_t *, \
        cl_int *)) \
    X(cl_int, BuildProgram, (cl_program, cl_uint, const cl_device_id *, const char *, \
        void (CL_CALLBACK *)(cl_program, void *), void *)) \
    X(cl_int, GetProgramBuildInfo, (cl_program, cl_device_id, cl_program_build_info, size_t, \
        void *, size_t *)) \
    X(cl_int, GetProgramInfo, (cl_program, cl_program_info, size_t, void *, size_t *)) \
    X(cl_int, ReleaseProgram, (cl_program)) \
    X(cl_kernel, CreateKernel, (cl_program, const char *, cl_int *)) \
    X(cl_int, ReleaseKernel, (cl_kernel)) \
    X(cl_int, SetKernelArg, (cl_kernel, cl_uint, size_t, const void *)) \
    X(cl_int, GetKernelWorkGroupInfo, (cl_kernel, cl_device_id, cl_kernel_work_group_info, \
        size_t, void *, size_t *)) \
    X(cl_int, EnqueueNDRangeKernel, (cl_command_queue, cl_kernel, cl_uint, const size_t *, \
        const size_t *, const size_t *, cl_uint, const cl_event *, cl_event *)) \
    X(cl_int, Finish, (cl_command_queue)) \
    X(cl_int, Flush, (cl_command_queue)) \
    X(cl_int, GetEventProfilingInfo, (cl_event, cl_profiling_info, size_t, void *, size_t *)) \
    X(cl_int, ReleaseEvent, (cl_event)) \
    X(void *, EnqueueMapBuffer, (cl_command_queue, cl_mem, cl_bool, cl_map_flags, size_t, \
        size_t, cl_uint, const cl_event *, cl_event *, cl_int *)) \
    X(cl_int, EnqueueUnmapMemObject, (cl_command_queue, cl_mem, void *, cl_uint, \
        const cl_event *, cl_event *))

typedef struct attn_cl_api {
#define ATTN_CL_MEMBER(ret, name, args) ret (CL_API_CALL *name) args;
    ATTN_CL_FUNCS(ATTN_CL_MEMBER)
#undef ATTN_CL_MEMBER
} attn_cl_api;

/* Loads libOpenCL once per process; NULL (and no error) if it is absent. */
const attn_cl_api *attn_cl_load(void);

/* "CL_OUT_OF_RESOURCES" etc. */
const char *attn_cl_error_name(cl_int err);

/* A compiled program kept for the context's life, keyed by source + options. */
typedef struct attn_cl_program {
    struct attn_cl_program *next;
    int        source;       /* ATTN_CL_SRC_* */
    char      *options;
    cl_program program;
} attn_cl_program;

enum {
    ATTN_CL_SRC_SDPA,
    ATTN_CL_SRC_MERGE,
    ATTN_CL_SRC_BLOCK_SELECT,
    ATTN_CL_SRC_LINEAR,
    ATTN_CL_SRC_NEIGHBORHOOD,
    ATTN_CL_SRC_DECODE,
    ATTN_CL_NSRC
};

/* Per-device state (attn_device.impl). */
typedef struct attn_cl_device {
    const attn_cl_api *cl;
    cl_platform_id   platform;
    cl_device_id     id;
    cl_context       context;
    cl_command_queue queue;
    pthread_mutex_t  lock;          /* kernel args + enqueue, program cache */
    attn_cl_program *programs;
    char            *extra_options; /* ATTN_OPENCL_OPTIONS at context creation */
    /* limits the kernels are sized by */
    size_t   max_wg;
    size_t   max_wi[3];
    cl_ulong local_mem;
    cl_ulong max_alloc;
    int      is_cpu;
    int      fp16;
    int      cl_c_major, cl_c_minor;   /* OpenCL C version */
    cl_uint  vec_float, vec_half;      /* preferred vector widths */
    int      subgroups;
    struct attn_cl_decode_state *decode;   /* decode's device tables, kept across calls */
} attn_cl_device;

/* Returns a built program for (source, options) from the device's cache,
 * building it on first use. Called with the device lock held. A build
 * failure is ATTN_ERR_DEVICE with the driver's log in the message. */
attn_status attn_cl_program_get(attn_cl_device *d, int source, const char *options,
                                cl_program *out);
void attn_cl_program_cache_free(attn_cl_device *d);

/* Records an OpenCL failure: ATTN_ERR_DEVICE (or OUT_OF_MEMORY for allocation
 * errors) with "what: CL_ERROR_NAME (code)". */
attn_status attn_cl_fail(cl_int err, const char *what);

/* A device buffer's cl_mem. */
static inline cl_mem attn_cl_mem(const attn_buffer *b) { return (cl_mem)b->handle; }

/* Ops. */
attn_status attn_cl_sdpa(attn_device *dev, const attn_sdpa_problem *p);
attn_status attn_cl_merge(attn_device *dev, const attn_merge_problem *p);
attn_status attn_cl_block_select(attn_device *dev, const attn_block_select_problem *p);
attn_status attn_cl_linear(attn_device *dev, const attn_linear_problem *p);
attn_status attn_cl_neighborhood(attn_device *dev, const attn_neighborhood_problem *p);
attn_status attn_cl_decode(attn_device *dev, const attn_decode_problem *p);
void attn_cl_decode_free(attn_cl_device *d);

/* The embedded kernel sources (generated by tools/embed.sh). */
extern const char attn_cl_common_src[];
extern const char attn_cl_sdpa_src[];
extern const char attn_cl_merge_src[];
extern const char attn_cl_block_select_src[];
extern const char attn_cl_linear_src[];
extern const char attn_cl_neighborhood_src[];
extern const char attn_cl_decode_src[];

#endif
