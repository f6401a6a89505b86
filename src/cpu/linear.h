/* CPU linear attention: the micro-kernel table (scalar here, SIMD sets in
 * simd/<isa>_linear.c), the per-(sequence, head) task that the driver hands
 * to the recurrent and chunkwise forms, and the backend entry point. */
#ifndef ATTN_CPU_LINEAR_H
#define ATTN_CPU_LINEAR_H

#include <stddef.h>
#include <stdint.h>
#include "../backend.h"
#include "scratch.h"

/* The input rows of the work that follows (and its output rows, for
 * writing), fetched a line at a time from inside the GEMMs' k loops: one
 * line every few multiply-add steps keeps only a few line fill buffers busy
 * with memory, where bursts of whole rows between the products took all of
 * them and stalled the GEMMs' own L2 reads (measured 2-5% faster per thread
 * with 4 KiB pages, 5-7% with 2 MiB pages). */
enum { ATTN_LINEAR_PF_VIEWS = 6 };
typedef struct attn_linear_pf {
    const char *base[ATTN_LINEAR_PF_VIEWS];
    int64_t stride[ATTN_LINEAR_PF_VIEWS], bytes[ATTN_LINEAR_PF_VIEWS];
    int     hint[ATTN_LINEAR_PF_VIEWS];     /* 0: to L1, 1: to L2 only, 2: for writing */
    int     nviews, view;                   /* views in the work, the one in progress */
    int64_t rows, row;                      /* rows per view, the row in progress */
    /* The next line (NULL: done), the end of its row and its view's hint:
     * all that an issue inside a GEMM tile reads but once a row. */
    const char *next, *row_end;
    int     next_hint;
    /* The walk list: the first line of every row of every view (the output
     * too, streamed or not), for its page walk; phase p holds the rows
     * r = p, p + step[v], ... of each view v (phase 0: the rows that open a
     * PTE span). Its cursor: phase, view and row of the next walk. */
    int64_t step[ATTN_LINEAR_PF_VIEWS], wphases, wphase, wrow;
    int     wviews, wview;
} attn_linear_pf;

/* Issues the next `walks` prefetches of pf's walk list (INT_MAX: all that
 * are left), each a row's first line, to L2. */
static inline void attn_linear_pf_walk(attn_linear_pf *pf, int walks)
{
    while (walks > 0 && pf->wphase < pf->wphases) {
        const int v = pf->wview;
        if (pf->wphase < pf->step[v] && pf->wrow < pf->rows) {
            __builtin_prefetch(pf->base[v] + pf->wrow * pf->stride[v], 0, 1);
            pf->wrow += pf->step[v];
            walks--;
            continue;
        }
        if (++pf->wview == pf->wviews) {                 /* the next phase */
            pf->wview = 0;
            pf->wphase++;
        }
        pf->wrow = pf->wphase;
    }
}

/* Points next, row_end and next_hint at the row in progress (next NULL
 * past the last view). */
static inline void attn_linear_pf_seek(attn_linear_pf *pf)
{
    if (pf->view >= pf->nviews) {
        pf->next = NULL;
        return;
    }
    pf->next = pf->base[pf->view] + pf->row * pf->stride[pf->view];
    pf->row_end = pf->next + pf->bytes[pf->view];
    pf->next_hint = pf->hint[pf->view];
}

/* Issues the line at nx, pf's next one, and returns the line after it (NULL
 * once pf is done). The GEMM tiles keep nx in a register across their steps
 * and store it back to pf->next at the end, rather than load and store
 * pf->next at every issue. */
static inline const char *attn_linear_pf_line(attn_linear_pf *pf, const char *nx)
{
    switch (pf->next_hint) {
    case 0: __builtin_prefetch(nx); break;
    case 1: __builtin_prefetch(nx, 0, 1); break;
    default: __builtin_prefetch(nx, 1); break;
    }
    nx += 64;
    if (nx >= pf->row_end) {                   /* the next row, or view */
        if (++pf->row == pf->rows) {
            pf->row = 0;
            pf->view++;
        }
        attn_linear_pf_seek(pf);
        nx = pf->next;
    }
    return nx;
}

/* Issues the next `lines` prefetches of *pf (none once it is done). */
static inline void attn_linear_pf_issue(attn_linear_pf *pf, int lines)
{
    const char *nx = pf->next;
    for (; lines > 0 && nx; lines--)
        nx = attn_linear_pf_line(pf, nx);
    pf->next = nx;
}

