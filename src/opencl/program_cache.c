/* Per-device program cache: each (source, build options) pair is compiled
 * once and kept until the context is destroyed. Options carry the
 * specialisation (-D head dims, dtypes, tile sizes), so the number of
 * entries is the number of distinct problem shapes a context has seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "../error.h"

static const char *source_text(int s)
{
    switch (s) {
    case ATTN_CL_SRC_SDPA: return attn_cl_sdpa_src;
    case ATTN_CL_SRC_BLOCK_SELECT: return attn_cl_block_select_src;
    case ATTN_CL_SRC_LINEAR: return attn_cl_linear_src;
    case ATTN_CL_SRC_NEIGHBORHOOD: return attn_cl_neighborhood_src;
    case ATTN_CL_SRC_DECODE: return attn_cl_decode_src;
    default: return attn_cl_merge_src;
    }
}

/* The part of a build log worth showing: from the first "error" on. */
static const char *log_excerpt(const char *log)
{
    const char *e = strstr(log, "error");
    if (!e)
        return log;
    const char *line = e;
    while (line > log && line[-1] != '\n')
        line--;
    return line;
}

/* The driver's build log of a program, calloc'd (NULL if it has none). */
static char *build_log(attn_cl_device *d, cl_program prog)
{
    size_t len = 0;
    char *log = NULL;
    if (d->cl->GetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS &&
        (log = calloc(1, len + 1)) != NULL)
        d->cl->GetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, len, log, NULL);
    return log;
}

/* The built program's binary (a single device): PTX text on NVIDIA. */
static void print_binary(attn_cl_device *d, cl_program prog)
{
    size_t n = 0;
    if (d->cl->GetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS ||
        n == 0)
        return;
    unsigned char *bin = malloc(n + 1);
    if (bin && d->cl->GetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) ==
                   CL_SUCCESS) {
        fwrite(bin, 1, n, stderr);
        fputc('\n', stderr);
    }
    free(bin);
}

static attn_status build(attn_cl_device *d, int source, const char *options, cl_program *out)
{
    const attn_cl_api *cl = d->cl;
    const char *texts[2] = { attn_cl_common_src, source_text(source) };
    cl_int err;
    cl_program prog = cl->CreateProgramWithSource(d->context, 2, texts, NULL, &err);
    if (!prog || err != CL_SUCCESS)
        return attn_cl_fail(err, "clCreateProgramWithSource");
    size_t n = strlen(options) + (d->extra_options ? strlen(d->extra_options) : 0) + 2;
    char *opts = malloc(n);
    if (!opts) {
        cl->ReleaseProgram(prog);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "OpenCL program build: out of memory");
    }
    strcpy(opts, options);
    if (d->extra_options) {
        strcat(opts, " ");
        strcat(opts, d->extra_options);
    }
    err = cl->BuildProgram(prog, 1, &d->id, opts, NULL, NULL);
    /* ATTN_OPENCL_BUILD_LOG=1: every successful build's log on stderr (with
     * ATTN_OPENCL_OPTIONS=-cl-nv-verbose, NVIDIA's registers and spills per
     * kernel: tuning aid); =2 also its binary (NVIDIA: the PTX) */
    const char *show = getenv("ATTN_OPENCL_BUILD_LOG");
    if (err == CL_SUCCESS && show && (*show == '1' || *show == '2')) {
        char *log = build_log(d, prog);
        fprintf(stderr, "attn opencl build \"%s\":\n%s\n", opts, log ? log : "(no log)");
        free(log);
        if (*show == '2')
            print_binary(d, prog);
    }
    free(opts);
    if (err != CL_SUCCESS) {
        char *log = build_log(d, prog);
        attn_status s = attn_fail(ATTN_ERR_DEVICE, "OpenCL kernel build failed: %s (%d); "
                                  "build options \"%s\"; build log: %s", attn_cl_error_name(err),
                                  (int)err, options, log ? log_excerpt(log) : "(none)");
        free(log);
        cl->ReleaseProgram(prog);
        return s;
    }
    *out = prog;
    return ATTN_OK;
}

attn_status attn_cl_program_get(attn_cl_device *d, int source, const char *options,
                                cl_program *out)
{
    for (attn_cl_program *p = d->programs; p; p = p->next)
        if (p->source == source && strcmp(p->options, options) == 0) {
            *out = p->program;
            return ATTN_OK;
        }
    attn_cl_program *p = calloc(1, sizeof *p);
    char *o = strdup(options);
    if (!p || !o) {
        free(p);
        free(o);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "OpenCL program cache: out of memory");
    }
    attn_status s = build(d, source, options, &p->program);
    if (s != ATTN_OK) {
        free(p);
        free(o);
        return s;
    }
    p->source = source;
    p->options = o;
    p->next = d->programs;
    d->programs = p;
    *out = p->program;
    return ATTN_OK;
}

void attn_cl_program_cache_free(attn_cl_device *d)
{
    attn_cl_program *p = d->programs;
    while (p) {
        attn_cl_program *next = p->next;
        d->cl->ReleaseProgram(p->program);
        free(p->options);
        free(p);
        p = next;
    }
    d->programs = NULL;
}
