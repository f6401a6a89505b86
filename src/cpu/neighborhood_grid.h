/* Grid geometry shared by the CPU neighborhood drivers (neighborhood.c,
 * neighborhood_lanes.c): windows, dilation classes, element addresses,
 * prefetching query rows. */
#ifndef ATTN_CPU_NEIGHBORHOOD_GRID_H
#define ATTN_CPU_NEIGHBORHOOD_GRID_H

#include "../dtype_size.h"
#include "../problem.h"

/* For the functions whose only effect is a prefetch: GCC (12, -O2) judges
 * such a function to have no effect at all (__builtin_prefetch touches no
 * memory it tracks) and deletes the calls to it that it has not inlined,
 * prefetches and all. Inlined, the prefetches stay in the caller. */
#if defined(__GNUC__)
#define NB_PREFETCH_FN static inline __attribute__((always_inline))
#else
#define NB_PREFETCH_FN static inline
#endif

static inline int64_t nb_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t nb_max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t nb_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Where a non-causal window on axis a starts relative to its query away
 * from the borders (where it is not shifted inward). */
static inline int64_t nb_lead(const attn_neighborhood_problem *p, int a)
{
    return -((p->kernel[a] - 1) / 2);
}

/* Sub-grid window [*s, *e) of position pos on a class sub-grid of n tokens. */
static inline void nb_window(const attn_neighborhood_problem *p, int a, int64_t pos, int64_t n,
                             int64_t *s, int64_t *e)
{
    const int64_t k = p->kernel[a];
    if (p->causal[a]) {
        *s = nb_max64(0, pos - k + 1);
        *e = pos + 1;
    } else {
        *s = nb_min64(nb_max64(pos + nb_lead(p, a), 0), n - k);
        *e = *s + k;
    }
}

/* Tokens of class c on axis a. */
static inline int64_t nb_class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

/* Address of element (b, g0, g1, g2, h) of a 6-d view (its last axis at 0). */
static inline const char *nb_elem(const attn_view *v, int64_t b, int64_t g0, int64_t g1,
                                  int64_t g2, int64_t h)
{
    return v->base + (b * v->stride[0] + g0 * v->stride[1] + g1 * v->stride[2] +
                      g2 * v->stride[3] + h * v->stride[4]) * (int64_t)attn_dtype_bytes(v->dtype);
}

/* Where run r of a block's runs starts in view v: runs go by axis-1 key
 * row first, run r at axis-1 key u1s + r / nk0 and axis-0 key s0 + r % nk0
 * (sub-grid positions of classes c[0], c[1]), its first key at axis-2 grid
 * index x0, head hk. */
static inline const char *nb_run_start(const attn_neighborhood_problem *p, const attn_view *v,
                                       int64_t b, int64_t hk, const int64_t c[2], int64_t s0,
                                       int64_t nk0, int64_t u1s, int64_t x0, int64_t r)
{
    return nb_elem(v, b, c[0] + p->dil[0] * (s0 + r % nk0), c[1] + p->dil[1] * (u1s + r / nk0),
                   x0, hk);
}

/* Starts loading the lines of `bytes` from a, for reading or for writing,
 * into L1, or into L2 only where outer is set (the hints must be constants:
 * write and outer are, once the caller is inlined). */
NB_PREFETCH_FN void nb_prefetch_span(const char *a, int64_t bytes, int write, int outer)
{
#if defined(__GNUC__)
    for (int64_t x = 0; x < bytes; x += 64) {
        if (write && outer)
            __builtin_prefetch(a + x, 1, 1);
        else if (write)
            __builtin_prefetch(a + x, 1);
        else if (outer)
            __builtin_prefetch(a + x, 0, 1);
        else
            __builtin_prefetch(a + x);
    }
#else
    (void)a; (void)bytes; (void)write; (void)outer;
#endif
}

/* Starts loading into the cache the q row and, where out is set, the out
 * row (for writing) of head h's query (g0, g1, g2): into L1, or into L2
 * only where outer is set
 * (see nb_prefetch_rows: the rows lie H x D elements apart; queries-in-lanes
 * driver, 1 thread, 128x128, kernel 7, D 64, H 16: 57.4 -> 49.4 ms with
 * outer, H 4 the same; the keys-in-lanes driver, kernel 13: H 16 the same,
 * H 4 on two threads 4% slower with outer). */
