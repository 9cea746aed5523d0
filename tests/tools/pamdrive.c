/*
 * pamdrive: a small PAM application for the integration tests.
 *
 * Usage: pamdrive [--confdir DIR] [--rhost H] [--ruser U] [--tty T] [--repeat N]
 *                 [--setcred] [--silent] [--answer-cmd CMD] [--swap-conv] [--report-dumpable] SERVICE USER [ANSWER...]
 *
 * Runs pam_start / pam_authenticate / pam_end (N times with --repeat, the
 * same answers each round) and reports, one line each on stdout:
 *   msg STYLE TEXT     every message the conversation receives
 *                      (STYLE: echo_off | echo_on | error | info | style_N;
 *                      a newline inside TEXT is written as \n, a backslash as \\)
 *   rc N NAME          pam_authenticate's return, NAME its PAM_* constant
 *   setcred N NAME     with --setcred: pam_setcred(PAM_ESTABLISH_CRED)'s return
 *
 * Each echo-off or echo-on prompt consumes the next ANSWER. Special answers:
 *   @null      reply with resp = NULL
 *   @empty     reply with ""
 *   @convfail  the conversation function returns PAM_CONV_ERR
 * When the answers run out, the conversation returns PAM_CONV_ERR, unless --answer-cmd
 * is given.
 *
 * --answer-cmd CMD answers each prompt left after the ANSWERs from what the conversation
 * has shown so far: CMD runs through /bin/sh (popen) with LAST_INFO set to the text of the
 * last PAM_TEXT_INFO message of this round (empty if none; newlines kept) and PROMPT to the
 * prompt, and the first line it prints is the answer. If CMD prints nothing or exits with a
 * non-zero status, the conversation returns PAM_CONV_ERR. (For enrollment at login: CMD
 * reads the secret from the otpauth URI in LAST_INFO and prints oathtool's code.)
 *
 * --report-dumpable prints `dumpable N` (prctl PR_GET_DUMPABLE) at each conversation call
 * and after each pam_authenticate.
 *
 * --swap-conv makes the conversation function set a new PAM_CONV (same function, same
 * appdata, in a new struct) before it returns, as libpam allows: libpam then frees the
 * struct the module got from pam_get_item(PAM_CONV). A module that kept it reads freed
 * memory at its next message, which valgrind or ASan reports.
 *
 * --confdir DIR reads the service files from DIR through libpam's own pam_start_confdir
 * (Linux-PAM 1.4+) instead of pam_start. pam_wrapper does the same, but first copies the
 * service files into a directory /tmp/pam.X that it picks with a check-then-create race, and
 * removes when the process exits: processes started at the same moment can share or lose that
 * directory and read each other's services or fail. --confdir needs no pam_wrapper and keeps
 * parallel runs apart.
 *
 * The failure delay is set aside (PAM_FAIL_DELAY) so that tests stay fast.
 * Exit status: 0 whatever PAM returned, 2 on a usage error, 3 if pam_start fails.
 *
 * Build: cc -Wall -Wextra -O2 -o pamdrive pamdrive.c -lpam
 */
#include <security/pam_appl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

struct answers {
	char **items;
	int count;
	int next;
	/* --answer-cmd, or NULL */
	const char *cmd;
	/* the text of the last PAM_TEXT_INFO message of this round, or NULL */
	char *last_info;
	/* --report-dumpable */
	int report_dumpable;
	/* --swap-conv: the handle whose PAM_CONV each call replaces, else NULL */
	pam_handle_t *swap_in;
};

static int conversation(int num_msg, const struct pam_message **msg,
			struct pam_response **resp, void *appdata_ptr);

/* Replaces the handle's PAM_CONV with an equal one in a new struct; libpam copies it and
 * frees the one it held. Returns the conversation's result, or PAM_CONV_ERR. */
static int swap_conversation(struct answers *answers, int rc)
{
	if (answers->swap_in == NULL)
		return rc;
	struct pam_conv fresh = { .conv = conversation, .appdata_ptr = answers };
	if (pam_set_item(answers->swap_in, PAM_CONV, &fresh) != PAM_SUCCESS) {
		fputs("pamdrive: pam_set_item(PAM_CONV) failed\n", stderr);
		return PAM_CONV_ERR;
	}
	return rc;
}

static const char *const pam_names[] = {
	"PAM_SUCCESS",
	"PAM_OPEN_ERR",
	"PAM_SYMBOL_ERR",
	"PAM_SERVICE_ERR",
	"PAM_SYSTEM_ERR",
	"PAM_BUF_ERR",
	"PAM_PERM_DENIED",
	"PAM_AUTH_ERR",
	"PAM_CRED_INSUFFICIENT",
	"PAM_AUTHINFO_UNAVAIL",
	"PAM_USER_UNKNOWN",
	"PAM_MAXTRIES",
	"PAM_NEW_AUTHTOK_REQD",
	"PAM_ACCT_EXPIRED",
	"PAM_SESSION_ERR",
	"PAM_CRED_UNAVAIL",
	"PAM_CRED_EXPIRED",
	"PAM_CRED_ERR",
	"PAM_NO_MODULE_DATA",
	"PAM_CONV_ERR",
	"PAM_AUTHTOK_ERR",
	"PAM_AUTHTOK_RECOVERY_ERR",
	"PAM_AUTHTOK_LOCK_BUSY",
	"PAM_AUTHTOK_DISABLE_AGING",
	"PAM_TRY_AGAIN",
	"PAM_IGNORE",
	"PAM_ABORT",
	"PAM_AUTHTOK_EXPIRED",
	"PAM_MODULE_UNKNOWN",
	"PAM_BAD_ITEM",
	"PAM_CONV_AGAIN",
	"PAM_INCOMPLETE",
};

