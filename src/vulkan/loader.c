/* Loads the Vulkan loader with dlopen, once per process, and creates the
 * instance a context's Vulkan devices share. No link-time dependency on
 * libvulkan: a machine without it simply has no Vulkan devices. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vk.h"

static PFN_vkGetInstanceProcAddr gipa;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = { "libvulkan.so.1", "libvulkan.so" };
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    /* Through a void * and memcpy: ISO C has no cast between object and
     * function pointers. Kept loaded for the process's life. */
    void *sym = dlsym(h, "vkGetInstanceProcAddr");
    if (sym)
        memcpy(&gipa, &sym, sizeof sym);
    else
        dlclose(h);
}

static int debug_requested(void)
{
    const char *e = getenv("ATTN_VULKAN_DEBUG");
    return e && *e && strcmp(e, "0") != 0;
}

/* ATTN_VULKAN_DEBUG: a validation error is a bug in libattn; make the
 * test that hit it fail loudly at the offending call. */
static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                VkDebugUtilsMessageTypeFlagsEXT type,
                                                const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                void *user)
{
    (void)type;
    (void)user;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        fprintf(stderr, "libattn: Vulkan validation error: %s\n", data->pMessage);
        abort();
    }
    return VK_FALSE;
}

static int has_layer(PFN_vkEnumerateInstanceLayerProperties enum_layers, const char *name)
{
    uint32_t n = 0;
    if (enum_layers(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props && enum_layers(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static int has_instance_ext(PFN_vkEnumerateInstanceExtensionProperties enum_ext, const char *name)
{
    uint32_t n = 0;
    if (enum_ext(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props && enum_ext(NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}


attn_vk_instance *attn_vk_instance_create(void)
{
    pthread_once(&once, load);
    if (!gipa)
        return NULL;
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
    PFN_vkEnumerateInstanceVersion version =
        (PFN_vkEnumerateInstanceVersion)gipa(NULL, "vkEnumerateInstanceVersion");
    PFN_vkEnumerateInstanceLayerProperties enum_layers =
        (PFN_vkEnumerateInstanceLayerProperties)gipa(NULL, "vkEnumerateInstanceLayerProperties");
    PFN_vkEnumerateInstanceExtensionProperties enum_ext = (PFN_vkEnumerateInstanceExtensionProperties)
        gipa(NULL, "vkEnumerateInstanceExtensionProperties");
    uint32_t api = VK_API_VERSION_1_0;
    if (!create || !version || version(&api) != VK_SUCCESS || api < VK_API_VERSION_1_1)
        return NULL;   /* the backend needs Vulkan 1.1 */

    const char *layers[1], *exts[1];
    uint32_t nlayers = 0, nexts = 0;
    const int debug = debug_requested();
    if (debug && enum_layers && has_layer(enum_layers, "VK_LAYER_KHRONOS_validation"))
        layers[nlayers++] = "VK_LAYER_KHRONOS_validation";
    if (debug && enum_ext && has_instance_ext(enum_ext, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
        exts[nexts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;

    const VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "libattn",
        .pEngineName = "libattn",
        /* 1.3 where the loader has it: the workgroup-scope cooperative-matrix
         * shader is SPIR-V 1.6; devices of 1.1 still work under it */
        .apiVersion = api >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_1,
    };
    const VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
        .enabledLayerCount = nlayers, .ppEnabledLayerNames = layers,
        .enabledExtensionCount = nexts, .ppEnabledExtensionNames = exts,
    };
    attn_vk_instance *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    if (create(&ci, NULL, &in->instance) != VK_SUCCESS) {
        free(in);
        return NULL;
    }
    in->refs = 1;
    in->vk.GetInstanceProcAddr = gipa;
    int ok = 1;
#define ATTN_VK_RESOLVE(name) \
    ok &= (in->vk.name = (PFN_vk##name)gipa(in->instance, "vk" #name)) != NULL;
    ATTN_VK_INSTANCE_FUNCS(ATTN_VK_RESOLVE)
#undef ATTN_VK_RESOLVE
    if (!ok) {
        if (in->vk.DestroyInstance)
            in->vk.DestroyInstance(in->instance, NULL);
        free(in);
        return NULL;
    }
    if (nexts) {
        PFN_vkCreateDebugUtilsMessengerEXT mk = (PFN_vkCreateDebugUtilsMessengerEXT)
            gipa(in->instance, "vkCreateDebugUtilsMessengerEXT");
        in->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)
            gipa(in->instance, "vkDestroyDebugUtilsMessengerEXT");
        const VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
            .pfnUserCallback = on_message,
        };
        if (mk && in->destroy_messenger)
            mk(in->instance, &mi, NULL, &in->messenger);
    }
    return in;
}

void attn_vk_instance_release(attn_vk_instance *in)
{
    if (!in || --in->refs > 0)
        return;
    if (in->messenger)
        in->destroy_messenger(in->instance, in->messenger, NULL);
    in->vk.DestroyInstance(in->instance, NULL);
    free(in);
}

const char *attn_vk_result_name(VkResult r)
{
    switch (r) {
#define N(x) case x: return #x;
    N(VK_SUCCESS) N(VK_NOT_READY) N(VK_TIMEOUT) N(VK_INCOMPLETE)
    N(VK_ERROR_OUT_OF_HOST_MEMORY) N(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    N(VK_ERROR_INITIALIZATION_FAILED) N(VK_ERROR_DEVICE_LOST) N(VK_ERROR_MEMORY_MAP_FAILED)
    N(VK_ERROR_LAYER_NOT_PRESENT) N(VK_ERROR_EXTENSION_NOT_PRESENT)
    N(VK_ERROR_FEATURE_NOT_PRESENT) N(VK_ERROR_INCOMPATIBLE_DRIVER) N(VK_ERROR_TOO_MANY_OBJECTS)
    N(VK_ERROR_FORMAT_NOT_SUPPORTED) N(VK_ERROR_FRAGMENTED_POOL) N(VK_ERROR_OUT_OF_POOL_MEMORY)
    N(VK_ERROR_INVALID_SHADER_NV) N(VK_ERROR_UNKNOWN)
#undef N
    default: return "unknown VkResult";
    }
}
