import Emulation

/// Which way the data of a streaming mapping flows (Linux's enum dma_data_direction).
/// The direction becomes the mapping's permission: the device may only do
/// what the direction says.
public enum DMADirection: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// The device reads the buffer (a packet to transmit, a block to write).
    case toDevice = "to-device"
    /// The device writes the buffer (a received packet, a block read).
    case fromDevice = "from-device"
    case bidirectional

    @inlinable
    public var devicePermissions: AccessPermissions {
        switch self {
        case .toDevice: AccessPermissions(rawValue: 1)
        case .fromDevice: AccessPermissions(rawValue: 2)
        case .bidirectional: AccessPermissions(rawValue: 3)
        }
    }

    public var description: String { rawValue }
}
