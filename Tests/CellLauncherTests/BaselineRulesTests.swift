import CellAudit
import CellPolicy
import Testing
@testable import CellLauncher

/// The rules every sandbox gets beside its policy — socket families, setuid files, personality,
/// calls newer than cell — checked through the decisions the audited default filter makes
/// (the same resolved rules the filter is compiled from).
struct BaselineRulesTests {
    static let decisions = try! SeccompCompiler.compileFilters(.default).decisions

    static func decide(_ name: String, _ args: [UInt64]) -> SeccompPolicy.Action {
        decisions.decide(number: Syscalls.number(name)!, args: args + Array(repeating: 0, count: 6 - args.count))
    }

    @Test("personality: exactly Docker's five values pass (in the low 32 bits, all the kernel reads)")
    func personality() {
        let allowed: Set<UInt64> = [0, 8, 0x20000, 0x20008, 0xffff_ffff]
        var values = Set(allowed)
        // Every value with at most two bits set or at most two bits clear, the known flags
        // beside bit 31 (the hole this closes), above 32 bits, and a pseudo-random spread.
        for a in 0..<32 {
            for b in a..<32 {
                let bits = UInt64(1) << UInt64(a) | UInt64(1) << UInt64(b)
                values.formUnion([bits, UInt64(1) << UInt64(a), 0xffff_ffff ^ bits, 0xffff_ffff ^ (UInt64(1) << UInt64(a))])
            }
        }
        for flag: UInt64 in [0x0040000, 0x0100000, 0x0400000, 0x0800000] { values.formUnion([flag | 0x8000_0000, flag | 0x8000_0008]) }
        values.formUnion([0x1_0000_0000, 0xffff_ffff_ffff_ffff, 0x1_0000_0008])
        var x: UInt64 = 0x9E37_79B9
        for _ in 0..<200_000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            values.insert(x >> 32)
        }
        for value in values {
            let expected: SeccompPolicy.Action = allowed.contains(value & 0xffff_ffff) ? .allow : .errno(1)
            #expect(Self.decide("personality", [value]) == expected, "personality(0x\(String(value, radix: 16)))")
        }
    }

    @Test("socket and socketpair: AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK only, however the high bits are set")
    func socketFamilies() {
        for call in ["socket", "socketpair"] {
            for family: UInt64 in 0..<64 {
                let expected: SeccompPolicy.Action = [1, 2, 10, 16].contains(family) ? .allow : .errno(97)
                #expect(Self.decide(call, [family, 1]) == expected, "\(call)(\(family))")
            }
            #expect(Self.decide(call, [0x1_0000_0028, 1]) == .errno(97), "AF_VSOCK with high bits")
            #expect(Self.decide(call, [0x1_0000_0001, 1]) == .errno(97))
        }
    }

    @Test("no setuid or setgid file: chmod family, creating opens, regular mknod; openat2 is ENOSYS")
    func setuidFiles() {
        let creat: UInt64 = 0o100, tmpfile: UInt64 = 0o20200000, regular: UInt64 = 0o100000
        for mode: UInt64 in [0o4755, 0o2755, 0o6755, 0o4000, 0x1_0000_0000 | 0o2000] {
            #expect(Self.decide("chmod", [0, mode]) == .errno(1), "chmod \(String(mode, radix: 8))")
            #expect(Self.decide("fchmod", [3, mode]) == .errno(1))
            #expect(Self.decide("fchmodat", [3, 0, mode]) == .errno(1))
            #expect(Self.decide("fchmodat2", [3, 0, mode, 0]) == .errno(1))
            #expect(Self.decide("creat", [0, mode]) == .errno(1))
            #expect(Self.decide("open", [0, creat | 1, mode]) == .errno(1))
            #expect(Self.decide("openat", [3, 0, creat | 2, mode]) == .errno(1))
            #expect(Self.decide("openat", [3, 0, tmpfile | 2, mode]) == .errno(1))
            #expect(Self.decide("mknod", [0, regular | mode, 0]) == .errno(1))
            #expect(Self.decide("mknodat", [3, 0, mode, 0]) == .errno(1), "type 0 is a regular file")
        }
        for mode: UInt64 in [0o755, 0o1777, 0o644] {
            #expect(Self.decide("chmod", [0, mode]) == .allow)
            #expect(Self.decide("openat", [3, 0, creat | 2, mode]) == .allow)
        }
        // Without O_CREAT the mode argument is garbage the kernel ignores; a FIFO's bits mean nothing.
        #expect(Self.decide("openat", [3, 0, 2, 0o4755]) == .allow)
        #expect(Self.decide("mknodat", [3, 0, 0o010000 | 0o4755, 0]) == .allow)
        #expect(Self.decide("openat2", [3, 0, 0, 24]) == .errno(38))
    }

    @Test("calls newer than libseccomp are named; those newer than cell are ENOSYS; open_tree_attr is a mount call")
    func newerCalls() {
        #expect(Syscalls.number("open_tree_attr") == 467 && Syscalls.name(467) == "open_tree_attr")
        #expect(Syscalls.number("file_setattr") == Syscalls.highestKnown)
        #expect(Syscalls.number("syscall_470") == 470 && Syscalls.number("syscall_1000") == nil && Syscalls.number("syscall_x") == nil)
        #expect(Self.decide("open_tree_attr", []) == .errno(1))
        for number in Syscalls.unknownRange {
            #expect(Self.decisions.decide(number: number, args: []) == .errno(38), "\(number)")
        }
        #expect(Self.decisions.decide(number: 1000, args: []) == .allow, "the kernel itself answers ENOSYS there")
        #expect(Self.decide("statmount", []) == .allow)
    }
}
