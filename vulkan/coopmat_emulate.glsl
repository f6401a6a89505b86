/* Plain-loop stand-ins for the cooperative-matrix operations of
 * sdpa_coopmat.comp (ATTN_COOPMAT_EMULATE=1), so that its structure runs on
 * devices without VK_KHR_cooperative_matrix. Used inside main(), where sg
 * (the subgroup) and lane (the invocation in it) are defined.
 *
 * The matrices live in shared memory rather than registers (lavapipe
 * compiles large private arrays kept across barriers very slowly):
 *   accumulator  a slot of 16x16 floats in the subgroup's region of Ce;
 *                invocation lane only ever touches elements lane + SG * i,
 *                as a device's invocations hold their share, so the
 *                component-wise product is per element, as on a device;
 *   A            (0, offset) of a 16x16 copy in Ae (Q's fragments, which
 *                must outlive the K/V buffer they came from) or (1, offset)
 *                of the block in place in Ps (P, unchanged until used);
 *   B            its offset in KV (times 2, plus 1 for column-major), only
 *                ever loaded right before use. */

const int NCS = RB * NDV + RB + 1;               /* accumulator slots: O, S, factors */
shared float16_t Ae[NW * RB * ND * 256];
shared float Ce[NW * NCS * 256];

#define MAT_A ivec2
#define MAT_B int
#define DECL_A(name, n) ivec2 name[n]
#define DECL_C(name, n, base) int name[n]; \
    for (int em_i = 0; em_i < n; em_i++) name[em_i] = base + em_i
#define EM_C(m, e) Ce[(sg * NCS + (m)) * 256 + (e)]
#define EM_FOR(e) for (int e = lane; e < 256; e += SG)

#define C_ZERO(m) { EM_FOR(em_e) EM_C(m, em_e) = 0.0; }
#define C_SCALE(m, f) { EM_FOR(em_e) EM_C(m, em_e) *= EM_C(f, em_e); }
#define LOAD_AL(m, off) { \
    EM_FOR(em_e) EM_C(m, em_e) = Al[off + (em_e >> 4) * 4 + ((em_e & 15) >> 2)][em_e & 3]; }
#define STORE_S(m, off) { \
    EM_FOR(em_e) Ss[off + (em_e >> 4) * SS + ((em_e & 15) >> 2)][em_e & 3] = EM_C(m, em_e); }

#define LOAD_Q(m, off, slot) { \
    EM_FOR(em_e) Ae[(sg * RB * ND + (slot)) * 256 + em_e] = \
        KV[off + (em_e >> 4) * KVS + ((em_e & 15) >> 2)][em_e & 3]; \
    m = ivec2(0, (sg * RB * ND + (slot)) * 256); \
    subgroupBarrier(); }
#define LOAD_P(m, off) m = ivec2(1, (off) * 4)
#define LOAD_KT(m, off) m = 2 * (off) + 1
#define LOAD_V(m, off) m = 2 * (VOFF + (off))

/* Element (r, kk) of the A matrix a, (kk, n) of the B matrix b. */
float em_a(ivec2 a, int r, int kk)
{
    if (a.x == 0)
        return float(Ae[a.y + r * 16 + kk]);
    const int i = a.y + r * PS * 4 + kk;
    return float(Ps[i >> 2][i & 3]);
}

float em_b(int b, int kk, int n)
{
    const int i = (b >> 1) * 4 + ((b & 1) != 0 ? n * KVS * 4 + kk : kk * KVS * 4 + n);
    return float(KV[i >> 2][i & 3]);
}

#define MMA(c, a, b) { \
    EM_FOR(em_e) { \
        float em_acc = EM_C(c, em_e); \
        for (int em_k = 0; em_k < 16; em_k++) \
            em_acc += em_a(a, em_e >> 4, em_k) * em_b(b, em_k, em_e & 15); \
        EM_C(c, em_e) = em_acc; \
    } }
