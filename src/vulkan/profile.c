/* ATTN_VULKAN_PROFILE=1 (see profile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "profile.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Valid timestamp bits of the device's queue (0: no timestamps). */
static uint32_t timestamp_bits(attn_vk_device *d)
{
    VkQueueFamilyProperties q[16];
    uint32_t n = 16;
    d->inst->vk.GetPhysicalDeviceQueueFamilyProperties(d->phys, &n, q);
    return d->queue_family < n ? q[d->queue_family].timestampValidBits : 0;
}

/* The query pool, made on the first profiled call; 0 without timestamps. */
static int have_pool(attn_vk_device *d)
{
    if (d->prof_pool)
        return 1;
    if (d->prof_ts_bits == 0 && (d->prof_ts_bits = timestamp_bits(d)) == 0)
        return 0;
    const VkQueryPoolCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
        .queryCount = ATTN_VK_PROF_MARKS + 1,
    };
    return d->vk.CreateQueryPool(d->device, &qi, NULL, &d->prof_pool) == VK_SUCCESS;
}

void attn_vk_prof_start(attn_vk_device *d, attn_vk_profile *p, const char *op)
{
    const char *env = getenv("ATTN_VULKAN_PROFILE");
    memset(p, 0, sizeof *p);
    p->on = env && *env && strcmp(env, "0") != 0;
    if (!p->on)
        return;
    p->op = op;
    p->last = now();
    d->prof = p;
}

void attn_vk_prof_host(attn_vk_profile *p, const char *name)
{
    if (!p || !p->on || p->nhost == ATTN_VK_PROF_MARKS)
        return;
    const double t = now();
    p->host_name[p->nhost] = name;
    p->host_us[p->nhost++] = 1e6 * (t - p->last);
    p->last = t;
}

void attn_vk_prof_gpu_begin(attn_vk_device *d, attn_vk_profile *p)
{
    if (!p->on || !have_pool(d))
        return;
    p->gpu = 1;
    p->ngpu = 0;
    d->vk.CmdResetQueryPool(d->cmd, d->prof_pool, 0, ATTN_VK_PROF_MARKS + 1);
    d->vk.CmdWriteTimestamp(d->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, d->prof_pool, 0);
}

void attn_vk_prof_gpu_mark(attn_vk_device *d, attn_vk_profile *p, const char *name)
{
    if (!p->on || !p->gpu || p->ngpu == ATTN_VK_PROF_MARKS)
        return;
    p->gpu_name[p->ngpu++] = name;
    d->vk.CmdWriteTimestamp(d->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d->prof_pool,
                            (uint32_t)p->ngpu);
}

void attn_vk_prof_report(attn_vk_device *d, attn_vk_profile *p)
{
    if (!p->on)
        return;
    d->prof = NULL;
    char line[512];
    size_t n = (size_t)snprintf(line, sizeof line, "vkprof %s: host", p->op);
    double total = 0.0;
    for (int i = 0; i < p->nhost && n < sizeof line; i++) {
        n += (size_t)snprintf(line + n, sizeof line - n, " %s %.1f", p->host_name[i],
                              p->host_us[i]);
        total += p->host_us[i];
    }
    if (n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n, " = %.1f us", total);
    uint64_t ts[ATTN_VK_PROF_MARKS + 1];
    if (p->gpu && p->ngpu > 0 && n < sizeof line &&
        d->vk.GetQueryPoolResults(d->device, d->prof_pool, 0, (uint32_t)p->ngpu + 1, sizeof ts,
                                  ts, sizeof ts[0], VK_QUERY_RESULT_64_BIT |
                                  VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS) {
        /* Ticks of timestampPeriod ns, wrapping at the valid bits. */
        const uint64_t mask = d->prof_ts_bits >= 64 ? ~(uint64_t)0 :
                              ((uint64_t)1 << d->prof_ts_bits) - 1;
        const double us_per_tick = 1e-3 * (double)d->limits.timestampPeriod;
        n += (size_t)snprintf(line + n, sizeof line - n, " | gpu");
        for (int i = 0; i < p->ngpu && n < sizeof line; i++)
            n += (size_t)snprintf(line + n, sizeof line - n, " %s %.1f", p->gpu_name[i],
                                  us_per_tick * (double)((ts[i + 1] - ts[i]) & mask));
        if (n < sizeof line)
            snprintf(line + n, sizeof line - n, " = %.1f us",
                     us_per_tick * (double)((ts[p->ngpu] - ts[0]) & mask));
    }
    fprintf(stderr, "%s%s%s\n", line, p->note[0] ? " | " : "", p->note);
    p->on = 0;
}

void attn_vk_prof_free(attn_vk_device *d)
{
    if (d->prof_pool)
        d->vk.DestroyQueryPool(d->device, d->prof_pool, NULL);
    d->prof_pool = VK_NULL_HANDLE;
}
