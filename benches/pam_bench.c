/*
 * pam_bench: per-login latency of PAM modules through the real libpam.
 *
 * scripts/bench.sh compiles and runs it under pam_wrapper (a private PAM service directory,
 * one service file per module) and nss_wrapper (made-up passwd and group files); see
 * BENCHMARKS.md for what the figures mean.
 *
 *   pam_bench run [-s SCALE] [-w WARMUP] [-r ROUNDS] [-b BLOCK] [-f MAX_FAILURES] [-P PATH]...
 *                 ACCOUNTS SERVICE[:FLAGS]...
 *       ACCOUNTS holds `user base32secret` lines: the accounts that log in. Every account
 *       logs in WARMUP times (default 2; reported as phases login1, login2, ...) and then
 *       ROUNDS times (default 2; phase success) with a valid TOTP code, through each
 *       SERVICE. Logins are interleaved: BLOCK accounts (default 50) through one service,
 *       the same accounts through the next, and so on, the order of the services rotating
 *       from block to block, so every module sees the same machine and the ratios hold.
 *       FLAGS: 1  no warm-up and one measured round only (for a module whose every login
 *                 costs the same, first or not, and a lot: pam_oath at 100,000 accounts);
 *              w  then one login per account with a wrong code (phase wrong);
 *              l  then MAX_FAILURES-1 more wrong codes (not measured), and one login with a
 *                 valid code that the module must refuse without asking (phase locked).
 *       Three service names are not PAM but references for the analysis, timed in the
 *       same interleaved loop: @nss, the NSS lookups pam_mfa makes (getpwnam_r,
 *       getgrouplist, getgrgid_r per group); @syslog, one 230-byte datagram to /dev/log
 *       through a new socket, as pam_mfa sends its audit line; @fdatasync, open a per-account
 *       file in $BENCH_SCRATCH, pwrite 96 bytes into one of two slots 4 KiB apart,
 *       fdatasync, close, as pam_mfa updates its state file.
 *       -P PATH: dlopen PATH before the run and keep it loaded, so libpam's dlopen in
 *       pam_start finds it mapped (a long-running PAM application); by default each login
 *       loads and unloads the modules, as libpam does.
 *       Output (stdout): one tab-separated line per service and phase:
 *         scale service phase n failed median_us p90_us p99_us mean_us max_us logins_per_s
 *         rc prompts faults
 *       (rc: the most frequent return code; prompts: questions asked per login, mean;
 *       faults: page faults the process took per login, mean).
 *
 *   pam_bench rss BASE_SERVICE SERVICE MODULE_PATH USER BASE32
 *       One login through BASE_SERVICE (pam_permit: libpam's own first-use cost), then
 *       resets the peak RSS (/proc/self/clear_refs), dlopens MODULE_PATH, logs USER in once
 *       through SERVICE and prints: rss SERVICE rss_before_kb hwm_after_kb rss_after_kb
 *       anon_gained_kb file_gained_kb rc (VmRSS, VmHWM, RssAnon, RssFile)
 *
 *   pam_bench load COUNT MODULE_PATH...
 *       dlopen(RTLD_NOW) + dlclose COUNT times per module; the first load is also timed
 *       on its own (a fresh process). Prints: load PATH first_us median_us stays_mapped
 *
 *   pam_bench contend PROCESSES LOGINS SERVICE USER BASE32
 *       PROCESSES processes, let go together, each log USER in LOGINS times through
 *       SERVICE with a wrong code (each login takes the account's state lock twice and
 *       writes the state once, under it), timing each login. Prints: contend SERVICE
 *       processes logins median_us p90_us p99_us max_us failed (failed: a return other
 *       than PAM_AUTH_ERR or PAM_MAXTRIES).
 *
 *   pam_bench clients LABEL CLIENTS LOGINS FIRST_COUNTER ACCOUNTS SERVICE...
 *       CLIENTS processes, let go together; client i logs the i-th account of ACCOUNTS in
 *       LOGINS times through SERVICE number i modulo their count (one service per host),
 *       with the HOTP codes of counters FIRST_COUNTER, FIRST_COUNTER+1, ... Prints:
 *       clients LABEL clients logins median_us p90_us p99_us max_us logins_per_s failed
 *       (logins_per_s: all logins over the time from the start to the last client's end;
 *       failed: a return other than PAM_SUCCESS).
 *
 *   pam_bench burst PROCESSES USER CODE SERVICE...
 *       PROCESSES processes, let go together, each log USER in once with CODE, through
 *       SERVICE number i modulo their count. Prints: burst USER processes success
 *       auth_err maxtries other (how many logins ended with each return).
 *
 * With PAM_BENCH_CONFDIR=DIR in the environment, every login reads its service file from DIR
 * (libpam's pam_start_confdir) rather than through pam_wrapper.
 *
 * Codes are computed here (HMAC-SHA1, libcrypto) just before each login and never timed.
 * A module refuses a code whose step it has accepted already, so each account uses strictly
 * increasing steps: the code of step max(now-1, last+1), within the window of one step each
 * way that all three modules are configured with; if that is ahead of now+1 the harness
 * waits for the next step. A login that fails while the step changed under it is run again.
 *
 * Build: cc -O2 -Wall -Wextra -o pam_bench pam_bench.c -lpam -lcrypto -ldl
 */
