/// The wire from a hardware unit's interrupt output to the handler its
/// driver connected.
///
/// The handler lives in a class box because a closure stored directly as a
/// lock's generic value is re-wrapped in one more reabstraction thunk by every
/// `withLock { $0 }` read (Swift 6.3: the inout write-back converts it again):
/// each interrupt then costs more than the last, memory grows, and releasing
/// the unit overflows the stack. A box is read without any conversion.
public final class InterruptLine: Sendable {
    private final class Handler: Sendable {
        let call: @Sendable () -> Void
        init(_ call: @escaping @Sendable () -> Void) { self.call = call }
    }

    private let handler = HostLock<Handler?>(nil)

    public init() {}

    /// Connects `body` (nil disconnects).
    public func connect(_ body: (@Sendable () -> Void)?) {
        let box = body.map(Handler.init)
        handler.withLock { $0 = box }
    }

    /// Raises the interrupt: runs the connected handler, outside the lock.
    public func raise() {
        let box = handler.withLock { $0 }
        box?.call()
    }
}
