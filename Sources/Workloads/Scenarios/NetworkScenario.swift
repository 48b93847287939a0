import DMA
import Emulation

/// NICs receiving and transmitting.
///
/// RX: the driver posts one streaming mapping per ring slot (device writes),
/// the NIC fetches the descriptor, writes the packet, writes back the length
/// with a done bit; the driver unmaps, checks every byte against what the NIC
/// sent, and refills consumed slots in batches (as NAPI does) with fresh
/// mappings at new offsets. TX: a frame built from a header and up to three
/// payload fragments in different pages is mapped as a scatter-gather list,
/// described in the TX ring, gathered by the NIC (which checks the frame on
/// the wire is the frame the CPU built) and unmapped on completion.
struct NetworkScenario: DeviceScenario {
    /// RX descriptor: [0] bus address, [1] buffer length, [2] status: done bit | bytes written.
    /// TX descriptor: [0] bus address, [1] length | end-of-packet flag << 32, [2] status: done bit.
    static let doneBit: UInt64 = 1 << 63
    static let endOfPacket: UInt64 = 1 << 32
    static let headroom = 256
    static let largestFrame = 64 << 10

    struct RxSlot {
        var area: PhysicalAddress
        var buffer: PhysicalAddress
        var bus: IOVirtualAddress
        var size: Int
    }

    struct NIC {
        var dma: ScenarioDMA
        var rx: DescriptorRing
        var tx: DescriptorRing
        var slots: [RxSlot?]
        var deviceRxHead = 0
        var cpuRxHead = 0
        var txTail = 0
        var toRefill: [Int] = []
        /// One page run per TX fragment position, so fragments never share a page.
        var fragmentAreas: [PhysicalAddress]
    }

