/* ATTN_OPENCL_PROFILE=1: per-call timing of an op on OpenCL, to stderr.
 *
 * The queue is then created with CL_QUEUE_PROFILING_ENABLE (device.c). An
 * op marks its host steps (attn_cl_prof_step: host time since the previous
 * mark) and asks for an event per command it enqueues (attn_cl_prof_event:
 * NULL when profiling is off, so the enqueue calls are unchanged); after
 * its clFinish, attn_cl_prof_end prints one line:
 *   attn_cl_profile <op>: host <step> <us> ... total <us> | dev <cmd> <us>@<us> ...
 * where a command's second figure is when it started on the device,
 * counted from the moment the op's first command was queued: the gap
 * before the first start is submission latency, gaps between commands are
 * launch overhead. */
#ifndef ATTN_OCL_PROFILE_H
#define ATTN_OCL_PROFILE_H

#include "ocl.h"

#define ATTN_CL_PROF_MAX 8

typedef struct attn_cl_prof {
    const attn_cl_api *cl;
    int    on;
    double start, mark;                      /* host seconds */
    int    nsteps, nevents;
    const char *step_name[ATTN_CL_PROF_MAX];
    double step_s[ATTN_CL_PROF_MAX];
    const char *event_name[ATTN_CL_PROF_MAX];
    cl_event event[ATTN_CL_PROF_MAX];
} attn_cl_prof;

/* Whether ATTN_OPENCL_PROFILE is set to a non-zero value (read once). */
int attn_cl_profile_enabled(void);

void attn_cl_prof_begin(attn_cl_prof *p, const attn_cl_api *cl);
void attn_cl_prof_step(attn_cl_prof *p, const char *name);
/* Where the next command's event goes (NULL when off or full). */
cl_event *attn_cl_prof_event(attn_cl_prof *p, const char *name);
/* Prints the line (when on) and releases the events; call after clFinish,
 * also on failure paths (it then only releases). */
void attn_cl_prof_end(attn_cl_prof *p, const char *op, int print);

#endif
