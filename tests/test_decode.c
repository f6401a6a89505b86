/* attn_decode against attn_sdpa on the same (dequantised) keys and values:
 * random storage types, head counts, head dims, page sizes, batches of
 * sequences of different lengths built by appends, forks and truncations,
 * streaming eviction, and every score option decode supports. Also reports
 * the quantisation error of each storage type against an f32 cache. */
#include "kvref.h"

typedef struct mirror {           /* what the test believes a sequence holds */
    int64_t n, cap, total, ws;    /* kept tokens; absolute next position; window start */
    int64_t *pos;
    float *k, *v;                 /* original f32 values of the kept tokens */
} mirror;

typedef struct cfg {
    attn_dtype dt;
    int64_t hkv, group, d, dv, ps, sink, window;
} cfg;

static void m_push(mirror *m, const cfg *c, int64_t pos, const float *k, const float *v)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->pos = realloc(m->pos, (size_t)m->cap * sizeof *m->pos);
        m->k = realloc(m->k, (size_t)(m->cap * c->hkv * c->d) * sizeof(float));
        m->v = realloc(m->v, (size_t)(m->cap * c->hkv * c->dv) * sizeof(float));
    }
    m->pos[m->n] = pos;
    memcpy(m->k + m->n * c->hkv * c->d, k, (size_t)(c->hkv * c->d) * sizeof(float));
    memcpy(m->v + m->n * c->hkv * c->dv, v, (size_t)(c->hkv * c->dv) * sizeof(float));
    m->n++;
}

/* Keeps kept tokens [0, keep) ... per the streaming rule. */
static void m_evict(mirror *m, const cfg *c)
{
    if (c->window == 0 || m->total - m->ws <= c->window)
        return;
    m->ws = m->total - c->window;
    int64_t w = 0;
    for (int64_t i = 0; i < m->n; i++)
        if (m->pos[i] < c->sink || m->pos[i] >= m->ws) {
            m->pos[w] = m->pos[i];
            memmove(m->k + w * c->hkv * c->d, m->k + i * c->hkv * c->d, (size_t)(c->hkv * c->d) * 4);
            memmove(m->v + w * c->hkv * c->dv, m->v + i * c->hkv * c->dv, (size_t)(c->hkv * c->dv) * 4);
            w++;
        }
    m->n = w;
}

static void append_random(attn_kv_cache *kc, int32_t id, mirror *m, const cfg *c, int64_t n)
{
    float *k = malloc((size_t)(n * c->hkv * c->d + 1) * sizeof(float));
    float *v = malloc((size_t)(n * c->hkv * c->dv + 1) * sizeof(float));
    for (int64_t i = 0; i < n * c->hkv * c->d; i++) k[i] = kv_randn();
    for (int64_t i = 0; i < n * c->hkv * c->dv; i++) v[i] = kv_randn();
    /* sometimes pass f16 input (the values are then f16-exact) */
    int half = kv_int(0, 3) == 0;
    attn_tensor tk, tv;
    uint16_t *hk = NULL, *hv = NULL;
    if (half) {
        hk = malloc((size_t)(n * c->hkv * c->d + 1) * 2);
        hv = malloc((size_t)(n * c->hkv * c->dv + 1) * 2);
        for (int64_t i = 0; i < n * c->hkv * c->d; i++) {
            k[i] = kv_bf16(k[i]);
            uint32_t u; memcpy(&u, &k[i], 4); hk[i] = (uint16_t)(u >> 16);
        }
        for (int64_t i = 0; i < n * c->hkv * c->dv; i++) {
            v[i] = kv_bf16(v[i]);
            uint32_t u; memcpy(&u, &v[i], 4); hv[i] = (uint16_t)(u >> 16);
        }
        tk = kv_t3(hk, ATTN_BF16, n, c->hkv, c->d);
        tv = kv_t3(hv, ATTN_BF16, n, c->hkv, c->dv);
    } else {
        tk = kv_t3(k, ATTN_F32, n, c->hkv, c->d);
        tv = kv_t3(v, ATTN_F32, n, c->hkv, c->dv);
    }
    KV_OK(attn_kv_cache_append(kc, id, &tk, &tv));
    for (int64_t i = 0; i < n; i++) {
        m_push(m, c, m->total, k + i * c->hkv * c->d, v + i * c->hkv * c->dv);
        m->total++;
        m_evict(m, c);
    }
    free(k); free(v); free(hk); free(hv);
}

