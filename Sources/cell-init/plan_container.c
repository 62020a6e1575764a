/*
 * plan_container.c — decoding the records only cell-runtime's plans carry (cell_plan.h): an
 * engine's namespaces, a bundle's root, the config's ids and sysctls. Each is checked whole,
 * as plan.c checks every record, before container.c uses anything in it.
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
