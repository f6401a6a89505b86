/* The GPU backend tests' shared part (tests/devtest.c). */
#ifndef ATTN_TEST_DEVTEST_H
#define ATTN_TEST_DEVTEST_H

#include <stddef.h>
#include "testutil.h"

extern attn_context *ctx;       /* the context under test */
extern int dev;                 /* device index under test */

/* Device types as bits, for device_under_test. */
#define DEVTEST_OPENCL (1u << ATTN_DEVICE_OPENCL)
#define DEVTEST_VULKAN (1u << ATTN_DEVICE_VULKAN)

/* Whether device d of ctx is one to test: its type is in `types` and, when
 * the environment variable `only_env` is set, it is the device it names.
 * Fills *info either way. */
int device_under_test(int d, unsigned types, const char *only_env, attn_device_info *info);

/* The main() of a GPU test: tu_init(name); ctx made (with the Vulkan
 * validation layer on, where installed, unless ATTN_VULKAN_DEBUG says
 * otherwise, when types include Vulkan); for every device under test
 * (device_under_test(d, types, only_env)) dev set and per_device(&info)
 * run; ctx destroyed; then, if any device was tested, after() (may be
 * NULL: a pass with a context of its own). Returns the exit status: tu_finish(), 77 (skipped) without a
 * device to test, 1 when no context can be made. */
int devtest_main(const char *name, unsigned types, const char *only_env,
                 void (*per_device)(const attn_device_info *info), void (*after)(void));

/* A host tensor (for the reference) and its copy in a device buffer. */
typedef struct dtensor {
    tu_tensor   h;
    attn_buffer *buf;
    attn_tensor d;              /* the view passed to the library */
} dtensor;

#define OFF 192                 /* bytes before the tensor in its buffer */

int upload(dtensor *x);
int mk(dtensor *x, attn_dtype dt, int ndim, const int64_t *shape, int layout);
int download(dtensor *x);
void dfree(dtensor *x);
double tol_for(attn_dtype a, attn_dtype b);

typedef struct scase {
    const char *name;
    int b, sq, sk, hq, hkv, d, dv;
    attn_dtype in, out;
    int layout;
    int causal, wl, wr, sinks;
    int alibi, sink_logits, sigmoid;
    float softcap;
    int mask;             /* 0 none, 1 f32 [1,Hq], 2 f16 [B,1], 3 u8 [B,Hq] */
    int gate;             /* 0 none, else dtype + 1 */
    int bmask;            /* 0 none, else block_q (block_k = 2 * block_q) */
    int varlen;           /* 0, or 1: three sequences packed */
    int lse;
    int quick;            /* also in ATTN_TEST_QUICK runs */
} scase;

/* Every feature, every dtype, odd sizes, GQA/MQA, varlen, strided views. */
extern const scase devtest_cases[];
extern const size_t devtest_ncases;

void run_sdpa(const scase *c);
void run_merge(const char *name, int n, int64_t b, int64_t s, int64_t h, int64_t dv,
               attn_dtype in, attn_dtype outdt, int layout, int with_lse);
/* The attn_merge cases every GPU backend runs (dtypes, layouts, dv = 0). */
void run_merge_cases(void);

/* attn_decode's reference for batch entry b: ref_sdpa with q (and gate, NULL
 * for none) sliced to entry b and k/v the kept tokens of sequence seq read
 * back (dequantised) from the cache of hkv heads and head dims d/dv. */
int decode_reference(attn_kv_cache *kc, int32_t seq, int64_t hkv, int64_t d, int64_t dv,
                     const attn_sdpa_params *p, const dtensor *q, const dtensor *gate,
                     int64_t b, double *out, double *lse);

#endif
