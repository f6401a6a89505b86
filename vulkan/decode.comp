#version 450
/* attn_decode over a paged KV cache resident on the device (flash decoding).
 *
 * Mode 0 (push constant): one workgroup per task = (sequence, KV head,
 * chunk of its scanned keys, block of NR query rows). The Sq * Hq/Hkv query
 * rows of a KV head are one block where the registers allow (every decode
 * with Sq * Hq/Hkv <= NR), so every K/V row of the chunk is read once for
 * all of them; more rows take several blocks, each reading the chunk
 * (mostly from cache). Its invocations form NT = WG/TS teams of TS lanes; a team
 * takes one key at a time and each lane the dims 8c..8c+7 for chunks
 * c = lane + TS*k, read as one wide load (uvec4/uvec2) per chunk when the
 * rows allow it (VEC). Per tile of NT*KPT keys:
 *   1. each team has the K and V rows of its KPT keys in registers (loaded
 *      during the previous tile), issues the next tile's loads, forms
 *      the lanes' partial dot products with the query rows (registers),
 *      sums them across the team (subgroup arithmetic or xor shuffles; TS =
 *      1 without subgroups), applies soft-cap, ALiBi and visibility, and
 *      stores the scores (shared);
 *   2. one team per query row updates the online softmax (m, l) and turns
 *      the scores into weights p (or the sigmoid weights);
 *   3. each lane rescales its accumulators by the row's alpha and adds p*V
 *      (no barrier after it: the scores alternate between two buffers).
 * At the end the teams' accumulators are summed through shared memory and
 * the chunk's unnormalised partial (O, m, l) goes to the scratch buffer.
 *
 * Mode 1: a few invocations per output element merge the chunks of its
 * row (running maximum), the first normalises, gates and stores out (and
 * lse).
 *
 * Parameters live in the table buffer (layout: src/vulkan/decode.c): a
 * header, ALiBi slopes and sink logits, per-sequence entries, per-task
 * entries and per-sequence lists of pool pages, sinks/streaming resolved. */
#extension GL_GOOGLE_include_directive : require
#ifdef ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#ifdef ATTN_SUBGROUP_CLUSTERED
#extension GL_KHR_shader_subgroup_clustered : require
#endif

layout(constant_id = 0) const int WG = 128;     /* invocations */
layout(constant_id = 1) const int TS = 16;      /* lanes per key (team) */
layout(constant_id = 2) const int KPT = 4;      /* keys per team per tile */
layout(constant_id = 3) const int NR = 4;       /* query rows per workgroup */
layout(constant_id = 4) const int CPTK = 1;     /* 8-dim chunks per lane, K */
layout(constant_id = 5) const int CPTV = 1;     /* 8-dim chunks per lane, V */
layout(constant_id = 6) const int D = 128;
layout(constant_id = 7) const int DV = 128;
layout(constant_id = 8) const int KDT = 1;      /* cache dtype (attn_dtype) */
layout(constant_id = 9) const int VEC = 1;      /* wide loads */
layout(constant_id = 10) const int PS = 16;     /* page size */
layout(constant_id = 11) const int SHN = 1024;  /* shared floats */
layout(constant_id = 12) const int CS = 1;      /* mode 1: invocations per element */

layout(local_size_x_id = 0) in;

#include "common.glsl"

const int NT = WG / TS, TILE = NT * KPT;
const int INT_MAX = 0x7fffffff, INT_MIN = -INT_MAX - 1;
const int DT_Q8 = 4, DT_Q4 = 5;

layout(std430, binding = 0) readonly buffer Pool4 { uvec4 w[]; } P4;
layout(std430, binding = 1) readonly buffer Pool2 { uvec2 w[]; } P2;
layout(std430, binding = 2) readonly buffer Pool1 { uint w[]; } P1;
layout(std430, binding = 3) readonly buffer Table { int w[]; } T;
layout(std430, binding = 4) buffer Part { float w[]; } PART;
layout(std430, binding = 5) buffer Qb { uint w[]; } Q;
layout(std430, binding = 6) buffer Ob { uint w[]; } O;
layout(std430, binding = 7) buffer Gb { uint w[]; } G;
layout(std430, binding = 8) buffer Lb { float w[]; } LSE;

