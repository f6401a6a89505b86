/* The Vulkan backend: device enumeration (attn_vulkan_probe), feature
 * probing, and per-device state. Hardware devices are listed first and
 * software ones (lavapipe, SwiftShader) after them, so that
 * ATTN_DEVICE=vulkan means the first GPU when there is one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vk.h"
#include "profile.h"
#include "../error.h"

/* VK_KHR_cooperative_matrix, for headers older than 1.3.255 (Debian 12). */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define ATTN_VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void           *pNext;
    uint32_t        MSize, NSize, KSize;
    int32_t         AType, BType, CType, ResultType;
    VkBool32        saturatingAccumulation;
    int32_t         scope;
} VkCooperativeMatrixPropertiesKHR;
typedef VkResult (VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#define ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void           *pNext;
    VkBool32        cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
#else
#define ATTN_VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR \
    VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR
#define ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR \
    VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR
#endif
/* VK_NV_cooperative_matrix2's feature and property structures (no header
 * of Debian 12 or 13 declares them under these names in every version). */
#define ATTN_VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME "VK_NV_cooperative_matrix2"
#define ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV \
    ((VkStructureType)1000593000)
#define ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_PROPERTIES_NV \
    ((VkStructureType)1000593002)
typedef struct attn_vk_coopmat2_features {
    VkStructureType sType;
    void           *pNext;
    VkBool32        workgroupScope, flexibleDimensions, reductions, conversions,
                    perElementOperations, tensorAddressing, blockLoads;
} attn_vk_coopmat2_features;
typedef struct attn_vk_coopmat2_properties {
    VkStructureType sType;
    void           *pNext;
    uint32_t        workgroupScopeMaxWorkgroupSize, flexibleDimensionsMaxDimension,
                    workgroupScopeReservedSharedMemory;
} attn_vk_coopmat2_properties;
#define ATTN_VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_FLEXIBLE_DIMENSIONS_PROPERTIES_NV \
    ((VkStructureType)1000593001)
typedef struct attn_vk_coopmat_flexible {
    VkStructureType sType;
    void           *pNext;
    uint32_t        MGranularity, NGranularity, KGranularity;
    int32_t         AType, BType, CType, ResultType;
    VkBool32        saturatingAccumulation;
    int32_t         scope;
    uint32_t        workgroupInvocations;
} attn_vk_coopmat_flexible;
typedef VkResult (VKAPI_PTR *attn_pfn_flexible)(VkPhysicalDevice, uint32_t *,
                                                attn_vk_coopmat_flexible *);
/* Component types and scope of the coopmat shape the shader uses. */
enum { ATTN_VK_COMPONENT_F16 = 0, ATTN_VK_COMPONENT_F32 = 1, ATTN_VK_SCOPE_WORKGROUP = 2,
       ATTN_VK_SCOPE_SUBGROUP = 3 };
#ifndef VK_KHR_shader_integer_dot_product
#define VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME "VK_KHR_shader_integer_dot_product"
#endif

attn_status attn_vk_fail(attn_vk_device *d, VkResult r, const char *what)
{
    if (r == VK_ERROR_DEVICE_LOST && d)
        d->lost = 1;
    attn_status s = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY ||
                     r == VK_ERROR_TOO_MANY_OBJECTS) ? ATTN_ERR_OUT_OF_MEMORY : ATTN_ERR_DEVICE;
    return attn_fail(s, "%s: Vulkan error %s (%d)%s", what, attn_vk_result_name(r), (int)r,
                     r == VK_ERROR_DEVICE_LOST ? "; the device is lost, create a new context" : "");
}

static void vk_destroy(attn_device *dev)
{
    attn_vk_device *d = dev->impl;
    if (!d)
        return;
    attn_vk_pipeline_cache_free(d);
    attn_vk_buffer_drop(d, &d->staging);
    attn_vk_buffer_drop(d, &d->params);
    attn_vk_buffer_drop(d, &d->dec_table);
    attn_vk_buffer_drop(d, &d->dec_bar);
    attn_vk_buffer_drop(d, &d->dec_part);
    attn_vk_prof_free(d);
    if (d->fence)
        d->vk.DestroyFence(d->device, d->fence, NULL);
    if (d->cmd_pool)
        d->vk.DestroyCommandPool(d->device, d->cmd_pool, NULL);
    if (d->device)
        d->vk.DestroyDevice(d->device, NULL);
    attn_vk_instance_release(d->inst);
    pthread_mutex_destroy(&d->lock);
    free(d);
    dev->impl = NULL;
}