static void m_truncate(mirror *m, const cfg *c, int64_t len)
{
    int64_t ns = m->total < c->sink ? m->total : c->sink;
    if (len <= ns) { m->total = len; m->ws = c->sink; }
    else m->total = m->ws + (len - ns);
    m->n = len;
}

static void m_copy(mirror *dst, const mirror *src, const cfg *c, int64_t len)
{
    dst->n = 0;
    dst->total = src->total;
    dst->ws = src->ws;
    for (int64_t i = 0; i < len; i++)
        m_push(dst, c, src->pos[i], src->k + i * c->hkv * c->d, src->v + i * c->hkv * c->dv);
    /* recompute total/ws as a truncation of src */
    mirror tmp = *src;
    m_truncate(&tmp, c, len);
    dst->total = tmp.total;
    dst->ws = tmp.ws;
}

static int check_contents(attn_kv_cache *kc, int32_t id, const mirror *m, const cfg *c)
{
    int64_t len = -1;
    KV_OK(attn_kv_cache_seq_len(kc, id, &len));
    KV_CHECK(len == m->n, "seq %d: seq_len %lld, expected %lld", id, (long long)len, (long long)m->n);
    if (len != m->n || m->n == 0)
        return len == m->n;
    float *k = malloc((size_t)(m->n * c->hkv * c->d) * 4), *v = malloc((size_t)(m->n * c->hkv * c->dv) * 4);
    float *rk = malloc((size_t)c->d * 4), *rv = malloc((size_t)c->dv * 4);
    attn_tensor tk = kv_t3(k, ATTN_F32, m->n, c->hkv, c->d), tv = kv_t3(v, ATTN_F32, m->n, c->hkv, c->dv);
    KV_OK(attn_kv_cache_read(kc, id, 0, &tk, &tv));
    int64_t bad = 0;
    for (int64_t t = 0; t < m->n * c->hkv; t++) {
        kv_roundtrip(c->dt, m->k + t * c->d, c->d, rk);
        kv_roundtrip(c->dt, m->v + t * c->dv, c->dv, rv);
        for (int64_t e = 0; e < c->d; e++) bad += rk[e] != k[t * c->d + e];
        for (int64_t e = 0; e < c->dv; e++) bad += rv[e] != v[t * c->dv + e];
    }
    int64_t first = -1;
    for (int64_t t = 0; t < m->n * c->hkv && first < 0; t++) {
        kv_roundtrip(c->dt, m->k + t * c->d, c->d, rk);
        for (int64_t e = 0; e < c->d; e++) if (rk[e] != k[t * c->d + e]) { first = t / c->hkv; break; }
    }
    KV_CHECK(bad == 0, "seq %d (%s, ps %lld, sink %lld, window %lld, len %lld): %lld rows differ "
             "from the test's dequantisation reference, first at token %lld", id, kv_dtname(c->dt),
             (long long)c->ps, (long long)c->sink, (long long)c->window, (long long)m->n,
             (long long)bad, (long long)first);
    free(k); free(v); free(rk); free(rv);
    return bad == 0;
}

/* Whether the context's decode kernels quantise the query to int8 for
 * Q8/Q4 keys (integer dot products; mirrors the selection in
 * src/cpu/decode_scalar.c: the AVX-512 set on a CPU with AVX512-VNNI). */
static int int8_scores(attn_context *ctx, attn_dtype dt)
{
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(ctx, 0, &info);
    return (dt == ATTN_Q8 || dt == ATTN_Q4) && info.isa == ATTN_ISA_AVX512 &&
           (info.cpu_features & ATTN_CPU_AVX512_VNNI);
}

/* The query rows as the int8 score path sees them: x = scale * q rounded
 * to int8 per 32-dim block with step max|x_b| / 127, back in f32. The
 * reference then runs with scale 1 on these rows, so the comparison keeps
 * its float tolerance and checks the integer arithmetic exactly. */
static void int8_query(float *dst, const float *q, int64_t rows, int64_t d, float scale)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < d; b += 32) {
            const float *x = q + r * d + b;
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(scale * x[i]));
            const float inv = amax > 0.0f ? 127.0f / amax : 0.0f, step = amax / 127.0f;
            for (int i = 0; i < 32; i++)
                dst[r * d + b + i] = nearbyintf(scale * x[i] * inv) * step;
        }
}

/* Whether the context's P.V rounds the attention weights to 8 bits (Q4
 * values on the same AVX-512 VNNI kernels, simd/avx512_decode_bpv.h). */
static int int8_pv(attn_context *ctx, attn_dtype dt)
{
    return dt == ATTN_Q4 && int8_scores(ctx, dt);
}

