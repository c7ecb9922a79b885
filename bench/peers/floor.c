/*
 * The floor for `moat run --rox /usr,/lib,/lib64,/bin --ro /etc -- CMD`: what moat enforces
 * for that command line, done by a minimal static C program with no parsing, no checks
 * and no messages, then execv(CMD). No launcher that enforces the same can add less time
 * than this one, so bench/launch.py measures it beside moat and the peers.
 *
 * In moat's order (moat_sandbox::enforce):
 *   - every inherited descriptor above 2 closed (close_range);
 *   - Landlock (ABI 6+): every filesystem right of ABI 1-5 handled, 5 path rules (read +
 *     execute on /usr /lib /lib64 /bin, read on /etc), TCP bind and connect handled with
 *     no port rule, both scopes (ruleset made first, enforced after the two steps below);
 *   - no_new_privs;
 *   - when the process holds any capability or is root: the bounding set emptied (one
 *     prctl per capability until EINVAL), the ambient set cleared, the other three emptied
 *     with capset;
 *   - moat's 32-instruction seccomp program for that policy on x86_64 (architecture and x32
 *     kill; TIOCSTI/TIOCLINUX, listen, io_uring refused; socket(AF_UNIX) refused; every
 *     family but netlink and TCP over IPv4/IPv6 refused): the listing of the seal
 *     `{ network, unix, listen }` printed by `cargo test -p moat-sandbox --lib
 *     programs_are_short -- --nocapture`, instruction for instruction. With FLOOR_NO_SECCOMP
 *     set in the environment, no filter (what a Landlock-only launcher does).
 *
 * Built by bench/peers/build.sh; exits 125 when a step fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian 12's kernel headers predate the network and scope fields. */
struct ruleset_attr {
	uint64_t handled_access_fs, handled_access_net, scoped;
};
struct path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

#define FS_EXECUTE (1ULL << 0)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_ALL_ABI5 ((1ULL << 16) - 1)
#define NET_TCP 3ULL
#define SCOPES 3ULL
#define RULE_PATH_BENEATH 1

int main(int argc, char **argv)
{
	static const char *const dirs[] = { "/usr", "/lib", "/lib64", "/bin", "/etc" };
	struct ruleset_attr attr = { FS_ALL_ABI5, NET_TCP, SCOPES };
	int ruleset, i;

	if (argc < 2)
		return 125;
	syscall(SYS_close_range, 3U, ~0U, 0U);
	ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0)
		return 125;
	for (i = 0; i < 5; i++) {
		struct path_beneath_attr rule = {
			FS_READ_FILE | FS_READ_DIR | (i < 4 ? FS_EXECUTE : 0),
			open(dirs[i], O_PATH | O_CLOEXEC),
		};
		if (rule.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &rule, 0))
			return 125;
		close(rule.parent_fd);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return 125;
	{
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d))
			return 125;
		if (getuid() == 0 || geteuid() == 0 || d[0].permitted || d[1].permitted ||
		    d[0].inheritable || d[1].inheritable) {
			unsigned long c;
			for (c = 0; c < 64; c++)
				if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0)) {
					if (errno == EINVAL)
						break;
					return 125;
				}
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
			d[0].effective = d[0].permitted = d[0].inheritable = 0;
			d[1].effective = d[1].permitted = d[1].inheritable = 0;
			if (syscall(SYS_capset, &h, d))
				return 125;
		}
	}
	if (syscall(SYS_landlock_restrict_self, ruleset, 0))
		return 125;
	close(ruleset);

	if (!getenv("FLOOR_NO_SECCOMP")) {
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define J(op, k, t, f) BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), (t), (f))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define ARG(i) offsetof(struct seccomp_data, args[i])
#define REFUSE (SECCOMP_RET_ERRNO | 13 /* EACCES */)
		struct sock_filter f[] = {
			/*  0 */ LD(offsetof(struct seccomp_data, arch)),
			/*  1 */ J(BPF_JEQ, AUDIT_ARCH_X86_64, 0, 29),
			/*  2 */ LD(offsetof(struct seccomp_data, nr)),
			/*  3 */ J(BPF_JSET, 0x40000000, 27, 0),
			/*  4 */ J(BPF_JGE, SYS_listen, 21, 0),
			/*  5 */ J(BPF_JGE, SYS_socket, 6, 0),
			/*  6 */ J(BPF_JGE, SYS_ioctl, 0, 22),
			/*  7 */ J(BPF_JGT, SYS_ioctl, 21, 0),
			/*  8 */ LD(ARG(1)),
			/*  9 */ J(BPF_JEQ, 0x5412 /* TIOCSTI */, 20, 0),
			/* 10 */ J(BPF_JEQ, 0x541c /* TIOCLINUX */, 19, 0),
			/* 11 */ RET(SECCOMP_RET_ALLOW),
			/* 12 */ J(BPF_JGT, SYS_socket, 16, 0),
			/* 13 */ LD(ARG(0)),
			/* 14 */ J(BPF_JEQ, AF_UNIX, 15, 0),
			/* 15 */ J(BPF_JEQ, AF_NETLINK, 13, 0),
			/* 16 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xfffffff7),
			/* 17 */ J(BPF_JEQ, AF_INET, 0, 12),
			/* 18 */ LD(ARG(1)),
			/* 19 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
			/* 20 */ J(BPF_JEQ, SOCK_STREAM, 1, 0),
			/* 21 */ RET(REFUSE),
			/* 22 */ LD(ARG(2)),
			/* 23 */ J(BPF_JEQ, 0, 5, 0),
			/* 24 */ J(BPF_JEQ, 6 /* IPPROTO_TCP */, 4, 0),
			/* 25 */ RET(REFUSE),
			/* 26 */ J(BPF_JGE, SYS_io_uring_setup, 1, 0),
			/* 27 */ J(BPF_JGT, SYS_listen, 1, 2),
			/* 28 */ J(BPF_JGT, SYS_io_uring_register, 0, 1),
			/* 29 */ RET(SECCOMP_RET_ALLOW),
			/* 30 */ RET(REFUSE),
			/* 31 */ RET(SECCOMP_RET_KILL_PROCESS),
		};
		struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			return 125;
	}
	execv(argv[1], argv + 1);
	return 127;
}