#define _GNU_SOURCE
#include <security/pam_appl.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERIOD 30
#define MAX_SERVICES 32
#define MAX_PINS 16
#define MAX_PHASES 8

struct account {
	char *name;
	unsigned char key[64];
	size_t key_len;
};

struct series {
	char phase[16];
	double *us;
	size_t n;
	size_t failed;
	int rc_counts[64];
	long prompts;
	long faults;
};

enum reference { PAM, NSS, SYSLOG, FDATASYNC };

struct service {
	char *name;
	enum reference reference;
	int once;
	int wrong;
	int locked;
	int64_t *last_step; /* per account: last step accepted (0: none), or @fdatasync's writes */
	struct series phases[MAX_PHASES];
	int nphases;
};

struct conv_state {
	const char *answer;
	int prompts;
};

static void die(const char *what)
{
	fprintf(stderr, "pam_bench: %s\n", what);
	exit(2);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int64_t wall_step(void)
{
	return (int64_t)time(NULL) / PERIOD;
}

/* RFC 4648 base32, upper case, padding and spaces ignored. Returns the byte count or -1. */
static int base32_decode(const char *text, unsigned char *out, size_t cap)
{
	uint64_t buffer = 0;
	int bits = 0;
	size_t len = 0;
	for (const char *p = text; *p; p++) {
		int v;
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a';
		else if (c >= '2' && c <= '7')
			v = c - '2' + 26;
		else if (c == '=' || c == ' ' || c == '\n')
			continue;
		else
			return -1;
		buffer = (buffer << 5) | (uint64_t)v;
		bits += 5;
		if (bits >= 8) {
			if (len == cap)
				return -1;
			out[len++] = (unsigned char)(buffer >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)len;
}

/* RFC 4226 HOTP, SHA-1, 6 digits, of counter `step`; RFC 6238 TOTP is this of the time step. */
static unsigned totp(const struct account *a, int64_t step)
{
	unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(step & 0xff);
		step >>= 8;
	}
	if (!HMAC(EVP_sha1(), a->key, (int)a->key_len, msg, sizeof msg, mac, &mac_len))
		die("HMAC failed");
	int off = mac[mac_len - 1] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
		       ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
	return bin % 1000000;
}

/* A code that is valid for no step from now-2 to now+2. */
static unsigned wrong_code(const struct account *a)
{
	int64_t cur = wall_step();
	unsigned valid[5];
	for (int i = 0; i < 5; i++)
		valid[i] = totp(a, cur - 2 + i);
	unsigned code = valid[2];
	for (;;) {
		code = (code + 1) % 1000000;
		int clash = 0;
		for (int i = 0; i < 5; i++)
			clash |= code == valid[i];
		if (!clash)
			return code;
	}
}

static int conversation(int n, const struct pam_message **msg, struct pam_response **resp,
			void *appdata)
{
	struct conv_state *state = appdata;
	struct pam_response *replies = calloc((size_t)n, sizeof *replies);
	if (!replies)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			replies[i].resp = strdup(state->answer);
			state->prompts++;
		}
	}
	*resp = replies;
	return PAM_SUCCESS;
}

