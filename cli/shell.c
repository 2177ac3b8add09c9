/*
 * `cachecli shell`: an interactive prompt for the data commands.
 *
 * On a terminal, lines are read with libedit (line editing, Tab completion
 * of the command word, history kept in $HOME/.cachecli_history, none when
 * HOME is unset); otherwise lines are read from stdin as they come, with no
 * prompt, so `cachecli shell < commands.txt` works as a script. Words are
 * split as redis-cli splits them (the data nodes' inline-command parser:
 * "double quotes" with \n and \x41 escapes, 'single quotes'). The map and
 * the connections to data nodes stay open for the session; the map is
 * checked again (a cheap epoch comparison) before a command when it is
 * more than MAP_MAX_AGE_MS old.
 *
 * Every command prints what the one-shot command prints; a missing key
 * prints "(nil)". Errors go to stderr and the shell goes on. At end of
 * input the shell exits with the status of its last command (0 after help
 * or quit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"
#include "common/flags.h"
#include "common/resp.h"
#include "net.h"

#define MAP_MAX_AGE_MS 5000
#define HISTORY_MAX 1000
#define MAX_LINE (64 * 1024) /* the inline parser's limit */

static const char shell_help[] =
        "commands:\n"
        "  get KEY            print the value, or (nil); a hash, set, list\n"
        "                     or sorted set one per line: field<TAB>value,\n"
        "                     member, element (head first), member<TAB>score\n"
        "                     (by score); bytes as stored, newlines and tabs\n"
        "                     in them not escaped\n"
        "  set KEY VALUE [--ttl SECONDS] [--nx|--xx]\n"
        "                     store it; --nx only if absent, --xx only if\n"
        "                     present\n"
        "  del KEY...         delete; prints how many existed\n"
        "  ttl KEY            seconds left, -1 without expiry\n"
        "  type KEY           string, hash, list, set, zset, or none\n"
        "  keys PATTERN       matching keys, sorted ('*' for all)\n"
        "  scan [PATTERN]     matching keys as they are found\n"
        "  help               this text\n"
        "  quit, exit         leave (or Ctrl-D)\n"
        "Quote words with spaces or escapes: set greeting \"hello\\nworld\"\n"
        "Tab completes a command's name.\n";

struct shell {
	struct narf_cli_cluster cl;
	const struct narf_cli_options *o; /* borrowed */
	char *history;                    /* owned: file path, or NULL */
	bool tty;
	int status; /* of the last command */
};

/* set's flags among the words after the command; the rest stay in order.
 * Returns 0 or EXIT_USAGE (message printed). */
static int set_flags(int *argc, char **argv, struct narf_cli_setopts *set)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--nx") == 0) {
			set->nx = true;
		} else if (strcmp(argv[i], "--xx") == 0) {
			set->xx = true;
		} else if (strcmp(argv[i], "--ttl") == 0) {
			uint64_t v;

			if (i + 1 >= *argc ||
			    narf_parse_u64(argv[i + 1], 1, 100000000ull, &v) !=
			            0) {
				fprintf(stderr,
				        "bad --ttl: expected seconds, 1 "
				        "to 100000000\n");
				return EXIT_USAGE;
			}
			set->ttl = (long long)v;
			i++;
		} else if (strncmp(argv[i], "--", 2) == 0) {
			fprintf(stderr,
			        "unknown option '%s' (set takes --ttl, "
			        "--nx, --xx)\n",
			        argv[i]);
			return EXIT_USAGE;
		} else {
			argv[out++] = argv[i];
		}
	}
	*argc = out;
	return 0;
}

/* Split a line into words; *argv entries point into req (free with
 * narf_resp_req_close). Returns the word count, or -1 (message printed). */
static int split(struct narf_resp_req *req, struct narf_buf *line, char ***argv)
{
	struct narf_resp_limits lim;
	char errmsg[160];
	char **words;
	int rv;

	narf_resp_limits_default(&lim);
	if (narf_buf_append(line, "\r\n", 2) != 0)
		return -1;
	rv = narf_resp_parse(req, line->data, line->len, &lim, NULL, errmsg);
	if (rv == NARF_RESP_EMPTY)
		return 0;
	if (rv != NARF_RESP_DONE) {
		const char *msg = strncmp(errmsg, "Protocol error: ", 16) == 0
		                          ? errmsg + 16
		                          : errmsg;

		fprintf(stderr, "cannot read that line: %s\n",
		        rv == NARF_RESP_ERROR ? msg : "incomplete");
		return -1;
	}
	/* inline arguments are NUL-terminated in the parser's scratch; the
	 * array is rebuilt as char ** for the commands */
	words = calloc((size_t)req->argc + 1, sizeof(*words));
	if (words == NULL)
		return -1;
	for (int i = 0; i < req->argc; i++)
		words[i] = (char *)req->argv[i];
	*argv = words;
	return req->argc;
}

