import DMA
import Emulation

/// 32-bit-only devices whose every buffer is placed above 4 GiB on purpose:
/// only the IOMMU's remapping gives them a bus address they can drive. Up to
/// queue-depth transfers stay mapped at once, so the 32-bit part of the
/// I/O virtual address space really fills. Without translation (pass-through)
/// the DMA layer must refuse such buffers: that refusal is the expected
/// outcome until bounce buffers exist, and is counted, not failed.
struct LegacyHighMemoryScenario: DeviceScenario {
    static let fourGiB: UInt64 = 1 << 32

    struct Transfer {
        var area: PhysicalAddress
        var buffer: PhysicalAddress
        var bus: IOVirtualAddress
        var pattern: [UInt8]
        var direction: DMADirection
    }

    struct Device {
        var dma: ScenarioDMA
        var areas: [PhysicalAddress]
        var live: [Transfer] = []
        var nextArea = 0
    }

    var devices: [Device] = []
    var next = 0

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        let pagesPerArea = UInt64((context.parameters.maxSize + 4095) / 4096 + 1)
        for device in context.devices(named: "legacy") {
            var areas: [PhysicalAddress] = []
            for _ in 0..<context.parameters.queueDepth {
                areas.append(try context.allocatePages(pagesPerArea, zone: .above(PhysicalAddress(Self.fourGiB))))
            }
            devices.append(Device(dma: context.dma(device), areas: areas))
        }
        guard !devices.isEmpty else { throw .setup("the platform has no 32-bit device") }
    }

    mutating func step(_ context: ScenarioContext) {
        let index = next
        next = (next + 1) % devices.count
        start(&devices[index], context)
    }

    mutating func finish(_ context: ScenarioContext) {
        for index in devices.indices {
            while !devices[index].live.isEmpty { complete(&devices[index], context) }
            devices[index].dma.dma.flushDeferred()
            let stats = devices[index].dma.dma.statistics
            context.check(stats.mappings == stats.unmappings, "\(devices[index].dma.device.name): every mapping released")
        }
        context.releaseAllPages()
    }

    /// Maps a buffer above 4 GiB and lets the device move data through it.
    func start(_ device: inout Device, _ context: ScenarioContext) {
        let area = device.areas[device.nextArea]
        device.nextArea = (device.nextArea + 1) % device.areas.count
        while device.live.contains(where: { $0.area == area }) { complete(&device, context) }
        let size = context.random(in: context.parameters.minSize...context.parameters.maxSize)
        let buffer = area + UInt64(context.random(in: 0...4095))
        let direction: DMADirection = context.random(in: 0...1) == 0 ? .toDevice : .fromDevice
        let pattern = context.randomBytes(size)
        if direction == .toDevice { try? context.memory.write(buffer, bytes: pattern) }
        let bus: IOVirtualAddress
        do { bus = try device.dma.map(buffer, size: size, direction: direction) } catch {
            if case .beyondMask = error, !device.dma.translates {
                context.count("refusedBeyondMask")
                if context.findings["refusedBeyondMask"] == 1 {
                    context.note("without translation a buffer above 4 GiB is beyond a 32-bit device: the DMA layer refused it (\(error))")
                }
            } else {
                context.check(false, "map \(size) bytes above 4 GiB for a 32-bit device: \(error)")
            }
            return
        }
        context.check(buffer.value >= Self.fourGiB, "the buffer lies above 4 GiB")
        context.check(bus.value &+ UInt64(size) &- 1 <= 0xFFFF_FFFF, "bus address \(bus) of \(size) bytes fits in 32 bits")
        let engine = device.dma.engine
        if direction == .toDevice {
            let (bytes, result) = engine.read(from: bus, count: size)
            context.check(result.completed && bytes == pattern, "the 32-bit device reads \(size) bytes from above 4 GiB")
        } else {
            let result = engine.write(to: bus, bytes: pattern)
            context.check(result.completed, "the 32-bit device writes \(size) bytes above 4 GiB")
        }
        context.count(direction == .toDevice ? "bytesToDevice" : "bytesFromDevice", UInt64(size))
        device.live.append(Transfer(area: area, buffer: buffer, bus: bus, pattern: pattern, direction: direction))
    }

    /// Unmaps the oldest live transfer and checks what the CPU sees.
    func complete(_ device: inout Device, _ context: ScenarioContext) {
        let transfer = device.live.removeFirst()
        do { try device.dma.unmap(transfer.bus, size: transfer.pattern.count, direction: transfer.direction) } catch {
            context.check(false, "unmap \(transfer.bus): \(error)")
        }
        if transfer.direction == .fromDevice {
            context.check((try? context.memory.read(transfer.buffer, count: transfer.pattern.count)) == transfer.pattern,
                          "the CPU reads above 4 GiB what the 32-bit device wrote")
        }
    }
}
