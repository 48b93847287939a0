/// Errors from plugging devices in and out.
public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    case addressInUse(PCIAddress)
    case noSuchDevice(PCIAddress)

    public var description: String {
        switch self {
        case let .addressInUse(address): "a device is already present at \(address)"
        case let .noSuchDevice(address): "no device at \(address)"
        }
    }
}

/// The emulated machine's I/O fabric: the devices present, and which IOMMU
/// unit (if any) sits between each one and memory.
public final class PlatformBus: Sendable {
    public let memory: PhysicalMemory
    private let state = HostLock<[PCIAddress: PCIDevice]>([:])

    public init(memory: PhysicalMemory) { self.memory = memory }

    /// Devices present, in address order.
    public var devices: [PCIDevice] { state.withLock { Array($0.values) }.sorted { $0.address < $1.address } }

    public func device(at address: PCIAddress) -> PCIDevice? { state.withLock { $0[address] } }

    /// Plugs a device in, routing its DMA through `unit` (nil: straight to memory).
    /// - Throws: ``BusError/addressInUse(_:)``.
    public func plug(_ device: PCIDevice, behind unit: (any TranslationUnit)?) throws(BusError) {
        try state.withLock { (devices) throws(BusError) in
            guard devices[device.address] == nil else { throw .addressInUse(device.address) }
            devices[device.address] = device
        }
        device.engine.translationUnit = unit
    }

    /// Removes a device; from now on its engine reaches nothing.
    /// - Throws: ``BusError/noSuchDevice(_:)``.
    @discardableResult
    public func unplug(_ address: PCIAddress) throws(BusError) -> PCIDevice {
        let removed = state.withLock { $0.removeValue(forKey: address) }
        guard let removed else { throw .noSuchDevice(address) }
        removed.engine.translationUnit = DisconnectedUnit.shared
        return removed
    }
}

/// What a removed device's engine talks to: every access is refused.
final class DisconnectedUnit: TranslationUnit {
    static let shared = DisconnectedUnit()
    let name = "disconnected"
    func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        .faulted(.requesterNotConfigured)
    }
}