layout(push_constant) uniform Push { int mode; } pc;

/* Header words (src/vulkan/decode.c writes the same). */
const int H_B = 0, H_GROUPS = 1, H_HQ = 2, H_GROUP = 3, H_SQ = 4, H_FLAGS = 5, H_SCALE = 6,
          H_SOFTCAP = 7, H_SIGBIAS = 8, H_WL = 9, H_WR = 10, H_SINKS = 11, H_PAGE = 12,
          H_KPLANE = 13, H_VPLANE = 14, H_KMETA_OFF = 15, H_VMETA_OFF = 16, H_KROW = 17,
          H_VROW = 18, H_KMETA = 19, H_VMETA = 20, H_SINK_PAGES = 21, H_HKV = 22, H_QDT = 23,
          H_ODT = 24, H_GDT = 25, H_Q = 26, H_O = 31, H_G = 36, H_L = 41, H_SEQ = 45,
          H_TASK = 46, H_ML = 47, H_NR = 48, H_NRB = 49, H_AUX = 50;
const int F_CAUSAL = 1, F_SIGMOID = 2, F_ALIBI = 4, F_SINKL = 8, F_LSE = 16, F_GATE = 32,
          F_SOFTCAP = 64;
/* Per-sequence entry words. */
const int S_L = 0, S_NS = 1, S_LO = 2, S_NKEYS = 3, S_NSK = 4, S_WSTART = 5, S_BASE = 6,
          S_PTAB = 7, S_TSTART = 8, S_NCH = 9, S_WORDS = 10;

shared float sh[SHN];
shared float row_m[NR], row_l[NR], row_a[NR];

ATTN_LOAD_ANY(load_q, Q)
ATTN_LOAD_ANY(load_g, G)
ATTN_STORE_ANY(store_o, O)

float hf(int i) { return intBitsToFloat(T.w[i]); }

/* u16 at byte b of the pool. */
uint pool_u16(uint b) { return (P1.w[b >> 2] >> ((b & 2u) * 8u)) & 0xffffu; }

float half_at(uint b) { return unpackHalf2x16(pool_u16(b)).x; }

/* Elements e0..e0+7 of a row as loaded: the raw words (f16/bf16: a; f32:
 * a, b; Q8: a.xy and the scale m.x; Q4: a.xy and (d, m)), or, off the
 * wide-load path, the values' bits in a and b. Registers hold these while
 * the loads of a tile are in flight and until the values are used: half the
 * registers of f32 values for a 16-bit cache. */
struct Raw { uvec4 a, b; vec2 m; };

/* Loads elements e0..e0+7 (those below n; the rest read as 0) of the row
 * whose data starts at byte rb and meta at byte mb. */
Raw load8(uint rb, uint mb, int e0, int n)
{
    Raw r;
    r.a = uvec4(0u);
    r.b = uvec4(0u);
    r.m = vec2(0.0);
    if (e0 >= n)
        return r;
    if (KDT == DT_Q8 || KDT == DT_Q4) {
        /* n is a multiple of 32: a chunk is whole and inside one block */
        const uint blk = uint(e0) >> 5;
        if (KDT == DT_Q8) {
            r.m.x = half_at(mb + 2u * blk);
            r.a.xy = P2.w[(rb + uint(e0)) >> 3];
        } else {
            r.m = unpackHalf2x16(P1.w[(mb + 4u * blk) >> 2]);
            r.a.xy = P2.w[(rb + 16u * blk + (uint(e0) & 15u)) >> 3];
        }
        return r;
    }
    if (VEC != 0) {
        if (KDT == DT_F32) {
            r.a = P4.w[(rb + 4u * uint(e0)) >> 4];
            r.b = P4.w[((rb + 4u * uint(e0)) >> 4) + 1u];
        } else {
            r.a = P4.w[(rb + 2u * uint(e0)) >> 4];
        }
        return r;
    }
    for (int t = 0; t < 8; t++) {
        const int e = e0 + t;
        float v = 0.0;
        if (e < n) {
            if (KDT == DT_F32)
                v = uintBitsToFloat(P1.w[(rb >> 2) + uint(e)]);
            else if (KDT == DT_F16)
                v = half_at(rb + 2u * uint(e));
            else
                v = attn_bf16_to_f32(pool_u16(rb + 2u * uint(e)));
        }
        if (t < 4)
            r.a[t] = floatBitsToUint(v);
        else
            r.b[t - 4] = floatBitsToUint(v);
    }
    return r;
}