static const char *pam_name(int rc)
{
	if (rc >= 0 && (size_t)rc < sizeof(pam_names) / sizeof(pam_names[0]))
		return pam_names[rc];
	return "PAM_UNKNOWN_CODE";
}

static void print_message(int style, const char *text)
{
	switch (style) {
	case PAM_PROMPT_ECHO_OFF:
		fputs("msg echo_off ", stdout);
		break;
	case PAM_PROMPT_ECHO_ON:
		fputs("msg echo_on ", stdout);
		break;
	case PAM_ERROR_MSG:
		fputs("msg error ", stdout);
		break;
	case PAM_TEXT_INFO:
		fputs("msg info ", stdout);
		break;
	default:
		printf("msg style_%d ", style);
		break;
	}
	if (text == NULL)
		text = "(null)";
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\\')
			fputs("\\\\", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
	fflush(stdout);
}

/*
 * Runs --answer-cmd for one prompt; returns its first output line (malloc'd, without the
 * newline), or NULL if it printed nothing or failed.
 */
static char *answer_from_cmd(const struct answers *answers, const char *prompt)
{
	if (setenv("LAST_INFO", answers->last_info != NULL ? answers->last_info : "", 1) != 0 ||
	    setenv("PROMPT", prompt != NULL ? prompt : "", 1) != 0) {
		perror("pamdrive: setenv");
		return NULL;
	}
	FILE *out = popen(answers->cmd, "r");
	if (out == NULL) {
		perror("pamdrive: popen");
		return NULL;
	}
	char *first = NULL;
	char *line = NULL;
	size_t size = 0;
	ssize_t length;
	/* Read everything, so the command never blocks on a full pipe; keep the first line. */
	while ((length = getline(&line, &size, out)) >= 0) {
		if (first != NULL)
			continue;
		if (length > 0 && line[length - 1] == '\n')
			line[length - 1] = '\0';
		first = strdup(line);
	}
	free(line);
	int status = pclose(out);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "pamdrive: --answer-cmd failed (status %d)\n", status);
		free(first);
		return NULL;
	}
	if (first == NULL)
		fputs("pamdrive: --answer-cmd printed nothing\n", stderr);
	return first;
}

static void free_replies(struct pam_response *replies, int count)
{
	for (int i = 0; i < count; i++)
		free(replies[i].resp);
	free(replies);
}

static int answer_all(int num_msg, const struct pam_message **msg,
		      struct pam_response **resp, struct answers *answers)
{

	if (num_msg <= 0 || msg == NULL || resp == NULL)
		return PAM_CONV_ERR;

	struct pam_response *replies = calloc((size_t)num_msg, sizeof(*replies));
	if (replies == NULL)
		return PAM_BUF_ERR;

	for (int i = 0; i < num_msg; i++) {
		int style = msg[i]->msg_style;
		print_message(style, msg[i]->msg);
		if (style == PAM_TEXT_INFO && msg[i]->msg != NULL) {
			free(answers->last_info);
			answers->last_info = strdup(msg[i]->msg);
		}
		if (style != PAM_PROMPT_ECHO_OFF && style != PAM_PROMPT_ECHO_ON)
			continue;
		if (answers->next >= answers->count && answers->cmd != NULL) {
			replies[i].resp = answer_from_cmd(answers, msg[i]->msg);
			if (replies[i].resp == NULL) {
				free_replies(replies, num_msg);
				return PAM_CONV_ERR;
			}
			continue;
		}
		if (answers->next >= answers->count) {
			free_replies(replies, num_msg);
			return PAM_CONV_ERR;
		}
		const char *answer = answers->items[answers->next++];
		if (strcmp(answer, "@convfail") == 0) {
			free_replies(replies, num_msg);
			return PAM_CONV_ERR;
		}
		if (strcmp(answer, "@null") == 0)
			continue;
		if (strcmp(answer, "@empty") == 0)
			answer = "";
		replies[i].resp = strdup(answer);
		if (replies[i].resp == NULL) {
			free_replies(replies, num_msg);
			return PAM_BUF_ERR;
		}
	}
	*resp = replies;
	return PAM_SUCCESS;
}