const attn_backend attn_vk_backend = {
    .name = "vulkan",
    .buffer_alloc = attn_vk_buf_alloc,
    .buffer_free = attn_vk_buf_free,
    .buffer_write = attn_vk_buf_write,
    .buffer_read = attn_vk_buf_read,
    .buffer_copy = attn_vk_buf_copy,
    .buffer_host_ptr = NULL,
    .sdpa = attn_vk_sdpa,
    .merge = attn_vk_merge,
    .block_select = attn_vk_block_select,
    .linear = attn_vk_linear,
    .neighborhood = attn_vk_neighborhood,
    .destroy = vk_destroy,
    .decode = attn_vk_decode,
};

typedef struct ext_list { VkExtensionProperties *p; uint32_t n; } ext_list;

static int has_ext(const ext_list *e, const char *name)
{
    for (uint32_t i = 0; i < e->n; i++)
        if (strcmp(e->p[i].extensionName, name) == 0)
            return 1;
    return 0;
}

static const char *component_name(int32_t t)
{
    static const char *const names[] = { "f16", "f32", "f64", "s8", "s16", "s32", "s64",
                                         "u8", "u16", "u32", "u64" };
    return t >= 0 && t < 11 ? names[t] : "?";
}

/* " coopmat:16x16x16:f16*f16+f32" for each shape, into dst; sets
 * coopmat_f16 when the shape vulkan/sdpa_coopmat.comp uses is there. */
static void list_coopmat(attn_vk_device *d, char *dst, size_t n)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)d->inst->vk.GetInstanceProcAddr(
            d->inst->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t count = 0;
    if (!get || get(d->phys, &count, NULL) != VK_SUCCESS || count == 0)
        return;
    VkCooperativeMatrixPropertiesKHR *props = calloc(count, sizeof *props);
    if (!props)
        return;
    for (uint32_t i = 0; i < count; i++)
        props[i].sType = ATTN_VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    if (get(d->phys, &count, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < count; i++) {
            const VkCooperativeMatrixPropertiesKHR *c = &props[i];
            if (c->MSize == 16 && c->NSize == 16 && c->KSize == 16 &&
                c->AType == ATTN_VK_COMPONENT_F16 && c->BType == ATTN_VK_COMPONENT_F16 &&
                c->CType == ATTN_VK_COMPONENT_F32 && c->ResultType == ATTN_VK_COMPONENT_F32 &&
                c->scope == ATTN_VK_SCOPE_SUBGROUP)
                d->coopmat_f16 = 1;
            size_t len = strlen(dst);
            if (len + 40 >= n)
                break;
            snprintf(dst + len, n - len, " coopmat:%ux%ux%u:%s*%s+%s", props[i].MSize,
                     props[i].NSize, props[i].KSize, component_name(props[i].AType),
                     component_name(props[i].BType), component_name(props[i].CType));
        }
    free(props);
}

/* Whether the device has the features of vulkan/sdpa_coopmat.comp:
 * cooperativeMatrix and the Vulkan memory model (core in 1.2). */
static int coopmat_features(attn_vk_device *d, uint32_t api)
{
    if (api < VK_API_VERSION_1_2)
        return 0;
    VkPhysicalDeviceVulkanMemoryModelFeatures mm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES };
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR cm = {
        .sType = ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .pNext = &mm };
    VkPhysicalDeviceFeatures2 feats = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &cm };
    d->inst->vk.GetPhysicalDeviceFeatures2(d->phys, &feats);
    return cm.cooperativeMatrix && mm.vulkanMemoryModel;
}

/* The f16 x f16 + f32 workgroup-scope shapes of VK_NV_cooperative_matrix2
 * into d->coopmat2_gran; 0 if there is none. */
