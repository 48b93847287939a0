import Emulation
import IOMMUCore

extension DeviceDMA {
    /// Hands a streaming buffer (or `size` bytes of it from `busAddress`) to
    /// the CPU mid-mapping (dma_sync_single_for_cpu): bounced data the device
    /// wrote is copied back for ``DMADirection/fromDevice`` and ``DMADirection/bidirectional``.
    /// - Throws: ``DMAError/syncOfUnmapped(busAddress:size:)`` for a range no live mapping covers;
    ///   with debug checking ``DMAError/directionMismatch(busAddress:mapped:given:)``; ``DMAError/memory(_:)``.
    public func syncForCPU(_ busAddress: IOVirtualAddress, size: Int, direction: DMADirection) throws(DMAError) {
        try sync(busAddress, size: size, direction: direction, toDevice: false, call: "syncForCPU")
    }

    /// Hands the buffer back to the device (dma_sync_single_for_device): what
    /// the CPU wrote is copied into the bounce pages for ``DMADirection/toDevice``
    /// and ``DMADirection/bidirectional``.
    /// - Throws: as ``syncForCPU(_:size:direction:)``.
    public func syncForDevice(_ busAddress: IOVirtualAddress, size: Int, direction: DMADirection) throws(DMAError) {
        try sync(busAddress, size: size, direction: direction, toDevice: true, call: "syncForDevice")
    }

    private func sync(_ busAddress: IOVirtualAddress, size: Int, direction: DMADirection, toDevice: Bool,
                      call: StaticString) throws(DMAError) {
        guard size > 0 else { throw Self.sizeError(size) }
        let length = UInt64(size)
        try debug?.syncing(bus: busAddress.value, size: length, direction: direction, call: call)
        let physical: PhysicalAddress
        switch try checkUsable() {
        case .direct: physical = PhysicalAddress(busAddress.value)
        case let .translated(state):
            if let shadow, shadow.contains(busAddress.value) {
                let copies = toDevice ? direction != .fromDevice : direction != .toDevice
                return try shadow.sync(busAddress.value, size: length, toDevice: toDevice, copying: copies)
            }
            guard let found = state.domain.translate(busAddress) else {
                throw .syncOfUnmapped(busAddress: busAddress.value, size: length)
            }
            physical = found
        case .unusable: return
        }
        guard let pool = existingBouncePool, pool.contains(physical) else { return } // coherent memory: nothing to copy
        let copies = toDevice ? direction != .fromDevice : direction != .toDevice
        if copies { try pool.sync(physical, size: length, toDevice: toDevice) }
    }
}
