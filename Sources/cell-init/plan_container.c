/*
 * plan_container.c — decoding the records only cell-runtime's plans carry (cell_plan.h): an
 * engine's namespaces, a bundle's root, the config's ids and sysctls; and the requests for a
 * process in a running container (process.c). Each is checked whole, as plan.c checks every
 * record, before anything in it is used.
 */
#include "cell_init.h"

#include <errno.h>
#include <string.h>

void decode_container_record(struct plan *p, uint32_t type, struct cursor *cursor, uint32_t index) {
    struct cursor c = *cursor;
    size_t n;
    switch (type) {
    case CELL_REC_ROOT_TREE:
        p->root_flags = take_u32(&c);
        p->root_tree = take_str(&c, &n);
        finish(p, &c, index);
        /* One root: a tree or a new tmpfs, not both. */
        if (!is_absolute(p->root_tree) || (p->root_flags & ~(uint32_t)CELL_OPF_READONLY) || p->has_root)
            plan_refuse(p, EINVAL, index);
        p->has_root = 1;
        break;
    case CELL_REC_JOIN_NAMESPACE: {
        uint32_t bit = take_u32(&c);
        const char *path = take_str(&c, &n);
        finish(p, &c, index);
        /* Only the namespaces pid 1 could unshare itself, each once; the user and pid
         * namespaces come from the clone, the mount namespace is the sandbox's own. */
        int joinable = bit == CELL_NS_NET || bit == CELL_NS_IPC || bit == CELL_NS_UTS || bit == CELL_NS_CGROUP;
        for (size_t i = 0; i < p->join_count; i++)
            joinable = joinable && p->joins[i].bit != bit;
        if (!joinable || !is_absolute(path) || p->join_count >= CELL_MAX_JOINS)
            plan_refuse(p, EINVAL, index);
        p->joins[p->join_count].bit = bit;
        p->joins[p->join_count].path = path;
        p->join_count++;
        break;
    }
    case CELL_REC_SYSCTL: {
        struct plan_sysctl s;
        size_t name_len;
        s.name = take_str(&c, &name_len);
        s.value = take_str(&c, &n);
        finish(p, &c, index);
        /* A dotted name of plain components: nothing that could climb out of /proc/sys. */
        int ok = name_len > 0 && name_len < 200 && s.name[0] != '.' && s.name[name_len - 1] != '.' &&
                 !strstr(s.name, "..");
        for (size_t i = 0; ok && i < name_len; i++) {
            char ch = s.name[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        }
        if (!ok)
            plan_refuse(p, EINVAL, index);
        p->sysctls = append(p, p->sysctls, &p->sysctl_count, sizeof s, 0, index);
        p->sysctls[p->sysctl_count - 1] = s;
        break;
    }
    case CELL_REC_USER: {
        p->user_uid = take_u32(&c);
        p->user_gid = take_u32(&c);
        uint32_t count = take_u32(&c);
        if (count > CELL_MAX_GROUPS)
            plan_refuse(p, E2BIG, index);
        p->user_groups = append(p, NULL, &p->user_group_count, sizeof(uint32_t), count ? count - 1 : 0, index);
        p->user_group_count = count;
        for (uint32_t i = 0; i < count; i++)
            p->user_groups[i] = take_u32(&c);
        finish(p, &c, index);
        p->has_user = 1;
        break;
    }
    default: /* plan.c hands over these four types only */
        plan_refuse(p, EINVAL, index);
    }
    *cursor = c;
}

/* A request is refused, not pid 1 ended: a bad request fails that exec only. */
int decode_process_request(char *bytes, size_t len, struct process_request *r, size_t max) {
    size_t argc = 0, envc = 0, n;
    int seen_process = 0;
    for (size_t at = 0; at < len;) {
        if (len - at < 8)
            return -1;
        uint32_t type = plan_le32((unsigned char *)bytes + at), size = plan_le32((unsigned char *)bytes + at + 4);
        if (size > len - at - 8)
            return -1;
        struct cursor c = {bytes + at + 8, size, 0};
        at += 8 + (size_t)size;
        int last = at == len;
        /* PROCESS first, then ARG and ENV records, END_PROCESS last and only last. */
        if ((type == CELL_REC_PROCESS) != !seen_process || (type == CELL_REC_END_PROCESS) != last)
            return -1;
        switch (type) {
        case CELL_REC_PROCESS:
            r->rows = take_u32(&c);
            r->cols = take_u32(&c);
            r->cwd = take_str(&c, &n);
            if (c.bad || r->rows > 0xffff || r->cols > 0xffff || (r->rows == 0) != (r->cols == 0) || !r->cwd ||
                r->cwd[0] != '/')
                return -1;
            seen_process = 1;
            break;
        case CELL_REC_ARG:
        case CELL_REC_ENV: {
            char *s = take_str(&c, &n);
            if (c.bad || (type == CELL_REC_ARG ? argc : envc) >= max)
                return -1;
            if (type == CELL_REC_ARG) {
                r->argv[argc++] = s;
            } else {
                const char *eq = strchr(s, '=');
                if (!eq || eq == s) /* NAME=value, with a name */
                    return -1;
                r->envp[envc++] = s;
            }
            break;
        }
        case CELL_REC_END_PROCESS:
            break;
        default:
            return -1;
        }
        if (c.left != 0)
            return -1;
    }
    r->argv[argc] = NULL;
    r->envp[envc] = NULL;
    return seen_process && argc >= 1 ? 0 : -1;
}
