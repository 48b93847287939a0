import DMA
import Emulation
import IOMMUCore

/// Devices pulled out while they have live mappings (a surprise removal),
/// then plugged back in. Each cycle: the driver sets up a coherent ring and
/// queue-depth streaming mappings and the device moves data through them;
/// the device disappears from the bus (its DMA now goes nowhere); the
/// driver's remove path tears every mapping down through the DMA API and
/// reports it; the IOMMU-API removes the device, destroying its domain; the
/// device is plugged in again with a fresh domain. Checked: nothing stays
/// mapped in the old domain, the DMA layer's books balance, and the page
/// allocator is back to its count from before the scenario started.
struct HotRemovalScenario: DeviceScenario {
    struct Slot {
        var specification: DeviceSpecification
        var dma: ScenarioDMA
    }

    struct LiveMapping {
        var run: PhysicalAddress
        var bus: IOVirtualAddress
        var size: Int
        var direction: DMADirection
    }

    var slots: [Slot] = []
    var next = 0
    var startPages: UInt64 = 0

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        for device in context.devices(named: "hotplug") {
            guard let specification = context.platform.specification.devices.first(where: { $0.address == device.device.address })
            else { continue }
            slots.append(Slot(specification: specification, dma: context.dma(device)))
        }
        guard !slots.isEmpty else { throw .setup("the platform has no hot-pluggable device") }
        startPages = context.platform.pages.allocatedPages
    }

    mutating func step(_ context: ScenarioContext) {
        let index = next
        next = (next + 1) % slots.count
        cycle(&slots[index], context)
    }

    mutating func finish(_ context: ScenarioContext) {
        context.releaseAllPages()
        context.check(context.platform.pages.allocatedPages == startPages,
                      "the page allocator is back to its \(startPages) pages from before the scenario")
        context.findings["pagesLeaked"] = context.platform.pages.allocatedPages &- startPages
    }

    func cycle(_ slot: inout Slot, _ context: ScenarioContext) {
        let dma = slot.dma
        let platform = context.platform
        let address = slot.specification.address
        let domain = dma.dma.managed?.group.defaultDomain

        // Bring-up: a ring and queue-depth live streaming mappings with data moving through them.
        let ring: CoherentBuffer
        do { ring = try dma.allocateCoherent(size: 4096) } catch {
            context.check(false, "\(address): allocate a ring: \(error)")
            return
        }
        var live: [LiveMapping] = []
        for entry in 0..<context.parameters.queueDepth {
            let size = context.random(in: context.parameters.minSize...context.parameters.maxSize)
            guard let run = try? context.allocatePages(UInt64((size + 4095) / 4096)) else {
                context.check(false, "allocate a \(size)-byte buffer")
                break
            }
            let direction: DMADirection = context.random(in: 0...1) == 0 ? .toDevice : .fromDevice
            let pattern = context.randomBytes(size)
            if direction == .toDevice { try? context.memory.write(run, bytes: pattern) }
            let bus: IOVirtualAddress
            do { bus = try dma.map(run, size: size, direction: direction) } catch {
                context.check(false, "map a \(size)-byte buffer: \(error)")
                context.freePages(run)
                continue
            }
            live.append(LiveMapping(run: run, bus: bus, size: size, direction: direction))
            if direction == .toDevice {
                let (bytes, result) = dma.engine.read(from: bus, count: size)
                context.check(result.completed && bytes == pattern, "the device reads a \(size)-byte buffer")
            } else {
                let result = dma.engine.write(to: bus, bytes: pattern)
                context.check(result.completed && (try? context.memory.read(run, count: size)) == pattern,
                              "the device writes a \(size)-byte buffer")
            }
            _ = dma.engine.write(to: ring.busAddress + UInt64(entry % 256 * 16), bytes: [UInt8](repeating: 1, count: 16))
        }

        // Surprise removal: the device is gone first; its DMA must go nowhere.
        let engineBytes = dma.engine.statistics
        context.retiredBytesMoved += engineBytes.bytesRead + engineBytes.bytesWritten
        do { try platform.bus.unplug(address) } catch { context.check(false, "unplug \(address): \(error)") }
        if let first = live.first {
            let attempt = dma.engine.read(from: first.bus, count: 64)
            context.check(!attempt.result.completed && attempt.bytes.isEmpty, "a removed device's DMA reaches nothing")
            context.count("dmaAfterRemovalBlocked")
        }

        // The driver's remove path: tear down every live mapping and report it.
        var tornDown: UInt64 = 0, bytes: UInt64 = 0
        for mapping in live {
            do {
                try dma.unmap(mapping.bus, size: mapping.size, direction: mapping.direction)
                tornDown += 1
                bytes += UInt64(mapping.size)
            } catch { context.check(false, "tear down \(mapping.bus): \(error)") }
        }
        do { try dma.freeCoherent(ring) } catch { context.check(false, "free the ring at removal: \(error)") }
        dma.dma.flushDeferred()
        do { try dma.dma.deviceRemoved() } catch { context.check(false, "the DMA layer's removal of \(address): \(error)") }
        context.count("removals")
        context.count("mappingsTornDown", tornDown)
        context.count("bytesTornDown", bytes)
        context.count("coherentBuffersTornDown")
        let stats = dma.dma.statistics
        context.check(stats.mappings == stats.unmappings && stats.coherentBytesLive == 0 && dma.dma.deferredUnmaps == 0,
                      "\(address): the DMA layer holds no mapping after teardown")
        if let domain, domain.kind.translates {
            let stale = live.filter { domain.lookup($0.bus.value) != nil }.count + (domain.lookup(ring.busAddress.value) != nil ? 1 : 0)
            context.check(stale == 0, "\(address): no translation is left in the old domain (\(stale) left)")
            context.count("mappingsLeaked", UInt64(stale))
        }
        if context.findings["removals"] == 1 {
            context.note("hot-removed \(address) with \(live.count) live streaming mappings and a coherent ring: \(tornDown) mappings (\(bytes) bytes) and the ring torn down")
        }
        do { try platform.subsystem.removeDevice(address) } catch { context.check(false, "remove \(address): \(error)") }
        context.check(platform.subsystem.device(at: address) == nil, "the IOMMU-API no longer knows \(address)")
        for mapping in live { context.freePages(mapping.run) }

        // Plugged in again: a fresh domain, and the page count as before the scenario.
        guard let fresh = replug(slot.specification, context) else { return }
        slot.dma = context.dma(fresh)
        context.check(platform.pages.allocatedPages == startPages,
                      "after removal and re-plug the page allocator holds \(platform.pages.allocatedPages) pages, as before (\(startPages))")
    }

    func replug(_ specification: DeviceSpecification, _ context: ScenarioContext) -> DeviceDMA? {
        let platform = context.platform
        let device = PCIDevice(address: specification.address, name: specification.name,
                               deviceClass: specification.deviceClass, addressBits: specification.addressBits,
                               isUntrusted: specification.isUntrusted, memory: platform.memory)
        let unitName = platform.specification.unit(for: specification)?.name
        let unit = platform.units.first { $0.unitReport.name == unitName }
        do {
            try platform.bus.plug(device, behind: unit)
            try platform.subsystem.addDevice(device)
            let dma = try DeviceDMA(device: device, subsystem: platform.subsystem, pages: platform.pages,
                                    configuration: platform.dmaConfiguration(for: device.address))
            context.count("replugs")
            return dma
        } catch {
            context.check(false, "re-plug \(specification.address): \(error)")
            return nil
        }
    }
}
