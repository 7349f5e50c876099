/*
 * The practical limit for matcher's engine: MD5 + SHA-1 + SHA-256 of every
 * regular file under a folder, one read pass per file, OpenSSL EVP, N threads
 * pulling files from a shared counter. Not part of the package: a yardstick
 * for tests/bench/bench_scan.py, compiled there with
 *     gcc -O2 -pthread yardstick.c -o yardstick -lcrypto
 *
 * Usage: yardstick [-j THREADS] [-v] DIR
 *   -v prints "md5 sha1 sha256 path" per file (for spot checks), else only
 *   a summary line "files=N bytes=N" on stderr.
 */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)

static char **paths;
static size_t n_paths, cap_paths;
static atomic_size_t next_index;
static atomic_ullong total_bytes;
static int verbose;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int collect(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    if (n_paths == cap_paths) {
        cap_paths = cap_paths ? cap_paths * 2 : 1024;
        paths = realloc(paths, cap_paths * sizeof *paths);
        if (!paths) {
            perror("realloc");
            exit(2);
        }
    }
    paths[n_paths++] = strdup(path);
    return 0;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void *worker(void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(BUF_SIZE);
    EVP_MD_CTX *ctx[3] = {EVP_MD_CTX_new(), EVP_MD_CTX_new(), EVP_MD_CTX_new()};
    const EVP_MD *md[3] = {EVP_md5(), EVP_sha1(), EVP_sha256()};
    for (;;) {
        size_t i = atomic_fetch_add(&next_index, 1);
        if (i >= n_paths)
            break;
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) {
            perror(paths[i]);
            continue;
        }
        for (int k = 0; k < 3; k++)
            EVP_DigestInit_ex(ctx[k], md[k], NULL);
        ssize_t n;
        unsigned long long bytes = 0;
        while ((n = read(fd, buf, BUF_SIZE)) > 0) {
            for (int k = 0; k < 3; k++)
                EVP_DigestUpdate(ctx[k], buf, (size_t)n);
            bytes += (unsigned long long)n;
        }
        close(fd);
        atomic_fetch_add(&total_bytes, bytes);
        unsigned char out[3][EVP_MAX_MD_SIZE];
        unsigned len[3];
        for (int k = 0; k < 3; k++)
            EVP_DigestFinal_ex(ctx[k], out[k], &len[k]);
        if (verbose) {
            char h[3][2 * EVP_MAX_MD_SIZE + 1];
            for (int k = 0; k < 3; k++)
                hex(out[k], len[k], h[k]);
            pthread_mutex_lock(&out_lock);
            printf("%s %s %s %s\n", h[0], h[1], h[2], paths[i]);
            pthread_mutex_unlock(&out_lock);
        }
    }
    for (int k = 0; k < 3; k++)
        EVP_MD_CTX_free(ctx[k]);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2, opt;
    while ((opt = getopt(argc, argv, "j:v")) != -1) {
        if (opt == 'j')
            threads = atoi(optarg);
        else if (opt == 'v')
            verbose = 1;
        else
            return 2;
    }
    if (optind != argc - 1 || threads < 1) {
        fprintf(stderr, "usage: %s [-j THREADS] [-v] DIR\n", argv[0]);
        return 2;
    }
    if (nftw(argv[optind], collect, 64, FTW_PHYS) != 0) {
        perror("nftw");
        return 2;
    }
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    for (int t = 0; t < threads; t++)
        pthread_create(&tids[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    fprintf(stderr, "files=%zu bytes=%llu\n", n_paths, (unsigned long long)total_bytes);
    return 0;
}