/* libpam sleeps after a failure when a module asks it to; the benchmark measures work. */
static void no_delay(int status, unsigned int delay, void *appdata)
{
	(void)status;
	(void)delay;
	(void)appdata;
}

/* One pam_start / pam_authenticate / pam_end; returns the latency in µs. */
static double pam_login(const char *service, const char *user, const char *answer, int *rc,
			int *prompts)
{
	struct conv_state state = { answer, 0 };
	struct pam_conv conv = { conversation, &state };
	pam_handle_t *pamh = NULL;
	/* Many processes at once: pam_wrapper's private copy of the service directory is
	 * picked with a check-then-create race, so those name the directory themselves. */
	const char *confdir = getenv("PAM_BENCH_CONFDIR");
	double start = now_us();
	int ret = confdir ? pam_start_confdir(service, user, &conv, confdir, &pamh)
			  : pam_start(service, user, &conv, &pamh);
	if (ret == PAM_SUCCESS) {
		pam_set_item(pamh, PAM_RHOST, "198.51.100.7");
		pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)no_delay);
		ret = pam_authenticate(pamh, 0);
		pam_end(pamh, ret);
	}
	double took = now_us() - start;
	*rc = ret;
	*prompts = state.prompts;
	return took;
}

/* What pam_mfa asks NSS for: the account, its group list, each group's name. */
static double nss_lookup(const char *user, int *rc)
{
	char buf[16384];
	struct passwd pw, *pwp = NULL;
	double start = now_us();
	int ret = getpwnam_r(user, &pw, buf, sizeof buf, &pwp);
	if (ret == 0 && pwp) {
		gid_t groups[256];
		int ngroups = 256;
		if (getgrouplist(user, pw.pw_gid, groups, &ngroups) < 0) {
			ret = -1;
		} else {
			for (int i = 0; i < ngroups && ret == 0; i++) {
				char gbuf[16384];
				struct group gr, *grp = NULL;
				if (getgrgid_r(groups[i], &gr, gbuf, sizeof gbuf, &grp) != 0 || !grp)
					ret = -1;
			}
		}
	} else {
		ret = -1;
	}
	double took = now_us() - start;
	*rc = ret == 0 ? PAM_SUCCESS : PAM_USER_UNKNOWN;
	return took;
}

/* pam_mfa's audit line: a fresh datagram socket, one sendto, close. */
static double syslog_send(const char *user, int *rc)
{
	char line[256];
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	snprintf(line, sizeof line,
		 "<38>Jan  1 00:00:00 pam_bench[%d]: service=bench-mfa user=%s rhost=198.51.100.7 "
		 "mode=optional rule=default outcome=success reason=\"valid code\" why=\"no rule "
		 "matches; default_mode applies\"",
		 (int)getpid(), user);
	double start = now_us();
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ssize_t sent = fd < 0 ? -1
			      : sendto(fd, line, strlen(line), MSG_NOSIGNAL, (struct sockaddr *)&addr,
				       sizeof addr);
	if (fd >= 0)
		close(fd);
	double took = now_us() - start;
	*rc = sent > 0 ? PAM_SUCCESS : PAM_SYSTEM_ERR;
	return took;
}

/* pam_mfa's state update: open, pwrite into the other slot, fdatasync, close. */
static double state_write(const char *user, unsigned long nth, int *rc)
{
	const char *dir = getenv("BENCH_SCRATCH");
	char path[4096], slot[96];
	snprintf(path, sizeof path, "%s/%s.sync", dir ? dir : "/tmp", user);
	memset(slot, (int)(nth & 0xff), sizeof slot);
	double start = now_us();
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	int ok = fd >= 0 && pwrite(fd, slot, sizeof slot, (off_t)(nth % 2) * 4096) == sizeof slot &&
		 fdatasync(fd) == 0;
	if (fd >= 0)
		close(fd);
	double took = now_us() - start;
	*rc = ok ? PAM_SUCCESS : PAM_SYSTEM_ERR;
	return took;
}

