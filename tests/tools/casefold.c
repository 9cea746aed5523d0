/* A directory that ignores case, for tests: preloaded before libnss_wrapper.so, it looks
 * every account name up in lower case, so that NSS finds "ALICE" and answers with the account
 * "alice", as SSSD does with case_sensitive = false. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>

/* The lower-case copy of name, or NULL when it does not fit. */
static const char *folded(const char *name, char *out, size_t size)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++) {
		if (i + 1 >= size)
			return NULL;
		out[i] = (char)tolower((unsigned char)name[i]);
	}
	out[i] = '\0';
	return out;
}

int getpwnam_r(const char *name, struct passwd *pwd, char *buf, size_t len,
	       struct passwd **result)
{
	int (*next)(const char *, struct passwd *, char *, size_t, struct passwd **) =
		(int (*)(const char *, struct passwd *, char *, size_t, struct passwd **))
			dlsym(RTLD_NEXT, "getpwnam_r");
	char lower[256];
	const char *key = folded(name, lower, sizeof lower);

	return next(key != NULL ? key : name, pwd, buf, len, result);
}

struct passwd *getpwnam(const char *name)
{
	struct passwd *(*next)(const char *) =
		(struct passwd * (*)(const char *)) dlsym(RTLD_NEXT, "getpwnam");
	char lower[256];
	const char *key = folded(name, lower, sizeof lower);

	return next(key != NULL ? key : name);
}

int getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	int (*next)(const char *, gid_t, gid_t *, int *) =
		(int (*)(const char *, gid_t, gid_t *, int *))dlsym(RTLD_NEXT, "getgrouplist");
	char lower[256];
	const char *key = folded(user, lower, sizeof lower);

	return next(key != NULL ? key : user, group, groups, ngroups);
}
