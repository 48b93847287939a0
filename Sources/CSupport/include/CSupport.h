#ifndef CSUPPORT_H
#define CSUPPORT_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

// Page-table entries live in emulated physical memory that a driver thread
// writes while an emulated IOMMU walks it from a device thread. Real hardware
// sees each 64-bit entry as one indivisible access; these helpers give the
// emulation the same guarantee and make the sharing visible to ThreadSanitizer.

static inline uint64_t csupport_load64_acquire(const void *address) {
    return __atomic_load_n((const uint64_t *)address, __ATOMIC_ACQUIRE);
}

static inline uint64_t csupport_load64_relaxed(const void *address) {
    return __atomic_load_n((const uint64_t *)address, __ATOMIC_RELAXED);
}

static inline void csupport_store64_release(void *address, uint64_t value) {
    __atomic_store_n((uint64_t *)address, value, __ATOMIC_RELEASE);
}

static inline uint32_t csupport_load32_acquire(const void *address) {
    return __atomic_load_n((const uint32_t *)address, __ATOMIC_ACQUIRE);
}

static inline void csupport_store32_release(void *address, uint32_t value) {
    __atomic_store_n((uint32_t *)address, value, __ATOMIC_RELEASE);
}

/// Installs `desired` only if the entry still holds `expected`; returns the
/// value found, so the loser of a race learns the winner's table.
static inline uint64_t csupport_cas64(void *address, uint64_t expected, uint64_t desired) {
    __atomic_compare_exchange_n((uint64_t *)address, &expected, desired, false,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return expected;
}

// The IOVA allocator's per-thread "last cache used": one allocator identity
// and its cache for the calling thread. A C `__thread` variable is read with
// one %fs-relative load, cheaper than pthread_self() plus a hash table probe or
// pthread_getspecific(); Swift has no thread-local storage of its own.
typedef struct {
    uint64_t allocator_id;
    void *cache;
} csupport_iova_thread_entry;

extern __thread csupport_iova_thread_entry csupport_iova_thread_current;

static inline csupport_iova_thread_entry *csupport_iova_thread_entry_pointer(void) {
    return &csupport_iova_thread_current;
}

// The DMA layer's per-thread "last slot used": a registry identity and the
// calling thread's slot in it, read on every map and unmap.
typedef struct {
    uint64_t registry_id;
    void *slot;
} csupport_dma_thread_entry;

extern __thread csupport_dma_thread_entry csupport_dma_thread_current;

static inline csupport_dma_thread_entry *csupport_dma_thread_entry_pointer(void) {
    return &csupport_dma_thread_current;
}

// Tells the CPU a spin-wait is in progress (x86 PAUSE, Arm YIELD): the waiting
// core backs off the lock's cache line and yields pipeline resources to the
// sibling thread that holds it.
static inline void csupport_spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// A number that identifies the calling thread among the living ones: the
// address of one of its thread-local bytes (one %fs-relative lea, where
// pthread_self() is a library call). Never 0.
extern __thread char csupport_thread_anchor;

static inline uintptr_t csupport_thread_token(void) {
    return (uintptr_t)&csupport_thread_anchor;
}

// membarrier(2) with MEMBARRIER_CMD_PRIVATE_EXPEDITED: a full memory barrier
// on every CPU that runs a thread of this process. It lets the frequent side
// of a store-then-load handshake use a compiler barrier alone. The first call
// registers the process; returns whether the command is available.
bool csupport_membarrier_available(void);

// Runs the barrier; returns false when it is unavailable (callers then keep
// to their fenced path).
bool csupport_membarrier(void);

// The package's mutexes guard critical sections of a few dozen instructions.
// A plain glibc mutex puts a waiter to sleep on the first failed attempt, and
// waking it costs tens of microseconds on a virtual machine: two threads that
// meet on a lock once per few hundred operations lost a fifth of their rate.
// An adaptive mutex spins a bounded number of rounds first. Returns
// pthread_mutex_init's result.
int csupport_mutex_init_adaptive(pthread_mutex_t *mutex);

#endif
