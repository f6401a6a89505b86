/*
 * vk-roof: what a Vulkan GPU's compute units give, measured with shaders of
 * its own (bench/vk_roof_*.comp), for the roofs of the GPU figures:
 *   - fp32 FMA rate (vk_roof_fma.comp): the roof of the plain attn_sdpa
 *     paths, which run on FMA units;
 *   - VK_KHR_cooperative_matrix f16 x f16 + f32 rate, 16x16x16 per subgroup,
 *     operands in registers (vk_roof_coopmat.comp);
 *   - the parts of vulkan/sdpa_coopmat2.comp's FlashAttention loop one at a
 *     time, with VK_NV_cooperative_matrix2 workgroup-scope matrices
 *     (vk_roof_coopmat2.comp): the matrix units alone, then with the K and V
 *     tile loads, then with the softmax.
 * Each figure is the shortest of 5 timed dispatches (GPU timestamps) after
 * one untimed. Parts the device or the shader compiler lacks are skipped.
 *
 *   vk-roof [--device N]    N: index among the Vulkan physical devices
 *                           (default: the first discrete GPU, else the first)
 *
 * Vulkan is loaded with dlopen, as libattn does.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

extern const unsigned char vk_roof_fma_spv[];
extern const unsigned long vk_roof_fma_spv_size;
#ifdef HAVE_GLSL_COOPMAT
extern const unsigned char vk_roof_coopmat_spv[];
extern const unsigned long vk_roof_coopmat_spv_size;
#endif
#ifdef HAVE_GLSL_COOPMAT2
extern const unsigned char vk_roof_coopmat2_spv[], vk_roof_coopmat2_clamp_spv[];
extern const unsigned long vk_roof_coopmat2_spv_size, vk_roof_coopmat2_clamp_spv_size;
#endif

/* Feature structures of VK_KHR_cooperative_matrix and VK_NV_cooperative_matrix2
 * (older headers lack them). */
typedef struct { VkStructureType sType; void *pNext; VkBool32 coopmat, robust; } feat_coopmat;
typedef struct {
    VkStructureType sType;
    void *pNext;
    VkBool32 workgroup_scope, flexible, reductions, conversions, per_element, tensor, block;
} feat_coopmat2;
#define STYPE_COOPMAT_FEATURES ((VkStructureType)1000506000)
#define STYPE_COOPMAT2_FEATURES ((VkStructureType)1000593000)

#define VK_FUNCS(X) \
    X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties) \
    X(vkGetPhysicalDeviceFeatures2) X(vkGetPhysicalDeviceProperties2) \
    X(vkGetPhysicalDeviceQueueFamilyProperties) \
    X(vkGetPhysicalDeviceMemoryProperties) X(vkEnumerateDeviceExtensionProperties) \
    X(vkCreateDevice) X(vkGetDeviceQueue) X(vkCreateCommandPool) X(vkCreateQueryPool) \
    X(vkCreateBuffer) X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) \
    X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) X(vkCreateShaderModule) \
    X(vkCreateDescriptorSetLayout) X(vkCreatePipelineLayout) X(vkCreateComputePipelines) \
    X(vkCreateDescriptorPool) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) \
    X(vkAllocateCommandBuffers) X(vkBeginCommandBuffer) X(vkCmdResetQueryPool) \
    X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) \
    X(vkCmdWriteTimestamp) X(vkCmdDispatch) X(vkCmdCopyBuffer) X(vkEndCommandBuffer) \
    X(vkQueueSubmit) X(vkQueueWaitIdle) X(vkGetQueryPoolResults) X(vkFreeCommandBuffers) \
    X(vkDestroyPipeline) X(vkDestroyDescriptorPool) X(vkDestroyPipelineLayout) \
    X(vkDestroyDescriptorSetLayout) X(vkDestroyShaderModule) X(vkDestroyBuffer) \
    X(vkFreeMemory) X(vkDestroyQueryPool) X(vkDestroyCommandPool) X(vkDestroyDevice) \
    X(vkDestroyInstance)
