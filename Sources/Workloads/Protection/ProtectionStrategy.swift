import DMA
import IOMMUCore

/// How the platform protects memory from its devices: the default-domain
/// policy it runs with and the exposure windows that policy documents.
/// Strict and lazy invalidation are domain policies; shadow buffers are a
/// DMA-layer strategy (a strict domain whose devices copy streaming
/// mappings through a pool mapped once). A strategy joins by adding one more
/// value to ``all``, and every attack scenario and fuzz run picks it up.
public struct ProtectionStrategy: Sendable, Hashable, CustomStringConvertible {
    /// The name on the command line and in reports ("strict", "lazy").
    public var name: String
    public var policy: DefaultDomainPolicy
    /// Whether an unmapped range may stay reachable until the flush queue is
    /// flushed (the documented price of deferred invalidation).
    public var hasStaleWindow: Bool
    /// Whether trusted devices bypass translation altogether.
    public var passesThrough: Bool
    /// How every device's DMA handle is configured (shadow buffers live here).
    public var dmaConfiguration: DMAConfiguration

    public init(name: String, policy: DefaultDomainPolicy, hasStaleWindow: Bool, passesThrough: Bool = false,
                dmaConfiguration: DMAConfiguration = .init()) {
        self.name = name
        self.policy = policy
        self.hasStaleWindow = hasStaleWindow
        self.passesThrough = passesThrough
        self.dmaConfiguration = dmaConfiguration
    }

    /// Whether translated devices copy streaming mappings through a shadow pool.
    public var usesShadowBuffers: Bool {
        if case .shadowBuffers = dmaConfiguration.streamingProtection { return true }
        return false
    }

    /// Every unmap invalidates the IOTLB before it returns.
    public static let strict = ProtectionStrategy(name: "strict", policy: DefaultDomainPolicy(invalidation: .strict),
                                                  hasStaleWindow: false)
    /// Unmapped ranges wait in the flush queue; a device may use them until it is flushed.
    public static let lazy = ProtectionStrategy(name: "lazy", policy: DefaultDomainPolicy(invalidation: .lazy),
                                                hasStaleWindow: true)
    /// Strict domains, and every translated device copies its streaming mappings through a shadow pool mapped
    /// once: nothing is unmapped on the streaming path, and no mapped page holds data the device was not given.
    public static let shadow = ProtectionStrategy(name: "shadow", policy: DefaultDomainPolicy(invalidation: .strict),
                                                  hasStaleWindow: false,
                                                  dmaConfiguration: DMAConfiguration(streamingProtection: .defaultShadowBuffers))
    /// Identity default domains for every trusted device: no protection, by choice.
    public static let passThrough = ProtectionStrategy(name: "passthrough", policy: DefaultDomainPolicy(passThrough: true),
                                                       hasStaleWindow: false, passesThrough: true)

    /// The strategies that protect memory, in report order.
    public static let all: [ProtectionStrategy] = [.strict, .lazy, .shadow]
    /// Every strategy the fuzzer exercises, including the unprotected one.
    public static let fuzzed: [ProtectionStrategy] = all + [.passThrough]

    /// The strategy named `name` among ``fuzzed``, nil when unknown.
    public static func named(_ name: String) -> ProtectionStrategy? {
        fuzzed.first { $0.name == name || (name == "pass-through" && $0 == .passThrough) }
    }

    public var description: String { name }
}
