import CSupport
import Glibc
import Synchronization

/// What a thread knows about its caches: one per allocator it has used, plus the last one
/// looked up (the fast path is one `pthread_getspecific` and one compare). Freed, after every
/// cache was handed back, by the pthread key's destructor when the thread exits.
struct ThreadState {
    var lastID: UInt64 = 0
    var lastCache: UnsafeMutablePointer<ThreadCache>? = nil
    var entries: UnsafeMutablePointer<UnsafeMutablePointer<ThreadCache>>? = nil
    var count = 0
    var capacity = 0
}

/// A cache pointer as the allocator's registry keeps it.
struct CacheRef: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ThreadCache>
}

/// The caches of every thread that has used one allocator, and the counters of those that
/// were retired (their thread exited).
struct CacheRegistry: Sendable {
    var caches: ContiguousArray<CacheRef> = []
    /// Caches created so far: a new one's arrival order, for its refill window.
    var created: UInt64 = 0
    var retiredHits: UInt64 = 0
    var retiredPreferredHits: UInt64 = 0
}

enum ThreadCaches {
    /// The process-wide key; its destructor hands a dying thread's cached ranges back.
    static let key: pthread_key_t = {
        _ = AsymmetricFence.available
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            if let raw { ThreadCaches.threadExited(raw.assumingMemoryBound(to: ThreadState.self)) }
        }
        return k
    }()

    /// Allocator identities are never reused, so a stale `lastID` can never match a new allocator.
    static let nextAllocatorID = Atomic<UInt64>(1)

    static func threadExited(_ state: UnsafeMutablePointer<ThreadState>) {
        // The caches are released below: the thread must not find one again.
        let current = csupport_iova_thread_entry_pointer()!
        current.pointee.allocator_id = 0
        current.pointee.cache = nil
        for i in 0..<state.pointee.count {
            let tc = state.pointee.entries![i]
            tc.pointee.enter()
            let cacheState = tc.pointee.state
            if !cacheState.pointee.detached && !cacheState.pointee.orphaned {
                AllocatorCore.absorb(tc.pointee.core, tc)
                cacheState.pointee.orphaned = true
            }
            tc.pointee.exit()
            ThreadCache.release(tc)
        }
        state.pointee.entries?.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }
}

extension IOVAAllocator {
    /// The calling thread's cache for this allocator.
    @inline(__always)
    func currentCache() -> UnsafeMutablePointer<ThreadCache> {
        if let raw = pthread_getspecific(tlsKey) {
            let st = raw.assumingMemoryBound(to: ThreadState.self)
            if st.pointee.lastID == id, let tc = st.pointee.lastCache {
                Self.rememberInThread(id: id, cache: tc)
                return tc
            }
        }
        return attachThreadCache()
    }

    /// The calling thread's cache from the direct-mapped table, or nil (then use
    /// ``currentCache()``).
    @inlinable @inline(__always)
    func fastCache() -> UnsafeMutablePointer<ThreadCache>? {
        // The thread's last-used cache, one thread-local load away (see CSupport).
        let current = csupport_iova_thread_entry_pointer()!
        if current.pointee.allocator_id == id {
            return current.pointee.cache.unsafelyUnwrapped.assumingMemoryBound(to: ThreadCache.self)
        }
        return tableCache()
    }

    /// The calling thread's cache from the direct-mapped table, or through the pthread key.
    @usableFromInline @inline(never)
    func tableCache() -> UnsafeMutablePointer<ThreadCache>? {
        let me = pthread_self()
        let entry = threadTable + AllocatorCore.tableIndex(me)
        if csupport_load64_relaxed(entry) == UInt64(me) {
            return UnsafeMutablePointer(bitPattern: UInt(entry[1]))
        }
        return currentCache()
    }

    /// Makes `cache` the thread's last-used cache. Only caches listed in the thread's
    /// ``ThreadState`` go here, and the thread forgets it before releasing them at exit.
    @inline(__always)
    static func rememberInThread(id: UInt64, cache: UnsafeMutablePointer<ThreadCache>) {
        let current = csupport_iova_thread_entry_pointer()!
        current.pointee.allocator_id = id
        current.pointee.cache = UnsafeMutableRawPointer(cache)
    }