typedef struct attn_linear_kernels {
    const char *name;
    /* C[i*ldc + j] (=, += or -= by acc = 0, 1, -1)
     *     sum_{p<k} A[i*rsa + p*csa] * B[p*ldb + j]     for i < m, j < n.
     * (rsa, csa) = (lda, 1) is A row-major, (1, lda) is A transposed.
     * k = 0 with acc = 0 zeroes C. B and C rows need not be aligned.
     * pf (or NULL): one line of it is prefetched every ATTN_LINEAR_PF_STEPS
     * steps of k in each register tile. */
    void (*gemm)(int m, int n, int k, const float *A, int64_t rsa, int64_t csa,
                 const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
                 attn_linear_pf *pf);
    /* A chunk's state products in one pass over the columns of S (dk x dv,
     * ld lds), n tokens:
     *   O = Qh S + A U                 (Qh: n x dk, A: n x n lower triangular,
     *                                   zeros above the diagonal; U: n x dv)
     *   S = diag(d) S + KT U           (KT: dk x n)
     * with the S on entry on both lines. All row-major (leading dimensions
     * lq, la, lu, lkt, lds, lo). stream: O's rows start on 64-byte
     * boundaries and dv is a multiple of 16; they are then written with
     * stores that bypass the caches where the ISA has them, then a fence. */
    void (*chunk_products)(int n, int dk, int dv, const float *Qh, int64_t lq, const float *A,
                           int64_t la, const float *U, int64_t lu, const float *KT, int64_t lkt,
                           const float *d, float *S, int64_t lds, float *O, int64_t lo,
                           int stream, attn_linear_pf *pf);
    /* y = exp(y) in place; -inf gives 0. */
    void (*vexp)(float *y, int64_t n);
    /* Recurrent row update: s = a*s + b*u; o += c*s (n floats each). */
    void (*row_update)(float *s, float a, float b, const float *u, float c, float *o, int64_t n);
    /* y += a * x (n floats). */
    void (*axpy)(float *y, float a, const float *x, int64_t n);
    /* dst = x * exp(a - b) elementwise (n floats); a or b NULL means 0.
     * dst may be x. */
    void (*mul_exp)(float *dst, const float *x, const float *a, const float *b, int64_t n);
    /* dst = x * y elementwise (n floats); dst may be x. */
    void (*vmul)(float *dst, const float *x, const float *y, int64_t n);
    /* y *= a (n floats). */
    void (*scal)(float *y, float a, int64_t n);
    /* dst = max(x, lo) elementwise (n floats); NaN stays NaN. */
    void (*max_floor)(float *dst, const float *x, float lo, int64_t n);
    /* A chunk's per-channel log-gates (rows of g, ld ldg; n floats a row)
     * into its running sums (G, AG: ld ldga), and where x is not NULL the
     * forward gate_scan of x fused in, so the token gates are read once:
     *   y_r = max(g_r, lo) (NaN stays NaN), AG_r = exp(y_r),
     *   G_r = y_0 + ... + y_r,  dst_r = scale * x_r * AG_0 * ... * AG_r.
     * G may be g (ldg = ldga). pf (or NULL): ATTN_LINEAR_PF_WALKS_PER_ROW of
     * its walk list go out with each row of each pass over the columns, the
     * rest are the caller's. */
    void (*gate_load)(float *G, float *AG, int64_t ldga, const float *g, int64_t ldg, int rows,
                      int64_t n, float lo, float *dst, int64_t ldd, const float *x, int64_t ldx,
                      float scale, attn_linear_pf *pf);
    /* Gate products along rows (a: per-token gates exp(g) <= 1; ldd, ldx,
     * lda: the leading dimensions of dst, x and a), n floats a row:
     *   forward:  dst_r = scale * x_r * a_0 * ... * a_r
     *   reverse:  dst_r = scale * x_r * a_{r+1} * ... * a_{rows-1}
     * dst may be x (with ldd = ldx). x may be a caller's tensor rows, so
     * the scan doubles as the load and the scale is folded in. */
    void (*gate_scan)(float *dst, int64_t ldd, const float *x, int64_t ldx, const float *a,
                      int64_t lda, int rows, int64_t n, int reverse, float scale);
    /* The same products stored transposed: dst[c*ldd + r] = dst_r[c]; and
     * also each row of dst times its own factor, dst2[c*ldd + r] = dst_r[c] *
     * e[c], from the same registers. */
    void (*gate_scan_t)(float *dst, float *dst2, const float *e, int64_t ldd, const float *x,
                        int64_t ldx, const float *a, int64_t lda, int rows, int64_t n,
                        int reverse, float scale);
    /* dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols. */
    void (*transpose)(float *dst, int64_t ldd, const float *src, int64_t lds, int rows, int cols);
    /* dst row r = src row r (n floats each, r < rows) with stores that bypass
     * the caches where the ISA has them, then a store fence. */
    void (*stream_rows)(float *dst, int64_t ldd, const float *src, int64_t lds, int rows,
                        int64_t n);
} attn_linear_kernels;

