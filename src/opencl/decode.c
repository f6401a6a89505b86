/* attn_decode on OpenCL, the KV cache's page pool resident in device memory.
 *
 * Per call the host resolves each sequence's kept tokens (sinks, streaming
 * window, dropped pages) into a compact table: the sequence's lengths and
 * the pool page of each logical page it reads, plus one entry per task
 * (sequence, kv head, chunk of keys, block of query rows). The table goes
 * into a device buffer kept across calls; opencl/decode.cl then runs one
 * work-group per task (split-KV) and a second kernel merges the chunks.
 *
 * Chunks are sized so that the device gets several work-groups per compute
 * unit even for one sequence. Variant switches, read on every call so that
 * tests and one benchmark run can sweep them (ATTN_OPENCL_DECODE_...):
 *   CHUNK=N         keys per chunk (rounded to the tile; tests force many)
 *   GROUPS=N        else chunks sized for N work-groups per compute unit (8:
 *                   on an NVIDIA H200, f16 L = 32K, 0.088 ms against 0.104
 *                   with 16 and 0.126 with 32)
 *   WG=N            chunk work-group size W = keys per tile (a power of two;
 *                   default 32, one NVIDIA warp)
 *   LANES=N         lanes reading one K row (a power of two <= W; default:
 *                   one piece of a row per lane: on an NVIDIA H200 16 lanes
 *                   for f16 D = 128 beat 8 and 4)
 *   F16=bits|vload|half  f16 cache conversion (opencl/decode.cl F16CVT 0|1|2;
 *                   half needs cl_khr_fp16, else bits; default vload)
 *   ALIGNED=0|1     pieces by vector loads where every row is aligned to
 *                   them (default 1), else vloadn (which NVIDIA's driver
 *                   splits into scalar loads)
 *   VEARLY=0|1      issue a tile's V loads with its K loads, before the
 *                   softmax barriers (default 1: on an NVIDIA H200, f16,
 *                   0.088 / 0.224 ms at L = 32K / 128K against 0.098 / 0.275)
 *   COMBINE_COLS=N  output columns per combine work-group (a power of two;
 *                   default: enough work-groups for 4 per compute unit)
 *   UPLOAD, REUSE   how the table reaches the device (decode_upload.h)
 *   ARGCACHE=0|1    set only the kernel scalars that changed (default 1)
 *   FLUSH=0|1       clFlush after the chunk kernel (default 1)
 * ATTN_OPENCL_PROFILE=1 prints each call's host steps and device times
 * (profile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "arg_cache.h"
#include "decode_upload.h"
#include "profile.h"
#include "../error.h"
#include "../gpu_decode_flags.h"
#include "../kv_cache.h"

#define SEQW 10          /* longs per sequence in the table (opencl/decode.cl) */
#define W_DEFAULT 32
#define MWG_MAX 128      /* combine work-group */
#define ROW_REGS 160     /* floats of query, O and partials a work-item keeps for its rows */


/* The two kernels of one compiled variant, created once: creating kernels
 * on every call costs more than a short decode step on a GPU. */
typedef struct dec_kernels {
    struct dec_kernels *next;
    cl_program prog;
    cl_kernel  chunk, combine;
    size_t     chunk_max;       /* CL_KERNEL_WORK_GROUP_SIZE of chunk */
    attn_cl_arg_cache chunk_args, combine_args;   /* their scalars set last */
} dec_kernels;

typedef struct dec_knobs {
    int64_t chunk;     /* 0: sized from the device */
    int groups;        /* GROUPS=N: work-groups per compute unit the chunks aim at */
    int wg, lanes, cols, upload, reuse;
    int argcache;      /* ARGCACHE=0|1: set only the scalars that changed */
    int flush;         /* FLUSH=0|1: clFlush after the chunk kernel */
    int f16cvt;        /* F16=bits|vload|half (opencl/decode.cl F16CVT 0|1|2) */
    int aligned;       /* ALIGNED=0: vloadn even where rows are aligned */
    int vearly;        /* VEARLY=0|1: a tile's V loads issued with its K loads */
} dec_knobs;

static int env_int(const char *name, int dflt)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

