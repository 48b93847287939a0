/// A class instance that something else keeps alive, used without retaining
/// it. Reading an object out of an optional or a struct field and calling it
/// costs a retain and a release, atomic operations that dominate a page-table
/// call once the object has a side table (any weak reference gives it one);
/// hot paths (a page mapped or unmapped, a device access translated) call
/// through this instead. Whoever makes one must hold a strong reference for as
/// long as it is used.
public struct UnretainedReference<Object: AnyObject>: @unchecked Sendable {
    @usableFromInline let reference: Unmanaged<Object>

    /// `object` must outlive every use of the result.
    @inlinable public init(_ object: Object) { reference = .passUnretained(object) }

    /// Runs `body` with the object, borrowed.
    /// - Throws: what `body` throws.
    @inlinable @inline(__always)
    public func use<Result, Failure: Error>(_ body: (Object) throws(Failure) -> Result) throws(Failure) -> Result {
        // `_withUnsafeGuaranteedRef` only rethrows untyped errors: carry the typed one out in a value.
        let outcome = reference._withUnsafeGuaranteedRef { object -> Swift.Result<Result, Failure> in
            do throws(Failure) { return .success(try body(object)) } catch { return .failure(error) }
        }
        return try outcome.get()
    }
}