    /// Slow lookup: finds or creates this thread's cache for this allocator, and frees caches of
    /// allocators that have been destroyed since.
    @usableFromInline @inline(never)
    func attachThreadCache() -> UnsafeMutablePointer<ThreadCache> {
        let st: UnsafeMutablePointer<ThreadState>
        if let raw = pthread_getspecific(tlsKey) {
            st = raw.assumingMemoryBound(to: ThreadState.self)
        } else {
            st = .allocate(capacity: 1)
            st.initialize(to: ThreadState())
            pthread_setspecific(tlsKey, st)
        }
        var found: UnsafeMutablePointer<ThreadCache>? = nil
        var i = 0
        while i < st.pointee.count {
            let tc = st.pointee.entries![i]
            if tc.pointee.allocatorID == id { found = tc; i += 1; continue }
            tc.pointee.enter()
            let gone = tc.pointee.state.pointee.detached
            tc.pointee.exit()
            if gone {
                ThreadCache.release(tc)
                st.pointee.count -= 1
                st.pointee.entries![i] = st.pointee.entries![st.pointee.count]
            } else {
                i += 1
            }
        }
        if found == nil {
            let window = registry.withLock { registry -> UInt64 in
                defer { registry.created &+= 1 }
                return registry.created % UInt64(options.threadWindowCount)
            }
            let tc = ThreadCache.create(allocatorID: id, core: core, window: window,
                                        fullFence: options.forceFullFences || !AsymmetricFence.available)
            registry.withLock { $0.caches.append(CacheRef(pointer: tc)) }
            if st.pointee.count == st.pointee.capacity {
                let newCapacity = max(4, st.pointee.capacity * 2)
                let grown = UnsafeMutablePointer<UnsafeMutablePointer<ThreadCache>>.allocate(capacity: newCapacity)
                if let old = st.pointee.entries {
                    grown.moveInitialize(from: old, count: st.pointee.count)
                    old.deallocate()
                }
                st.pointee.entries = grown
                st.pointee.capacity = newCapacity
            }
            st.pointee.entries![st.pointee.count] = tc
            st.pointee.count += 1
            found = tc
        }
        st.pointee.lastID = id
        st.pointee.lastCache = found
        Self.rememberInThread(id: id, cache: found!)
        // Claim this thread's entry in the direct-mapped table if it is free.
        let me = pthread_self()
        let entry = threadTable + AllocatorCore.tableIndex(me)
        if csupport_load64_relaxed(entry) == 0, csupport_cas64(entry, 0, UInt64(me)) == 0 {
            entry[1] = UInt64(UInt(bitPattern: found!))
        }
        return found!
    }

    /// Takes every registered cache away from its thread (see ``AsymmetricFence``), runs
    /// `body`, then gives them back and frees the caches of exited threads. Caller must hold
    /// no other allocator lock.
    func withAllCachesStolen<R: Sendable>(_ body: (CacheRegistry) -> R) -> R {
        registry.withLock { reg in
            let me = pthread_self()
            var others = false
            for c in reg.caches {
                let mode = c.pointer.pointee.stealing.load(ordering: .relaxed) & ThreadCache.fenceBit
                c.pointer.pointee.stealing.store(mode | ThreadCache.stealBit, ordering: .sequentiallyConsistent)
                if pthread_equal(c.pointer.pointee.thread, me) == 0 { others = true }
            }
            if others { AsymmetricFence.heavy() }
            for c in reg.caches {
                while c.pointer.pointee.busy.load(ordering: .acquiring) != 0 { sched_yield() }
            }
            let result = body(reg)
            var kept = ContiguousArray<CacheRef>()
            var retired: [CacheRef] = []
            for c in reg.caches {
                if c.pointer.pointee.state.pointee.orphaned {
                    reg.retiredHits += c.pointer.pointee.state.pointee.hits
                    reg.retiredPreferredHits += c.pointer.pointee.state.pointee.preferredHits
                    retired.append(c)
                } else {
                    kept.append(c)
                }
            }
            for c in reg.caches {
                let mode = c.pointer.pointee.stealing.load(ordering: .relaxed) & ThreadCache.fenceBit
                c.pointer.pointee.stealing.store(mode, ordering: .releasing)
            }
            for c in retired { ThreadCache.release(c.pointer) }
            if !retired.isEmpty { reg.caches = kept }
            return result
        }
    }
}
