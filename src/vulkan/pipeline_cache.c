/* Shader modules, compute pipelines (one per shader and specialisation
 * constants), the shared descriptor-set and pipeline layouts, and the
 * descriptor pool: created on first use, kept for the context's life. */
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "vk.h"
#include "../error.h"

attn_status attn_vk_layouts_create(attn_vk_device *d)
{
    VkDescriptorSetLayoutBinding b[ATTN_VK_BINDINGS];
    for (uint32_t i = 0; i < ATTN_VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    const VkDescriptorSetLayoutCreateInfo li = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = ATTN_VK_BINDINGS, .pBindings = b,
    };
    VkResult r = d->vk.CreateDescriptorSetLayout(d->device, &li, NULL, &d->set_layout);
    if (r != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreateDescriptorSetLayout");
    const VkPushConstantRange pc = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = ATTN_VK_PUSH_BYTES,
    };
    const VkPipelineLayoutCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
        .pSetLayouts = &d->set_layout, .pushConstantRangeCount = 1, .pPushConstantRanges = &pc,
    };
    if ((r = d->vk.CreatePipelineLayout(d->device, &pi, NULL, &d->pipeline_layout)) != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreatePipelineLayout");
    const VkPipelineCacheCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO };
    if ((r = d->vk.CreatePipelineCache(d->device, &ci, NULL, &d->pipeline_cache)) != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreatePipelineCache");
    return ATTN_OK;
}

static attn_status get_module(attn_vk_device *d, int shader, VkShaderModule *out)
{
    if (d->modules[shader]) {
        *out = d->modules[shader];
        return ATTN_OK;
    }
#ifdef HAVE_GLSL_COOPMAT
#define COOPMAT_SPV attn_vk_sdpa_coopmat_spv
#define COOPMAT_SPV_SIZE &attn_vk_sdpa_coopmat_spv_size
#else
#define COOPMAT_SPV NULL
#define COOPMAT_SPV_SIZE NULL
#endif
#ifdef HAVE_GLSL_COOPMAT2
#define COOPMAT2_SPV attn_vk_sdpa_coopmat2_spv
#define COOPMAT2_SPV_SIZE &attn_vk_sdpa_coopmat2_spv_size
#else
#define COOPMAT2_SPV NULL
#define COOPMAT2_SPV_SIZE NULL
#endif
    static const unsigned char *const code[ATTN_VK_NSHADER] = {
        attn_vk_sdpa_spv, attn_vk_sdpa_subgroup_spv, attn_vk_merge_spv, COOPMAT_SPV,
        attn_vk_sdpa_coopmat_emulated_spv, attn_vk_block_select_spv, attn_vk_linear_spv,
        attn_vk_linear_subgroup_spv, attn_vk_linear_scan_spv, attn_vk_linear_scan_delta_spv,
        attn_vk_neighborhood_spv, attn_vk_decode_spv, attn_vk_decode_subgroup_spv,
        attn_vk_copy_spv, COOPMAT2_SPV };
    const unsigned long *const size[ATTN_VK_NSHADER] = {
        &attn_vk_sdpa_spv_size, &attn_vk_sdpa_subgroup_spv_size, &attn_vk_merge_spv_size,
        COOPMAT_SPV_SIZE, &attn_vk_sdpa_coopmat_emulated_spv_size,
        &attn_vk_block_select_spv_size, &attn_vk_linear_spv_size,
        &attn_vk_linear_subgroup_spv_size, &attn_vk_linear_scan_spv_size,
        &attn_vk_linear_scan_delta_spv_size, &attn_vk_neighborhood_spv_size,
        &attn_vk_decode_spv_size, &attn_vk_decode_subgroup_spv_size, &attn_vk_copy_spv_size,
        COOPMAT2_SPV_SIZE };
    if (!code[shader])
        return attn_fail(ATTN_ERR_INTERNAL, "vkCreateShaderModule: shader %d is not built in", shader);
    /* SPIR-V is read as 32-bit words: copy out of the (byte-aligned) array. */
    uint32_t *words = malloc(*size[shader]);
    if (!words)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "vkCreateShaderModule: out of memory");
    memcpy(words, code[shader], *size[shader]);
    const VkShaderModuleCreateInfo mi = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = *size[shader],
        .pCode = words,
    };
    VkResult r = d->vk.CreateShaderModule(d->device, &mi, NULL, &d->modules[shader]);
    free(words);
    if (r != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreateShaderModule");
    *out = d->modules[shader];
    return ATTN_OK;
}

