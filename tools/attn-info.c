/*
 * attn-info: what libattn sees on this machine.
 *
 * Prints the library version and, for every device of a default context,
 * its name, vendor, type and compute units; for the CPU also the detected
 * feature bits and the kernel set in use (and the best one the machine
 * supports). Uses the public API only. ATTN_ISA / ATTN_DEVICE /
 * OMP_NUM_THREADS are honoured as by any application.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "attn.h"

static const char *device_type_name(attn_device_type t)
{
    switch (t) {
    case ATTN_DEVICE_CPU:    return "cpu";
    case ATTN_DEVICE_OPENCL: return "opencl";
    case ATTN_DEVICE_VULKAN: return "vulkan";
    }
    return "unknown";
}

static void print_bytes(const char *label, uint64_t b)
{
    if (b == 0)
        return;
    if (b >= (UINT64_C(1) << 30))
        printf("  %-18s %.1f GiB\n", label, (double)b / (double)(UINT64_C(1) << 30));
    else if (b >= (UINT64_C(1) << 20))
        printf("  %-18s %.1f MiB\n", label, (double)b / (double)(UINT64_C(1) << 20));
    else
        printf("  %-18s %" PRIu64 " KiB\n", label, b >> 10);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: attn-info [-h|--help] [-V|--version]\n"
            "Prints the libattn version and every device it can use.\n"
            "Environment: ATTN_ISA=scalar|avx2|avx512|neon caps the CPU kernel set,\n"
            "ATTN_DEVICE=cpu|opencl[:N]|vulkan[:N] picks the preferred device,\n"
            "OMP_NUM_THREADS sets the CPU threads.\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("%s\n", attn_version());
            return 0;
        }
        fprintf(stderr, "attn-info: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }

    printf("libattn %s (header %d.%d.%d)\n", attn_version(),
           ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH);

    attn_context *ctx = NULL;
    attn_status st = attn_context_create(NULL, &ctx);
    if (st != ATTN_OK) {
        fprintf(stderr, "attn-info: attn_context_create failed: %s: %s\n",
                attn_status_string(st), attn_last_error());
        return 1;
    }

    int n = attn_device_count(ctx);
    int preferred = attn_context_device(ctx);
    printf("devices: %d (preferred: %d)\n", n, preferred);

    int rc = 0;
    for (int d = 0; d < n; d++) {
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        st = attn_device_get_info(ctx, d, &info);
        if (st != ATTN_OK) {
            fprintf(stderr, "attn-info: device %d: %s: %s\n", d, attn_status_string(st),
                    attn_last_error());
            rc = 1;
            continue;
        }
        printf("\ndevice %d%s\n", d, d == preferred ? " (preferred)" : "");
        printf("  %-18s %s\n", "name:", info.name[0] ? info.name : "(unknown)");
        printf("  %-18s %s\n", "vendor:", info.vendor[0] ? info.vendor : "(unknown)");
        printf("  %-18s %s%s\n", "type:", device_type_name(info.type),
               info.is_software ? " (software)" : "");
        if (info.driver[0])
            printf("  %-18s %s\n", "driver:", info.driver);
        printf("  %-18s %d\n", "compute units:", info.compute_units);
        print_bytes("global memory:", info.global_mem_bytes);
        print_bytes("local memory:", info.local_mem_bytes);
        if (info.max_work_group_size > 0)
            printf("  %-18s %d\n", "max work-group:", info.max_work_group_size);
        if (info.subgroup_size > 0)
            printf("  %-18s %d\n", "subgroup size:", info.subgroup_size);
        if (info.type != ATTN_DEVICE_CPU)
            printf("  %-18s %s\n", "fp16:", info.fp16 ? "yes" : "no");
        if (info.features[0])
            printf("  %-18s %s\n", "features:", info.features);

        if (info.type == ATTN_DEVICE_CPU) {
            size_t need = attn_cpu_features_string(info.cpu_features, NULL, 0);
            char *feat = malloc(need + 1);
            if (!feat) {
                fprintf(stderr, "attn-info: out of memory\n");
                rc = 1;
                continue;
            }
            attn_cpu_features_string(info.cpu_features, feat, need + 1);
            printf("  %-18s %s\n", "cpu features:", feat[0] ? feat : "(none)");
            printf("  %-18s 0x%016" PRIx64 "\n", "feature bits:", info.cpu_features);
            printf("  %-18s %s\n", "kernel set (isa):", attn_isa_name(info.isa));
            printf("  %-18s %s\n", "best isa:", attn_isa_name(info.best_isa));
            free(feat);
        }
    }

    attn_context_destroy(ctx);
    return rc;
}
