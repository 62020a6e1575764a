/// Named groups of system calls, used by policies as `@name`. Where systemd's
/// SystemCallFilter= has a group of the same meaning, the name and content follow it
/// (systemd.exec(5)); the others are cell's own and say so. Names unknown on the running
/// architecture (i386-only calls, say) are skipped when the filter is compiled.
public enum SyscallGroups {
    public static let all: [String: [String]] = [
        // --- systemd's groups -----------------------------------------------------------
        "@mount": ["chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr",
                   "move_mount", "open_tree", "open_tree_attr", "pivot_root", "umount", "umount2"],
        "@module": ["delete_module", "finit_module", "init_module"],
        "@reboot": ["kexec_file_load", "kexec_load", "reboot"],
        "@swap": ["swapoff", "swapon"],
        "@raw-io": ["ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write"],
        "@obsolete": ["_sysctl", "afs_syscall", "bdflush", "break", "create_module", "ftime",
                      "get_kernel_syms", "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil",
                      "putpmsg", "query_module", "security", "sgetmask", "ssetmask", "stime", "stty",
                      "sysfs", "tuxcall", "ulimit", "uselib", "ustat", "vserver"],
        "@clock": ["adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
                   "settimeofday"],
        "@cpu-emulation": ["modify_ldt", "subpage_prot", "switch_endian", "vm86", "vm86old"],
        "@debug": ["lookup_dcookie", "perf_event_open", "pidfd_getfd", "ptrace", "rtas",
                   "s390_runtime_instr", "sys_debug_setcontext"],
        "@keyring": ["add_key", "keyctl", "request_key"],
        // --- cell's own ----------------------------------------------------------------------
        /// io_uring bypasses seccomp for the operations it performs, and is a rich kernel
        /// attack surface (Google and Docker disable it).
        "@io-uring": ["io_uring_enter", "io_uring_register", "io_uring_setup"],
        /// Reading or writing another process' memory.
        "@process-memory": ["process_madvise", "process_vm_readv", "process_vm_writev"],
        /// Handles that bypass path permissions ("shocker"), and kernel facilities a sandbox
        /// has no business with.
        "@privileged-misc": ["acct", "bpf", "fanotify_init", "name_to_handle_at", "nfsservctl",
                             "open_by_handle_at", "quotactl", "quotactl_fd", "syslog", "userfaultfd",
                             "vhangup"],
        /// Joining other namespaces (creating them is filtered by flags, see SeccompPolicy).
        "@setns": ["setns"],

        // --- building blocks of the allow-list (`strict`) --------------------------------------
        "@default": ["arch_prctl", "brk", "cacheflush", "clock_getres", "clock_getres_time64",
                     "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
                     "execve", "execveat", "exit", "exit_group", "futex", "futex_time64", "futex_waitv",
                     "get_robust_list", "get_thread_area", "getegid", "getegid32", "geteuid", "geteuid32",
                     "getgid", "getgid32", "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid",
                     "getppid", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
                     "getrlimit", "getsid", "gettid", "gettimeofday", "getuid", "getuid32", "membarrier",
                     "mmap", "mmap2", "mprotect", "munmap", "nanosleep", "pause", "prlimit64",
                     "restart_syscall", "rseq", "rt_sigreturn", "sched_getaffinity", "sched_yield",
                     "set_robust_list", "set_thread_area", "set_tid_address", "set_tls", "sigreturn",
                     "time", "ugetrlimit", "uname"],
        "@basic-io": ["_llseek", "close", "close_range", "dup", "dup2", "dup3", "lseek", "pread64",
                      "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readv", "write",
                      "writev"],
        "@file-system": ["access", "chdir", "chmod", "close", "creat", "faccessat", "faccessat2",
                         "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fcntl", "fcntl64",
                         "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "fstat", "fstat64",
                         "fstatat64", "fstatfs", "fstatfs64", "ftruncate", "ftruncate64", "futimesat",
                         "getcwd", "getdents", "getdents64", "getxattr", "inotify_add_watch",
                         "inotify_init", "inotify_init1", "inotify_rm_watch", "lgetxattr", "link",
                         "linkat", "listxattr", "llistxattr", "lremovexattr", "lsetxattr", "lstat",
                         "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "oldfstat",
                         "oldlstat", "oldstat", "open", "openat", "openat2", "readlink", "readlinkat",
                         "removexattr", "rename", "renameat", "renameat2", "rmdir", "setxattr", "stat",
                         "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "truncate",
                         "truncate64", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
                         "utimes", "fadvise64", "fadvise64_64", "flock", "fsync", "fdatasync", "sync",
                         "syncfs", "sync_file_range", "copy_file_range", "sendfile", "sendfile64",
                         "splice", "tee", "vmsplice", "umask", "chown", "fchown", "fchownat", "lchown"],
        "@io-event": ["_newselect", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
                      "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
                      "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select"],
        "@ipc": ["ipc", "memfd_create", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
                 "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
                 "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "semctl", "semget", "semop", "semtimedop",
                 "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget"],
        /// clone, clone3 and unshare are allowed here and filtered by the baseline filter, which
        /// every policy gets (SeccompPolicy.baseline): no namespace flags, clone3 → ENOSYS.
        "@process": ["capget", "clone", "clone3", "unshare", "execveat", "fork", "getrusage", "kill", "pidfd_open",
                     "pidfd_send_signal", "prctl", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
                     "swapcontext", "tgkill", "times", "tkill", "vfork", "wait4", "waitid", "waitpid"],
        "@signal": ["rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend",
                    "rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaction", "sigaltstack", "signal",
                    "signalfd", "signalfd4", "sigpending", "sigprocmask", "sigsuspend"],
        "@timer": ["alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
                   "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
                   "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times"],
        "@memory": ["madvise", "mincore", "mlock", "mlock2", "mremap", "msync", "munlock", "get_mempolicy",
                    "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages"],
        "@network-io": ["accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
                        "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
                        "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
                        "socketpair"],
        "@sync": ["fdatasync", "fsync", "msync", "sync", "sync_file_range", "sync_file_range2", "syncfs"],
        /// Identity calls: with every capability dropped they can only switch among the ids the
        /// process already holds (its uid 0), so they are harmless and tools expect them.
        "@credentials": ["getgroups", "setfsgid", "setfsuid", "setgid", "setgroups", "setregid",
                         "setresgid", "setresuid", "setreuid", "setuid", "capset"],
        "@scheduler": ["getpriority", "sched_get_priority_max", "sched_get_priority_min",
                       "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
                       "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
                       "setpriority", "ioprio_get", "ioprio_set"],
        "@misc-safe": ["ioctl", "sysinfo", "getcpu", "setsid", "setpgid", "prlimit64",
                       "setrlimit", "sethostname", "setdomainname", "landlock_add_rule",
                       "landlock_create_ruleset", "landlock_restrict_self", "seccomp"],
    ]

