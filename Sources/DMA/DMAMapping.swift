import Emulation

/// A streaming mapping as a value that cannot be copied: ``unmap()``
/// consumes it, so a second unmap, or a use after unmap, does not compile.
/// Dropping a handle without unmapping it unmaps it (errors are then
/// recorded by debug checking, if on).
public struct DMAMapping: ~Copyable, @unchecked Sendable {
    public let busAddress: IOVirtualAddress
    public let size: Int
    public let direction: DMADirection
    /// Retained by the handle; a plain reference would forbid `discard self`.
    private let owner: Unmanaged<DeviceDMA>

    init(busAddress: IOVirtualAddress, size: Int, direction: DMADirection, owner: DeviceDMA) {
        self.busAddress = busAddress
        self.size = size
        self.direction = direction
        self.owner = Unmanaged.passRetained(owner)
    }

    /// Ends the mapping.
    /// - Throws: as ``DeviceDMA/unmap(_:size:direction:)``; the mapping is gone either way.
    public consuming func unmap() throws(DMAError) {
        let owner = self.owner
        let (bus, size, direction) = (busAddress, self.size, self.direction)
        discard self
        defer { owner.release() }
        try owner.takeUnretainedValue().unmap(bus, size: size, direction: direction)
    }

    /// Hands the buffer to the CPU mid-mapping. - Throws: as ``DeviceDMA/syncForCPU(_:size:direction:)``.
    public func syncForCPU() throws(DMAError) {
        try owner.takeUnretainedValue().syncForCPU(busAddress, size: size, direction: direction)
    }

    /// Hands the buffer back to the device. - Throws: as ``DeviceDMA/syncForDevice(_:size:direction:)``.
    public func syncForDevice() throws(DMAError) {
        try owner.takeUnretainedValue().syncForDevice(busAddress, size: size, direction: direction)
    }

    deinit {
        try? owner.takeUnretainedValue().unmap(busAddress, size: size, direction: direction)
        owner.release()
    }
}

extension DeviceDMA {
    /// Maps like ``map(_:size:direction:)`` but returns a handle that only ``DMAMapping/unmap()`` ends.
    /// - Throws: as ``map(_:size:direction:)``.
    public func mapOwned(_ physical: PhysicalAddress, size: Int, direction: DMADirection) throws(DMAError) -> DMAMapping {
        DMAMapping(busAddress: try map(physical, size: size, direction: direction), size: size, direction: direction, owner: self)
    }
}
