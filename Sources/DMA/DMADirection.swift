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

    public var devicePermissions: AccessPermissions {
        switch self {
        case .toDevice: .read
        case .fromDevice: .write
        case .bidirectional: .readWrite
        }
    }

    public var description: String { rawValue }
}
