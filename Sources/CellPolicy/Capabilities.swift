import CLibcapng

/// Capability names and sets, through libcap-ng. Used in the supervisor only (libcap-ng
/// allocates and reads /proc, so it never runs between clone and execve); the sandbox setup
/// applies the resulting bit set with raw prctl/capset calls (CCellSpawn/spawn.c) and the tests
/// check /proc/self/status, whatever the return codes say.
public enum Capabilities {
    /// `CAP_NET_BIND_SERVICE`, `cap_net_bind_service` or `NET_BIND_SERVICE` → its number.
    public static func number(_ name: String) -> Int? {
        var bare = name.lowercased()
        if bare.hasPrefix("cap_") { bare.removeFirst(4) }
        guard !bare.isEmpty else { return nil }
        let n = capng_name_to_capability(bare)
        return n >= 0 ? Int(n) : nil
    }

    /// The canonical name, `CAP_NET_BIND_SERVICE`.
    public static func name(_ number: Int) -> String {
        guard let raw = capng_capability_to_name(UInt32(number)) else { return "CAP_\(number)" }
        return "CAP_" + String(cString: raw).uppercased()
    }

    /// The bit set for `names`; throws on the first unknown name.
    public static func set(_ names: [String]) throws(LaunchError) -> UInt64 {
        var bits: UInt64 = 0
        for name in names {
            guard let n = number(name), n < 64 else {
                throw .invalid("unknown capability '\(name)' (e.g. CAP_NET_BIND_SERVICE, CAP_CHOWN; see capabilities(7))")
            }
            bits |= 1 << UInt64(n)
        }
        return bits
    }

    public static func names(_ bits: UInt64) -> [String] {
        (0..<64).filter { bits & (1 << UInt64($0)) != 0 }.map(name)
    }
}
