import CellPolicy

/// The text of `cell --help` and `cell run --help`.
enum Help {
    static let topics = ["run", "profile", "audit", "doctor", "changes", "cache", "learn"]

    static let learn = """
    cell learn [-o FILE] [--merge FILE] [RUN OPTIONS] -- COMMAND [ARG...]
      — write a least-privilege profile from one observed run.

    Runs COMMAND once in the sandbox of --profile (default: default), exactly as cell run
    would, while cell's supervisor sees every system call outside a small always-allowed core
    (memory, the process's own signals and threads, time, exit, I/O on descriptors it already
    holds). Each is decided by that profile's own rules: what it allows runs on, what it refuses
    stays refused (and is audited and recorded as refused).

    The profile written extends the one learned under and narrows it:
      [seccomp] only          the calls seen and the core; any other is refused (EPERM), audited
      [seccomp.only_where]    the values seen of the argument that says what a call does:
                              ioctl requests, socket families, clone and unshare flags, prctl
                              options, personalities
      [landlock] write        the directories written beneath (a fresh /tmp or home whole)
    and records as comments the calls refused, the addresses connected to, and the paths the
    command looked for that the sandbox does not show but this host has, as mount lines to
    review. A learned profile never allows more than its base: cell intersects the two at
    every launch. Paths and addresses are read from the command's memory: a record, never a grant.

    -o, --output FILE   write the profile to FILE (default, and "-": standard output)
    --merge FILE        fold this run into FILE, a profile cell learn wrote, and write it back
                        (or to -o); the run is learned under the profile FILE extends
    RUN OPTIONS         those of cell run (cell run --help), but not --dry-run, nor the policy
                        options (--seccomp, --seccomp-json, --allow-syscall, --deny-syscall):
                        the learned profile extends a profile, so put the policy in that one

    Learn the way the command will run: at a terminal it makes terminal ioctls that it does not
    make in a pipe, and each option or input may take another path (--merge adds such runs).
    Learning is slower than a run (each seen call waits for the supervisor: Scripts/bench
    measures it). Exit status: the command's, as cell run. Nothing is written when the sandbox
    could not be set up (125) or the command not started (126, 127).
    The loop: learn, review the file, cell run --profile FILE -- COMMAND, cell audit summary.
    """

    static let changes = """
    cell changes DIR — what a sandbox changed through its overlay, kept with --changes DIR.

    One line per change, in path order, below the overlaid tree: A added, M changed (the tree
    had it), D deleted, R a directory replaced as a whole (its new content follows as A).
    Nothing is applied to the tree: DIR/upper holds the files as the sandbox left them.

    --apply TARGET writes them into TARGET (the checkout, say), on request only: never through a
    symlink (each path is reached beneath TARGET without following one), without setuid and
    setgid bits, nothing under a .git (the host's git would run what a sandbox planted there),
    no device, FIFO or socket. What is left out is named on stderr.
    """

    static let cache = """
    cell cache list | cell cache clear NAME|SCOPE/NAME|--all — the caches given with --cache.

    A cache is a directory of yours that `--cache NAME:DST` (or a profile's `caches`, as in the
    ci profile: pip, npm, cargo, go, maven) binds read-write at DST, kept between runs. Each is
    kept per SCOPE: by default the profile and the project (the checkout's top), so one
    project's job never reads what another's left (--cache-scope profile|user shares wider).

    Layout: $XDG_CACHE_HOME/cell (default ~/.cache/cell), 0700:
      caches/SCOPE/NAME   what sandboxes are given, and only that
      scopes/SCOPE        what SCOPE is for (project, profile): cell's own, never given

    list    every cache: SCOPE/NAME, its size, what its scope is for
    clear   NAME: that cache in every scope; SCOPE/NAME: one; --all: every cache. Never
            follows a symlink a sandbox left there.
    """

