// swift-tools-version:6.1
// Fuzz targets for the ACPI table parsers. A separate package so that the
// main package's `swift build` never links libFuzzer. Build and run:
//   cd Fuzz && swift build -c release -Xswiftc -sanitize=fuzzer
//   SWIFT_BACKTRACE=enable=no .build/release/fuzz-dmar Corpus/dmar ../../shared/acpi/dmar -max_total_time=300
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "swift-iommu-fuzz",
    dependencies: [
        .package(name: "swift-iommu", path: ".."),
    ],
    targets: [
        .target(
            name: "FuzzHarness",
            dependencies: [.product(name: "IOMMU", package: "swift-iommu")],
            swiftSettings: strict),
        .executableTarget(name: "fuzz-dmar", dependencies: ["FuzzHarness"], swiftSettings: strict),
        .executableTarget(name: "fuzz-ivrs", dependencies: ["FuzzHarness"], swiftSettings: strict),
    ]
)
