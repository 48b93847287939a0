import Firmware

/// What one fuzz input goes through: the raw bytes, then a copy whose
/// header is repaired (signature, Length, checksum) so that mutations reach
/// the structures behind the header. Whatever parses is also turned into a
/// platform description and rendered as text.
public func fuzzOneInput(signature: String, _ data: UnsafePointer<UInt8>?, _ size: Int) {
    guard let data, size > 0 else {
        _ = try? FirmwareTable.parse([])
        return
    }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    exercise(bytes)
    exercise(repairedHeader(bytes, signature: signature))
}

func exercise(_ bytes: [UInt8]) {
    guard let table = try? FirmwareTable.parse(bytes) else { return }
    let report = FirmwareReport(tables: [FirmwareTableReport(source: "fuzz", table: table)])
    _ = report.renderText()
    _ = try? FirmwareTable.parse(bytes, options: .strict)
}

/// The input with `signature`, a Length equal to its size and a valid checksum.
func repairedHeader(_ input: [UInt8], signature: String) -> [UInt8] {
    var bytes = input
    if bytes.count < 48 { bytes += [UInt8](repeating: 0, count: 48 - bytes.count) }
    for (index, byte) in signature.utf8.prefix(4).enumerated() { bytes[index] = byte }
    let length = UInt32(truncatingIfNeeded: bytes.count)
    for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(index))) }
    bytes[9] = 0
    var sum: UInt8 = 0
    for byte in bytes { sum &+= byte }
    bytes[9] = 0 &- sum
    return bytes
}

/// libFuzzer's entry point for running the fuzzing loop from our own main
/// (SwiftPM renames `main`, hiding libFuzzer's).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Runs libFuzzer with the process arguments and `callback` as the target.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}
