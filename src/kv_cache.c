/* The paged KV cache: page pool, reference counts, page tables, streaming
 * eviction, and conversion of appended tokens to the storage type. Every
 * mutating call first checks its arguments and works out that it can finish
 * (free pages, table memory); only then does it change anything, so a
 * failed call leaves the cache as it was. Layout: kv_cache.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "huge_alloc.h"
#include "kv_cache.h"
#include "tensor.h"
#include "cpu/quant.h"

#define FAIL(fn, ...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, fn ": " __VA_ARGS__)
#define KV_MAX_HEAD_DIM 4096
#define KV_MAX_PAGE_SIZE 65536

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Page-table entries a sequence with this state holds. */
static int64_t entries(const attn_kv_cache *c, int64_t total, int64_t dropped)
{
    const int64_t nl = (total + c->ps - 1) / c->ps;
    if (nl <= c->sink_pages)
        return nl;
    return c->sink_pages + max64(0, nl - c->sink_pages - dropped);
}

static void page_unref(attn_kv_cache *c, int32_t page)
{
    if (--c->refcnt[page] == 0)
        c->free_list[c->nfree++] = page;
}

static int32_t page_take(attn_kv_cache *c)
{
    int32_t p = c->free_list[--c->nfree];
    c->refcnt[p] = 1;
    return p;
}

static attn_status check_seq(const attn_kv_cache *c, int32_t seq, const char *fn, const char *name)
{
    if (seq < 0 || seq >= c->max_seqs)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s %d is outside [0, max_seqs = %lld)",
                         fn, name, seq, (long long)c->max_seqs);
    return ATTN_OK;
}

static attn_status need_active(const attn_kv_cache *c, int32_t seq, const char *fn, const char *name)
{
    attn_status s = check_seq(c, seq, fn, name);
    if (s == ATTN_OK && !c->seqs[seq].active)
        s = attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s %d is an unknown sequence (it holds no "
                      "tokens)", fn, name, seq);
    return s;
}

