/*
 * A tiny test harness for libattn: seeded RNG, tensors with guard regions
 * and arbitrary layouts, NaN poisoning, error measurement, CHECK counters.
 *
 * Environment:
 *   ATTN_TEST_SEED=N    seed (default: from the clock); always printed
 *   ATTN_TEST_QUICK=1   smaller case list (ASan, qemu)
 *   ATTN_TEST_VERBOSE=1 one line per case
 *   ATTN_TEST_FILTER=s  run only cases whose name contains s
 *   ATTN_TEST_ISA=name  run only that kernel set (scalar, avx2, avx512, neon)
 */
#ifndef ATTN_TESTUTIL_H
#define ATTN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "attn.h"

extern long tu_passed, tu_failed;
extern int tu_quick, tu_verbose;

/* Alignment in bytes of the storage tu_tensor_alloc allocates (a power of
 * two of at least sizeof(void *)); 0, the default: malloc's, 16 bytes on
 * x86-64 Linux, so that a row of whole cache lines starts 16 bytes into
 * one. */
extern size_t tu_align;
extern uint64_t tu_seed;

/* Reads the environment, seeds the RNG and prints the seed. */
void tu_init(const char *test_name);
/* Prints "N passed, N failed" and returns the process exit status. */
int tu_finish(void);

/* Counts a pass, or a failure with a printf-style message. */
#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) {                                                              \
            tu_passed++;                                                         \
        } else {                                                                 \
            tu_failed++;                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)
#define CHECK_OK(call)                                                           \
    do {                                                                         \
        attn_status s_ = (call);                                                 \
        CHECK(s_ == ATTN_OK, "%s returned %s: %s", #call, attn_status_string(s_),   \
              attn_last_error());                                                \
    } while (0)

/* Random numbers (splitmix64 seeded xoshiro256**). */
uint64_t tu_rand_u64(void);
double   tu_uniform(void);                /* [0, 1) */
double   tu_normal(void);                 /* N(0, 1) */
int      tu_randint(int lo, int hi);      /* [lo, hi] inclusive */

/* Seconds since an arbitrary point (monotonic). */
double tu_now(void);

/* Name of a dtype ("f32", ...). */
const char *tu_dtype_name(attn_dtype dt);

/*
 * Tensor layouts. The logical view always has the given shape; the storage
 * differs:
 *   TU_CONTIG    row-major, strides all zero (the "contiguous" convention)
 *   TU_EXPLICIT  row-major, explicit strides
 *   TU_SWAP12    dims 1 and 2 swapped in storage: a [B,S,H,D] view of [B,H,S,D]
 *                storage (a [B,H,S] view of [B,S,H] storage for 3-d)
 *   TU_PADDED    row-major with a few unused elements after every row
 *                of every dim (gaps between rows)
 *   TU_SWAP12_PADDED  both
 *   TU_INNER2    innermost stride 2 (and padded)
 */
enum { TU_CONTIG = 0, TU_EXPLICIT, TU_SWAP12, TU_PADDED, TU_SWAP12_PADDED, TU_INNER2,
       TU_NLAYOUTS };
const char *tu_layout_name(int layout);

typedef struct tu_tensor {
    attn_tensor t;          /* the view passed to the library (t.data inside mem) */
    unsigned char *mem;     /* allocation: storage followed by a guard region */
    size_t storage;         /* bytes the view's storage spans (incl. gaps) */
    size_t total;           /* storage + guard */
    unsigned char *cover;   /* per byte of mem: 1 if it belongs to a view element */
} tu_tensor;

/* Allocates a host tensor; returns 0 on success. ndim <= 6. */
int  tu_tensor_alloc(tu_tensor *x, attn_dtype dt, int ndim, const int64_t *shape, int layout);
void tu_tensor_free(tu_tensor *x);
/* A view of x's storage restricted along dim to [start, start+len). The
 * result shares x's memory (mem = NULL: do not free it); strides are
 * explicit. */
attn_tensor tu_slice(const tu_tensor *x, int dim, int64_t start, int64_t len);

/* Input tensors only: makes x's strides explicit, then presents dim `dim`
 * (which must have size 1) as size n with stride 0 (a broadcast view). */
void tu_broadcast_dim(tu_tensor *x, int dim, int64_t n);

/* Fills every view element (values rounded to the dtype). */
void tu_fill_normal(tu_tensor *x, double mean, double sd);
void tu_fill_uniform(tu_tensor *x, double lo, double hi);

/* Output poisoning: every byte (gaps and guard too) gets a sentinel pattern,
 * then every view element is set to NaN. */
void tu_poison(tu_tensor *x);
/* After a call: every view element must be non-NaN (allow_nan = 0) and
 * every byte outside the view's elements must still hold the sentinel.
 * Returns the number of problems; describes the first in msg. */
long tu_check_written(const tu_tensor *x, char *msg, size_t msglen);
/* After a failed call: all bytes must be exactly as tu_poison left them. */
long tu_check_untouched(const tu_tensor *x);

/* Error of x against ref (double, contiguous row-major of x's shape):
 * max |x - ref| / max(max |ref|, tiny). Also returns max |ref| in *refmax
 * and the flat index of the worst element in *worst (either may be NULL).
 * NaN or inf in x (where ref is finite) gives +inf. */
double tu_rel_err(const tu_tensor *x, const double *ref, double *refmax, int64_t *worst);

/* lse comparison: |x - ref| / max(1, |ref|), with -inf only matching -inf
 * (else +inf). Entries where ref is NaN are skipped. */
double tu_lse_err(const tu_tensor *x, const double *ref, int64_t *worst);

#endif
