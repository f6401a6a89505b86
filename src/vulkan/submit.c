/* One command buffer and one fence per device: each op (or staged copy)
 * is recorded, submitted once and waited for. The device lock is held
 * throughout, so the buffer, fence and descriptor pool are never shared. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "vk.h"
#include "profile.h"
#include "../error.h"

/* "what: vkCall" as the failure's message prefix. */
static attn_status fail_in(attn_vk_device *d, VkResult r, const char *what, const char *call)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s", what, call);
    return attn_vk_fail(d, r, msg);
}

attn_status attn_vk_begin(attn_vk_device *d, const char *what)
{
    if (d->lost)
        return attn_fail(ATTN_ERR_DEVICE, "%s: the Vulkan device was lost earlier; create a "
                         "new context", what);
    VkResult r = d->vk.ResetCommandBuffer(d->cmd, 0);
    if (r != VK_SUCCESS)
        return fail_in(d, r, what, "vkResetCommandBuffer");
    const VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = d->vk.BeginCommandBuffer(d->cmd, &bi);
    return r == VK_SUCCESS ? ATTN_OK : fail_in(d, r, what, "vkBeginCommandBuffer");
}

/* Polls the fence for up to ATTN_VULKAN_SPIN_US microseconds (default
 * SPIN_US on a discrete GPU, none where the device shares the host's
 * memory: a software device computes on the cores a poll would take)
 * before blocking in vkWaitForFences: a blocked thread is woken by the
 * driver's interrupt, which on some drivers costs tens of us that a short
 * op pays on every call. */
#define SPIN_US 200

static VkResult wait_fence(attn_vk_device *d)
{
    const char *env = getenv("ATTN_VULKAN_SPIN_US");
    const double spin = 1e-6 * (env ? atof(env) : d->direct ? 0 : SPIN_US);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        const VkResult r = d->vk.GetFenceStatus(d->device, d->fence);
        if (r != VK_NOT_READY)
            return r;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) >= spin)
            return d->vk.WaitForFences(d->device, 1, &d->fence, VK_TRUE, UINT64_MAX);
    }
}

attn_status attn_vk_submit(attn_vk_device *d, const char *what)
{
    VkResult r = d->vk.EndCommandBuffer(d->cmd);
    if (r != VK_SUCCESS)
        return fail_in(d, r, what, "vkEndCommandBuffer");
    const VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &d->cmd,
    };
    if ((r = d->vk.QueueSubmit(d->queue, 1, &si, d->fence)) != VK_SUCCESS)
        return fail_in(d, r, what, "vkQueueSubmit");
    attn_vk_prof_host(d->prof, "submit");
    r = wait_fence(d);
    VkResult rr = d->vk.ResetFences(d->device, 1, &d->fence);
    attn_vk_prof_host(d->prof, "wait");
    if (r != VK_SUCCESS)
        return fail_in(d, r, what, "vkWaitForFences");
    return rr == VK_SUCCESS ? ATTN_OK : fail_in(d, rr, what, "vkResetFences");
}

void attn_vk_barrier(attn_vk_device *d)
{
    const VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
    };
    d->vk.CmdPipelineBarrier(d->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                             VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                             0, 1, &mb, 0, NULL, 0, NULL);
}

void attn_vk_dispatch(attn_vk_device *d, VkPipeline pipe, VkDescriptorSet set, const void *push,
                      uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz)
{
    d->vk.CmdBindPipeline(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    d->vk.CmdBindDescriptorSets(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipeline_layout, 0, 1,
                                &set, 0, NULL);
    if (push_bytes)
        d->vk.CmdPushConstants(d->cmd, d->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                               push_bytes, push);
    d->vk.CmdDispatch(d->cmd, gx, gy, gz);
}

int attn_vk_grid_xy(const attn_vk_device *d, uint64_t n, uint32_t *gx, uint32_t *gy)
{
    const uint64_t x = n < d->limits.maxComputeWorkGroupCount[0] ?
                       n : d->limits.maxComputeWorkGroupCount[0];
    const uint64_t y = x ? (n + x - 1) / x : 0;
    if (y > d->limits.maxComputeWorkGroupCount[1])
        return 0;
    *gx = (uint32_t)x;
    *gy = (uint32_t)y;
    return 1;
}
