/*
 * faults: an LD_PRELOAD shim that makes the store's writes fail, crash or crawl, and holds
 * processes at a start gate, for the crash-safety and concurrency tests.
 *
 * The environment variable PAM_MFA_FAULT picks the fault:
 *   fdatasync-eio   fdatasync() on any fd fails with EIO: the data may sit in the page
 *                   cache, but the disk said it could not keep it.
 *   pwrite-torn     pwrite()/pwrite64() writes only the first half of its bytes, then the
 *                   process is killed by SIGKILL: a crash in the middle of a write.
 *   pwrite-slow     pwrite()/pwrite64() first sleeps PAM_MFA_FAULT_DELAY_MS milliseconds
 *                   (default 50): a slow disk, which holds a read-modify-write open long
 *                   enough for a parallel login to slip in unless a lock keeps it out.
 *   rename-kill     the PAM_MFA_FAULT_AT-th call of renameat2() (default 1) kills the
 *                   process by SIGKILL before it renames: a crash between the steps of a
 *                   write that replaces files.
 * Unset (or any other value), every call goes straight to libc.
 *
 * PAM_MFA_GATE=PATH holds the process at its start, so that many processes can be let go
 * at one moment: each creates PATH.ready.PID, then waits (at most 30 s) until PATH exists.
 *
 * Preload it before the other shims:
 *   LD_PRELOAD="faults.so libnss_wrapper.so" PAM_MFA_FAULT=pwrite-torn pamdrive ...
 *
 * Build: cc -shared -fPIC -Wall -Wextra -O2 -o faults.so faults.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int fault_is(const char *name)
{
	const char *fault = getenv("PAM_MFA_FAULT");
	return fault != NULL && strcmp(fault, name) == 0;
}

/* The next definition of `name` after this library: libc's. */
static void *next(const char *name)
{
	void *symbol = dlsym(RTLD_NEXT, name);
	if (symbol == NULL) {
		static const char message[] = "faults.so: a libc symbol is missing\n";
		ssize_t ignored = write(2, message, sizeof(message) - 1);
		(void)ignored;
		abort();
	}
	return symbol;
}

__attribute__((constructor)) static void wait_at_the_gate(void)
{
	const char *gate = getenv("PAM_MFA_GATE");
	if (gate == NULL)
		return;
	char ready[4096];
	if (snprintf(ready, sizeof(ready), "%s.ready.%ld", gate, (long)getpid()) >= (int)sizeof(ready))
		return;
	int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 1000 * 1000 };
	for (int waited = 0; waited < 30 * 1000 && access(gate, F_OK) != 0; waited++)
		nanosleep(&tick, NULL);
}

static void slow_disk(void)
{
	const char *text = getenv("PAM_MFA_FAULT_DELAY_MS");
	long ms = text != NULL ? strtol(text, NULL, 10) : 50;
	if (ms <= 0 || ms > 10000)
		ms = 50;
	struct timespec delay = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000 * 1000 };
	while (nanosleep(&delay, &delay) != 0 && errno == EINTR)
		;
}

int fdatasync(int fd)
{
	if (fault_is("fdatasync-eio")) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))next("fdatasync");
	return real(fd);
}

/* Writes the first half, then dies as a power cut or `kill -9` would leave it. */
static ssize_t torn(ssize_t (*real)(int, const void *, size_t, off64_t), int fd, const void *buf,
		    size_t count, off64_t offset)
{
	(void)real(fd, buf, count / 2, offset);
	raise(SIGKILL);
	/* Not reached: SIGKILL cannot be caught. */
	abort();
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
	ssize_t (*real)(int, const void *, size_t, off64_t) =
		(ssize_t(*)(int, const void *, size_t, off64_t))next("pwrite64");
	if (fault_is("pwrite-torn"))
		return torn(real, fd, buf, count, offset);
	if (fault_is("pwrite-slow"))
		slow_disk();
	return real(fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	/* On 64-bit glibc, off_t and off64_t are the same type and pwrite is pwrite64. */
	ssize_t (*real)(int, const void *, size_t, off64_t) =
		(ssize_t(*)(int, const void *, size_t, off64_t))next("pwrite64");
	if (fault_is("pwrite-torn"))
		return torn(real, fd, buf, count, (off64_t)offset);
	if (fault_is("pwrite-slow"))
		slow_disk();
	return real(fd, buf, count, (off64_t)offset);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
	      unsigned int flags)
{
	static int calls;
	int (*real)(int, const char *, int, const char *, unsigned int) =
		(int (*)(int, const char *, int, const char *, unsigned int))next("renameat2");
	if (fault_is("rename-kill")) {
		const char *text = getenv("PAM_MFA_FAULT_AT");
		long at = text != NULL ? strtol(text, NULL, 10) : 1;
		if (++calls == at) {
			raise(SIGKILL);
			abort();
		}
	}
	return real(olddirfd, oldpath, newdirfd, newpath, flags);
}
