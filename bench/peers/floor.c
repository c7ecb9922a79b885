/*
 * The floor for `moat run --rox /usr,/lib,/lib64,/bin --ro /etc -- CMD`: what moat enforces
 * for that command line, done by a minimal static C program with no parsing, no checks
 * and no messages, then execv(CMD). No launcher that enforces the same can add less time
 * than this one, so bench/launch.py measures it beside moat and the peers.
 *
 *   - Landlock (ABI 6+): every filesystem right of ABI 1-5 handled, 5 path rules (read +
 *     execute on /usr /lib /lib64 /bin, read on /etc), TCP bind and connect handled with
 *     no port rule, both scopes;
 *   - no_new_privs;
 *   - a 23-instruction seccomp filter shaped like moat's socket filter (architecture
 *     check, x32 refusal, socket(2) family/type checks, io_uring refusal); with FLOOR_NO_SECCOMP
 *     set in the environment, no filter (what a Landlock-only launcher does).
 *
 * Built by bench/peers/build.sh; exits 125 when a step fails.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/audit.h>
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
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0))
		return 125;
	close(ruleset);

	if (!getenv("FLOOR_NO_SECCOMP")) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 16, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 2, 0),
			BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, SYS_io_uring_setup, 0, 15),
			BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, SYS_io_uring_register, 14, 13),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 10, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 9, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 8),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
			BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 0, 5),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6 /* IPPROTO_TCP */, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 13),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 13 /* EACCES */),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			return 125;
	}
	execv(argv[1], argv + 1);
	return 127;
}