/* Makes room for n table entries; on failure nothing changes. */
static attn_status reserve(attn_kv_seq *s, int64_t n, const char *fn)
{
    if (n <= s->cap)
        return ATTN_OK;
    int64_t cap = max64(n, max64(8, 2 * s->cap));
    int32_t *p = realloc(s->pages, (size_t)cap * sizeof *p);
    if (!p)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "%s: out of memory for a page table", fn);
    s->pages = p;
    s->cap = cap;
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_create(attn_context *ctx, const attn_kv_cache_desc *ud,
                                          attn_kv_cache **out)
{
    static const char fn[] = "attn_kv_cache_create";
    attn_clear_error();
    if (!out) return FAIL("attn_kv_cache_create", "out is NULL");
    *out = NULL;
    if (!ctx) return FAIL("attn_kv_cache_create", "ctx is NULL");
    if (!ud) return FAIL("attn_kv_cache_create", "desc is NULL");
    /* A desc from before the device field is accepted and means device 0. */
    attn_kv_cache_desc d = ATTN_KV_CACHE_DESC_INIT;
    if (ud->size == sizeof d)
        d = *ud;
    else if (ud->size == offsetof(attn_kv_cache_desc, device))
        memcpy(&d, ud, ud->size);
    else
        return FAIL("attn_kv_cache_create", "desc->size is %zu; initialise desc with "
                    "ATTN_KV_CACHE_DESC_INIT", ud->size);
    d.size = sizeof d;
    if (d.dtype != ATTN_F32 && d.dtype != ATTN_F16 && d.dtype != ATTN_BF16 &&
        d.dtype != ATTN_Q8 && d.dtype != ATTN_Q4)
        return FAIL("attn_kv_cache_create", "desc->dtype %d is not a storage type (F32, F16, "
                    "BF16, Q8, Q4)", (int)d.dtype);
    if (d.head_dim_v == 0)
        d.head_dim_v = d.head_dim;
    if (d.num_kv_heads < 1 || d.num_kv_heads > 65536)
        return FAIL("attn_kv_cache_create", "desc->num_kv_heads is %d, expected 1..65536",
                    d.num_kv_heads);
    if (d.head_dim < 1 || d.head_dim > KV_MAX_HEAD_DIM || d.head_dim_v < 1 ||
        d.head_dim_v > KV_MAX_HEAD_DIM)
        return FAIL("attn_kv_cache_create", "head dims (%d, %d) must be in 1..%d", d.head_dim,
                    d.head_dim_v, KV_MAX_HEAD_DIM);
    if ((d.dtype == ATTN_Q8 || d.dtype == ATTN_Q4) &&
        (d.head_dim % ATTN_QBLOCK || d.head_dim_v % ATTN_QBLOCK))
        return FAIL("attn_kv_cache_create", "Q8/Q4 storage needs head dims that are multiples "
                    "of %d (got %d, %d)", ATTN_QBLOCK, d.head_dim, d.head_dim_v);
    if (d.page_size < 1 || d.page_size > KV_MAX_PAGE_SIZE)
        return FAIL("attn_kv_cache_create", "desc->page_size is %d, expected 1..%d", d.page_size,
                    KV_MAX_PAGE_SIZE);
    if (d.max_pages < 1 || d.max_pages > INT32_MAX)
        return FAIL("attn_kv_cache_create", "desc->max_pages is %lld, expected 1..%d",
                    (long long)d.max_pages, INT32_MAX);
    if (d.max_seqs < 1)
        return FAIL("attn_kv_cache_create", "desc->max_seqs is %d, expected >= 1", d.max_seqs);
    if (d.stream_sink < 0 || d.stream_window < 0)
        return FAIL("attn_kv_cache_create", "desc->stream_sink (%lld) and stream_window (%lld) "
                    "must be >= 0", (long long)d.stream_sink, (long long)d.stream_window);
    if (d.stream_sink > 0 && d.stream_window == 0)
        return FAIL("attn_kv_cache_create", "desc->stream_sink needs stream_window > 0 "
                    "(streaming mode)");
    if (d.stream_sink > INT64_MAX / 4 || d.stream_window > INT64_MAX / 4)
        return FAIL("attn_kv_cache_create", "desc->stream_sink/stream_window are too large");
    if (d.device < 0 || d.device >= attn_device_count(ctx))
        return FAIL("attn_kv_cache_create", "desc->device is %d, expected 0..%d (the context's "
                    "devices)", d.device, attn_device_count(ctx) - 1);

    attn_kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    c->ctx = ctx;
    c->dtype = d.dtype;
    c->hkv = d.num_kv_heads;
    c->d = d.head_dim;
    c->dv = d.head_dim_v;
    c->ps = d.page_size;
    c->max_pages = d.max_pages;
    c->max_seqs = d.max_seqs;
    c->window = d.stream_window;
    c->sink = d.stream_window > 0 ? d.stream_sink : 0;
    c->sink_pages = (c->sink + c->ps - 1) / c->ps;
    c->k_row_bytes = attn_kv_row_bytes(c->dtype, c->d);
    c->v_row_bytes = attn_kv_row_bytes(c->dtype, c->dv);
    c->k_meta = attn_kv_row_meta(c->dtype, c->d);
    c->v_meta = attn_kv_row_meta(c->dtype, c->dv);
    c->k_meta_off = round_up(c->ps * c->k_row_bytes, 64);
    c->v_meta_off = round_up(c->ps * c->v_row_bytes, 64);
    c->k_plane = c->k_meta_off + round_up(c->ps * c->k_meta * 2, 64);
    c->v_plane = c->v_meta_off + round_up(c->ps * c->v_meta * 2, 64);
    c->page_bytes = c->hkv * (c->k_plane + c->v_plane);   /* < 2^16 * 2^16 * 2^14 * 2: fits */
    size_t pool;
    if (__builtin_mul_overflow((size_t)c->page_bytes, (size_t)c->max_pages, &pool) ||
        pool > SIZE_MAX / 2) {
        free(c);
        return FAIL("attn_kv_cache_create", "max_pages * page bytes overflows");
    }
    c->device = d.device;
    if (c->device == 0) {
        c->pool = attn_huge_alloc(pool);
    } else {
        attn_status st = attn_buffer_create(ctx, c->device, pool, &c->pool_buf);
        c->stage = aligned_alloc(64, (size_t)c->page_bytes);
        if (c->stage)   /* whole-page uploads never copy uninitialised bytes */
            memset(c->stage, 0, (size_t)c->page_bytes);
        if (st != ATTN_OK) {
            free(c->stage);
            free(c);
            return st;
        }
    }
    c->refcnt = calloc((size_t)c->max_pages, sizeof *c->refcnt);
    c->free_list = malloc((size_t)c->max_pages * sizeof *c->free_list);
    c->seqs = calloc((size_t)c->max_seqs, sizeof *c->seqs);
    if ((!c->pool && !c->pool_buf) || (c->pool_buf && !c->stage) || !c->refcnt ||
        !c->free_list || !c->seqs) {
        attn_kv_cache_destroy(c);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "%s: cannot allocate a pool of %lld pages of "
                         "%lld bytes", fn, (long long)c->max_pages, (long long)c->page_bytes);
    }
    for (int64_t i = 0; i < c->max_pages; i++)     /* pop order: page 0 first */
        c->free_list[i] = (int32_t)(c->max_pages - 1 - i);
    c->nfree = c->max_pages;
    *out = c;
    return ATTN_OK;
}