static struct series *phase_of(struct service *s, const char *phase, size_t capacity)
{
	for (int i = 0; i < s->nphases; i++)
		if (strcmp(s->phases[i].phase, phase) == 0)
			return &s->phases[i];
	if (s->nphases == MAX_PHASES)
		die("too many phases");
	struct series *p = &s->phases[s->nphases++];
	memset(p, 0, sizeof *p);
	snprintf(p->phase, sizeof p->phase, "%s", phase);
	p->us = calloc(capacity, sizeof *p->us);
	if (!p->us)
		die("out of memory");
	return p;
}

enum kind { VALID, WRONG };

/* One login of account `i` through `s`, with a valid code (next unused step) or a wrong one. */
static void login(struct service *s, struct account *accounts, size_t i, enum kind kind,
		  struct series *into, size_t capacity, int expect_success)
{
	struct account *a = &accounts[i];
	for (int attempt = 0;; attempt++) {
		char answer[16];
		int64_t step = 0;
		if (s->reference != PAM) {
			answer[0] = '\0';
		} else if (kind == VALID) {
			int64_t cur;
			for (;;) {
				time_t t = time(NULL);
				cur = (int64_t)t / PERIOD;
				int last_second = t % PERIOD == PERIOD - 1;
				step = cur - (last_second ? 0 : 1);
				if (step <= s->last_step[i])
					step = s->last_step[i] + 1;
				if (step <= cur + 1)
					break;
				/* Every step of the window is used: wait for the next one. */
				usleep((useconds_t)((PERIOD - t % PERIOD) * 1000000 + 20000));
			}
			snprintf(answer, sizeof answer, "%06u", totp(a, step));
		} else {
			snprintf(answer, sizeof answer, "%06u", wrong_code(a));
		}
		int64_t before = wall_step();
		int rc = 0, prompts = 0;
		struct rusage usage;
		getrusage(RUSAGE_SELF, &usage);
		long faults = usage.ru_minflt + usage.ru_majflt;
		double us;
		switch (s->reference) {
		case NSS: us = nss_lookup(a->name, &rc); break;
		case SYSLOG: us = syslog_send(a->name, &rc); break;
		case FDATASYNC: us = state_write(a->name, (unsigned long)s->last_step[i]++, &rc); break;
		default: us = pam_login(s->name, a->name, answer, &rc, &prompts); break;
		}
		getrusage(RUSAGE_SELF, &usage);
		faults = usage.ru_minflt + usage.ru_majflt - faults;
		int ok = expect_success ? rc == PAM_SUCCESS : rc != PAM_SUCCESS;
		if (!ok && kind == VALID && attempt == 0 && wall_step() != before)
			continue; /* the step turned during the login: run it again */
		if (s->reference == PAM && kind == VALID && rc == PAM_SUCCESS)
			s->last_step[i] = step;
		if (into) {
			if (into->n < capacity)
				into->us[into->n++] = us;
			into->failed += !ok;
			into->rc_counts[rc >= 0 && rc < 64 ? rc : 63]++;
			into->prompts += prompts;
			into->faults += faults;
		}
		if (!ok && (!into || into->failed <= 3))
			fprintf(stderr, "pam_bench: %s %s %s: unexpected return code %d\n", s->name,
				into ? into->phase : "(unmeasured)", a->name, rc);
		return;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static void report(const char *scale, const struct service *s, const struct series *p)
{
	double *v = p->us;
	size_t n = p->n;
	qsort(v, n, sizeof *v, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	double mean = n ? sum / (double)n : 0;
	int best = 0;
	for (int rc = 0; rc < 64; rc++)
		if (p->rc_counts[rc] > p->rc_counts[best])
			best = rc;
	printf("%s\t%s\t%s\t%zu\t%zu\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t%.2f\t%.1f\n",
	       scale, s->name, p->phase, n, p->failed, percentile(v, n, 50), percentile(v, n, 90),
	       percentile(v, n, 99), mean, n ? v[n - 1] : 0, mean > 0 ? 1e6 / mean : 0, best,
	       n ? (double)p->prompts / (double)n : 0, n ? (double)p->faults / (double)n : 0);
}

static size_t read_accounts(const char *path, struct account **out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot open the accounts file");
	size_t cap = 1024, n = 0;
	struct account *list = malloc(cap * sizeof *list);
	char line[512], name[256], secret[256];
	while (list && fgets(line, sizeof line, f)) {
		if (sscanf(line, "%255s %255s", name, secret) != 2)
			continue;
		if (n == cap)
			list = realloc(list, (cap *= 2) * sizeof *list);
		if (!list)
			break;
		int len = base32_decode(secret, list[n].key, sizeof list[n].key);
		if (len <= 0)
			die("bad base32 secret in the accounts file");
		list[n].key_len = (size_t)len;
		list[n].name = strdup(name);
		n++;
	}
	fclose(f);
	if (!list)
		die("out of memory");
	*out = list;
	return n;
}

/* Runs `body` for every account, interleaved by blocks across the services. */
#define INTERLEAVE(services, nservices, naccounts, block, body)                               \
	for (size_t start_ = 0, b_ = 0; start_ < (naccounts); start_ += (block), b_++)        \
		for (int k_ = 0; k_ < (nservices); k_++) {                                     \
			struct service *svc = &(services)[(k_ + b_) % (size_t)(nservices)];   \
			for (size_t i = start_; i < start_ + (block) && i < (naccounts); i++) \
				body;                                                          \
		}

static int run(int argc, char **argv)
{
	const char *scale = "-";
	int warmup = 2, rounds = 2, max_failures = 5, opt;
	size_t block = 50;
	int npins = 0;
	const char *pins[MAX_PINS];
	while ((opt = getopt(argc, argv, "s:w:r:b:f:P:")) != -1) {
		switch (opt) {
		case 's': scale = optarg; break;
		case 'w': warmup = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'b': block = (size_t)atol(optarg); break;
		case 'f': max_failures = atoi(optarg); break;
		case 'P':
			if (npins == MAX_PINS)
				die("too many -P");
			pins[npins++] = optarg;
			break;
		default: die("usage: pam_bench run [options] ACCOUNTS SERVICE[:FLAGS]...");
		}
	}
	if (argc - optind < 2 || block == 0 || rounds < 1 || warmup < 0 ||
	    warmup + rounds >= MAX_PHASES - 2)
		die("usage: pam_bench run [options] ACCOUNTS SERVICE[:FLAGS]...");
	for (int i = 0; i < npins; i++)
		if (!dlopen(pins[i], RTLD_NOW))
			die(dlerror());

	struct account *accounts;
	size_t naccounts = read_accounts(argv[optind], &accounts);
	if (naccounts == 0)
		die("no accounts");
	struct service services[MAX_SERVICES];
	int nservices = 0;
	for (int i = optind + 1; i < argc; i++) {
		if (nservices == MAX_SERVICES)
			die("too many services");
		struct service *s = &services[nservices++];
		memset(s, 0, sizeof *s);
		s->name = strdup(argv[i]);
		char *flags = strchr(s->name, ':');
		if (flags) {
			*flags++ = '\0';
			s->once = strchr(flags, '1') != NULL;
			s->wrong = strchr(flags, 'w') != NULL;
			s->locked = strchr(flags, 'l') != NULL;
		}
		s->reference = strcmp(s->name, "@nss") == 0	      ? NSS
			       : strcmp(s->name, "@syslog") == 0    ? SYSLOG
			       : strcmp(s->name, "@fdatasync") == 0 ? FDATASYNC
								    : PAM;
		s->last_step = calloc(naccounts, sizeof *s->last_step);
		if (!s->last_step)
			die("out of memory");
	}

	size_t cap = naccounts * (size_t)rounds;
	for (int r = 0; r < warmup; r++) {
		char phase[16];
		snprintf(phase, sizeof phase, "login%d", r + 1);
		INTERLEAVE(services, nservices, naccounts, block, {
			if (!svc->once)
				login(svc, accounts, i, VALID, phase_of(svc, phase, cap), cap, 1);
		});
	}
	for (int r = 0; r < rounds; r++)
		INTERLEAVE(services, nservices, naccounts, block, {
			if (r == 0 || !svc->once)
				login(svc, accounts, i, VALID, phase_of(svc, "success", cap), cap, 1);
		});
	INTERLEAVE(services, nservices, naccounts, block, {
		if (svc->wrong)
			login(svc, accounts, i, WRONG, phase_of(svc, "wrong", cap), cap, 0);
	});
	INTERLEAVE(services, nservices, naccounts, block, {
		if (svc->locked) {
			for (int f = 1; f < max_failures; f++)
				login(svc, accounts, i, WRONG, NULL, cap, 0);
			login(svc, accounts, i, VALID, phase_of(svc, "locked", cap), cap, 0);
		}
	});

	int bad = 0;
	for (int k = 0; k < nservices; k++)
		for (int p = 0; p < services[k].nphases; p++) {
			report(scale, &services[k], &services[k].phases[p]);
			bad |= services[k].phases[p].failed != 0;
		}
	fflush(stdout);
	return bad ? 1 : 0;
}

static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t len = strlen(field);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, field, len) == 0 && line[len] == ':')
			kb = atol(line + len + 1);
	if (f)
		fclose(f);
	return kb;
}

