#define _GNU_SOURCE
#include "CSupport.h"
#include <sys/syscall.h>
#include <unistd.h>

void csupport_link_anchor(void) {}

__thread csupport_iova_thread_entry csupport_iova_thread_current = {0, 0};

__thread csupport_dma_thread_entry csupport_dma_thread_current = {0, 0};

int csupport_mutex_init_adaptive(pthread_mutex_t *mutex) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
#if defined(__GLIBC__)
    pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int result = pthread_mutex_init(mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
    return result;
}

__thread char csupport_thread_anchor;

#define CSUPPORT_MEMBARRIER_QUERY 0
#define CSUPPORT_MEMBARRIER_PRIVATE_EXPEDITED (1 << 3)
#define CSUPPORT_MEMBARRIER_REGISTER_PRIVATE_EXPEDITED (1 << 4)

// 0 = not yet asked, 1 = available, -1 = unavailable.
static int csupport_membarrier_state = 0;

bool csupport_membarrier_available(void) {
    int state = __atomic_load_n(&csupport_membarrier_state, __ATOMIC_ACQUIRE);
    if (state != 0) return state > 0;
#ifdef SYS_membarrier
    long supported = syscall(SYS_membarrier, CSUPPORT_MEMBARRIER_QUERY, 0, 0);
    bool usable = supported > 0
        && (supported & CSUPPORT_MEMBARRIER_PRIVATE_EXPEDITED) != 0
        && (supported & CSUPPORT_MEMBARRIER_REGISTER_PRIVATE_EXPEDITED) != 0
        && syscall(SYS_membarrier, CSUPPORT_MEMBARRIER_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    bool usable = false;
#endif
    // Registering twice is harmless, so racing first callers need no lock.
    __atomic_store_n(&csupport_membarrier_state, usable ? 1 : -1, __ATOMIC_RELEASE);
    return usable;
}

bool csupport_membarrier(void) {
    if (!csupport_membarrier_available()) return false;
#ifdef SYS_membarrier
    return syscall(SYS_membarrier, CSUPPORT_MEMBARRIER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
}
