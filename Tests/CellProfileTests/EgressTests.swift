import CellEgress
import Testing

/// The egress allow-list and the proxy's request parsing: what `--net proxy` lets through is
/// decided by this code alone, in cell-proxy.
struct EgressRuleTests {
    func rule(_ text: String) -> EgressRule? { try? EgressRule.parse(text).get() }

    @Test("HOST[:PORT]: no port means 443 and 80; names compare without case or a trailing dot")
    func parsing() {
        #expect(rule("PyPI.org.") == EgressRule(host: "pypi.org", ports: [443, 80]))
        #expect(rule("*.pythonhosted.org:443") == EgressRule(host: "*.pythonhosted.org", ports: [443]))
        #expect(rule("192.0.2.7:8080") == EgressRule(host: "192.0.2.7", ports: [8080]))
        #expect(rule("[2001:db8::1]:443") == EgressRule(host: "2001:db8::1", ports: [443]))
        // Names the resolver would read as addresses, and non-ASCII ones, are refused too.
        for bad in ["", "bad name", "a..b", "-a.org", "pypi.org:0", "pypi.org:70000", "2001:db8::1", "[2001:db8::1", "*.", "a/b", "a@b",
                    "2130706433", "0x7f.1", "127.1", "\u{212A}.test", "*.192.0.2.1"] {
            #expect(rule(bad) == nil, "\(bad)")
        }
        // What is printed (profile show) parses back to the same rule.
        for text in ["pypi.org", "*.x.org:8443", "[2001:db8::1]:443", "192.0.2.7"] {
            #expect(rule(rule(text)!.description) == rule(text), "\(text)")
        }
    }

    @Test("*.name matches every subdomain but not the name; an IP literal matches only itself, never a name")
    func matching() {
        let wild = rule("*.pythonhosted.org")!, exact = rule("pypi.org:443")!, literal = rule("192.0.2.7")!
        #expect(wild.allows(host: "files.pythonhosted.org", port: 443) && wild.allows(host: "a.b.PythonHosted.org.", port: 80))
        #expect(!wild.allows(host: "pythonhosted.org", port: 443) && !wild.allows(host: "evilpythonhosted.org", port: 443))
        #expect(!wild.allows(host: "files.pythonhosted.org", port: 22))
        #expect(exact.allows(host: "pypi.org", port: 443) && !exact.allows(host: "pypi.org", port: 80) && !exact.allows(host: "www.pypi.org", port: 443))
        #expect(literal.allows(host: "192.0.2.7", port: 443) && !literal.allows(host: "192.0.2.8", port: 443))
        #expect(!rule("localhost")!.allows(host: "127.0.0.1", port: 443))
        // What a SOCKS client may send as a name: a NUL (C would cut the name there), a character
        // that lower-cases to ASCII, an address in another form. None matches anything.
        for sneaky in ["localhost\0.pythonhosted.org", "198.51.100.7\0.pythonhosted.org", "\u{212A}.pythonhosted.org", "2130706433"] {
            #expect(!wild.allows(host: sneaky, port: 443), "\(sneaky)")
            #expect(EgressPolicy(rules: [wild]).refusal(host: sneaky, port: 443) == "not a host name nor an IP address")
        }
        #expect(EgressRule.canonicalHost("Files.PythonHosted.ORG.") == "files.pythonhosted.org")
        #expect(EgressRule.canonicalHost("::FFFF:127.0.0.1") == "::ffff:7f00:1")
    }

