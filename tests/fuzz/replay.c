/*
 * replay.c: a main() for a fuzz target without libFuzzer: feeds it every file named on the
 * command line, or found (recursively, in name order) in a directory named there. Built
 * with any compiler, so that the committed corpus runs in every build, including the
 * sanitizer builds; a crash or a failed check aborts the run like any failed test.
 *
 * Usage: fuzz_replay_<target> PATH... ; prints "replay: N inputs, B bytes" on success.
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static size_t ninputs, nbytes;

static void
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "replay: out of memory\n");
            exit(2);
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    fclose(f);
    /* Exactly len bytes on the heap, as libFuzzer passes them: an overread is reported. */
    uint8_t *data = malloc(len ? len : 1);
    if (!data) {
        fprintf(stderr, "replay: out of memory\n");
        exit(2);
    }
    memcpy(data, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    ninputs++;
    nbytes += len;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void
run_path(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (!S_ISDIR(sb.st_mode)) {
        run_file(path);
        return;
    }
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (name[0] != '.') {
            size_t len = strlen(path) + strlen(name) + 2;
            char *sub = malloc(len);
            if (!sub)
                exit(2);
            snprintf(sub, len, "%s/%s", path, name);
            run_path(sub);
            free(sub);
        }
        free(list[i]);
    }
    free(list);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        run_path(argv[i]);
    if (ninputs == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %zu inputs, %zu bytes\n", ninputs, nbytes);
    return 0;
}
