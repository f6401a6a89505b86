/* attn_decode on Vulkan with the paged KV cache in a buffer of the device.
 *
 * The host resolves what the GPU cannot see (page tables, sinks, streaming,
 * the split into chunks) into one table of 32-bit words, copied into a
 * device buffer kept across calls; vulkan/decode.comp then runs one
 * workgroup per (sequence, KV head, chunk) writing unnormalised partials to
 * a scratch buffer (also kept), and a second dispatch (the same shader in
 * another pipeline: another workgroup size) merges the chunks.
 * Both dispatches and the table's upload are one submission
 * (ATTN_VULKAN_PROFILE=1 times each step: src/vulkan/profile.h).
 *
 * Table layout (words; vulkan/decode.comp reads the same):
 *   header      H_* below
 *   aux         ALiBi slopes [Hq], sink logits [Hq] (f32)
 *   sequences   S_WORDS per batch entry
 *   chunks      the sequence b of each; workgroup g takes chunk g / nrb
 *               and its row block g % nrb. A sequence's chunks go by KV
 *               head, then by H_CHUNK scanned keys (its last one shorter)
 *   page lists  per batch entry: pool pages of its logical pages
 *               [0, sink_pages) then [base, last]; key j lives at
 *               position pos(j) (kv_cache.h), logical page pos / page_size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vk.h"
#include "args.h"
#include "profile.h"
#include "../error.h"
#include "../gpu_decode_flags.h"
#include "../kv_cache.h"

enum { H_B = 0, H_GROUPS = 1, H_HQ = 2, H_GROUP = 3, H_SQ = 4, H_FLAGS = 5, H_SCALE = 6,
       H_SOFTCAP = 7, H_SIGBIAS = 8, H_WL = 9, H_WR = 10, H_SINKS = 11, H_PAGE = 12,
       H_KPLANE = 13, H_VPLANE = 14, H_KMETA_OFF = 15, H_VMETA_OFF = 16, H_KROW = 17,
       H_VROW = 18, H_KMETA = 19, H_VMETA = 20, H_SINK_PAGES = 21, H_HKV = 22, H_QDT = 23,
       H_ODT = 24, H_GDT = 25, H_Q = 26, H_O = 31, H_G = 36, H_L = 41, H_SEQ = 45,
       H_TASK = 46, H_ML = 47, H_NR = 48, H_NRB = 49, H_CHUNK = 50,
       H_AUX = 51 };
enum { S_L = 0, S_NS = 1, S_LO = 2, S_NKEYS = 3, S_NSK = 4, S_WSTART = 5, S_BASE = 6,
       S_PTAB = 7, S_TSTART = 8, S_NCH = 9, S_WORDS = 10 };

#define MIN_CHUNK 64         /* scanned keys per chunk, at least: two tiles of 32 */
#define GROUPS_PER_CU 8      /* chunks a call aims for per compute unit (split-KV; H200, f16
                                L = 32K / 128K: 0.099 / 0.283 ms with 8, 0.122 / 0.331 with 16,
                                0.123 / 0.382 with 4) */
#define TARGET_GROUPS 2048   /* ... where the device does not tell its compute units */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The integer in environment variable `name` when it is set and within
 * [lo, hi], else 0. */
static int env_int(const char *name, int lo, int hi)
{
    const char *env = getenv(name);
    const int v = env ? atoi(env) : 0;
    return v >= lo && v <= hi ? v : 0;
}

/* Workgroup shape (the specialisation constants of vulkan/decode.comp). */
typedef struct dec_cfg {
    int wg;                 /* invocations = keys per tile */
    int nr, nrt, nrb;       /* query rows per workgroup; of a KV head; blocks of nr */
    int vi, kb;             /* keys whose V loads go together; K pieces loaded together */
    int vearly;             /* V loads issued with the K loads */
    int vec;                /* wide loads: rows of whole 16-byte pieces */
    int cwg, cs;            /* combine: workgroup; invocations per output element */
    int64_t target;         /* chunks a call aims for */
    int subgroup;           /* tile maxima by subgroup arithmetic */
    int rows_layout;        /* 0 keys, 1 rows (vulkan/decode.comp) */
    int lp, vl;             /* rows: invocations per K row, per V row */
} dec_cfg;

