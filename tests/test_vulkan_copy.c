/*
 * attn_buffer_copy on Vulkan through both of its paths (src/vulkan/copy.c):
 * the copy shader (16-byte units and 32-bit words) and the copy command,
 * within one buffer and between two, at offsets and sizes that take each
 * path and its tails (sizes not a multiple of the shader's four units per
 * invocation, several passes of its grid). Staging is forced
 * (ATTN_VULKAN_STAGING=1) so that buffers are device-local as on a
 * discrete GPU and the copy runs on the device (lavapipe maps them
 * otherwise and copies with memmove). Exit 77 without Vulkan devices.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"

#define BYTES (3u << 20)

static unsigned char *ha, *hb, *expect;

/* Copies n bytes from (src, soff) to (dst, doff) and compares the whole
 * destination with the same copy on the host. */
static void check_copy(attn_buffer *a, attn_buffer *b, int same, size_t doff, size_t soff,
                       size_t n, const char *mode)
{
    attn_buffer *dst = same ? a : b;
    unsigned char *hd = same ? ha : hb;
    CHECK_OK(attn_buffer_write(a, 0, ha, BYTES));
    CHECK_OK(attn_buffer_write(b, 0, hb, BYTES));
    CHECK_OK(attn_buffer_copy(dst, doff, a, soff, n));
    memcpy(expect, hd, BYTES);
    memmove(expect + doff, ha + soff, n);
    unsigned char *got = malloc(BYTES);
    CHECK_OK(attn_buffer_read(dst, 0, got, BYTES));
    size_t bad = BYTES;
    for (size_t i = 0; i < BYTES && bad == BYTES; i++)
        if (got[i] != expect[i])
            bad = i;
    CHECK(bad == BYTES, "%s copy %s: %zu bytes from %zu to %zu: byte %zu differs", mode,
          same ? "within a buffer" : "between buffers", n, soff, doff, bad);
    free(got);
}

static const size_t cases[][3] = {
    /* (doff, soff, n): 16-byte units, a tail of 1..3 units, words, bytes */
    { 0, 0, 2u << 20 }, { 1u << 20, 16, (1u << 20) + 48 }, { 2u << 20, 4, 300004 },
    { 8, (2u << 20) + 12, 16 * 1025 }, { 1, 3, 1001 }, { 64, 0, 4 },
};

static void per_device(const attn_device_info *info)
{
    static const char *const modes[] = { "shader", "transfer" };
    (void)info;
    attn_buffer *a = NULL, *b = NULL;
    CHECK_OK(attn_buffer_create(ctx, dev, BYTES, &a));
    CHECK_OK(attn_buffer_create(ctx, dev, BYTES, &b));
    for (int m = 0; a && b && m < 2; m++) {
        setenv("ATTN_VULKAN_COPY", modes[m], 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int same = 0; same < 2; same++)
                if (!same || cases[i][0] + cases[i][2] <= cases[i][1] ||
                    cases[i][1] + cases[i][2] <= cases[i][0])
                    check_copy(a, b, same, cases[i][0], cases[i][1], cases[i][2], modes[m]);
    }
    unsetenv("ATTN_VULKAN_COPY");
    attn_buffer_destroy(a);
    attn_buffer_destroy(b);
}

int main(void)
{
    setenv("ATTN_VULKAN_STAGING", "1", 1);
    ha = malloc(BYTES);
    hb = malloc(BYTES);
    expect = malloc(BYTES);
    for (size_t i = 0; i < BYTES; i++) {
        ha[i] = (unsigned char)(i * 7 + 1);
        hb[i] = (unsigned char)(i * 13 + 5);
    }
    const int status = devtest_main("test_vulkan_copy", DEVTEST_VULKAN, "ATTN_TEST_VULKAN_DEVICE",
                                    per_device, NULL);
    free(ha);
    free(hb);
    free(expect);
    return status;
}
