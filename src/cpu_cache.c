/* The last-level cache size (see cpu_cache.h). */
#include <pthread.h>
#include <stdio.h>
#include "cpu_cache.h"

static pthread_once_t llc_once = PTHREAD_ONCE_INIT;
static size_t llc_bytes;

/* The largest unified or data cache of cpu0 in sysfs ("32768K"). */
static void llc_probe(void)
{
#ifdef __linux__
    for (int i = 0; i < 8; i++) {
        char path[96], buf[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        FILE *fp = fopen(path, "r");
        if (!fp)
            break;
        const int instr = fgets(buf, sizeof buf, fp) && buf[0] == 'I';
        fclose(fp);
        if (instr)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        fp = fopen(path, "r");
        if (!fp)
            continue;
        unsigned long long n = 0;
        char unit = 0;
        if (fscanf(fp, "%llu%c", &n, &unit) >= 1) {
            const size_t bytes = (size_t)n * (unit == 'K' ? 1024u : unit == 'M' ? 1048576u : 1u);
            if (bytes > llc_bytes)
                llc_bytes = bytes;
        }
        fclose(fp);
    }
#endif
}

size_t attn_cpu_llc_bytes(void)
{
    pthread_once(&llc_once, llc_probe);
    return llc_bytes;
}