/* Shared bytes of the shader (its declarations): the block's query rows
 * (vec4s, rows padded to 8 elements) and their sums per block of 32, the
 * tile maxima / sums, the weights and V locations by tile parity, the
 * combine's three floats; rows layout: the K locations, the partial dot
 * products (or the key slots' O). */
static size_t shared_bytes(const dec_cfg *c, int64_t d, int64_t dv)
{
    const size_t qv = (size_t)(d + 7) / 8 * 2, wg = (size_t)c->wg, nr = (size_t)c->nr;
    size_t layout = 12;
    if (c->rows_layout) {
        const size_t partials = wg * ((size_t)c->lp * nr + 1);
        const size_t slots = wg / (size_t)c->vl * nr * (size_t)dv;
        layout = 24 * wg + 4 * (partials > slots ? partials : slots);
    }
    return 16 * nr * qv + 4 * nr * (size_t)((d + 31) / 32) + 4 * wg * nr + 8 * wg * nr +
           24 * wg + 12 * wg + layout;
}

#define ROWS_REGS 160        /* rows layout: floats per invocation for its query rows */

/* Elements of a 16-byte K piece (Q4: one block), columns of a V piece in
 * the rows layout (vulkan/decode.comp's EP and VW). */
static int k_piece_elems(attn_dtype dt)
{
    return dt == ATTN_F32 ? 4 : dt == ATTN_Q8 ? 16 : dt == ATTN_Q4 ? 32 : 8;
}

static int v_piece_cols(attn_dtype dt) { return dt == ATTN_F32 ? 4 : 8; }

/* The largest power of two dividing wg, at most the power of two covering
 * n (the invocations sharing a row of n pieces). */
static int lanes_per_row(int wg, int64_t n)
{
    int lanes = 1;
    while (lanes < n && wg % (2 * lanes) == 0)
        lanes *= 2;
    return lanes;
}

/* The layout (ATTN_VULKAN_DECODE_LAYOUT=keys|rows, default rows) and the
 * rows layout's shape: a K row's 16-byte pieces over up to 8 invocations
 * (ATTN_VULKAN_DECODE_LANES=n: n invocations per K row), a V row's pieces
 * of 8 columns (f32: 4) one per invocation, as far as the workgroup
 * divides. The rows layout reads whole pieces only: off the wide-load path
 * (vec) the keys layout runs. Measured on an NVIDIA H200 (f16 cache,
 * Hq=32, Hkv=8, D=128, B=1; L = 32K / 128K): rows with 8 invocations per K
 * row (two pieces each) 0.095 / 0.207 ms, with 16 (one piece each) 0.118 /
 * 0.330, with 4 0.107 / 0.276; keys 0.097-0.104 / 0.269-0.288. Q8 and Q4
 * caches (8 and 4 pieces a row) took 0.096 / 0.268 and 0.111 / 0.337 ms
 * with rows against about three times that with keys. */
static void choose_layout(const attn_decode_problem *p, dec_cfg *c)
{
    const char *env = getenv("ATTN_VULKAN_DECODE_LAYOUT");
    const attn_dtype dt = p->cache->dtype;
    c->rows_layout = c->vec && !(env && strcmp(env, "keys") == 0);
    c->lp = c->vl = 1;
    if (!c->rows_layout)
        return;
    const int ep = k_piece_elems(dt), lanes = env_int("ATTN_VULKAN_DECODE_LANES", 1, 1024);
    const int64_t pieces = (p->d + ep - 1) / ep;
    c->lp = lanes_per_row(c->wg, lanes ? lanes : pieces < 8 ? pieces : 8);
    c->vl = lanes_per_row(c->wg, p->dv / v_piece_cols(dt));
}

