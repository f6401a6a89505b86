#version 450
/* attn_decode over a paged KV cache resident on the device (flash decoding).
 *
 * Mode 0 (push constant): one workgroup of WG invocations per task =
 * (sequence, KV head, chunk of its scanned keys, block of NR query rows).
 * The Sq * Hq/Hkv query rows of a KV head are one block where the registers
 * allow, so every K/V row of the chunk is read once for all of them. The
 * block's query rows, scaled, sit in shared memory as vec4s: every
 * invocation reads the same vec4 at the same time (a broadcast). The chunk
 * goes by tiles of WG keys, invocation k owning key u0 + k of the tile:
 *   1. it locates its key (page table, sinks, streaming window; the
 *      page's table word was read during the previous tile, which also
 *      noted where the key's V row is: loc); with VEARLY the tile's V
 *      loads go out here, in flight with the K loads;
 *   2. it reads its key's whole K row in 16-byte pieces and forms the NR
 *      dot products itself: no sum across invocations; soft-cap, ALiBi and
 *      visibility follow per invocation;
 *   3. the rows' tile maxima: subgroup maxima where the device has
 *      subgroup arithmetic (ATTN_SUBGROUP), combined through shared memory
 *      only when the workgroup holds several subgroups (one barrier), else
 *      every invocation reads all WG scores from shared memory;
 *   4. every invocation updates the same online softmax (m, alpha), turns
 *      its own score into its weight p (pb, by tile parity) and keeps a
 *      private share of the row sums l (summed once, at the end); barrier;
 *   5. P V: invocation k owns output columns 4c..4c+3 for c = k, k + WG,
 *      ... (NG groups), so the workgroup reads each V row of the tile in
 *      contiguous pieces; VI keys' loads are issued before their FMAs
 *      (held as loaded words, converted at use).
 * No barrier after 5: pb alternates between two halves by tile parity, loc
 * (written a tile ahead) between three, the maxima are next written after
 * this tile's last barrier. One
 * barrier per tile with one subgroup per workgroup, two otherwise. The
 * chunk's unnormalised partial (O, m, l) goes to the scratch buffer; O
 * needs no merge (each invocation owns distinct columns). That is the keys
 * layout (ROWS = 0); the rows layout (ROWS = 1, see rows_partials) reads
 * the K and V rows with several invocations per row instead, in steps 2
 * and 5, at one more barrier per tile.
 *
 * Mode 1 (its own pipeline, another workgroup size): CS invocations per
 * output element merge the chunks of its row (running maximum), the first
 * normalises, gates and stores out (and lse).
 *
 * Parameters live in the table buffer (layout: src/vulkan/decode.c): a
 * header, ALiBi slopes and sink logits, per-sequence entries, the sequence
 * of each chunk and per-sequence lists of pool pages, sinks/streaming
 * resolved. */
#extension GL_GOOGLE_include_directive : require
#ifdef ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(constant_id = 0) const int WG = 32;      /* invocations = keys per tile */
layout(constant_id = 1) const int NR = 4;       /* query rows per workgroup */
layout(constant_id = 2) const int VI = 8;       /* keys whose V loads go together */
layout(constant_id = 3) const int KB = 8;       /* K pieces loaded together */
layout(constant_id = 4) const int D = 128;
layout(constant_id = 5) const int DV = 128;
layout(constant_id = 6) const int KDT = 1;      /* cache dtype (attn_dtype) */
layout(constant_id = 7) const int VEC = 1;      /* wide loads (rows of whole pieces) */
layout(constant_id = 8) const int PS = 16;      /* page size */
layout(constant_id = 9) const int CS = 1;       /* mode 1: invocations per element */
layout(constant_id = 10) const int VEARLY = 0;  /* V loads issued before the scores */
layout(constant_id = 11) const int ROWS = 0;    /* layout: 0 keys, 1 rows (below) */
layout(constant_id = 12) const int LP = 1;      /* rows: invocations per K row (divides WG) */
layout(constant_id = 13) const int VL = 1;      /* rows: invocations per V row (divides WG) */

layout(local_size_x_id = 0) in;

#include "common.glsl"

const int DT_Q8 = 4, DT_Q4 = 5;
/* Elements per 16-byte piece of a row (f32 4, f16/bf16 8, Q8 16, Q4 32:
 * one block), pieces per K row (wide-load path), query vec4s per row (the
 * row padded to 8 elements, zeros past D), V column groups per invocation. */