static int conversation(int num_msg, const struct pam_message **msg,
			struct pam_response **resp, void *appdata_ptr)
{
	struct answers *answers = appdata_ptr;
	if (answers->report_dumpable) {
		printf("dumpable %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
		fflush(stdout);
	}
	int rc = answer_all(num_msg, msg, resp, answers);
	return swap_conversation(answers, rc);
}

/* Tests have no use for the failure delay: a delay function that waits not at all, and
 * reports the delay the modules asked for (libpam scales it by 0.5 to 1.5). */
static void no_fail_delay(int retval, unsigned usec_delay, void *appdata_ptr)
{
	(void)retval;
	(void)appdata_ptr;
	printf("delay %u\n", usec_delay);
	fflush(stdout);
}

static void usage(void)
{
	fputs("usage: pamdrive [--confdir DIR] [--rhost H] [--ruser U] [--tty T] [--repeat N]"
	      " [--setcred] [--silent] [--answer-cmd CMD] [--swap-conv] [--report-dumpable] SERVICE USER [ANSWER...]\n",
	      stderr);
	exit(2);
}

static int set_item(pam_handle_t *pamh, int type, const void *value, const char *what)
{
	int rc = pam_set_item(pamh, type, value);
	if (rc != PAM_SUCCESS)
		fprintf(stderr, "pamdrive: pam_set_item(%s): %s\n", what, pam_strerror(pamh, rc));
	return rc;
}

int main(int argc, char **argv)
{
	const char *confdir = NULL;
	const char *rhost = NULL;
	const char *ruser = NULL;
	const char *tty = NULL;
	const char *answer_cmd = NULL;
	long repeat = 1;
	int setcred = 0;
	int auth_flags = 0;
	int swap_conv = 0;
	int answers_report_dumpable = 0;
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i];
		if (strcmp(opt, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(opt, "--setcred") == 0) {
			setcred = 1;
			continue;
		}
		if (strcmp(opt, "--silent") == 0) {
			auth_flags |= PAM_SILENT;
			continue;
		}
		if (strcmp(opt, "--report-dumpable") == 0) {
			answers_report_dumpable = 1;
			continue;
		}
		if (strcmp(opt, "--swap-conv") == 0) {
			swap_conv = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *value = argv[++i];
		if (strcmp(opt, "--confdir") == 0) {
			confdir = value;
		} else if (strcmp(opt, "--rhost") == 0) {
			rhost = value;
		} else if (strcmp(opt, "--ruser") == 0) {
			ruser = value;
		} else if (strcmp(opt, "--tty") == 0) {
			tty = value;
		} else if (strcmp(opt, "--answer-cmd") == 0) {
			answer_cmd = value;
		} else if (strcmp(opt, "--repeat") == 0) {
			char *end = NULL;
			repeat = strtol(value, &end, 10);
			if (*value == '\0' || *end != '\0' || repeat < 1 || repeat > 10000)
				usage();
		} else {
			usage();
		}
	}
	if (argc - i < 2)
		usage();

	const char *service = argv[i];
	const char *user = argv[i + 1];
	struct answers answers = {
		.items = argv + i + 2,
		.count = argc - i - 2,
		.next = 0,
		.cmd = answer_cmd,
		.last_info = NULL,
		.swap_in = NULL,
		.report_dumpable = answers_report_dumpable,
	};
	struct pam_conv conv = { .conv = conversation, .appdata_ptr = &answers };

	for (long round = 0; round < repeat; round++) {
		pam_handle_t *pamh = NULL;
		answers.next = 0;
		free(answers.last_info);
		answers.last_info = NULL;

		int rc = confdir != NULL
			? pam_start_confdir(service, user, &conv, confdir, &pamh)
			: pam_start(service, user, &conv, &pamh);
		if (rc != PAM_SUCCESS || pamh == NULL) {
			fprintf(stderr, "pamdrive: pam_start: %d %s\n", rc, pam_name(rc));
			return 3;
		}
		answers.swap_in = swap_conv ? pamh : NULL;
		void (*delay_fn)(int, unsigned, void *) = no_fail_delay;
		rc = set_item(pamh, PAM_FAIL_DELAY, (const void *)delay_fn, "PAM_FAIL_DELAY");
		if (rc == PAM_SUCCESS && rhost != NULL)
			rc = set_item(pamh, PAM_RHOST, rhost, "PAM_RHOST");
		if (rc == PAM_SUCCESS && ruser != NULL)
			rc = set_item(pamh, PAM_RUSER, ruser, "PAM_RUSER");
		if (rc == PAM_SUCCESS && tty != NULL)
			rc = set_item(pamh, PAM_TTY, tty, "PAM_TTY");
		if (rc != PAM_SUCCESS) {
			pam_end(pamh, rc);
			return 3;
		}

		rc = pam_authenticate(pamh, auth_flags);
		printf("rc %d %s\n", rc, pam_name(rc));
		if (answers.report_dumpable)
			printf("dumpable %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
		fflush(stdout);

		if (setcred) {
			int cred_rc = pam_setcred(pamh, PAM_ESTABLISH_CRED);
			printf("setcred %d %s\n", cred_rc, pam_name(cred_rc));
			fflush(stdout);
		}
		pam_end(pamh, rc);
	}
	free(answers.last_info);
	return 0;
}
