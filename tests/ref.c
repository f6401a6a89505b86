/*
 * Double-precision reference for the libattn tests. See ref.h.
 * Independent of src/: only the public header is used, for the types.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ref.h"

/* ------------------------------------------------------------------------ */
/* 16-bit floats                                                            */
/* ------------------------------------------------------------------------ */

float ref_f16_to_f32(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp((double)m, -24);                 /* zero / subnormal */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp((double)(m + 1024), e - 25);     /* 1.m * 2^(e-15) */
    return (float)(sign ? -v : v);
}

uint16_t ref_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return sign | 0x7e00u;                     /* NaN */
    if (ax >= 0x477ff000u)
        return sign | 0x7c00u;                     /* >= 65520 (incl. inf): inf */
    if (ax < 0x38800000u) {                        /* below 2^-14: half subnormal */
        if (ax < 0x33000000u)                      /* below 2^-25: rounds to 0 */
            return sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)e;                  /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 127 + 15, m = ax & 0x7fffffu;
    uint32_t q = (e << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++;                                       /* may carry into the exponent: fine */
    return (uint16_t)(sign | q);
}

float ref_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t ref_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u);    /* quiet NaN */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

double ref_round_to(attn_dtype dt, double x)
{
    switch (dt) {
    case ATTN_F32:  return (double)(float)x;
    case ATTN_F16:  return (double)ref_f16_to_f32(ref_f32_to_f16((float)x));
    case ATTN_BF16: return (double)ref_bf16_to_f32(ref_f32_to_bf16((float)x));
    case ATTN_U8:   return x <= 0 ? 0 : x >= 255 ? 255 : floor(x + 0.5);
    default:        return NAN;
    }
}

/* ------------------------------------------------------------------------ */
/* Tensor access                                                            */
/* ------------------------------------------------------------------------ */

size_t ref_dtype_size(attn_dtype dt)
{
    switch (dt) {
    case ATTN_F32: return 4;
    case ATTN_F16: case ATTN_BF16: return 2;
    case ATTN_U8: return 1;
    default: return 0;
    }
}

int64_t ref_numel(const attn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

int64_t ref_elem_offset(const attn_tensor *t, const int64_t *idx)
{
    int zero = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->stride[i] != 0)
            zero = 0;
    int64_t off = 0;
    if (zero) {
        for (int i = 0; i < t->ndim; i++)
            off = off * t->shape[i] + idx[i];
    } else {
        for (int i = 0; i < t->ndim; i++)
            off += idx[i] * t->stride[i];
    }
    return off;
}

double ref_get(const attn_tensor *t, const int64_t *idx)
{
    int64_t o = ref_elem_offset(t, idx);
    const unsigned char *b = (const unsigned char *)t->data;
    switch (t->dtype) {
    case ATTN_F32: { float f; memcpy(&f, b + 4 * o, 4); return f; }
    case ATTN_F16: { uint16_t h; memcpy(&h, b + 2 * o, 2); return ref_f16_to_f32(h); }
    case ATTN_BF16: { uint16_t h; memcpy(&h, b + 2 * o, 2); return ref_bf16_to_f32(h); }
    case ATTN_U8: return b[o];
    default: return NAN;
    }
}

void ref_set(const attn_tensor *t, const int64_t *idx, double x)
{
    int64_t o = ref_elem_offset(t, idx);
    unsigned char *b = (unsigned char *)t->data;
    switch (t->dtype) {
    case ATTN_F32: { float f = (float)x; memcpy(b + 4 * o, &f, 4); break; }
    case ATTN_F16: { uint16_t h = ref_f32_to_f16((float)x); memcpy(b + 2 * o, &h, 2); break; }
    case ATTN_BF16: { uint16_t h = ref_f32_to_bf16((float)x); memcpy(b + 2 * o, &h, 2); break; }
    case ATTN_U8: b[o] = (unsigned char)ref_round_to(ATTN_U8, x); break;
    default: break;
    }
}

/* A 4-d tensor read into a contiguous double array (row-major). */
static double *load4(const attn_tensor *t)
{
    int64_t n = ref_numel(t);
    double *a = malloc((size_t)(n > 0 ? n : 1) * sizeof *a);
    if (!a)
        return NULL;
    int64_t idx[4], p = 0;
    for (idx[0] = 0; idx[0] < t->shape[0]; idx[0]++)
        for (idx[1] = 0; idx[1] < t->shape[1]; idx[1]++)
            for (idx[2] = 0; idx[2] < t->shape[2]; idx[2]++)
                for (idx[3] = 0; idx[3] < t->shape[3]; idx[3]++)
                    a[p++] = ref_get(t, idx);
    return a;
}