static void read_knobs(dec_knobs *out)
{
    dec_knobs k;
    memset(&k, 0, sizeof k);   /* padding too: the struct is compared whole */
    const char *e = getenv("ATTN_OPENCL_DECODE_CHUNK");
    k.chunk = e ? atoll(e) : 0;
    k.groups = env_int("ATTN_OPENCL_DECODE_GROUPS", 8);
    if (k.groups < 1)
        k.groups = 8;
    k.wg = env_int("ATTN_OPENCL_DECODE_WG", W_DEFAULT);
    k.lanes = env_int("ATTN_OPENCL_DECODE_LANES", 0);
    k.aligned = env_int("ATTN_OPENCL_DECODE_ALIGNED", 1);
    k.vearly = env_int("ATTN_OPENCL_DECODE_VEARLY", 1);
    k.cols = env_int("ATTN_OPENCL_DECODE_COMBINE_COLS", 0);
    e = getenv("ATTN_OPENCL_DECODE_UPLOAD");
    k.upload = e && !strcmp(e, "pageable") ? ATTN_CL_UPLOAD_PAGEABLE : ATTN_CL_UPLOAD_PINNED;
    k.reuse = env_int("ATTN_OPENCL_DECODE_REUSE", 1);
    k.argcache = env_int("ATTN_OPENCL_DECODE_ARGCACHE", 1);
    k.flush = env_int("ATTN_OPENCL_DECODE_FLUSH", 1);
    e = getenv("ATTN_OPENCL_DECODE_F16");
    k.f16cvt = !e ? 1 : !strcmp(e, "bits") ? 0 : !strcmp(e, "half") ? 2 : 1;
    memcpy(out, &k, sizeof k);
}

/* w: chunk work-group = keys per tile; lp: lanes per K row; kcw, vcw:
 * elements per K / V piece; vl: lanes per V row (w / vl key slots);
 * aligned: every K and V piece starts at a multiple of its bytes; rb: query
 * rows per task; mwg: combine work-group; cols: output columns per combine
 * work-group (<= mwg). */
typedef struct dec_cfg { int w, lp, kcw, vcw, vl, rb, mwg, cols, f16cvt, aligned, vearly; } dec_cfg;

/* What a configuration was chosen for: a decode loop asks for the same one
 * every step and finds it here, without the options string and program
 * cache look-up. Compared whole (zeroed first). */
typedef struct dec_key {
    int64_t d, dv, nr, rows;
    int dtype;
    dec_knobs kn;
} dec_key;

struct attn_cl_decode_state {
    attn_cl_upload table;
    cl_mem part;
    size_t part_bytes;
    dec_kernels *kernels;
    dec_key last_key;
    dec_cfg last_cfg;
    dec_kernels *last_k;       /* NULL: none yet */
};

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* opencl/decode.cl's local arrays (RED_N and the key locations) */
static size_t local_bytes(const dec_cfg *c, int64_t d, int64_t dv, attn_dtype dtype)
{
    const int64_t pst = (int64_t)c->lp * c->rb + 1;
    const int64_t ks = c->w / c->vl;
    const int64_t red = max64(c->w * pst, ks * c->rb * dv);
    const int nloc = dtype == ATTN_Q8 || dtype == ATTN_Q4 ? 4 : 2;
    return (size_t)(c->rb * d + red + 2 * c->w * c->rb) * sizeof(float) +
           (size_t)(2 * nloc * c->w) * sizeof(cl_long);
}

static int64_t pow2_at_least(int64_t x)
{
    int64_t p = 1;
    while (p < x)
        p *= 2;
    return p;
}

/* Bytes a cache element takes in a row's data (Q4: a piece of n elements
 * loads n bytes, see opencl/decode.cl). */
static int64_t piece_elem_bytes(attn_dtype dtype)
{
    return dtype == ATTN_F32 ? 4 : dtype == ATTN_Q8 || dtype == ATTN_Q4 ? 1 : 2;
}

/* The widest piece of at most 16 bytes (16 elements for Q8/Q4, whose pieces
 * stay inside a half block) that divides the head dim. */
static int piece_width(attn_dtype dtype, int64_t dim, int64_t want)
{
    int64_t n = 16 / piece_elem_bytes(dtype);
    while (n > want || dim % n)
        n /= 2;
    return (int)n;
}

/* Work-group W (a power of two within the device's and the kernel's limits),
 * pieces, lanes per K row (one piece each by default) and query rows per
 * task (the smallest power of two covering nr, as registers allow). nr:
 * query rows sharing a kv head. */