/* Invocations (keys per tile): the subgroup size where the device reports
 * one up to 64 (one warp or wavefront: its barriers are cheap, and the
 * tile maxima need no shared memory), else 32; ATTN_VULKAN_DECODE_WG=n
 * sets it. Tile maxima by subgroup arithmetic where the device has it
 * (ATTN_VULKAN_SUBGROUP=0 turns it off). Query rows per workgroup: up to 8
 * (ATTN_VULKAN_DECODE_ROWS), fewer where the accumulators would pass 64
 * floats per invocation or the shared memory would not hold them. Keys
 * whose V loads go together (ATTN_VULKAN_DECODE_VUNROLL): as many as about
 * 64 registers of loaded words hold (the whole tile of 32 for a 16-bit
 * cache of Dv = 128), up to the workgroup; K pieces loaded together: 16
 * (ATTN_VULKAN_DECODE_KUNROLL; a whole f16 row of 128, 64 registers).
 * A tile's V loads are issued with its K loads (all of them in flight at
 * once, twice the registers; ATTN_VULKAN_DECODE_VEARLY=0: after the
 * softmax): on the H200, f16, with 8 chunks per compute unit, 0.096 /
 * 0.273 ms at L = 32K / 128K against 0.099 / 0.283. */
static int choose_cfg(const attn_vk_device *d, const attn_decode_problem *p, dec_cfg *c)
{
    const char *sg = getenv("ATTN_VULKAN_SUBGROUP");
    const uint32_t maxwg = d->limits.maxComputeWorkGroupInvocations < d->limits.maxComputeWorkGroupSize[0] ?
                           d->limits.maxComputeWorkGroupInvocations : d->limits.maxComputeWorkGroupSize[0];
    c->wg = env_int("ATTN_VULKAN_DECODE_WG", 1, (int)(maxwg < 1024 ? maxwg : 1024));
    if (!c->wg)
        c->wg = d->subgroup_size >= 1 && d->subgroup_size <= 64 ? (int)d->subgroup_size : 32;
    if ((uint32_t)c->wg > maxwg)
        c->wg = (int)maxwg;
    c->subgroup = d->subgroup_arithmetic && !(sg && strcmp(sg, "0") == 0);
    const int ng = (int)((p->dv + 4 * c->wg - 1) / (4 * c->wg));
    c->nrt = (int)(p->sq * (p->hq / p->hkv));
    const attn_dtype dt = p->cache->dtype;
    const int rows = env_int("ATTN_VULKAN_DECODE_ROWS", 1, 8);
    c->nr = rows ? rows : 16 / ng < 1 ? 1 : 16 / ng > 8 ? 8 : 16 / ng;
    if (c->nr > c->nrt)
        c->nr = c->nrt;
    c->vi = env_int("ATTN_VULKAN_DECODE_VUNROLL", 1, 64);
    if (!c->vi) {
        /* registers of one key's loaded V words per column group */
        const int words = dt == ATTN_F32 ? 4 : dt == ATTN_Q4 ? 3 : 2;
        c->vi = 64 / (ng * words) < 1 ? 1 : 64 / (ng * words);
    }
    if (c->vi > c->wg)
        c->vi = c->wg;
    c->kb = env_int("ATTN_VULKAN_DECODE_KUNROLL", 1, 64);
    if (!c->kb)
        c->kb = 16;
    const char *ve = getenv("ATTN_VULKAN_DECODE_VEARLY");
    c->vearly = !(ve && strcmp(ve, "0") == 0);
    c->vec = dt == ATTN_Q8 || dt == ATTN_Q4 ||
             (p->d % 8 == 0 && p->dv % 8 == 0 && (dt == ATTN_F32 || dt == ATTN_F16 ||
                                                  dt == ATTN_BF16));
    choose_layout(p, c);
    if (c->rows_layout && !rows) {
        /* registers per query row: its query pieces, the invocation's O
         * columns and LP; up to ROWS_REGS for the rows together (as
         * src/opencl/decode.c's ROW_REGS: f16, D = 128: 5 rows) */
        const int vw = v_piece_cols(dt), nvp = (int)(p->dv / vw), ep = k_piece_elems(dt);
        const int npk = (int)((p->d + ep - 1) / ep);
        const int per_row = (npk + c->lp - 1) / c->lp * ep + (nvp + c->vl - 1) / c->vl * vw + c->lp;
        c->nr = ROWS_REGS / per_row < 1 ? 1 : ROWS_REGS / per_row > 8 ? 8 : ROWS_REGS / per_row;
        if (c->nr > c->nrt)
            c->nr = c->nrt;
    }
    while (c->nr > 1 && shared_bytes(c, p->d, p->dv) > d->limits.maxComputeSharedMemorySize)
        c->nr--;
    /* the blocks evened out: 12 rows by at most 8 are 2 blocks of 6 */
    c->nrb = (c->nrt + c->nr - 1) / c->nr;
    c->nr = (c->nrt + c->nrb - 1) / c->nrb;
    return shared_bytes(c, p->d, p->dv) <= d->limits.maxComputeSharedMemorySize;
}