/* Reported for Q4 8-bit P.V: the largest ratio of an error to its
 * q4_pv_bounds term, and the errors' and outputs' sums of squares. */
static double q4_pv_worst, q4_pv_se, q4_pv_so;

/* The Q4 8-bit P.V bound (include/attn.h, ATTN_Q4), derived here from the
 * kernel's rounding. Per chunk of at most 64 consecutive keys and per
 * (query row, value block b), the weights w_j = P_j sv_jb (P the
 * normalised attention weights, sv the block's scale) are rounded to
 * nearest on 127 levels of step = max_chunk P * max_chunk sv / 127, and
 * the chunk's total weight is kept exact at the middle nibble 7.5. The
 * output error in dim e is then sum_j delta_j (n_je - 7.5), n the 4-bit
 * level, with |delta_j| <= min(step / 2, w_j) (a weight under half a step
 * rounds to 0). The chunk is not known here, but it lies within 63 keys of
 * j, so step <= (max P) (max sv) / 127 over keys j - 63 .. j + 63. Taking
 * the signs of (n_je - 7.5) as independent of the weights and symmetric
 * (random values), Hoeffding's inequality bounds the sum by k sqrt(sum_j
 * c_j^2), c_j = min(step / 2, w_j) |n_je - 7.5|, except with probability
 * 2 exp(-k^2 / 2): k = 6 gives 3e-8 per output.
 * P comes from attn_sdpa on the same query and keys with one-hot values
 * (v_j = e_j gives out = P_j). rp: the reference's parameters (a gate only
 * shrinks the error and is dropped); v: the original f32 values [L][hkv][dv];
 * bound: [sq * hq][dv]. */
static void q4_pv_bounds(attn_context *ctx, const attn_sdpa_params *rp, const attn_tensor *rq,
                         const attn_tensor *rk, const float *v, int64_t L, int64_t hkv, int64_t dv,
                         int64_t sq, int64_t hq, double *bound)
{
    const int64_t nb = dv / 32, rows = sq * hq, reach = 63;
    float *onehot = calloc((size_t)(L * hkv * L), 4), *P = malloc((size_t)(rows * L) * 4);
    for (int64_t j = 0; j < L; j++)
        for (int64_t h = 0; h < hkv; h++) onehot[(j * hkv + h) * L + j] = 1.0f;
    attn_tensor tv = attn_tensor_4d(onehot, ATTN_F32, 1, L, hkv, L);
    attn_tensor tp = attn_tensor_4d(P, ATTN_F32, 1, sq, hq, L);
    attn_sdpa_params pp = *rp;
    pp.gate = NULL;
    KV_OK(attn_sdpa(ctx, &pp, rq, rk, &tv, &tp, NULL));
    /* per key and kv head: block scales, their maxima over the reach, n - 7.5 */
    float *sv = malloc((size_t)(L * hkv * nb) * 4), *svw = malloc((size_t)(L * hkv * nb) * 4);
    float *nc = malloc((size_t)(L * hkv * dv) * 4), *pw = malloc((size_t)L * 4);
    for (int64_t t = 0; t < L * hkv; t++)
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = v + t * dv + 32 * b;
            float s, m;
            kv_q4_params(xb, &s, &m);
            sv[t * nb + b] = s;
            for (int i = 0; i < 32; i++) nc[t * dv + 32 * b + i] = kv_q4_level(xb[i], s, m) - 7.5f;
        }
    for (int64_t j = 0; j < L; j++)
        for (int64_t h = 0; h < hkv; h++)
            for (int64_t b = 0; b < nb; b++) {
                float mx = 0.0f;
                for (int64_t k = j > reach ? j - reach : 0; k <= j + reach && k < L; k++)
                    mx = fmaxf(mx, sv[(k * hkv + h) * nb + b]);
                svw[(j * hkv + h) * nb + b] = mx;
            }
    for (int64_t r = 0; r < rows; r++) {
        const int64_t hk = (r % hq) / (hq / hkv);
        const float *pr = P + r * L;
        for (int64_t j = 0; j < L; j++) {
            float mx = 0.0f;
            for (int64_t k = j > reach ? j - reach : 0; k <= j + reach && k < L; k++) mx = fmaxf(mx, fabsf(pr[k]));
            pw[j] = mx;
        }
        for (int64_t e = 0; e < dv; e++) {
            const int64_t b = e / 32;
            double sum = 0.0;
            for (int64_t j = 0; j < L; j++) {
                const int64_t t = j * hkv + hk;
                const double half = 0.5 * pw[j] * svw[t * nb + b] / 127.0, w = fabs(pr[j]) * sv[t * nb + b];
                const double c = fmin(half, w) * nc[t * dv + e];
                sum += c * c;
            }
            bound[r * dv + e] = 6.0 * sqrt(sum);
        }
    }
    free(onehot); free(P); free(sv); free(svw); free(nc); free(pw);
}

