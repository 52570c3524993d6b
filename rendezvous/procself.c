#include "rendezvous/procself.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t ps_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    long page = sysconf(_SC_PAGESIZE);
    int n;
    if (!f)
        return 0;
    n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    return n == 2 && page > 0 ? rss * (uint64_t)page : 0;
}

/* The fallback: the directory's entries, bounded; its own descriptor is not counted. */
static uint64_t ps_fds_scan(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    uint64_t n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) && n <= PS_FD_SCAN)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 && n <= PS_FD_SCAN ? n - 1 : 0;
}

uint64_t ps_open_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        return (uint64_t)st.st_size;
    return ps_fds_scan();
}