    static let doctor = """
    cell doctor [--json] — can this host run cell, and in which mode?

    Probes for real (a throw-away user namespace with a mount in it, a seccomp filter with a
    listener) and reports: unprivileged user namespaces and the sysctls and AppArmor restriction
    that govern them, the Landlock ABI and what each missing ABI costs, seccomp user
    notification, cgroup v2 and whether it is delegated to you, /dev/net/tun, slirp4netns,
    pasta, newuidmap and podman. Every "no" says what to do.

    Exit status: 0 the default profile (namespaces) can run here; 1 it cannot (a report, not a
    failure: `cell run --isolation landlock` may still); 125 a usage error.
    --json prints the same verdicts as one JSON object: {"v":1,"namespaces":BOOL,"landlock":BOOL,
    "checks":[{"name","ok","detail","remedy"}]}.
    """

    static let overview = """
    cell — run an untrusted command in a rootless Linux sandbox.

    USAGE
      cell run [OPTIONS] -- COMMAND [ARG...]   run COMMAND in a new sandbox
      cell profile list                       the profiles cell can find, and where
      cell profile show NAME|PATH             a profile fully resolved, as TOML
      cell profile check FILE...              validate profile files, report every problem
      cell audit summary PATH                 a readable digest of an audit log
      cell learn [-o FILE] -- COMMAND         write a least-privilege profile from one run
      cell doctor [--json]                    can this host run cell, in which mode, and why not
      cell changes DIR [--apply TARGET]       what a sandbox changed through its overlay
      cell cache list | clear NAME|--all      the persistent caches --cache gives sandboxes
      cell help [run|profile]                 this text, or a command's
      cell --version                          print the version

    No root, setuid helper or daemon is involved: the kernel's unprivileged user namespaces do
    the work. The command runs as root of its own user namespace (your uid outside), in private
    pid, mount, network, ipc, uts and cgroup namespaces, in a filesystem view of read-only
    binds and tmpfs, with every capability dropped, no_new_privs, a seccomp filter whose
    violations are audited, and limits. See 'cell run --help' for the options and the exit
    statuses, 'cell help profile' for profiles.
    """