static int run_case(attn_context *ctx, int iter, int quick)
{
    static const attn_dtype dts[] = { ATTN_F32, ATTN_F16, ATTN_BF16, ATTN_Q8, ATTN_Q4 };
    static const int64_t pss[] = { 1, 3, 16, 17, 64, 256 };
    static const int64_t ds_any[] = { 8, 40, 64, 80, 128 }, ds_q[] = { 32, 64, 128, 256 };
    cfg c;
    c.dt = dts[iter % 5];
    int q = c.dt == ATTN_Q8 || c.dt == ATTN_Q4;
    c.hkv = kv_int(1, 3);
    c.group = (int64_t[]){ 1, 2, 4, 8 }[kv_int(0, 3)];
    c.d = q ? ds_q[kv_int(0, 3)] : ds_any[kv_int(0, 4)];
    c.dv = kv_int(0, 3) == 0 ? (q ? 32 : 24) : c.d;
    c.ps = pss[kv_int(0, 5)];
    c.window = kv_int(0, 4) == 0 ? kv_int(1, 200) : 0;
    c.sink = c.window ? kv_int(0, 6) : 0;
    const int64_t maxlen = quick ? 200 : 1200;
    const int B = (int)kv_int(1, 4);
    const int nseq = B + 2;

    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.dtype = c.dt;
    desc.num_kv_heads = (int32_t)c.hkv;
    desc.head_dim = (int32_t)c.d;
    desc.head_dim_v = (int32_t)c.dv;
    desc.page_size = (int32_t)c.ps;
    desc.max_seqs = 16;
    desc.max_pages = (2 * maxlen / c.ps + 4) * nseq * 2;
    desc.stream_sink = c.sink;
    desc.stream_window = c.window;
    attn_kv_cache *kc = NULL;
    KV_OK(attn_kv_cache_create(ctx, &desc, &kc));
    if (!kc) return 1;

    mirror ms[16];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 16; i++) ms[i].ws = c.sink;
    int32_t ids[8];
    /* ids: a random permutation prefix of 0..15 */
    int32_t perm[16];
    for (int i = 0; i < 16; i++) perm[i] = i;
    for (int i = 15; i > 0; i--) { int j = (int)kv_int(0, i); int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    for (int i = 0; i < nseq; i++) ids[i] = perm[i];

    /* Build: the first sequence by appends; later ones fork from an earlier
     * one (or start fresh), then append and maybe rewind. */
    for (int s = 0; s < nseq; s++) {
        int32_t id = ids[s];
        if (s > 0 && kv_int(0, 1)) {
            int src = (int)kv_int(0, s - 1);
            int64_t pre = kv_int(0, ms[ids[src]].n);
            KV_OK(attn_kv_cache_fork(kc, ids[src], id, pre));
            m_copy(&ms[id], &ms[ids[src]], &c, pre);
            if (getenv("KVDBG") && !check_contents(kc, id, &ms[id], &c)) fprintf(stderr, "after fork of %d prefix %lld\n", ids[src], (long long)pre);
        }
        int64_t target = kv_int(1, maxlen);
        while (ms[id].total < target) {
            int64_t n = kv_int(1, kv_int(0, 1) ? 16 : 200);
            int64_t t0 = ms[id].total;
            append_random(kc, id, &ms[id], &c, n);
            if (getenv("KVDBG")) for (int z = 0; z <= s; z++) if (!check_contents(kc, ids[z], &ms[ids[z]], &c)) fprintf(stderr, "seq %d after append of %lld at total %lld to seq %d\n", ids[z], (long long)n, (long long)t0, id);
            if (kv_int(0, 5) == 0 && ms[id].n > 0) {     /* rejected speculative tokens */
                int64_t len = ms[id].n - kv_int(0, ms[id].n < 8 ? ms[id].n : 8);
                KV_OK(attn_kv_cache_truncate(kc, id, len));
                m_truncate(&ms[id], &c, len);
                if (getenv("KVDBG") && !check_contents(kc, id, &ms[id], &c)) fprintf(stderr, "after truncate to %lld\n", (long long)len);
            }
        }
        if (ms[id].n == 0)
            append_random(kc, id, &ms[id], &c, 1);
    }
    /* Every sequence (including fork sources written to after forking) must
     * still hold exactly its own tokens: copy-on-write worked. */
    for (int s = 0; s < nseq; s++)
        check_contents(kc, ids[s], &ms[ids[s]], &c);

    /* The batch: B of the sequences, in random order, possibly repeated. */
    int32_t seqs[8];
    int64_t minlen = INT64_MAX;
    for (int b = 0; b < B; b++) {
        seqs[b] = ids[kv_int(0, nseq - 1)];
        minlen = ms[seqs[b]].n < minlen ? ms[seqs[b]].n : minlen;
    }
    const int64_t sq = kv_int(1, minlen < 16 ? minlen : 16);
    const int64_t hq = c.hkv * c.group;

    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.scale = (float)(kv_unif() * 2.0 / sqrt((double)c.d));
    p.causal = (int)kv_int(0, 1);
    if (kv_int(0, 3) == 0) p.window_left = kv_int(0, 300);
    if (kv_int(0, 6) == 0) p.window_right = kv_int(0, 4);
    if (kv_int(0, 4) == 0) p.sink_tokens = kv_int(0, 8);
    if (kv_int(0, 4) == 0) p.softcap = (float)(1.0 + 10.0 * kv_unif());
    float slopes[64], sinkl[64];
    for (int h = 0; h < hq; h++) { slopes[h] = (float)(0.1 * kv_unif()); sinkl[h] = kv_randn(); }
    if (kv_int(0, 4) == 0) p.alibi_slopes = slopes;
    const int sigmoid = kv_int(0, 6) == 0;
    if (sigmoid) { p.score = ATTN_SCORE_SIGMOID; p.sigmoid_bias = kv_randn(); }
    else if (kv_int(0, 4) == 0) p.sink_logits = sinkl;
    const int want_lse = !sigmoid && kv_int(0, 3) != 0;

    const int64_t nq = B * sq * hq * c.d, no = B * sq * hq * c.dv;
    float *qf = malloc((size_t)nq * 4), *gate = malloc((size_t)no * 4);
    for (int64_t i = 0; i < nq; i++) qf[i] = kv_randn();
    for (int64_t i = 0; i < no; i++) gate[i] = kv_randn();
    attn_dtype qdt = kv_int(0, 3) == 0 ? ATTN_BF16 : ATTN_F32;
    uint16_t *qh = malloc((size_t)nq * 2);
    for (int64_t i = 0; i < nq; i++) {
        qf[i] = qdt == ATTN_BF16 ? kv_bf16(qf[i]) : qf[i];
        uint32_t u; memcpy(&u, &qf[i], 4); qh[i] = (uint16_t)(u >> 16);
    }
    attn_tensor tq = attn_tensor_4d(qdt == ATTN_BF16 ? (void *)qh : (void *)qf, qdt, B, sq, hq, c.d);
    attn_tensor tg = attn_tensor_4d(gate, ATTN_F32, B, sq, hq, c.dv);
    if (kv_int(0, 6) == 0) p.gate = &tg;
    float *out = malloc((size_t)no * 4), *lse = malloc((size_t)(B * hq * sq) * 4);
    attn_tensor to = attn_tensor_4d(out, ATTN_F32, B, sq, hq, c.dv);
    attn_tensor tl = { 0 };
    tl.data = lse; tl.dtype = ATTN_F32; tl.ndim = 3;
    tl.shape[0] = B; tl.shape[1] = hq; tl.shape[2] = sq;
    KV_OK(attn_decode(ctx, &p, &tq, kc, seqs, &to, want_lse ? &tl : NULL));

    /* Reference: attn_sdpa per sequence on the round-tripped kept tokens
     * (and, for int8 scores, the int8-rounded query at scale 1). */
    const int qi8 = int8_scores(ctx, c.dt);
    float *qref = qf;
    if (qi8) {
        qref = malloc((size_t)nq * 4);
        int8_query(qref, qf, nq / c.d, c.d, p.scale);
    }
    double maxerr = 0.0;
    for (int b = 0; b < B; b++) {
        const mirror *m = &ms[seqs[b]];
        const int64_t L = m->n;
        float *k = malloc((size_t)(L * c.hkv * c.d) * 4), *v = malloc((size_t)(L * c.hkv * c.dv) * 4);
        for (int64_t t = 0; t < L * c.hkv; t++) {
            kv_roundtrip(c.dt, m->k + t * c.d, c.d, k + t * c.d);
            kv_roundtrip(c.dt, m->v + t * c.dv, c.dv, v + t * c.dv);
        }
        float *ro = malloc((size_t)(sq * hq * c.dv) * 4), *rl = malloc((size_t)(hq * sq) * 4);
        attn_tensor rq = attn_tensor_4d(qref + b * sq * hq * c.d, ATTN_F32, 1, sq, hq, c.d);
        attn_tensor rk = attn_tensor_4d(k, ATTN_F32, 1, L, c.hkv, c.d);
        attn_tensor rv = attn_tensor_4d(v, ATTN_F32, 1, L, c.hkv, c.dv);
        attn_tensor rot = attn_tensor_4d(ro, ATTN_F32, 1, sq, hq, c.dv);
        attn_tensor rg = attn_tensor_4d(gate + b * sq * hq * c.dv, ATTN_F32, 1, sq, hq, c.dv);
        attn_tensor rlt = tl;
        rlt.data = rl; rlt.shape[0] = 1;
        attn_sdpa_params rp = p;
        if (p.gate) rp.gate = &rg;
        if (qi8) rp.scale = 1.0f;
        KV_OK(attn_sdpa(ctx, &rp, &rq, &rk, &rv, &rot, want_lse ? &rlt : NULL));
        double *pvb = NULL;   /* the Q4 8-bit P.V term of the bound */
        if (int8_pv(ctx, c.dt)) {
            pvb = malloc((size_t)(sq * hq * c.dv) * sizeof *pvb);
            q4_pv_bounds(ctx, &rp, &rq, &rk, m->v, L, c.hkv, c.dv, sq, hq, pvb);
        }
        for (int64_t r = 0; r < sq * hq; r++) {
            double rmax = 0.0;
            for (int64_t e = 0; e < c.dv; e++) rmax = fmax(rmax, fabs(ro[r * c.dv + e]));
            for (int64_t e = 0; e < c.dv; e++) {
                double err = fabs((double)out[(b * sq * hq + r) * c.dv + e] - ro[r * c.dv + e]);
                const double pv = pvb ? pvb[r * c.dv + e] : 0.0;
                if (pvb) {
                    q4_pv_se += err * err;
                    q4_pv_so += (double)ro[r * c.dv + e] * ro[r * c.dv + e];
                }
                if (pv > 0.0)
                    q4_pv_worst = fmax(q4_pv_worst, (err - 2e-4 * (1.0 + rmax)) / pv);
                if (!(err <= 2e-4 * (1.0 + rmax) + pv)) {
                    if (maxerr < 1e30)
                        KV_CHECK(0, "case %d (%s hkv=%lld g=%lld d=%lld dv=%lld ps=%lld sink=%lld "
                                 "win=%lld) b=%d row %lld col %lld: %g vs %g", iter, kv_dtname(c.dt),
                                 (long long)c.hkv, (long long)c.group, (long long)c.d, (long long)c.dv,
                                 (long long)c.ps, (long long)c.sink, (long long)c.window, b,
                                 (long long)r, (long long)e, out[(b * sq * hq + r) * c.dv + e],
                                 ro[r * c.dv + e]);
                    maxerr = 1e31;
                }
            }
        }
        if (want_lse)
            for (int64_t h = 0; h < hq; h++)
                for (int64_t i = 0; i < sq; i++) {
                    float a = lse[(b * hq + h) * sq + i], r = rl[h * sq + i];
                    int ok = (isinf(a) && isinf(r) && a == r) || fabsf(a - r) <= 1e-4f * (1.0f + fabsf(r));
                    if (!ok && maxerr < 1e30) {
                        KV_CHECK(0, "case %d: lse b=%d h=%lld i=%lld: %g vs %g", iter, b,
                                 (long long)h, (long long)i, a, r);
                        maxerr = 1e31;
                    }
                }
        free(k); free(v); free(ro); free(rl); free(pvb);
    }

    /* Tear down half of the sequences by remove, the rest by destroy; every
     * page must come back. */
    for (int s = 0; s < nseq; s++)
        KV_OK(attn_kv_cache_remove(kc, ids[s]));
    KV_CHECK(attn_kv_cache_free_pages(kc) == desc.max_pages, "case %d: %lld of %lld pages free "
             "after removing every sequence", iter, (long long)attn_kv_cache_free_pages(kc),
             (long long)desc.max_pages);
    attn_kv_cache_destroy(kc);
    for (int i = 0; i < 16; i++) { free(ms[i].pos); free(ms[i].k); free(ms[i].v); }
    if (qref != qf) free(qref);
    free(qf); free(qh); free(gate); free(out); free(lse);
    return 0;
}