/* The values of a Raw of elements e0..e0+7. */
void unpack8(Raw r, int e0, out float v[8])
{
    if (KDT == DT_Q8) {
        for (int t = 0; t < 8; t++) {
            const uint word = t < 4 ? r.a.x : r.a.y;
            v[t] = r.m.x * float(int(word << (24u - 8u * uint(t & 3))) >> 24);
        }
    } else if (KDT == DT_Q4) {
        /* elements 32b+t (t < 16) in low nibbles, 32b+16+t in high ones */
        const uint hi = (uint(e0) & 16u) != 0u ? 4u : 0u;
        for (int t = 0; t < 8; t++) {
            const uint word = t < 4 ? r.a.x : r.a.y;
            v[t] = r.m.x * float((word >> (8u * uint(t & 3) + hi)) & 15u) + r.m.y;
        }
    } else if (VEC != 0 && KDT != DT_F32) {
        for (int t = 0; t < 4; t++) {
            if (KDT == DT_F16) {
                const vec2 h = unpackHalf2x16(r.a[t]);
                v[2 * t] = h.x;
                v[2 * t + 1] = h.y;
            } else {
                v[2 * t] = attn_bf16_to_f32(r.a[t] & 0xffffu);
                v[2 * t + 1] = attn_bf16_to_f32(r.a[t] >> 16);
            }
        }
    } else {
        for (int t = 0; t < 4; t++) {
            v[t] = uintBitsToFloat(r.a[t]);
            v[t + 4] = uintBitsToFloat(r.b[t]);
        }
    }
}

/* Sum and maximum over the TS lanes of a team (one subgroup holds whole
 * teams; TS = 1 without subgroups): clustered subgroup arithmetic where
 * the device has it (ATTN_SUBGROUP_CLUSTERED; the cluster size must be a
 * literal, so one branch per power of two, folded by the specialisation),
 * else a butterfly of xor shuffles. */
float team_sum(float x)
{
#if defined(ATTN_SUBGROUP_CLUSTERED)
    if (TS == 2)
        x = subgroupClusteredAdd(x, 2);
    else if (TS == 4)
        x = subgroupClusteredAdd(x, 4);
    else if (TS == 8)
        x = subgroupClusteredAdd(x, 8);
    else if (TS == 16)
        x = subgroupClusteredAdd(x, 16);
    else if (TS == 32)
        x = subgroupClusteredAdd(x, 32);
#elif defined(ATTN_SUBGROUP)
    for (int o = TS / 2; o > 0; o /= 2)
        x += subgroupShuffleXor(x, uint(o));
#endif
    return x;
}

float team_max(float x)
{
#if defined(ATTN_SUBGROUP_CLUSTERED)
    if (TS == 2)
        x = subgroupClusteredMax(x, 2);
    else if (TS == 4)
        x = subgroupClusteredMax(x, 4);
    else if (TS == 8)
        x = subgroupClusteredMax(x, 8);
    else if (TS == 16)
        x = subgroupClusteredMax(x, 16);
    else if (TS == 32)
        x = subgroupClusteredMax(x, 32);
#elif defined(ATTN_SUBGROUP)
    for (int o = TS / 2; o > 0; o /= 2)
        x = max(x, subgroupShuffleXor(x, uint(o)));
#endif
    return x;
}