static int choose_cfg(const attn_cl_device *d, const dec_knobs *kn, const attn_kv_cache *kc,
                      int64_t dd, int64_t dv, int64_t nr, size_t kernel_max, dec_cfg *c)
{
    const attn_dtype dtype = kc->dtype;
    size_t w = 1;
    while (w * 2 <= (size_t)kn->wg && w * 2 <= 1024)
        w *= 2;
    while (w > 1 && (w > d->max_wg || w > d->max_wi[0] || w > kernel_max))
        w /= 2;
    c->w = (int)w;
    c->mwg = MWG_MAX;
    while (c->mwg > 1 && ((size_t)c->mwg > d->max_wg || (size_t)c->mwg > d->max_wi[0]))
        c->mwg /= 2;
    c->kcw = piece_width(dtype, dd, 16);
    c->vcw = piece_width(dtype, dv, 8);
    const int64_t nkc = dd / c->kcw;
    int64_t lp = kn->lanes > 0 ? pow2_at_least(kn->lanes) : pow2_at_least(nkc);
    c->lp = (int)(lp > c->w ? c->w : lp);
    const int64_t q_per_row = (nkc + c->lp - 1) / c->lp * c->kcw;
    const int64_t nvc = dv / c->vcw, vl = min64(c->w, pow2_at_least(nvc));
    c->vl = (int)vl;
    const int64_t o_per_row = (nvc + vl - 1) / vl * c->vcw;
    int rb = 1;
    while (rb < nr && rb * 2 * (q_per_row + o_per_row + c->lp) <= ROW_REGS)
        rb *= 2;
    c->rb = rb;
    const size_t budget = d->local_mem > 512 ? (size_t)d->local_mem - 256 : 0;
    while (local_bytes(c, dd, dv, dtype) > budget) {
        if (c->rb > 1)
            c->rb /= 2;
        else
            return 0;
    }
    c->f16cvt = dtype != ATTN_F16 || (kn->f16cvt == 2 && !d->fp16) ? 0 : kn->f16cvt;
    /* the pool buffer starts aligned; a row's pieces are at multiples of
     * their bytes from the row's start (Q4: n nibble bytes for n elements) */
    const int64_t ak = c->kcw * piece_elem_bytes(dtype), av = c->vcw * piece_elem_bytes(dtype);
    const int64_t v0 = attn_kv_plane_off(kc, 1, 0);
    c->aligned = kc->page_bytes % ak == 0 && kc->k_plane % ak == 0 && kc->k_row_bytes % ak == 0 &&
                 kc->page_bytes % av == 0 && v0 % av == 0 && kc->v_plane % av == 0 &&
                 kc->v_row_bytes % av == 0 && kn->aligned;
    c->vearly = kn->vearly != 0;
    return 1;
}

/* Output columns per combine work-group: a knob's power of two, or halved
 * from mwg (not below 8) while more than twice dv or until the rows give 4
 * work-groups per compute unit: a long sequence's hundred chunks are then
 * summed by many work-items at once. */
static int combine_cols(const attn_device *dev, const dec_knobs *kn, const dec_cfg *c,
                        int64_t rows, int64_t dv)
{
    int cols = c->mwg;
    if (kn->cols > 0) {
        while (cols > 1 && cols > kn->cols)
            cols /= 2;
        return cols;
    }
    const int64_t want = 4 * max64(1, dev->info.compute_units);
    while (cols > 8 && (cols >= 2 * dv || rows * ((dv + cols - 1) / cols) < want))
        cols /= 2;
    return cols;
}

static void kernels_free(const attn_cl_api *cl, dec_kernels *k)
{
    if (k->chunk)
        cl->ReleaseKernel(k->chunk);
    if (k->combine)
        cl->ReleaseKernel(k->combine);
    free(k);
}