const int EP = KDT == DT_F32 ? 4 : KDT == DT_Q8 ? 16 : KDT == DT_Q4 ? 32 : 8;
const int NPK = (D + EP - 1) / EP;
const int QV = (D + 7) / 8 * 2;
const int NB = (D + 31) / 32;   /* quantised blocks per K row */
const int NG = (DV + 4 * WG - 1) / (4 * WG);
/* Rows layout: KG groups of LP invocations, each group reading KPT keys'
 * K rows (KI pieces per invocation and row); KS key slots of VL
 * invocations for P V, each invocation VPI pieces of VW columns of a V row
 * (16 bytes for f32/f16/bf16, 8 for Q8, Q4's nibbles of 8 bytes). Partial
 * dot products of a key at stride PST (odd: no bank conflicts when the
 * keys' owners sum them), by row then lane (a group's lanes store to
 * consecutive words); the partials' buffer also takes the slots' O at the
 * end. NA: vec4 accumulators per query row (both layouts). */
const int KG = WG / LP, KPT = WG / KG, KI = (NPK + LP - 1) / LP, KS = WG / VL;
const int VW = KDT == DT_F32 ? 4 : 8;
const int NVP = DV / VW, VPI = (NVP + VL - 1) / VL;
const int PST = LP * NR + 1;
const int NPB = ROWS == 0 ? 1 : WG * PST > KS * NR * DV ? WG * PST : KS * NR * DV;
const int NA = ROWS != 0 ? VPI * (VW / 4) : NG;
/* Rows: the query pieces of an invocation stay in registers where they
 * are few (not Q4's 32-element pieces with 8 rows), else are read from
 * shared memory at each use. */
const int QREG = ROWS == 0 ? 0 : NR * KI * EP <= 128 ? 1 : 0;

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
          H_TASK = 46, H_ML = 47, H_NR = 48, H_NRB = 49, H_CHUNK = 50,
          H_AUX = 51;
/* Flag bits (src/gpu_decode_flags.h sets them). */
const int F_CAUSAL = 1, F_SIGMOID = 2, F_ALIBI = 4, F_SINKL = 8, F_LSE = 16, F_GATE = 32,
          F_SOFTCAP = 64;
/* Per-sequence entry words. */
const int S_L = 0, S_NS = 1, S_LO = 2, S_NKEYS = 3, S_NSK = 4, S_WSTART = 5, S_BASE = 6,
          S_PTAB = 7, S_TSTART = 8, S_NCH = 9, S_WORDS = 10;

shared vec4 qs[NR * QV];        /* the block's query rows, scaled */
const int QB = 16;              /* query elements an invocation loads at once */
shared float qsum[NR * NB];     /* Q4: their sums over each block of 32 */
shared float red[WG * NR];      /* tile maxima to combine; at the end the shares of l */
shared float pb[2 * WG * NR];   /* weights [parity][key][row] */
shared uvec2 loc[3 * WG];       /* [tile % 3][key]: byte of its V row, of the row's meta */
shared uvec2 kloc[ROWS != 0 ? 3 * WG : 1];   /* rows: the same of its K row */
shared float pbuf[NPB];         /* rows: partial dot products [key][row][lane]; slots' O */
shared float cmb[3 * WG];       /* mode 1 */

ATTN_LOAD_ANY(load_g, G)
ATTN_STORE_ANY(store_o, O)

float hf(int i) { return intBitsToFloat(T.w[i]); }

/* u16 at byte b of the pool. */
uint pool_u16(uint b) { return (P1.w[b >> 2] >> ((b & 2u) * 8u)) & 0xffffu; }

float half_at(uint b) { return unpackHalf2x16(pool_u16(b)).x; }

/* Element e of a row at byte rb off the wide-load path (f32, f16, bf16). */
float elem_at(uint rb, int e)
{
    if (KDT == DT_F32)
        return uintBitsToFloat(P1.w[(rb >> 2) + uint(e)]);
    if (KDT == DT_F16)
        return half_at(rb + 2u * uint(e));
    return attn_bf16_to_f32(pool_u16(rb + 2u * uint(e)));
}

/* The scale (x) and offset (y) of 16-byte piece p of a quantised row whose
 * meta starts at byte mb. */
vec2 piece_meta(uint mb, int p)
{
    if (KDT == DT_Q8)
        return vec2(half_at(mb + 2u * uint(p >> 1)), 0.0);
    if (KDT == DT_Q4)
        return unpackHalf2x16(P1.w[(mb >> 2) + uint(p)]);
    return vec2(0.0);
}

/* The fields of w at bits 0, 8, 16 and 24 masked by m, as floats less
 * off, exactly: OR-ed into the mantissa of 2^23 (no integer-to-float
 * conversion, a slow instruction on GPUs). */
vec4 fields(uint w, uint m, float off)
{
    return uintBitsToFloat((uvec4(w, w >> 8, w >> 16, w >> 24) & m) | 0x4b000000u) -
           (8388608.0 + off);
}

/* The EP values of a 16-byte piece w as EP/4 vec4s; of a quantised row
 * before its block's scale and offset (qk applies them to the dot
 * products). */
