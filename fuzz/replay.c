/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays a fuzz target's corpus as a TAP test, so every target is built and
 * its seeds (and every crash ever found, once added) run in make check even
 * where libFuzzer is not available. The corpus is $WARD_SRCDIR/fuzz/corpus/<name>
 * plus the directories fuzz/<name>.seeds lists (one per line, relative to the
 * source tree), so inputs that live elsewhere — the shipped policies, the test
 * policies — are seeds as they are, never copies that drift. tools/fuzz.sh
 * reads the same file.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tests/tap/basic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char **paths;
static size_t npaths;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        sysbail("cannot open corpus %s", dir);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        char **grown = realloc(paths, (npaths + 1) * sizeof(*paths));
        if (grown == NULL || (grown[npaths] = strdup(path)) == NULL) {
            bail("out of memory");
        }
        paths = grown;
        npaths++;
    }
    closedir(d);
}

int main(void)
{
    const char *src = getenv("WARD_SRCDIR") != NULL ? getenv("WARD_SRCDIR") : ".";
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", src, FUZZ_CORPUS);
    add_dir(dir);
    char seeds[4096];
    snprintf(seeds, sizeof(seeds), "%s/fuzz/%s.seeds", src, FUZZ_CORPUS);
    FILE *list = fopen(seeds, "r");
    char line[1024];
    while (list != NULL && fgets(line, sizeof(line), list) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '\0' && line[0] != '#') {
            snprintf(dir, sizeof(dir), "%s/%s", src, line);
            add_dir(dir);
        }
    }
    if (list != NULL) {
        fclose(list);
    }
    if (npaths == 0) {
        bail("corpus %s is empty", FUZZ_CORPUS);
    }
    qsort(paths, npaths, sizeof(*paths), by_name);
    plan(npaths);
    for (size_t i = 0; i < npaths; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f == NULL) {
            sysbail("open %s", paths[i]);
        }
        uint8_t *buf = malloc(1 << 20);
        size_t len = buf != NULL ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        /* a crash or sanitizer report aborts the program: reaching ok() is the assertion */
        int rc = LLVMFuzzerTestOneInput(buf, len);
        ok(rc == 0, "%s input %s is handled without a crash", FUZZ_CORPUS,
           paths[i] + strlen(src) + 1);
        free(buf);
        free(paths[i]);
    }
    free(paths);
    return 0;
}
