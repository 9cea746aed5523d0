/* A directory that does not enumerate, for tests: preloaded before libnss_wrapper.so, it
 * makes getpwent() list no account, as SSSD does with enumerate = false, while lookups by
 * name and uid still work. */
#define _GNU_SOURCE
#include <pwd.h>
#include <stddef.h>

struct passwd *getpwent(void)
{
	return NULL;
}

int getpwent_r(struct passwd *pwd, char *buf, size_t len, struct passwd **result)
{
	(void)pwd;
	(void)buf;
	(void)len;
	*result = NULL;
	return 2; /* ENOENT: no more entries */
}