ATTN_API void attn_kv_cache_destroy(attn_kv_cache *c)
{
    if (!c)
        return;
    if (c->seqs)
        for (int64_t i = 0; i < c->max_seqs; i++)
            free(c->seqs[i].pages);
    free(c->seqs);
    free(c->free_list);
    free(c->refcnt);
    free(c->pool);
    attn_buffer_destroy(c->pool_buf);
    free(c->stage);
    free(c);
}

/* Checks a [n, Hkv, dim] host tensor of F32/F16/BF16. */
static attn_status token_view(attn_view *v, const attn_tensor *t, const char *fn, const char *name,
                              int64_t hkv, int64_t dim)
{
    if (attn_tensor_device(t) > 0)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s must be in host memory (the cache "
                         "converts tokens on the host)", fn, name);
    attn_status s = attn_view_init(v, t, fn, name, 3, ATTN_DT_FLOAT, 0);
    if (s != ATTN_OK)
        return s;
    if (!v->base && v->shape[0] > 0)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s is not host-addressable", fn, name);
    if (v->shape[1] != hkv || v->shape[2] != dim)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s has shape [%lld,%lld,%lld], expected "
                         "[n,%lld,%lld] (the cache's heads and head dim)", fn, name,
                         (long long)v->shape[0], (long long)v->shape[1], (long long)v->shape[2],
                         (long long)hkv, (long long)dim);
    return ATTN_OK;
}

static float elem(const attn_view *v, int64_t i)
{
    switch (v->dtype) {
    case ATTN_F16:  return attn_f16_to_f32(((const uint16_t *)v->base)[i]);
    case ATTN_BF16: return attn_bf16_to_f32(((const uint16_t *)v->base)[i]);
    default:        return ((const float *)v->base)[i];
    }
}

static void put_elem(const attn_view *v, int64_t i, float x)
{
    switch (v->dtype) {
    case ATTN_F16:  ((uint16_t *)v->base)[i] = attn_f32_to_f16(x); break;
    case ATTN_BF16: ((uint16_t *)v->base)[i] = attn_f32_to_bf16(x); break;
    default:        ((float *)v->base)[i] = x; break;
    }
}

/* Converts token t of (k, v) into slot `slot` of the page laid out at `page`. */
static void write_token(const attn_kv_cache *c, uint8_t *page, int64_t slot, const attn_view *k,
                        const attn_view *v, int64_t t, float *tmp)
{
    for (int kv = 0; kv < 2; kv++) {
        const attn_view *src = kv ? v : k;
        const int64_t dim = kv ? c->dv : c->d;
        for (int64_t h = 0; h < c->hkv; h++) {
            attn_kv_rows r;
            attn_kv_rows_in(c, page, slot, kv, h, &r);
            const int64_t o = t * src->stride[0] + h * src->stride[1];
            for (int64_t e = 0; e < dim; e++)
                tmp[e] = elem(src, o + e * src->stride[2]);
            attn_kv_store_row(c->dtype, tmp, dim, (uint8_t *)r.data, (uint16_t *)r.meta);
        }
    }
}