/* A cache of storage dt (pages of ps tokens) holding sequence 0: the L
 * tokens of f32 k and v ([L][hkv][d]). */
static attn_kv_cache *cache_of(attn_context *ctx, attn_dtype dt, int64_t hkv, int64_t d,
                               int32_t ps, int64_t L, float *k, float *v)
{
    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.dtype = dt; desc.num_kv_heads = (int32_t)hkv; desc.head_dim = (int32_t)d;
    desc.page_size = ps; desc.max_pages = (int32_t)(L / ps + 1);
    attn_kv_cache *kc = NULL;
    KV_OK(attn_kv_cache_create(ctx, &desc, &kc));
    attn_tensor tk = kv_t3(k, ATTN_F32, L, hkv, d), tv = kv_t3(v, ATTN_F32, L, hkv, d);
    KV_OK(attn_kv_cache_append(kc, 0, &tk, &tv));
    return kc;
}

/* Every layout of the Q8/Q4 block parameters the SIMD kernels read
 * differently (AVX-512: rows of 1, 2 or 4 dwords picked by permutes, other
 * widths gathered, odd Q8 widths unaligned), with pages of 17 tokens so
 * that groups of 16 keys end early, against attn_sdpa on the dequantised
 * keys and values. Deterministic: random cases need not draw them all. */
