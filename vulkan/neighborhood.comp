#version 450
/* attn_neighborhood as a Vulkan 1.1 compute shader: the port of
 * opencl/neighborhood.cl (its header explains the tiling).
 *
 * A workgroup owns a tile of queries of one head: one axis-0 position and
 * T1 x T2 positions of one dilation class on axes 1 and 2 (row r1*T2 + r2).
 * For each run of keys (axis-0 key j0, axis-1 key j1) the U2 keys of the
 * union of the tile's axis-2 windows are staged once in shared memory;
 * every query row that sees j1 scores exactly its own K2-wide axis-2
 * window (an invocation per (r2, kk) scores it for all rows r1 that see
 * the run, reading the k row once), then online softmax in f32 and
 * O += P V with O in registers:
 * invocation lid owns the (r2, c) pairs lid + i*WG (i < NP) of the T2 x DV
 * block for all T1 rows r1, which share r2's V rows, so each V value read
 * serves up to T1 accumulators (loops over them unrolled so that they stay
 * in registers). Shared-memory reads
 * are vec4 as in the OpenCL kernel: q and k rows zero-padded to D4 vec4s
 * (plus one against bank conflicts), score rows to K2P = 4*ceil(K2/4) (pads
 * score -inf), and K2P zero rows of V past the staged keys.
 *
 * Tensors are uint[] storage buffers addressed in elements of their dtype
 * (common.glsl); parameter words and the tile table are in binding 9
 * (offsets below, written by src/vulkan/neighborhood.c). Indices are 32-bit:
 * the host rejects tensors whose offsets do not fit. */

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 128;
layout(constant_id = 1) const int T1 = 8;      /* query positions per tile on axis 1 */
layout(constant_id = 2) const int D = 64;
layout(constant_id = 3) const int DV = 64;
layout(constant_id = 4) const int IN_DT = 0;   /* dtype of q, k, v */
layout(constant_id = 5) const int U2 = 16;     /* keys of a staged run, at most */
layout(constant_id = 6) const int K2 = 7;      /* kernel size on axis 2 */
layout(constant_id = 7) const int T2 = 8;      /* query positions per tile on axis 2 */

const int D4 = (D + 3) / 4;
const int QD4 = D4 + 1;                        /* padded Q and K rows, in vec4s */
const int K2P = (K2 + 3) / 4 * 4;
const int TQ = T1 * T2;
const int NP = (T2 * DV + WG - 1) / WG;        /* (r2, c) pairs per invocation */

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Qb { uint w[]; } Q;
layout(std430, binding = 1) readonly buffer Kb { uint w[]; } K;
layout(std430, binding = 2) readonly buffer Vb { uint w[]; } V;
layout(std430, binding = 3) buffer Ob { uint w[]; } O;
layout(std430, binding = 4) buffer Lb { float w[]; } L;
layout(std430, binding = 9) readonly buffer Pb { int w[]; } P;

/* Parameter words (src/vulkan/neighborhood.c): views as (element offset,
 * strides of [B, X, Y, Z, H, D]) (lse without D), then scalars. */
const int P_Q = 0, P_K = 7, P_V = 14, P_O = 21, P_L = 28, P_OUT_DT = 34, P_HAS_LSE = 35,
          P_NT = 36, P_LEN = 41, P_KER = 44, P_DIL = 47, P_CAUSAL = 50,
          P_GROUP = 53, P_SCALE = 54, P_TILES = 64;

ATTN_LOAD_FIXED(load_q, Q, IN_DT)
ATTN_LOAD_FIXED(load_k, K, IN_DT)
ATTN_LOAD_FIXED(load_v, V, IN_DT)
ATTN_STORE_ANY(store_o, O)

shared vec4 Qs[TQ * QD4];
shared vec4 Ks[U2 * QD4];
shared float Vs[(U2 + K2P) * DV];
shared vec4 S4[TQ * K2P / 4];
shared float Mr[TQ], Lr[TQ], Ar[TQ];

/* Window [s, e) on a class sub-grid of n positions around position p. */
void nb_window(int p, int n, int k, bool causal, out int s, out int e)
{
    if (causal) {
        s = max(0, p - k + 1);
        e = p + 1;
    } else {
        s = min(max(p - (k - 1) / 2, 0), n - k);
        e = s + k;
    }
}

int class_len(int a, int c)
{
    const int dil = P.w[P_DIL + a];
    return (P.w[P_LEN + a] - c + dil - 1) / dil;
}

/* Element offset of grid point (g0, g1, g2) of head h, batch b in view at w. */
int at(int w, int b, int g0, int g1, int g2, int h)
{
    return P.w[w] + b * P.w[w + 1] + g0 * P.w[w + 2] + g1 * P.w[w + 3] + g2 * P.w[w + 4] +
           h * P.w[w + 5];
}

