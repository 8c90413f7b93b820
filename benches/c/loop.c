/* The floor racepool's worker loop is measured against: WORKERS processes forked onto one
 * MAP_SHARED memfd region, released together from a start barrier, each making OPS updates
 * of the same kind as racepool's memory strategies, then the count is checked.
 *
 * Per update, what racepool's loop must also do and nothing more: pick a slot (none with one
 * slot; splitmix64 and a multiply-shift range reduction otherwise), apply the update, and
 * publish the worker's acknowledged count (a relaxed store: bounded accounting needs it).
 *
 *   cc -O2 -o loop loop.c -lpthread
 *   loop STRATEGY WORKERS OPS [SLOTS [timed]]   STRATEGY: atomic cas racy pthread pthread-robust
 *
 * `timed`: the floor of any timed loop, for racepool's --latency all beside it: one TSC read
 * per update (an update's end is the next one's start) and a log2 bucket incremented, kept in
 * the worker and never reported. Without it, nothing is timed.
 *
 * Prints one line of key=value pairs; updates_per_s = updates / (last end - release), as
 * racepool's ops/s. Exit 0; 1 if an exact strategy lost an update; 2 on bad input; 4 if the
 * system refused (memfd, mmap, fork). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

enum strategy { ATOMIC, CAS, RACY, PTHREAD, PTHREAD_ROBUST };
static const char *NAMES[] = {"atomic", "cas", "racy", "pthread", "pthread-robust"};

struct header { uint32_t arrived, go; };
/* One cache-line pair per worker (128 bytes: the adjacent-line prefetcher), as racepool's. */
struct area { uint64_t completed, end_ns; char pad[112]; };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void futex(uint32_t *word, int op, uint32_t val) {
    syscall(SYS_futex, word, op, val, NULL, NULL, 0); /* shared: the region is MAP_SHARED */
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The update loop, inlined once per (strategy, one slot or many): like racepool's monomorphized
 * loop, no strategy or slot-count test is left inside it. */
static inline __attribute__((always_inline)) void
updates(const enum strategy s, const int one_slot, const int timed, struct area *a,
        uint32_t *values, pthread_mutex_t *locks, uint64_t ops, uint64_t slots, uint64_t seed) {
    uint64_t buckets[64] = {0}, last = timed ? __rdtsc() : 0;
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = one_slot ? 0 : (uint64_t)(((unsigned __int128)splitmix64(&seed) * slots) >> 64);
        uint32_t *v = &values[k], seen;
        switch (s) {
        case ATOMIC: __atomic_fetch_add(v, 1, __ATOMIC_RELAXED); break;
        case CAS:
            seen = __atomic_load_n(v, __ATOMIC_RELAXED);
            /* Strong CAS; a failure leaves what it saw in `seen`: no second load. */
            while (!__atomic_compare_exchange_n(v, &seen, seen + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
            break;
        case RACY: __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED); break;
        case PTHREAD: case PTHREAD_ROBUST:
            if (pthread_mutex_lock(&locks[k]) == EOWNERDEAD) pthread_mutex_consistent(&locks[k]);
            *v += 1;
            pthread_mutex_unlock(&locks[k]);
            break;
        }
        __atomic_store_n(&a->completed, i + 1, __ATOMIC_RELAXED);
        if (timed) {
            uint64_t t = __rdtsc();
            buckets[63 - __builtin_clzll((t - last) | 1)]++;
            last = t;
        }
    }
    __asm__ volatile("" : : "r"(buckets) : "memory"); /* the counts are kept, not dropped */
}

#define UPDATES_T(S, T) (slots == 1 ? updates(S, 1, T, a, values, locks, ops, 1, seed) \
                                    : updates(S, 0, T, a, values, locks, ops, slots, seed))
#define UPDATES(S) (timed ? UPDATES_T(S, 1) : UPDATES_T(S, 0))