/* mask / block_mask element with broadcast over dims 0 and 1. */
static double get_bcast(const attn_tensor *t, int64_t b, int64_t h, int64_t i, int64_t j)
{
    int64_t idx[4] = { t->shape[0] == 1 ? 0 : b, t->shape[1] == 1 ? 0 : h, i, j };
    return ref_get(t, idx);
}

/* ------------------------------------------------------------------------ */
/* Sequences (dense batch or varlen)                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    int64_t b;          /* batch index into q/k/v/out (0 for varlen) */
    int64_t q0, sq;     /* first packed row and count */
    int64_t k0, sk;
    int64_t mb;         /* batch index into mask / block_mask */
} seq_t;

static int get_seqs(const attn_sdpa_params *p, const attn_tensor *q, const attn_tensor *k,
                    seq_t **out, int64_t *n)
{
    const int varlen = p->cu_seqlens_q || p->cu_seqlens_k;
    if (varlen) {
        if (!p->cu_seqlens_q || !p->cu_seqlens_k || p->num_seqs < 1 || q->shape[0] != 1) {
            fprintf(stderr, "ref_sdpa: bad varlen arguments\n");
            return -1;
        }
        *n = p->num_seqs;
    } else {
        *n = q->shape[0];
    }
    seq_t *s = calloc((size_t)(*n > 0 ? *n : 1), sizeof *s);
    if (!s)
        return -1;
    for (int64_t i = 0; i < *n; i++) {
        if (varlen) {
            s[i].b = 0;
            s[i].q0 = p->cu_seqlens_q[i];
            s[i].sq = p->cu_seqlens_q[i + 1] - p->cu_seqlens_q[i];
            s[i].k0 = p->cu_seqlens_k[i];
            s[i].sk = p->cu_seqlens_k[i + 1] - p->cu_seqlens_k[i];
            if (s[i].sq < 0 || s[i].sk < 0 || s[i].q0 + s[i].sq > q->shape[1] ||
                s[i].k0 + s[i].sk > k->shape[1]) {
                fprintf(stderr, "ref_sdpa: bad cu_seqlens\n");
                free(s);
                return -1;
            }
        } else {
            s[i].b = i;
            s[i].q0 = 0;
            s[i].sq = q->shape[1];
            s[i].k0 = 0;
            s[i].sk = k->shape[1];
        }
        s[i].mb = i;
    }
    *out = s;
    return 0;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Visibility of key j (local) for query i (local), d = i + sk - sq. */
static int visible(const attn_sdpa_params *p, const seq_t *s, int64_t h, int64_t i, int64_t j)
{
    const int64_t d = i + s->sk - s->sq;
    const int sink = j < p->sink_tokens;
    if (p->causal && j > d)
        return 0;
    if (p->window_left >= 0 && !(j >= d - p->window_left || sink))
        return 0;
    if (p->window_right >= 0 && !(j <= d + p->window_right || sink))
        return 0;
    if (p->mask && p->mask->dtype == ATTN_U8 && get_bcast(p->mask, s->mb, h, i, j) == 0)
        return 0;
    if (p->block_mask &&
        get_bcast(p->block_mask, s->mb, h, i / p->block_q, j / p->block_k) == 0)
        return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* ref_sdpa                                                                 */
/* ------------------------------------------------------------------------ */

int ref_sdpa(const attn_sdpa_params *p, const attn_tensor *q, const attn_tensor *k,
             const attn_tensor *v, double *out, double *lse)
{
    const int64_t Bt = q->shape[0], Tq = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Tk = k->shape[1], Hkv = k->shape[2], Dv = v->shape[3];
    if (Hkv < 1 || Hq % Hkv || k->shape[3] != D || v->shape[1] != Tk || v->shape[2] != Hkv) {
        fprintf(stderr, "ref_sdpa: inconsistent shapes\n");
        return -1;
    }
    if (p->block_mask && (p->block_q < 1 || p->block_k < 1)) {
        fprintf(stderr, "ref_sdpa: block_q/block_k\n");
        return -1;
    }
    const int64_t group = Hq / Hkv;
    const int sigm = p->score == ATTN_SCORE_SIGMOID;
    const double scale = p->scale != 0.0f ? (double)p->scale : 1.0 / sqrt((double)D);
    const int additive = p->mask && p->mask->dtype != ATTN_U8;

    for (int64_t x = 0; x < Bt * Tq * Hq * Dv; x++)
        out[x] = 0.0;
    if (lse)
        for (int64_t x = 0; x < Bt * Hq * Tq; x++)
            lse[x] = sigm ? NAN : -INFINITY;

    seq_t *seqs;
    int64_t ns;
    if (get_seqs(p, q, k, &seqs, &ns))
        return -1;
    double *Q = load4(q), *K = load4(k), *V = load4(v);
    double *G = p->gate ? load4(p->gate) : NULL;
    double *s = malloc((size_t)(Tk > 0 ? Tk : 1) * sizeof *s);
    char *vis = malloc((size_t)(Tk > 0 ? Tk : 1));
    double *acc = malloc((size_t)Dv * sizeof *acc);
    if (!Q || !K || !V || (p->gate && !G) || !s || !vis || !acc) {
        fprintf(stderr, "ref_sdpa: out of memory\n");
        free(Q); free(K); free(V); free(G); free(s); free(vis); free(acc); free(seqs);
        return -1;
    }

    for (int64_t n = 0; n < ns; n++) {
        const seq_t *sq = &seqs[n];
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / group;
            for (int64_t i = 0; i < sq->sq; i++) {
                const int64_t row = sq->q0 + i;        /* packed query row */
                const int64_t d = i + sq->sk - sq->sq;
                const double *qi = Q + ((sq->b * Tq + row) * Hq + h) * D;
                double m = -INFINITY;
                int any = 0;
                for (int64_t j = 0; j < sq->sk; j++) {
                    vis[j] = (char)visible(p, sq, h, i, j);
                    if (!vis[j])
                        continue;
                    const double *kj = K + ((sq->b * Tk + sq->k0 + j) * Hkv + hk) * D;
                    double dot = 0.0;
                    for (int64_t c = 0; c < D; c++)
                        dot += qi[c] * kj[c];
                    double sc = scale * dot;
                    if (p->softcap > 0.0f)
                        sc = (double)p->softcap * tanh(sc / (double)p->softcap);
                    if (p->alibi_slopes)
                        sc -= (double)p->alibi_slopes[h] * fabs((double)(d - j));
                    if (additive)
                        sc += get_bcast(p->mask, sq->mb, h, i, j);
                    s[j] = sc;
                    any = 1;
                    if (sc > m)
                        m = sc;
                }
                for (int64_t c = 0; c < Dv; c++)
                    acc[c] = 0.0;
                double L = -INFINITY;
                if (sigm) {
                    for (int64_t j = 0; j < sq->sk; j++) {
                        if (!vis[j])
                            continue;
                        const double w = sigmoid(s[j] + (double)p->sigmoid_bias);
                        const double *vj = V + ((sq->b * Tk + sq->k0 + j) * Hkv + hk) * Dv;
                        for (int64_t c = 0; c < Dv; c++)
                            acc[c] += w * vj[c];
                    }
                    L = NAN;
                } else {
                    const int has_sink = p->sink_logits != NULL;
                    const double sink = has_sink ? (double)p->sink_logits[h] : -INFINITY;
                    if (has_sink && sink > m)
                        m = sink;
                    (void)any;
                    if (m == -INFINITY) {
                        /* no visible key with a finite score and no sink: zeros, -inf */
                        L = -INFINITY;
                    } else {
                        double sum = has_sink ? exp(sink - m) : 0.0;
                        for (int64_t j = 0; j < sq->sk; j++)
                            if (vis[j])
                                sum += exp(s[j] - m);
                        L = m + log(sum);
                        for (int64_t j = 0; j < sq->sk; j++) {
                            if (!vis[j])
                                continue;
                            const double w = exp(s[j] - L);
                            if (w == 0.0)
                                continue;
                            const double *vj = V + ((sq->b * Tk + sq->k0 + j) * Hkv + hk) * Dv;
                            for (int64_t c = 0; c < Dv; c++)
                                acc[c] += w * vj[c];
                        }
                    }
                }
                double *o = out + ((sq->b * Tq + row) * Hq + h) * Dv;
                const double *g = G ? G + ((sq->b * Tq + row) * Hq + h) * Dv : NULL;
                for (int64_t c = 0; c < Dv; c++)
                    o[c] = g ? acc[c] * sigmoid(g[c]) : acc[c];
                if (lse)
                    lse[(sq->b * Hq + h) * Tq + row] = L;
            }
        }
    }
    free(Q); free(K); free(V); free(G); free(s); free(vis); free(acc); free(seqs);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ref_sdpa_naive: a second formulation for self-checking                   */
/* ------------------------------------------------------------------------ */

int ref_sdpa_naive(const attn_sdpa_params *p, const attn_tensor *q, const attn_tensor *k,
                   const attn_tensor *v, double *out, double *lse)
{
    const int64_t Bt = q->shape[0], Tq = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Tk = k->shape[1], Hkv = k->shape[2], Dv = v->shape[3];
    const int sigm = p->score == ATTN_SCORE_SIGMOID;
    const double scale = p->scale != 0.0f ? (double)p->scale : 1.0 / sqrt((double)D);
    memset(out, 0, (size_t)(Bt * Tq * Hq * Dv) * sizeof *out);
    if (lse)
        for (int64_t x = 0; x < Bt * Hq * Tq; x++)
            lse[x] = sigm ? NAN : -INFINITY;
    const int varlen = p->cu_seqlens_q != NULL;
    const int64_t ns = varlen ? p->num_seqs : Bt;
    for (int64_t n = 0; n < ns; n++) {
        const int64_t b = varlen ? 0 : n;
        const int64_t q0 = varlen ? p->cu_seqlens_q[n] : 0;
        const int64_t k0 = varlen ? p->cu_seqlens_k[n] : 0;
        const int64_t sq = varlen ? p->cu_seqlens_q[n + 1] - q0 : Tq;
        const int64_t sk = varlen ? p->cu_seqlens_k[n + 1] - k0 : Tk;
        for (int64_t h = 0; h < Hq; h++) {
            /* Dense visibility: start visible, clear by each rule. */
            char *M = malloc((size_t)(sq * sk + 1));
            memset(M, 1, (size_t)(sq * sk + 1));
            for (int64_t i = 0; i < sq; i++)
                for (int64_t j = 0; j < sk; j++) {
                    int64_t off = j - i - (sk - sq);   /* j - d(i) */
                    if (p->causal && off > 0) M[i * sk + j] = 0;
                    if (j >= p->sink_tokens) {
                        if (p->window_left >= 0 && -off > p->window_left) M[i * sk + j] = 0;
                        if (p->window_right >= 0 && off > p->window_right) M[i * sk + j] = 0;
                    }
                    if (p->mask && p->mask->dtype == ATTN_U8) {
                        int64_t idx[4] = { p->mask->shape[0] > 1 ? n : 0,
                                           p->mask->shape[1] > 1 ? h : 0, i, j };
                        if (ref_get(p->mask, idx) == 0) M[i * sk + j] = 0;
                    }
                    if (p->block_mask) {
                        int64_t idx[4] = { p->block_mask->shape[0] > 1 ? n : 0,
                                           p->block_mask->shape[1] > 1 ? h : 0,
                                           i / p->block_q, j / p->block_k };
                        if (ref_get(p->block_mask, idx) == 0) M[i * sk + j] = 0;
                    }
                }
            for (int64_t i = 0; i < sq; i++) {
                double *w = calloc((size_t)(sk + 1), sizeof *w);
                double den = 0.0;
                for (int64_t j = 0; j < sk; j++) {
                    if (!M[i * sk + j])
                        continue;
                    double dot = 0.0;
                    for (int64_t c = 0; c < D; c++) {
                        int64_t iq[4] = { b, q0 + i, h, c }, ik[4] = { b, k0 + j, h / (Hq / Hkv), c };
                        dot += ref_get(q, iq) * ref_get(k, ik);
                    }
                    double x = dot * scale;
                    if (p->softcap > 0) x = tanh(x / p->softcap) * p->softcap;
                    if (p->alibi_slopes) x += -p->alibi_slopes[h] * (double)llabs(i + sk - sq - j);
                    if (p->mask && p->mask->dtype != ATTN_U8) {
                        int64_t idx[4] = { p->mask->shape[0] > 1 ? n : 0,
                                           p->mask->shape[1] > 1 ? h : 0, i, j };
                        x += ref_get(p->mask, idx);
                    }
                    w[j] = sigm ? 1.0 / (1.0 + exp(-(x + p->sigmoid_bias))) : exp(x);
                    den += w[j];
                }
                if (!sigm && p->sink_logits)
                    den += exp(p->sink_logits[h]);
                for (int64_t c = 0; c < Dv; c++) {
                    double a = 0.0;
                    for (int64_t j = 0; j < sk; j++) {
                        if (!M[i * sk + j])
                            continue;
                        int64_t iv[4] = { b, k0 + j, h / (Hq / Hkv), c };
                        a += w[j] * ref_get(v, iv);
                    }
                    if (!sigm)
                        a = den > 0 ? a / den : 0.0;
                    if (p->gate) {
                        int64_t ig[4] = { b, q0 + i, h, c };
                        a /= 1.0 + exp(-ref_get(p->gate, ig));
                    }
                    out[((b * Tq + q0 + i) * Hq + h) * Dv + c] = a;
                }
                if (lse && !sigm)
                    lse[(b * Hq + h) * Tq + q0 + i] = den > 0 ? log(den) : -INFINITY;
                free(w);
            }
            free(M);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ref_merge                                                                */
/* ------------------------------------------------------------------------ */

int ref_merge(const attn_tensor *outs, const attn_tensor *lses, int n, double *out, double *lse)
{
    if (n < 1)
        return -1;
    const int64_t B = outs[0].shape[0], S = outs[0].shape[1], H = outs[0].shape[2],
                  Dv = outs[0].shape[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; h < H; h++) {
                double m = -INFINITY;
                for (int i = 0; i < n; i++) {
                    int64_t il[3] = { b, h, s };
                    double l = ref_get(&lses[i], il);
                    if (l > m) m = l;
                }
                double *o = out + ((b * S + s) * H + h) * Dv;
                double L = -INFINITY;
                for (int64_t c = 0; c < Dv; c++)
                    o[c] = 0.0;
                if (m != -INFINITY) {
                    double sum = 0.0;
                    for (int i = 0; i < n; i++) {
                        int64_t il[3] = { b, h, s };
                        sum += exp(ref_get(&lses[i], il) - m);
                    }
                    L = m + log(sum);
                    for (int i = 0; i < n; i++) {
                        int64_t il[3] = { b, h, s };
                        double w = exp(ref_get(&lses[i], il) - L);
                        if (w == 0.0)
                            continue;
                        for (int64_t c = 0; c < Dv; c++) {
                            int64_t io[4] = { b, s, h, c };
                            o[c] += w * ref_get(&outs[i], io);
                        }
                    }
                }
                if (lse)
                    lse[(b * H + h) * S + s] = L;
            }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Self-check                                                               */
/* ------------------------------------------------------------------------ */

static int fails;
#define SC(cond, ...) do { if (!(cond)) { fails++; fprintf(stderr, "ref_selfcheck: " __VA_ARGS__); \
                                           fputc('\n', stderr); } } while (0)

static void check_conversions(double (*rnd)(void))
{
    /* f16: every finite value round-trips; NaN stays NaN; neighbours ordered. */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ref_f16_to_f32((uint16_t)h);
        uint16_t back = ref_f32_to_f16(f);
        if (isnan(f))
            SC((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "f16 NaN %04x -> %04x", h, back);
        else
            SC(back == h, "f16 round trip %04x -> %g -> %04x", h, f, back);
    }
    SC(ref_f16_to_f32(0x3c00) == 1.0f && ref_f16_to_f32(0xc000) == -2.0f &&
       ref_f16_to_f32(0x7bff) == 65504.0f && ref_f16_to_f32(0x0001) == ldexpf(1.0f, -24),
       "f16 decode constants");
    /* bf16 round trip over all values */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ref_bf16_to_f32((uint16_t)h);
        uint16_t back = ref_f32_to_bf16(f);
        if (isnan(f))
            SC(isnan(ref_bf16_to_f32(back)), "bf16 NaN %04x", h);
        else
            SC(back == h, "bf16 round trip %04x -> %04x", h, back);
    }
    /* Rounding: compare with nearest-of-two-neighbours search in double. */
    for (int t = 0; t < 200000; t++) {
        double mag = ldexp(1.0, (int)(rnd() * 44) - 28);    /* 2^-28 .. 2^15 */
        float f = (float)((rnd() * 2 - 1) * mag);
        if (t % 7 == 0) {                                   /* exact ties */
            uint16_t a = ref_f32_to_f16(f);
            float lo = ref_f16_to_f32(a), hi = ref_f16_to_f32((uint16_t)(a + 1));
            if (!isinf(hi)) f = (float)(((double)lo + hi) / 2);
        }
        uint16_t h = ref_f32_to_f16(f);
        double got = ref_f16_to_f32(h);
        /* neighbours of the result must not be strictly closer */
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint16_t nb = (uint16_t)(h + dlt);
            if (((nb ^ h) & 0x8000) || (nb & 0x7c00) == 0x7c00) continue;
            double other = ref_f16_to_f32(nb);
            double eg = fabs(got - f), eo = fabs(other - f);
            SC(eg < eo || (eg == eo && !(h & 1)), "f16 rounding of %.9g gave %04x", (double)f, h);
        }
        uint16_t bb = ref_f32_to_bf16(f);
        double gb = ref_bf16_to_f32(bb);
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint16_t nb = (uint16_t)(bb + dlt);
            if ((nb ^ bb) & 0x8000) continue;
            double other = ref_bf16_to_f32(nb), eg = fabs(gb - f), eo = fabs(other - f);
            SC(eg < eo || (eg == eo && !(bb & 1)), "bf16 rounding of %.9g gave %04x", (double)f, bb);
        }
    }
    SC(ref_f32_to_f16(65519.0f) == 0x7bff && ref_f32_to_f16(65520.0f) == 0x7c00 &&
       ref_f32_to_f16(-1e9f) == 0xfc00 && ref_f32_to_f16(ldexpf(1.0f, -25)) == 0 &&
       ref_f32_to_f16(ldexpf(1.5f, -25)) == 1, "f16 edge constants");
}

static attn_tensor mk(float *d, int64_t a, int64_t b, int64_t c, int64_t e)
{
    attn_tensor t;
    memset(&t, 0, sizeof t);
    t.data = d; t.dtype = ATTN_F32; t.ndim = 4;
    t.shape[0] = a; t.shape[1] = b; t.shape[2] = c; t.shape[3] = e;
    return t;
}

static void fillr(float *x, int64_t n, double (*rnd)(void), double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rnd());
}