/* Device cache: uploads slots [slot, slot + n) of every plane of the staged
 * page to pool page `page`. A run that starts at slot 0 fills a fresh page
 * (no later slot holds a kept token yet), so the whole staged page goes up in
 * one write; otherwise only the rows and their meta, two writes per plane. */
static attn_status upload_rows(attn_kv_cache *c, int32_t page, int64_t slot, int64_t n)
{
    const size_t base = (size_t)page * (size_t)c->page_bytes;
    if (slot == 0)
        return attn_buffer_write(c->pool_buf, base, c->stage, (size_t)c->page_bytes);
    for (int kv = 0; kv < 2; kv++)
        for (int64_t h = 0; h < c->hkv; h++) {
            attn_kv_rows r;
            attn_kv_rows_in(c, c->stage, slot, kv, h, &r);
            size_t off = (size_t)(r.data - c->stage);
            attn_status st = attn_buffer_write(c->pool_buf, base + off, r.data,
                                               (size_t)(n * r.row_bytes));
            if (st == ATTN_OK && r.meta_per_row > 0) {
                off = (size_t)((const uint8_t *)r.meta - c->stage);
                st = attn_buffer_write(c->pool_buf, base + off, r.meta,
                                       (size_t)(n * r.meta_per_row) * sizeof *r.meta);
            }
            if (st != ATTN_OK)
                return st;
        }
    return ATTN_OK;
}

/* Copy-on-write of one page. */
static attn_status copy_page(attn_kv_cache *c, int32_t dst, int32_t src)
{
    const size_t pb = (size_t)c->page_bytes;
    if (c->pool) {
        memcpy(c->pool + (size_t)dst * pb, c->pool + (size_t)src * pb, pb);
        return ATTN_OK;
    }
    attn_status st = attn_buffer_read(c->pool_buf, (size_t)src * pb, c->stage, pb);
    return st != ATTN_OK ? st : attn_buffer_write(c->pool_buf, (size_t)dst * pb, c->stage, pb);
}

/* Writes tokens t0.. of (k, v) at the kept positions [pos, end) of s, one
 * page at a time (a device cache uploads each page's new rows at once). */
