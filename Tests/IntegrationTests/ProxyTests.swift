import Foundation
import Glibc
import Testing

/// `--net proxy`: the sandbox reaches the network only through cell-proxy, by name, to the
/// allow-list. Every server here is on the host's 127.0.0.1; the names allowed.test and
/// denied.test are pointed at it through the proxy's test-only hosts file (CELL_PROXY_HOSTS),
/// so that nothing leaves the machine. A name that resolves to 127.0.0.1 is exactly what the
/// proxy must refuse by default: `--allow-private-addresses` lets the tests through.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct ProxyTests {
    /// An HTTP server on the host's 127.0.0.1 serving /page.txt, and the hosts file naming it.
    final class HostServer {
        let process = Process()
        let directory: String
        let hosts: String
        let port: UInt16

        init() throws {
            directory = try Sandbox.writableHostDirectory()
            hosts = directory + "/hosts"
            try "hello from the allowed host\n".write(toFile: directory + "/page.txt", atomically: true, encoding: .utf8)
            try "127.0.0.1 allowed.test denied.test\n".write(toFile: hosts, atomically: true, encoding: .utf8)
            chmod(hosts, 0o644)
            chmod(directory + "/page.txt", 0o644)
            let portFile = directory + "/port"
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", """
                import http.server, functools, sys
                handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
                handler.func.log_message = lambda *a: None
                server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
                open(sys.argv[2], 'w').write(str(server.server_port))
                server.serve_forever()
                """, directory, portFile]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var port: UInt16?
            _ = eventually { port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { UInt16($0) }; return port != nil }
            self.port = try #require(port, "the host's test server did not start")
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }

        /// `cell run` with the hosts file in cell's environment.
        func run(_ script: String, _ options: [String]) -> Sandbox.Result {
            Sandbox.run(["python3", "-c", script], options: options,
                        environment: ["PATH": "/usr/bin:/bin", "CELL_PROXY_HOSTS": hosts])
        }
    }

    /// Python that fetches each URL through the proxy variables and prints status and body.
    static func fetch(_ urls: [String]) -> String {
        """
        import urllib.request, urllib.error
        for url in \(urls):
            try:
                print(urllib.request.urlopen(url, timeout=10).read().decode().strip())
            except urllib.error.HTTPError as e:
                print(e.code, e.read().decode().strip())
            except Exception as e:
                print('error', type(e).__name__)
        """
    }

    @Test("an allowed name reaches the host's server through the HTTP proxy only with --allow-private-addresses; each attempt is a net event")
    func allowedName() throws {
        let server = try HostServer()
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let url = "http://allowed.test:\(server.port)/page.txt"
        let allowed = server.run(Self.fetch([url]), ["--allow-net", "allowed.test:\(server.port)", "--allow-private-addresses", "--audit-log", dir + "/a.jsonl"])
        #expect(allowed.status == 0 && allowed.stdout == "hello from the allowed host\n", "\(allowed.stdout) \(allowed.stderr)")
        // The same name without the option resolves to 127.0.0.1: this machine, refused.
        let refused = server.run(Self.fetch([url]), ["--allow-net", "allowed.test:\(server.port)", "--audit-log", dir + "/a.jsonl"])
        #expect(refused.stdout == "403 cell: 127.0.0.1 is a loopback address (--allow-private-addresses allows it)\n", "\(refused.stdout) \(refused.stderr)")
        let events = try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains(#""event":"net""#) }
        #expect(events.count == 2, "\(events)")
        #expect(events.first?.contains(#""decision":"allowed""#) == true && events.first?.contains(#""address":"127.0.0.1""#) == true)
        #expect(events.first?.contains(#""bytes_in":0"#) == false, "the page's bytes are counted: \(events.first ?? "")")
        #expect(events.last?.contains(#""decision":"refused""#) == true && events.last?.contains("loopback address") == true)
    }

    @Test("an unlisted name, an unlisted port, an unlisted IP literal and 127.0.0.1 itself are refused, and the summary counts them")
    func refusals() throws {
        let server = try HostServer()
        let p = server.port
        // NO_PROXY would send 127.0.0.1 past the proxy (to the sandbox's own lo): not here.
        let r = server.run("import os\nfor k in ('NO_PROXY', 'no_proxy'): os.environ.pop(k)\n" + Self.fetch(["http://denied.test:\(p)/page.txt", "http://allowed.test:\(p + 1)/page.txt",
                                       "http://127.0.0.2:\(p)/page.txt", "http://127.0.0.1:\(p)/page.txt"]),
                           ["--allow-net", "allowed.test:\(p)", "--allow-net", "127.0.0.1:\(p)"])
        // 127.0.0.1 is listed as a literal, and refused still: it is this machine's address.
        #expect(r.stdout == """
            403 cell: denied.test is not on the allow-list
            403 cell: port \(p + 1) of allowed.test is not on the allow-list
            403 cell: the address 127.0.0.2 is not on the allow-list (only listed literals are)
            403 cell: 127.0.0.1 is a loopback address (--allow-private-addresses allows it)

            """, "\(r.stderr)")
        #expect(r.stderr.contains("4 connections refused:"), "\(r.stderr)")
    }

    @Test("CONNECT and SOCKS5 (names resolved by the proxy) are filtered the same way")
    func connectAndSocks() throws {
        let server = try HostServer()
        let script = """
            import socket
            def connect_tunnel(host):
                s = socket.create_connection(('127.0.0.1', 3128), timeout=10)
                s.sendall(f'CONNECT {host}:\(server.port) HTTP/1.1\\r\\nHost: {host}:\(server.port)\\r\\n\\r\\n'.encode())
                status = s.recv(100).split(b'\\r\\n')[0].decode()
                if ' 200 ' not in status: return status
                s.sendall(b'GET /page.txt HTTP/1.0\\r\\n\\r\\n')
                return b''.join(iter(lambda: s.recv(4096), b'')).split(b'\\r\\n\\r\\n', 1)[1].decode().strip()
            def socks(host):
                s = socket.create_connection(('127.0.0.1', 1080), timeout=10)
                s.sendall(b'\\x05\\x01\\x00'); assert s.recv(2) == b'\\x05\\x00'
                name = host.encode()
                s.sendall(b'\\x05\\x01\\x00\\x03' + bytes([len(name)]) + name + (\(server.port)).to_bytes(2, 'big'))
                reply = s.recv(10)
                if reply[1] != 0: return f'socks reply {reply[1]}'
                s.sendall(b'GET /page.txt HTTP/1.0\\r\\n\\r\\n')
                return b''.join(iter(lambda: s.recv(4096), b'')).split(b'\\r\\n\\r\\n', 1)[1].decode().strip()
            for f in (connect_tunnel, socks):
                for host in ('allowed.test', 'denied.test'):
                    print(f.__name__, host, f(host))
            """
        let r = server.run(script, ["--allow-net", "allowed.test:\(server.port)", "--allow-private-addresses"])
        #expect(r.stdout == """
            connect_tunnel allowed.test hello from the allowed host
            connect_tunnel denied.test HTTP/1.1 403 Forbidden
            socks allowed.test hello from the allowed host
            socks denied.test socks reply 2

            """, "\(r.stderr)")
    }

    @Test("names a client may sneak past a wildcard (a NUL, non-ASCII, an address in another form, 3,000 bytes) are refused, each one recorded")
    func sneakyNames() throws {
        let server = try HostServer()
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import socket
            def socks(name):
                s = socket.create_connection(('127.0.0.1', 1080), timeout=10)
                s.sendall(b'\\x05\\x01\\x00'); s.recv(2)
                s.sendall(b'\\x05\\x01\\x00\\x03' + bytes([len(name)]) + name + (\(server.port)).to_bytes(2, 'big'))
                return s.recv(10)[1]
            def http(host):
                s = socket.create_connection(('127.0.0.1', 3128), timeout=10)
                s.sendall(b'GET http://' + host + b':\(server.port)/page.txt HTTP/1.1\\r\\n\\r\\n')
                return s.recv(12)[9:12].decode()
            print([socks(n) for n in (b'localhost\\x00.wild.test', b'127.0.0.1\\x00.wild.test', '\\u212a.wild.test'.encode(), b'2130706433')])
            print(http(b'a' * 3000 + b'.wild.test'))
            """
        let r = server.run(script, ["--allow-net", "*.wild.test:\(server.port)", "--allow-private-addresses", "--audit-log", dir + "/a.jsonl"])
        #expect(r.stdout == "[2, 2, 2, 2]\n403\n", "\(r.stderr)")
        let events = try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains(#""event":"net""#) }
        #expect(events.count == 5 && events.allSatisfy { $0.contains(#""decision":"refused""#) }, "\(events)")
        #expect(events.allSatisfy { $0.utf8.count < 1024 }, "each event is bounded")
    }

    @Test("a program that ignores the proxy variables reaches nothing: only lo, no DNS, the host's loopback is the sandbox's own")
    func noOtherWayOut() throws {
        let server = try HostServer()
        // Only lo exists, and no route but lo's: no other destination can even be tried (the test
        // reads the routing table rather than send to an address outside). The host's server
        // port on the sandbox's own 127.0.0.1 is closed; names do not resolve.
        let script = """
            import socket
            print(sorted(n for _, n in socket.if_nameindex()))
            print(open('/proc/net/route').read().count('\\n') - 1, 'routes')
            try: socket.create_connection(('127.0.0.1', \(server.port)), timeout=3); print('reached')
            except OSError as e: print('127.0.0.1', type(e).__name__)
            try: socket.getaddrinfo('allowed.test', 80); print('resolved')
            except OSError as e: print('dns', type(e).__name__)
            """
        let r = server.run(script, ["--allow-net", "allowed.test:\(server.port)", "--allow-private-addresses"])
        #expect(r.stdout == "['lo']\n0 routes\n127.0.0.1 ConnectionRefusedError\ndns gaierror\n", "\(r.stderr)")
    }

    @Test("a connection still open when the sandbox ends (a half-closed tunnel) is recorded, and ends")
    func openAtTheEnd() throws {
        let server = try HostServer()
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import os, socket
            s = socket.create_connection(('127.0.0.1', 3128), timeout=10)
            s.sendall(b'CONNECT allowed.test:\(server.port) HTTP/1.1\\r\\n\\r\\n')
            print(s.recv(100).split(b'\\r\\n')[0].decode(), flush=True)
            os._exit(0)  # the tunnel is still open
            """
        let r = server.run(script, ["--allow-net", "allowed.test:\(server.port)", "--allow-private-addresses", "--audit-log", dir + "/a.jsonl"])
        #expect(r.stdout == "HTTP/1.1 200 Connection established\n", "\(r.stderr)")
        let events = try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains(#""event":"net""#) }
        #expect(events.count == 1 && events.first?.contains(#""decision":"allowed""#) == true, "\(events)")
    }

    @Test("cell-proxy never outlives its sandbox, even when cell is killed")
    func proxyStopsWithTheSandbox() throws {
        let marker = "m\(Int.random(in: 100_000...999_999)).test"
        let sandbox = try RunningSandbox(["sh", "-c", "echo ready; sleep 30"], options: ["--allow-net", marker])
        #expect(sandbox.waitFor("ready"), "\(sandbox.stderr)")
        #expect(!hostProcesses(containing: "--allow\0\(marker)").isEmpty, "no cell-proxy found for the running sandbox")
        sandbox.signal(SIGKILL)
        _ = sandbox.wait()
        let left = hostProcessesLeft(containing: "--allow\0\(marker)")
        #expect(left.isEmpty, "cell-proxy is still running: \(left)")
    }

    @Test("network options' misuses are refused with 125", arguments: [
        (["--allow-host-loopback"], "--allow-host-loopback applies to user-mode networking (--net user), not to --net none"),
        (["--net-helper", "pasta"], "--net-helper applies to user-mode networking"),
        (["--allow-net", "pypi.org", "--net", "user"], "cannot be combined with --net user"),
        (["--allow-net", "pypi.org", "--publish", "8080:80"], "--publish needs user-mode networking"),
        (["--allow-net", "pypi.org", "--isolation", "landlock"], "--isolation landlock cannot give --net proxy"),
        (["--allow-private-addresses"], "--allow-private-addresses applies to --net proxy"),
        (["--allow-net", "bad name"], "--allow-net 'bad name': not a host name"),
        (["--allow-net", "pypi.org:0"], "a port must be 1-65535"),
    ])
    func misuse(options: [String], message: String) {
        let r = Sandbox.run(["true"], options: options)
        #expect(r.status == 125 && r.stderr.contains(message), "\(r.stderr)")
    }
}