static int rss(int argc, char **argv)
{
	if (argc != 6)
		die("usage: pam_bench rss BASE_SERVICE SERVICE MODULE_PATH USER BASE32");
	struct account a = { .name = argv[4] };
	int len = base32_decode(argv[5], a.key, sizeof a.key);
	if (len <= 0)
		die("bad base32 secret");
	a.key_len = (size_t)len;
	int rc, prompts;
	/* The code first: libcrypto's first use costs the harness itself about 2 MB. */
	char answer[16];
	snprintf(answer, sizeof answer, "%06u", totp(&a, wall_step()));
	pam_login(argv[1], a.name, "000000", &rc, &prompts);
	long before = status_kb("VmRSS"), anon = status_kb("RssAnon"), file = status_kb("RssFile");
	FILE *clear = fopen("/proc/self/clear_refs", "w");
	if (!clear || fputs("5", clear) < 0 || fclose(clear) != 0)
		die("cannot reset the peak RSS through /proc/self/clear_refs");
	if (!dlopen(argv[3], RTLD_NOW))
		die(dlerror());
	pam_login(argv[2], a.name, answer, &rc, &prompts);
	printf("rss\t%s\t%ld\t%ld\t%ld\t%ld\t%ld\t%d\n", argv[2], before, status_kb("VmHWM"),
	       status_kb("VmRSS"), status_kb("RssAnon") - anon, status_kb("RssFile") - file, rc);
	return rc == PAM_SUCCESS ? 0 : 1;
}