attn_status attn_vk_pipeline_get(attn_vk_device *d, int shader, const int32_t *spec, int nspec,
                                 VkPipeline *out)
{
    for (attn_vk_pipeline *p = d->pipelines; p; p = p->next)
        if (p->shader == shader && p->nspec == nspec &&
            (nspec == 0 || memcmp(p->spec, spec, (size_t)nspec * sizeof *spec) == 0)) {
            *out = p->pipeline;
            return ATTN_OK;
        }
    VkShaderModule module = VK_NULL_HANDLE;
    attn_status s = get_module(d, shader, &module);
    if (s != ATTN_OK)
        return s;
    attn_vk_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "vkCreateComputePipelines: out of memory");
    p->shader = shader;
    p->nspec = nspec;
    if (nspec)
        memcpy(p->spec, spec, (size_t)nspec * sizeof *spec);
    /* Specialisation constant i is spec[i] (constant_id = i in the shader). */
    VkSpecializationMapEntry map[ATTN_VK_MAX_SPEC];
    for (int i = 0; i < nspec; i++)
        map[i] = (VkSpecializationMapEntry){ (uint32_t)i, (uint32_t)(i * sizeof(int32_t)),
                                             sizeof(int32_t) };
    const VkSpecializationInfo si = { (uint32_t)nspec, map, (size_t)nspec * sizeof(int32_t),
                                      p->spec };
    const VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                   .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = module, .pName = "main",
                   .pSpecializationInfo = nspec ? &si : NULL },
        .layout = d->pipeline_layout,
    };
    VkResult r = d->vk.CreateComputePipelines(d->device, d->pipeline_cache, 1, &ci, NULL,
                                              &p->pipeline);
    if (r != VK_SUCCESS) {
        free(p);
        return attn_vk_fail(d, r, "vkCreateComputePipelines");
    }
    p->next = d->pipelines;
    d->pipelines = p;
    *out = p->pipeline;
    return ATTN_OK;
}

attn_status attn_vk_descriptors_reset(attn_vk_device *d, uint32_t nsets)
{
    VkResult r;
    if (d->desc_pool && d->desc_pool_sets >= nsets) {
        r = d->vk.ResetDescriptorPool(d->device, d->desc_pool, 0);
        return r == VK_SUCCESS ? ATTN_OK : attn_vk_fail(d, r, "vkResetDescriptorPool");
    }
    if (d->desc_pool)
        d->vk.DestroyDescriptorPool(d->device, d->desc_pool, NULL);
    d->desc_pool = VK_NULL_HANDLE;
    const uint32_t sets = nsets < 16 ? 16 : nsets;
    const VkDescriptorPoolSize size = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, sets * ATTN_VK_BINDINGS };
    const VkDescriptorPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = sets,
        .poolSizeCount = 1, .pPoolSizes = &size,
    };
    if ((r = d->vk.CreateDescriptorPool(d->device, &pi, NULL, &d->desc_pool)) != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkCreateDescriptorPool");
    d->desc_pool_sets = sets;
    return ATTN_OK;
}

attn_status attn_vk_descriptor_set(attn_vk_device *d, VkBuffer const bufs[ATTN_VK_BINDINGS],
                                   VkDescriptorSet *out)
{
    const VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = d->desc_pool,
        .descriptorSetCount = 1, .pSetLayouts = &d->set_layout,
    };
    VkResult r = d->vk.AllocateDescriptorSets(d->device, &ai, out);
    if (r != VK_SUCCESS)
        return attn_vk_fail(d, r, "vkAllocateDescriptorSets");
    VkDescriptorBufferInfo info[ATTN_VK_BINDINGS];
    VkWriteDescriptorSet w[ATTN_VK_BINDINGS];
    for (uint32_t i = 0; i < ATTN_VK_BINDINGS; i++) {
        info[i] = (VkDescriptorBufferInfo){ bufs[i] ? bufs[i] : d->params.buffer, 0, VK_WHOLE_SIZE };
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = *out, .dstBinding = i,
            .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &info[i],
        };
    }
    d->vk.UpdateDescriptorSets(d->device, ATTN_VK_BINDINGS, w, 0, NULL);
    return ATTN_OK;
}

void attn_vk_pipeline_cache_free(attn_vk_device *d)
{
    if (!d->device)
        return;
    for (attn_vk_pipeline *p = d->pipelines, *next; p; p = next) {
        next = p->next;
        d->vk.DestroyPipeline(d->device, p->pipeline, NULL);
        free(p);
    }
    d->pipelines = NULL;
    for (int i = 0; i < ATTN_VK_NSHADER; i++)
        if (d->modules[i])
            d->vk.DestroyShaderModule(d->device, d->modules[i], NULL);
    if (d->desc_pool)
        d->vk.DestroyDescriptorPool(d->device, d->desc_pool, NULL);
    if (d->pipeline_layout)
        d->vk.DestroyPipelineLayout(d->device, d->pipeline_layout, NULL);
    if (d->set_layout)
        d->vk.DestroyDescriptorSetLayout(d->device, d->set_layout, NULL);
    if (d->pipeline_cache)
        d->vk.DestroyPipelineCache(d->device, d->pipeline_cache, NULL);
}
