import CellPolicy
import Glibc

/// The user the command is inside: name, ids, home and shell, and the `/etc/passwd` and
/// `/etc/group` the sandbox gets, which name that user, root and nobody — nobody else of the
/// host (inside, every other id shows as the overflow id, nobody/nogroup, anyway).
public struct SandboxUser: Equatable, Sendable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var groupName: String
    /// Where the fresh, empty home is mounted, and `HOME`.
    public var home: String
    public var shell: String

    public static let root = SandboxUser(name: "root", uid: 0, gid: 0, groupName: "root", home: "/root", shell: "/bin/sh")
    static let nobodyUID: UInt32 = 65534

    /// The user for `identity`: root, or the caller with ids `uid`/`gid` as the host's files name
    /// them. The files are read directly: the release `cell` is a static binary, and glibc's
    /// getpwuid cannot load NSS modules there. A uid they lack is named by `$USER` or, failing
    /// that, by its number, with `$HOME` (or `/`) as its home.
    public static func inside(_ identity: SandboxIdentity, uid: UInt32, gid: UInt32,
                              passwd: String?, group: String?, environment: [(name: String, value: String)]) -> SandboxUser {
        if identity == .root || uid == 0 { return .root }
        func variable(_ name: String) -> String? { environment.last { $0.name == name }?.value }
        let entry = passwd.flatMap { entryFields($0, id: uid, idField: 2, count: 7) }
        let name = entry.map { $0[0] }.flatMap(validName) ?? variable("USER").flatMap(validName) ?? String(uid)
        let home = entry.flatMap { validPath($0[5]) } ?? variable("HOME").flatMap(validPath) ?? "/"
        let shell = entry.flatMap { validPath($0[6]) } ?? "/bin/sh"
        let groupName = group.flatMap { entryFields($0, id: gid, idField: 2, count: 4) }.map { $0[0] }.flatMap(validName)
            ?? (gid == nobodyUID ? "nogroup" : String(gid))
        return SandboxUser(name: name, uid: uid, gid: gid, groupName: groupName, home: home, shell: shell)
    }

    /// The sandbox's /etc/passwd: root, this user, nobody.
    public var passwdFile: String {
        var lines = ["root:x:0:0:root:/root:/bin/sh"]
        if uid != 0 && uid != Self.nobodyUID { lines.append("\(name):x:\(uid):\(gid):\(name):\(home):\(shell)") }
        let nobodyHome = uid == Self.nobodyUID ? home : "/nonexistent"
        lines.append("\(uid == Self.nobodyUID ? name : "nobody"):x:65534:\(uid == Self.nobodyUID ? gid : 65534):nobody:\(nobodyHome):/usr/sbin/nologin")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The sandbox's /etc/group: root, this user's group, nogroup.
    public var groupFile: String {
        var lines = ["root:x:0:"]
        if gid != 0 && gid != Self.nobodyUID { lines.append("\(groupName):x:\(gid):") }
        lines.append("\(gid == Self.nobodyUID ? groupName : "nogroup"):x:65534:")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The fields of the first line whose field `idField` is `id`, if it has `count` fields.
    static func entryFields(_ file: String, id: UInt32, idField: Int, count: Int) -> [String]? {
        for line in file.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count == count, UInt32(fields[idField]) == id { return fields.map(String.init) }
        }
        return nil
    }

    /// A name that can stand in passwd, group and `USER`: printable, no ':' or '/'.
    static func validName(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64,
              name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != ":" && $0 != "/" }) else { return nil }
        return name
    }

    /// An absolute path without '..', ':' or control characters, normalized.
    static func validPath(_ path: String) -> String? {
        guard path.hasPrefix("/"), path.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f && $0 != ":" }) else { return nil }
        return SandboxPath.normalize(path)
    }
}
