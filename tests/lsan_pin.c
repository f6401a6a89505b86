/* Linked into every test program. Under AddressSanitizer it keeps Mesa's
 * software Vulkan driver (lavapipe) loaded until the process exits.
 *
 * The Vulkan loader opens the driver when libattn creates its instance and
 * closes it when libattn destroys it. LeakSanitizer reports at exit, when
 * the driver is no longer mapped: an allocation the driver keeps for the
 * process's life then shows an unknown module, and the suppression that
 * names the driver (tools/lsan-drivers.supp) cannot match it. Opening it
 * here first with RTLD_NODELETE keeps it mapped; the loader's later open
 * finds the same library. Elsewhere (no ASan, no such library) this does
 * nothing. */
#if defined(__SANITIZE_ADDRESS__) && defined(__linux__)
#include <dlfcn.h>

__attribute__((constructor)) static void pin_vulkan_driver(void)
{
    (void)dlopen("libvulkan_lvp.so", RTLD_NOW | RTLD_NODELETE);   /* NULL if absent */
}
#else
typedef int attn_lsan_pin_empty;   /* ISO C wants a non-empty translation unit */
#endif
