import DMA
import Emulation
import IOMMUCore

/// The device half of the fuzzer: reads and writes at addresses chosen to
/// probe every boundary, each compared page by page with the model.
extension FuzzSession {
    struct Chunk {
        var address: UInt64
        var length: Int
        var prediction: PagePrediction
    }

    /// A bus address worth trying, and a length.
    func chooseTarget(for device: FuzzDevice) -> (address: UInt64, length: Int) {
        let others = devices.filter { $0 !== device }
        var length = Int.random(in: 1...256, using: &generator)
        if Int.random(in: 0..<4, using: &generator) == 0 { length = Int.random(in: 1...9000, using: &generator) }
        func within(_ base: UInt64, _ size: Int) -> UInt64 { base &+ UInt64.random(in: 0..<UInt64(max(size, 1)), using: &generator) }
        switch Int.random(in: 0..<12, using: &generator) {
        case 0, 1, 2:
            if let stream = pick(device.streams) {
                let address = within(stream.bus.value, stream.size)
                let room = stream.size - Int(address - stream.bus.value)
                return (address, min(length, room))
            }
        case 3:
            if let stream = pick(device.streams) { // the rest of the page, and the pages around it
                let page = stream.bus.value & ~(PageSize.size4K - 1)
                return (page &- PageSize.size4K &+ UInt64.random(in: 0..<(3 * PageSize.size4K), using: &generator), length)
            }
        case 4:
            if let other = pick(others), let stream = pick(other.streams) { return (within(stream.bus.value, stream.size), length) }
        case 5:
            if let bus = pick((pick(others)?.unmapped ?? []) + device.unmapped + device.unmapped) {
                return (bus &+ UInt64.random(in: 0..<PageSize.size4K, using: &generator), length)
            }
        case 6:
            if let buffer = pick(device.coherent + (pick(others)?.coherent ?? [])) {
                return (within(buffer.busAddress.value, buffer.size), length)
            }
        case 7:
            let regions = platform.subsystem.device(at: device.device.address)?.reservedRegions ?? []
            if let region = pick(regions) {
                let span = region.range.upperBound - region.range.lowerBound
                return (region.range.lowerBound &+ UInt64.random(in: 0...span, using: &generator), length)
            }
        case 8:
            if let pool = pick(pools) { return (within(pool.base, Int(pool.bytes)), length) }
        case 9:
            if let aperture = groupModel(of: device)?.current.domain.geometry.aperture {
                let top = min(aperture.upperBound, aperture.lowerBound &+ (1 << 33))
                return (UInt64.random(in: aperture.lowerBound...top, using: &generator), length)
            }
        case 10:
            return (UInt64.random(in: 0...(1 << 40), using: &generator), length)
        default:
            break
        }
        return (UInt64.random(in: 0...UInt64.max, using: &generator), length)
    }

    func predict(_ device: FuzzDevice, address: UInt64, length: Int, access: BusAccess) -> [Chunk] {
        let domain = groupModel(of: device)?.current
        var chunks: [Chunk] = []
        var done = 0
        while done < length {
            let current = address &+ UInt64(done)
            if done > 0, current < address { // wrapped past the top of the bus address space
                chunks.append(Chunk(address: current, length: length - done, prediction: .fault))
                break
            }
            let inPage = Int(PageSize.size4K - (current & (PageSize.size4K - 1)))
            let piece = min(inPage, length - done)
            let prediction = model.predict(current, access: access, domain: domain, plugged: device.plugged) { physical in
                self.known.knows(physical & ~(PageSize.size4K - 1), count: PageSize.size4K)
            }
            chunks.append(Chunk(address: current, length: piece, prediction: prediction))
            done += piece
        }
        return chunks
    }

    func access(_ device: FuzzDevice) throws(FuzzStop) {
        let (address, length) = chooseTarget(for: device)
        guard length > 0 else { return }
        var access: BusAccess = Bool.random(using: &generator) ? .read : .write
        var chunks = predict(device, address: address, length: length, access: access)
        // Devices write only where the model knows the contents, so that every stray byte is caught.
        if access == .write, chunks.contains(where: { !$0.prediction.known }) {
            access = .read
            chunks = predict(device, address: address, length: length, access: access)
        }
        report.deviceAccesses += 1
        let what = "\(device.device.name) \(access) of \(length) bytes at \(hex(address))"
        let engine = device.device.engine
        if access == .read {
            let (bytes, result) = engine.read(from: IOVirtualAddress(address), count: length)
            try compare(result, chunks: chunks, what: what) { chunk, offset, physical throws(FuzzStop) in
                let expected = (try? platform.memory.read(PhysicalAddress(physical), count: chunk.length)) ?? []
                try expect(Array(bytes[offset..<(offset + chunk.length)]) == expected,
                           "\(what): the bytes read at \(hex(chunk.address)) are not those at physical \(hex(physical))")
            }
        } else {
            let data = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let result = engine.write(to: IOVirtualAddress(address), bytes: data)
            // Two bus pages may map one physical page, so a later chunk can overwrite an earlier one:
            // the shadow takes the chunks in order, then memory must equal it wherever the write landed.
            var landed: [(physical: UInt64, chunk: Chunk)] = []
            try compare(result, chunks: chunks, what: what) { chunk, offset, physical throws(FuzzStop) in
                data[offset..<(offset + chunk.length)].withUnsafeBytes { _ = known.record(physical, bytes: $0) }
                landed.append((physical, chunk))
            }
            for (physical, chunk) in landed {
                try expect(known.matches(physical, count: chunk.length),
                           "\(what): the bytes written at \(hex(chunk.address)) did not land at physical \(hex(physical))")
            }
        }
    }

    /// Walks the chunks against what the engine did: every chunk before the
    /// stop must be reachable and is checked by `verify`, the stop must be
    /// where the model allows a fault.
    func compare(_ result: DMATransferResult, chunks: [Chunk], what: String,
                 verify: (Chunk, Int, UInt64) throws(FuzzStop) -> Void) throws(FuzzStop) {
        var offset = 0
        for chunk in chunks {
            if offset == result.bytesTransferred {
                switch chunk.prediction {
                case .fault: report.faults += 1
                case .mayReach: report.staleFaults += 1
                case let .reaches(physical, kind, _):
                    try fail("\(what): faulted at \(hex(chunk.address)) (\(result.fault.map(String.init(describing:)) ?? "no fault")) "
                             + "though the model reaches physical \(hex(physical)) (\(kind))")
                }
                try expect(result.fault?.address.value == chunk.address,
                           "\(what): stopped after \(offset) bytes but reports \(result.fault.map(String.init(describing:)) ?? "no fault")")
                return
            }
            guard result.bytesTransferred >= offset + chunk.length else {
                try fail("\(what): moved \(result.bytesTransferred) bytes, stopping inside the page at \(hex(chunk.address))")
            }
            switch chunk.prediction {
            case .fault:
                try fail("\(what): reached \(hex(chunk.address)), which the model says the device may not touch")
            case let .reaches(physical, kind, _):
                report.bytesReached[kind.rawValue, default: 0] += UInt64(chunk.length)
                try verify(chunk, offset, physical + (chunk.address & (PageSize.size4K - 1)))
            case let .mayReach(physical, _):
                report.staleHits += 1
                report.bytesReached[ReachKind.stale.rawValue, default: 0] += UInt64(chunk.length)
                try verify(chunk, offset, physical + (chunk.address & (PageSize.size4K - 1)))
            }
            offset += chunk.length
        }
        try expect(result.fault == nil, "\(what): moved every byte yet reports \(result.fault.map(String.init(describing:)) ?? "")")
    }
}