static void check_sdpa(double (*rnd)(void))
{
    /* Hand-computed: one query, two keys, D = 1, scale 1. */
    {
        float qd[1] = { 1 }, kd[2] = { 0, (float)log(3.0) }, vd[2] = { 10, 20 };
        attn_tensor q = mk(qd, 1, 1, 1, 1), k = mk(kd, 1, 2, 1, 1), v = mk(vd, 1, 2, 1, 1);
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        p.scale = 1.0f;
        double o, l;
        ref_sdpa(&p, &q, &k, &v, &o, &l);
        /* weights 1/4, 3/4 */
        SC(fabs(o - 17.5) < 1e-6 && fabs(l - log(1 + 3.0f)) < 1e-6, "hand case 1: %g %g", o, l);
        float sl[1] = { 0.0f };                 /* sink adds exp(0) = 1 to the denominator */
        p.sink_logits = sl;
        ref_sdpa(&p, &q, &k, &v, &o, &l);
        SC(fabs(o - (10 + 60) / 5.0) < 1e-5 && fabs(l - log(5.0)) < 1e-6, "hand sink: %g %g", o, l);
        p.sink_logits = NULL;
        p.causal = 1;                           /* Sq=1, Sk=2: d = 1, both visible */
        p.window_left = 0;                      /* only j = 1 */
        ref_sdpa(&p, &q, &k, &v, &o, &l);
        SC(fabs(o - 20) < 1e-9 && fabs(l - log(3.0f)) < 1e-6, "hand window: %g %g", o, l);
        p.sink_tokens = 1;                      /* j = 0 visible again */
        ref_sdpa(&p, &q, &k, &v, &o, &l);
        SC(fabs(o - 17.5) < 1e-6, "hand sink_tokens: %g", o);
        p.window_left = -1; p.sink_tokens = 0; p.causal = 0;
        p.score = ATTN_SCORE_SIGMOID;
        p.sigmoid_bias = -1.0f;
        ref_sdpa(&p, &q, &k, &v, &o, NULL);
        double e = 10 / (1 + exp(1.0)) + 20 / (1 + exp(-(log(3.0f) - 1)));
        SC(fabs(o - e) < 1e-5, "hand sigmoid: %g vs %g", o, e);
        /* causal with Sq=2 > Sk=1: row 0 sees nothing */
        float q2[2] = { 1, 1 };
        attn_tensor qq = mk(q2, 1, 2, 1, 1), k1 = mk(kd, 1, 1, 1, 1), v1 = mk(vd, 1, 1, 1, 1);
        attn_sdpa_params pc = ATTN_SDPA_PARAMS_INIT;
        pc.causal = 1;
        double o2[2], l2[2];
        ref_sdpa(&pc, &qq, &k1, &v1, o2, l2);
        SC(o2[0] == 0 && l2[0] == -INFINITY && fabs(o2[1] - 10) < 1e-9 && fabs(l2[1]) < 1e-9,
           "hand causal Sq>Sk: %g %g %g %g", o2[0], l2[0], o2[1], l2[1]);
    }
    /* Random small problems: ref_sdpa vs ref_sdpa_naive, feature by feature. */
    for (int t = 0; t < 400; t++) {
        int varlen = t % 5 == 4;
        int64_t B = varlen ? 1 : 1 + t % 2, Hkv = 1 + t % 2, Hq = Hkv * (1 + (t / 2) % 3);
        int64_t D = 1 + (t * 7) % 9, Dv = 1 + (t * 5) % 6;
        int64_t Sq = 1 + (int64_t)(rnd() * 9), Sk = 1 + (int64_t)(rnd() * 12);
        int32_t cuq[4] = { 0 }, cuk[4] = { 0 };
        int64_t nseq = 3, msq = 0, msk = 0;
        if (varlen) {
            for (int i = 0; i < 3; i++) {
                int a = (int)(rnd() * 5), b = (int)(rnd() * 6);
                cuq[i + 1] = cuq[i] + a; cuk[i + 1] = cuk[i] + b;
                if (a > msq) msq = a;
                if (b > msk) msk = b;
            }
            Sq = cuq[3] + 1; Sk = cuk[3];      /* one packed row past the last sequence */
            if (Sk == 0) { Sk = 1; }
        }
        int64_t mB = varlen ? nseq : B, mSq = varlen ? msq : Sq, mSk = varlen ? msk : Sk;
        float *qd = malloc(sizeof(float) * B * Sq * Hq * D), *kd = malloc(sizeof(float) * B * Sk * Hkv * D);
        float *vd = malloc(sizeof(float) * B * Sk * Hkv * Dv), *gd = malloc(sizeof(float) * B * Sq * Hq * Dv);
        float *md = malloc(sizeof(float) * (mB * Hq * mSq * mSk + 1));
        unsigned char *um = malloc((size_t)(mB * Hq * mSq * mSk + 1));
        unsigned char *bm = malloc((size_t)(mB * Hq * mSq * mSk + 1));
        float sl[8], al[8];
        fillr(qd, B * Sq * Hq * D, rnd, -1.5, 1.5);
        fillr(kd, B * Sk * Hkv * D, rnd, -1.5, 1.5);
        fillr(vd, B * Sk * Hkv * Dv, rnd, -2, 2);
        fillr(gd, B * Sq * Hq * Dv, rnd, -3, 3);
        fillr(md, mB * Hq * mSq * mSk, rnd, -2, 2);
        fillr(sl, 8, rnd, -1, 2);
        fillr(al, 8, rnd, 0, 0.5);
        for (int64_t i = 0; i < mB * Hq * mSq * mSk; i++) {
            um[i] = rnd() < 0.7 ? (unsigned char)(1 + rnd() * 200) : 0;
            bm[i] = rnd() < 0.7;
        }
        attn_tensor q = mk(qd, B, Sq, Hq, D), k = mk(kd, B, Sk, Hkv, D), v = mk(vd, B, Sk, Hkv, Dv);
        attn_tensor g = mk(gd, B, Sq, Hq, Dv);
        int mbb = (t / 3) % 2, mhb = (t / 5) % 2;
        attn_tensor mf = mk(md, mbb ? 1 : mB, mhb ? 1 : Hq, mSq, mSk);
        attn_tensor mu = mf; mu.data = um; mu.dtype = ATTN_U8;
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        if (varlen) { p.cu_seqlens_q = cuq; p.cu_seqlens_k = cuk; p.num_seqs = nseq; }
        int f = (int)(rnd() * 1024);
        if (f & 1) p.causal = 1;
        if (f & 2) p.window_left = (int64_t)(rnd() * 4);
        if (f & 4) p.window_right = (int64_t)(rnd() * 4);
        if (f & 8) p.sink_tokens = (int64_t)(rnd() * 3);
        if (f & 16) p.softcap = 0.7f;
        if (f & 32) p.alibi_slopes = al;
        if (f & 64) p.mask = (f & 128) ? &mu : &mf;
        if (f & 256) p.gate = &g;
        if (f & 512) p.score = ATTN_SCORE_SIGMOID, p.sigmoid_bias = -0.5f;
        else if (t % 3 == 0) p.sink_logits = sl;
        attn_tensor bmt;
        if (t % 4 == 1) {
            p.block_q = 1 + (int64_t)(rnd() * 3);
            p.block_k = 1 + (int64_t)(rnd() * 4);
            bmt = mk(NULL, mbb ? mB : 1, mhb ? Hq : 1, (mSq + p.block_q - 1) / p.block_q,
                     (mSk + p.block_k - 1) / p.block_k);
            bmt.data = bm; bmt.dtype = ATTN_U8;
            p.block_mask = &bmt;
        }
        if (t % 6 == 5) p.scale = 0.37f;
        size_t no = (size_t)(B * Sq * Hq * Dv), nl = (size_t)(B * Hq * Sq);
        double *o1 = malloc(no * 8), *o2 = malloc(no * 8), *l1 = malloc(nl * 8), *l2 = malloc(nl * 8);
        ref_sdpa(&p, &q, &k, &v, o1, l1);
        ref_sdpa_naive(&p, &q, &k, &v, o2, l2);
        for (size_t i = 0; i < no; i++)
            SC(fabs(o1[i] - o2[i]) <= 1e-12 * (1 + fabs(o2[i])), "case %d flags %d: out[%zu] %.15g vs naive %.15g",
               t, f, i, o1[i], o2[i]);
        for (size_t i = 0; i < nl; i++) {
            if (p.score == ATTN_SCORE_SIGMOID) { SC(isnan(l1[i]), "sigmoid lse not NaN"); continue; }
            double a = l1[i], b = l2[i];
            if (p.sink_logits && b == -INFINITY) {
                /* naive has the sink in den, so den>0 always: never -inf with sinks */
            }
            SC((isinf(a) && isinf(b) && a == b) || fabs(a - b) <= 1e-12 * (1 + fabs(b)),
               "case %d flags %d: lse[%zu] %.15g vs naive %.15g", t, f, i, a, b);
        }
        free(o1); free(o2); free(l1); free(l2);
        free(qd); free(kd); free(vd); free(gd); free(md); free(um); free(bm);
    }
    /* ref_merge against ref_sdpa over a key split. */
    {
        int64_t Sq = 5, Sk = 11, H = 2, D = 4, Dv = 3;
        float qd[5 * 2 * 4], kd[11 * 2 * 4], vd[11 * 2 * 3];
        fillr(qd, 40, rnd, -2, 2); fillr(kd, 88, rnd, -2, 2); fillr(vd, 66, rnd, -2, 2);
        attn_tensor q = mk(qd, 1, Sq, H, D);
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        double full[5 * 2 * 3], fl[2 * 5], po[2][30], pl[2][10];
        attn_tensor k = mk(kd, 1, Sk, H, D), v = mk(vd, 1, Sk, H, Dv);
        ref_sdpa(&p, &q, &k, &v, full, fl);
        float pof[2][30], plf[2][10];
        attn_tensor outs[2], lses[2];
        int64_t cut = 4;
        for (int i = 0; i < 2; i++) {
            attn_tensor ki = mk(kd + (i ? cut * H * D : 0), 1, i ? Sk - cut : cut, H, D);
            attn_tensor vi = mk(vd + (i ? cut * H * Dv : 0), 1, i ? Sk - cut : cut, H, Dv);
            ref_sdpa(&p, &q, &ki, &vi, po[i], pl[i]);
            for (int x = 0; x < 30; x++) pof[i][x] = (float)po[i][x];
            for (int x = 0; x < 10; x++) plf[i][x] = (float)pl[i][x];
            outs[i] = mk(pof[i], 1, Sq, H, Dv);
            lses[i] = mk(plf[i], 1, H, Sq, 0);
            lses[i].ndim = 3;
        }
        double mo[30], ml[10];
        ref_merge(outs, lses, 2, mo, ml);
        for (int x = 0; x < 30; x++)
            SC(fabs(mo[x] - full[x]) < 1e-5, "ref_merge out[%d] %g vs %g", x, mo[x], full[x]);
        for (int x = 0; x < 10; x++)
            SC(fabs(ml[x] - fl[x]) < 1e-5, "ref_merge lse[%d] %g vs %g", x, ml[x], fl[x]);
    }
}

int ref_selfcheck(double (*rnd)(void))
{
    fails = 0;
    check_conversions(rnd);
    check_sdpa(rnd);
    return fails;
}