#define DECLARE(f) static PFN_##f f##_;
VK_FUNCS(DECLARE)

typedef struct gpu {
    VkInstance inst;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    VkCommandPool pool;
    VkQueryPool qp;
    double ns_per_tick;
    uint32_t subgroup;      /* invocations per subgroup */
    feat_coopmat cm;
    feat_coopmat2 cm2;
    int has_cm, has_cm2;
} gpu;

typedef struct buf { VkBuffer b; VkDeviceMemory m; VkDeviceSize n; } buf;

static void die(const char *what, VkResult r)
{
    fprintf(stderr, "vk-roof: %s failed (VkResult %d)\n", what, (int)r);
    exit(1);
}
#define CHECK(call) do { VkResult r_ = (call); if (r_ != VK_SUCCESS) die(#call, r_); } while (0)

static int has_ext(const gpu *g, const char *name)
{
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties_(g->phys, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return 0;
    vkEnumerateDeviceExtensionProperties_(g->phys, NULL, &n, e);
    int found = 0;
    for (uint32_t i = 0; i < n && !found; i++)
        found = strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Loads Vulkan, picks the device and creates it with every feature it has
 * (the cooperative-matrix ones included). */
static void gpu_open(gpu *g, int want)
{
    void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "vk-roof: cannot load libvulkan.so.1 (%s)\n", dlerror());
        exit(1);
    }
    PFN_vkGetInstanceProcAddr gipa = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance create = gipa ? (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance") : NULL;
    if (!create) {
        fprintf(stderr, "vk-roof: no vkCreateInstance in libvulkan.so.1\n");
        exit(1);
    }
    const VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                                    .pApplicationName = "vk-roof",
                                    .apiVersion = VK_API_VERSION_1_3 };
    const VkInstanceCreateInfo ii = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                      .pApplicationInfo = &app };
    CHECK(create(&ii, NULL, &g->inst));
