/*
 * plan_fields.c — what plan.c and plan_container.c decode records with: a bounds-checked cursor
 * over a record's fields (struct cursor: cell_init.h), and the plan's growing arrays.
 */
#include "cell_init.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t take_u32(struct cursor *c) {
    if (c->bad || c->left < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = plan_le32((const unsigned char *)c->at);
    c->at += 4;
    c->left -= 4;
    return v;
}

uint64_t take_u64(struct cursor *c) {
    uint64_t low = take_u32(c);
    uint64_t high = take_u32(c);
    return low | high << 32;
}

/* A blob: u32 length, the bytes, then a NUL not counted in the length. NULL when bad. */
char *take_blob(struct cursor *c, size_t *len) {
    uint32_t n = take_u32(c);
    *len = 0;
    /* n bytes and the NUL must fit: n < left, which also keeps n + 1 from overflowing. */
    if (c->bad || n >= c->left || c->at[n] != '\0') {
        c->bad = 1;
        return NULL;
    }
    char *s = c->at;
    c->at += (size_t)n + 1;
    c->left -= (size_t)n + 1;
    *len = n;
    return s;
}

/* A `str`: a blob that is a C string, so no NUL inside it (else C would see a shorter one). */
char *take_str(struct cursor *c, size_t *len) {
    char *s = take_blob(c, len);
    if (s && memchr(s, '\0', *len)) {
        c->bad = 1;
        return NULL;
    }
    return s;
}

/* Every field fitted and nothing is left over: the payload is exactly the record's fields. */
void finish(const struct plan *p, const struct cursor *c, uint32_t index) {
    if (c->bad || c->left != 0)
        plan_refuse(p, EINVAL, index);
}

/* Grows an array of `size`-byte items by one (the caller fills it in), with room for `extra`
 * more (the NULL of argv/envp). Reallocated every time: at most CELL_PLAN_MAX_RECORDS items,
 * so the copies are bounded, and the code stays obvious. */
void *append(const struct plan *p, void *array, size_t *count, size_t size, size_t extra, uint32_t index) {
    char *grown = realloc(array, (*count + 1 + extra) * size);
    if (!grown)
        plan_refuse(p, ENOMEM, index);
    (*count)++;
    return grown;
}

void append_string(const struct plan *p, char ***array, size_t *count, char *s, uint32_t index) {
    *array = append(p, *array, count, sizeof(char *), 1, index);
    (*array)[*count - 1] = s;
    (*array)[*count] = NULL;
}

int is_absolute(const char *s) {
    return s[0] == '/';
}