static int mapped(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, base) != NULL;
	if (f)
		fclose(f);
	return found;
}

static int load(int argc, char **argv)
{
	if (argc < 3)
		die("usage: pam_bench load COUNT MODULE_PATH...");
	int count = atoi(argv[1]);
	if (count < 1)
		die("COUNT must be positive");
	double *v = calloc((size_t)count, sizeof *v);
	if (!v)
		die("out of memory");
	for (int m = 2; m < argc; m++) {
		double first = 0;
		for (int i = 0; i < count; i++) {
			double start = now_us();
			void *h = dlopen(argv[m], RTLD_NOW);
			if (!h)
				die(dlerror());
			dlclose(h);
			v[i] = now_us() - start;
			if (i == 0)
				first = v[0];
		}
		qsort(v, (size_t)count, sizeof *v, cmp_double);
		printf("load\t%s\t%.1f\t%.1f\t%s\n", argv[m], first, percentile(v, (size_t)count, 50),
		       mapped(argv[m]) ? "yes" : "no");
	}
	return 0;
}

/* What a child of a gang reports for each login. */
struct record {
	double us;
	int rc;
};

/* A child's work: runs after the start signal and writes one record per login to `out`. */
typedef void (*job_fn)(int index, int out, void *arg);

static void put_record(int out, double us, int rc)
{
	struct record r = { us, rc };
	if (write(out, &r, sizeof r) != sizeof r)
		_exit(2);
}