    static let run = """
    USAGE
      cell run [OPTIONS] -- COMMAND [ARG...]

    Runs COMMAND in a new sandbox and exits with its status. Options end at '--' or at the first
    word that is not an option; COMMAND is looked up in the sandbox's PATH.

    WHAT THE SANDBOX GETS
      - a user namespace in which your own uid and gid (or, with --as-root, 0) are you outside
        (when cell runs as root: host uid and gid 65534, never host root; see --outer-id),
        created first; pid, mount, network, ipc, uts and cgroup namespaces nested inside it;
      - /etc/passwd and /etc/group naming you, root and nobody; HOME, USER and LOGNAME set; an
        empty home of your own (tmpfs) at your home's path;
      - a fresh /proc showing only its own processes, a network with only 'lo' (up), the
        hostname 'cell';
      - at a terminal, a terminal of its own: a pty on the sandbox's devpts (job control,
        window size, Ctrl-C to its foreground job), relayed by cell; the sandbox never holds a
        descriptor of yours (see --tty, --no-tty);
      - no capabilities in any set (bounding and ambient included), locked securebits,
        no_new_privs;
      - no descriptor of yours above 2; an environment holding only PATH, HOME, USER, LOGNAME,
        TERM and LANG, plus what --env and --keep-env add;
      - death with cell: if cell is killed, even with SIGKILL, every sandboxed process dies.

    OPTIONS
      -p, --profile NAME|PATH
                             the security profile (default: 'default'); see 'cell help
                             profile'. Options below override it.
      --hostname NAME        hostname inside (default: cell)
      --cwd DIR              working directory inside (default: yours; / if it cannot be
                             entered, with a note on stderr)
      --env NAME=VALUE       set a variable in the sandbox (repeatable)
      --keep-env NAME        pass your NAME through; NAME* passes every variable with that
                             prefix (repeatable)
      --audit-log PATH       append every violation (a denied, logged or killing system call,
                             with its arguments and paths) as JSON Lines; without it, a
                             one-line summary goes to stderr
      --status-json PATH     write one JSON document at the end: exit_code, signal, timed_out,
                             limits_hit, duration_ms, max_rss_kb, namespaces, command
      --ro-bind SRC[:DST]    make a host path visible read-only (DST: the same path)
      --bind SRC[:DST]       make a host path visible read-write
      --tmpfs DST[:size=SIZE][,mode=OCTAL]
                             an empty tmpfs (default 256m, 0755)
      --net none|host|user|proxy
                             network: a private namespace with only lo (default); the host's
                             own (less isolation: see SECURITY.md); outbound user-mode
                             networking through pasta or slirp4netns (10.0.2.100/24, DNS at
                             10.0.2.3, nothing reachable from the host unless published); or
                             only lo, with an HTTP proxy at 127.0.0.1:3128 and SOCKS5 at :1080
                             inside (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY set) that connect only
                             where --allow-net says, each connection an audit event (TCP only)
      --allow-net HOST[:PORT]
                             with the proxy (implies --net proxy): allow HOST ('*.example.org'
                             for its subdomains, an IP address only as written; no port: 443
                             and 80); repeatable
      --allow-private-addresses
                             let allowed names resolve to loopback, private, link-local and
                             other non-public addresses (refused by default: a listed name
                             must not lead to this machine's services)
      --net-helper auto|pasta|slirp4netns
                             which program carries --net user's traffic: auto (default) is
                             pasta where it is installed and the host has a default route,
                             else slirp4netns; naming one refuses to run without it
      --overlay SRC[:DST]    the host directory SRC writable at DST through a copy-on-write
                             overlay: SRC is never modified (refused if a file in it has an
                             owner or group other than yours: copying it up would fail)
      --overlay-size SIZE    what the sandbox may write through an overlay (a tmpfs; 1g)
      --changes DIR          keep an overlay's changes in DIR (an empty directory of yours,
                             or an earlier run's over the same tree) instead of a tmpfs, with
                             no size limit but that disk's: `cell changes DIR` lists them
      --cache NAME:DST       a persistent cache of yours, read-write at DST (~/ is the home
                             inside): a second run reuses it (`cell help cache`); repeatable
      --cache-scope project|profile|user
                             which runs share a cache: the same project and profile (default),
                             the same profile, or all of yours (a cache carries one job's
                             downloads, and what a hostile one planted, to the next)
      --hide GLOB            what matches GLOB in the trees you bind (the working directory,
                             --bind, --ro-bind, --overlay) is seen empty and read-only: files
                             as empty files, directories as empty directories. Anchored at
                             each tree's root: '**/.env' at any depth, '.git/config' at the
                             top; '*' and '?' within a name. Repeatable; --dry-run lists them
      --isolation namespaces|landlock|auto
                             namespaces (default): the full sandbox; landlock: no namespace
                             at all, for hosts that refuse user namespaces (weaker: see
                             SECURITY.md); auto: namespaces where they work, else landlock
      --publish HOST:SANDBOX with --net user: forward the host's 127.0.0.1:HOST to the
                             sandbox's port SANDBOX (repeatable)
      --allow-host-loopback  with --net user: let the sandbox reach the host's 127.0.0.1 at
                             10.0.2.2 (otherwise that address is unreachable)
      --timeout DURATION     wall clock (30s, 5m, 1h): SIGTERM, then SIGKILL after --kill-after
                             (default 2s); exit status 124
      --kill-after DURATION  grace between SIGTERM and SIGKILL at the timeout
      --memory SIZE          memory per process (RLIMIT_DATA), and for the whole sandbox
                             where it has a cgroup (512m, 2g)
      --cpu-time DURATION    CPU time per process (RLIMIT_CPU)
      --file-size SIZE       largest file a process may write (RLIMIT_FSIZE)
      --open-files N         descriptors per process (RLIMIT_NOFILE)
      --pids N               processes in the sandbox (RLIMIT_NPROC, counted per user
                             namespace: the sandbox's own)
      --cgroup auto|none|PATH
                             the sandbox's own cgroup, for memory.max (--memory, else half
                             the machine's memory) and pids.max (--pids) over all its
                             processes: auto (default) where a cgroup is delegated to you
                             (systemd-run --user --scope -p Delegate=yes; cell doctor tells),
                             else rlimits only; none; or below the delegated directory PATH
      --seccomp default|strict
                             the system-call policy: a deny-list (default) or an allow-list
      --seccomp-json PATH    a Docker/OCI seccomp profile as the policy
      --allow-syscall NAME   allow a system call or @group the policy denies (repeatable)
      --deny-syscall NAME[:ERRNO]
                             deny one, with EPERM or ERRNO (repeatable)
      --cap-add CAP          keep a capability, e.g. CAP_NET_BIND_SERVICE (repeatable)
      --as-caller            you inside: your uid, gid, name and home path (the default;
                             profile key: identity = "caller")
      --as-root              uid 0 inside, HOME=/root, for tools that want root; still mapped
                             to nothing but your uid outside (identity = "root")
                             Either way no capability is kept unless --cap-add says so.
      --tty                  a pty for the command even when cell's stdin and stdout are not
                             a terminal (profile key: [terminal] mode = "always")
      --no-tty               no pty: the command gets cell's descriptors as they are, a
                             terminal included, in a session of its own (mode = "never")
                             Default ("auto"): those of stdin, stdout and stderr that are a
                             terminal go through the pty; a redirected one bypasses it.
      --outer-id UID[:GID]   when cell runs as root: the unprivileged host ids the sandbox's
                             root maps to (default 65534:65534); refused for other users
      --dry-run              print the plan and exit without running anything: what cell
                             does around the sandbox, then every record its pid 1 would
                             execute, in order (each /etc entry as a copy, a symlink or a
                             read-only bind), and the seccomp filters as libseccomp compiled them
      --plan-out PATH        with --dry-run: also write the encoded plan there, byte for byte
                             what pid 1 would read (format: Sources/CCellSpawn/include/cell_plan.h)
      -h, --help             this text

    SIGNALS
      SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to cell are passed on to the
      command.

    EXIT STATUS
      the command's own status; 128+N if it died of signal N;
      124  the --timeout fired;
      125  the sandbox could not be set up (bad option, namespace refused, ...): nothing ran;
           or the audit log could not be written and the sandbox was killed;
      159  a 'kill' rule of the seccomp policy matched (or a call through another ABI);
      126  the command was found but could not be executed;
      127  the command was not found.
    """
}

