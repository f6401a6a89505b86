/* ATTN_OPENCL_PROFILE: host step and device command timing (profile.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "profile.h"

static int enabled;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *e = getenv("ATTN_OPENCL_PROFILE");
    enabled = e && atoi(e) != 0;
}

int attn_cl_profile_enabled(void)
{
    pthread_once(&once, read_env);
    return enabled;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void attn_cl_prof_begin(attn_cl_prof *p, const attn_cl_api *cl)
{
    p->cl = cl;
    p->on = attn_cl_profile_enabled();
    p->nsteps = p->nevents = 0;
    if (p->on)
        p->start = p->mark = now();
}

void attn_cl_prof_step(attn_cl_prof *p, const char *name)
{
    if (!p->on || p->nsteps == ATTN_CL_PROF_MAX)
        return;
    const double t = now();
    p->step_name[p->nsteps] = name;
    p->step_s[p->nsteps++] = t - p->mark;
    p->mark = t;
}

cl_event *attn_cl_prof_event(attn_cl_prof *p, const char *name)
{
    if (!p->on || p->nevents == ATTN_CL_PROF_MAX)
        return NULL;
    p->event_name[p->nevents] = name;
    p->event[p->nevents] = NULL;
    return &p->event[p->nevents++];
}

static cl_ulong event_time(const attn_cl_api *cl, cl_event e, cl_profiling_info what)
{
    cl_ulong t = 0;
    if (cl->GetEventProfilingInfo(e, what, sizeof t, &t, NULL) != CL_SUCCESS)
        return 0;
    return t;
}

void attn_cl_prof_end(attn_cl_prof *p, const char *op, int print)
{
    if (!p->on)
        return;
    if (print) {
        char line[512];
        int n = snprintf(line, sizeof line, "attn_cl_profile %s: host", op);
        for (int i = 0; i < p->nsteps && n < (int)sizeof line; i++)
            n += snprintf(line + n, sizeof line - (size_t)n, " %s %.1f", p->step_name[i],
                          1e6 * p->step_s[i]);
        if (n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " total %.1f us | dev",
                          1e6 * (now() - p->start));
        cl_ulong t0 = 0;
        for (int i = 0; i < p->nevents; i++)
            if (p->event[i] && !t0)
                t0 = event_time(p->cl, p->event[i], CL_PROFILING_COMMAND_QUEUED);
        for (int i = 0; i < p->nevents && n < (int)sizeof line; i++) {
            if (!p->event[i])
                continue;
            const cl_ulong s = event_time(p->cl, p->event[i], CL_PROFILING_COMMAND_START);
            const cl_ulong e = event_time(p->cl, p->event[i], CL_PROFILING_COMMAND_END);
            n += snprintf(line + n, sizeof line - (size_t)n, " %s %.1f@%.1f", p->event_name[i],
                          1e-3 * (double)(e - s), s >= t0 ? 1e-3 * (double)(s - t0) : -1.0);
        }
        fprintf(stderr, "%s us\n", line);
    }
    for (int i = 0; i < p->nevents; i++)
        if (p->event[i])
            p->cl->ReleaseEvent(p->event[i]);
    p->nevents = 0;
}