static int coopmat2_shapes(attn_vk_device *d)
{
    attn_pfn_flexible get = (attn_pfn_flexible)d->inst->vk.GetInstanceProcAddr(
        d->inst->instance, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV");
    uint32_t count = 0;
    if (!get || get(d->phys, &count, NULL) != VK_SUCCESS || count == 0)
        return 0;
    attn_vk_coopmat_flexible *props = calloc(count, sizeof *props);
    if (!props)
        return 0;
    for (uint32_t i = 0; i < count; i++)
        props[i].sType = ATTN_VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_FLEXIBLE_DIMENSIONS_PROPERTIES_NV;
    d->coopmat2_ngran = 0;
    if (get(d->phys, &count, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && d->coopmat2_ngran < 8; i++) {
            const attn_vk_coopmat_flexible *c = &props[i];
            if (c->AType == ATTN_VK_COMPONENT_F16 && c->BType == ATTN_VK_COMPONENT_F16 &&
                c->CType == ATTN_VK_COMPONENT_F32 && c->ResultType == ATTN_VK_COMPONENT_F32 &&
                c->scope == ATTN_VK_SCOPE_WORKGROUP && c->MGranularity > 0 &&
                c->NGranularity > 0 && c->KGranularity > 0) {
                d->coopmat2_gran[d->coopmat2_ngran].wg = c->workgroupInvocations;
                d->coopmat2_gran[d->coopmat2_ngran].m = c->MGranularity;
                d->coopmat2_gran[d->coopmat2_ngran].n = c->NGranularity;
                d->coopmat2_gran[d->coopmat2_ngran].k = c->KGranularity;
                d->coopmat2_ngran++;
            }
        }
    free(props);
    return d->coopmat2_ngran > 0;
}

/* Whether the device has what vulkan/sdpa_coopmat2.comp uses (on top of
 * coopmat_f16): the extension with the features named in vk.h, 16-bit
 * storage, Vulkan 1.3 (SPIR-V 1.6), maintenance4 and an f16 workgroup-scope
 * shape; sets coopmat2_max_wg and coopmat2_gran. */
static int coopmat2_features(attn_vk_device *d, const ext_list *ext, uint32_t api)
{
    if (!d->coopmat_f16 || !d->storage16 || api < VK_API_VERSION_1_3 ||
        !has_ext(ext, ATTN_VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME))
        return 0;
    attn_vk_coopmat2_features f = {
        .sType = ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV };
    VkPhysicalDeviceFeatures2 feats = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &f };
    VkPhysicalDeviceMaintenance4Features m4 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_FEATURES };
    f.pNext = &m4;
    d->inst->vk.GetPhysicalDeviceFeatures2(d->phys, &feats);
    attn_vk_coopmat2_properties p = {
        .sType = ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_PROPERTIES_NV };
    VkPhysicalDeviceProperties2 props = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                          .pNext = &p };
    d->inst->vk.GetPhysicalDeviceProperties2(d->phys, &props);
    d->coopmat2_max_wg = p.workgroupScopeMaxWorkgroupSize;
    return f.workgroupScope && f.flexibleDimensions && f.reductions && f.conversions &&
           f.perElementOperations && f.tensorAddressing && m4.maintenance4 &&
           d->coopmat2_max_wg > 0 && coopmat2_shapes(d);
}

/* Compute units (NVIDIA SMs, AMD CUs) where the driver tells them
 * (VK_NV_shader_sm_builtins, VK_AMD_shader_core_properties); 0 unknown. */
static int compute_units(attn_vk_device *d, const ext_list *ext)
{
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV nv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV };
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD };
    VkPhysicalDeviceProperties2 props = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2 };
    if (has_ext(ext, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME))
        props.pNext = &nv;
    else if (has_ext(ext, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME))
        props.pNext = &amd;
    else
        return 0;
    d->inst->vk.GetPhysicalDeviceProperties2(d->phys, &props);
    return props.pNext == (void *)&nv ? (int)nv.shaderSMCount :
           (int)(amd.shaderEngineCount * amd.shaderArraysPerEngineCount *
                 amd.computeUnitsPerShaderArray);
}