extern const attn_linear_kernels attn_linear_kernels_scalar;
/* chunk_products over columns [j0, j1) only, in plain loops: the scalar
 * set's whole product and the SIMD sets' columns past their last vector. */
void attn_linear_chunk_products_cols(int n, int dk, int j0, int j1, const float *Qh, int64_t lq,
                                     const float *A, int64_t la, const float *U, int64_t lu,
                                     const float *KT, int64_t lkt, const float *d, float *S,
                                     int64_t lds, float *O, int64_t lo);
/* gate_scan_t over columns [j0, n), the same way. */
void attn_linear_gate_scan_t_cols(float *dst, float *dst2, const float *e, int64_t ldd,
                                  const float *x, int64_t ldx, const float *a, int64_t lda,
                                  int rows, int64_t j0, int64_t n, int reverse, float scale);
/* gate_load over columns [j0, n): the scalar set's and the SIMD sets'
 * columns past their last vector. */
void attn_linear_gate_load_cols(float *G, float *AG, int64_t ldga, const float *g, int64_t ldg,
                                int rows, int64_t j0, int64_t n, float lo, float *dst,
                                int64_t ldd, const float *x, int64_t ldx, float scale);
/* gate_scan over columns [j0, n), element (r, j) to dst[r * rs + j * cs]:
 * the scalar set's scans (plain and transposed) and the SIMD sets' columns
 * past their last vector. */
void attn_linear_gate_scan_cols(float *dst, int64_t rs, int64_t cs, const float *x, int64_t ldx,
                                const float *a, int64_t lda, int rows, int64_t j0, int64_t n,
                                int reverse, float scale);
const attn_linear_kernels *attn_linear_kernels_avx2(void);
const attn_linear_kernels *attn_linear_kernels_avx512(void);
const attn_linear_kernels *attn_linear_kernels_neon(void);

/* Multiply-add steps per prefetched line in the GEMMs: a chunk of 32 tokens
 * at Dk = Dv = 128 runs about 3.8K steps of register tiles (AVX-512, 8 x 3
 * vectors) against 1K lines of the next chunk's inputs; at 4 steps a line
 * the last 7% of the lines would go out together after the products. */
#define ATTN_LINEAR_PF_STEPS 3

/* Page walks (attn_linear_pf_walk) per row of a gate_load pass: a chunk of
 * 32 rows, Dk = 128, has 64 rows of AVX-512 passes against 160 walks (q, k,
 * v, g, out); they all go out inside the first 54 or so. */
#define ATTN_LINEAR_PF_WALKS_PER_ROW 3

/* AUTO picks the recurrent form for sequences this short. */
#define ATTN_LINEAR_RECURRENT_MAX_LEN 16

/* Log-gates below this are clamped to it: exp(-80) ~ 1.8e-35 is a reset in
 * f32, and the clamp keeps -inf out of the cumulative sums (inf - inf). */
#define ATTN_LINEAR_G_FLOOR (-80.0f)

/* One (sequence, head) of a call. S (dk x lds floats) and z (dk) hold the
 * state on entry (state_in or zeros) and on exit. */
typedef struct attn_linear_task {
    const attn_linear_problem *p;
    const attn_linear_kernels *ks;
    int64_t bt, t0, len, h;   /* batch index into the tensors, first token, length, head */
    float  *S;                /* dk rows of lds floats */
    int     direct;           /* S is the head's state_out rows, not a workspace copy */
    int64_t lds;
    float  *z;                /* normaliser state (normalize), dk floats */
    float  *ws;               /* scratch: attn_linear_*_ws_floats */
    /* The work that follows this chunk in the same thread: head pf_h, tokens
     * from the chunk start + pf_dc. Its rows are prefetched while this chunk
     * computes, so that they arrive just in time and stay in L2. */
    int64_t pf_h, pf_dc;
    /* Chunkwise, non-delta kinds only: update the state, write no output. */
    int     state_only;
    float  *gsum;             /* chunkwise: += the chunks' summed log-gates, or NULL */
} attn_linear_task;

/* Token loads shared by both forms (linear_driver.c). */
void attn_linear_load_qk(const attn_linear_task *t, const attn_view *x, int64_t i, float *dst,
                         float scale);
