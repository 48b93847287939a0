import DMA
import Emulation
import IOMMUCore

extension AttackScenario {
    public static let requesterIDSpoofing = AttackScenario(
        name: "rid-spoof",
        summary: "a rogue function puts another device's requester ID on the bus, or one nobody owns"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "rid-spoof", context: context, attempted:
            "a rogue function at 05:00.0, plugged behind the same unit but never given to the IOMMU-API, claims nvme0's "
            + "requester ID and reads and writes nvme0's mapping, the page after it and a secret by physical address; a "
            + "second rogue claims the unowned requester ID 06:00.0")
        let nvme = try machine.dma("nvme0")
        let victimSecret = try machine.secret(), secret = try machine.secret()
        let bus = try machine.map(nvme, victimSecret, size: 4096, .bidirectional)
        let unitName = machine.platform.specification.devices.first { $0.address == nvme.device.address }
            .flatMap { machine.platform.specification.unit(for: $0)?.name }
        let unit = machine.platform.units.first { $0.name == unitName }
        func rogue(_ address: UInt16, claiming victim: PCIAddress) throws(PlatformError) -> PCIDevice {
            let device = PCIDevice(address: PCIAddress(requesterID: address), name: "rogue", requesterAlias: victim,
                                   memory: machine.platform.memory)
            do throws(BusError) { try machine.platform.bus.plug(device, behind: unit) } catch { throw .bus(error) }
            return device
        }
        let spoofer = try rogue(0x0500, claiming: nvme.device.address)
        let faultsBefore = machine.platform.subsystem.faultCount
        // The victim's own mapping: the IOMMU sees only the requester ID, so this is the victim's window.
        outcome.record(spoofer.engine.read(from: bus, count: 256).result, requested: 256, window: .requesterID)
        outcome.record(spoofer.engine.write(to: bus, bytes: [UInt8](repeating: 0xEE, count: 256)), requested: 256, window: .requesterID)
        // Beyond the victim's mappings spoofing must buy nothing.
        for target in [bus.value &+ 4096, secret.value] {
            // Under shadow buffers the page after the victim's buffer is a slot of its pool: still the victim's mappings.
            let window = machine.shadowPool(reachedBy: nvme, at: target, count: 256) != nil ? .requesterID
                : machine.passThroughWindow(nvme, target)
            outcome.record(spoofer.engine.read(from: IOVirtualAddress(target), count: 256).result, requested: 256, window: window)
            outcome.record(spoofer.engine.write(to: IOVirtualAddress(target), bytes: [UInt8](repeating: 0xEE, count: 256)),
                           requested: 256, window: window)
        }
        let blamed = machine.platform.subsystem.recentFaults.last?.requester
        if machine.platform.subsystem.faultCount > faultsBefore, let blamed {
            outcome.notes.append("the unit logged the rogue's faults against \(blamed) (\(blamed == nvme.device.address ? "the victim" : "another requester"))")
        }
        let nobody = try rogue(0x0501, claiming: PCIAddress(requesterID: 0x0600))
        let window: ExposureWindow? = context.family == .amdGART ? .sharedGroup : nil
        outcome.record(nobody.engine.read(from: bus, count: 256).result, requested: 256, window: window)
        outcome.record(nobody.engine.write(to: bus, bytes: [UInt8](repeating: 0xEE, count: 256)), requested: 256, window: window)
        if context.family == .amdGART {
            outcome.notes.append("a GART does not look at requester IDs: every function behind it shares one translation")
        }
        outcome.notes.append("the IOMMU knows a device only by its requester ID: a spoofer gets exactly the victim's "
                             + "mappings, which PCIe ACS source validation (not modelled) is there to prevent")
        try machine.unmap(nvme, bus, size: 4096, .bidirectional)
        return outcome
    }

    public static let blockedDomain = AttackScenario(
        name: "blocked-domain",
        summary: "a device whose group was moved to a blocked domain keeps trying its old mappings and memory"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "blocked-domain", context: context, attempted:
            "nic0 maps a secret and warms its IOTLB entry; its group is attached to a blocked domain; the device reads and "
            + "writes its old bus address, the secret by physical address and the USB RMRR; the DMA API must refuse it")
        let nic = try machine.dma("nic0")
        guard let group = nic.managed?.group else { throw .invalidSpecification("nic0 has no IOMMU group") }
        let secret = try machine.secret()
        let bus = try machine.map(nic, secret, size: 4096, .bidirectional)
        _ = nic.device.engine.read(from: bus, count: 64)
        let blocked: IOMMUDomain
        do { blocked = try machine.platform.subsystem.makeDomain(.blocked, for: nic.device.address) } catch {
            outcome.unsupported = "\(error)"
            outcome.notes.append("\(context.family) cannot make a blocked domain: \(error)")
            try machine.unmap(nic, bus, size: 4096, .bidirectional)
            return outcome
        }
        do throws(IOMMUError) { try machine.platform.subsystem.attach(group, to: blocked, owner: "attack") } catch { throw .iommu(error) }
        for target in [bus.value, secret.value, 0x7F00_0000] {
            outcome.record(nic.device.engine.read(from: IOVirtualAddress(target), count: 64).result, requested: 64, window: nil)
            outcome.record(nic.device.engine.write(to: IOVirtualAddress(target), bytes: [UInt8](repeating: 0xEE, count: 64)),
                           requested: 64, window: nil)
        }
        do {
            _ = try nic.map(secret, size: 64, direction: .toDevice)
            outcome.notes.append("the DMA API mapped for a device in a blocked domain")
            outcome.bytesLeakedUndocumented += 64
        } catch { outcome.notes.append("the DMA API refused the blocked device: \(error)") }
        do throws(IOMMUError) { try machine.platform.subsystem.release(group, owner: "attack") } catch { throw .iommu(error) }
        blocked.destroy()
        try machine.unmap(nic, bus, size: 4096, .bidirectional)
        return outcome
    }

    public static let reservedRegions = AttackScenario(
        name: "reserved-regions",
        summary: "a device writes to the MSI window, the SMMU doorbell, another device's RMRR and the legacy hole"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "reserved-regions", context: context, attempted:
            "nic0 and legacy-dma read and write the x86 MSI window 0xfee00000, the software-MSI doorbell 0x8000000, "
            + "usb-xhci's RMRR 0x7f000000 and the legacy range 0xa0000")
        let targets: [UInt64] = [0xFEE0_0000, 0xFEE0_1000, 0x0800_0000, 0x7F00_0000, 0x7F0F_F000, 0xA_0000]
        let usb = try machine.dma("usb-xhci")
        for name in ["nic0", "legacy-dma"] {
            let dma = try machine.dma(name)
            for target in targets {
                var window = machine.passThroughWindow(dma, target)
                if window == nil, (0x7F00_0000...0x7F0F_FFFF).contains(target), machine.shareGroup(dma, usb) { window = .sharedGroup }
                outcome.record(dma.device.engine.read(from: IOVirtualAddress(target), count: 64).result, requested: 64, window: window)
                outcome.record(dma.device.engine.write(to: IOVirtualAddress(target), bytes: [UInt8](repeating: 0xEE, count: 64)),
                               requested: 64, window: window)
            }
        }
        let own = usb.device.engine.read(from: IOVirtualAddress(0x7F00_0000), count: 64).result
        outcome.notes.append("usb-xhci reaches its own RMRR 1:1 as firmware requires: \(own.completed ? "yes" : "NO")")
        if machine.geometry(of: try machine.dma("nic0"))?.outside == .passThrough {
            outcome.notes.append("on a GART these addresses lie outside the aperture and reach memory untranslated "
                                 + "(real hardware turns MSI-window writes into interrupts before they reach memory)")
        }
        return outcome
    }
}
