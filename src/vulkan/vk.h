/* Internal interface of the Vulkan backend.
 *
 * libvulkan is never linked: loader.c dlopen()s libvulkan.so.1 and resolves
 * vkGetInstanceProcAddr; every other entry point comes through it (instance
 * level) or vkGetDeviceProcAddr (device level) into the tables below. Only
 * the headers are needed at build time (Vulkan 1.1 API). */
#ifndef ATTN_VK_H
#define ATTN_VK_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>
#include <pthread.h>
#include "../backend.h"

/* Global and instance-level entry points. */
#define ATTN_VK_INSTANCE_FUNCS(X) \
    X(DestroyInstance) X(EnumeratePhysicalDevices) X(GetPhysicalDeviceProperties) \
    X(GetPhysicalDeviceProperties2) X(GetPhysicalDeviceFeatures2) \
    X(GetPhysicalDeviceQueueFamilyProperties) X(GetPhysicalDeviceMemoryProperties) \
    X(EnumerateDeviceExtensionProperties) X(CreateDevice) X(GetDeviceProcAddr)

/* Device-level entry points. */
#define ATTN_VK_DEVICE_FUNCS(X) \
    X(DestroyDevice) X(GetDeviceQueue) X(CreateBuffer) X(DestroyBuffer) \
    X(GetBufferMemoryRequirements) X(AllocateMemory) X(FreeMemory) X(BindBufferMemory) \
    X(MapMemory) X(UnmapMemory) X(CreateCommandPool) X(DestroyCommandPool) \
    X(AllocateCommandBuffers) X(ResetCommandBuffer) X(BeginCommandBuffer) X(EndCommandBuffer) \
    X(CmdCopyBuffer) X(CmdBindPipeline) X(CmdBindDescriptorSets) X(CmdPushConstants) \
    X(CmdDispatch) X(CmdPipelineBarrier) X(CmdFillBuffer) X(QueueSubmit) X(CreateFence) \
    X(DestroyFence) X(WaitForFences) X(ResetFences) X(GetFenceStatus) X(CreateShaderModule) \
    X(DestroyShaderModule) X(CreatePipelineCache) X(DestroyPipelineCache) \
    X(CreateComputePipelines) X(DestroyPipeline) X(CreateDescriptorSetLayout) \
    X(DestroyDescriptorSetLayout) X(CreatePipelineLayout) X(DestroyPipelineLayout) \
    X(CreateDescriptorPool) X(DestroyDescriptorPool) X(ResetDescriptorPool) \
    X(AllocateDescriptorSets) X(UpdateDescriptorSets) \
    X(CreateQueryPool) X(DestroyQueryPool) X(CmdResetQueryPool) X(CmdWriteTimestamp) \
    X(GetQueryPoolResults) X(CmdUpdateBuffer)

typedef struct attn_vk_instance_api {
    PFN_vkGetInstanceProcAddr GetInstanceProcAddr;
#define ATTN_VK_MEMBER(name) PFN_vk##name name;
    ATTN_VK_INSTANCE_FUNCS(ATTN_VK_MEMBER)
} attn_vk_instance_api;

typedef struct attn_vk_device_api {
    ATTN_VK_DEVICE_FUNCS(ATTN_VK_MEMBER)
#undef ATTN_VK_MEMBER
} attn_vk_device_api;

/* One VkInstance shared by the Vulkan devices of a context (refcounted:
 * the last device destroyed destroys it). */
typedef struct attn_vk_instance {
    int                  refs;
    VkInstance           instance;
    VkDebugUtilsMessengerEXT messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    attn_vk_instance_api vk;
} attn_vk_instance;

/* Creates the instance (validation layer and an aborting error messenger
 * with ATTN_VULKAN_DEBUG=1); NULL (and no error) without a Vulkan loader. */
attn_vk_instance *attn_vk_instance_create(void);
void attn_vk_instance_release(attn_vk_instance *in);

/* Number of storage-buffer bindings of every pipeline (shared layout). */
#define ATTN_VK_BINDINGS 11
/* Push-constant bytes of every pipeline. */
#define ATTN_VK_PUSH_BYTES 128

enum { ATTN_VK_SHADER_SDPA = 0, ATTN_VK_SHADER_SDPA_SUBGROUP = 1, ATTN_VK_SHADER_MERGE = 2,
       ATTN_VK_SHADER_SDPA_COOPMAT = 3, ATTN_VK_SHADER_SDPA_COOPMAT_EMULATED = 4,
       ATTN_VK_SHADER_BLOCK_SELECT = 5, ATTN_VK_SHADER_LINEAR = 6,
       ATTN_VK_SHADER_LINEAR_SUBGROUP = 7, ATTN_VK_SHADER_LINEAR_SCAN = 8,
       ATTN_VK_SHADER_LINEAR_SCAN_DELTA = 9, ATTN_VK_SHADER_NEIGHBORHOOD = 10,
       ATTN_VK_SHADER_DECODE = 11, ATTN_VK_SHADER_DECODE_SUBGROUP = 12, ATTN_VK_SHADER_COPY = 13,
       ATTN_VK_SHADER_SDPA_COOPMAT2 = 14, ATTN_VK_NSHADER };