static void work(enum strategy s, int timed, struct header *h, struct area *a, uint32_t *values,
                 pthread_mutex_t *locks, uint64_t ops, uint64_t slots, uint64_t seed) {
    __atomic_fetch_add(&h->arrived, 1, __ATOMIC_SEQ_CST);
    futex(&h->arrived, FUTEX_WAKE, 1);
    while (__atomic_load_n(&h->go, __ATOMIC_ACQUIRE) == 0) futex(&h->go, FUTEX_WAIT, 0);
    switch (s) {
    case ATOMIC: UPDATES(ATOMIC); break;
    case CAS: UPDATES(CAS); break;
    case RACY: UPDATES(RACY); break;
    case PTHREAD: case PTHREAD_ROBUST: UPDATES(PTHREAD); break; /* the attribute differs */
    }
    __atomic_store_n(&a->end_ns, now_ns(), __ATOMIC_RELEASE); /* pairs with the parent's wait */
}

int main(int argc, char **argv) {
    int s = -1;
    for (int i = 0; argc >= 4 && i < 5; i++) if (strcmp(argv[1], NAMES[i]) == 0) s = i;
    long workers = argc >= 4 ? atol(argv[2]) : 0, slots = argc >= 5 ? atol(argv[4]) : 1;
    long long ops = argc >= 4 ? atoll(argv[3]) : 0;
    int timed = argc == 6 && strcmp(argv[5], "timed") == 0;
    if (s < 0 || workers < 1 || ops < 1 || slots < 1 || argc > 6 || (argc == 6 && !timed)) {
        fprintf(stderr, "usage: loop atomic|cas|racy|pthread|pthread-robust WORKERS OPS [SLOTS [timed]]\n");
        return 2;
    }
    size_t size = sizeof(struct header) + 128 + workers * sizeof(struct area)
                  + slots * (sizeof(uint32_t) + sizeof(pthread_mutex_t));
    int fd = memfd_create("loop", MFD_CLOEXEC);
    char *base = fd < 0 || ftruncate(fd, size) != 0 ? MAP_FAILED
                 : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) { perror("loop: memfd/mmap"); return 4; }
    struct header *h = (struct header *)base;
    struct area *areas = (struct area *)(base + 128);
    pthread_mutex_t *locks = (pthread_mutex_t *)(areas + workers);
    uint32_t *values = (uint32_t *)(locks + slots); /* packed, 4 bytes apart */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (s == PTHREAD_ROBUST) pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    for (long k = 0; k < slots; k++) pthread_mutex_init(&locks[k], &attr);

    long forked = 0;
    for (; forked < workers; forked++) {
        pid_t pid = fork();
        if (pid < 0) { perror("loop: fork"); break; } /* release and reap those forked */
        if (pid == 0) { work(s, timed, h, &areas[forked], values, locks, ops, slots, 1 + forked); _exit(0); }
    }
    for (uint32_t n; (n = __atomic_load_n(&h->arrived, __ATOMIC_SEQ_CST)) < forked;)
        futex(&h->arrived, FUTEX_WAIT, n);
    uint64_t go = now_ns();
    __atomic_store_n(&h->go, 1, __ATOMIC_RELEASE); /* pairs with the workers' Acquire */
    futex(&h->go, FUTEX_WAKE, INT32_MAX);
    int failed = forked < workers;
    for (long w = 0; w < forked; w++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    }
    uint64_t end = go, updates = 0, observed = 0;
    for (long w = 0; w < workers; w++) {
        uint64_t e = __atomic_load_n(&areas[w].end_ns, __ATOMIC_ACQUIRE);
        end = e > end ? e : end;
        updates += areas[w].completed;
    }
    for (long k = 0; k < slots; k++) observed += values[k];
    double secs = (double)(end - go) / 1e9;
    printf("loop: strategy=%s workers=%ld ops=%lld slots=%ld timed=%d updates=%llu observed=%llu "
           "lost=%llu window_ms=%.3f updates_per_s=%.0f\n", NAMES[s], workers, ops, slots, timed,
           (unsigned long long)updates, (unsigned long long)observed,
           (unsigned long long)(updates - observed), secs * 1e3, updates / (secs > 0 ? secs : 1e-9));
    return failed ? 4 : (s != RACY && observed != updates) ? 1 : 0;
}
