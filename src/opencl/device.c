/* The OpenCL backend: device enumeration (attn_opencl_probe), the backend
 * vtable, and buffers on cl_mem. GPUs and accelerators are listed first,
 * CPU OpenCL devices (PoCL, ...) after them, so that ATTN_DEVICE=opencl
 * means the first GPU when there is one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "profile.h"
#include "../error.h"

/* Vendor queries for the SIMD width (cl_nv_device_attribute_query,
 * cl_amd_device_attribute_query); absent from CL/cl.h of OpenCL 1.2. */
#define ATTN_CL_DEVICE_WARP_SIZE_NV        0x4003
#define ATTN_CL_DEVICE_WAVEFRONT_WIDTH_AMD 0x4043
#define ATTN_CL_DEVICE_SUB_GROUP_SIZES_INTEL 0x4108

attn_status attn_cl_fail(cl_int err, const char *what)
{
    attn_status s = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                     err == CL_INVALID_BUFFER_SIZE) ? ATTN_ERR_OUT_OF_MEMORY : ATTN_ERR_DEVICE;
    return attn_fail(s, "%s: OpenCL error %s (%d)", what, attn_cl_error_name(err), (int)err);
}

static attn_status cl_alloc(attn_device *dev, size_t bytes, void **handle)
{
    attn_cl_device *d = dev->impl;
    if ((cl_ulong)bytes > d->max_alloc)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_buffer_create: %zu bytes is more than "
                         "the %llu bytes CL_DEVICE_MAX_MEM_ALLOC_SIZE allows on %s", bytes,
                         (unsigned long long)d->max_alloc, dev->info.name);
    cl_int err;
    cl_mem m = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!m || err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_buffer_create: clCreateBuffer");
    *handle = m;
    return ATTN_OK;
}

static void cl_free(attn_device *dev, void *handle)
{
    attn_cl_device *d = dev->impl;
    d->cl->ReleaseMemObject((cl_mem)handle);
}

static attn_status cl_write(attn_device *dev, void *h, size_t off, const void *src, size_t n)
{
    attn_cl_device *d = dev->impl;
    cl_int err = d->cl->EnqueueWriteBuffer(d->queue, (cl_mem)h, CL_TRUE, off, n, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, "attn_buffer_write: clEnqueueWriteBuffer");
}

static attn_status cl_copy(attn_device *dev, void *dst, size_t doff, void *src, size_t soff,
                           size_t n)
{
    attn_cl_device *d = dev->impl;
    cl_int err = d->cl->EnqueueCopyBuffer(d->queue, (cl_mem)src, (cl_mem)dst, soff, doff, n, 0,
                                          NULL, NULL);
    if (err == CL_SUCCESS)
        err = d->cl->Finish(d->queue);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, "attn_buffer_copy: clEnqueueCopyBuffer");
}

static attn_status cl_read(attn_device *dev, void *h, size_t off, void *dst, size_t n)
{
    attn_cl_device *d = dev->impl;
    cl_int err = d->cl->EnqueueReadBuffer(d->queue, (cl_mem)h, CL_TRUE, off, n, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, "attn_buffer_read: clEnqueueReadBuffer");
}

static void cl_destroy(attn_device *dev)
{
    attn_cl_device *d = dev->impl;
    if (!d)
        return;
    attn_cl_decode_free(d);
    attn_cl_program_cache_free(d);
    if (d->queue)
        d->cl->ReleaseCommandQueue(d->queue);
    if (d->context)
        d->cl->ReleaseContext(d->context);
    pthread_mutex_destroy(&d->lock);
    free(d->extra_options);
    free(d);
    dev->impl = NULL;
}

static const attn_backend cl_backend = {
    .name = "opencl",
    .buffer_alloc = cl_alloc,
    .buffer_free = cl_free,
    .buffer_write = cl_write,
    .buffer_read = cl_read,
    .buffer_host_ptr = NULL,
    .buffer_copy = cl_copy,
    .sdpa = attn_cl_sdpa,
    .merge = attn_cl_merge,
    .block_select = attn_cl_block_select,
    .linear = attn_cl_linear,
    .decode = attn_cl_decode,
    .destroy = cl_destroy,
    .neighborhood = attn_cl_neighborhood,
};

static void info_str(const attn_cl_api *cl, cl_device_id id, cl_device_info what, char *dst, size_t n)
{
    dst[0] = '\0';
    if (cl->GetDeviceInfo(id, what, n - 1, dst, NULL) != CL_SUCCESS)
        dst[0] = '\0';
    dst[n - 1] = '\0';
}

