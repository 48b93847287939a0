import DMA
import Emulation

/// NVMe-style controllers: a submission and a completion queue in coherent
/// memory, reads and writes of 4 KiB-1 MiB whose data buffers are
/// scatter-gather lists of physically separate page runs, described to the
/// controller by a segment list in coherent memory (PRP-list-like).
///
/// The controller keeps its own media; every 4 KiB block carries a pattern
/// derived from its LBA and a version the CPU bumps on each write, so a read
/// is checked against exactly what the last write put there.
struct NVMeScenario: DeviceScenario {
    static let blockSize = 4096
    static let maxSegments = 64
    static let opWrite: UInt64 = 1
    static let opRead: UInt64 = 2

    struct Command {
        var slot: Int
        var isWrite: Bool
        var lba: UInt64
        var blocks: Int
        /// The data buffer: physically separate page runs.
        var segments: [DMASegment] = []
        var mapped: [MappedSegment] = []
        /// Versions of each block: written (writes) or expected (reads).
        var versions: [UInt32] = []
        var direction: DMADirection { isWrite ? .toDevice : .fromDevice }
    }

    struct Controller {
        var dma: ScenarioDMA
        var submission: DescriptorRing
        var completion: DescriptorRing
        var segmentLists: DescriptorRing
        var inFlight: [Int: Command] = [:]
        var submissionTail = 0
        /// Commands submitted that the controller has not fetched yet.
        var unfetched = 0
        var deviceSubmissionHead = 0
        var deviceCompletionTail = 0
        var devicePhase: UInt64 = 1
        var completionHead = 0
        var phase: UInt64 = 1
        /// The controller's media: written blocks only.
        var media: [UInt64: [UInt8]] = [:]
        /// What the CPU expects in each block.
        var versions: [UInt64: UInt32] = [:]
    }

