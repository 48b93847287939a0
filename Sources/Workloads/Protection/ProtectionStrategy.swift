import IOMMUCore

/// How the platform protects memory from its devices: the default-domain
/// policy it runs with and the exposure windows that policy documents.
/// Strict and lazy invalidation exist today; a DMA-layer strategy such as
/// shadow buffers joins by adding one more value to ``all``, and every
/// attack scenario and fuzz run picks it up.
public struct ProtectionStrategy: Sendable, Hashable, CustomStringConvertible {
    /// The name on the command line and in reports ("strict", "lazy").
    public var name: String
    public var policy: DefaultDomainPolicy
    /// Whether an unmapped range may stay reachable until the flush queue is
    /// flushed (the documented price of deferred invalidation).
    public var hasStaleWindow: Bool
    /// Whether trusted devices bypass translation altogether.
    public var passesThrough: Bool

    public init(name: String, policy: DefaultDomainPolicy, hasStaleWindow: Bool, passesThrough: Bool = false) {
        self.name = name
        self.policy = policy
        self.hasStaleWindow = hasStaleWindow
        self.passesThrough = passesThrough
    }

    /// Every unmap invalidates the IOTLB before it returns.
    public static let strict = ProtectionStrategy(name: "strict", policy: DefaultDomainPolicy(invalidation: .strict),
                                                  hasStaleWindow: false)
    /// Unmapped ranges wait in the flush queue; a device may use them until it is flushed.
    public static let lazy = ProtectionStrategy(name: "lazy", policy: DefaultDomainPolicy(invalidation: .lazy),
                                                hasStaleWindow: true)
    /// Identity default domains for every trusted device: no protection, by choice.
    public static let passThrough = ProtectionStrategy(name: "passthrough", policy: DefaultDomainPolicy(passThrough: true),
                                                       hasStaleWindow: false, passesThrough: true)

    /// The strategies that protect memory, in report order.
    public static let all: [ProtectionStrategy] = [.strict, .lazy]
    /// Every strategy the fuzzer exercises, including the unprotected one.
    public static let fuzzed: [ProtectionStrategy] = all + [.passThrough]

    /// The strategy named `name` among ``fuzzed``, nil when unknown.
    public static func named(_ name: String) -> ProtectionStrategy? {
        fuzzed.first { $0.name == name || (name == "pass-through" && $0 == .passThrough) }
    }

    public var description: String { name }
}