/* What load_tile needs of the workgroup's task and the table's header,
 * read once before the key loop: in registers, a key's loads wait on one
 * table read (its page), not on a chain of them. */
struct TileSrc {
    int ns, lo, k1, team, lane;
    int nsk, wstart, sink_pages, base, ptab;       /* the sequence's pages */
    uint page, kplane, vplane, krow, vrow, kmeta, vmeta, kmr, vmr;
};
TileSrc tl;

/* Byte offset of the page holding kept key j of the task's sequence. */
uint page_byte(int j, out int slot)
{
    const int pos = j < tl.nsk ? j : tl.wstart + (j - tl.nsk);
    const int lp = pos / PS;
    slot = pos - lp * PS;
    const int idx = lp < tl.sink_pages ? lp : tl.sink_pages + (lp - tl.base);
    return uint(T.w[tl.ptab + idx]) * tl.page;
}

/* The K and V rows of the team's keys in the tile at scanned key u0: key
 * u0 + kk*NT + team (kept index js[kk], -1 past the chunk: zeros). */
void load_tile(int u0, out Raw kv[KPT][CPTK], out Raw vv[KPT][CPTV], out int js[KPT])
{
    for (int kk = 0; kk < KPT; kk++) {
        const int u = u0 + kk * NT + tl.team;
        js[kk] = u < tl.k1 ? (u < tl.ns ? u : tl.lo + (u - tl.ns)) : -1;
        if (js[kk] < 0) {
            for (int c = 0; c < CPTK; c++)
                kv[kk][c] = load8(0u, 0u, D, D);
            for (int c = 0; c < CPTV; c++)
                vv[kk][c] = load8(0u, 0u, DV, DV);
            continue;
        }
        int slot;
        const uint pg = page_byte(js[kk], slot);
        const uint kb = pg + tl.kplane, vb = pg + tl.vplane;
        for (int c = 0; c < CPTK; c++)
            kv[kk][c] = load8(kb + uint(slot) * tl.krow, kb + tl.kmeta + uint(slot) * tl.kmr,
                              8 * (tl.lane + TS * c), D);
        for (int c = 0; c < CPTV; c++)
            vv[kk][c] = load8(vb + uint(slot) * tl.vrow, vb + tl.vmeta + uint(slot) * tl.vmr,
                              8 * (tl.lane + TS * c), DV);
    }
}

/* Workgroup g: rows [r0, r0 + NR) of the NRT = Sq * Hq/Hkv query rows
 * of chunk `task`. */