/* Features and limits the shaders are chosen by; fills info. */
static void probe_features(attn_vk_device *d, const ext_list *ext, attn_device_info *in)
{
    const attn_vk_instance_api *vk = &d->inst->vk;
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT sgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT };
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sg };
    const int has_sgc = has_ext(ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    const int has_drv = has_ext(ext, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
    sg.pNext = has_sgc ? &sgc : NULL;
    VkPhysicalDeviceProperties2 props = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                          .pNext = has_drv ? (void *)&drv : (void *)&sg };
    vk->GetPhysicalDeviceProperties2(d->phys, &props);
    d->limits = props.properties.limits;
    d->subgroup_size = sg.subgroupSize;

    VkPhysicalDevice16BitStorageFeatures st16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES };
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES };
    const int has_f16 = has_ext(ext, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME) ||
                        props.properties.apiVersion >= VK_API_VERSION_1_2;
    st16.pNext = has_f16 ? &f16 : NULL;
    VkPhysicalDeviceFeatures2 feats = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &st16 };
    vk->GetPhysicalDeviceFeatures2(d->phys, &feats);
    d->fp16 = has_f16 && f16.shaderFloat16;
    d->storage16 = st16.storageBuffer16BitAccess;
    d->int_dot = has_ext(ext, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME) ||
                 props.properties.apiVersion >= VK_API_VERSION_1_3;
    d->coopmat = has_ext(ext, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    d->subgroup_control = has_sgc && sgc.minSubgroupSize > 0;
    /* Without size control the size a dispatch gets may be below the
     * reported one (Intel): the subgroup path needs the minimum. */
    d->subgroup_min = d->subgroup_control ? sgc.minSubgroupSize : 0;
    d->subgroup_shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    d->subgroup_arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                             (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);

    memset(in, 0, sizeof *in);
    in->size = sizeof *in;
    in->type = ATTN_DEVICE_VULKAN;
    snprintf(in->name, sizeof in->name, "%.127s", props.properties.deviceName);
    static const struct { uint32_t id; const char *name; } vendors[] = {
        { 0x10de, "NVIDIA" }, { 0x1002, "AMD" }, { 0x8086, "Intel" }, { 0x13b5, "ARM" },
        { 0x5143, "Qualcomm" }, { 0x1010, "Imagination" }, { 0x10005, "Mesa" },
    };
    snprintf(in->vendor, sizeof in->vendor, "0x%04x", props.properties.vendorID);
    for (size_t i = 0; i < sizeof vendors / sizeof vendors[0]; i++)
        if (vendors[i].id == props.properties.vendorID)
            snprintf(in->vendor, sizeof in->vendor, "%s", vendors[i].name);
    if (has_drv)
        snprintf(in->driver, sizeof in->driver, "%.31s %.31s", drv.driverName, drv.driverInfo);
    else
        snprintf(in->driver, sizeof in->driver, "0x%x", props.properties.driverVersion);
    in->is_software = props.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    in->local_mem_bytes = d->limits.maxComputeSharedMemorySize;
    in->max_work_group_size = (int)d->limits.maxComputeWorkGroupInvocations;
    in->subgroup_size = (int)sg.subgroupSize;
    in->fp16 = d->fp16;
    in->compute_units = compute_units(d, ext);

    VkPhysicalDeviceMemoryProperties mem;
    vk->GetPhysicalDeviceMemoryProperties(d->phys, &mem);
    for (uint32_t h = 0; h < mem.memoryHeapCount; h++)
        if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            in->global_mem_bytes += mem.memoryHeaps[h].size;

    char *f = in->features;
    const size_t fn = sizeof in->features;
    snprintf(f, fn, "vulkan %u.%u subgroup:%u%s%s%s%s%s", VK_API_VERSION_MAJOR(props.properties.apiVersion),
             VK_API_VERSION_MINOR(props.properties.apiVersion), sg.subgroupSize,
             d->subgroup_control ? " subgroup_size_control" : "",
             d->fp16 ? " shaderFloat16" : "", d->storage16 ? " storage16" : "",
             d->int_dot ? " int_dot" : "", d->coopmat ? " cooperative_matrix" : "");
    if (d->subgroup_control) {
        size_t len = strlen(f);
        snprintf(f + len, fn - len, " subgroup_sizes:%u-%u", sgc.minSubgroupSize,
                 sgc.maxSubgroupSize);
    }
    if (d->coopmat)
        list_coopmat(d, f, fn);
    d->coopmat_f16 = d->coopmat_f16 && d->fp16 && coopmat_features(d, props.properties.apiVersion);
    d->coopmat2 = coopmat2_features(d, ext, props.properties.apiVersion);
    if (d->coopmat2) {
        size_t len = strlen(f);
        snprintf(f + len, fn - len, " cooperative_matrix2");
    }
}