static attn_status write_tokens(attn_kv_cache *c, attn_kv_seq *s, int64_t pos, int64_t end,
                                const attn_view *k, const attn_view *v, int64_t t0)
{
    float tmp[KV_MAX_HEAD_DIM];
    while (pos < end) {
        const int64_t slot = pos % c->ps, n = min64(end - pos, c->ps - slot);
        uint8_t *page = c->pool ? attn_kv_page(c, s, pos) : c->stage;
        for (int64_t i = 0; i < n; i++)
            write_token(c, page, slot + i, k, v, t0 + i, tmp);
        if (!c->pool) {
            attn_status st = upload_rows(c, attn_kv_page_id(c, s, pos), slot, n);
            if (st != ATTN_OK)
                return st;
        }
        pos += n;
        t0 += n;
    }
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_append(attn_kv_cache *c, int32_t seq, const attn_tensor *k,
                                          const attn_tensor *v)
{
    static const char fn[] = "attn_kv_cache_append";
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_append", "cache is NULL");
    attn_status st = check_seq(c, seq, fn, "seq");
    if (st != ATTN_OK) return st;
    attn_view kv_, vv;
    if ((st = token_view(&kv_, k, fn, "k", c->hkv, c->d)) != ATTN_OK) return st;
    if ((st = token_view(&vv, v, fn, "v", c->hkv, c->dv)) != ATTN_OK) return st;
    const int64_t n = kv_.shape[0];
    if (vv.shape[0] != n)
        return FAIL("attn_kv_cache_append", "k has %lld tokens but v has %lld", (long long)n,
                    (long long)vv.shape[0]);
    if (n > INT64_MAX / 4 - (c->seqs[seq].active ? c->seqs[seq].total : 0))
        return FAIL("attn_kv_cache_append", "%lld tokens overflow the sequence's positions",
                    (long long)n);

    attn_kv_seq *s = &c->seqs[seq];
    attn_kv_seq fresh = { 0 };
    fresh.win_start = c->sink;
    const attn_kv_seq old = s->active ? *s : fresh;
    const int64_t E = old.npages;

    /* The state after the call. */
    const int64_t total = old.total + n;
    int64_t ws = old.win_start, dr = old.dropped;
    if (c->window > 0 && total - ws > c->window) {
        ws = total - c->window;
        dr = max64(dr, max64(c->sink_pages, ws / c->ps) - c->sink_pages);
    }
    const int64_t E2 = entries(c, total, dr);
    /* Window pages evicted: old entries [sink_pages, sink_pages + rel). */
    const int64_t rel = min64(dr - old.dropped, max64(0, E - c->sink_pages));
    const int64_t fresh_pages = E2 - (E - rel);
    /* Copy-on-write of the partially filled page that receives the first token. */
    int cow = 0;
    int64_t cow_idx = -1;
    const int64_t first_written = old.total < c->sink ? old.total : max64(old.total, ws);
    if (n > 0 && old.total % c->ps && first_written / c->ps == old.total / c->ps) {
        const int64_t lp = old.total / c->ps;
        cow_idx = lp < c->sink_pages ? lp : lp - old.dropped;
        if (cow_idx >= 0 && cow_idx < E && !(cow_idx >= c->sink_pages && cow_idx < c->sink_pages + rel) &&
            c->refcnt[old.pages[cow_idx]] > 1)
            cow = 1;
        cow_idx -= (cow_idx >= c->sink_pages) ? rel : 0;   /* its index after eviction */
    }
    int64_t avail = c->nfree;
    for (int64_t i = 0; i < rel; i++)
        avail += c->refcnt[old.pages[c->sink_pages + i]] == 1;
    if (fresh_pages + cow > avail)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "%s: sequence %d needs %lld more pages but the "
                         "pool (max_pages = %lld) has %lld free", fn, seq,
                         (long long)(fresh_pages + cow), (long long)c->max_pages, (long long)avail);
    if ((st = reserve(s, max64(E2, 1), fn)) != ATTN_OK)
        return st;

    /* Commit: nothing below fails, except a device cache's upload (a device
     * error, after which the tokens' contents are undefined). */
    if (!s->active) {
        *s = (attn_kv_seq){ .active = 1, .win_start = c->sink, .pages = s->pages, .cap = s->cap };
    }
    if (rel > 0) {
        for (int64_t i = 0; i < rel; i++)
            page_unref(c, s->pages[c->sink_pages + i]);
        memmove(s->pages + c->sink_pages, s->pages + c->sink_pages + rel,
                (size_t)(E - c->sink_pages - rel) * sizeof *s->pages);
        s->npages = E - rel;
    }
    attn_status copied = ATTN_OK;
    if (cow) {
        const int32_t oldp = s->pages[cow_idx], newp = page_take(c);
        copied = copy_page(c, newp, oldp);
        page_unref(c, oldp);
        s->pages[cow_idx] = newp;
    }
    while (s->npages < E2)
        s->pages[s->npages++] = page_take(c);
    s->dropped = dr;
    s->win_start = ws;
    const int64_t first = old.total;
    s->total = total;
    if (copied != ATTN_OK)
        return copied;
    /* Kept positions among [first, total): those below the sinks, then [ws, total). */
    const int64_t sink_end = min64(total, c->sink);
    if (first < sink_end && (st = write_tokens(c, s, first, sink_end, &kv_, &vv, 0)) != ATTN_OK)
        return st;
    const int64_t w0 = max64(first, ws);
    if (w0 < total)
        st = write_tokens(c, s, w0, total, &kv_, &vv, w0 - first);
    return st;
}