/* The combine pass runs in its own pipeline (the same shader, mode 1) of
 * COMBINE_WG invocations (a power of two within the device's limits), so
 * that many invocations per output element still leave several
 * consecutive elements per workgroup (their loads share sectors). */
#define COMBINE_WG 256

static int combine_wg(const attn_vk_device *d)
{
    int n = COMBINE_WG;
    while ((uint32_t)n > d->limits.maxComputeWorkGroupInvocations ||
           (uint32_t)n > d->limits.maxComputeWorkGroupSize[0])
        n /= 2;
    return n;
}

/* Invocations per output element of the combine pass: on a GPU enough
 * that each merges at most 8 of a row's nch chunks (the chain of loads an
 * invocation waits on), keeping 8 consecutive elements per workgroup; 1 on
 * a software device, whose invocations run one after another (more of them
 * only cost time there). ATTN_VULKAN_DECODE_COMBINE=n (a power of two
 * dividing the workgroup) sets it. */
static int combine_split(const attn_device *dev, int wg, int64_t nch)
{
    const char *env = getenv("ATTN_VULKAN_DECODE_COMBINE");
    int n = 1;
    if (env)
        n = atoi(env);
    else if (!dev->info.is_software)
        while (n * 8 < nch && wg / (2 * n) >= 8)
            n *= 2;
    return n >= 1 && wg % n == 0 && (n & (n - 1)) == 0 ? n : 1;
}

/* A window or sink count as a 32-bit word (-1 stays unlimited). */
static int32_t clamp_len(int64_t x)
{
    return x < 0 ? -1 : x > (1 << 30) ? (1 << 30) : (int32_t)x;
}

/* The per-call table, built on the host. */
typedef struct dec_table {
    int32_t *w;
    size_t n;
    int64_t ntasks, chunk;
    int64_t max_nch;        /* chunks of the longest sequence */
} dec_table;

static int32_t fbits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* Logical pages a sequence's page list holds: [0, sink_pages) and
 * [base, last], the window's pages (base is past the sink pages). */
static int64_t list_base(const attn_kv_cache *c, const attn_kv_seq *s)
{
    return max64(c->sink_pages, s->win_start / c->ps);
}

static int64_t list_len(const attn_kv_cache *c, const attn_kv_seq *s)
{
    const int64_t last = s->total > 0 ? (s->total - 1) / c->ps : -1;
    return min64(c->sink_pages, last + 1) + max64(0, last - list_base(c, s) + 1);
}