/*
 * Forks `n` processes that wait on one pipe, lets them all go at once and collects up to
 * `cap` records until every child has exited. Sets *wall_us to the time from the start
 * signal to the last child's end. Waits only for the children forked here: a shell's process
 * substitution on this process's stderr (bench.sh's filter) is a child too, and it ends only
 * after this process does.
 */
static size_t gang(int n, job_fn job, void *arg, struct record *out, size_t cap, double *wall_us)
{
	int go[2], results[2];
	if (pipe(go) != 0 || pipe(results) != 0)
		die("pipe");
	pid_t *children = calloc((size_t)n, sizeof *children);
	if (!children)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		children[i] = pid;
		if (pid == 0) {
			char c;
			close(go[1]);
			close(results[0]);
			if (read(go[0], &c, 1) < 0)
				_exit(2);
			job(i, results[1], arg);
			_exit(0);
		}
	}
	close(go[0]);
	close(results[1]);
	double start = now_us();
	close(go[1]); /* let them all go */
	size_t got = 0;
	struct record r;
	while (read(results[0], &r, sizeof r) == sizeof r)
		if (got < cap)
			out[got++] = r;
	close(results[0]);
	for (int i = 0; i < n; i++)
		while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
			;
	*wall_us = now_us() - start;
	free(children);
	return got;
}

/* Sorts the latencies of `n` records into `v` (n doubles). */
static void latencies(const struct record *r, size_t n, double *v)
{
	for (size_t i = 0; i < n; i++)
		v[i] = r[i].us;
	qsort(v, n, sizeof *v, cmp_double);
}

struct contend_job {
	const char *service;
	const char *user;
	char answer[16];
	int logins;
};

static void contend_one(int index, int out, void *arg)
{
	const struct contend_job *j = arg;
	(void)index;
	for (int i = 0; i < j->logins; i++) {
		int rc, prompts;
		double us = pam_login(j->service, j->user, j->answer, &rc, &prompts);
		put_record(out, us, rc);
	}
}

/* Issue 18, item 15: how long a login waits for the state lock of an account that many
 * processes log in to at once. */
static int contend(int argc, char **argv)
{
	if (argc != 6)
		die("usage: pam_bench contend PROCESSES LOGINS SERVICE USER BASE32");
	int procs = atoi(argv[1]), logins = atoi(argv[2]);
	if (procs < 1 || logins < 1)
		die("usage: pam_bench contend PROCESSES LOGINS SERVICE USER BASE32");
	struct account a = { .name = argv[4] };
	int len = base32_decode(argv[5], a.key, sizeof a.key);
	if (len <= 0)
		die("bad base32 secret");
	a.key_len = (size_t)len;
	struct contend_job job = { argv[3], a.name, "", logins };
	snprintf(job.answer, sizeof job.answer, "%06u", wrong_code(&a));
	size_t n = (size_t)procs * (size_t)logins, failed = 0;
	struct record *r = malloc(n * sizeof *r);
	double *v = malloc(n * sizeof *v), wall;
	if (!r || !v)
		die("out of memory");
	size_t got = gang(procs, contend_one, &job, r, n, &wall);
	for (size_t i = 0; i < got; i++)
		failed += r[i].rc != PAM_AUTH_ERR && r[i].rc != PAM_MAXTRIES;
	latencies(r, got, v);
	printf("contend\t%s\t%d\t%zu\t%.0f\t%.0f\t%.0f\t%.0f\t%zu\n", argv[3], procs, got,
	       percentile(v, got, 50), percentile(v, got, 90), percentile(v, got, 99),
	       got ? v[got - 1] : 0.0, failed + (n - got));
	free(r);
	free(v);
	return got == n && failed == 0 ? 0 : 1;
}

