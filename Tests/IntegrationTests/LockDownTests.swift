import Foundation
import Testing

/// Capabilities, no_new_privs and the seccomp filters, checked from inside real sandboxes.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LockDownTests {
    /// Python that reads /proc/self/status fields.
    static let statusFields = """
    s = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
    print(' '.join(s[k].strip() for k in ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Seccomp_filters']))
    """

    @Test("every capability set is empty, no_new_privs is 1, the seccomp filters are loaded")
    func statusShowsTheLockDown() {
        let r = Sandbox.run(["python3", "-c", Self.statusFields])
        #expect(r.status == 0, "\(r.stderr)")
        // default: one filter (the baseline rules are inside it); strict: the baseline apart.
        #expect(r.stdout == Array(repeating: "0000000000000000", count: 5).joined(separator: " ") + " 1 2 1\n")
        let strict = Sandbox.run(["python3", "-c", Self.statusFields], options: ["--seccomp", "strict"])
        #expect(strict.stdout == Array(repeating: "0000000000000000", count: 5).joined(separator: " ") + " 1 2 2\n")
    }

    @Test("pid 1 (cell-init) is locked down as the command is")
    func initIsLockedDownToo() {
        // pid 1 loads the filters, then starts the command and executes cell-init: both hold them.
        let script = Self.statusFields.replacingOccurrences(of: "/proc/self/status", with: "/proc/1/status")
        for (options, filters) in [([String](), "1"), (["--seccomp", "strict"], "2")] {
            let r = Sandbox.run(["python3", "-c", script], options: options)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == Array(repeating: "0000000000000000", count: 5).joined(separator: " ") + " 1 2 \(filters)\n", "\(options)")
        }
    }

    @Test("--as-caller: your own ids inside, and the same lock-down for the command and for pid 1")
    func asCaller() {
        // The setup runs as your uid with every capability in the ambient set; the lock-down
        // must leave nothing of it, in any set, for pid 1 or the command.
        let ids = Sandbox.run(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"], options: ["--as-caller"])
        #expect(ids.status == 0, "\(ids.stderr)")
        let me = Sandbox.isRoot ? Sandbox.unprivilegedID : String(getuid())
        let group = Sandbox.isRoot ? Sandbox.unprivilegedID : String(getgid())
        let map = ids.stdout.split(separator: "\n").last.map { $0.split(separator: " ").joined(separator: " ") }
        #expect(ids.stdout.hasPrefix("\(me)\n\(group)\n") && map == "\(me) \(me) 1", "\(ids.stdout)")
        let empty = Array(repeating: "0000000000000000", count: 5).joined(separator: " ") + " 1 2 1\n"
        #expect(Sandbox.run(["python3", "-c", Self.statusFields], options: ["--as-caller"]).stdout == empty)
        let pid1 = Self.statusFields.replacingOccurrences(of: "/proc/self/status", with: "/proc/1/status")
        #expect(Sandbox.run(["python3", "-c", pid1], options: ["--as-caller"]).stdout == empty)
        // A kept capability reaches a non-root command too (through the ambient set), and works.
        let kept = Sandbox.run(["python3", "-c", Self.statusFields], options: ["--as-caller", "--cap-add", "CAP_NET_RAW"])
        #expect(kept.stdout == Array(repeating: "0000000000002000", count: 5).joined(separator: " ") + " 1 2 1\n", "\(kept.stderr)")
        let raw = "import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')\nexcept PermissionError:\n    print('refused')"
        #expect(Sandbox.run(["python3", "-c", raw], options: ["--as-caller", "--cap-add", "net_raw"]).stdout == "raw\n")
        #expect(Sandbox.run(["python3", "-c", raw], options: ["--as-caller"]).stdout == "refused\n")
    }

    @Test("--cap-add keeps exactly the named capability; unknown names are refused")
    func capAdd() {
        let r = Sandbox.run(["python3", "-c", Self.statusFields], options: ["--cap-add", "CAP_NET_BIND_SERVICE"])
        #expect(r.stdout == Array(repeating: "0000000000000400", count: 5).joined(separator: " ") + " 1 2 1\n", "\(r.stderr)")
        // The capability is real: a raw socket needs CAP_NET_RAW.
        let raw = "import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')\nexcept PermissionError:\n    print('refused')"
        #expect(Sandbox.run(["python3", "-c", raw], options: ["--cap-add", "net_raw"]).stdout == "raw\n")
        #expect(Sandbox.run(["python3", "-c", raw]).stdout == "refused\n")
        // In either identity, a kept CAP_NET_BIND_SERVICE is effective for the command, and it
        // binds port 80 (the sandbox's own network namespace: loopback only).
        let bind80 = "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 80)); print('bound')"
        for identity in ["--as-caller", "--as-root"] {
            let kept = Sandbox.run(["sh", "-c", "grep CapEff /proc/self/status; python3 -c \"\(bind80)\""],
                                   options: [identity, "--cap-add", "CAP_NET_BIND_SERVICE"])
            #expect(kept.stdout == "CapEff:\t0000000000000400\nbound\n", "\(identity): \(kept.stderr)")
        }
        let bad = Sandbox.run(["true"], options: ["--cap-add", "CAP_MAKE_COFFEE"])
        #expect(bad.status == 125)
        #expect(bad.stderr.contains("'CAP_MAKE_COFFEE' is not a capability"))
    }

    /// x86_64 numbers of the calls the default policy denies, with arguments that make each
    /// fail (or succeed) harmlessly when it is not filtered.
    static let denied: [(name: String, nr: Int, args: [UInt64], differsOutside: Bool)] = [
        ("mount", 165, [0, 0, 0, 0, 0], true), ("umount2", 166, [0, 0], true), ("pivot_root", 155, [0, 0], true),
        ("open_tree", 428, [0, 0, 0], true), ("move_mount", 429, [0, 0, 0, 0, 0], true), ("fsopen", 430, [0, 0], true),
        ("fsconfig", 431, [0, 0, 0, 0, 0], true), ("fsmount", 432, [0, 0, 0], true), ("fspick", 433, [0, 0, 0], true),
        ("mount_setattr", 442, [0, 0, 0, 0, 0], true), ("ptrace", 101, [2, 0, 0, 0], true),
        ("process_vm_readv", 310, [0, 0, 0, 0, 0, 0], true), ("process_vm_writev", 311, [0, 0, 0, 0, 0, 0], true),
        ("kexec_load", 246, [0, 0, 0, 0], false), ("init_module", 175, [0, 0, 0], false),
        ("finit_module", 313, [0, 0, 0], false), ("delete_module", 176, [0, 0], false), ("bpf", 321, [0, 0, 0], false),
        ("perf_event_open", 298, [0, 0, 0, 0, 0], true), ("keyctl", 250, [0, 0, 0, 0, 0], true),
        ("add_key", 248, [0, 0, 0, 0, 0], true), ("request_key", 249, [0, 0, 0, 0], true),
        ("userfaultfd", 323, [1], true), ("io_uring_setup", 425, [0, 0], true),
        ("open_by_handle_at", 304, [0, 0, 0], false), ("name_to_handle_at", 303, [0, 0, 0, 0, 0], true),
        ("iopl", 172, [0], true), ("ioperm", 173, [0, 0, 0], true), ("swapon", 167, [0, 0], false),
        ("swapoff", 168, [0], false), ("reboot", 169, [0, 0, 0, 0], false), ("acct", 163, [0], false),
        ("settimeofday", 164, [0, 0], false), ("clock_settime", 227, [0, 0], true), ("adjtimex", 159, [0], true),
        ("quotactl", 179, [0, 0, 0, 0], true), ("syslog", 103, [0, 0, 0], false), ("uselib", 134, [0], true),
        ("setns", 308, [0, 0], true), ("unshare", 272, [0x1000_0000], true),
        ("personality", 135, [0x0040000], true),
    ]

    /// Runs each call and prints "name errno" (0 for success).
    static func probe(_ calls: [(name: String, nr: Int, args: [UInt64], differsOutside: Bool)]) -> String {
        let list = calls.map { "('\($0.name)', \($0.nr), [\($0.args.map(String.init).joined(separator: ", "))])" }.joined(separator: ", ")
        return """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        for name, nr, args in [\(list)]:
            ctypes.set_errno(0)
            r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
            print(name, ctypes.get_errno() if r == -1 else 0, flush=True)
        """
    }

    static func parse(_ output: String) -> [String: Int] {
        Dictionary(output.split(separator: "\n").compactMap { line -> (String, Int)? in
            let f = line.split(separator: " ")
            return f.count == 2 ? (String(f[0]), Int(f[1]) ?? -1) : nil
        }, uniquingKeysWith: { a, _ in a })
    }

    @Test("each call of the default deny set returns EPERM inside, and most fail differently (or work) outside")
    func defaultDenySet() throws {
        #if arch(x86_64)
        let script = Self.probe(Self.denied)
        let inside = Self.parse(Sandbox.run(["python3", "-c", script]).stdout)
        // Outside: root of a plain user namespace, which holds every capability of it.
        let outsideRun = Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Urm", "python3", "-c", script])
        let outside = Self.parse(outsideRun.stdout)
        #expect(inside.count == Self.denied.count, "inside: \(inside)")
        #expect(outside.count == Self.denied.count, "outside: \(outsideRun.stdout) \(outsideRun.stderr)")
        for call in Self.denied {
            #expect(inside[call.name] == 1, "\(call.name) inside: \(String(describing: inside[call.name]))")
            if call.differsOutside {
                #expect(outside[call.name] != 1, "\(call.name) outside also gave EPERM (\(outsideRun.stdout)): the check would prove nothing")
            }
        }
        #endif
    }

    @Test("clone3 gives ENOSYS (libc falls back to clone), and clone with a namespace flag EPERM")
    func cloneFlags() {
        #if arch(x86_64)
        let calls: [(name: String, nr: Int, args: [UInt64], differsOutside: Bool)] = [
            ("clone3", 435, [0, 0], true),
            ("clone_newuser", 56, [0x1000_0000 | 17, 0, 0, 0, 0], true),
            ("clone_newnet", 56, [0x4000_0000 | 17, 0, 0, 0, 0], true),
        ]
        // The clone calls would fork; the probe exits in the child if they succeed (r == 0).
        let script = Self.probe(calls).replacingOccurrences(of: "    print(name", with: "    (r == 0 and name.startswith('clone_')) and libc._exit(0)\n    print(name")
        let r = Self.parse(Sandbox.run(["python3", "-c", script]).stdout)
        #expect(r["clone3"] == 38)
        #expect(r["clone_newuser"] == 1)
        #expect(r["clone_newnet"] == 1)
        #endif
    }

    @Test("TIOCSTI and TIOCLINUX are denied, with or without bits above 32 in the request")
    func terminalInjection() {
        #if arch(x86_64)
        let calls: [(name: String, nr: Int, args: [UInt64], differsOutside: Bool)] = [
            ("tiocsti", 16, [0, 0x5412, 0], true), ("tiocsti_high", 16, [0, 0x1_0000_5412, 0], true),
            ("tioclinux", 16, [0, 0x541C, 0], true), ("tioclinux_high", 16, [0, 0xffff_0000_0000_541C, 0], true),
            ("tiocgwinsz", 16, [0, 0x5413, 0], true),
        ]
        let inside = Self.parse(Sandbox.run(["python3", "-c", Self.probe(calls)]).stdout)
        #expect(inside["tiocsti"] == 1 && inside["tiocsti_high"] == 1, "\(inside)")
        #expect(inside["tioclinux"] == 1 && inside["tioclinux_high"] == 1, "\(inside)")
        // Another ioctl on the same descriptor goes through to the kernel (stdin is /dev/null: ENOTTY).
        #expect(inside["tiocgwinsz"] == 25, "\(inside)")
        #endif
    }

    @Test("a nested user namespace cannot be created, whatever the call")
    func noNestedUserNamespace() {
        let r = Sandbox.run(["sh", "-c", "cat /proc/sys/user/max_user_namespaces; unshare -U true 2>/dev/null || echo refused"])
        #expect(r.stdout == "0\nrefused\n", "\(r.stderr)")
        // The host's setting is untouched.
        #expect((try? String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8)) != "0\n")
    }

    @Test("a denied call through the x32 or i386 ABI kills the process instead of slipping through")
    func otherABIsAreKilled() throws {
        #if arch(x86_64)
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/abi-probe.c").path
        let cc = Sandbox.execute(["cc", "-O1", "-o", "\(dir)/abi-probe", source])
        try #require(cc.status == 0, "cannot compile the probe: \(cc.stderr)")
        chmod("\(dir)/abi-probe", 0o755)
        for abi in ["i386", "x32"] {
            // Outside the sandbox the call returns (an error: no privilege, or no x32 support).
            let outside = Sandbox.execute(Sandbox.dropPrivileges + ["\(dir)/abi-probe", abi])
            #expect(outside.status == 0 && outside.stdout.hasPrefix("returned -1 errno"), "\(abi): \(outside.stdout)\(outside.stderr)")
            let inside = Sandbox.run(["\(dir)/abi-probe", abi], options: ["--ro-bind", dir])
            #expect(inside.status == 128 + SIGSYS, "\(abi): \(inside.status) \(inside.stdout)\(inside.stderr)")
            #expect(inside.stdout.isEmpty)
        }
        let native = Sandbox.run(["\(dir)/abi-probe", "native"], options: ["--ro-bind", dir])
        #expect(native.stdout == "returned -1 errno EPERM\n", "\(native.stderr)")
        #endif
    }

    @Test("everyday work runs under the default policy: a pipeline, python3, gcc, git")
    func everydayWorkload() {
        let script = """
        set -e
        seq 1 100 | sort -rn | head -1
        python3 -c 'import hashlib, subprocess, threading; print(subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip())'
        cd /tmp && printf 'int main(void){return 42;}\\n' > t.c && gcc -o t t.c && { ./t || echo "gcc-built:$?"; }
        git init -q repo && cd repo && git -c user.email=a@b -c user.name=n commit -q --allow-empty -m first && git log --format=%s
        """
        let r = Sandbox.run(["sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "100\nsub\ngcc-built:42\nfirst\n")
    }

    @Test("strict: an allow-list that still runs a shell and python, and denies the rest")
    func strictPolicy() {
        let shell = Sandbox.run(["sh", "-c", "echo hi | tr a-z A-Z; python3 -c 'print(1)'"], options: ["--seccomp", "strict"])
        #expect(shell.status == 0, "\(shell.stderr)")
        #expect(shell.stdout == "HI\n1\n")
        #if arch(x86_64)
        let probe = Self.probe([("mount", 165, [0, 0, 0, 0, 0], true), ("kcmp", 312, [0, 0, 0, 0, 0], true), ("getppid", 110, [], true)])
        let calls = Self.parse(Sandbox.run(["python3", "-c", probe], options: ["--seccomp", "strict"]).stdout)
        #expect(calls["mount"] == 1)
        #expect(calls["kcmp"] == 1) // not on the allow-list (the default policy allows it)
        #expect(calls["getppid"] == 0)
        #expect(Self.parse(Sandbox.run(["python3", "-c", probe]).stdout)["kcmp"] != 1)
        #endif
    }

    @Test("--deny-syscall and --allow-syscall adjust the policy; unknown names are refused with a hint")
    func adjustments() {
        let mkdir = Sandbox.run(["sh", "-c", "mkdir /tmp/x 2>&1; echo $?"], options: ["--deny-syscall", "mkdir:EACCES", "--deny-syscall", "mkdirat:EACCES"])
        #expect(mkdir.stdout.contains("Permission denied"), "\(mkdir.stdout)")
        let bad = Sandbox.run(["true"], options: ["--deny-syscall", "mkdirr"])
        #expect(bad.status == 125)
        #expect(bad.stderr == "cell: seccomp policy 'default': unknown system call 'mkdirr'; did you mean 'mkdir'?\n")
        let group = Sandbox.run(["true"], options: ["--allow-syscall", "@nonsense"])
        #expect(group.status == 125)
        #expect(group.stderr.contains("unknown system call group '@nonsense'"))
    }

    @Test("a Docker seccomp profile (containers-common's) gives Docker's decisions")
    func dockerProfile() throws {
        #if arch(x86_64)
        let path = "/usr/share/containers/seccomp.json"
        try #require(FileManager.default.fileExists(atPath: path), "Scripts/bootstrap installs golang-github-containers-common")
        let calls: [(name: String, nr: Int, args: [UInt64], differsOutside: Bool)] = [
            ("getpid", 39, [], true),
            ("mount", 165, [0, 0, 0, 0, 0], true),                 // allowed: the kernel answers EFAULT
            ("add_key", 248, [0, 0, 0, 0, 0], true),               // not listed: the default, errnoRet 38
            ("open_by_handle_at", 304, [0, 0, 0], true),           // excluded-cap rule: EPERM
            ("bpf", 321, [0, 0, 0], true),                         // EPERM without CAP_SYS_ADMIN
            ("socket_audit", 41, [16, 3, 9], true),                // netlink audit: EINVAL
            ("personality_query", 135, [0xffff_ffff], true),       // allowed value
            ("personality_norandom", 135, [0x0040000], true),      // not allowed: the default
            ("chroot", 161, [0], true),                            // EPERM without CAP_SYS_CHROOT
        ]
        let script = Self.probe(calls)
        let r = Self.parse(Sandbox.run(["python3", "-c", script], options: ["--seccomp-json", path]).stdout)
        #expect(r["getpid"] == 0)
        #expect(r["mount"] == 14)
        #expect(r["add_key"] == 38)
        #expect(r["open_by_handle_at"] == 1)
        #expect(r["bpf"] == 1)
        #expect(r["socket_audit"] == 22)
        #expect(r["personality_query"] == 0)
        #expect(r["personality_norandom"] == 38)
        #expect(r["chroot"] == 1)
        // With the capability kept, the include-cap rule allows chroot: the kernel answers
        // (EFAULT for a null path) instead of the filter.
        let withCap = Self.parse(Sandbox.run(["python3", "-c", script], options: ["--seccomp-json", path, "--cap-add", "CAP_SYS_CHROOT"]).stdout)
        #expect(withCap["chroot"] == 14)
        #endif
    }
}