ATTN_API attn_status attn_kv_cache_seq_len(const attn_kv_cache *c, int32_t seq, int64_t *len)
{
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_seq_len", "cache is NULL");
    if (!len) return FAIL("attn_kv_cache_seq_len", "len is NULL");
    attn_status st = check_seq(c, seq, "attn_kv_cache_seq_len", "seq");
    if (st != ATTN_OK) return st;
    *len = c->seqs[seq].active ? attn_kv_kept(c, &c->seqs[seq]) : 0;
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_seq_pos(const attn_kv_cache *c, int32_t seq, int64_t *pos)
{
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_seq_pos", "cache is NULL");
    if (!pos) return FAIL("attn_kv_cache_seq_pos", "pos is NULL");
    attn_status st = check_seq(c, seq, "attn_kv_cache_seq_pos", "seq");
    if (st != ATTN_OK) return st;
    *pos = c->seqs[seq].active ? c->seqs[seq].total : 0;
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_remove(attn_kv_cache *c, int32_t seq)
{
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_remove", "cache is NULL");
    attn_status st = need_active(c, seq, "attn_kv_cache_remove", "seq");
    if (st != ATTN_OK) return st;
    attn_kv_seq *s = &c->seqs[seq];
    for (int64_t i = 0; i < s->npages; i++)
        page_unref(c, s->pages[i]);
    free(s->pages);
    memset(s, 0, sizeof *s);
    return ATTN_OK;
}

/* The state holding the first new_len kept tokens of s. */
static void truncated(const attn_kv_cache *c, const attn_kv_seq *s, int64_t new_len,
                      int64_t *total, int64_t *ws, int64_t *dr)
{
    const int64_t ns = min64(s->total, c->sink);
    if (new_len <= ns) {
        *total = new_len;
        *ws = c->sink;
        *dr = 0;
    } else {
        *total = s->win_start + (new_len - ns);
        *ws = s->win_start;
        *dr = s->dropped;
    }
}

ATTN_API attn_status attn_kv_cache_truncate(attn_kv_cache *c, int32_t seq, int64_t new_len)
{
    static const char fn[] = "attn_kv_cache_truncate";
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_truncate", "cache is NULL");
    attn_status st = need_active(c, seq, fn, "seq");
    if (st != ATTN_OK) return st;
    attn_kv_seq *s = &c->seqs[seq];
    const int64_t len = attn_kv_kept(c, s);
    if (new_len < 0 || new_len > len)
        return FAIL("attn_kv_cache_truncate", "new_len %lld is outside [0, seq_len = %lld]",
                    (long long)new_len, (long long)len);
    int64_t total, ws, dr;
    truncated(c, s, new_len, &total, &ws, &dr);
    const int64_t E2 = entries(c, total, dr);
    for (int64_t i = E2; i < s->npages; i++)
        page_unref(c, s->pages[i]);
    s->npages = min64(s->npages, E2);
    s->total = total;
    s->win_start = ws;
    s->dropped = dr;
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_fork(attn_kv_cache *c, int32_t src, int32_t dst,
                                        int64_t prefix_len)
{
    static const char fn[] = "attn_kv_cache_fork";
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_fork", "cache is NULL");
    attn_status st = need_active(c, src, fn, "src_seq");
    if (st != ATTN_OK) return st;
    if ((st = check_seq(c, dst, fn, "dst_seq")) != ATTN_OK) return st;
    if (dst == src)
        return FAIL("attn_kv_cache_fork", "src_seq and dst_seq are both %d", src);
    if (c->seqs[dst].active)
        return FAIL("attn_kv_cache_fork", "dst_seq %d already holds a sequence; remove it first", dst);
    const attn_kv_seq *s = &c->seqs[src];
    const int64_t len = attn_kv_kept(c, s);
    if (prefix_len < 0 || prefix_len > len)
        return FAIL("attn_kv_cache_fork", "prefix_len %lld is outside [0, seq_len(src) = %lld]",
                    (long long)prefix_len, (long long)len);
    int64_t total, ws, dr;
    truncated(c, s, prefix_len, &total, &ws, &dr);
    const int64_t E2 = entries(c, total, dr);
    attn_kv_seq *d = &c->seqs[dst];
    if ((st = reserve(d, max64(E2, 1), fn)) != ATTN_OK)
        return st;
    for (int64_t i = 0; i < E2; i++) {
        d->pages[i] = s->pages[i];
        c->refcnt[s->pages[i]]++;
    }
    d->npages = E2;
    d->total = total;
    d->win_start = ws;
    d->dropped = dr;
    d->active = 1;
    return ATTN_OK;
}

ATTN_API attn_status attn_kv_cache_read(const attn_kv_cache *c, int32_t seq, int64_t start,
                                        const attn_tensor *k, const attn_tensor *v)
{
    static const char fn[] = "attn_kv_cache_read";
    attn_clear_error();
    if (!c) return FAIL("attn_kv_cache_read", "cache is NULL");
    attn_status st = need_active(c, seq, fn, "seq");
    if (st != ATTN_OK) return st;
    attn_view kv_, vv;
    int64_t n = -1;
    if (k) {
        if ((st = token_view(&kv_, k, fn, "k", c->hkv, c->d)) != ATTN_OK) return st;
        n = kv_.shape[0];
    }
    if (v) {
        if ((st = token_view(&vv, v, fn, "v", c->hkv, c->dv)) != ATTN_OK) return st;
        if (n >= 0 && vv.shape[0] != n)
            return FAIL("attn_kv_cache_read", "k has %lld tokens but v has %lld", (long long)n,
                        (long long)vv.shape[0]);
        n = vv.shape[0];
    }
    if (n < 0)
        return FAIL("attn_kv_cache_read", "k and v are both NULL");
    const attn_kv_seq *s = &c->seqs[seq];
    const int64_t len = attn_kv_kept(c, s);
    if (start < 0 || start > len || n > len - start)
        return FAIL("attn_kv_cache_read", "%lld tokens from %lld are not all inside [0, seq_len "
                    "= %lld)", (long long)n, (long long)start, (long long)len);
    if (k && v && attn_views_overlap(&kv_, &vv))
        return FAIL("attn_kv_cache_read", "k and v overlap in memory");
    /* A device cache is read a page at a time into private host memory (not
     * c->stage: reads may run concurrently). */
    uint8_t *copy = NULL;
    int32_t copied = -1;
    if (!c->pool && n > 0 && !(copy = malloc((size_t)c->page_bytes)))
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    float tmp[KV_MAX_HEAD_DIM];
    for (int64_t t = 0; t < n; t++) {
        const int64_t pos = attn_kv_pos_of(c, s, start + t);
        const uint8_t *page;
        if (c->pool) {
            page = attn_kv_page(c, s, pos);
        } else {
            const int32_t id = attn_kv_page_id(c, s, pos);
            if (id != copied) {
                st = attn_buffer_read(c->pool_buf, (size_t)id * (size_t)c->page_bytes, copy,
                                      (size_t)c->page_bytes);
                if (st != ATTN_OK) {
                    free(copy);
                    return st;
                }
                copied = id;
            }
            page = copy;
        }
        for (int kv = 0; kv < 2; kv++) {
            const attn_view *dstv = kv ? &vv : &kv_;
            if (!(kv ? v : k))
                continue;
            const int64_t dim = kv ? c->dv : c->d;
            for (int64_t h = 0; h < c->hkv; h++) {
                attn_kv_rows r;
                attn_kv_rows_in(c, page, pos % c->ps, kv, h, &r);
                attn_kv_load_row(c->dtype, r.data, r.meta, dim, tmp);
                const int64_t o = t * dstv->stride[0] + h * dstv->stride[1];
                for (int64_t e = 0; e < dim; e++)
                    put_elem(dstv, o + e * dstv->stride[2], tmp[e]);
            }
        }
    }
    free(copy);
    return ATTN_OK;
}

ATTN_API int64_t attn_kv_cache_free_pages(const attn_kv_cache *c)
{
    return c ? c->nfree : -1;
}

ATTN_API size_t attn_kv_cache_token_bytes(const attn_kv_cache *c)
{
    if (!c)
        return 0;
    return (size_t)(c->hkv * (c->k_row_bytes + 2 * c->k_meta + c->v_row_bytes + 2 * c->v_meta));
}