#define LOAD(f) \
    if (!(f##_ = (PFN_##f)gipa(g->inst, #f))) { \
        fprintf(stderr, "vk-roof: no %s\n", #f); \
        exit(1); \
    }
    VK_FUNCS(LOAD)

    uint32_t n = 16;
    VkPhysicalDevice pd[16];
    VkResult r = vkEnumeratePhysicalDevices_(g->inst, &n, pd);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0) {
        fprintf(stderr, "vk-roof: no Vulkan device\n");
        exit(1);
    }
    int pick = 0;
    for (int i = (int)n - 1; i >= 0; i--) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties_(pd[i], &p);
        if (p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU)
            pick = i;
    }
    if (want >= 0) {
        if (want >= (int)n) {
            fprintf(stderr, "vk-roof: --device %d: there are %u devices\n", want, n);
            exit(2);
        }
        pick = want;
    }
    g->phys = pd[pick];
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties_(g->phys, &props);
    g->ns_per_tick = props.limits.timestampPeriod;
    VkPhysicalDeviceSubgroupProperties sp = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                       .pNext = &sp };
    vkGetPhysicalDeviceProperties2_(g->phys, &p2);
    g->subgroup = sp.subgroupSize ? sp.subgroupSize : 32;
    printf("device %d: %s (Vulkan %u.%u)\n", pick, props.deviceName,
           VK_API_VERSION_MAJOR(props.apiVersion), VK_API_VERSION_MINOR(props.apiVersion));

    /* query every feature, then enable what the device has (the 1.3
     * structure and workgroup-scope matrices only on a 1.3 device) */
    const int api13 = VK_API_VERSION_MAJOR(props.apiVersion) > 1 ||
                      VK_API_VERSION_MINOR(props.apiVersion) >= 3;
    const char *exts[2];
    uint32_t next = 0;
    g->cm2 = (feat_coopmat2){ .sType = STYPE_COOPMAT2_FEATURES };
    g->cm = (feat_coopmat){ .sType = STYPE_COOPMAT_FEATURES };
    VkPhysicalDeviceVulkan13Features v13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES };
    VkPhysicalDeviceVulkan12Features v12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = api13 ? &v13 : NULL };
    VkPhysicalDeviceVulkan11Features v11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &v12 };
    void **tail = api13 ? &v13.pNext : &v12.pNext;
    if (has_ext(g, "VK_KHR_cooperative_matrix")) {
        exts[next++] = "VK_KHR_cooperative_matrix";
        *tail = &g->cm;
        tail = &g->cm.pNext;
    }
    if (api13 && has_ext(g, "VK_NV_cooperative_matrix2")) {
        exts[next++] = "VK_NV_cooperative_matrix2";
        *tail = &g->cm2;
    }
    VkPhysicalDeviceFeatures2 feats = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &v11 };
    vkGetPhysicalDeviceFeatures2_(g->phys, &feats);
    g->has_cm = g->cm.coopmat && v12.vulkanMemoryModel && v12.shaderFloat16 &&
                v11.storageBuffer16BitAccess;
    g->has_cm2 = g->has_cm && g->cm2.workgroup_scope && g->cm2.tensor && g->cm2.reductions &&
                 g->cm2.per_element && g->cm2.conversions;

    uint32_t nq = 16;
    VkQueueFamilyProperties qf[16];
    vkGetPhysicalDeviceQueueFamilyProperties_(g->phys, &nq, qf);
    uint32_t fam = 0;
    while (fam < nq && !(qf[fam].queueFlags & VK_QUEUE_COMPUTE_BIT))
        fam++;
    if (fam == nq || qf[fam].timestampValidBits == 0) {
        fprintf(stderr, "vk-roof: no compute queue with timestamps\n");
        exit(1);
    }
    const float prio = 1.0f;
    const VkDeviceQueueCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                         .queueFamilyIndex = fam, .queueCount = 1,
                                         .pQueuePriorities = &prio };
    const VkDeviceCreateInfo di = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &feats,
                                    .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
                                    .enabledExtensionCount = next, .ppEnabledExtensionNames = exts };
    CHECK(vkCreateDevice_(g->phys, &di, NULL, &g->dev));
    vkGetDeviceQueue_(g->dev, fam, 0, &g->queue);
    const VkCommandPoolCreateInfo cp = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                         .queueFamilyIndex = fam };
    CHECK(vkCreateCommandPool_(g->dev, &cp, NULL, &g->pool));
    const VkQueryPoolCreateInfo qpi = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                        .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2 };
    CHECK(vkCreateQueryPool_(g->dev, &qpi, NULL, &g->qp));
}

static buf buf_new(const gpu *g, VkDeviceSize n, int host)
{
    buf b = { .n = n };
    const VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = n,
                                    .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                             VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                             VK_BUFFER_USAGE_TRANSFER_DST_BIT };
    CHECK(vkCreateBuffer_(g->dev, &bi, NULL, &b.b));
    VkMemoryRequirements mr;
    vkGetBufferMemoryRequirements_(g->dev, b.b, &mr);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties_(g->phys, &mp);
    const VkMemoryPropertyFlags want = host ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                              VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                            : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    uint32_t t = 0;
    while (t < mp.memoryTypeCount &&
           !((mr.memoryTypeBits >> t & 1) && (mp.memoryTypes[t].propertyFlags & want) == want))
        t++;
    if (t == mp.memoryTypeCount) {
        fprintf(stderr, "vk-roof: no memory type for a %s buffer\n", host ? "host" : "device");
        exit(1);
    }
    const VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                      .allocationSize = mr.size, .memoryTypeIndex = t };
    CHECK(vkAllocateMemory_(g->dev, &ai, NULL, &b.m));
    CHECK(vkBindBufferMemory_(g->dev, b.b, b.m, 0));
    return b;
}

static void buf_free(const gpu *g, buf *b)
{
    vkDestroyBuffer_(g->dev, b->b, NULL);
    vkFreeMemory_(g->dev, b->m, NULL);
}