void piece_values(uvec4 w, out vec4 v[8])
{
    if (KDT == DT_F32) {
        v[0] = uintBitsToFloat(w);
    } else if (KDT == DT_F16) {
        for (int i = 0; i < 2; i++)
            v[i] = vec4(unpackHalf2x16(w[2 * i]), unpackHalf2x16(w[2 * i + 1]));
    } else if (KDT == DT_BF16) {
        for (int i = 0; i < 2; i++)
            v[i] = uintBitsToFloat(uvec4(w[2 * i] << 16, w[2 * i] & 0xffff0000u,
                                         w[2 * i + 1] << 16, w[2 * i + 1] & 0xffff0000u));
    } else if (KDT == DT_Q8) {
        /* signed bytes: their sign bits flipped they are value + 128 */
        for (int i = 0; i < 4; i++)
            v[i] = fields(w[i] ^ 0x80808080u, 0xffu, 128.0);
    } else {
        /* Q4: byte t of the block holds element t (low nibble) and 16 + t */
        for (int i = 0; i < 4; i++) {
            v[i] = fields(w[i], 15u, 0.0);
            v[4 + i] = fields(w[i] >> 4, 15u, 0.0);
        }
    }
}

/* s[r] += the dot product of query row r with the K row at byte rb (meta
 * at mb). KB pieces are loaded before their arithmetic: many loads in
 * flight per invocation, each invocation on its own row. A quantised
 * block's scale d and offset m go to the dot products of its piece:
 * q . (d k + m) = d (q . k) + m sum(q), the sums in qsum. */
void qk(uint rb, uint mb, inout float s[NR])
{
    if (VEC == 0) {
        for (int e = 0; e < D; e++) {
            const float x = elem_at(rb, e);
            for (int r = 0; r < NR; r++)
                s[r] += qs[r * QV + (e >> 2)][e & 3] * x;
        }
        return;
    }
    for (int p0 = 0; p0 < NPK; p0 += KB) {
        uvec4 w[KB];
        vec2 dm[KB];
        for (int i = 0; i < KB && p0 + i < NPK; i++) {
            w[i] = P4.w[(rb >> 4) + uint(p0 + i)];
            dm[i] = piece_meta(mb, p0 + i);
        }
        for (int i = 0; i < KB && p0 + i < NPK; i++) {
            const int p = p0 + i;
            vec4 v[8];
            piece_values(w[i], v);
            for (int r = 0; r < NR; r++) {
                float t = 0.0;
                for (int c = 0; c < EP / 4; c++)
                    t += dot(qs[r * QV + p * (EP / 4) + c], v[c]);
                if (KDT == DT_Q8)
                    s[r] += dm[i].x * t;
                else if (KDT == DT_Q4)
                    s[r] += dm[i].x * t + dm[i].y * qsum[r * NB + p];
                else
                    s[r] += t;
            }
        }
    }
}

/* Elements c..c+3 of a V row as loaded: the raw words w (Q8: one word and
 * its block's scale in dm.x; Q4: one word shifted to the columns' nibbles
 * and the block's (d, m); off the wide-load path the values' bits). The
 * tile's V loads are held so while in flight: half the registers of
 * floats for a 16-bit cache. */
struct VRaw { uvec4 w; vec2 dm; };

/* Loads elements c..c+3 of the V row at byte rb (meta at mb). Past DV it
 * loads the row's last elements instead (their sums are never stored):
 * every load unconditional, so that a tile's loads go out together rather
 * than one branch after another. */
VRaw v_load(uint rb, uint mb, int c)
{
    VRaw r;
    r.w = uvec4(0u);
    r.dm = vec2(0.0);
    if (VEC == 0) {
        for (int t = 0; t < 4; t++)
            r.w[t] = floatBitsToUint(elem_at(rb, min(c + t, DV - 1)));
        return r;
    }
    c = min(c, DV - 4);
    if (KDT == DT_F32) {
        r.w = P4.w[(rb >> 4) + uint(c >> 2)];
    } else if (KDT == DT_F16 || KDT == DT_BF16) {
        r.w.xy = P2.w[(rb >> 3) + uint(c >> 2)];
    } else if (KDT == DT_Q8) {
        r.w.x = P1.w[(rb >> 2) + uint(c >> 2)];
        r.dm.x = half_at(mb + 2u * uint(c >> 5));
    } else {
        /* Q4: byte t of a block holds element t (low nibble) and 16 + t */
        r.w.x = P1.w[(rb + 16u * uint(c >> 5) + uint(c & 15)) >> 2] >> ((c & 16) != 0 ? 4u : 0u);
        r.dm = unpackHalf2x16(P1.w[(mb >> 2) + uint(c >> 5)]);
    }
    return r;
}

