/* libseccomp for Swift: the header, plus the action macros Swift cannot import as functions. */
#ifndef CELL_LIBSECCOMP_SHIM_H
#define CELL_LIBSECCOMP_SHIM_H
#include <seccomp.h>
#include <errno.h>

static inline uint32_t cell_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t cell_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t cell_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
static inline uint32_t cell_scmp_act_log(void) { return SCMP_ACT_LOG; }
static inline uint32_t cell_scmp_act_notify(void) { return SCMP_ACT_NOTIFY; }
static inline uint32_t cell_scmp_arch_native(void) { return SCMP_ARCH_NATIVE; }
static inline int cell_scmp_error(void) { return __NR_SCMP_ERROR; }
#endif