NB_PREFETCH_FN void nb_prefetch_query(const attn_neighborhood_problem *p, int64_t b, int64_t g0,
                                     int64_t g1, int64_t g2, int64_t h, int out, int outer)
{
    nb_prefetch_span(nb_elem(&p->q, b, g0, g1, g2, h),
                     p->d * (int64_t)attn_dtype_bytes(p->q.dtype), 0, outer);
    if (out)
        nb_prefetch_span(nb_elem(&p->out, b, g0, g1, g2, h),
                         p->dv * (int64_t)attn_dtype_bytes(p->out.dtype), 1, outer);
}

/* Starts loading into the cache the q rows and, where out is set, the out
 * rows (for writing) of head h's queries (g0, g1 + dil1 i, g2 + dil2 l), i
 * < n1, l < n2: they lie H x D elements apart, and reading them on demand
 * stalls on memory. */
NB_PREFETCH_FN void nb_prefetch_queries(const attn_neighborhood_problem *p, int64_t b, int64_t h,
                                       int64_t g0, int64_t g1, int64_t n1, int64_t g2,
                                       int64_t n2, int out, int outer)
{
    for (int64_t i = 0; i < n1; i++)
        for (int64_t l = 0; l < n2; l++)
            nb_prefetch_query(p, b, g0, g1 + p->dil[1] * i, g2 + p->dil[2] * l, h, out, outer);
}

/* f32 outputs from this size on are stored past the caches. */
#define NB_STREAM_OUT_BYTES ((size_t)4 << 20)

/* Whether the drivers store out past the caches (kernels.h store_stream,
 * nb_store_o's stream): f32 rows with unit column stride of an output of
 * NB_STREAM_OUT_BYTES or more, which the caller cannot find cached anyway
 * (smaller ones may stay cached for it), every row whole 64-byte lines. A
 * plain store to a cold out line first reads it; a streaming store to a
 * part of a line writes that part alone to memory when the write-combining
 * buffer leaves, which on the lent 16-core Xeon made the queries-in-lanes
 * driver (kernel 7, H 16, rows 16 bytes past a line, stored 16 columns at
 * a time) 1.59x slower, where with whole lines it was 0.93x. */
static inline int nb_stream_out(const attn_neighborhood_problem *p)
{
    const attn_view *o = &p->out;
    if (o->dtype != ATTN_F32 || o->stride[5] != 1 || (uintptr_t)o->base % 64 || p->dv % 16)
        return 0;
    for (int a = 0; a < 5; a++)
        if (o->shape[a] > 1 && o->stride[a] % 16)
            return 0;
    const double bytes = (double)p->b * (double)(p->len[0] * p->len[1] * p->len[2]) *
                         (double)p->hq * (double)p->dv * sizeof(float);
    return bytes >= (double)NB_STREAM_OUT_BYTES;
}

/* Starts loading the n rows of `bytes` from row0, step bytes apart: the
 * keys of one run, each H x D elements from the next (its own 4 KiB page
 * when H x D x 4 = 4096), which the hardware prefetchers do not follow.
 * The drivers issue it one run ahead of their packing, into L1, or, where
 * outer is set, into L2 only: rows a power-of-two stride apart share a few
 * L1 sets, so that a run's rows prefetched into L1 evict each other before
 * they are read (queries-in-lanes driver, 1 thread, 128x128, kernel 7, D
 * 64: H 16 (4 KiB apart) 64.4 -> 54.3 ms with outer, H 4 13.6 -> 13.0; the
 * keys-in-lanes driver, kernel 13, H 4, is 1-2% faster with L1). */
NB_PREFETCH_FN void nb_prefetch_rows(const char *row0, int64_t step, int64_t n, int64_t bytes,
                                     int outer)
{
    for (int64_t j = 0; j < n; j++)
        nb_prefetch_span(row0 + j * step, bytes, 0, outer);
}

#endif