static attn_status get_kernels(attn_cl_device *d, const attn_decode_problem *p, const dec_cfg *c,
                               dec_kernels **out)
{
    char opts[384];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DD=%lld -DDV=%lld -DSDT=%d -DW=%d -DLP=%d "
             "-DKCW=%d -DVCW=%d -DVL=%d -DRB=%d -DMWG=%d -DCCB=%d -DF16CVT=%d -DALIGNED=%d -DVEARLY=%d%s",
             (long long)p->d, (long long)p->dv, (int)p->cache->dtype, c->w, c->lp, c->kcw,
             c->vcw, c->vl, c->rb, c->mwg, c->cols, c->f16cvt, c->aligned, c->vearly,
             d->is_cpu ? "" : " -DATTN_UNROLL");
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_DECODE, opts, &prog);
    if (s != ATTN_OK)
        return s;
    for (dec_kernels *k = d->decode->kernels; k; k = k->next)
        if (k->prog == prog) {
            *out = k;
            return ATTN_OK;
        }
    dec_kernels *k = calloc(1, sizeof *k);
    if (!k)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: out of memory");
    cl_int err;
    k->prog = prog;
    k->chunk = d->cl->CreateKernel(prog, "attn_decode_chunk", &err);
    if (k->chunk && err == CL_SUCCESS)
        k->combine = d->cl->CreateKernel(prog, "attn_decode_combine", &err);
    if (!k->chunk || !k->combine || err != CL_SUCCESS) {
        kernels_free(d->cl, k);
        return attn_cl_fail(err, "attn_decode: clCreateKernel");
    }
    err = d->cl->GetKernelWorkGroupInfo(k->chunk, d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                        sizeof k->chunk_max, &k->chunk_max, NULL);
    if (err != CL_SUCCESS) {
        kernels_free(d->cl, k);
        return attn_cl_fail(err, "attn_decode: clGetKernelWorkGroupInfo");
    }
    k->next = d->decode->kernels;
    d->decode->kernels = k;
    *out = k;
    return ATTN_OK;
}

/* Grows a kept device buffer to at least n bytes. */
static attn_status ensure(attn_cl_device *d, cl_mem *m, size_t *have, size_t n, const char *what)
{
    if (*m && *have >= n)
        return ATTN_OK;
    if (*m)
        d->cl->ReleaseMemObject(*m);
    *have = 0;
    size_t want = n < 4096 ? 4096 : n + n / 2;
    cl_int err;
    *m = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE, want, NULL, &err);
    if (!*m || err != CL_SUCCESS) {
        *m = NULL;
        return attn_cl_fail(err, what);
    }
    *have = want;
    return ATTN_OK;
}

/* The host side of the tables (see opencl/decode.cl). */
typedef struct dec_tables {
    void   *host;
    size_t  bytes;
    int64_t ntasks, chunk, nrb;
    int64_t task_off, page_off, head_off;   /* in ints, ints, floats */
} dec_tables;

/* What one sequence reads: its kept keys, the scanned range (sinks [0, ns)
 * then [lo, L), as the CPU driver scans), and the logical pages it touches
 * (sink pages [0, sp), window pages [fw, last]). */
typedef struct dec_seq {
    int64_t L, lo, ns, nkeys, sp, fw, last;
} dec_seq;

static dec_seq seq_ranges(const attn_decode_problem *p, const attn_kv_seq *s)
{
    const attn_kv_cache *kc = p->cache;
    dec_seq r;
    r.L = attn_kv_kept(kc, s);
    r.lo = p->window_left >= 0 ? max64(0, r.L - p->sq - p->window_left) : 0;
    r.ns = min64(p->sink_tokens, r.lo);
    r.nkeys = r.ns + r.L - r.lo;
    r.sp = kc->sink_pages;
    r.fw = max64(r.sp, s->win_start / kc->ps);
    r.last = s->total > 0 ? (s->total - 1) / kc->ps : -1;
    return r;
}

