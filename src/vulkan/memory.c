/* Buffers on VkBuffer. Device-local memory, written and read through a
 * host-visible staging buffer with copy commands; on unified memory the
 * buffer's own memory is host-visible and mapped, and copies are memcpy. */
#include <string.h>
#include <stdlib.h>
#include "vk.h"
#include "../error.h"

attn_status attn_vk_buffer_make(attn_vk_device *d, VkDeviceSize bytes, int host, attn_vk_buffer *b)
{
    memset(b, 0, sizeof *b);
    /* Whole 32-bit words: the shaders address every dtype through uint[]. */
    bytes = (bytes + 3) & ~(VkDeviceSize)3;
    const VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = d->vk.CreateBuffer(d->device, &bi, NULL, &b->buffer);
    if (r != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreateBuffer");
    VkMemoryRequirements req;
    d->vk.GetBufferMemoryRequirements(d->device, b->buffer, &req);
    const uint32_t type = host == ATTN_VK_MEM_BAR ? (uint32_t)d->mem_type_bar :
                          host ? d->mem_type_host : d->mem_type_device;
    if (!(req.memoryTypeBits & (1u << type))) {
        attn_vk_buffer_drop(d, b);
        return attn_fail(ATTN_ERR_DEVICE, "vkGetBufferMemoryRequirements: memory type %u "
                         "cannot hold a storage buffer", type);
    }
    const VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
        .memoryTypeIndex = type,
    };
    if ((r = d->vk.AllocateMemory(d->device, &ai, NULL, &b->memory)) != VK_SUCCESS ||
        (r = d->vk.BindBufferMemory(d->device, b->buffer, b->memory, 0)) != VK_SUCCESS) {
        attn_vk_buffer_drop(d, b);
        return attn_vk_fail(d, r, "vkAllocateMemory");
    }
    if ((host || d->direct) &&
        (r = d->vk.MapMemory(d->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped)) != VK_SUCCESS) {
        attn_vk_buffer_drop(d, b);
        return attn_vk_fail(d, r, "vkMapMemory");
    }
    b->bytes = bytes;
    return ATTN_OK;
}

void attn_vk_buffer_drop(attn_vk_device *d, attn_vk_buffer *b)
{
    if (b->mapped)
        d->vk.UnmapMemory(d->device, b->memory);
    if (b->buffer)
        d->vk.DestroyBuffer(d->device, b->buffer, NULL);
    if (b->memory)
        d->vk.FreeMemory(d->device, b->memory, NULL);
    memset(b, 0, sizeof *b);
}

/* Grows a buffer kept across calls to at least bytes, doubling from its
 * size (or from first), so that growing calls stay few. */
static attn_status grow(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes,
                        VkDeviceSize first, int host)
{
    if (b->buffer && b->bytes >= bytes)
        return ATTN_OK;
    VkDeviceSize want = b->bytes ? b->bytes : first;
    while (want < bytes)
        want *= 2;
    attn_vk_buffer_drop(d, b);
    return attn_vk_buffer_make(d, want, host, b);
}

attn_status attn_vk_host_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes)
{
    return grow(d, b, bytes, 4096, 1);
}

attn_status attn_vk_device_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes)
{
    return grow(d, b, bytes, 65536, 0);
}

attn_status attn_vk_bar_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes)
{
    return grow(d, b, bytes, 65536, ATTN_VK_MEM_BAR);
}

attn_status attn_vk_buf_alloc(attn_device *dev, size_t bytes, void **handle)
{
    attn_vk_device *d = dev->impl;
    const VkDeviceSize range = d->limits.maxStorageBufferRange;
    if ((VkDeviceSize)bytes > range)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_buffer_create: %zu bytes is more than "
                         "the %llu bytes maxStorageBufferRange allows on %s", bytes,
                         (unsigned long long)range, dev->info.name);
    attn_vk_buffer *b = malloc(sizeof *b);
    if (!b)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_buffer_create: out of memory");
    pthread_mutex_lock(&d->lock);
    attn_status s = attn_vk_buffer_make(d, bytes, 0, b);
    pthread_mutex_unlock(&d->lock);
    if (s != ATTN_OK) {
        free(b);
        return s;
    }
    *handle = b;
    return ATTN_OK;
}

void attn_vk_buf_free(attn_device *dev, void *handle)
{
    attn_vk_device *d = dev->impl;
    attn_vk_buffer_drop(d, handle);
    free(handle);
}

/* Staged copies in chunks of at most this many bytes. */
#define STAGING_CHUNK ((VkDeviceSize)16 << 20)

static attn_status staged(attn_vk_device *d, attn_vk_buffer *b, size_t off, void *host, size_t n,
                          int to_device)
{
    const char *what = to_device ? "attn_buffer_write" : "attn_buffer_read";
    attn_status s = attn_vk_host_reserve(d, &d->staging, n < STAGING_CHUNK ? n : STAGING_CHUNK);
    for (size_t done = 0; s == ATTN_OK && done < n;) {
        const size_t len = n - done < STAGING_CHUNK ? n - done : (size_t)STAGING_CHUNK;
        if (to_device)
            memcpy(d->staging.mapped, (const char *)host + done, len);
        if ((s = attn_vk_begin(d, what)) != ATTN_OK)
            break;
        const VkBufferCopy region = {
            .srcOffset = to_device ? 0 : off + done, .dstOffset = to_device ? off + done : 0,
            .size = len,
        };
        d->vk.CmdCopyBuffer(d->cmd, to_device ? d->staging.buffer : b->buffer,
                            to_device ? b->buffer : d->staging.buffer, 1, &region);
        if ((s = attn_vk_submit(d, what)) != ATTN_OK)
            break;
        if (!to_device)
            memcpy((char *)host + done, d->staging.mapped, len);
        done += len;
    }
    return s;
}

attn_status attn_vk_buf_write(attn_device *dev, void *h, size_t off, const void *src, size_t n)
{
    attn_vk_device *d = dev->impl;
    attn_vk_buffer *b = h;
    if (b->mapped) {
        memcpy((char *)b->mapped + off, src, n);
        return ATTN_OK;
    }
    pthread_mutex_lock(&d->lock);
    attn_status s = staged(d, b, off, (void *)(uintptr_t)src, n, 1);
    pthread_mutex_unlock(&d->lock);
    return s;
}

attn_status attn_vk_buf_read(attn_device *dev, void *h, size_t off, void *dst, size_t n)
{
    attn_vk_device *d = dev->impl;
    attn_vk_buffer *b = h;
    if (b->mapped) {
        memcpy(dst, (const char *)b->mapped + off, n);
        return ATTN_OK;
    }
    pthread_mutex_lock(&d->lock);
    attn_status s = staged(d, b, off, dst, n, 0);
    pthread_mutex_unlock(&d->lock);
    return s;
}