/* The values of a VRaw. */
vec4 v_values(VRaw r)
{
    if (VEC == 0 || KDT == DT_F32)
        return uintBitsToFloat(r.w);
    if (KDT == DT_F16)
        return vec4(unpackHalf2x16(r.w.x), unpackHalf2x16(r.w.y));
    if (KDT == DT_BF16)
        return uintBitsToFloat(uvec4(r.w.x << 16, r.w.x & 0xffff0000u, r.w.y << 16,
                                     r.w.y & 0xffff0000u));
    if (KDT == DT_Q8)
        return r.dm.x * fields(r.w.x ^ 0x80808080u, 0xffu, 128.0);
    return fields(r.w.x, 15u, 0.0) * r.dm.x + r.dm.y;
}

/* acc[r] += p * V for one key of the tile: its loaded V columns v, its
 * weights pb[pk * NR + r]. */
void pv_key(inout vec4 acc[NR][NA], VRaw v[NG], int pk)
{
    vec4 x[NG];
    for (int c = 0; c < NG; c++)
        x[c] = v_values(v[c]);
    for (int r = 0; r < NR; r++) {
        const float p = pb[pk * NR + r];
        for (int c = 0; c < NG; c++)
            acc[r][c] += p * x[c];
    }
}

/* Rows layout (ROWS = 1), the keys layout's steps 2 and 5 otherwise:
 *   2. group g = tid / LP of the workgroup reads the K rows of keys
 *      g, g + KG, ... of the tile, invocation `lane` = tid % LP pieces
 *      lane, lane + LP, ... of each (a group's loads are consecutive pieces
 *      of one row, not WG rows at once); every load of the tile goes out
 *      before the first piece is converted. The partial dot products go to
 *      shared memory (pbuf); after a barrier invocation k sums those of
 *      key k, its owner for the softmax as in the keys layout.
 *   5. key slot vs = tid / VL takes keys vs, vs + KS, ...; invocation
 *      tid % VL of it pieces of VW columns of each V row; the slots' O
 *      are added once, at the end of the chunk.
 * Taken where rows are whole 16-byte pieces (VEC); the host keeps the
 * keys layout otherwise. */
const int KPS = WG / KS;        /* keys per slot */
const int NQR = QREG != 0 ? NR * KI * (EP / 4) : 1;

/* Query vec4 c of piece i (of this invocation's) of row r: from the
 * registers qv where QREG, else from shared memory (piece p). */
vec4 rows_q(vec4 qv[NQR], int r, int i, int p, int c)
{
    if (QREG != 0)
        return qv[(r * KI + i) * (EP / 4) + c];
    return qs[r * QV + p * (EP / 4) + c];
}

/* This invocation's K pieces of the tile's keys (locations kloc[l3]) and
 * their blocks' (scale, offset). Lanes past the row's pieces (NPK not a
 * multiple of LP) load its last piece (rows_partials adds nothing). */
void rows_k_load(int l3, out uvec4 w[KPT][KI], out vec2 dm[KPT][KI])
{
    const int tid = int(gl_LocalInvocationID.x), g = tid / LP, lane = tid - g * LP;
    for (int x = 0; x < KPT; x++) {
        const uvec2 at = kloc[l3 * WG + g + x * KG];
        for (int i = 0; i < KI; i++) {
            const int p = min(lane + i * LP, NPK - 1);
            w[x][i] = P4.w[(at.x >> 4) + uint(p)];
            dm[x][i] = piece_meta(at.y, p);
        }
    }
}

/* The partial dot products of the loaded K pieces with this invocation's
 * query pieces qv, into pbuf. */
void rows_partials(uvec4 w[KPT][KI], vec2 dm[KPT][KI], vec4 qv[NQR])
{
    const int tid = int(gl_LocalInvocationID.x), g = tid / LP, lane = tid - g * LP;
    for (int x = 0; x < KPT; x++) {
        float pd[NR];
        for (int r = 0; r < NR; r++)
            pd[r] = 0.0;
        for (int i = 0; i < KI; i++) {
            const int p = lane + i * LP;
            if (NPK % LP != 0 && p >= NPK)
                continue;
            vec4 v[8];
            piece_values(w[x][i], v);
            for (int r = 0; r < NR; r++) {
                float t = 0.0;
                for (int c = 0; c < EP / 4; c++)
                    t += dot(rows_q(qv, r, i, p, c), v[c]);
                if (KDT == DT_Q8)
                    pd[r] += dm[x][i].x * t;
                else if (KDT == DT_Q4)
                    pd[r] += dm[x][i].x * t + dm[x][i].y * qsum[r * NB + p];
                else
                    pd[r] += t;
            }
        }
        const int k = g + x * KG;
        for (int r = 0; r < NR; r++)
            pbuf[k * PST + r * LP + lane] = pd[r];
    }
}

/* The VW columns c.. of the V row at byte rb (meta at mb), raw: 16 bytes
 * (f32, f16, bf16), 8 (Q8, its block's scale in dm.x), or Q4's 8 bytes
 * holding them, shifted to their nibbles, and the block's (d, m). */