static attn_status build_table(const attn_decode_problem *p, const dec_cfg *cfg, dec_table *t)
{
    const attn_kv_cache *c = p->cache;
    const int64_t group = p->hq / p->hkv;
    /* Scanned keys per sequence: sinks [0, ns) and [lo, L), as the CPU. */
    int64_t work = 0, most = 1, npages = 0;
    for (int64_t b = 0; b < p->b; b++) {
        const attn_kv_seq *s = &c->seqs[p->seqs[b]];
        const int64_t L = attn_kv_kept(c, s), lo = p->window_left >= 0 ?
                          max64(0, L - p->sq - p->window_left) : 0;
        work += min64(p->sink_tokens, lo) + L - lo;
        most = max64(most, min64(p->sink_tokens, lo) + L - lo);
        npages += list_len(c, s);
    }
    /* Scanned keys per chunk: at least MIN_CHUNK (ATTN_VULKAN_DECODE_CHUNK=n),
     * more where the call would pass its target of chunks, at most the
     * longest sequence, a multiple of the tile (only a sequence's last chunk
     * ends in a partial tile). */
    const int64_t target = cfg->target;
    const int min_chunk = env_int("ATTN_VULKAN_DECODE_CHUNK", 1, 1 << 30);
    int64_t chunk = max64(min_chunk ? min_chunk : MIN_CHUNK, (work * p->hkv + target - 1) / target);
    chunk = (min64(chunk, most) + cfg->wg - 1) / cfg->wg * cfg->wg;
    int64_t ntasks = 0;
    for (int64_t b = 0; b < p->b; b++) {
        const attn_kv_seq *s = &c->seqs[p->seqs[b]];
        const int64_t L = attn_kv_kept(c, s), lo = p->window_left >= 0 ?
                          max64(0, L - p->sq - p->window_left) : 0;
        const int64_t nkeys = min64(p->sink_tokens, lo) + L - lo;
        ntasks += p->hkv * max64(1, (nkeys + chunk - 1) / chunk);
    }
    const int64_t seq0 = H_AUX + 2 * p->hq, task0 = seq0 + S_WORDS * p->b;
    const int64_t ptab0 = task0 + ntasks, words = ptab0 + npages;
    if (words >= INT32_MAX / 4 || ntasks * cfg->nrt * (p->dv + 2) >= INT32_MAX)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: the batch needs more than 2^31 "
                         "table or scratch words; the Vulkan backend indexes in 32 bits");
    int32_t *w = calloc((size_t)words, sizeof *w);
    if (!w)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: out of memory");
    const int32_t f = attn_gpu_decode_flags(p);
    w[H_B] = (int32_t)p->b;
    w[H_GROUPS] = (int32_t)(ntasks * cfg->nrb);
    w[H_NR] = cfg->nrt;
    w[H_NRB] = cfg->nrb;
    w[H_HQ] = (int32_t)p->hq;
    w[H_GROUP] = (int32_t)group;
    w[H_SQ] = (int32_t)p->sq;
    w[H_FLAGS] = f;
    w[H_SCALE] = fbits(p->scale);
    w[H_SOFTCAP] = fbits(p->softcap);
    w[H_SIGBIAS] = fbits(p->sigmoid_bias);
    w[H_WL] = clamp_len(p->window_left);
    w[H_WR] = clamp_len(p->window_right);
    w[H_SINKS] = clamp_len(p->sink_tokens);
    w[H_PAGE] = (int32_t)c->page_bytes;
    w[H_KPLANE] = (int32_t)c->k_plane;
    w[H_VPLANE] = (int32_t)c->v_plane;
    w[H_KMETA_OFF] = (int32_t)c->k_meta_off;
    w[H_VMETA_OFF] = (int32_t)c->v_meta_off;
    w[H_KROW] = (int32_t)c->k_row_bytes;
    w[H_VROW] = (int32_t)c->v_row_bytes;
    w[H_KMETA] = (int32_t)c->k_meta;
    w[H_VMETA] = (int32_t)c->v_meta;
    w[H_SINK_PAGES] = (int32_t)c->sink_pages;
    w[H_HKV] = (int32_t)p->hkv;
    w[H_QDT] = (int32_t)p->q.dtype;
    w[H_ODT] = (int32_t)p->out.dtype;
    w[H_GDT] = p->has_gate ? (int32_t)p->gate.dtype : 0;
    if (!attn_vk_put_view(w + H_Q, &p->q, 1, 4) || !attn_vk_put_view(w + H_O, &p->out, 1, 4) ||
        !attn_vk_put_view(w + H_G, &p->gate, p->has_gate, 4) ||
        !attn_vk_put_view(w + H_L, &p->lse, p->has_lse, 3)) {
        free(w);
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: a tensor spans more than 2^31 "
                         "elements; the Vulkan backend indexes in 32 bits");
    }
    w[H_SEQ] = (int32_t)seq0;
    w[H_TASK] = (int32_t)task0;
    w[H_CHUNK] = (int32_t)chunk;
    w[H_ML] = (int32_t)(ntasks * cfg->nrt * p->dv);
    for (int64_t h = 0; h < p->hq; h++) {
        w[H_AUX + h] = fbits(p->alibi_slopes ? p->alibi_slopes[h] : 0.0f);
        w[H_AUX + p->hq + h] = fbits(p->sink_logits ? p->sink_logits[h] : 0.0f);
    }
    int64_t task = 0, ptab = ptab0;
    for (int64_t b = 0; b < p->b; b++) {
        const attn_kv_seq *s = &c->seqs[p->seqs[b]];
        int32_t *e = w + seq0 + S_WORDS * b;
        const int64_t L = attn_kv_kept(c, s), lo = p->window_left >= 0 ?
                          max64(0, L - p->sq - p->window_left) : 0;
        const int64_t ns = min64(p->sink_tokens, lo), nkeys = ns + L - lo;
        const int64_t nch = max64(1, (nkeys + chunk - 1) / chunk);
        /* Logical pages: [0, sink_pages), then from the window's first on. */
        const int64_t base = list_base(c, s);
        const int64_t last = s->total > 0 ? (s->total - 1) / c->ps : -1;
        e[S_L] = (int32_t)L;
        e[S_NS] = (int32_t)ns;
        e[S_LO] = (int32_t)lo;
        e[S_NKEYS] = (int32_t)nkeys;
        e[S_NSK] = (int32_t)min64(s->total, c->sink);
        e[S_WSTART] = (int32_t)s->win_start;
        e[S_BASE] = (int32_t)base;
        e[S_PTAB] = (int32_t)ptab;
        e[S_TSTART] = (int32_t)task;
        e[S_NCH] = (int32_t)nch;
        t->max_nch = max64(t->max_nch, nch);
        for (int64_t lp = 0; lp < min64(c->sink_pages, last + 1); lp++)
            w[ptab++] = s->pages[lp];
        for (int64_t lp = base; lp <= last; lp++)
            w[ptab++] = s->pages[lp - s->dropped];
        for (int64_t i = 0; i < p->hkv * nch; i++)
            w[task0 + task++] = (int32_t)b;
    }
    t->w = w;
    t->n = (size_t)ptab;
    t->ntasks = ntasks;
    t->chunk = chunk;
    return ATTN_OK;
}