/* Memory types: device-local for buffers; on unified memory (integrated
 * and CPU devices) a device-local type that is also host-visible and
 * coherent is used directly, without staging. ATTN_VULKAN_STAGING=1 forces
 * staging (tests the discrete-GPU path anywhere). */
static int choose_memory(attn_vk_device *d, int unified)
{
    VkPhysicalDeviceMemoryProperties mem;
    d->inst->vk.GetPhysicalDeviceMemoryProperties(d->phys, &mem);
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    const char *force = getenv("ATTN_VULKAN_STAGING");
    const int staging = force && *force && strcmp(force, "0") != 0;
    int dev = -1, hst = -1, both = -1;
    for (uint32_t i = 0; i < mem.memoryTypeCount; i++) {
        const VkMemoryPropertyFlags f = mem.memoryTypes[i].propertyFlags;
        if (dev < 0 && (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
            dev = (int)i;
        if (hst < 0 && (f & host) == host)
            hst = (int)i;
        if (both < 0 && (f & host) == host && (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
            both = (int)i;
    }
    if (hst < 0)
        return 0;
    d->mem_type_host = (uint32_t)hst;
    d->mem_type_bar = both;
    d->direct = unified && both >= 0 && !staging;
    d->mem_type_device = d->direct ? (uint32_t)both : (uint32_t)(dev >= 0 ? dev : hst);
    return 1;
}

/* A compute queue family: a compute-only one if there is one (async
 * compute on discrete GPUs), else the first with compute;
 * ATTN_VULKAN_QUEUE=graphics takes the first with compute (tuning). */
static int find_queue(const attn_vk_instance_api *vk, VkPhysicalDevice phys, uint32_t *family)
{
    VkQueueFamilyProperties q[16];
    uint32_t n = 16;
    vk->GetPhysicalDeviceQueueFamilyProperties(phys, &n, q);
    int any = -1, only = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0)
            continue;
        if (any < 0)
            any = (int)i;
        if (only < 0 && !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            only = (int)i;
    }
    if (any < 0)
        return 0;
    const char *env = getenv("ATTN_VULKAN_QUEUE");
    *family = (uint32_t)(only >= 0 && !(env && strcmp(env, "graphics") == 0) ? only : any);
    return 1;
}

/* Creates the logical device with the features the shaders may use. */
static int create_device(attn_vk_device *d, const ext_list *ext)
{
    const float prio = 1.0f;
    const VkDeviceQueueCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = d->queue_family,
        .queueCount = 1, .pQueuePriorities = &prio,
    };
    const char *names[4];
    uint32_t nnames = 0;
    if (d->subgroup_control)
        names[nnames++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    if (d->fp16 && has_ext(ext, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME))
        names[nnames++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
    if (d->coopmat_f16)
        names[nnames++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
    if (d->coopmat2)
        names[nnames++] = ATTN_VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME;
    /* maintenance4 (core 1.3): the SPIR-V 1.6 shader's workgroup size is
     * LocalSizeId (a specialisation constant) */
    VkPhysicalDeviceMaintenance4Features m4 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_FEATURES,
        .maintenance4 = VK_TRUE };
    attn_vk_coopmat2_features cm2 = {
        .sType = ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV,
        .pNext = &m4,
        .workgroupScope = VK_TRUE, .flexibleDimensions = VK_TRUE, .reductions = VK_TRUE,
        .conversions = VK_TRUE, .perElementOperations = VK_TRUE, .tensorAddressing = VK_TRUE };
    VkPhysicalDeviceVulkanMemoryModelFeatures mm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
        .pNext = d->coopmat2 ? &cm2 : NULL, .vulkanMemoryModel = VK_TRUE };
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR cm = {
        .sType = ATTN_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR,
        .pNext = &mm, .cooperativeMatrix = VK_TRUE };
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
        .pNext = d->coopmat_f16 ? &cm : NULL, .shaderFloat16 = (VkBool32)d->fp16 };
    VkPhysicalDevice16BitStorageFeatures st16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
        .pNext = d->fp16 ? &f16 : NULL, .storageBuffer16BitAccess = (VkBool32)d->storage16 };
    VkPhysicalDeviceFeatures2 feats = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &st16 };
    const VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &feats,
        .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
        .enabledExtensionCount = nnames, .ppEnabledExtensionNames = names,
    };
    if (d->inst->vk.CreateDevice(d->phys, &ci, NULL, &d->device) != VK_SUCCESS)
        return 0;
    int ok = 1;
