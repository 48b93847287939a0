import CSupport

extension VTdUnit {
    /// Executes descriptors from head to tail, as the hardware does when the
    /// driver moves the tail register. An unknown descriptor stops the queue
    /// with the invalidation-queue-error flag, leaving the head on it.
    func processInvalidationQueue(_ state: inout State) {
        guard state.globalStatus & VTdGlobal.queuedInvalidationEnable != 0, state.queueEntries > 0 else { return }
        let ring = state.queueRing
        // queueEntries is 256 << QS, a power of two: the head wraps with a mask.
        let wrap = state.queueEntries &- 1
        while state.queueHead != state.queueTail && !state.queueError {
            let low: UInt64, high: UInt64
            if let ring {
                let slot = ring + state.queueHead &* 16
                low = UInt64(littleEndian: csupport_load64_acquire(slot))
                high = UInt64(littleEndian: csupport_load64_acquire(slot + 8))
            } else {
                // Part of the ring lies outside memory: fetch word by word, failing where it does.
                let slot = PhysicalAddress(state.queueBase + UInt64(state.queueHead) * 16)
                guard let first = try? memory.load64(slot), let second = try? memory.load64(slot + 8) else {
                    state.queueError = true
                    return
                }
                (low, high) = (first, second)
            }
            switch low & 0xF {
            case VTdDescriptor.contextCacheType:
                invalidateContexts(granularity: (low >> 4) & 3, domain: UInt32((low >> 16) & 0xFFFF),
                                   source: UInt16((low >> 32) & 0xFFFF), &state)
            case VTdDescriptor.iotlbType:
                invalidateIOTLB(granularity: (low >> 4) & 3, domain: UInt32((low >> 16) & 0xFFFF),
                                address: high & ~0xFFF, addressMask: Int(high & 0x3F), &state)
            case VTdDescriptor.deviceTLBType:
                break // no device has an ATC in this model
            case VTdDescriptor.waitType:
                if low & VTdDescriptor.waitStatusWrite != 0 {
                    let statusAddress = high & ~3
                    if statusAddress != state.waitStatusAddress {
                        state.waitStatusPointer = try? memory.pointer(to: PhysicalAddress(statusAddress), count: 4)
                        state.waitStatusAddress = statusAddress
                    }
                    if let pointer = state.waitStatusPointer {
                        csupport_store32_release(pointer, UInt32(truncatingIfNeeded: low >> 32).littleEndian)
                    }
                }
                state.invalidationWaitComplete = true
            default:
                state.queueError = true
                return
            }
            state.queueHead = (state.queueHead &+ 1) & wrap
        }
    }

    func contextCommand(_ value: UInt64, _ state: inout State) {
        invalidateContexts(granularity: (value >> 61) & 3, domain: UInt32(value & 0xFFFF),
                           source: UInt16((value >> 16) & 0xFFFF), &state)
    }

    func registerIOTLBInvalidation(_ value: UInt64, _ state: inout State) {
        let address = state.iotlbAddressRegister
        invalidateIOTLB(granularity: (value >> 60) & 3, domain: UInt32((value >> 32) & 0xFFFF),
                        address: address & ~0xFFF, addressMask: Int(address & 0x3F), &state)
    }

    private func invalidateContexts(granularity: UInt64, domain: UInt32, source: UInt16, _ state: inout State) {
        state.statistics.contextInvalidations += 1
        state.recentSource = -1
        switch granularity {
        case 2: state.contexts = state.contexts.filter { $0.value.domain != domain || !$0.value.present }
        case 3: state.contexts[source] = nil
        default: state.contexts.removeAll(keepingCapacity: true)
        }
    }

    private func invalidateIOTLB(granularity: UInt64, domain: UInt32, address: UInt64, addressMask: Int,
                                 _ state: inout State) {
        let dropped: Int
        switch granularity {
        case 3:
            state.statistics.pageInvalidations &+= 1
            // AM = 52 makes the span 2^64, which wraps to 0 here and then covers the whole space.
            let span: UInt64 = PageSize.size4K &<< UInt64(min(addressMask, 52))
            let first = address & ~(span &- 1)
            dropped = state.iotlb.invalidate(domain: domain, first: first, last: first &+ (span &- 1))
        case 2:
            state.statistics.domainInvalidations &+= 1
            dropped = state.iotlb.invalidate(domain: domain)
        default:
            state.statistics.globalInvalidations &+= 1
            dropped = state.iotlb.invalidateAll()
        }
        state.statistics.iotlbEntriesDropped &+= UInt64(dropped)
    }
}
