/// The namespaces cell can nest inside the sandbox's user namespace.
public enum Namespace: String, CaseIterable, Sendable {
    case mount, pid, net, ipc, uts, cgroup, time

    /// Everything but the time namespace, which is off by default (few programs need it).
    public static let allNested: Set<Namespace> = [.mount, .pid, .net, .ipc, .uts, .cgroup]
}