static attn_status build_tables(const attn_device *dev, attn_cl_device *d,
                                const attn_decode_problem *p, const dec_cfg *c,
                                const dec_knobs *kn, dec_tables *t)
{
    const attn_kv_cache *kc = p->cache;
    const int64_t nr = p->sq * (p->hq / p->hkv);
    t->nrb = (nr + c->rb - 1) / c->rb;
    int64_t work = 0, npages = 0;
    for (int64_t b = 0; b < p->b; b++) {
        const dec_seq r = seq_ranges(p, &kc->seqs[p->seqs[b]]);
        work += r.nkeys;
        npages += r.sp + max64(0, r.last - r.fw + 1);
    }
    /* several work-groups per compute unit; at least two tiles a chunk */
    const int64_t target = kn->groups * (int64_t)max64(1, dev->info.compute_units);
    int64_t chunk = max64(2 * c->w, (work * p->hkv * t->nrb + target - 1) / target);
    if (kn->chunk > 0)
        chunk = kn->chunk;
    t->chunk = chunk = (chunk + c->w - 1) / c->w * c->w;

    int64_t ntasks = 0;
    for (int64_t b = 0; b < p->b; b++) {
        const int64_t nkeys = seq_ranges(p, &kc->seqs[p->seqs[b]]).nkeys;
        ntasks += p->hkv * t->nrb * ((nkeys + chunk - 1) / chunk);
    }
    t->ntasks = ntasks;
    const size_t longs = (size_t)p->b * SEQW, ints = 4 * (size_t)ntasks + (size_t)npages;
    t->bytes = longs * sizeof(cl_long) + ints * sizeof(cl_int) + 2 * (size_t)p->hq * sizeof(float);
    attn_status s = attn_cl_upload_host(d, &d->decode->table, kn->upload, t->bytes, &t->host);
    if (s != ATTN_OK)
        return s;
    cl_long *seqtab = t->host;
    cl_int *itab = (cl_int *)(seqtab + longs);
    float *ftab = (float *)(itab + ints);
    t->task_off = 0;
    t->page_off = 4 * ntasks;
    t->head_off = (int64_t)(longs * 2 + ints);   /* floats from the buffer's start */

    int64_t task = 0, pg = 0;
    for (int64_t b = 0; b < p->b; b++) {
        const attn_kv_seq *s = &kc->seqs[p->seqs[b]];
        const dec_seq r = seq_ranges(p, s);
        const int64_t nch = (r.nkeys + chunk - 1) / chunk;
        cl_long *st = seqtab + SEQW * b;
        st[0] = r.L;
        st[1] = r.ns;
        st[2] = r.lo;
        st[3] = min64(s->total, kc->sink);
        st[4] = s->win_start;
        st[5] = r.sp;
        st[6] = r.fw;
        st[7] = pg;
        st[8] = task;
        st[9] = nch;
        for (int64_t lp = 0; lp < r.sp; lp++)
            itab[t->page_off + pg++] = lp * kc->ps < s->total ? s->pages[lp] : 0;
        for (int64_t lp = r.fw; lp <= r.last; lp++)
            itab[t->page_off + pg++] = s->pages[lp - s->dropped];
        for (int64_t hk = 0; hk < p->hkv; hk++)
            for (int64_t ch = 0; ch < nch; ch++)
                for (int64_t rb = 0; rb < t->nrb; rb++, task++) {
                    cl_int *e = itab + t->task_off + 4 * task;
                    e[0] = (cl_int)b;
                    e[1] = (cl_int)hk;
                    e[2] = (cl_int)ch;
                    e[3] = (cl_int)rb;
                }
    }
    for (int64_t h = 0; h < p->hq; h++) {
        ftab[h] = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
        ftab[p->hq + h] = p->sink_logits ? p->sink_logits[h] : 0.0f;
    }
    /* the int and float regions are addressed from the buffer's start */
    t->task_off += (int64_t)longs * 2;
    t->page_off += (int64_t)longs * 2;
    return ATTN_OK;
}

