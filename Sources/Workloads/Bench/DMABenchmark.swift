#if canImport(Glibc)
import Glibc
#endif
import DMA
import Emulation
import IOMMUCore

/// The counterpart of Linux's dma_map_benchmark: the cost of the hot paths
/// through the whole stack on the default platform's NIC.
public enum DMABenchmark {
    public struct Options: Sendable {
        public var iterations: Int
        public var policies: [DefaultDomainPolicy.Invalidation]
        /// The IOMMU family of the default platform the benchmark runs on.
        public var family: IOMMUFamily
        /// AMD-Vi: keep the driver's leaf-page array in DMA domains (nil: the driver's default, on).
        public var amdLeafArray: Bool?
        public init(iterations: Int = 200_000, policies: [DefaultDomainPolicy.Invalidation] = [.strict, .lazy],
                    family: IOMMUFamily = .intelVTd, amdLeafArray: Bool? = nil) {
            self.iterations = max(1, iterations)
            self.policies = policies
            self.family = family
            self.amdLeafArray = amdLeafArray
        }

        /// Whether the leaf-page array is in use, for families that have one.
        var leafArray: Bool? { family == .amdVi ? (amdLeafArray ?? true) : nil }
    }

    public struct Result: Codable, Sendable, Hashable {
        /// `map-unmap` (map + unmap of one 4 KiB page through the DMA API),
        /// `domain-map-unmap` (the same page mapped and unmapped through the IOMMU-API
        /// on the device's default domain, without the DMA layer and without
        /// invalidation: the driver's page-table work alone) or
        /// `device-read` (a 64-byte device read whose translation hits the IOTLB).
        public var `case`: String
        public var policy: String
        /// The IOMMU family (`--driver`).
        public var driver: String
        /// AMD-Vi: whether the leaf-page array was on; absent for other families.
        public var leafArray: Bool?
        public var iterations: Int
        public var nsPerOp: Double
        public var opsPerSecond: Double
    }

    public struct Report: Codable, Sendable {
        public var results: [Result]

        public func renderText() -> String {
            var table = TextTable(["case", "driver", "leaf array", "policy", "iterations", "ns/op", "ops/s"])
            for result in results {
                table.add([result.case, result.driver, result.leafArray.map { $0 ? "on" : "off" } ?? "-", result.policy,
                           "\(result.iterations)",
                           String(oneDecimal: result.nsPerOp), String(Int(result.opsPerSecond))])
            }
            return table.render()
        }
    }

    /// Runs every case for every policy.
    /// - Throws: ``PlatformError`` when the platform cannot be built, ``DMAError`` when the first mapping fails.
    public static func run(_ options: Options) throws -> Report {
        var results: [Result] = []
        for policy in options.policies {
            var specification = try PlatformSpecification.defaultPlatform(family: options.family,
                                                                          policy: DefaultDomainPolicy(invalidation: policy))
            if let leafArray = options.amdLeafArray {
                for index in specification.units.indices { specification.units[index].amdViLeafArray = leafArray }
            }
            let platform = try EmulatedPlatform(specification)
            guard let nic = platform.dma(for: "nic0") else { continue }
            let buffer = try platform.pages.allocate()
            // Warm up: the first map builds the page-table levels.
            let warm = try nic.map(buffer, size: 4096, direction: .fromDevice)
            try nic.unmap(warm, size: 4096, direction: .fromDevice)

            var start = now()
            for _ in 0..<options.iterations {
                let bus = try nic.map(buffer, size: 4096, direction: .fromDevice)
                try nic.unmap(bus, size: 4096, direction: .fromDevice)
            }
            results.append(result("map-unmap", policy, options, now() - start))

            // The driver's page-table work alone: IOMMU-API map + unmap of one page at an IOVA the
            // allocator handed out, without the DMA layer and without invalidation.
            if let domain = nic.managed?.group.defaultDomain, domain.kind.usesDMALayer {
                let free = try nic.map(buffer, size: 4096, direction: .fromDevice)
                try nic.unmap(free, size: 4096, direction: .fromDevice)
                var gather = IOTLBGather()
                start = now()
                for _ in 0..<options.iterations {
                    try domain.map(iova: free, physical: buffer, size: 4096, permissions: .write)
                    try domain.unmap(iova: free, size: 4096, gather: &gather)
                }
                results.append(result("domain-map-unmap", policy, options, now() - start))
                domain.flush(gather)
            }

            let bus = try nic.map(buffer, size: 4096, direction: .bidirectional)
            var scratch = [UInt8](repeating: 0, count: 64)
            start = now()
            scratch.withUnsafeMutableBytes { raw in
                for _ in 0..<options.iterations { _ = nic.device.engine.read(from: bus, into: raw) }
            }
            results.append(result("device-read", policy, options, now() - start))
            try nic.unmap(bus, size: 4096, direction: .bidirectional)
        }
        return Report(results: results)
    }

    static func result(_ name: String, _ policy: DefaultDomainPolicy.Invalidation, _ options: Options,
                       _ nanoseconds: UInt64) -> Result {
        let iterations = options.iterations
        let perOp = Double(nanoseconds) / Double(iterations)
        return Result(case: name, policy: policy.rawValue, driver: options.family.rawValue, leafArray: options.leafArray,
                      iterations: iterations, nsPerOp: perOp,
                      opsPerSecond: perOp > 0 ? 1e9 / perOp : 0)
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

extension String {
    init(oneDecimal value: Double) {
        let scaled = (value * 10).rounded() / 10
        self = "\(scaled)"
    }
}