/* Run one line; returns false when the shell should end. */
static bool run_line(struct shell *sh, const char *text, size_t len)
{
	struct narf_resp_req req;
	struct narf_buf line;
	struct narf_cli_setopts set = {0, false, false};
	char **argv = NULL;
	int argc;
	bool go_on = true;

	while (len > 0 && (text[0] == ' ' || text[0] == '\t')) {
		text++;
		len--;
	}
	if (len == 0)
		return true;
	if (!((text[0] >= 'a' && text[0] <= 'z') ||
	      (text[0] >= 'A' && text[0] <= 'Z'))) {
		fprintf(stderr, "unknown command (try 'help')\n");
		sh->status = EXIT_USAGE;
		return true;
	}
	if (len > MAX_LINE) {
		fprintf(stderr, "line too long (at most %d bytes)\n", MAX_LINE);
		sh->status = EXIT_USAGE;
		return true;
	}
	narf_resp_req_init(&req);
	narf_buf_init(&line);
	if (narf_buf_append(&line, text, len) != 0 ||
	    (argc = split(&req, &line, &argv)) < 0) {
		sh->status = EXIT_USAGE;
		goto out;
	}
	if (argc == 0)
		goto out;
	for (char *p = argv[0]; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0) {
		sh->status = EXIT_OK;
		go_on = false;
	} else if (strcmp(argv[0], "help") == 0) {
		fputs(shell_help, stdout);
		sh->status = EXIT_OK;
	} else if (strcmp(argv[0], "set") == 0 &&
	           set_flags(&argc, argv, &set) != 0) {
		sh->status = EXIT_USAGE;
	} else {
		if (narf_cli_now_ms() - sh->cl.map_ms > MAP_MAX_AGE_MS &&
		    sh->cl.have_map)
			narf_cli_cluster_refresh(&sh->cl,
			                         narf_cli_now_ms() + 1000);
		sh->status = narf_cli_data_command(&sh->cl, sh->o, &set, argc,
		                                   argv, true);
		if (sh->status < 0) {
			fprintf(stderr, "unknown command '%s' (try 'help')\n",
			        argv[0]);
			sh->status = EXIT_USAGE;
		}
	}
out:
	fflush(stdout);
	free(argv);
	narf_buf_close(&line);
	narf_resp_req_close(&req);
	return go_on;
}

/* The shell's commands, for Tab completion of a line's first word. */
static const char *const verbs[] = {"get",  "set",  "del",  "ttl",
                                    "type", "keys", "scan", "help",
                                    "quit", "exit", NULL};

/* rl_completion_matches' generator: the verbs text starts (in any case,
 * as the shell takes them), one per call from state 0 on, then NULL. */
static char *verb_match(const char *text, int state)
{
	static size_t next, len;

	if (state == 0) {
		next = 0;
		len = strlen(text);
	}
	while (verbs[next] != NULL) {
		const char *v = verbs[next++];

		if (strncasecmp(v, text, len) == 0)
			return strdup(v);
	}
	return NULL;
}

/* Tab: a verb for the first word; nothing after it (no file names: a key
 * is not a file). */
static char **complete(const char *text, int start, int end)
{
	(void)end;
	rl_attempted_completion_over = 1;
	for (int i = 0; i < start; i++)
		if (rl_line_buffer == NULL ||
		    (rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t'))
			return NULL;
	return rl_completion_matches(text, verb_match);
}

static char *history_path(void)
{
	const char *home = getenv("HOME");
	char *path;

	if (home == NULL || home[0] == '\0')
		return NULL;
	path = malloc(strlen(home) + sizeof("/.cachecli_history"));
	if (path != NULL)
		sprintf(path, "%s/.cachecli_history", home);
	return path;
}

static void tty_loop(struct shell *sh)
{
	char *line;

	rl_readline_name = NARF_CLI_PROG;
	rl_attempted_completion_function = complete;
	using_history();
	stifle_history(HISTORY_MAX);
	if (sh->history != NULL)
		read_history(sh->history);
	while ((line = readline("narf> ")) != NULL) {
		bool go_on;

		if (line[strspn(line, " \t")] != '\0') {
			add_history(line);
			/* written at once: a killed shell keeps its history;
			 * values typed here land in it, as with redis-cli */
			if (sh->history != NULL &&
			    write_history(sh->history) == 0)
				chmod(sh->history, 0600);
		}
		go_on = run_line(sh, line, strlen(line));
		free(line);
		if (!go_on)
			return;
	}
	printf("\n");
}

static void pipe_loop(struct shell *sh)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (!run_line(sh, line, (size_t)n))
			break;
	}
	free(line);
}

int narf_cli_shell(const struct narf_cli_options *o)
{
	struct shell sh = {.o = o, .status = EXIT_OK};
	int rv;

	if (o->nargs > 1)
		narf_usage_error(NARF_CLI_PROG,
		                 "shell takes no arguments, got '%s'",
		                 o->args[1]);
	narf_cli_cluster_init(&sh.cl, o->coord, o->timeout_ms);
	sh.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (sh.tty) {
		sh.history = history_path();
		rv = narf_cli_cluster_refresh(
		        &sh.cl, narf_cli_now_ms() + (int64_t)o->timeout_ms);
		if (rv == 0)
			printf("narf shell: map epoch %llu from %s; 'help' "
			       "lists the commands\n",
			       (unsigned long long)sh.cl.map.epoch, o->coord);
		else
			printf("narf shell: no map yet (%s); commands will "
			       "retry; 'help' lists them\n",
			       sh.cl.errmsg);
		tty_loop(&sh);
	} else {
		pipe_loop(&sh);
	}
	free(sh.history);
	narf_cli_cluster_close(&sh.cl);
	return sh.status;
}
