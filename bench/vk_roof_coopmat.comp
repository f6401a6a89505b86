#version 450
/* bench/vk-roof: the rate of VK_KHR_cooperative_matrix f16 x f16 + f32
 * products, 16x16x16 per subgroup. Each subgroup keeps TM x TN
 * accumulators; the operands are loaded once, so only the matrix units
 * (and their register traffic) are measured. */
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 128) in;
layout(constant_id = 0) const int TM = 4;
layout(constant_id = 1) const int TN = 2;
layout(std430, binding = 0) readonly buffer Ab { float16_t h[]; } A;
layout(std430, binding = 1) buffer Ob { float f[]; } O;
layout(push_constant) uniform PC { int iters; } pc;

#define CA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define CB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define CC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

void main()
{
    CA a[TM];
    CB b[TN];
    CC c[TM][TN];
    [[unroll]] for (int i = 0; i < TM; i++)
        coopMatLoad(a[i], A.h, 256 * i, 16, gl_CooperativeMatrixLayoutRowMajor);
    [[unroll]] for (int j = 0; j < TN; j++)
        coopMatLoad(b[j], A.h, 256 * (TM + j), 16, gl_CooperativeMatrixLayoutRowMajor);
    [[unroll]] for (int i = 0; i < TM; i++)
        [[unroll]] for (int j = 0; j < TN; j++)
            c[i][j] = CC(0.0);
    for (int it = 0; it < pc.iters; it++)
        [[unroll]] for (int i = 0; i < TM; i++)
            [[unroll]] for (int j = 0; j < TN; j++)
                c[i][j] = coopMatMulAdd(a[i], b[j], c[i][j]);
    CC s = CC(0.0);
    [[unroll]] for (int i = 0; i < TM; i++)
        [[unroll]] for (int j = 0; j < TN; j++)
            s = s + c[i][j];
    const uint sg = gl_WorkGroupID.x * (gl_WorkGroupSize.x / gl_SubgroupSize) + gl_SubgroupID;
    coopMatStore(s, O.f, sg * 256u, 16, gl_CooperativeMatrixLayoutRowMajor);
}