static void meta_layouts(attn_context *ctx)
{
    static const attn_dtype dts[] = { ATTN_Q8, ATTN_Q4 };
    static const int64_t ds[] = { 32, 64, 96, 128, 256 };
    const int64_t hkv = 1, g = 4, L = 75;
    for (int t = 0; t < 2; t++)
        for (int di = 0; di < 5; di++) {
            const int64_t d = ds[di], n = L * hkv * d, nq = g * d;
            float *k = malloc((size_t)n * 4), *v = malloc((size_t)n * 4), *q = malloc((size_t)nq * 4);
            float *rk = malloc((size_t)n * 4), *rv = malloc((size_t)n * 4), *qr = malloc((size_t)nq * 4);
            float *out = malloc((size_t)nq * 4), *ref = malloc((size_t)nq * 4);
            for (int64_t i = 0; i < n; i++) { k[i] = kv_randn(); v[i] = kv_randn(); }
            for (int64_t i = 0; i < nq; i++) q[i] = kv_randn();
            for (int64_t r = 0; r < L * hkv; r++) {
                kv_roundtrip(dts[t], k + r * d, d, rk + r * d);
                kv_roundtrip(dts[t], v + r * d, d, rv + r * d);
            }
            attn_kv_cache *kc = cache_of(ctx, dts[t], hkv, d, 17, L, k, v);
            attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
            attn_tensor tq = attn_tensor_4d(q, ATTN_F32, 1, 1, hkv * g, d);
            attn_tensor to = attn_tensor_4d(out, ATTN_F32, 1, 1, hkv * g, d);
            int32_t s0 = 0;
            KV_OK(attn_decode(ctx, &p, &tq, kc, &s0, &to, NULL));
            attn_kv_cache_destroy(kc);
            /* the reference sees the query as the kernels do (int8_query) */
            attn_sdpa_params rp = ATTN_SDPA_PARAMS_INIT;
            if (int8_scores(ctx, dts[t])) {
                int8_query(qr, q, g * hkv, d, 1.0f / sqrtf((float)d));
                rp.scale = 1.0f;
            } else {
                memcpy(qr, q, (size_t)nq * 4);
            }
            attn_tensor rq = attn_tensor_4d(qr, ATTN_F32, 1, 1, hkv * g, d);
            attn_tensor rkt = attn_tensor_4d(rk, ATTN_F32, 1, L, hkv, d);
            attn_tensor rvt = attn_tensor_4d(rv, ATTN_F32, 1, L, hkv, d);
            attn_tensor rot = attn_tensor_4d(ref, ATTN_F32, 1, 1, hkv * g, d);
            KV_OK(attn_sdpa(ctx, &rp, &rq, &rkt, &rvt, &rot, NULL));
            double *pvb = calloc((size_t)nq, sizeof *pvb);   /* the Q4 8-bit P.V term of the bound */
            if (int8_pv(ctx, dts[t]))
                q4_pv_bounds(ctx, &rp, &rq, &rkt, v, L, hkv, d, 1, hkv * g, pvb);
            for (int64_t r = 0; r < hkv * g; r++) {
                double rmax = 0.0, excess = 0.0;
                for (int64_t e = 0; e < d; e++) rmax = fmax(rmax, fabs(ref[r * d + e]));
                for (int64_t e = 0; e < d; e++) {
                    const double err = fabs((double)out[r * d + e] - ref[r * d + e]);
                    excess = fmax(excess, err - 2e-4 * (1.0 + rmax) - pvb[r * d + e]);
                    if (pvb[r * d + e] > 0.0)
                        q4_pv_worst = fmax(q4_pv_worst, (err - 2e-4 * (1.0 + rmax)) / pvb[r * d + e]);
                }
                KV_CHECK(excess <= 0.0, "meta layout %s d=%lld row %lld: error %g above the bound",
                         kv_dtname(dts[t]), (long long)d, (long long)r, excess);
            }
            free(k); free(v); free(q); free(rk); free(rv); free(qr); free(out); free(ref); free(pvb);
        }
}

