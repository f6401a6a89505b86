/* attn_buffer_copy between buffers of one Vulkan device.
 *
 * A copy command (vkCmdCopyBuffer) may be carried out by a DMA engine that
 * is much slower than the memory; a compute shader (vulkan/copy.comp)
 * moves the bytes at the rate kernels read and write. ATTN_VULKAN_COPY=
 * shader|transfer picks one; by default the shader copies whole 32-bit
 * words of at least SHADER_MIN bytes, the copy command the rest. Both
 * buffers host-mapped (unified memory): a memmove. */
#include <stdlib.h>
#include <string.h>
#include "vk.h"
#include "profile.h"
#include "../error.h"

#define SHADER_MIN ((size_t)1 << 20)
#define COPY_WG 256

static int use_shader(size_t doff, size_t soff, size_t n)
{
    const char *env = getenv("ATTN_VULKAN_COPY");
    if ((doff | soff | n) % 4 != 0 || (env && strcmp(env, "transfer") == 0))
        return 0;
    return (env && strcmp(env, "shader") == 0) || n >= SHADER_MIN;
}

/* Records the shader copy: 16-byte units where offsets and size allow. */
static attn_status record_shader(attn_vk_device *d, VkBuffer dst, size_t doff, VkBuffer src,
                                 size_t soff, size_t n)
{
    const int vec = (doff | soff | n) % 16 == 0;
    const size_t unit = vec ? 16 : 4;
    uint32_t wg = COPY_WG;
    if (wg > d->limits.maxComputeWorkGroupInvocations)
        wg = d->limits.maxComputeWorkGroupInvocations;
    if (wg > d->limits.maxComputeWorkGroupSize[0])
        wg = d->limits.maxComputeWorkGroupSize[0];
    const int32_t spec[2] = { (int32_t)wg, vec };
    const uint32_t push[3] = { (uint32_t)(soff / unit), (uint32_t)(doff / unit),
                               (uint32_t)(n / unit) };
    uint64_t groups = ((uint64_t)push[2] + 4 * wg - 1) / (4 * wg);
    if (groups > d->limits.maxComputeWorkGroupCount[0])
        groups = d->limits.maxComputeWorkGroupCount[0];
    VkPipeline pipe;
    VkDescriptorSet set;
    const VkBuffer bufs[ATTN_VK_BINDINGS] = { src, dst, src, dst };
    attn_status s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_COPY, spec, 2, &pipe);
    if (s == ATTN_OK)
        s = attn_vk_descriptors_reset(d, 1);
    if (s == ATTN_OK)
        s = attn_vk_descriptor_set(d, bufs, &set);
    if (s != ATTN_OK)
        return s;
    attn_vk_dispatch(d, pipe, set, push, sizeof push, (uint32_t)groups, 1, 1);
    return ATTN_OK;
}

attn_status attn_vk_buf_copy(attn_device *dev, void *dst, size_t doff, void *src, size_t soff,
                             size_t n)
{
    attn_vk_device *d = dev->impl;
    attn_vk_buffer *db = dst, *sb = src;
    if (db->mapped && sb->mapped) {
        memmove((char *)db->mapped + doff, (const char *)sb->mapped + soff, n);
        return ATTN_OK;
    }
    pthread_mutex_lock(&d->lock);
    attn_vk_profile prof;
    attn_vk_prof_start(d, &prof, "attn_buffer_copy");
    attn_status s = attn_vk_begin(d, "attn_buffer_copy");
    if (s == ATTN_OK) {
        attn_vk_prof_gpu_begin(d, &prof);
        const int shader = use_shader(doff, soff, n);
        if (shader) {
            s = record_shader(d, db->buffer, doff, sb->buffer, soff, n);
        } else {
            const VkBufferCopy region = { .srcOffset = soff, .dstOffset = doff, .size = n };
            d->vk.CmdCopyBuffer(d->cmd, sb->buffer, db->buffer, 1, &region);
        }
        attn_vk_prof_gpu_mark(d, &prof, shader ? "shader" : "transfer");
        attn_vk_prof_host(&prof, "record");
        if (s == ATTN_OK)
            s = attn_vk_submit(d, "attn_buffer_copy");
        else
            d->vk.EndCommandBuffer(d->cmd);
    }
    if (s == ATTN_OK)
        attn_vk_prof_report(d, &prof);
    d->prof = NULL;
    pthread_mutex_unlock(&d->lock);
    return s;
}
