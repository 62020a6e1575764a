import CellPolicy

/// What an OCI runtime's launch (cell-runtime) adds to a `LaunchPlan`: the parts of a
/// container that an engine, not cell, decides. `cell run` never has one.
public struct ContainerPlan: Equatable, Sendable {
    /// The root: the bundle's root filesystem, cloned with its mounts (CELL_REC_ROOT_TREE).
    public struct Root: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool
        public init(path: String, readOnly: Bool) {
            self.path = path
            self.readOnly = readOnly
        }
    }

    /// A namespace the engine made, entered by path (net, ipc, uts, cgroup).
    public struct Joined: Equatable, Sendable {
        public var namespace: Namespace
        public var path: String
        public init(namespace: Namespace, path: String) {
            self.namespace = namespace
            self.path = path
        }
    }

    /// The ids the command runs as.
    public struct User: Equatable, Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var groups: [UInt32]
        public init(uid: UInt32, gid: UInt32, groups: [UInt32]) {
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
    }

    /// A resource limit as the config gives it (soft and hard).
    public struct Rlimit: Equatable, Sendable {
        public var resource: UInt32
        public var soft: UInt64
        public var hard: UInt64
        public init(resource: UInt32, soft: UInt64, hard: UInt64) {
            self.resource = resource
            self.soft = soft
            self.hard = hard
        }
    }

    /// A sysctl of one of the container's namespaces.
    public struct Sysctl: Equatable, Sendable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The engine's id for the container, named in the audit log's `start` event.
    public var id: String?
    public var root: Root
    public var joined: [Joined]
    /// nil: the setup's own ids (uid 0) are the command's.
    public var user: User?
    /// Whether the clone makes a user namespace (the config lists one without a path) and the
    /// supervisor writes the config's maps; false: the container shares the runtime's (an
    /// engine's) user namespace, as runc does when the config lists none.
    public var newUserNamespace: Bool
    public var rlimits: [Rlimit] = []
    public var sysctls: [Sysctl] = []
    /// The config's own seccomp filter (linux.seccomp), loaded beside the profile's: the kernel
    /// applies the stricter answer of the two. Its own refusals are not audited (they are the
    /// engine's); the profile's are, those of calls both refuse included
    /// (SeccompCompiler.engineFilter).
    public var engineSeccomp: SeccompPolicy?
    /// The engine's socket for the command's pty master (`create --console-socket`), when the
    /// config asks for a terminal: the monitor hands the master over instead of relaying it.
    public var consoleSocket: String?
    /// Where `cell-runtime exec` connects (ProcessService), once the command runs.
    public var processSocket: String?

    public init(root: Root, joined: [Joined] = [], user: User? = nil, newUserNamespace: Bool) {
        self.root = root
        self.joined = joined
        self.user = user
        self.newUserNamespace = newUserNamespace
    }
}