void attn_linear_load_v(const attn_linear_task *t, int64_t i, float *dst);
/* Rows of the 4-d tensor x of the task's head from token i, where they are
 * f32 with contiguous rows: *ld = floats from one token's row to the next.
 * NULL if they need a converted copy. */
const float *attn_linear_f32_rows(const attn_linear_task *t, const attn_view *x, int64_t i,
                                  int64_t *ld);
/* The same for q or k, where they can be read in place: also neither
 * l2-normalised nor mapped by a feature map. */
const float *attn_linear_rows_in_place(const attn_linear_task *t, const attn_view *x, int64_t i,
                                       int64_t *ld);
/* Log-gate of token i: per-channel into g[0..dk), scalar into g[0]; returns 0 if no gate. */
int  attn_linear_load_g(const attn_linear_task *t, int64_t i, float *g);
/* *pf = the rows of head h, tokens [i0, i0 + n) of every input, and of the
 * output for writing (clipped to the task), and their walk list; none
 * issued yet. */
void attn_linear_pf_init(attn_linear_pf *pf, const attn_linear_task *t, int64_t h, int64_t i0,
                         int64_t n);
float attn_linear_load_beta(const attn_linear_task *t, int64_t i);
void attn_linear_store_o(const attn_linear_task *t, int64_t i, const float *o);
/* Rows [i0, i0 + n) of the output from o (ld lo): streamed past the caches
 * when attn_linear_streams_out, else row by row through attn_linear_store_o. */
void attn_linear_store_o_rows(const attn_linear_task *t, int64_t i0, int n, const float *o,
                              int64_t lo);
int  attn_linear_streams_out(const attn_linear_problem *p);
/* Output rows [i0, ...) of the task's head, where the products may stream
 * them there themselves (attn_linear_kernels.chunk_products' stream: f32,
 * streamed output, rows on 64-byte boundaries, dv a multiple of 16);
 * *ld = floats from one row to the next. NULL otherwise. */
float *attn_linear_out_rows_streamed(const attn_linear_task *t, int64_t i0, int64_t *ld);

/* The task of heads of sequence b (bt, t0, len; lds); h, S, z, ws are the caller's. */
void attn_linear_task_init(attn_linear_task *t, const attn_linear_problem *p,
                           const attn_linear_kernels *ks, int64_t b, int64_t lds);
/* S (and z) from state_in (z_in) or zeros; to state_out (z_out) if asked. */
void attn_linear_load_state(const attn_linear_problem *p, int64_t b, attn_linear_task *t);
void attn_linear_store_state(const attn_linear_problem *p, int64_t b, const attn_linear_task *t);

size_t attn_linear_recurrent_ws_floats(const attn_linear_problem *p);
void   attn_linear_recurrent(const attn_linear_task *t);
size_t attn_linear_chunk_ws_floats(const attn_linear_problem *p);
/* Chunks starting at c_begin, c_begin + C, ... below c_end (and the length). */
void   attn_linear_chunkwise(const attn_linear_task *t, int64_t c_begin, int64_t c_end);

/* Sequence-parallel chunkwise form (linear_segments.c): the segments per
 * (sequence, head) pair worth using with `threads` threads (1: not this
 * form), and the run itself. */
int64_t     attn_linear_segments_for(const attn_linear_problem *p, int threads);
attn_status attn_linear_segments(const attn_linear_problem *p, const attn_linear_kernels *ks,
                                 int64_t lds, int64_t P, int threads, attn_cpu_scratch *scratch);

attn_status attn_cpu_linear(attn_device *dev, const attn_linear_problem *p);

static inline int64_t attn_linear_round16(int64_t x) { return (x + 15) / 16 * 16; }
/* Leading dimension (floats) of workspace rows and states: x rounded up to
 * whole 64-byte lines, and to an odd number of lines. With an even count
 * (128 floats: 8 lines) consecutive rows fall on few L1 sets: the 2-line
 * column panel of a 128-row state covers 16 of the 64 sets, 256 lines for
 * 192 ways, so a GEMM's panel misses L1 on every pass. An odd count spreads
 * the rows over all the sets. */
static inline int64_t attn_linear_ld(int64_t x)
{
    const int64_t r = attn_linear_round16(x);
    return r / 16 % 2 ? r : r + 16;
}
static inline int attn_linear_is_delta(attn_linear_kind k)
{
    return k == ATTN_LINEAR_DELTA || k == ATTN_LINEAR_GATED_DELTA || k == ATTN_LINEAR_KDA;
}

#endif