void chunk_task(int g)
{
    const int tid = int(gl_LocalInvocationID.x), team = tid / TS, lane = tid % TS;
    const int task = g / T.w[H_NRB], r0 = (g % T.w[H_NRB]) * NR, NRT = T.w[H_NR];
    const int te = T.w[H_TASK] + 4 * task;
    const int b = T.w[te], hk = T.w[te + 1], k0 = T.w[te + 2], k1 = T.w[te + 3];
    const int se = T.w[H_SEQ] + S_WORDS * b;
    const int L = T.w[se + S_L], ns = T.w[se + S_NS], lo = T.w[se + S_LO];
    const int group = T.w[H_GROUP], sq = T.w[H_SQ], flags = T.w[H_FLAGS], hq = T.w[H_HQ];
    const int hkv = T.w[H_HKV];
    const float scale = hf(H_SCALE);

    /* This lane's share of the query rows, scaled. */
    float q[NR][CPTK][8];
    for (int r = 0; r < NR; r++) {
        const int rg = min(r0 + r, NRT - 1), i = rg / group, h = hk * group + rg % group;
        const int qb = T.w[H_Q] + b * T.w[H_Q + 1] + i * T.w[H_Q + 2] + h * T.w[H_Q + 3];
        for (int c = 0; c < CPTK; c++)
            for (int t = 0; t < 8; t++) {
                const int e = 8 * (lane + TS * c) + t;
                q[r][c][t] = e < D && r0 + r < NRT ? scale * load_q(T.w[H_QDT], qb + e * T.w[H_Q + 4]) : 0.0;
            }
    }
    float acc[NR][CPTV][8];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < CPTV; c++)
            for (int t = 0; t < 8; t++)
                acc[r][c][t] = 0.0;
    const bool sinkl = (flags & F_SINKL) != 0 && k0 == 0;
    for (int r = tid; r < NR; r += WG) {
        row_m[r] = sinkl ? hf(H_AUX + hq + hk * group + (r0 + r) % group) : NEG_INF;
        row_l[r] = sinkl ? 1.0 : 0.0;
    }

    tl.nsk = T.w[se + S_NSK];
    tl.wstart = T.w[se + S_WSTART];
    tl.sink_pages = T.w[H_SINK_PAGES];
    tl.base = T.w[se + S_BASE];
    tl.ptab = T.w[se + S_PTAB];
    tl.page = uint(T.w[H_PAGE]);
    tl.krow = uint(T.w[H_KROW]);
    tl.vrow = uint(T.w[H_VROW]);
    tl.kmeta = uint(T.w[H_KMETA_OFF]);
    tl.vmeta = uint(T.w[H_VMETA_OFF]);
    tl.kmr = uint(2 * T.w[H_KMETA]);
    tl.vmr = uint(2 * T.w[H_VMETA]);
    tl.ns = ns;
    tl.lo = lo;
    tl.k1 = k1;
    tl.team = team;
    tl.lane = lane;
    tl.kplane = uint(hk * T.w[H_KPLANE]);
    tl.vplane = uint(hkv * T.w[H_KPLANE] + hk * T.w[H_VPLANE]);
    const float softcap = hf(H_SOFTCAP);
    const int wl = T.w[H_WL], wr = T.w[H_WR], sinks = T.w[H_SINKS];
    const bool sigmoid = (flags & F_SIGMOID) != 0;
    /* Per query row, worked out once: its diagonal (the key at its own
     * position), ALiBi slope and visible keys: j is visible iff j <= cap
     * (causal) and j is a sink or wlo <= j <= whi (the window). */
    int diag[NR], cap[NR], wlo[NR], whi[NR];
    float slope[NR];
    for (int r = 0; r < NR; r++) {
        diag[r] = (r0 + r) / group + L - sq;
        cap[r] = (flags & F_CAUSAL) != 0 ? diag[r] : INT_MAX;
        wlo[r] = wl < 0 ? INT_MIN : diag[r] - wl;
        whi[r] = wr < 0 ? INT_MAX : diag[r] + wr;
        slope[r] = (flags & F_ALIBI) != 0 ? hf(H_AUX + hk * group + (r0 + r) % group) : 0.0;
    }

    /* The next tile's loads are issued before the current tile's arithmetic
     * and barriers (kept in flight while they run). */
    Raw kv[KPT][CPTK], vv[KPT][CPTV];
    int js[KPT];
    load_tile(k0, kv, vv, js);
    for (int u0 = k0; u0 < k1; u0 += TILE) {
        /* The scores alternate between two halves of sh: the next tile's
         * stage 1 writes one while a slow lane may still read this tile's
         * weights in stage 3 from the other (one barrier less per tile;
         * the barrier before the next stage 2 orders the rest). */
        const int hb = (((u0 - k0) / TILE) & 1) * NR * TILE;
        Raw nk[KPT][CPTK], nv[KPT][CPTV];
        int nj[KPT];
        load_tile(u0 + TILE, nk, nv, nj);
        for (int kk = 0; kk < KPT; kk++) {
            float kf[CPTK][8];
            for (int c = 0; c < CPTK; c++)
                unpack8(kv[kk][c], 8 * (lane + TS * c), kf[c]);
            for (int r = 0; r < NR; r++) {
                float s = 0.0;
                for (int c = 0; c < CPTK; c++)
                    for (int t = 0; t < 8; t++)
                        s += q[r][c][t] * kf[c][t];
                /* every lane of the team has the sum: the same work on
                 * all of them (no divergence), lane 0 stores */
                s = team_sum(s);
                const int j = js[kk];
                if ((flags & F_SOFTCAP) != 0)
                    s = softcap * attn_tanh(s / softcap);
                if ((flags & F_ALIBI) != 0)
                    s -= slope[r] * float(abs(diag[r] - j));
                if (j < 0 || j > cap[r] || (j >= sinks && (j < wlo[r] || j > whi[r])))
                    s = NEG_INF;
                if (lane == 0)
                    sh[hb + r * TILE + kk * NT + team] = s;
            }
        }
        barrier();
        /* 2. weights: team m takes rows m, m + NT, ..., its lanes a share
         * of the tile's keys each */
        for (int r = team; r < NR; r += NT) {
            const int rb = hb + r * TILE;
            float alpha = 1.0;
            if (sigmoid) {
                const float bias = hf(H_SIGBIAS);
                for (int e = lane; e < TILE; e += TS) {
                    const float y = sh[rb + e] + bias, ex = exp(-abs(y));
                    sh[rb + e] = sh[rb + e] == NEG_INF ? 0.0 : (y >= 0.0 ? 1.0 : ex) / (1.0 + ex);
                }
            } else {
                float mt = NEG_INF;
                for (int e = lane; e < TILE; e += TS)
                    mt = max(mt, sh[rb + e]);
                mt = team_max(mt);
                const float m = row_m[r], mn = max(m, mt);
                float sum = 0.0;
                if (mn == NEG_INF) {
                    for (int e = lane; e < TILE; e += TS)
                        sh[rb + e] = 0.0;
                } else {
                    alpha = m == mn ? 1.0 : exp(m - mn);
                    for (int e = lane; e < TILE; e += TS) {
                        const float x = sh[rb + e];
                        const float p = x == NEG_INF ? 0.0 : exp(x - mn);
                        sh[rb + e] = p;
                        sum += p;
                    }
                }
                sum = team_sum(sum);
                if (lane == 0) {
                    row_m[r] = mn;
                    row_l[r] = row_l[r] * alpha + sum;
                }
            }
            if (lane == 0)
                row_a[r] = alpha;
        }
        barrier();
        /* 3. O = alpha O + P V */
        for (int r = 0; r < NR; r++)
            for (int c = 0; c < CPTV; c++)
                for (int t = 0; t < 8; t++)
                    acc[r][c][t] *= row_a[r];
        for (int kk = 0; kk < KPT; kk++) {
            float vf[CPTV][8];
            for (int c = 0; c < CPTV; c++)
                unpack8(vv[kk][c], 8 * (lane + TS * c), vf[c]);
            for (int r = 0; r < NR; r++) {
                const float p = sh[hb + r * TILE + kk * NT + team];
                for (int c = 0; c < CPTV; c++)
                    for (int t = 0; t < 8; t++)
                        acc[r][c][t] += p * vf[c][t];
            }
        }
        for (int kk = 0; kk < KPT; kk++) {
            for (int c = 0; c < CPTK; c++)
                kv[kk][c] = nk[kk][c];
            for (int c = 0; c < CPTV; c++)
                vv[kk][c] = nv[kk][c];
            js[kk] = nj[kk];
        }
    }

    /* The teams' accumulators, summed row by row through shared memory
     * (once every lane is done with the last tile's weights). */
    barrier();
    const int DVP = TS * CPTV * 8;
    for (int r = 0; r < NR && r0 + r < NRT; r++) {
        for (int c = 0; c < CPTV; c++)
            for (int t = 0; t < 8; t++)
                sh[team * DVP + 8 * (lane + TS * c) + t] = acc[r][c][t];
        barrier();
        for (int e = tid; e < DV; e += WG) {
            float x = 0.0;
            for (int m = 0; m < NT; m++)
                x += sh[m * DVP + e];
            PART.w[(task * NRT + r0 + r) * DV + e] = x;
        }
        barrier();
    }
    for (int r = tid; r < NR && r0 + r < NRT; r += WG) {
        PART.w[T.w[H_ML] + 2 * (task * NRT + r0 + r)] = row_m[r];
        PART.w[T.w[H_ML] + 2 * (task * NRT + r0 + r) + 1] = row_l[r];
    }
}