/* Records one dispatch of pass `mode` (its pipeline) over `groups`
 * workgroups, spread over x and y. */
static attn_status dispatch(attn_vk_device *d, VkPipeline pipe, VkDescriptorSet set, int32_t mode,
                            uint64_t groups)
{
    uint32_t gx, gy;
    if (!attn_vk_grid_xy(d, groups, &gx, &gy))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: %llu workgroups are more than one "
                         "dispatch can cover on this device", (unsigned long long)groups);
    attn_vk_dispatch(d, pipe, set, &mode, sizeof mode, gx, gy, 1);
    return ATTN_OK;
}

/* How the per-call table reaches the device (ATTN_VULKAN_DECODE_TABLE):
 *   update  vkCmdUpdateBuffer in the op's command buffer: the words travel
 *           with the commands, no staging copy (tables up to 64 KiB, the
 *           command's limit; larger ones are staged);
 *   staged  written to the host-visible staging buffer and copied into the
 *           device-local table by a copy command before the dispatches;
 *   host    the shader reads the staging buffer itself (no copy; every
 *           table read crosses the bus on a discrete GPU);
 *   bar     written by the host into device-local, host-visible memory
 *           (the BAR window of a discrete GPU): no command and no barrier
 *           before the dispatches (where the device has such memory).
 * On unified memory the table is mapped and written directly. */
enum { TABLE_UPDATE, TABLE_STAGED, TABLE_HOST, TABLE_BAR };
static const char *const table_names[] = { "update", "staged", "host", "bar" };
#define UPDATE_MAX 65536

static int table_mode(const attn_vk_device *d, VkDeviceSize bytes)
{
    const char *env = getenv("ATTN_VULKAN_DECODE_TABLE");
    if (env && strcmp(env, "staged") == 0)
        return TABLE_STAGED;
    if (env && strcmp(env, "host") == 0)
        return TABLE_HOST;
    if (env && strcmp(env, "bar") == 0 && d->mem_type_bar >= 0)
        return TABLE_BAR;
    return bytes <= UPDATE_MAX ? TABLE_UPDATE : TABLE_STAGED;
}