    var nics: [NIC] = []
    var next = 0
    var areaPages: UInt64 = 1

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        let parameters = context.parameters
        guard parameters.maxSize <= Self.largestFrame else {
            throw .invalidValue(key: "max-size", value: "\(parameters.maxSize)", expected: "at most 64 KiB for network frames")
        }
        areaPages = UInt64((parameters.maxSize + Self.headroom + 4095) / 4096)
        for device in context.devices(named: "nic") {
            let dma = context.dma(device)
            do {
                var nic = NIC(dma: dma, rx: try DescriptorRing(dma, entries: parameters.queueDepth, entryWords: 3),
                              tx: try DescriptorRing(dma, entries: parameters.queueDepth, entryWords: 3),
                              slots: Array(repeating: nil, count: parameters.queueDepth), fragmentAreas: [])
                for _ in 0..<4 { nic.fragmentAreas.append(try context.allocatePages(areaPages)) }
                for index in 0..<parameters.queueDepth {
                    let area = try context.allocatePages(areaPages)
                    nic.slots[index] = RxSlot(area: area, buffer: area, bus: IOVirtualAddress(0), size: 0)
                    refill(&nic, index, context)
                }
                nics.append(nic)
            } catch let error as DMAError {
                throw .setup("\(device.device.name): \(error)")
            } catch let error as ScenarioError { throw error } catch { throw .setup("\(error)") }
        }
        guard !nics.isEmpty else { throw .setup("the platform has no NIC") }
    }

    mutating func step(_ context: ScenarioContext) {
        let index = next
        next = (next + 1) % nics.count
        receive(&nics[index], context)
        transmit(&nics[index], context)
    }

    mutating func finish(_ context: ScenarioContext) {
        for index in nics.indices {
            for slot in nics[index].slots.indices {
                guard let posted = nics[index].slots[slot], posted.size > 0 else { continue }
                do { try nics[index].dma.unmap(posted.bus, size: posted.size, direction: .fromDevice) } catch {
                    context.check(false, "unmap RX slot \(slot) at teardown: \(error)")
                }
            }
            for ring in [nics[index].rx, nics[index].tx] {
                do { try nics[index].dma.freeCoherent(ring.buffer) } catch { context.check(false, "free ring: \(error)") }
            }
            nics[index].dma.dma.flushDeferred()
            let stats = nics[index].dma.dma.statistics
            context.check(stats.mappings == stats.unmappings && stats.coherentBytesLive == 0,
                          "\(nics[index].dma.device.name): every mapping and ring released")
        }
        context.releaseAllPages()
    }

    /// Posts a fresh mapping for RX slot `index` at a new offset in its area.
    func refill(_ nic: inout NIC, _ index: Int, _ context: ScenarioContext) {
        guard var slot = nic.slots[index] else { return }
        let size = context.parameters.maxSize
        slot.buffer = slot.area + UInt64(context.random(in: 0...(Self.headroom - 1)))
        do {
            slot.bus = try nic.dma.map(slot.buffer, size: size, direction: .fromDevice)
            slot.size = size
        } catch {
            context.check(false, "map RX buffer for slot \(index): \(error)")
            slot.size = 0
        }
        nic.slots[index] = slot
        nic.rx.cpuStore(index, word: 0, slot.size > 0 ? slot.bus.value : 0)
        nic.rx.cpuStore(index, word: 1, UInt64(slot.size))
        nic.rx.cpuStore(index, word: 2, 0)
    }

    func receive(_ nic: inout NIC, _ context: ScenarioContext) {
        let engine = nic.dma.engine
        // Device side: fetch the next descriptor, write a packet, write back the status.
        let index = nic.deviceRxHead
        guard let descriptor = nic.rx.deviceFetch(index, engine: engine) else {
            context.check(false, "NIC fetches RX descriptor \(index)")
            return
        }
        guard descriptor[0] != 0, descriptor[2] & Self.doneBit == 0 else {
            context.count("rxDroppedNoBuffer")
            return
        }
        let packet = context.randomBytes(context.random(in: context.parameters.minSize...min(context.parameters.maxSize,
                                                                                             Int(descriptor[1]))))
        let written = engine.write(to: IOVirtualAddress(descriptor[0]), bytes: packet)
        context.check(written.completed, "NIC writes a \(packet.count)-byte packet: \(written.fault.map { "\($0)" } ?? "")")
        context.check(nic.rx.deviceStore(index, word: 2, Self.doneBit | UInt64(written.bytesTransferred), engine: engine),
                      "NIC writes back RX status")
        nic.deviceRxHead = (index + 1) % nic.rx.count

        // CPU side: see the completion, unmap, check the bytes, queue the slot for refill.
        let status = nic.rx.cpuLoad(nic.cpuRxHead, word: 2)
        guard status & Self.doneBit != 0, let slot = nic.slots[nic.cpuRxHead] else {
            context.check(false, "CPU sees the RX completion of slot \(nic.cpuRxHead)")
            return
        }
        let length = Int(status & 0xFFFF_FFFF)
        do { try nic.dma.unmap(slot.bus, size: slot.size, direction: .fromDevice) } catch {
            context.check(false, "unmap RX buffer: \(error)")
        }
        nic.slots[nic.cpuRxHead]?.size = 0
        context.check(length == packet.count && (try? context.memory.read(slot.buffer, count: length)) == packet,
                      "CPU reads the \(packet.count)-byte packet the NIC received")
        context.count("packetsReceived")
        nic.toRefill.append(nic.cpuRxHead)
        nic.cpuRxHead = (nic.cpuRxHead + 1) % nic.rx.count
        if nic.toRefill.count >= max(1, nic.rx.count / 8) {
            for slot in nic.toRefill { refill(&nic, slot, context) }
            context.count("refillBatches")
            nic.toRefill.removeAll(keepingCapacity: true)
        }
    }

    func transmit(_ nic: inout NIC, _ context: ScenarioContext) {
        let parameters = context.parameters
        let frame = context.randomBytes(context.random(in: parameters.minSize...parameters.maxSize))
        // A header plus up to three payload fragments, each in its own page run.
        let pieces = min(nic.tx.count, nic.fragmentAreas.count, frame.count, context.random(in: 1...4))
        var cuts = [0]
        if pieces > 1 {
            cuts.append(max(1, min(54, frame.count - (pieces - 1))))
            for piece in 2..<max(2, pieces) where piece < pieces {
                cuts.append(context.random(in: (cuts[piece - 1] + 1)...(frame.count - (pieces - piece))))
            }
        }
        cuts.append(frame.count)
        var segments: [DMASegment] = []
        for piece in 0..<pieces {
            let bytes = Array(frame[cuts[piece]..<cuts[piece + 1]])
            let address = nic.fragmentAreas[piece] + UInt64(context.random(in: 0...(Self.headroom - 1)))
            try? context.memory.write(address, bytes: bytes)
            segments.append(DMASegment(physical: address, size: bytes.count))
        }
        let mapped: [MappedSegment]
        do { mapped = try nic.dma.mapScatterList(segments, direction: .toDevice) } catch {
            context.check(false, "map a \(pieces)-fragment TX frame: \(error)")
            return
        }
        let first = nic.txTail
        for (offset, segment) in mapped.enumerated() {
            let index = (first + offset) % nic.tx.count
            nic.tx.cpuStore(index, word: 0, segment.bus.value)
            nic.tx.cpuStore(index, word: 1, UInt64(segment.size) | (offset == mapped.count - 1 ? Self.endOfPacket : 0))
            nic.tx.cpuStore(index, word: 2, 0)
        }
        nic.txTail = (first + mapped.count) % nic.tx.count

        // Device side: walk descriptors to end of packet, gather the frame, complete each descriptor.
        let engine = nic.dma.engine
        var wire: [UInt8] = []
        var index = first
        for _ in 0..<mapped.count {
            guard let descriptor = nic.tx.deviceFetch(index, engine: engine) else {
                context.check(false, "NIC fetches TX descriptor \(index)")
                break
            }
            let length = Int(descriptor[1] & 0xFFFF_FFFF)
            let (bytes, result) = engine.read(from: IOVirtualAddress(descriptor[0]), count: length)
            context.check(result.completed, "NIC gathers a \(length)-byte TX fragment")
            wire += bytes
            _ = nic.tx.deviceStore(index, word: 2, Self.doneBit, engine: engine)
            index = (index + 1) % nic.tx.count
            if descriptor[1] & Self.endOfPacket != 0 { break }
        }
        context.check(wire == frame, "the frame on the wire is the \(frame.count)-byte frame the CPU built")
        context.count("framesTransmitted")

        // CPU side: completion seen, unmap the list.
        let completed = (0..<mapped.count).allSatisfy { nic.tx.cpuLoad((first + $0) % nic.tx.count, word: 2) & Self.doneBit != 0 }
        context.check(completed, "CPU sees every TX descriptor completed")
        for failure in nic.dma.unmapScatterList(mapped, direction: .toDevice) { context.check(false, failure) }
    }
}