    /// The groups denied by the `default` policy: what Docker's default profile and systemd's
    /// @privileged family keep away from containers. Each returns EPERM.
    public static let deniedByDefault = [
        "@mount", "@module", "@reboot", "@swap", "@raw-io", "@obsolete", "@clock", "@cpu-emulation",
        "@debug", "@keyring", "@io-uring", "@process-memory", "@privileged-misc", "@setns",
    ]

    /// The groups allowed by the `strict` allow-list.
    public static let allowedByStrict = [
        "@default", "@basic-io", "@file-system", "@io-event", "@ipc", "@process", "@signal", "@timer",
        "@memory", "@network-io", "@sync", "@credentials", "@scheduler", "@misc-safe",
    ]

    /// Expands `@group` names (and plain names) into syscall names, in order, without repeats.
    public static func expand(_ names: [String]) -> (syscalls: [String], unknownGroups: [String]) {
        var seen = Set<String>()
        var syscalls: [String] = []
        var unknown: [String] = []
        for name in names {
            let members: [String]
            if name.hasPrefix("@") {
                guard let group = all[name] else { unknown.append(name); continue }
                members = group
            } else {
                members = [name]
            }
            for member in members where seen.insert(member).inserted { syscalls.append(member) }
        }
        return (syscalls, unknown)
    }
}