/* Sets the arguments and enqueues the chunk and combine kernels. */
static attn_status launch(attn_cl_device *d, const attn_decode_problem *p, const dec_cfg *c,
                          const dec_knobs *kn, const dec_tables *t, dec_kernels *k,
                          attn_cl_prof *prof)
{
    const attn_kv_cache *kc = p->cache;
    struct attn_cl_decode_state *ds = d->decode;
    const int64_t ml_off = t->ntasks * c->rb * p->dv;
    const int flags = attn_gpu_decode_flags(p);
    const int group = (int)(p->hq / p->hkv);

    attn_cl_cargs a = { { d->cl, k->chunk, 0, CL_SUCCESS }, kn->argcache ? &k->chunk_args : NULL };
    carg_mem(&a, attn_cl_mem(kc->pool_buf));
    carg_mem(&a, ds->table.dev);
    carg_mem(&a, ds->table.dev);
    carg_long(&a, t->task_off);
    carg_long(&a, t->page_off);
    carg_mem(&a, ds->table.dev);
    carg_long(&a, t->head_off);
    carg_mem(&a, attn_cl_mem(p->q.buffer));
    carg_int(&a, (int)p->q.dtype);
    carg_long(&a, (int64_t)(p->q.offset / attn_dtype_size(p->q.dtype)));
    for (int i = 0; i < 4; i++)
        carg_long(&a, p->q.stride[i]);
    carg_mem(&a, ds->part);
    carg_long(&a, ml_off);
    carg_int(&a, flags);
    carg_int(&a, (int)p->sq);
    carg_int(&a, (int)p->hq);
    carg_int(&a, group);
    carg_long(&a, t->chunk);
    carg_float(&a, p->scale);
    carg_float(&a, p->softcap);
    carg_float(&a, p->sigmoid_bias);
    carg_long(&a, p->window_left);
    carg_long(&a, p->window_right);
    carg_long(&a, p->sink_tokens);
    carg_long(&a, kc->ps);
    carg_long(&a, kc->page_bytes);
    carg_long(&a, kc->k_plane);
    carg_long(&a, attn_kv_plane_off(kc, 1, 0));
    carg_long(&a, kc->v_plane);
    carg_long(&a, kc->k_row_bytes);
    carg_long(&a, kc->v_row_bytes);
    carg_long(&a, kc->k_meta_off);
    carg_long(&a, kc->v_meta_off);
    carg_long(&a, kc->k_meta * 2);
    carg_long(&a, kc->v_meta * 2);
    if (a.a.err != CL_SUCCESS)
        return attn_cl_fail(a.a.err, "attn_decode: clSetKernelArg");
    const size_t local = (size_t)c->w, global = (size_t)t->ntasks * local;
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k->chunk, 1, NULL, &global, &local, 0,
                                             NULL, attn_cl_prof_event(prof, "chunk"));
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_decode: clEnqueueNDRangeKernel (chunks)");
    /* the device starts on the table and the chunks while the host sets
     * the combine's arguments */
    if (kn->flush && (err = d->cl->Flush(d->queue)) != CL_SUCCESS)
        return attn_cl_fail(err, "attn_decode: clFlush");
    attn_cl_prof_step(prof, "chunk");

    attn_cl_cargs m = { { d->cl, k->combine, 0, CL_SUCCESS },
                        kn->argcache ? &k->combine_args : NULL };
    carg_mem(&m, ds->table.dev);
    carg_mem(&m, ds->part);
    carg_long(&m, ml_off);
    carg_int(&m, flags);
    carg_int(&m, (int)p->sq);
    carg_int(&m, (int)p->hq);
    carg_int(&m, group);
    carg_int(&m, (int)t->nrb);
    carg_mem(&m, attn_cl_mem(p->out.buffer));
    carg_int(&m, (int)p->out.dtype);
    carg_long(&m, (int64_t)(p->out.offset / attn_dtype_size(p->out.dtype)));
    for (int i = 0; i < 4; i++)
        carg_long(&m, p->out.stride[i]);
    if (p->has_gate) {
        carg_mem(&m, attn_cl_mem(p->gate.buffer));
        carg_int(&m, (int)p->gate.dtype);
    } else {
        carg_mem(&m, NULL);
        carg_int(&m, 0);
    }
    carg_long(&m, p->has_gate ? (int64_t)(p->gate.offset / attn_dtype_size(p->gate.dtype)) : 0);
    for (int i = 0; i < 4; i++)
        carg_long(&m, p->has_gate ? p->gate.stride[i] : 0);
    carg_view(&m, &p->lse, p->has_lse, 3);
    if (m.a.err != CL_SUCCESS)
        return attn_cl_fail(m.a.err, "attn_decode: clSetKernelArg (combine)");
    const size_t col_blocks = (size_t)((p->dv + c->cols - 1) / c->cols);
    const size_t ml = (size_t)c->mwg, gl = (size_t)(p->b * p->sq * p->hq) * col_blocks * ml;
    err = d->cl->EnqueueNDRangeKernel(d->queue, k->combine, 1, NULL, &gl, &ml, 0, NULL,
                                      attn_cl_prof_event(prof, "combine"));
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_decode: clEnqueueNDRangeKernel (combine)");
    attn_cl_prof_step(prof, "combine");
    return ATTN_OK;
}