/* Puts the table where the shader reads it (recording the copy or update
 * into the begun command buffer); *buf is the buffer to bind. */
static attn_status upload_table(attn_vk_device *d, const dec_table *t, VkBuffer *buf)
{
    const VkDeviceSize tbytes = t->n * sizeof(int32_t);
    const int mode = d->direct ? TABLE_STAGED : table_mode(d, tbytes);
    if (mode == TABLE_BAR) {
        const attn_status s = attn_vk_bar_reserve(d, &d->dec_bar, tbytes);
        if (s == ATTN_OK) {
            memcpy(d->dec_bar.mapped, t->w, tbytes);
            *buf = d->dec_bar.buffer;
        }
        return s;
    }
    attn_status s = mode == TABLE_HOST ? ATTN_OK : attn_vk_device_reserve(d, &d->dec_table, tbytes);
    if (s == ATTN_OK && mode != TABLE_UPDATE && !d->dec_table.mapped)
        s = attn_vk_host_reserve(d, &d->staging, tbytes);
    if (s != ATTN_OK)
        return s;
    *buf = mode == TABLE_HOST ? d->staging.buffer : d->dec_table.buffer;
    if (mode == TABLE_UPDATE) {
        d->vk.CmdUpdateBuffer(d->cmd, d->dec_table.buffer, 0, tbytes, t->w);
    } else if (d->dec_table.mapped) {
        memcpy(d->dec_table.mapped, t->w, tbytes);
        return ATTN_OK;
    } else {
        memcpy(d->staging.mapped, t->w, tbytes);
        if (mode == TABLE_HOST)
            return ATTN_OK;
        const VkBufferCopy region = { 0, 0, tbytes };
        d->vk.CmdCopyBuffer(d->cmd, d->staging.buffer, d->dec_table.buffer, 1, &region);
    }
    attn_vk_barrier(d);
    return ATTN_OK;
}

static attn_status record(attn_vk_device *d, const attn_decode_problem *p, const dec_cfg *cfg,
                          const dec_table *t, const VkPipeline pipe[2], attn_vk_profile *prof)
{
    const VkDeviceSize part = (VkDeviceSize)(t->ntasks * cfg->nrt * (p->dv + 2)) * sizeof(float);
    attn_status s = attn_vk_device_reserve(d, &d->dec_part, part);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_decode");
    if (s != ATTN_OK)
        return s;
    attn_vk_prof_gpu_begin(d, prof);
    VkBuffer table = VK_NULL_HANDLE;
    s = upload_table(d, t, &table);
    attn_vk_prof_gpu_mark(d, prof, "upload");
    attn_vk_prof_host(prof, "upload");
    const VkBuffer pool = attn_vk_handle(p->cache->pool_buf);
    VkBuffer bufs[ATTN_VK_BINDINGS] = {
        pool, pool, pool, table, d->dec_part.buffer,
        attn_vk_handle(p->q.buffer), attn_vk_handle(p->out.buffer),
        p->has_gate ? attn_vk_handle(p->gate.buffer) : VK_NULL_HANDLE,
        p->has_lse ? attn_vk_handle(p->lse.buffer) : VK_NULL_HANDLE, VK_NULL_HANDLE,
    };
    VkDescriptorSet set;
    if (s == ATTN_OK)
        s = attn_vk_descriptors_reset(d, 1);
    if (s == ATTN_OK)
        s = attn_vk_descriptor_set(d, bufs, &set);
    if (s == ATTN_OK)
        s = dispatch(d, pipe[0], set, 0, (uint64_t)(t->ntasks * cfg->nrb));
    if (s == ATTN_OK) {
        attn_vk_prof_gpu_mark(d, prof, "chunks");
        attn_vk_barrier(d);
        const uint64_t per = (uint64_t)(cfg->cwg / cfg->cs);
        const uint64_t elems = (uint64_t)(p->b * p->sq * p->hq * p->dv);
        s = dispatch(d, pipe[1], set, 1, (elems + per - 1) / per);
        attn_vk_prof_gpu_mark(d, prof, "combine");
    }
    if (s != ATTN_OK) {
        d->vk.EndCommandBuffer(d->cmd);
        return s;
    }
    attn_vk_prof_host(prof, "record");
    return attn_vk_submit(d, "attn_decode");
}