static VkCommandBuffer cmd_begin(const gpu *g)
{
    const VkCommandBufferAllocateInfo ca = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                             .commandPool = g->pool,
                                             .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                             .commandBufferCount = 1 };
    VkCommandBuffer cb;
    CHECK(vkAllocateCommandBuffers_(g->dev, &ca, &cb));
    const VkCommandBufferBeginInfo bb = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
    CHECK(vkBeginCommandBuffer_(cb, &bb));
    return cb;
}

static void cmd_run(const gpu *g, VkCommandBuffer cb)
{
    CHECK(vkEndCommandBuffer_(cb));
    const VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                              .pCommandBuffers = &cb };
    CHECK(vkQueueSubmit_(g->queue, 1, &si, VK_NULL_HANDLE));
    CHECK(vkQueueWaitIdle_(g->queue));
    vkFreeCommandBuffers_(g->dev, g->pool, 1, &cb);
}

#if defined(HAVE_GLSL_COOPMAT) || defined(HAVE_GLSL_COOPMAT2)
/* A device buffer of n bytes of random f16 values of both signs. */
static buf f16_random(const gpu *g, VkDeviceSize n)
{
    buf host = buf_new(g, n, 1), dev = buf_new(g, n, 0);
    uint16_t *h;
    CHECK(vkMapMemory_(g->dev, host.m, 0, n, 0, (void **)&h));
    uint32_t x = 12345;
    for (VkDeviceSize i = 0; i < n / 2; i++) {
        x = x * 1664525u + 1013904223u;
        /* sign, exponent 2^-8..2^-1 (biased 7..14), 10 random mantissa bits */
        h[i] = (uint16_t)((x >> 16 & 0x8000) | ((7 + (x >> 13) % 8) << 10) | (x >> 3 & 0x3ff));
    }
    vkUnmapMemory_(g->dev, host.m);
    VkCommandBuffer cb = cmd_begin(g);
    const VkBufferCopy c = { 0, 0, n };
    vkCmdCopyBuffer_(cb, host.b, dev.b, 1, &c);
    cmd_run(g, cb);
    buf_free(g, &host);
    return dev;
}
#endif

/* Seconds of the shortest of 5 timed dispatches of `groups` workgroups of
 * the shader (after one untimed); < 0 if the driver refuses the pipeline. */
