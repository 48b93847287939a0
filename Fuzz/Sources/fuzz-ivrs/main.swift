import FuzzHarness

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzIVRS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOneInput(signature: "IVRS", data, size)
    return 0
}

exit(runFuzzer(fuzzIVRS))