    @Test("the policy's reasons, and which addresses are never reached without --allow-private-addresses")
    func policy() {
        let policy = EgressPolicy(rules: [rule("pypi.org")!])
        #expect(policy.refusal(host: "pypi.org", port: 443) == nil)
        #expect(policy.refusal(host: "pypi.org", port: 8080) == "port 8080 of pypi.org is not on the allow-list")
        #expect(policy.refusal(host: "evil.org", port: 443) == "evil.org is not on the allow-list")
        #expect(policy.refusal(host: "203.0.113.9", port: 443) == "the address 203.0.113.9 is not on the allow-list (only listed literals are)")
        let kinds: [(String, String?)] = [
            ("127.0.0.53", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.32.0.1", nil), ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"), ("100.64.0.1", "shared (carrier-grade NAT)"), ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"), ("255.255.255.255", "reserved"), ("93.184.216.34", nil),
            ("::1", "loopback"), ("::", "unspecified"), ("fd00::2", "unique local (ULA)"), ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "IPv4-mapped"), ("ff02::1", "multicast"), ("64:ff9b::7f00:1", "NAT64"), ("2002:7f00:1::", "6to4"),
            ("2001:db8::1", nil), ("::127.0.0.1", "IPv4-compatible"), ("64:ff9b:1::1", "NAT64"),
        ]
        for (text, kind) in kinds {
            let address = IPAddress.parse(text)
            #expect(address?.nonPublicKind == kind, "\(text)")
            #expect((policy.refusal(address: address!) == nil) == (kind == nil), "\(text)")
            #expect(EgressPolicy(rules: [], allowPrivateAddresses: true).refusal(address: address!) == nil)
        }
        // This machine's own addresses, whatever their kind, lead to its services.
        var local = policy
        local.localAddresses = [IPAddress.parse("198.51.100.2")!]
        #expect(local.refusal(address: IPAddress.parse("198.51.100.2")!) == "198.51.100.2 is an address of this machine (--allow-private-addresses allows it)")
    }

    @Test("addresses parse strictly and print canonically")
    func addresses() {
        #expect(IPAddress.parse("2001:DB8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress.parse("::ffff:1.2.3.4")?.bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4])
        for bad in ["1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1::2::3", "12345::", "fe80::1%eth0", "1.2.3.4 "] {
            #expect(IPAddress.parse(bad) == nil, "\(bad)")
        }
    }
}

struct ProxyRequestTests {
    func parse(_ text: String) -> Result<ProxyRequest, EgressError> { ProxyRequest.parse(head: Array(text.utf8)) }

    @Test("CONNECT, absolute-form and origin-form requests; the proxy's own headers never reach the server")
    func requests() throws {
        #expect(try parse("CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n").get() == .tunnel(host: "pypi.org", port: 443))
        #expect(try parse("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n").get() == .tunnel(host: "2001:db8::1", port: 443))
        // The Host the server sees is the URI's (a different one would front another site on
        // the checked address), and one request per connection (Connection: close).
        let forward = try? parse("GET http://Example.org/simple/?q=1 HTTP/1.1\r\nHost: evil.test\r\nProxy-Authorization: x\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n").get()
        #expect(forward == .forward(host: "Example.org", port: 80, head: Array("GET /simple/?q=1 HTTP/1.1\r\nHost: Example.org\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)))
        #expect(try parse("GET http://example.org:8080 HTTP/1.0\r\n\r\n").get().port == 8080)
        #expect(try parse("POST /x HTTP/1.1\r\nHost: example.org:81\r\n\r\n").get()
                == .forward(host: "example.org", port: 81, head: Array("POST /x HTTP/1.1\r\nHost: example.org:81\r\nConnection: close\r\n\r\n".utf8)))
    }

    @Test("malformed requests are refused with a reason", arguments: [
        ("CONNECT pypi.org HTTP/1.1\r\n\r\n", "CONNECT needs host:port"),
        ("GET https://pypi.org/ HTTP/1.1\r\n\r\n", "use CONNECT"),
        ("GET / HTTP/1.1\r\n\r\n", "one valid Host header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "one valid Host header"),
        ("GET http://user@evil.org/ HTTP/1.1\r\n\r\n", "malformed URL"),
        ("GET http://a.org/ HTTP/2\r\n\r\n", "malformed request line"),
        ("get http://a.org/ HTTP/1.1\r\n\r\n", "malformed method"),
        ("GET http://a.org/ HTTP/1.1\r\n folded\r\n\r\n", "malformed header line"),
        ("GET http://a.org/ HTTP/1.1\r\n", "not an HTTP request head"),
        ("GET http://a.org/ HTTP/1.1\r\nX: a\nHost: evil.test\r\n\r\n", "bare CR, LF or NUL"),
        ("GET http://a.org/ HTTP/1.1\r\nX: a\rProxy-Authorization: y\r\n\r\n", "bare CR, LF or NUL"),
    ])
    func malformed(text: String, reason: String) {
        guard case .failure(let error) = parse(text) else { Issue.record("accepted: \(text)"); return }
        #expect(error.message.contains(reason), "\(error.message)")
    }

    @Test func jsonQuoting() {
        #expect(jsonQuoted("a\"b\\c\n\u{1b}[31m") == #""a\"b\\c\n\u001b[31m""#)
    }
}
