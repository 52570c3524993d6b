/* Runs a fuzz harness without libFuzzer: every file in the directories (or the files) given on
 * the command line goes once through LLVMFuzzerTestOneInput. Built in every build, so the seed
 * corpus and each crash the fuzzer ever found (fuzz/regress/) are checked by plain ctest, with
 * or without sanitizers. A broken invariant aborts, which fails the test. */
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* A corpus file is at most one protocol line; anything longer is truncated as libFuzzer's
 * -max_len=4096 would do, so the runner sees what the fuzzer saw. */
#define FZ_MAX_INPUT 4096

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t buf[FZ_MAX_INPUT];
    uint8_t *copy;
    size_t n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    /* an exact-size heap copy, as libFuzzer passes it, so ASan sees a read past the end */
    copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of inputs run from path (a file or a directory), -1 on an error. */
static int run_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ran = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;
    d = opendir(path);
    if (!d) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                abort();
        }
        names[n] = strdup(e->d_name);
        if (!names[n++])
            abort();
    }
    closedir(d);
    /* sorted, so that a failure is reproduced in the same order on every machine */
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(full) != 0)
                ran = -1;
            else if (ran >= 0)
                ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    int total = 0, bad = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n       %s --write-seeds DIR\n", argv[0], argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "--write-seeds") == 0) {
        if (argc != 3 || !fuzz_write_seeds) {
            fprintf(stderr, "%s: this harness has no generated seeds\n", argv[0]);
            return 2;
        }
        return fuzz_write_seeds(argv[2]) == 0 ? 0 : 1;
    }
    for (int i = 1; i < argc; i++) {
        int n = run_path(argv[i]);
        if (n < 0)
            bad = 1;
        else
            total += n;
        printf("%s: %d input(s)\n", argv[i], n < 0 ? 0 : n);
    }
    if (total == 0) {
        fprintf(stderr, "no inputs: a corpus directory is empty or missing\n");
        return 1;
    }
    printf("%d input(s), no invariant broken\n", total);
    return bad;
}