extension Help {
    static let profile = """
    USAGE
      cell profile list
      cell profile show NAME|PATH
      cell profile check FILE...
      cell run --profile NAME|PATH -- COMMAND

    A profile is a TOML file that chooses what a sandbox gets: namespaces, network, the
    filesystem view, environment, capabilities and the seccomp policy. Built in: default,
    strict, ci. Names are looked up in $XDG_CONFIG_HOME/cell/profiles/ (default ~/.config),
    then /etc/cell/profiles/, then the built-in ones — never in the current directory. A word
    with a '/' or ending in .toml is a file path.

    'extends = "NAME"' starts from another profile (a profile extending its own name starts
    from the next one in the lookup order). Settings override; lists are replaced, or edited
    with KEY_add / KEY_remove. Paths may use ${CWD}, ${HOME}, ${TMPDIR} and ${UID}. Command-line
    options override the profile. The full schema is in README.md ("Profiles").

    'cell profile check' prints every problem as FILE:LINE:COLUMN: message and exits 125 if
    there is one, 0 otherwise.
    """
}

extension Help {
    static let audit = """
    USAGE
      cell audit summary PATH

    Reads an audit log written by 'cell run --audit-log PATH' (JSON Lines, schema in README.md)
    and prints, per sandbox: the command, the profile, how long it ran, how it ended, and its
    violations grouped by system call with counts and the first paths.
    """
}