struct clients_job {
	struct account *accounts;
	char **services;
	int nservices;
	int logins;
	int64_t first;
};

/* Client `index`: its own account, through service index % nservices, HOTP counters
 * first, first+1, ... (each code computed before its login, not timed). */
static void client(int index, int out, void *arg)
{
	const struct clients_job *j = arg;
	const struct account *a = &j->accounts[index];
	const char *service = j->services[index % j->nservices];
	for (int i = 0; i < j->logins; i++) {
		char answer[16];
		int rc, prompts;
		snprintf(answer, sizeof answer, "%06u", totp(a, j->first + i));
		double us = pam_login(service, a->name, answer, &rc, &prompts);
		put_record(out, us, rc);
	}
}

/* Issue 15: parallel clients, each logging its own HOTP account in over and over, spread
 * over the services (one per host). */
static int clients(int argc, char **argv)
{
	const char *usage = "usage: pam_bench clients LABEL CLIENTS LOGINS FIRST_COUNTER ACCOUNTS SERVICE...";
	if (argc < 7)
		die(usage);
	int procs = atoi(argv[2]), logins = atoi(argv[3]);
	if (procs < 1 || logins < 1)
		die(usage);
	struct clients_job job = { NULL, argv + 6, argc - 6, logins, atoll(argv[4]) };
	if (read_accounts(argv[5], &job.accounts) < (size_t)procs)
		die("fewer accounts than clients");
	size_t n = (size_t)procs * (size_t)logins, failed = 0;
	struct record *r = malloc(n * sizeof *r);
	double *v = malloc(n * sizeof *v), wall;
	if (!r || !v)
		die("out of memory");
	size_t got = gang(procs, client, &job, r, n, &wall);
	for (size_t i = 0; i < got; i++)
		failed += r[i].rc != PAM_SUCCESS;
	latencies(r, got, v);
	printf("clients\t%s\t%d\t%zu\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%zu\n", argv[1], procs, got,
	       percentile(v, got, 50), percentile(v, got, 90), percentile(v, got, 99),
	       got ? v[got - 1] : 0.0, (double)got / (wall / 1e6), failed + (n - got));
	free(r);
	free(v);
	return got == n && failed == 0 ? 0 : 1;
}

struct burst_job {
	const char *user;
	const char *answer;
	char **services;
	int nservices;
};

static void burst_one(int index, int out, void *arg)
{
	const struct burst_job *j = arg;
	int rc, prompts;
	double us = pam_login(j->services[index % j->nservices], j->user, j->answer, &rc, &prompts);
	put_record(out, us, rc);
}

/* Issue 15: the same code sent PROCESSES times at once, spread over the services: how many
 * logins it let in (a replay race), or, for a wrong code, how many the module turned away. */
static int burst(int argc, char **argv)
{
	if (argc < 5 || atoi(argv[1]) < 1)
		die("usage: pam_bench burst PROCESSES USER CODE SERVICE...");
	int procs = atoi(argv[1]);
	struct burst_job job = { argv[2], argv[3], argv + 4, argc - 4 };
	struct record *r = malloc((size_t)procs * sizeof *r);
	double wall;
	if (!r)
		die("out of memory");
	size_t got = gang(procs, burst_one, &job, r, (size_t)procs, &wall);
	size_t success = 0, auth_err = 0, maxtries = 0;
	for (size_t i = 0; i < got; i++) {
		success += r[i].rc == PAM_SUCCESS;
		auth_err += r[i].rc == PAM_AUTH_ERR;
		maxtries += r[i].rc == PAM_MAXTRIES;
	}
	printf("burst\t%s\t%d\t%zu\t%zu\t%zu\t%zu\n", argv[2], procs, success, auth_err, maxtries,
	       (size_t)procs - success - auth_err - maxtries);
	free(r);
	return got == (size_t)procs ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "contend") == 0)
		return contend(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "clients") == 0)
		return clients(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "burst") == 0)
		return burst(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "rss") == 0)
		return rss(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "load") == 0)
		return load(argc - 1, argv + 1);
	die("usage: pam_bench run|contend|clients|burst|rss|load ...");
}
