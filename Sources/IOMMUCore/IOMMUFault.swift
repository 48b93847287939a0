import Emulation

/// A fault as the IOMMU-API delivers it: read from a unit's fault log by its
/// driver and routed to the domain the device is attached to.
public struct IOMMUFault: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The requester ID the unit recorded (a bridge alias for devices behind one).
    public var requester: PCIAddress
    public var address: UInt64
    public var access: String
    public var reason: DMAFaultReason
    /// The family's own reason, for people who know the specification ("VT-d 0x6").
    public var hardwareReason: String
    public var unit: String

    public init(requester: PCIAddress, address: UInt64, access: BusAccess, reason: DMAFaultReason,
                hardwareReason: String, unit: String) {
        self.requester = requester
        self.address = address
        self.access = access.description
        self.reason = reason
        self.hardwareReason = hardwareReason
        self.unit = unit
    }

    public var description: String {
        "\(unit): \(requester) \(access) at \(hex(address)): \(reason) (\(hardwareReason))"
    }
}

/// Drivers hand the faults they drain from their hardware logs to this sink.
public protocol FaultSink: AnyObject, Sendable {
    func deliver(_ fault: IOMMUFault)
}