/* Decode of the same tokens from caches of each storage type, against the
 * f32 cache: the error quantisation costs (reported, loosely bounded). */
static void quant_error(attn_context *ctx, int quick)
{
    const int64_t hkv = 2, g = 4, d = 128, L = quick ? 512 : 2048, sq = 1;
    static const attn_dtype dts[] = { ATTN_F32, ATTN_F16, ATTN_BF16, ATTN_Q8, ATTN_Q4 };
    float *k = malloc((size_t)(L * hkv * d) * 4), *v = malloc((size_t)(L * hkv * d) * 4);
    float *q = malloc((size_t)(sq * hkv * g * d) * 4);
    for (int64_t i = 0; i < L * hkv * d; i++) { k[i] = kv_randn(); v[i] = kv_randn(); }
    for (int64_t i = 0; i < sq * hkv * g * d; i++) q[i] = kv_randn();
    float *outs[5];
    for (int t = 0; t < 5; t++) {
        attn_kv_cache *kc = cache_of(ctx, dts[t], hkv, d, 64, L, k, v);
        outs[t] = calloc((size_t)(sq * hkv * g * d), 4);
        attn_tensor tq = attn_tensor_4d(q, ATTN_F32, 1, sq, hkv * g, d);
        attn_tensor to = attn_tensor_4d(outs[t], ATTN_F32, 1, sq, hkv * g, d);
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        p.causal = 1;
        int32_t s0 = 0;
        KV_OK(attn_decode(ctx, &p, &tq, kc, &s0, &to, NULL));
        attn_kv_cache_destroy(kc);
    }
    const int64_t n = sq * hkv * g * d;
    for (int t = 1; t < 5; t++) {
        double se = 0.0, sr = 0.0, mx = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double e = (double)outs[t][i] - outs[0][i];
            se += e * e; sr += (double)outs[0][i] * outs[0][i];
            mx = fmax(mx, fabs(e));
        }
        double rel = sqrt(se / (sr > 0 ? sr : 1));
        printf("quantisation error of %-4s vs f32 cache (L=%lld, D=128, N(0,1) data): "
               "relative rms %.3e, max abs %.3e\n", kv_dtname(dts[t]), (long long)L, rel, mx);
        double bound = dts[t] == ATTN_Q4 ? 0.35 : dts[t] == ATTN_Q8 ? 0.03 : 0.01;
        KV_CHECK(rel < bound, "%s relative error %g above %g", kv_dtname(dts[t]), rel, bound);
    }
    for (int t = 0; t < 5; t++) free(outs[t]);
    free(k); free(v); free(q);
}

int main(void)
{
    const int quick = kv_quick();
    attn_context *ctx = NULL;
    if (attn_context_create(NULL, &ctx) != ATTN_OK) {
        fprintf(stderr, "context: %s\n", attn_last_error());
        return 1;
    }
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(ctx, 0, &info);
    const int n = quick ? 25 : 150;
    for (int i = 0; i < n; i++)
        run_case(ctx, i, quick);
    meta_layouts(ctx);
    quant_error(ctx, quick);
    if (int8_pv(ctx, ATTN_Q4))
        printf("Q4 8-bit P.V: error rms %.2e of the outputs' rms; largest error (beyond the float "
               "tolerance) / its bound: %.3f\n", sqrt(q4_pv_se / (q4_pv_so > 0.0 ? q4_pv_so : 1.0)),
               q4_pv_worst);
    attn_context_destroy(ctx);
    printf("test_decode (%s kernels): %d cases, %d failures\n", attn_isa_name(info.isa), n, kv_failures);
    return kv_failures ? 1 : 0;
}
