import FuzzHarness

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzDMAR(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOneInput(signature: "DMAR", data, size)
    return 0
}

exit(runFuzzer(fuzzDMAR))