/* Fills the state and info of one device; 0 if it cannot be used. */
static int init_device(const attn_cl_api *cl, cl_platform_id plat, cl_device_id id,
                       attn_context *ctx, attn_device *dev)
{
    cl_bool avail = CL_FALSE, compiler = CL_FALSE;
    cl->GetDeviceInfo(id, CL_DEVICE_AVAILABLE, sizeof avail, &avail, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    char ver[128];
    info_str(cl, id, CL_DEVICE_OPENCL_C_VERSION, ver, sizeof ver);
    int maj = 0, min = 0;
    if (sscanf(ver, "OpenCL C %d.%d", &maj, &min) != 2)
        maj = min = 0;
    if (!avail || !compiler || maj * 10 + min < 12)
        return 0;   /* the kernels are OpenCL C 1.2 */

    attn_cl_device *d = calloc(1, sizeof *d);
    if (!d)
        return 0;
    d->cl = cl;
    d->platform = plat;
    d->id = id;
    d->cl_c_major = maj;
    d->cl_c_minor = min;
    cl_int err;
    d->context = cl->CreateContext(NULL, 1, &id, NULL, NULL, &err);
    if (!d->context || err != CL_SUCCESS) {
        free(d);
        return 0;
    }
    const cl_command_queue_properties qprops =
        attn_cl_profile_enabled() ? CL_QUEUE_PROFILING_ENABLE : 0;
    d->queue = cl->CreateCommandQueue(d->context, id, qprops, &err);
    if (!d->queue || err != CL_SUCCESS) {
        cl->ReleaseContext(d->context);
        free(d);
        return 0;
    }
    pthread_mutex_init(&d->lock, NULL);
    const char *opt = getenv("ATTN_OPENCL_OPTIONS");
    if (opt && *opt)
        d->extra_options = strdup(opt);

    cl_device_type type = 0;
    cl_uint cu = 0;
    cl_ulong gmem = 0;
    cl->GetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d->local_mem, &d->local_mem, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc, &d->max_alloc, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_wg, &d->max_wg, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof d->max_wi, d->max_wi, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof d->vec_float,
                      &d->vec_float, NULL);
    cl->GetDeviceInfo(id, CL_DEVICE_PREFERRED_VECTOR_WIDTH_HALF, sizeof d->vec_half,
                      &d->vec_half, NULL);
    d->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;

    size_t extlen = 0;
    char *ext = NULL;
    if (cl->GetDeviceInfo(id, CL_DEVICE_EXTENSIONS, 0, NULL, &extlen) == CL_SUCCESS &&
        (ext = calloc(1, extlen + 1)) != NULL)
        cl->GetDeviceInfo(id, CL_DEVICE_EXTENSIONS, extlen, ext, NULL);
    const char *e = ext ? ext : "";
    d->fp16 = strstr(e, "cl_khr_fp16") != NULL;
    d->subgroups = strstr(e, "cl_khr_subgroups") != NULL || strstr(e, "cl_intel_subgroups") != NULL;

    attn_device_info *in = &dev->info;
    memset(in, 0, sizeof *in);
    in->size = sizeof *in;
    in->type = ATTN_DEVICE_OPENCL;
    info_str(cl, id, CL_DEVICE_NAME, in->name, sizeof in->name);
    info_str(cl, id, CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
    info_str(cl, id, CL_DRIVER_VERSION, in->driver, sizeof in->driver);
    in->compute_units = (int)cu;
    in->is_software = d->is_cpu;
    in->global_mem_bytes = gmem;
    in->local_mem_bytes = d->local_mem;
    in->max_work_group_size = (int)d->max_wg;
    in->fp16 = d->fp16;
    cl_uint w = 0;
    if (strstr(e, "cl_nv_device_attribute_query") &&
        cl->GetDeviceInfo(id, ATTN_CL_DEVICE_WARP_SIZE_NV, sizeof w, &w, NULL) == CL_SUCCESS)
        in->subgroup_size = (int)w;
    else if (strstr(e, "cl_amd_device_attribute_query") &&
             cl->GetDeviceInfo(id, ATTN_CL_DEVICE_WAVEFRONT_WIDTH_AMD, sizeof w, &w, NULL) == CL_SUCCESS)
        in->subgroup_size = (int)w;
    else if (strstr(e, "cl_intel_subgroups")) {
        size_t sizes[8] = { 0 }, n = 0;
        if (cl->GetDeviceInfo(id, ATTN_CL_DEVICE_SUB_GROUP_SIZES_INTEL, sizeof sizes, sizes, &n) ==
            CL_SUCCESS)
            for (size_t i = 0; i < n / sizeof sizes[0] && i < 8; i++)
                if ((int)sizes[i] > in->subgroup_size)
                    in->subgroup_size = (int)sizes[i];
    }
    free(ext);

    dev->backend = &cl_backend;
    dev->ctx = ctx;
    dev->impl = d;
    return 1;
}

void attn_opencl_probe(attn_context *ctx)
{
    const attn_cl_api *cl = attn_cl_load();
    if (!cl)
        return;
    cl_uint np = 0;
    if (cl->GetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0)
        return;
    cl_platform_id plats[16];
    if (np > 16)
        np = 16;
    if (cl->GetPlatformIDs(np, plats, NULL) != CL_SUCCESS)
        return;
    /* Pass 0: GPUs and accelerators; pass 1: CPU devices. */
    for (int pass = 0; pass < 2; pass++) {
        const cl_device_type want = pass == 0 ? (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)
                                              : CL_DEVICE_TYPE_CPU;
        for (cl_uint p = 0; p < np; p++) {
            cl_device_id ids[ATTN_MAX_DEVICES];
            cl_uint nd = 0;
            if (cl->GetDeviceIDs(plats[p], want, ATTN_MAX_DEVICES, ids, &nd) != CL_SUCCESS)
                continue;
            if (nd > ATTN_MAX_DEVICES)
                nd = ATTN_MAX_DEVICES;
            for (cl_uint i = 0; i < nd && ctx->ndev < ATTN_MAX_DEVICES; i++)
                if (init_device(cl, plats[p], ids[i], ctx, &ctx->dev[ctx->ndev]))
                    ctx->ndev++;
        }
    }
}
