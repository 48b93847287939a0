import DMA
import Emulation

/// GPU-like devices: queue-depth large coherent buffers (render targets,
/// command buffers) that the GPU copies between in 64 KiB bursts, with
/// streaming texture uploads now and then and buffers reallocated as an
/// application would, so that mappings of many megabytes come and go.
struct GPUScenario: DeviceScenario {
    static let burst = 64 << 10

    struct GPU {
        var dma: ScenarioDMA
        var buffers: [CoherentBuffer]
        var staging: PhysicalAddress
    }

    var gpus: [GPU] = []
    var next = 0

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        let count = max(2, context.parameters.queueDepth)
        for device in context.devices(named: "gpu") {
            let dma = context.dma(device)
            var buffers: [CoherentBuffer] = []
            for _ in 0..<count {
                do { buffers.append(try dma.allocateCoherent(size: randomSize(context))) } catch {
                    throw .setup("\(device.device.name): allocate a coherent buffer: \(error)")
                }
            }
            let staging = try context.allocatePages(UInt64((context.parameters.maxSize + 4095) / 4096))
            gpus.append(GPU(dma: dma, buffers: buffers, staging: staging))
        }
        guard !gpus.isEmpty else { throw .setup("the platform has no GPU") }
    }

    func randomSize(_ context: ScenarioContext) -> Int {
        (context.random(in: context.parameters.minSize...context.parameters.maxSize) + 4095) / 4096 * 4096
    }

    mutating func step(_ context: ScenarioContext) {
        let index = next
        next = (next + 1) % gpus.count
        blit(gpus[index], context)
        switch context.random(in: 0...7) {
        case 0: upload(gpus[index], context)
        case 1: reallocate(&gpus[index], context)
        default: break
        }
    }

    mutating func finish(_ context: ScenarioContext) {
        for index in gpus.indices {
            for buffer in gpus[index].buffers {
                do { try gpus[index].dma.freeCoherent(buffer) } catch { context.check(false, "free a coherent buffer: \(error)") }
            }
            gpus[index].buffers.removeAll()
            gpus[index].dma.dma.flushDeferred()
            let stats = gpus[index].dma.dma.statistics
            context.check(stats.mappings == stats.unmappings && stats.coherentBytesLive == 0,
                          "\(gpus[index].dma.device.name): every mapping and coherent buffer released")
        }
        context.releaseAllPages()
    }

    /// The CPU fills part of one buffer; the GPU copies it to another; the CPU checks the copy.
    func blit(_ gpu: GPU, _ context: ScenarioContext) {
        guard gpu.buffers.count >= 2 else { return }
        let sourceIndex = context.random(in: 0...(gpu.buffers.count - 1))
        var targetIndex = context.random(in: 0...(gpu.buffers.count - 2))
        if targetIndex >= sourceIndex { targetIndex += 1 }
        let source = gpu.buffers[sourceIndex], target = gpu.buffers[targetIndex]
        let length = context.random(in: 1...min(source.size, target.size))
        let sourceOffset = context.random(in: 0...(source.size - length))
        let targetOffset = context.random(in: 0...(target.size - length))
        let pattern = context.randomBytes(length)
        _ = source.write(pattern, at: sourceOffset)
        let engine = gpu.dma.engine
        var done = 0
        var faulted = false
        while done < length, !faulted {
            let chunk = min(Self.burst, length - done)
            let (bytes, read) = engine.read(from: source.busAddress + UInt64(sourceOffset + done), count: chunk)
            let written = engine.write(to: target.busAddress + UInt64(targetOffset + done), bytes: bytes)
            faulted = !read.completed || !written.completed
            done += chunk
        }
        context.check(!faulted, "the GPU copies \(length) bytes between coherent buffers")
        context.check(target.read(at: targetOffset, count: length) == pattern, "the CPU sees the \(length) bytes the GPU copied")
        context.count("bytesBlitted", UInt64(length))
    }

    /// A texture in ordinary memory, mapped for one upload into a coherent buffer.
    func upload(_ gpu: GPU, _ context: ScenarioContext) {
        guard !gpu.buffers.isEmpty else { return }
        let target = gpu.buffers[context.random(in: 0...(gpu.buffers.count - 1))]
        let length = context.random(in: context.parameters.minSize...min(context.parameters.maxSize, target.size))
        let texture = context.randomBytes(length)
        try? context.memory.write(gpu.staging, bytes: texture)
        let bus: IOVirtualAddress
        do { bus = try gpu.dma.map(gpu.staging, size: length, direction: .toDevice) } catch {
            context.check(false, "map a \(length)-byte texture: \(error)")
            return
        }
        var done = 0
        var completed = true
        while done < length, completed {
            let chunk = min(Self.burst, length - done)
            let (bytes, read) = gpu.dma.engine.read(from: bus + UInt64(done), count: chunk)
            completed = read.completed && gpu.dma.engine.write(to: target.busAddress + UInt64(done), bytes: bytes).completed
            done += chunk
        }
        do { try gpu.dma.unmap(bus, size: length, direction: .toDevice) } catch {
            context.check(false, "unmap a texture: \(error)")
        }
        context.check(completed && target.read(at: 0, count: length) == texture, "the GPU uploads a \(length)-byte texture")
        context.count("texturesUploaded")
    }

    /// Frees one buffer and allocates another of a new size, as an application resizing a surface.
    func reallocate(_ gpu: inout GPU, _ context: ScenarioContext) {
        guard !gpu.buffers.isEmpty else { return }
        let index = context.random(in: 0...(gpu.buffers.count - 1))
        do {
            try gpu.dma.freeCoherent(gpu.buffers[index])
            gpu.buffers[index] = try gpu.dma.allocateCoherent(size: randomSize(context))
            context.count("buffersReallocated")
        } catch {
            context.check(false, "reallocate a coherent buffer: \(error)")
            gpu.buffers.remove(at: index)
        }
    }
}