/* (m, l, acc) of chunks merged into (mx, lsum, acc): the running maximum
 * rescales the sums when it grows (an empty chunk has m = -inf). */
void merge_into(inout float mx, inout float lsum, inout float acc, float m, float l, float o)
{
    const float mn = max(mx, m);
    const float a = mx == mn ? 1.0 : exp(mx - mn), w = m == mn ? 1.0 : exp(m - mn);
    lsum = lsum * a + w * l;
    acc = acc * a + w * o;
    mx = mn;
}

/* Mode 1: CS invocations per output element (b, i, h, e) of a workgroup's
 * WG/CS elements (CS a power of two up to WG), invocation s merging chunks
 * s, s + CS, ... in one pass; the first then merges the CS partials
 * through shared memory. CS > 1 splits a long row of chunks into several
 * chains of loads in flight together. */

void finish(int g)
{
    const int tid = int(gl_LocalInvocationID.x), per = WG / CS, slice = tid / per;
    const int x = g * per + tid % per;
    const int hq = T.w[H_HQ], sq = T.w[H_SQ], group = T.w[H_GROUP], flags = T.w[H_FLAGS];
    const int NRT = T.w[H_NR];
    const bool live = x < T.w[H_B] * sq * hq * DV;
    const bool softmax = (flags & F_SIGMOID) == 0;
    const int e = x % DV, h = (x / DV) % hq, i = (x / (DV * hq)) % sq, b = x / (DV * hq * sq);
    float mx = NEG_INF, lsum = 0.0, acc = 0.0;
    if (live) {
        const int se = T.w[H_SEQ] + S_WORDS * b, nch = T.w[se + S_NCH];
        const int r = i * group + h % group, t0 = T.w[se + S_TSTART] + (h / group) * nch;
        for (int c = slice; c < nch; c += CS) {
            const int ml = T.w[H_ML] + 2 * ((t0 + c) * NRT + r);
            const float o = PART.w[((t0 + c) * NRT + r) * DV + e];
            if (softmax)
                merge_into(mx, lsum, acc, PART.w[ml], PART.w[ml + 1], o);
            else
                acc += o;
        }
    }
    sh[tid] = mx;
    sh[WG + tid] = lsum;
    sh[2 * WG + tid] = acc;
    barrier();
    if (!live || slice != 0)
        return;
    for (int s = 1; s < CS; s++)
        merge_into(mx, lsum, acc, sh[tid + s * per], sh[WG + tid + s * per],
                   sh[2 * WG + tid + s * per]);
    float y = acc * (!softmax ? 1.0 : lsum > 0.0 ? 1.0 / lsum : 0.0);
    if ((flags & F_GATE) != 0) {
        const int gi = T.w[H_G] + b * T.w[H_G + 1] + i * T.w[H_G + 2] + h * T.w[H_G + 3] +
                       e * T.w[H_G + 4];
        y *= 1.0 / (1.0 + exp(-load_g(T.w[H_GDT], gi)));
    }
    store_o(T.w[H_ODT], T.w[H_O] + b * T.w[H_O + 1] + i * T.w[H_O + 2] + h * T.w[H_O + 3] +
            e * T.w[H_O + 4], y);
    if ((flags & F_LSE) != 0 && e == 0)
        LSE.w[T.w[H_L] + b * T.w[H_L + 1] + h * T.w[H_L + 2] + i * T.w[H_L + 3]] =
            lsum > 0.0 ? mx + log(lsum) : NEG_INF;
}

void main()
{
    const int g = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    if (pc.mode == 0) {
        if (g < T.w[H_GROUPS])
            chunk_task(g);
    } else {
        finish(g);
    }
}
