// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "swift-iommu",
    products: [
        .library(name: "IOMMU", targets: ["DMA", "IOMMUCore", "IOMMUDrivers", "IOVA", "IOPageTable", "Emulation", "Firmware"]),
        .executable(name: "iommu-sim", targets: ["iommu-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Atomics on raw emulated memory, thread-locals and the like: things Swift cannot spell cheaply.
        .target(name: "CSupport"),
        .target(name: "Firmware", swiftSettings: strict),
        .target(name: "Emulation", dependencies: ["CSupport"], swiftSettings: strict),
        .target(name: "IOPageTable", dependencies: ["Emulation", "CSupport"], swiftSettings: strict),
        .target(name: "IOMMUCore", dependencies: ["IOPageTable", "Emulation"], swiftSettings: strict),
        .target(name: "IOMMUDrivers", dependencies: ["IOMMUCore", "IOPageTable", "Emulation", "CSupport"], swiftSettings: strict),
        .target(name: "IOVA", dependencies: ["CSupport"], swiftSettings: strict),
        .target(name: "DMA", dependencies: ["IOVA", "IOMMUCore", "Emulation", "CSupport"], swiftSettings: strict),
        .target(
            name: "Workloads",
            dependencies: ["DMA", "IOMMUDrivers", "IOMMUCore", "IOVA", "Emulation", "Firmware",
                           .product(name: "Yams", package: "Yams"),
                           .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: strict),
        .executableTarget(
            name: "iommu-sim",
            dependencies: ["Workloads", "Firmware", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .testTarget(name: "EmulationTests", dependencies: ["Emulation", "CSupport"], swiftSettings: strict),
        .testTarget(name: "IOPageTableTests", dependencies: ["IOPageTable", "Emulation"], swiftSettings: strict),
        .testTarget(name: "IOMMUCoreTests", dependencies: ["IOMMUCore", "IOMMUDrivers", "Emulation"], swiftSettings: strict),
        .testTarget(name: "IOMMUDriversTests", dependencies: ["IOMMUDrivers", "IOMMUCore", "Emulation"], swiftSettings: strict),
        .testTarget(name: "IOVATests", dependencies: ["IOVA"], swiftSettings: strict),
        .testTarget(name: "DMATests", dependencies: ["DMA", "IOMMUDrivers", "IOMMUCore", "IOPageTable", "Emulation", "Workloads"], swiftSettings: strict),
        .testTarget(name: "WorkloadsTests", dependencies: ["Workloads", "Firmware", "IOMMUCore", "Emulation"], swiftSettings: strict),
        .testTarget(name: "FirmwareTests", dependencies: ["Firmware"], swiftSettings: strict),
        .testTarget(name: "ConformanceTests", dependencies: ["Workloads", "DMA", "IOMMUCore", "Emulation"], swiftSettings: strict),
    ]
)