static attn_status run(attn_device *dev, attn_cl_device *d, const attn_decode_problem *p,
                       attn_cl_prof *prof)
{
    struct attn_cl_decode_state *ds = d->decode;
    dec_key key;
    memset(&key, 0, sizeof key);
    key.d = p->d;
    key.dv = p->dv;
    key.nr = p->sq * (p->hq / p->hkv);
    key.rows = p->b * p->sq * p->hq;
    key.dtype = (int)p->cache->dtype;
    read_knobs(&key.kn);
    const dec_knobs kn = key.kn;
    const int64_t nr = key.nr;
    dec_kernels *k = NULL;
    dec_cfg c;
    size_t kernel_max = (size_t)-1;
    attn_status s = ATTN_OK;
    const int same = ds->last_k && !memcmp(&key, &ds->last_key, sizeof key);
    if (same) {
        c = ds->last_cfg;
        k = ds->last_k;
    }
    /* the largest work-group the device allows; smaller if the compiled
     * kernel cannot run that many work-items (registers) */
    for (int tries = 0; !same; tries++) {
        if (tries > 8 || !choose_cfg(d, &kn, p->cache, p->d, p->dv, nr, kernel_max, &c))
            return attn_fail(ATTN_ERR_DEVICE, "attn_decode: no work-group shape fits %s (local "
                             "memory %llu bytes, max work-group %zu, kernel max %zu) for head "
                             "dims %lld/%lld", dev->info.name, (unsigned long long)d->local_mem,
                             d->max_wg, kernel_max, (long long)p->d, (long long)p->dv);
        c.cols = combine_cols(dev, &kn, &c, p->b * p->sq * p->hq, p->dv);
        s = get_kernels(d, p, &c, &k);
        if (s != ATTN_OK || (size_t)c.w <= k->chunk_max)
            break;
        kernel_max = k->chunk_max;
    }
    if (s == ATTN_OK && !same) {
        memcpy(&ds->last_key, &key, sizeof key);
        ds->last_cfg = c;
        ds->last_k = k;
    }
    attn_cl_prof_step(prof, "setup");
    dec_tables t = { 0 };
    if (s == ATTN_OK)
        s = build_tables(dev, d, p, &c, &kn, &t);
    attn_cl_prof_step(prof, "table");
    int sent = 0;
    if (s == ATTN_OK)
        s = attn_cl_upload_send(d, &ds->table, t.host, t.bytes, kn.reuse,
                                attn_cl_prof_event(prof, "upload"), &sent);
    attn_cl_prof_step(prof, sent ? "upload" : "reused");
    if (s == ATTN_OK)
        s = ensure(d, &ds->part, &ds->part_bytes,
                   (size_t)t.ntasks * (size_t)c.rb * (size_t)(p->dv + 2) * sizeof(float),
                   "attn_decode: clCreateBuffer (partials)");
    if (s == ATTN_OK)
        s = launch(d, p, &c, &kn, &t, k, prof);
    /* also on failure: a pending table upload reads the host table */
    const cl_int err = d->cl->Finish(d->queue);
    attn_cl_prof_step(prof, "finish");
    if (s == ATTN_OK && err != CL_SUCCESS)
        s = attn_cl_fail(err, "attn_decode: clFinish");
    if (s != ATTN_OK)
        ds->table.held_len = 0;
    return s;
}

attn_status attn_cl_decode(attn_device *dev, const attn_decode_problem *p)
{
    attn_cl_device *d = dev->impl;
    pthread_mutex_lock(&d->lock);
    attn_status s = ATTN_OK;
    if (!d->decode && !(d->decode = calloc(1, sizeof *d->decode)))
        s = attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: out of memory");
    attn_cl_prof prof;
    attn_cl_prof_begin(&prof, d->cl);
    if (s == ATTN_OK)
        s = run(dev, d, p, &prof);
    attn_cl_prof_end(&prof, "decode", s == ATTN_OK);
    pthread_mutex_unlock(&d->lock);
    return s;
}

void attn_cl_decode_free(attn_cl_device *d)
{
    struct attn_cl_decode_state *ds = d->decode;
    if (!ds)
        return;
    attn_cl_upload_free(d, &ds->table);
    if (ds->part)
        d->cl->ReleaseMemObject(ds->part);
    while (ds->kernels) {
        dec_kernels *next = ds->kernels->next;
        kernels_free(d->cl, ds->kernels);
        ds->kernels = next;
    }
    free(ds);
    d->decode = NULL;
}