static double time_shader(const gpu *g, const unsigned char *spv, unsigned long size,
                          const buf *bufs, int nb, const int32_t *spec, int nspec,
                          const void *pc, uint32_t pcn, uint32_t groups)
{
    VkShaderModule mod;
    const VkShaderModuleCreateInfo mi = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                          .codeSize = size, .pCode = (const uint32_t *)spv };
    CHECK(vkCreateShaderModule_(g->dev, &mi, NULL, &mod));
    VkDescriptorSetLayoutBinding bd[3];
    for (int i = 0; i < nb; i++)
        bd[i] = (VkDescriptorSetLayoutBinding){ .binding = (uint32_t)i,
                                                 .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                 .descriptorCount = 1,
                                                 .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    const VkDescriptorSetLayoutCreateInfo dl = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = (uint32_t)nb,
        .pBindings = bd };
    VkDescriptorSetLayout dsl;
    CHECK(vkCreateDescriptorSetLayout_(g->dev, &dl, NULL, &dsl));
    const VkPushConstantRange pr = { VK_SHADER_STAGE_COMPUTE_BIT, 0, pcn };
    const VkPipelineLayoutCreateInfo pl = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                            .setLayoutCount = 1, .pSetLayouts = &dsl,
                                            .pushConstantRangeCount = 1, .pPushConstantRanges = &pr };
    VkPipelineLayout lay;
    CHECK(vkCreatePipelineLayout_(g->dev, &pl, NULL, &lay));
    VkSpecializationMapEntry me[8];
    for (int i = 0; i < nspec; i++)
        me[i] = (VkSpecializationMapEntry){ (uint32_t)i, (uint32_t)(4 * i), 4 };
    const VkSpecializationInfo si = { (uint32_t)nspec, me, 4 * (size_t)nspec, spec };
    const VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                   .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                   .pSpecializationInfo = nspec ? &si : NULL },
        .layout = lay };
    VkPipeline pipe;
    double best = -1.0;
    if (vkCreateComputePipelines_(g->dev, VK_NULL_HANDLE, 1, &ci, NULL, &pipe) != VK_SUCCESS)
        goto out;
    const VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 3 };
    const VkDescriptorPoolCreateInfo dp = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                            .maxSets = 1, .poolSizeCount = 1, .pPoolSizes = &ps };
    VkDescriptorPool dpool;
    CHECK(vkCreateDescriptorPool_(g->dev, &dp, NULL, &dpool));
    const VkDescriptorSetAllocateInfo da = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                             .descriptorPool = dpool, .descriptorSetCount = 1,
                                             .pSetLayouts = &dsl };
    VkDescriptorSet set;
    CHECK(vkAllocateDescriptorSets_(g->dev, &da, &set));
    VkDescriptorBufferInfo bi[3];
    VkWriteDescriptorSet w[3];
    for (int i = 0; i < nb; i++) {
        bi[i] = (VkDescriptorBufferInfo){ bufs[i].b, 0, VK_WHOLE_SIZE };
        w[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstSet = set, .dstBinding = (uint32_t)i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &bi[i] };
    }
    vkUpdateDescriptorSets_(g->dev, (uint32_t)nb, w, 0, NULL);
    for (int t = 0; t < 6; t++) {
        VkCommandBuffer cb = cmd_begin(g);
        vkCmdResetQueryPool_(cb, g->qp, 0, 2);
        vkCmdBindPipeline_(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
        vkCmdBindDescriptorSets_(cb, VK_PIPELINE_BIND_POINT_COMPUTE, lay, 0, 1, &set, 0, NULL);
        vkCmdPushConstants_(cb, lay, VK_SHADER_STAGE_COMPUTE_BIT, 0, pcn, pc);
        vkCmdWriteTimestamp_(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, g->qp, 0);
        vkCmdDispatch_(cb, groups, 1, 1);
        vkCmdWriteTimestamp_(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->qp, 1);
        cmd_run(g, cb);
        uint64_t ts[2];
        CHECK(vkGetQueryPoolResults_(g->dev, g->qp, 0, 2, sizeof ts, ts, 8,
                                     VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
        const double s = (double)(ts[1] - ts[0]) * g->ns_per_tick * 1e-9;
        if (t > 0 && (best < 0.0 || s < best))
            best = s;
    }
    vkDestroyPipeline_(g->dev, pipe, NULL);
    vkDestroyDescriptorPool_(g->dev, dpool, NULL);
out:
    vkDestroyPipelineLayout_(g->dev, lay, NULL);
    vkDestroyDescriptorSetLayout_(g->dev, dsl, NULL);
    vkDestroyShaderModule_(g->dev, mod, NULL);
    return best;
}

static void report(const char *what, double flops, double s)
{
    if (s <= 0.0)
        printf("  %-58s  (the driver refused the pipeline)\n", what);
    else
        printf("  %-58s %9.3f ms %8.1f TFLOP/s\n", what, s * 1e3, flops / s * 1e-12);
}

static void fma_rate(const gpu *g, buf *out)
{
    /* a short run first, then as many iterations as take about 0.1 s (a
     * software device runs the full count for minutes) */
    struct { int32_t iters; float a, b; } pc = { 16, 0.999f, 0.001f };
    const uint32_t groups = 8192;                 /* enough to fill any GPU many times */
    double s = time_shader(g, vk_roof_fma_spv, vk_roof_fma_spv_size, out, 1, NULL, 0, &pc,
                           sizeof pc, groups);
    if (s > 0.0) {
        const double want = pc.iters * 0.1 / s;
        pc.iters = want > 4096 ? 4096 : want < 16 ? 16 : (int32_t)want;
        s = time_shader(g, vk_roof_fma_spv, vk_roof_fma_spv_size, out, 1, NULL, 0, &pc,
                        sizeof pc, groups);
    }
    printf("fp32 FMA (8 chains per invocation, %u workgroups of 256):\n", groups);
    report("a * x + b", 2.0 * groups * 256 * 8 * 16.0 * pc.iters, s);
}

#ifdef HAVE_GLSL_COOPMAT
static void coopmat_rate(const gpu *g, buf *a, buf *out)
{
    static const int32_t tiles[3][2] = { { 2, 2 }, { 4, 2 }, { 4, 4 } };
    const struct { int32_t iters; } pc = { 2048 };
    const uint32_t groups = 2048;
    printf("VK_KHR_cooperative_matrix, f16 x f16 + f32, 16x16x16 per subgroup, operands in "
           "registers:\n");
    for (int v = 0; v < 3; v++) {
        buf bb[2] = { *a, *out };
        const double s = time_shader(g, vk_roof_coopmat_spv, vk_roof_coopmat_spv_size, bb, 2,
                                     tiles[v], 2, &pc, sizeof pc, groups);
        char what[96];
        snprintf(what, sizeof what, "%d x %d accumulators a subgroup", tiles[v][0], tiles[v][1]);
        const double subgroups = (double)groups * (128 / (g->subgroup < 128 ? g->subgroup : 128));
        report(what, 2.0 * 16 * 16 * 16 * tiles[v][0] * tiles[v][1] * (double)pc.iters * subgroups,
               s);
    }
}
#endif

#ifdef HAVE_GLSL_COOPMAT2
/* vk_roof_coopmat2.comp's push constants */
typedef struct { int32_t ntiles, nk, heads; float scale; } coopmat2_pc;

static void coopmat2_loop(const gpu *g, buf *q, buf *kv, buf *out, int heads, int nk)
{
    static const char *const what[5] = {
        "S += Q K^T, K^T loaded once", "S += Q K^T, K^T loaded per tile",
        "S = Q K^T, P = f16(S), O += P V, K and V per tile",
        "the whole step (online softmax), K and V per tile",
        "the whole step, next tile's K and V loaded first",
    };
    const int32_t wg = 256, bq = 128, bk = 64, d = 128;
    const coopmat2_pc pc = { nk / bk, nk, heads, 0.088f };
    const uint32_t groups = (uint32_t)heads * 32;   /* 32 query blocks a head: S = 4096 */
    printf("VK_NV_cooperative_matrix2 workgroup-scope loop (vulkan/sdpa_coopmat2.comp's "
           "shape: %d invocations, %d query rows, %d-key tiles, D %d; %d heads, %d keys):\n",
           wg, bq, bk, d, heads, nk);
    static const char *const layouts[3] = { "", ", [H,S,D]", ", [H,S,D], V = K" };
    for (int clamp = 0; clamp < 2; clamp++)
        for (int lay = 0; lay < 3; lay++)
            for (int kload = 0; kload < 2; kload++)
                for (int mode = 0; mode < 5; mode++) {
                    if ((kload && mode != 1 && mode != 3) || (lay && (kload || mode < 2)))
                        continue;
                    const int32_t spec[7] = { wg, bq, bk, d, mode, kload, lay };
                    buf bb[3] = { *q, *kv, *out };
                    const double s = clamp ?
                        time_shader(g, vk_roof_coopmat2_clamp_spv, vk_roof_coopmat2_clamp_spv_size,
                                    bb, 3, spec, 7, &pc, sizeof pc, groups) :
                        time_shader(g, vk_roof_coopmat2_spv, vk_roof_coopmat2_spv_size, bb, 3,
                                    spec, 7, &pc, sizeof pc, groups);
                    char label[128];
                    snprintf(label, sizeof label, "%s%s%s%s", what[mode],
                             kload ? ", K column-major" : "", layouts[lay], clamp ? ", clamped" : "");
                    const double flops = 2.0 * bq * bk * d * (mode <= 1 ? 1 : 2) *
                                         (double)pc.ntiles * groups;
                    report(label, flops, s);
                }
}

/* The whole step (mode 3, the library's [S, H, D] layout, unclamped: the
 * fastest case above) at other workgroup shapes, so that the bound it sets
 * on the FlashAttention loop is not that of one shape. */
static void coopmat2_shapes(const gpu *g, buf *q, buf *kv, buf *out, int heads, int nk)
{
    /* at most 256 invocations, as the library's default; 256, 64, 64 is left
     * out: the H200's driver (580) crashed compiling it */
    static const int32_t shapes[][3] = {
        { 128, 64, 32 }, { 128, 64, 64 }, { 128, 64, 128 }, { 128, 128, 64 },
        { 256, 128, 32 }, { 256, 128, 64 }, { 256, 128, 128 }, { 256, 256, 32 },
        { 256, 256, 64 },
    };
    const int32_t d = 128;
    printf("VK_NV_cooperative_matrix2, the whole step (online softmax), K and V per tile, "
           "by shape (invocations, query rows, keys per tile):\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int32_t wg = shapes[i][0], bq = shapes[i][1], bk = shapes[i][2];
        const coopmat2_pc pc = { nk / bk, nk, heads, 0.088f };
        const uint32_t groups = (uint32_t)heads * (uint32_t)(nk / bq);
        const int32_t spec[7] = { wg, bq, bk, d, 3, 0, 0 };
        buf bb[3] = { *q, *kv, *out };
        const double s = time_shader(g, vk_roof_coopmat2_spv, vk_roof_coopmat2_spv_size, bb, 3,
                                     spec, 7, &pc, sizeof pc, groups);
        char label[96];
        snprintf(label, sizeof label, "%d, %d, %d", wg, bq, bk);
        report(label, 2.0 * bq * bk * d * 2 * (double)pc.ntiles * groups, s);
    }
}
#endif

int main(int argc, char **argv)
{
    int want = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            want = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: vk-roof [--device N]\n");
            return 2;
        }
    }
    gpu g;
    gpu_open(&g, want);
    buf out = buf_new(&g, 256ul << 20, 0);
    fma_rate(&g, &out);
#if defined(HAVE_GLSL_COOPMAT) || defined(HAVE_GLSL_COOPMAT2)
    buf q = f16_random(&g, 64ul * 256 * 128 * 2);   /* 64 blocks of up to 256 rows, D 128 */
#endif
#ifdef HAVE_GLSL_COOPMAT
    if (g.has_cm)
        coopmat_rate(&g, &q, &out);
    else
        printf("VK_KHR_cooperative_matrix: not on this device\n");
#else
    printf("VK_KHR_cooperative_matrix: this build's shader compiler lacks it\n");
#endif
#ifdef HAVE_GLSL_COOPMAT2
    if (g.has_cm2) {
        const int heads = 32, nk = 4096;
        buf kv = f16_random(&g, 2ul * heads * nk * 128 * 2);
        coopmat2_loop(&g, &q, &kv, &out, heads, nk);
        coopmat2_shapes(&g, &q, &kv, &out, heads, nk);
        buf_free(&g, &kv);
    } else {
        printf("VK_NV_cooperative_matrix2: not on this device\n");
    }
#else
    printf("VK_NV_cooperative_matrix2: this build's shader compiler lacks it\n");
#endif
#if defined(HAVE_GLSL_COOPMAT) || defined(HAVE_GLSL_COOPMAT2)
    buf_free(&g, &q);
#endif
    buf_free(&g, &out);
    vkDestroyQueryPool_(g.dev, g.qp, NULL);
    vkDestroyCommandPool_(g.dev, g.pool, NULL);
    vkDestroyDevice_(g.dev, NULL);
    vkDestroyInstance_(g.inst, NULL);
    return 0;
}