/* A pipeline kept for the context's life, keyed by shader + specialisation. */
#define ATTN_VK_MAX_SPEC 16
typedef struct attn_vk_pipeline {
    struct attn_vk_pipeline *next;
    int        shader;
    int        nspec;
    int32_t    spec[ATTN_VK_MAX_SPEC];
    VkPipeline pipeline;
} attn_vk_pipeline;

/* A VkBuffer with its memory (attn_buffer.handle). */
typedef struct attn_vk_buffer {
    VkBuffer       buffer;
    VkDeviceMemory memory;
    VkDeviceSize   bytes;
    void          *mapped;     /* host-visible memory, else NULL (staged) */
} attn_vk_buffer;

/* Per-device state (attn_device.impl). */
typedef struct attn_vk_device {
    attn_vk_instance  *inst;
    attn_vk_device_api vk;
    VkPhysicalDevice   phys;
    VkDevice           device;
    VkQueue            queue;
    uint32_t           queue_family;
    pthread_mutex_t    lock;        /* everything below: one op at a time */
    int                lost;        /* VK_ERROR_DEVICE_LOST seen */
    VkCommandPool      cmd_pool;
    VkCommandBuffer    cmd;
    VkFence            fence;
    VkPipelineCache    pipeline_cache;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout   pipeline_layout;
    VkDescriptorPool   desc_pool;
    uint32_t           desc_pool_sets;
    VkShaderModule     modules[ATTN_VK_NSHADER];
    attn_vk_pipeline  *pipelines;
    attn_vk_buffer     staging;     /* host-visible bounce buffer (grows) */
    attn_vk_buffer     params;      /* host-visible op parameters (grows) */
    attn_vk_buffer     dec_table, dec_part;   /* attn_decode's table and partials (grow) */
    attn_vk_buffer     dec_bar;     /* attn_decode's table in mem_type_bar (grows) */
    /* memory types: device-local for buffers, host-visible for staging;
     * device-local and host-visible (a discrete GPU's BAR), -1 if none */
    uint32_t           mem_type_device, mem_type_host;
    int                mem_type_bar;
    int                direct;      /* buffers are host-visible: no staging */
    /* limits the shaders are sized by */
    VkPhysicalDeviceLimits limits;
    uint32_t           subgroup_size;
    uint32_t           subgroup_min;   /* smallest subgroup a dispatch may get; 0 unknown */
    int                subgroup_shuffle; /* shuffles in compute shaders */
    int                subgroup_arithmetic; /* subgroup arithmetic in compute shaders */
    int                fp16, storage16, int_dot, coopmat, subgroup_control;
    /* what vulkan/sdpa_coopmat.comp needs: a 16x16x16 f16*f16+f32 subgroup
     * shape, shaderFloat16 and the Vulkan memory model */
    int                coopmat_f16;
    /* what vulkan/sdpa_coopmat2.comp needs besides: VK_NV_cooperative_matrix2
     * (workgroup scope, flexible sizes, reductions, conversions, per-element
     * operations, tensor addressing), 16-bit storage and Vulkan 1.3; the
     * largest workgroup its workgroup-scope matrices allow */
    int                coopmat2;
    uint32_t           coopmat2_max_wg;
    /* its f16 x f16 + f32 workgroup-scope shapes: per workgroup size, the
     * granularity of M, N and K (VkCooperativeMatrixFlexibleDimensionsPropertiesNV) */
    struct { uint32_t wg, m, n, k; } coopmat2_gran[8];
    int                coopmat2_ngran;
    /* ATTN_VULKAN_PROFILE (profile.c): the timestamp queries (made on first
     * use), the queue's valid timestamp bits (0 unknown), the op profiled */
    VkQueryPool        prof_pool;
    uint32_t           prof_ts_bits;
    struct attn_vk_profile *prof;
} attn_vk_device;

/* Records a Vulkan failure: ATTN_ERR_OUT_OF_MEMORY for allocation errors,
 * else ATTN_ERR_DEVICE, with "what: VK_ERROR_NAME (code)". */
attn_status attn_vk_fail(attn_vk_device *d, VkResult r, const char *what);
const char *attn_vk_result_name(VkResult r);

/* Buffers (memory.c): host 0 device-local, 1 host-visible, ATTN_VK_MEM_BAR
 * device-local and host-visible (mapped). */
#define ATTN_VK_MEM_BAR 2
attn_status attn_vk_buffer_make(attn_vk_device *d, VkDeviceSize bytes, int host, attn_vk_buffer *b);
void attn_vk_buffer_drop(attn_vk_device *d, attn_vk_buffer *b);
/* Grows a host-visible buffer to at least bytes. */
attn_status attn_vk_host_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes);
/* The same for a device-local buffer. */
attn_status attn_vk_device_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes);
/* The same for a mapped buffer of mem_type_bar (the caller checks it is
 * not -1). */
