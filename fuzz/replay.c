/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays a fuzz target's corpus as a TAP test, so every target is built and
 * its seeds (and every crash ever found, once added) run in make check even
 * where libFuzzer is not available. The corpus is $WARD_SRCDIR/fuzz/corpus/<name>.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/tap/basic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char dir[4096];
    const char *src = getenv("WARD_SRCDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", src != NULL ? src : ".", FUZZ_CORPUS);
    DIR *d = opendir(dir);
    if (d == NULL) {
        sysbail("cannot open corpus %s", dir);
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char **grown = realloc(names, (n + 1) * sizeof(*names));
        if (grown == NULL || (grown[n] = strdup(e->d_name)) == NULL) {
            bail("out of memory");
        }
        names = grown;
        n++;
    }
    closedir(d);
    if (n == 0) {
        bail("corpus %s is empty", dir);
    }
    qsort(names, n, sizeof(*names), by_name);
    plan(n);
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            sysbail("open %s", path);
        }
        uint8_t *buf = malloc(1 << 20);
        size_t len = buf != NULL ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        /* a crash or sanitizer report aborts the program: reaching ok() is the assertion */
        int rc = LLVMFuzzerTestOneInput(buf, len);
        ok(rc == 0, "%s input %s is handled without a crash", FUZZ_CORPUS, names[i]);
        free(buf);
        free(names[i]);
    }
    free(names);
    return 0;
}