void main()
{
    const int lid = int(gl_LocalInvocationID.x);
    const int tile = int(gl_WorkGroupID.x), h = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z), hk = h / P.w[P_GROUP];
    const int nt0 = P.w[P_NT], nt1 = P.w[P_NT + 1], nt2 = P.w[P_NT + 2];
    const int i2 = tile % nt2, i1 = tile / nt2 % nt1, i0 = tile / nt2 / nt1;
    const int c0 = P.w[P_TILES + 2 * i0], p0 = P.w[P_TILES + 2 * i0 + 1];
    const int c1 = P.w[P_TILES + 2 * (nt0 + i1)], p1 = P.w[P_TILES + 2 * (nt0 + i1) + 1];
    const int c2 = P.w[P_TILES + 2 * (nt0 + nt1 + i2)];
    const int p2 = P.w[P_TILES + 2 * (nt0 + nt1 + i2) + 1];
    const int n0 = class_len(0, c0), n1 = class_len(1, c1), n2 = class_len(2, c2);
    const int k0 = P.w[P_KER], k1 = P.w[P_KER + 1], k2 = P.w[P_KER + 2];
    const int d0 = P.w[P_DIL], d1 = P.w[P_DIL + 1], d2 = P.w[P_DIL + 2];
    const bool cz0 = P.w[P_CAUSAL] != 0, cz1 = P.w[P_CAUSAL + 1] != 0;
    const bool cz2 = P.w[P_CAUSAL + 2] != 0;
    const int m1 = min(T1, n1 - p1), m2 = min(T2, n2 - p2);
    const int g0 = c0 + d0 * p0;
    const float scale = intBitsToFloat(P.w[P_SCALE]);
    const int qd = P.w[P_Q + 6], kd = P.w[P_K + 6], vd = P.w[P_V + 6], od = P.w[P_O + 6];

    int s0, e0, u1s, u1e, u2s, u2e, tmp;
    nb_window(p0, n0, k0, cz0, s0, e0);
    nb_window(p1, n1, k1, cz1, u1s, tmp);
    nb_window(p1 + m1 - 1, n1, k1, cz1, tmp, u1e);
    nb_window(p2, n2, k2, cz2, u2s, tmp);
    nb_window(p2 + m2 - 1, n2, k2, cz2, tmp, u2e);
    const int nu = u2e - u2s;

    for (int e = lid; e < TQ * 4 * D4; e += WG) {
        const int r = e / (4 * D4), dd = e % (4 * D4), r1 = r / T2, r2 = r % T2;
        const int g1 = c1 + d1 * (p1 + r1), g2 = c2 + d2 * (p2 + r2);
        Qs[r * QD4 + dd / 4][dd % 4] = dd < D && r1 < m1 && r2 < m2 ?
            scale * load_q(at(P_Q, b, g0, g1, g2, h) + dd * qd) : 0.0;
    }
    for (int e = nu * DV + lid; e < (U2 + K2P) * DV; e += WG)
        Vs[e] = 0.0;
    for (int r = lid; r < TQ; r += WG) {
        Mr[r] = NEG_INF;
        Lr[r] = 0.0;
    }
    float acc[NP * T1];
    [[unroll]] for (int i = 0; i < NP * T1; i++)
        acc[i] = 0.0;

    for (int j0 = s0; j0 < e0; j0++)
        for (int j1 = u1s; j1 < u1e; j1++) {
            /* The rows that see j1: [a1, b1) of the tile's axis-1 rows. */
            int a1 = m1, b1 = m1;
            for (int r1 = 0; r1 < m1; r1++) {
                int ws, we;
                nb_window(p1 + r1, n1, k1, cz1, ws, we);
                if (ws <= j1 && j1 < we) {
                    if (a1 == m1)
                        a1 = r1;
                    b1 = r1 + 1;
                }
            }
            const int rlo = a1 * T2, rhi = b1 * T2;
            const int gk0 = c0 + d0 * j0, gk1 = c1 + d1 * j1;

            barrier();   /* the previous run's Ks, Vs, S are used */
            for (int e = lid; e < nu * 4 * D4; e += WG) {
                const int u = e / (4 * D4), dd = e % (4 * D4);
                Ks[u * QD4 + dd / 4][dd % 4] = dd < D ?
                    load_k(at(P_K, b, gk0, gk1, c2 + d2 * (u2s + u), hk) + dd * kd) : 0.0;
            }
            for (int e = lid; e < nu * DV; e += WG) {
                const int u = e / DV, c = e % DV;
                Vs[u * DV + c] = load_v(at(P_V, b, gk0, gk1, c2 + d2 * (u2s + u), hk) + c * vd);
            }
            barrier();

            /* A score per (r2, kk) for every row r1 that sees the run: one k
             * row read from shared memory serves them all. */
            for (int e = lid; e < T2 * K2P; e += WG) {
                const int r2 = e / K2P, kk = e % K2P;
                if (r2 >= m2)
                    continue;
                int ws, we;
                nb_window(p2 + r2, n2, k2, cz2, ws, we);
                const bool seen = ws + kk < we;
                vec4 a[T1];
                [[unroll]] for (int r1 = 0; r1 < T1; r1++)
                    a[r1] = vec4(0.0);
                if (seen) {
                    const int kr = (ws - u2s + kk) * QD4;
                    for (int j = 0; j < D4; j++) {
                        const vec4 kj = Ks[kr + j];
                        [[unroll]] for (int r1 = 0; r1 < T1; r1++)
                            if (r1 >= a1 && r1 < b1)
                                a[r1] = fma(Qs[(r1 * T2 + r2) * QD4 + j], kj, a[r1]);
                    }
                }
                [[unroll]] for (int r1 = 0; r1 < T1; r1++)
                    if (r1 >= a1 && r1 < b1)
                        S4[((r1 * T2 + r2) * K2P + kk) / 4][kk % 4] =
                            seen ? (a[r1].x + a[r1].y) + (a[r1].z + a[r1].w) : NEG_INF;
            }
            barrier();

            for (int r = rlo + lid; r < rhi; r += WG) {
                if (r % T2 >= m2)
                    continue;
                const int sr = r * (K2P / 4);
                vec4 mx4 = S4[sr];
                for (int j = 1; j < K2P / 4; j++)
                    mx4 = max(mx4, S4[sr + j]);
                const float mx = max(max(mx4.x, mx4.y), max(mx4.z, mx4.w));
                const float mn = max(Mr[r], mx);   /* finite: every row sees a key here */
                float sum = 0.0;
                for (int j = 0; j < K2P / 4; j++) {
                    const vec4 pk = exp(S4[sr + j] - mn);
                    S4[sr + j] = pk;
                    sum += (pk.x + pk.y) + (pk.z + pk.w);
                }
                Ar[r] = exp(Mr[r] - mn);
                Lr[r] = Lr[r] * Ar[r] + sum;
                Mr[r] = mn;
            }
            barrier();

            [[unroll]] for (int i = 0; i < NP; i++) {
                const int e = lid + i * WG, r2 = e / DV, c = e % DV;
                if (r2 >= m2)
                    continue;
                [[unroll]] for (int r1 = 0; r1 < T1; r1++)
                    if (r1 >= a1 && r1 < b1)
                        acc[i * T1 + r1] *= Ar[r1 * T2 + r2];
                int ws, we;
                nb_window(p2 + r2, n2, k2, cz2, ws, we);
                const int vb = (ws - u2s) * DV + c;
                for (int j = 0; j < K2P / 4; j++) {
                    const float v0 = Vs[vb + (4 * j) * DV], v1 = Vs[vb + (4 * j + 1) * DV];
                    const float v2 = Vs[vb + (4 * j + 2) * DV], v3 = Vs[vb + (4 * j + 3) * DV];
                    [[unroll]] for (int r1 = 0; r1 < T1; r1++)
                        if (r1 >= a1 && r1 < b1) {
                            const vec4 pj = S4[(r1 * T2 + r2) * (K2P / 4) + j];
                            float o = acc[i * T1 + r1];
                            o = fma(pj.x, v0, o);
                            o = fma(pj.y, v1, o);
                            o = fma(pj.z, v2, o);
                            acc[i * T1 + r1] = fma(pj.w, v3, o);
                        }
                }
            }
        }

    [[unroll]] for (int i = 0; i < NP; i++) {
        const int e = lid + i * WG, r2 = e / DV, c = e % DV;
        if (r2 >= m2)
            continue;
        const int g2 = c2 + d2 * (p2 + r2);
        [[unroll]] for (int r1 = 0; r1 < T1; r1++)
            if (r1 < m1)
                store_o(P.w[P_OUT_DT], at(P_O, b, g0, c1 + d1 * (p1 + r1), g2, h) + c * od,
                        acc[i * T1 + r1] / Lr[r1 * T2 + r2]);
    }
    if (P.w[P_HAS_LSE] != 0)
        for (int r = lid; r < TQ; r += WG) {
            const int r1 = r / T2, r2 = r % T2;
            if (r1 >= m1 || r2 >= m2)
                continue;
            const int g1 = c1 + d1 * (p1 + r1), g2 = c2 + d2 * (p2 + r2);
            L.w[at(P_L, b, g0, g1, g2, h)] = Mr[r] + log(Lr[r]);
        }
}
