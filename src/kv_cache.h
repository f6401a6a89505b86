/* The paged KV cache's internal layout, shared by src/kv_cache.c (which
 * owns the bookkeeping) and the decode kernels (which only read pages).
 *
 * Pool: max_pages pages of page_bytes each, in host memory (pool) for a CPU
 * cache or in a device buffer (pool_buf, offsets as below) for a GPU cache. A page holds page_size tokens of
 * every head, as planes: K of head 0..Hkv-1, then V of head 0..Hkv-1. A
 * plane is page_size rows of data (row_bytes each) followed, for Q8/Q4, by
 * page_size rows of u16 meta (see cpu/quant.h); both parts 64-byte aligned.
 *
 * Sequence state (positions are absolute, counting evicted tokens):
 *   total      position of the next token
 *   win_start  first kept position after the sinks (>= sink; = sink when
 *              nothing was evicted). Kept positions: [0, min(total, sink))
 *              and [win_start, total). Without streaming sink = 0 and
 *              win_start = 0.
 *   dropped    logical pages (pos / page_size) evicted after the sink pages:
 *              logical page lp lives at pages[lp < sink_pages ? lp : lp - dropped]. */
#ifndef ATTN_KV_CACHE_H
#define ATTN_KV_CACHE_H

#include <stdint.h>
#include "backend.h"

typedef struct attn_kv_seq {
    int      active;
    int64_t  total, win_start, dropped;
    int32_t *pages;
    int64_t  npages, cap;
} attn_kv_seq;

struct attn_kv_cache {
    attn_context *ctx;
    attn_dtype dtype;
    int64_t hkv, d, dv, ps, max_pages, max_seqs;
    int64_t sink, window;        /* window 0 = no streaming (then sink is 0 too) */
    int64_t sink_pages;          /* ceil(sink / ps) */
    int64_t k_row_bytes, v_row_bytes, k_meta, v_meta;   /* meta in u16 per row */
    int64_t k_meta_off, v_meta_off;                     /* byte offset of meta in a plane */
    int64_t k_plane, v_plane, page_bytes;
    int      device;             /* device index holding the pool */
    uint8_t *pool;               /* the pool (CPU cache), else NULL */
    struct attn_buffer *pool_buf;   /* the pool (device cache), else NULL */
    uint8_t *stage;              /* device cache: one page of host staging for append */
    int32_t *refcnt;
    int32_t *free_list;
    int64_t  nfree;
    attn_kv_seq *seqs;
};

/* A run of consecutive tokens of one head inside one page. */
typedef struct attn_kv_rows {
    const uint8_t  *data;    /* row j at data + j * row_bytes */
    const uint16_t *meta;    /* row j at meta + j * meta_per_row (Q8/Q4) */
    int64_t row_bytes, meta_per_row;
    const uint8_t  *next;       /* the rows a reader streams next (another page) */
    const uint16_t *next_meta;  /* and their meta: for prefetching only; NULL: none known */
} attn_kv_rows;

static inline int64_t attn_kv_kept(const attn_kv_cache *c, const attn_kv_seq *s)
{
    int64_t ns = s->total < c->sink ? s->total : c->sink;
    return ns + (s->total > s->win_start ? s->total - s->win_start : 0);
}

/* Absolute position of the j-th kept token. */
static inline int64_t attn_kv_pos_of(const attn_kv_cache *c, const attn_kv_seq *s, int64_t j)
{
    int64_t ns = s->total < c->sink ? s->total : c->sink;
    return j < ns ? j : s->win_start + (j - ns);
}

/* Pool index of the page holding absolute position pos. */
static inline int32_t attn_kv_page_id(const attn_kv_cache *c, const attn_kv_seq *s, int64_t pos)
{
    int64_t lp = pos / c->ps;
    return s->pages[lp < c->sink_pages ? lp : lp - s->dropped];
}

static inline uint8_t *attn_kv_page(const attn_kv_cache *c, const attn_kv_seq *s, int64_t pos)
{
    return c->pool + (size_t)attn_kv_page_id(c, s, pos) * (size_t)c->page_bytes;
}

/* Byte offset, inside a page, of head h's plane (K when kv == 0, else V). */
static inline int64_t attn_kv_plane_off(const attn_kv_cache *c, int kv, int64_t h)
{
    return kv == 0 ? h * c->k_plane : c->hkv * c->k_plane + h * c->v_plane;
}

/* Rows of head h from slot to the end of the page laid out at `page` (the
 * pool's page, or a host copy of it); returns how many tokens that run holds. */
static inline int64_t attn_kv_rows_in(const attn_kv_cache *c, const uint8_t *page, int64_t slot,
                                      int kv, int64_t h, attn_kv_rows *r)
{
    const uint8_t *plane = page + attn_kv_plane_off(c, kv, h);
    r->row_bytes = kv == 0 ? c->k_row_bytes : c->v_row_bytes;
    r->meta_per_row = kv == 0 ? c->k_meta : c->v_meta;
    r->meta = (const uint16_t *)(plane + (kv == 0 ? c->k_meta_off : c->v_meta_off)) +
              slot * r->meta_per_row;
    r->data = plane + slot * r->row_bytes;
    r->next = NULL;
    r->next_meta = NULL;
    return c->ps - slot;
}

/* Rows of head h (K when kv == 0, else V) of a CPU cache from position pos
 * to the end of its page; returns how many tokens that run holds. */
static inline int64_t attn_kv_rows_at(const attn_kv_cache *c, const attn_kv_seq *s, int64_t pos,
                                      int kv, int64_t h, attn_kv_rows *r)
{
    return attn_kv_rows_in(c, attn_kv_page(c, s, pos), pos % c->ps, kv, h, r);
}

#endif