VRaw v_piece(uint rb, uint mb, int c)
{
    VRaw r;
    r.w = uvec4(0u);
    r.dm = vec2(0.0);
    if (KDT == DT_F32 || KDT == DT_F16 || KDT == DT_BF16) {
        r.w = P4.w[(rb >> 4) + uint(c / VW)];
    } else if (KDT == DT_Q8) {
        r.w.xy = P2.w[(rb >> 3) + uint(c >> 3)];
        r.dm.x = half_at(mb + 2u * uint(c >> 5));
    } else {
        r.w.xy = P2.w[(rb + 16u * uint(c >> 5) + uint(c & 15)) >> 3] >> ((c & 16) != 0 ? 4u : 0u);
        r.dm = unpackHalf2x16(P1.w[(mb >> 2) + uint(c >> 5)]);
    }
    return r;
}

/* The values of a v_piece: VW / 4 vec4s. */
void v_piece_values(VRaw r, out vec4 x[2])
{
    x[1] = vec4(0.0);
    if (KDT == DT_F32) {
        x[0] = uintBitsToFloat(r.w);
    } else if (KDT == DT_F16) {
        x[0] = vec4(unpackHalf2x16(r.w.x), unpackHalf2x16(r.w.y));
        x[1] = vec4(unpackHalf2x16(r.w.z), unpackHalf2x16(r.w.w));
    } else if (KDT == DT_BF16) {
        for (int i = 0; i < 2; i++)
            x[i] = uintBitsToFloat(uvec4(r.w[2 * i] << 16, r.w[2 * i] & 0xffff0000u,
                                         r.w[2 * i + 1] << 16, r.w[2 * i + 1] & 0xffff0000u));
    } else if (KDT == DT_Q8) {
        for (int i = 0; i < 2; i++)
            x[i] = r.dm.x * fields(r.w[i] ^ 0x80808080u, 0xffu, 128.0);
    } else {
        for (int i = 0; i < 2; i++)
            x[i] = fields(r.w[i], 15u, 0.0) * r.dm.x + r.dm.y;
    }
}

/* This invocation's V pieces of the tile's keys (locations loc[l3]) in
 * its slot; lanes past the row's pieces load its last one. */
void rows_v_load(int l3, out VRaw v[KPS][VPI])
{
    const int tid = int(gl_LocalInvocationID.x), vs = tid / VL, vl = tid - vs * VL;
    for (int x = 0; x < KPS; x++) {
        const uvec2 at = loc[l3 * WG + vs + x * KS];
        for (int i = 0; i < VPI; i++)
            v[x][i] = v_piece(at.x, at.y, min(vl + i * VL, NVP - 1) * VW);
    }
}

/* acc[r] += p V over the slot's keys of the tile, weights pb[par]. */
void rows_pv(inout vec4 acc[NR][NA], VRaw v[KPS][VPI], int par)
{
    const int tid = int(gl_LocalInvocationID.x), vs = tid / VL, vl = tid - vs * VL;
    for (int x = 0; x < KPS; x++) {
        float p[NR];
        for (int r = 0; r < NR; r++)
            p[r] = pb[(par * WG + vs + x * KS) * NR + r];
        for (int i = 0; i < VPI; i++) {
            if (NVP % VL != 0 && vl + i * VL >= NVP)
                continue;
            vec4 y[2];
            v_piece_values(v[x][i], y);
            for (int r = 0; r < NR; r++)
                for (int h = 0; h < VW / 4; h++)
                    acc[r][i * (VW / 4) + h] += p[r] * y[h];
        }
    }
}

/* The first output column of this invocation's accumulator a (past DV:
 * not stored). */
int acc_col(int a)
{
    const int tid = int(gl_LocalInvocationID.x);
    if (ROWS == 0)
        return 4 * (tid + a * WG);
    return (tid % VL + (a / (VW / 4)) * VL) * VW + 4 * (a % (VW / 4));
}

/* Where the task's sequence keeps its keys: the page walk's words, read
 * once (a key's loads then wait on one table read, its page's). */
struct Walk { int ns, lo, last, nsk, wstart, sink_pages, base, ptab; uint page; };
Walk wk;

/* Scanned key u of the task, clamped to its last (past the chunk an
 * invocation reads that one for nothing): its kept index j, its slot and
 * the byte of its page. */
uint key_page(int u, out int j, out int slot)
{
    u = min(u, wk.last);
    j = u < wk.ns ? u : wk.lo + (u - wk.ns);
    const int pos = j < wk.nsk ? j : wk.wstart + (j - wk.nsk);
    const int lp = pos / PS;
    slot = pos - lp * PS;
    return uint(T.w[wk.ptab + (lp < wk.sink_pages ? lp : wk.sink_pages + (lp - wk.base))]) *
           wk.page;
}

/* mt[r] = the tile's largest score of row r, the same on every invocation:
 * subgroup maxima, combined through shared memory (one barrier) only when
 * the workgroup holds several subgroups; without subgroup arithmetic every
 * invocation reads all the scores. */