attn_status attn_vk_decode(attn_device *dev, const attn_decode_problem *p)
{
    attn_vk_device *d = dev->impl;
    if (p->b == 0)
        return ATTN_OK;
    const attn_kv_cache *c = p->cache;
    if ((uint64_t)c->page_bytes * (uint64_t)c->max_pages > UINT32_MAX)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: the cache's page pool is over "
                         "4 GiB; the Vulkan backend addresses it in 32 bits");
    dec_cfg cfg;
    /* Chunks a call aims for: GROUPS_PER_CU per compute unit (W = 32
     * workgroups are small: many per unit keep loads in flight), else
     * TARGET_GROUPS; ATTN_VULKAN_DECODE_GROUPS=n sets it. */
    const char *groups = getenv("ATTN_VULKAN_DECODE_GROUPS");
    cfg.target = groups && atoll(groups) > 0 ? atoll(groups) :
                 dev->info.compute_units > 0 ? GROUPS_PER_CU * (int64_t)dev->info.compute_units :
                 TARGET_GROUPS;
    if (!choose_cfg(d, p, &cfg))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: no workgroup shape fits %s "
                         "(shared memory %u bytes) for %lld query rows per KV head",
                         dev->info.name, d->limits.maxComputeSharedMemorySize,
                         (long long)(p->sq * (p->hq / p->hkv)));
    dec_table t = { 0 };
    pthread_mutex_lock(&d->lock);
    attn_vk_profile prof;
    attn_vk_prof_start(d, &prof, "attn_decode");
    attn_status s = build_table(p, &cfg, &t);
    attn_vk_prof_host(&prof, "table");
    cfg.cwg = combine_wg(d);
    cfg.cs = combine_split(dev, cfg.cwg, t.max_nch);
    const int32_t spec[14] = { cfg.wg, cfg.nr, cfg.vi, cfg.kb, (int32_t)p->d, (int32_t)p->dv,
                               (int32_t)c->dtype, cfg.vec, (int32_t)c->ps, 1, cfg.vearly,
                               cfg.rows_layout, cfg.lp, cfg.vl };
    /* The combine's pipeline: mode 0's constants at fixed small values (its
     * code is not run), one pipeline for every cache. */
    const int32_t cspec[14] = { cfg.cwg, 1, 1, 1, 8, (int32_t)p->dv, ATTN_F32, 0, 1, cfg.cs, 0,
                                0, 1, 1 };
    VkPipeline pipe[2];
    if (s == ATTN_OK)
        s = attn_vk_pipeline_get(d, cfg.subgroup ? ATTN_VK_SHADER_DECODE_SUBGROUP :
                                 ATTN_VK_SHADER_DECODE, spec, 14, &pipe[0]);
    if (s == ATTN_OK)
        s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_DECODE, cspec, 14, &pipe[1]);
    attn_vk_prof_host(&prof, "pipeline");
    if (prof.on)
        snprintf(prof.note, sizeof prof.note, "layout %s wg %d rows %d blocks %d unroll v%d%s k%d "
                 "groups %lld chunk %lld combine %dx%d max %s table %s",
                 cfg.rows_layout ? "rows" : "keys", cfg.wg, cfg.nr, cfg.nrb,
                 cfg.vi, cfg.vearly ? " early" : "", cfg.kb, (long long)(t.ntasks * cfg.nrb), (long long)t.chunk, cfg.cs, cfg.cwg,
                 cfg.subgroup ? "subgroup" : "shared",
                 d->direct ? "mapped" : table_names[table_mode(d, t.n * sizeof(int32_t))]);
    if (s == ATTN_OK)
        s = record(d, p, &cfg, &t, pipe, &prof);
    if (s == ATTN_OK)
        attn_vk_prof_report(d, &prof);
    d->prof = NULL;
    pthread_mutex_unlock(&d->lock);
    free(t.w);
    return s;
}