attn_status attn_vk_bar_reserve(attn_vk_device *d, attn_vk_buffer *b, VkDeviceSize bytes);
/* The vtable's buffer entries (memory.c; copy: copy.c). */
attn_status attn_vk_buf_alloc(attn_device *dev, size_t bytes, void **handle);
void attn_vk_buf_free(attn_device *dev, void *handle);
attn_status attn_vk_buf_write(attn_device *dev, void *h, size_t off, const void *src, size_t n);
attn_status attn_vk_buf_read(attn_device *dev, void *h, size_t off, void *dst, size_t n);
attn_status attn_vk_buf_copy(attn_device *dev, void *dst, size_t doff, void *src, size_t soff,
                             size_t n);
extern const attn_backend attn_vk_backend;

/* Command recording and submission (submit.c): begin, record, then submit
 * waits on the fence. Called with the device lock held. */
attn_status attn_vk_begin(attn_vk_device *d, const char *what);
attn_status attn_vk_submit(attn_vk_device *d, const char *what);
/* A compute-to-compute (and transfer) memory barrier inside the recording. */
void attn_vk_barrier(attn_vk_device *d);
/* Records a dispatch of gx x gy x gz workgroups of pipe with set bound and
 * push_bytes of push constants (none when 0). */
void attn_vk_dispatch(attn_vk_device *d, VkPipeline pipe, VkDescriptorSet set, const void *push,
                      uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz);
/* n workgroups spread over x and y within the device's limits (gx * gy >= n;
 * the shader skips the surplus); 0 when one dispatch cannot cover n. */
int attn_vk_grid_xy(const attn_vk_device *d, uint64_t n, uint32_t *gx, uint32_t *gy);

/* Pipelines and descriptors (pipeline_cache.c). */
attn_status attn_vk_layouts_create(attn_vk_device *d);
attn_status attn_vk_pipeline_get(attn_vk_device *d, int shader, const int32_t *spec, int nspec,
                                 VkPipeline *out);
void attn_vk_pipeline_cache_free(attn_vk_device *d);
/* Makes room for nsets descriptor sets in the (reset) pool. */
attn_status attn_vk_descriptors_reset(attn_vk_device *d, uint32_t nsets);
/* A descriptor set with bufs[i] at binding i (NULL: the params buffer). */
attn_status attn_vk_descriptor_set(attn_vk_device *d, VkBuffer const bufs[ATTN_VK_BINDINGS],
                                   VkDescriptorSet *out);

static inline VkBuffer attn_vk_handle(const attn_buffer *b)
{
    return ((const attn_vk_buffer *)b->handle)->buffer;
}

/* Ops. */
attn_status attn_vk_sdpa(attn_device *dev, const attn_sdpa_problem *p);
attn_status attn_vk_merge(attn_device *dev, const attn_merge_problem *p);
attn_status attn_vk_block_select(attn_device *dev, const attn_block_select_problem *p);
attn_status attn_vk_linear(attn_device *dev, const attn_linear_problem *p);
attn_status attn_vk_neighborhood(attn_device *dev, const attn_neighborhood_problem *p);
attn_status attn_vk_decode(attn_device *dev, const attn_decode_problem *p);

/* The embedded SPIR-V (generated at build time by tools/embed.sh --binary). */
extern const unsigned char attn_vk_sdpa_spv[], attn_vk_sdpa_subgroup_spv[], attn_vk_merge_spv[],
                           attn_vk_sdpa_coopmat_emulated_spv[], attn_vk_decode_spv[],
                           attn_vk_decode_subgroup_spv[];
extern const unsigned long attn_vk_sdpa_spv_size, attn_vk_sdpa_subgroup_spv_size,
                           attn_vk_merge_spv_size, attn_vk_sdpa_coopmat_emulated_spv_size,
                           attn_vk_decode_spv_size, attn_vk_decode_subgroup_spv_size;
extern const unsigned char attn_vk_block_select_spv[];
extern const unsigned long attn_vk_block_select_spv_size;
extern const unsigned char attn_vk_linear_spv[], attn_vk_linear_subgroup_spv[],
                           attn_vk_linear_scan_spv[], attn_vk_linear_scan_delta_spv[];
extern const unsigned long attn_vk_linear_spv_size, attn_vk_linear_subgroup_spv_size,
                           attn_vk_linear_scan_spv_size, attn_vk_linear_scan_delta_spv_size;
extern const unsigned char attn_vk_neighborhood_spv[], attn_vk_copy_spv[];
extern const unsigned long attn_vk_neighborhood_spv_size, attn_vk_copy_spv_size;
#ifdef HAVE_GLSL_COOPMAT
extern const unsigned char attn_vk_sdpa_coopmat_spv[];
extern const unsigned long attn_vk_sdpa_coopmat_spv_size;
#endif
#ifdef HAVE_GLSL_COOPMAT2
extern const unsigned char attn_vk_sdpa_coopmat2_spv[];
extern const unsigned long attn_vk_sdpa_coopmat2_spv_size;
#endif

#endif