void tile_max(float s[NR], out float mt[NR])
{
#ifdef ATTN_SUBGROUP
    const int np = int(gl_NumSubgroups), pi = int(gl_SubgroupID);
    for (int r = 0; r < NR; r++)
        mt[r] = subgroupMax(s[r]);
    const bool writer = subgroupElect();
#else
    const int np = WG, pi = int(gl_LocalInvocationID.x);
    for (int r = 0; r < NR; r++)
        mt[r] = s[r];
    const bool writer = true;
#endif
    if (np == 1)
        return;
    if (writer)
        for (int r = 0; r < NR; r++)
            red[pi * NR + r] = mt[r];
    barrier();
    for (int r = 0; r < NR; r++) {
        float x = red[r];
        for (int i = 1; i < np; i++)
            x = max(x, red[i * NR + r]);
        mt[r] = x;
    }
}

/* Workgroup g: rows [r0, r0 + NR) of the NRT = Sq * Hq/Hkv query rows
 * of chunk `task`. */
void chunk_task(int g)
{
    const int tid = int(gl_LocalInvocationID.x);
    const int task = g / T.w[H_NRB], r0 = (g % T.w[H_NRB]) * NR, NRT = T.w[H_NR];
    const int b = T.w[T.w[H_TASK] + task], se = T.w[H_SEQ] + S_WORDS * b;
    const int nch = T.w[se + S_NCH], ch = task - T.w[se + S_TSTART], hk = ch / nch;
    const int k0 = (ch - hk * nch) * T.w[H_CHUNK];
    const int k1 = min(T.w[se + S_NKEYS], k0 + T.w[H_CHUNK]);
    const int L = T.w[se + S_L], ns = T.w[se + S_NS], lo = T.w[se + S_LO];
    const int group = T.w[H_GROUP], sq = T.w[H_SQ], flags = T.w[H_FLAGS], hq = T.w[H_HQ];
    const float scale = hf(H_SCALE);

    /* The block's query rows into shared memory (the view's words read
     * once, outside the loop). An invocation loads the words of QB elements
     * at once, each unconditionally (an element past the rows reads element
     * 0 of the view and stores 0), and converts them afterwards: loaded one
     * at a time under the dtype's branches, each waited for the one before
     * it, a memory latency per element at the start of every work-group. */
    const int qdt = T.w[H_QDT], qbase = T.w[H_Q] + b * T.w[H_Q + 1], qsi = T.w[H_Q + 2];
    const int qsh = T.w[H_Q + 3], qse = T.w[H_Q + 4];
    const int qwsh = qdt == DT_F32 ? 0 : qdt == DT_U8 ? 2 : 1;   /* elements per word: 1 << qwsh */
    for (int i0 = tid; i0 < NR * QV * 4; i0 += QB * WG) {
        int qi[QB];
        uint qw[QB];
        for (int j = 0; j < QB; j++) {
            const int i = i0 + j * WG, r = i / (QV * 4), e = i - r * QV * 4, rg = r0 + r;
            qi[j] = i < NR * QV * 4 && e < D && rg < NRT ?
                    qbase + (rg / group) * qsi + (hk * group + rg % group) * qsh + e * qse : qbase;
            qw[j] = Q.w[uint(qi[j]) >> qwsh];
        }
        for (int j = 0; j < QB; j++) {
            const int i = i0 + j * WG, r = i / (QV * 4), e = i - r * QV * 4, rg = r0 + r;
            const uint u = qw[j] >> ((uint(qi[j]) & ((1u << qwsh) - 1u)) * (32u >> qwsh));
            const float x = qdt == DT_F32 ? uintBitsToFloat(u) :
                            qdt == DT_F16 ? unpackHalf2x16(u).x :
                            qdt == DT_BF16 ? attn_bf16_to_f32(u) : float(u & 0xffu);
            if (i < NR * QV * 4)
                qs[r * QV + (e >> 2)][e & 3] = e < D && rg < NRT ? scale * x : 0.0;
        }
    }

    wk = Walk(ns, lo, k1 - 1, T.w[se + S_NSK], T.w[se + S_WSTART], T.w[H_SINK_PAGES],
              T.w[se + S_BASE], T.w[se + S_PTAB], uint(T.w[H_PAGE]));
    const uint krow = uint(T.w[H_KROW]), vrow = uint(T.w[H_VROW]);
    const uint kmr = uint(2 * T.w[H_KMETA]), vmr = uint(2 * T.w[H_VMETA]);
    const uint kplane = uint(hk * T.w[H_KPLANE]);
    const uint vplane = uint(T.w[H_HKV] * T.w[H_KPLANE] + hk * T.w[H_VPLANE]);
    const uint kmeta = kplane + uint(T.w[H_KMETA_OFF]), vmeta = vplane + uint(T.w[H_VMETA_OFF]);
    const float softcap = hf(H_SOFTCAP), sigbias = hf(H_SIGBIAS);
    const int wl = T.w[H_WL], wr = T.w[H_WR], sinks = T.w[H_SINKS];
    const bool sigmoid = (flags & F_SIGMOID) != 0;
    /* Per query row, worked out once: its query index qi (its diagonal,
     * the key at its own position, is qi + L - sq) and ALiBi slope. Key j
     * at jr = j - (L - sq) is visible iff jr <= qi (causal) and j is a
     * sink or qi - wl <= jr <= qi + wr (the window). */
    const bool causal = (flags & F_CAUSAL) != 0;
    int qi[NR];
    float slope[NR];
    for (int r = 0; r < NR; r++) {
        qi[r] = (r0 + r) / group;
        slope[r] = (flags & F_ALIBI) != 0 ? hf(H_AUX + hk * group + (r0 + r) % group) : 0.0;
    }
    /* m: the running maximum (the same on every invocation); l: this
     * invocation's share of the sum (the sink logit seeds chunk 0). */
    const bool sinkl = (flags & F_SINKL) != 0 && k0 == 0;
    float m[NR], l[NR];
    vec4 acc[NR][NA];
    for (int r = 0; r < NR; r++) {
        m[r] = sinkl ? hf(H_AUX + hq + hk * group + (r0 + r) % group) : NEG_INF;
        l[r] = sinkl && tid == 0 ? 1.0 : 0.0;
        for (int a = 0; a < NA; a++)
            acc[r][a] = vec4(0.0);
    }
    /* the first tile's V locations (each tile writes the next one's) */
    int j = 0, slot = 0;
    uint pg = 0u;
    if (k0 < k1) {
        pg = key_page(k0 + tid, j, slot);
        loc[tid] = uvec2(pg + vplane + uint(slot) * vrow, pg + vmeta + uint(slot) * vmr);
        if (ROWS != 0)
            kloc[tid] = uvec2(pg + kplane + uint(slot) * krow, pg + kmeta + uint(slot) * kmr);
    }
    barrier();
    if (KDT == DT_Q4) {
        for (int i = tid; i < NR * NB; i += WG) {
            float x = 0.0;
            for (int c = 0; c < 8; c++)
                x += dot(qs[(i / NB) * QV + (i % NB) * 8 + c], vec4(1.0));
            qsum[i] = x;
        }
        barrier();
    }
    /* rows: this invocation's query pieces (zeros past the row) */
    vec4 qv[NQR];
    if (QREG != 0) {
        const int lane = tid % LP;
        for (int r = 0; r < NR; r++)
            for (int i = 0; i < KI; i++)
                for (int c = 0; c < EP / 4; c++)
                    qv[(r * KI + i) * (EP / 4) + c] = lane + i * LP < NPK ?
                        qs[r * QV + (lane + i * LP) * (EP / 4) + c] : vec4(0.0);
    }

    for (int u0 = k0; u0 < k1; u0 += WG) {
        const int t = (u0 - k0) / WG, par = t & 1, l3 = t % 3;
        /* 1. this invocation's key: its page was read during the previous
         * tile, the next tile's is read now (in flight during this one) and
         * its V location (rows: and K location) noted for the next tile
         * (read after this tile's last barrier; three buffers, as a slow
         * invocation may still read the previous tile's) */
        int nj, nslot;
        const uint npg = key_page(u0 + WG + tid, nj, nslot);
        loc[((t + 1) % 3) * WG + tid] =
            uvec2(npg + vplane + uint(nslot) * vrow, npg + vmeta + uint(nslot) * vmr);
        if (ROWS != 0)
            kloc[((t + 1) % 3) * WG + tid] =
                uvec2(npg + kplane + uint(nslot) * krow, npg + kmeta + uint(nslot) * kmr);
        /* VEARLY: the tile's V loads go out now, in flight with the K loads
         * (rows: after them, as they are used first) */
        VRaw ve[VEARLY == 0 ? 1 : ROWS == 0 ? WG : 1][NG];
        VRaw vr[KPS][VPI];
        uvec4 kw[KPT][KI];
        vec2 kdm[KPT][KI];
        if (ROWS != 0) {
            rows_k_load(l3, kw, kdm);
            if (VEARLY != 0)
                rows_v_load(l3, vr);
        } else if (VEARLY != 0)
            for (int k = 0; k < WG; k++) {
                const uvec2 at = loc[l3 * WG + k];
                for (int c = 0; c < NG; c++)
                    ve[k][c] = v_load(at.x, at.y, 4 * (tid + c * WG));
            }
        /* 2. its scores (rows: summed from the partials) */
        float s[NR];
        for (int r = 0; r < NR; r++)
            s[r] = 0.0;
        if (ROWS != 0) {
            rows_partials(kw, kdm, qv);
            barrier();
            for (int i = 0; i < LP; i++)
                for (int r = 0; r < NR; r++)
                    s[r] += pbuf[tid * PST + r * LP + i];
        } else {
            qk(pg + kplane + uint(slot) * krow, pg + kmeta + uint(slot) * kmr, s);
        }
        const int jr = j - (L - sq);
        for (int r = 0; r < NR; r++) {
            if ((flags & F_SOFTCAP) != 0)
                s[r] = softcap * attn_tanh(s[r] / softcap);
            if ((flags & F_ALIBI) != 0)
                s[r] -= slope[r] * float(abs(qi[r] - jr));
            if (u0 + tid >= k1 || (causal && jr > qi[r]) ||
                (j >= sinks && ((wl >= 0 && jr < qi[r] - wl) || (wr >= 0 && jr > qi[r] + wr))))
                s[r] = NEG_INF;
        }
        /* 3.-4. its weights, the rows' rescaling */
        float alpha[NR];
        if (sigmoid) {
            for (int r = 0; r < NR; r++) {
                const float y = s[r] + sigbias, ex = exp(-abs(y));
                pb[(par * WG + tid) * NR + r] =
                    s[r] == NEG_INF ? 0.0 : (y >= 0.0 ? 1.0 : ex) / (1.0 + ex);
                alpha[r] = 1.0;
            }
        } else {
            float mt[NR];
            tile_max(s, mt);
            for (int r = 0; r < NR; r++) {
                const float mn = max(m[r], mt[r]);
                alpha[r] = m[r] == mn ? 1.0 : exp(m[r] - mn);
                const float p = s[r] == NEG_INF ? 0.0 : exp(s[r] - mn);
                pb[(par * WG + tid) * NR + r] = p;
                l[r] = l[r] * alpha[r] + p;
                m[r] = mn;
            }
        }
        barrier();
        /* 5. O = alpha O + P V over the tile's keys */
        for (int r = 0; r < NR; r++)
            for (int a = 0; a < NA; a++)
                acc[r][a] *= alpha[r];
        if (ROWS != 0) {
            if (VEARLY == 0)
                rows_v_load(l3, vr);
            rows_pv(acc, vr, par);
        } else if (VEARLY != 0) {
            for (int k = 0; k < WG; k++)
                pv_key(acc, ve[k], par * WG + k);
        } else {
            for (int k0v = 0; k0v < WG; k0v += VI) {
                VRaw v[VI][NG];
                for (int i = 0; i < VI && k0v + i < WG; i++) {
                    const uvec2 at = loc[l3 * WG + k0v + i];
                    for (int c = 0; c < NG; c++)
                        v[i][c] = v_load(at.x, at.y, 4 * (tid + c * WG));
                }
                for (int i = 0; i < VI && k0v + i < WG; i++)
                    pv_key(acc, v[i], par * WG + k0v + i);
            }
        }
        pg = npg;
        j = nj;
        slot = nslot;
    }

    /* The partial: O straight from the accumulators (rows: the key
     * slots' added through pbuf, whose last readers are past the last
     * tile's barriers), l summed over the invocations (every one is past
     * the last tile's maxima). */
    for (int r = 0; r < NR; r++)
        red[tid * NR + r] = l[r];
    const bool slots = ROWS != 0 && KS > 1;
    for (int r = 0; r < NR && (slots || r0 + r < NRT); r++)
        for (int a = 0; a < NA; a++)
            for (int t = 0; t < 4; t++) {
                const int col = acc_col(a) + t;
                if (col >= DV)
                    continue;
                if (slots)
                    pbuf[((tid / VL) * NR + r) * DV + col] = acc[r][a][t];
                else
                    PART.w[(task * NRT + r0 + r) * DV + col] = acc[r][a][t];
            }
    barrier();
    if (slots)
        for (int e = tid; e < NR * DV; e += WG) {
            if (r0 + e / DV >= NRT)
                break;
            float sum = 0.0;
            for (int v = 0; v < KS; v++)
                sum += pbuf[v * NR * DV + e];
            PART.w[(task * NRT + r0) * DV + e] = sum;
        }
    for (int r = 0; r < NR && r0 + r < NRT; r++) {
        if (r % WG != tid)
            continue;
        float sum = 0.0;
        for (int i = 0; i < WG; i++)
            sum += red[i * NR + r];
        PART.w[T.w[H_ML] + 2 * (task * NRT + r0 + r)] = m[r];
        PART.w[T.w[H_ML] + 2 * (task * NRT + r0 + r) + 1] = sum;
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
    cmb[tid] = mx;
    cmb[WG + tid] = lsum;
    cmb[2 * WG + tid] = acc;
    barrier();
    if (!live || slice != 0)
        return;
    for (int s = 1; s < CS; s++)
        merge_into(mx, lsum, acc, cmb[tid + s * per], cmb[WG + tid + s * per],
                   cmb[2 * WG + tid + s * per]);
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