#define ATTN_VK_RESOLVE(name) \
    ok &= (d->vk.name = (PFN_vk##name)d->inst->vk.GetDeviceProcAddr(d->device, "vk" #name)) != NULL;
    ATTN_VK_DEVICE_FUNCS(ATTN_VK_RESOLVE)
#undef ATTN_VK_RESOLVE
    if (!ok)
        return 0;
    d->vk.GetDeviceQueue(d->device, d->queue_family, 0, &d->queue);
    return 1;
}

/* The command pool, command buffer, fence and pipeline layouts. */
static int create_objects(attn_vk_device *d)
{
    const VkCommandPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = d->queue_family,
    };
    if (d->vk.CreateCommandPool(d->device, &pi, NULL, &d->cmd_pool) != VK_SUCCESS)
        return 0;
    const VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = d->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1,
    };
    if (d->vk.AllocateCommandBuffers(d->device, &ai, &d->cmd) != VK_SUCCESS)
        return 0;
    const VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    if (d->vk.CreateFence(d->device, &fi, NULL, &d->fence) != VK_SUCCESS)
        return 0;
    return attn_vk_layouts_create(d) == ATTN_OK &&
           attn_vk_host_reserve(d, &d->params, 4096) == ATTN_OK;
}

/* Fills the state and info of one physical device; 0 if it cannot be used. */
static int init_device(attn_vk_instance *inst, VkPhysicalDevice phys, attn_context *ctx,
                       attn_device *dev)
{
    VkPhysicalDeviceProperties pp;
    inst->vk.GetPhysicalDeviceProperties(phys, &pp);
    uint32_t family;
    if (pp.apiVersion < VK_API_VERSION_1_1 || !find_queue(&inst->vk, phys, &family))
        return 0;
    ext_list ext = { NULL, 0 };
    if (inst->vk.EnumerateDeviceExtensionProperties(phys, NULL, &ext.n, NULL) == VK_SUCCESS &&
        ext.n && (ext.p = calloc(ext.n, sizeof *ext.p)) != NULL &&
        inst->vk.EnumerateDeviceExtensionProperties(phys, NULL, &ext.n, ext.p) != VK_SUCCESS)
        ext.n = 0;
    attn_vk_device *d = calloc(1, sizeof *d);
    if (!d) {
        free(ext.p);
        return 0;
    }
    inst->refs++;
    d->inst = inst;
    d->phys = phys;
    d->queue_family = family;
    pthread_mutex_init(&d->lock, NULL);
    dev->impl = d;
    probe_features(d, &ext, &dev->info);
    const int unified = pp.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                        pp.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    const int ok = choose_memory(d, unified) && create_device(d, &ext) && create_objects(d);
    free(ext.p);
    if (!ok) {
        vk_destroy(dev);
        return 0;
    }
    dev->backend = &attn_vk_backend;
    dev->ctx = ctx;
    return 1;
}

void attn_vulkan_probe(attn_context *ctx)
{
    attn_vk_instance *inst = attn_vk_instance_create();
    if (!inst)
        return;
    VkPhysicalDevice phys[ATTN_MAX_DEVICES];
    uint32_t n = ATTN_MAX_DEVICES;
    VkResult r = inst->vk.EnumeratePhysicalDevices(inst->instance, &n, phys);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        n = 0;
    /* Pass 0: hardware; pass 1: software rasterisers. */
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < n && ctx->ndev < ATTN_MAX_DEVICES; i++) {
            VkPhysicalDeviceProperties pp;
            inst->vk.GetPhysicalDeviceProperties(phys[i], &pp);
            if ((pp.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU) != pass)
                continue;
            if (init_device(inst, phys[i], ctx, &ctx->dev[ctx->ndev]))
                ctx->ndev++;
            else
                memset(&ctx->dev[ctx->ndev], 0, sizeof ctx->dev[ctx->ndev]);
        }
    attn_vk_instance_release(inst);   /* the devices hold their own references */
}