    var controllers: [Controller] = []
    var next = 0
    var namespaceBlocks: UInt64 = 0

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        let depth = context.parameters.queueDepth
        namespaceBlocks = UInt64(max(256, 4 * (context.parameters.maxSize + Self.blockSize - 1) / Self.blockSize))
        for device in context.devices(named: "nvme") {
            let dma = context.dma(device)
            do {
                controllers.append(Controller(
                    dma: dma, submission: try DescriptorRing(dma, entries: depth, entryWords: 8),
                    completion: try DescriptorRing(dma, entries: depth, entryWords: 2),
                    segmentLists: try DescriptorRing(dma, entries: depth * Self.maxSegments, entryWords: 2)))
            } catch { throw .setup("\(device.device.name): \(error)") }
        }
        guard !controllers.isEmpty else { throw .setup("the platform has no NVMe controller") }
    }

    mutating func step(_ context: ScenarioContext) {
        let index = next
        next = (next + 1) % controllers.count
        if controllers[index].inFlight.count == controllers[index].submission.count {
            process(&controllers[index], context)
        }
        submit(&controllers[index], context)
        // The controller runs when the queue is full or now and then, so that commands overlap.
        if controllers[index].inFlight.count == controllers[index].submission.count || context.random(in: 0...3) == 0 {
            process(&controllers[index], context)
        }
    }

    mutating func finish(_ context: ScenarioContext) {
        for index in controllers.indices {
            process(&controllers[index], context)
            for ring in [controllers[index].submission, controllers[index].completion, controllers[index].segmentLists] {
                do { try controllers[index].dma.freeCoherent(ring.buffer) } catch { context.check(false, "free queue: \(error)") }
            }
            controllers[index].dma.dma.flushDeferred()
            let stats = controllers[index].dma.dma.statistics
            context.check(stats.mappings == stats.unmappings && stats.coherentBytesLive == 0,
                          "\(controllers[index].dma.device.name): every mapping and queue released")
        }
        context.releaseAllPages()
    }

    /// The data of one block at one version: what a write puts there and a read must return.
    static func pattern(lba: UInt64, version: UInt32, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed ^ (lba &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(version) << 40))
        var bytes = [UInt8](repeating: 0, count: blockSize)
        bytes.withUnsafeMutableBytes { raw in
            for word in 0..<(blockSize / 8) { raw.storeBytes(of: generator.next(), toByteOffset: word * 8, as: UInt64.self) }
        }
        return bytes
    }

    func submit(_ controller: inout Controller, _ context: ScenarioContext) {
        let parameters = context.parameters
        let size = (context.random(in: parameters.minSize...parameters.maxSize) + Self.blockSize - 1) / Self.blockSize
            * Self.blockSize
        let blocks = size / Self.blockSize
        var command = Command(slot: controller.submissionTail, isWrite: context.random(in: 0...1) == 0,
                              lba: UInt64(context.random(in: 0...Int(namespaceBlocks) - blocks)), blocks: blocks)
        // Physically separate runs of 1...n blocks, at most maxSegments of them.
        let smallestRun = max(1, (blocks + Self.maxSegments - 1) / Self.maxSegments)
        var placed = 0
        while placed < blocks {
            let run = min(blocks - placed, context.random(in: smallestRun...max(smallestRun, min(32, blocks))))
            guard let address = try? context.allocatePages(UInt64(run)) else {
                context.check(false, "allocate \(run) pages for a command")
                for segment in command.segments { context.freePages(segment.physical) }
                return
            }
            command.segments.append(DMASegment(physical: address, size: run * Self.blockSize))
            placed += run
        }
        for block in 0..<blocks {
            let lba = command.lba + UInt64(block)
            if command.isWrite {
                let version = (controller.versions[lba] ?? 0) + 1
                controller.versions[lba] = version
                command.versions.append(version)
            } else {
                command.versions.append(controller.versions[lba] ?? 0)
            }
        }
        if command.isWrite { fill(command, context) }
        do { command.mapped = try controller.dma.mapScatterList(command.segments, direction: command.direction) } catch {
            context.check(false, "map a \(command.segments.count)-segment \(size)-byte command: \(error)")
            for segment in command.segments { context.freePages(segment.physical) }
            return
        }
        let listBase = command.slot * Self.maxSegments
        for (offset, segment) in command.mapped.enumerated() {
            controller.segmentLists.cpuStore(listBase + offset, word: 0, segment.bus.value)
            controller.segmentLists.cpuStore(listBase + offset, word: 1, UInt64(segment.size))
        }
        let listBus = controller.segmentLists.buffer.busAddress.value + UInt64(listBase * 16)
        let submission = controller.submission
        submission.cpuStore(command.slot, word: 0, (command.isWrite ? Self.opWrite : Self.opRead) | UInt64(command.slot) << 16)
        submission.cpuStore(command.slot, word: 1, command.lba)
        submission.cpuStore(command.slot, word: 2, UInt64(size))
        submission.cpuStore(command.slot, word: 3, listBus)
        submission.cpuStore(command.slot, word: 4, UInt64(command.mapped.count))
        controller.inFlight[command.slot] = command
        controller.submissionTail = (controller.submissionTail + 1) % submission.count
        controller.unfetched += 1
    }

    func fill(_ command: Command, _ context: ScenarioContext) {
        var block = 0
        for segment in command.segments {
            for offset in stride(from: 0, to: segment.size, by: Self.blockSize) {
                let data = Self.pattern(lba: command.lba + UInt64(block), version: command.versions[block],
                                        seed: context.parameters.seed)
                try? context.memory.write(segment.physical + UInt64(offset), bytes: data)
                block += 1
            }
        }
    }

    /// The controller consumes every submitted command, then the CPU reaps the completions.
    func process(_ controller: inout Controller, _ context: ScenarioContext) {
        let engine = controller.dma.engine
        while controller.unfetched > 0 {
            let slot = controller.deviceSubmissionHead
            var status: UInt64 = 0
            if let entry = controller.submission.deviceFetch(slot, engine: engine) {
                status = execute(entry, &controller, context) ? 0 : 1
            } else {
                status = 2
            }
            let tail = controller.deviceCompletionTail
            _ = controller.completion.deviceStore(tail, word: 1, UInt64(slot), engine: engine)
            _ = controller.completion.deviceStore(tail, word: 0, UInt64(slot) | status << 16 | controller.devicePhase << 31,
                                                  engine: engine)
            controller.deviceCompletionTail = (tail + 1) % controller.completion.count
            if controller.deviceCompletionTail == 0 { controller.devicePhase ^= 1 }
            controller.deviceSubmissionHead = (slot + 1) % controller.submission.count
            controller.unfetched -= 1
        }
        reap(&controller, context)
    }

    /// Runs one command on the controller; false when a transfer faulted.
    func execute(_ entry: [UInt64], _ controller: inout Controller, _ context: ScenarioContext) -> Bool {
        let engine = controller.dma.engine
        let isWrite = entry[0] & 0xFF == Self.opWrite
        let lba = entry[1], size = Int(entry[2]), count = Int(entry[4])
        var segments: [MappedSegment] = []
        for index in 0..<count {
            let (bytes, result) = engine.read(from: IOVirtualAddress(entry[3] + UInt64(index * 16)), count: 16)
            guard result.completed else { return false }
            let words = [0, 8].map { base in bytes[base..<(base + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
            segments.append(MappedSegment(bus: IOVirtualAddress(words[0]), size: Int(words[1])))
        }
        if isWrite {
            let (data, completed) = controller.dma.deviceGather(segments, count: size)
            guard completed else { return false }
            for block in 0..<(size / Self.blockSize) {
                controller.media[lba + UInt64(block)] = Array(data[(block * Self.blockSize)..<((block + 1) * Self.blockSize)])
            }
            return true
        }
        var data: [UInt8] = []
        data.reserveCapacity(size)
        for block in 0..<(size / Self.blockSize) {
            let address = lba + UInt64(block)
            data += controller.media[address] ?? Self.pattern(lba: address, version: 0, seed: context.parameters.seed)
        }
        return controller.dma.deviceScatter(data, into: segments)
    }

    func reap(_ controller: inout Controller, _ context: ScenarioContext) {
        while true {
            let head = controller.completionHead
            let word = controller.completion.cpuLoad(head, word: 0)
            guard (word >> 31) & 1 == controller.phase else { break }
            let slot = Int(controller.completion.cpuLoad(head, word: 1))
            controller.completionHead = (head + 1) % controller.completion.count
            if controller.completionHead == 0 { controller.phase ^= 1 }
            guard let command = controller.inFlight.removeValue(forKey: slot) else {
                context.check(false, "a completion for slot \(slot) matches a command in flight")
                continue
            }
            context.check((word >> 16) & 0x7FFF == 0, "command \(slot) completes without a transfer fault")
            for failure in controller.dma.unmapScatterList(command.mapped, direction: command.direction) {
                context.check(false, failure)
            }
            if !command.isWrite { verifyRead(command, context) } else { context.count("blocksWritten", UInt64(command.blocks)) }
            for segment in command.segments { context.freePages(segment.physical) }
            context.count(command.isWrite ? "writes" : "reads")
        }
    }

    func verifyRead(_ command: Command, _ context: ScenarioContext) {
        var block = 0
        var matching = true
        for segment in command.segments {
            for offset in stride(from: 0, to: segment.size, by: Self.blockSize) {
                let expected = Self.pattern(lba: command.lba + UInt64(block), version: command.versions[block],
                                            seed: context.parameters.seed)
                if (try? context.memory.read(segment.physical + UInt64(offset), count: Self.blockSize)) != expected { matching = false }
                block += 1
            }
        }
        context.check(matching && block == command.blocks,
                      "a \(command.blocks)-block read at LBA \(command.lba) returns what was last written there")
        context.count("blocksRead", UInt64(command.blocks))
    }
}
