/*
 * The data commands (get, set, del, ttl, type, keys, scan), shared by the
 * command line and the shell: check the arguments, send the request through
 * the map-routed client (data.c), print the answer.
 *
 * Output is meant for scripts: a value is printed as stored followed by a
 * newline; integers in decimal; keys one per line. A missing key prints
 * nothing and exits 1 on the command line (the shell prints "(nil)"); type
 * prints "none" for it and exits 1 too. get of a hash, set, list or sorted
 * set prints it one field, member or element per line, bytes as stored
 * (docs/cachecli.md, "get of a collection"). Errors go to stderr in one
 * line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common/flags.h"

/* A usage error: exit 2 on the command line, a message in the shell. */
static int usage(bool in_shell, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int usage(bool in_shell, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!in_shell)
		narf_usage_error(NARF_CLI_PROG, "%s", msg);
	fprintf(stderr, "%s (try 'help')\n", msg);
	return EXIT_USAGE;
}

/* An error reply the command earned (-WRONGTYPE, -ERR ...): exit 1. */
static int server_error(const char *what, const struct narf_reply *r)
{
	fprintf(stderr, "%s: %s: %.*s\n", NARF_CLI_PROG, what, (int)r->len,
	        r->str);
	return EXIT_ERROR;
}

static int bad_reply(const char *what, const char *expected)
{
	fprintf(stderr,
	        "%s: %s: unexpected reply from the data node (expected %s): "
	        "is it a narf data node?\n",
	        NARF_CLI_PROG, what, expected);
	return EXIT_ERROR;
}

/*
 * Send one request and hand a usable reply to print(). Transport failures
 * become the exit codes of the contract; error replies exit 1.
 */
static int request(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   const char *what,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen,
                   int (*print)(const char *what,
                                const struct narf_reply *r,
                                bool in_shell),
                   bool in_shell)
{
	struct narf_buf raw;
	struct narf_reply r;
	int rv;

	narf_buf_init(&raw);
	rv = narf_cli_cluster_call(cl, argc, argv, argvlen, 1, &raw, &r);
	if (rv != 0) {
		rv = narf_cli_report_data(o, what, rv, cl);
	} else {
		rv = r.type == NARF_REPLY_ERROR ? server_error(what, &r)
		                                : print(what, &r, in_shell);
		narf_reply_free(&r);
	}
	narf_buf_close(&raw);
	return rv;
}

/* A missing key: nothing on the command line, "(nil)" in the shell. */
static int missing(bool in_shell)
{
	if (in_shell)
		printf("(nil)\n");
	return EXIT_ERROR;
}

static int print_value(const char *what,
                       const struct narf_reply *r,
                       bool in_shell)
{
	if (r->type == NARF_REPLY_NIL)
		return missing(in_shell);
	if (r->type != NARF_REPLY_BULK)
		return bad_reply(what, "a bulk string");
	fwrite(r->str, 1, r->len, stdout);
	putchar('\n');
	return EXIT_OK;
}

static int print_set(const char *what,
                     const struct narf_reply *r,
                     bool in_shell)
{
	if (r->type == NARF_REPLY_NIL) {
		/* NX or XX said no: not an error of the cluster, but the
		 * value was not stored, which a script must see. */
		if (in_shell)
			printf("(not set)\n");
		else
			fprintf(stderr,
			        "%s: not set: the condition (--nx or "
			        "--xx) did not hold\n",
			        NARF_CLI_PROG);
		return EXIT_ERROR;
	}
	if (r->type != NARF_REPLY_STATUS)
		return bad_reply(what, "+OK");
	printf("%.*s\n", (int)r->len, r->str);
	return EXIT_OK;
}

static int print_ttl(const char *what,
                     const struct narf_reply *r,
                     bool in_shell)
{
	if (r->type != NARF_REPLY_INT)
		return bad_reply(what, "an integer");
	if (r->integer == -2) {
		if (in_shell)
			printf("(no such key)\n");
		return EXIT_ERROR;
	}
	printf("%lld\n", r->integer);
	return EXIT_OK;
}

/* A one-key command: NAME KEY, its reply shown by show. */
static int one_key(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   int nargs,
                   char **args,
                   bool in_shell,
                   const char *name,
                   const char *what,
                   int (*show)(const char *what,
                               const struct narf_reply *r,
                               bool in_shell))
{
	const char *argv[2] = {name, nargs == 2 ? args[1] : NULL};
	size_t len[2] = {strlen(name), nargs == 2 ? strlen(args[1]) : 0};
	char use[32];

	if (nargs != 2) {
		snprintf(use, sizeof(use), "usage: %s KEY", what);
		return usage(in_shell, use);
	}
	return request(cl, o, what, 2, argv, len, show, in_shell);
}

/* TYPE's word: printed as it is; a missing key's "none" too, but it
 * exits 1 as a missing key does for get. */
static int print_type(const char *what,
                      const struct narf_reply *r,
                      bool in_shell)
{
	(void)in_shell;
	if (r->type != NARF_REPLY_STATUS)
		return bad_reply(what, "a type name");
	printf("%.*s\n", (int)r->len, r->str);
	return r->len == 4 && memcmp(r->str, "none", 4) == 0 ? EXIT_ERROR
	                                                     : EXIT_OK;
}

static int cmd_type(struct narf_cli_cluster *cl,
                    const struct narf_cli_options *o,
                    int nargs,
                    char **args,
                    bool in_shell)
{
	return one_key(cl, o, nargs, args, in_shell, "TYPE", "type",
	               print_type);
}

/* --- get ----------------------------------------------------------------- */

/* How get reads a key whose GET answers -WRONGTYPE, by TYPE's word: the
 * whole value in one reply, and how many of its elements make a line. */
static const struct coll_read {
	const char *type;    /* TYPE's word */
	const char *argv[5]; /* the read, argv[1] (the key) filled in */
	int argc;
	unsigned per_line;
	const char *parts; /* how to read a value too big for one reply */
} coll_reads[] = {
        {"hash", {"HGETALL", NULL}, 2, 2, "HSCAN"},
        {"set", {"SMEMBERS", NULL}, 2, 1, "SSCAN"},
        {"list", {"LRANGE", NULL, "0", "-1"}, 4, 1, "LRANGE by parts"},
        {"zset",
         {"ZRANGE", NULL, "0", "-1", "WITHSCORES"},
         5,
         2,
         "ZSCAN or ZRANGE by parts"},
};

/* Print the lines of a collection read r (narf_reply_format_lines) in
 * pieces of about 64 KiB, so the output costs no second copy of it. */
static int print_lines(const struct narf_reply *r, unsigned per_line)
{
	struct narf_buf out;
	size_t next = 0;
	int rv = 0;

	narf_buf_init(&out);
	while (rv == 0 && next < r->n) {
		out.len = 0;
		rv = narf_reply_format_lines(r, per_line, &next, 64 * 1024,
		                             &out);
		if (rv == 0 && out.len > 0)
			fwrite(out.data, 1, out.len, stdout);
	}
	narf_buf_close(&out);
	if (rv == NARF_ENOMEM) {
		fprintf(stderr, "%s: get: out of memory\n", NARF_CLI_PROG);
		return EXIT_ERROR;
	}
	if (rv != 0)
		return bad_reply("get", "an array of strings");
	return EXIT_OK;
}

/* Send one request for argv[1]'s key: 0 with *r decoded (free it), or the
 * exit code, the failure reported. A reply too big to read is reported
 * here, with how to read such a value (parts) if given. */
static int call(struct narf_cli_cluster *cl,
                const struct narf_cli_options *o,
                int argc,
                const char *const *argv,
                struct narf_buf *raw,
                struct narf_reply *r,
                const char *type,
                const char *parts)
{
	size_t len[5];
	int rv;

	for (int i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	rv = narf_cli_cluster_call(cl, argc, argv, len, 1, raw, r);
	if (rv == 0)
		return 0;
	if (rv == NARF_ETOOLARGE && parts != NULL) {
		fprintf(stderr,
		        "%s: get: the %s is too big to print: %s; read it in "
		        "parts with %s from a Redis client\n",
		        NARF_CLI_PROG, type, cl->errmsg, parts);
		return EXIT_ERROR;
	}
	return narf_cli_report_data(o, "get", rv, cl);
}

/* A type get has no read for (a stream, say): exit 1. */
static int cannot_print(const struct narf_reply *type)
{
	fprintf(stderr,
	        "%s: get: the key holds a %.*s, which get cannot print (it "
	        "prints strings, hashes, sets, lists and sorted sets)\n",
	        NARF_CLI_PROG, (int)(type->len < 40 ? type->len : 40),
	        type->str);
	return EXIT_ERROR;
}

/*
 * One try of get: GET, and when the key holds another type, TYPE and the
 * read of that type. *again is set when the key changed type between two
 * of these requests (a concurrent write): the caller tries once more.
 */
static int get_once(struct narf_cli_cluster *cl,
                    const struct narf_cli_options *o,
                    const char *key,
                    bool in_shell,
                    bool *again)
{
	const char *argv[5] = {"GET", key};
	const struct coll_read *how = NULL;
	struct narf_buf raw;
	struct narf_reply r;
	int rv;

	*again = false;
	narf_buf_init(&raw);
	if ((rv = call(cl, o, 2, argv, &raw, &r, NULL, NULL)) != 0)
		goto out;
	if (!narf_reply_is_error(&r, "WRONGTYPE")) {
		rv = r.type == NARF_REPLY_ERROR
		             ? server_error("get", &r)
		             : print_value("get", &r, in_shell);
		goto done;
	}
	narf_reply_free(&r);

	argv[0] = "TYPE";
	if ((rv = call(cl, o, 2, argv, &raw, &r, NULL, NULL)) != 0)
		goto out;
	if (r.type == NARF_REPLY_ERROR) {
		rv = server_error("get", &r);
		goto done;
	}
	if (r.type != NARF_REPLY_STATUS) {
		rv = bad_reply("get", "a type name from TYPE");
		goto done;
	}
	for (size_t i = 0; i < sizeof(coll_reads) / sizeof(coll_reads[0]); i++)
		if (r.len == strlen(coll_reads[i].type) &&
		    memcmp(r.str, coll_reads[i].type, r.len) == 0)
			how = &coll_reads[i];
	if (how == NULL) {
		if (r.len == 4 && memcmp(r.str, "none", 4) == 0)
			rv = missing(in_shell); /* deleted meanwhile */
		else if (r.len == 6 && memcmp(r.str, "string", 6) == 0)
			*again = true; /* replaced by a string meanwhile */
		else
			rv = cannot_print(&r);
		goto done;
	}
	narf_reply_free(&r);

	memcpy(argv, how->argv, sizeof(argv));
	argv[1] = key;
	if ((rv = call(cl, o, how->argc, argv, &raw, &r, how->type,
	               how->parts)) != 0)
		goto out;
	if (narf_reply_is_error(&r, "WRONGTYPE"))
		*again = true; /* changed type meanwhile */
	else if (r.type == NARF_REPLY_ERROR)
		rv = server_error("get", &r);
	else if (r.type == NARF_REPLY_ARRAY && r.n == 0)
		rv = missing(in_shell); /* deleted meanwhile: empty
		                           collections do not exist */
	else
		rv = print_lines(&r, how->per_line);
done:
	narf_reply_free(&r);
out:
	narf_buf_close(&raw);
	return rv;
}

static int cmd_get(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   int nargs,
                   char **args,
                   bool in_shell)
{
	bool again = false;
	int rv = EXIT_ERROR;

	if (nargs != 2)
		return usage(in_shell, "usage: get KEY");
	/* a key that changes type under every try is a race to lose
	 * rather than a loop to stay in */
	for (int i = 0; i < 3; i++) {
		rv = get_once(cl, o, args[1], in_shell, &again);
		if (!again)
			return rv;
	}
	fprintf(stderr,
	        "%s: get: the key changed type while it was read, three "
	        "times; try again\n",
	        NARF_CLI_PROG);
	return EXIT_ERROR;
}

static int cmd_ttl(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   int nargs,
                   char **args,
                   bool in_shell)
{
	return one_key(cl, o, nargs, args, in_shell, "TTL", "ttl", print_ttl);
}

/* The value of set: the argument, or all of stdin for "-" (not in the
 * shell, where stdin is the commands). */
static int set_value(const char *arg, bool in_shell, struct narf_buf *v)
{
	int rv;

	if (in_shell || strcmp(arg, "-") != 0)
		return narf_buf_append(v, arg, strlen(arg)) == 0 ? EXIT_OK
		                                                 : EXIT_ERROR;
	rv = narf_cli_read_all(STDIN_FILENO, NARF_CLI_MAX_STDIN, v);
	if (rv == NARF_ETOOLARGE)
		narf_usage_error(NARF_CLI_PROG,
		                 "set KEY -: the value on standard input is "
		                 "larger than %zu bytes",
		                 NARF_CLI_MAX_STDIN);
	if (rv != 0) {
		fprintf(stderr,
		        "%s: set KEY -: cannot read standard input: "
		        "%s\n",
		        NARF_CLI_PROG, narf_strerror(rv));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

static int cmd_set(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   const struct narf_cli_setopts *set,
                   int nargs,
                   char **args,
                   bool in_shell)
{
	const char *argv[6];
	size_t len[6];
	char ttl[24];
	struct narf_buf value;
	int argc = 3, rv;

	if (nargs != 3)
		return usage(
		        in_shell,
		        "usage: set KEY VALUE [--ttl SECONDS] [--nx|--xx]");
	if (set->nx && set->xx)
		return usage(in_shell, "set: --nx and --xx exclude each other");
	narf_buf_init(&value);
	if ((rv = set_value(args[2], in_shell, &value)) != EXIT_OK)
		goto out;
	argv[0] = "SET";
	argv[1] = args[1];
	argv[2] = value.data ? value.data : "";
	len[0] = 3;
	len[1] = strlen(args[1]);
	len[2] = value.len;
	if (set->ttl > 0) {
		snprintf(ttl, sizeof(ttl), "%lld", set->ttl);
		argv[argc] = "EX";
		len[argc++] = 2;
		argv[argc] = ttl;
		len[argc++] = strlen(ttl);
	}
	if (set->nx || set->xx) {
		argv[argc] = set->nx ? "NX" : "XX";
		len[argc++] = 2;
	}
	rv = request(cl, o, "set", argc, argv, len, print_set, in_shell);
out:
	narf_buf_close(&value);
	return rv;
}

/* del KEY...: one DEL per key, so each goes to its own primary (a node
 * would split a multi-slot DEL too, at the cost of a hop); the counts are
 * summed. A key that fails stops the command with its error. */
static int cmd_del(struct narf_cli_cluster *cl,
                   const struct narf_cli_options *o,
                   int nargs,
                   char **args,
                   bool in_shell)
{
	long long total = 0;

	if (nargs < 2)
		return usage(in_shell, "usage: del KEY...");
	for (int i = 1; i < nargs; i++) {
		const char *argv[2] = {"DEL", args[i]};
		size_t len[2] = {3, strlen(args[i])};
		struct narf_buf raw;
		struct narf_reply r;
		int rv;

		narf_buf_init(&raw);
		rv = narf_cli_cluster_call(cl, 2, argv, len, 1, &raw, &r);
		if (rv != 0) {
			narf_buf_close(&raw);
			return narf_cli_report_data(o, "del", rv, cl);
		}
		if (r.type == NARF_REPLY_ERROR)
			rv = server_error("del", &r);
		else if (r.type != NARF_REPLY_INT)
			rv = bad_reply("del", "an integer");
		else
			total += r.integer;
		narf_reply_free(&r);
		narf_buf_close(&raw);
		if (rv != 0)
			return rv;
	}
	printf("%lld\n", total);
	return EXIT_OK;
}

/* --- keys and scan ------------------------------------------------------- */

/* Keys gathered for sorting: offsets into one buffer. */
struct keylist {
	struct narf_buf data; /* owned: the keys back to back */
	size_t *off;          /* owned: start of key i; off[n] = data.len */
	size_t n, cap;
};

static int keylist_add(void *arg, const char *key, size_t len)
{
	struct keylist *kl = arg;

	if (kl->n + 2 > kl->cap) {
		size_t cap = kl->cap ? kl->cap * 2 : 1024;
		size_t *p = realloc(kl->off, cap * sizeof(*p));

		if (p == NULL)
			return NARF_ENOMEM;
		kl->off = p;
		kl->cap = cap;
	}
	kl->off[kl->n++] = kl->data.len;
	if (narf_buf_append(&kl->data, key, len) != 0)
		return NARF_ENOMEM;
	kl->off[kl->n] = kl->data.len;
	return 0;
}

static const struct keylist *sort_list; /* qsort has no context argument */

static int key_cmp(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const char *d = sort_list->data.data;
	size_t li = sort_list->off[i + 1] - sort_list->off[i];
	size_t lj = sort_list->off[j + 1] - sort_list->off[j];
	int c = memcmp(d + sort_list->off[i], d + sort_list->off[j],
	               li < lj ? li : lj);

	return c != 0 ? c : (li > lj) - (li < lj);
}

/* Print the keys in byte order, each once (a node that failed mid-scan
 * may have handed some over twice). */
static void keylist_print(struct keylist *kl, bool in_shell)
{
	size_t *order = malloc((kl->n ? kl->n : 1) * sizeof(*order));
	const char *prev = NULL;
	size_t prev_len = 0;

	if (order == NULL) {
		fprintf(stderr, "%s: keys: out of memory\n", NARF_CLI_PROG);
		return;
	}
	for (size_t i = 0; i < kl->n; i++)
		order[i] = i;
	sort_list = kl;
	qsort(order, kl->n, sizeof(*order), key_cmp);
	for (size_t i = 0; i < kl->n; i++) {
		const char *k = kl->data.data + kl->off[order[i]];
		size_t len = kl->off[order[i] + 1] - kl->off[order[i]];

		if (prev != NULL && len == prev_len &&
		    memcmp(k, prev, len) == 0)
			continue;
		fwrite(k, 1, len, stdout);
		putchar('\n');
		prev = k;
		prev_len = len;
	}
	if (kl->n == 0 && in_shell)
		printf("(empty)\n");
	free(order);
}

static int print_key(void *arg, const char *key, size_t len)
{
	(void)arg;
	fwrite(key, 1, len, stdout);
	putchar('\n');
	return ferror(stdout) ? NARF_EIO : 0;
}

/* After a scan: warn about slots nobody serves; the exit code. */
static int scan_done(struct narf_cli_cluster *cl,
                     const struct narf_cli_options *o,
                     const char *what,
                     int rv,
                     unsigned unassigned)
{
	if (rv == NARF_EIO) {
		perror(NARF_CLI_PROG ": writing output");
		return EXIT_ERROR;
	}
	if (rv == NARF_ENOMEM) {
		fprintf(stderr, "%s: %s: out of memory\n", NARF_CLI_PROG, what);
		return EXIT_ERROR;
	}
	if (rv != 0)
		return narf_cli_report_data(o, what, rv, cl);
	if (unassigned > 0) {
		fprintf(stderr,
		        "%s: %s: %u slots have no primary, their keys (if "
		        "any) are not listed: see 'cachecli status'\n",
		        NARF_CLI_PROG, what, unassigned);
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

static int cmd_keys(struct narf_cli_cluster *cl,
                    const struct narf_cli_options *o,
                    int nargs,
                    char **args,
                    bool in_shell)
{
	struct keylist kl = {.n = 0};
	unsigned unassigned = 0;
	int rv;

	if (nargs != 2)
		return usage(in_shell, "usage: keys PATTERN (e.g. 'user:*')");
	narf_buf_init(&kl.data);
	rv = narf_cli_cluster_scan(cl, args[1], keylist_add, &kl, &unassigned);
	/* what was found is printed even when some slots failed */
	if (rv == 0 || rv == NARF_ETIMEOUT)
		keylist_print(&kl, in_shell);
	free(kl.off);
	narf_buf_close(&kl.data);
	return scan_done(cl, o, "keys", rv, unassigned);
}

static int cmd_scan(struct narf_cli_cluster *cl,
                    const struct narf_cli_options *o,
                    int nargs,
                    char **args,
                    bool in_shell)
{
	unsigned unassigned = 0;
	int rv;

	if (nargs > 2)
		return usage(in_shell, "usage: scan [PATTERN]");
	rv = narf_cli_cluster_scan(cl, nargs == 2 ? args[1] : "*", print_key,
	                           NULL, &unassigned);
	return scan_done(cl, o, "scan", rv, unassigned);
}

int narf_cli_data_command(struct narf_cli_cluster *cl,
                          const struct narf_cli_options *o,
                          const struct narf_cli_setopts *set,
                          int nargs,
                          char **args,
                          bool in_shell)
{
	const char *name = args[0];

	if (strcmp(name, "get") == 0)
		return cmd_get(cl, o, nargs, args, in_shell);
	if (strcmp(name, "set") == 0)
		return cmd_set(cl, o, set, nargs, args, in_shell);
	if (strcmp(name, "del") == 0)
		return cmd_del(cl, o, nargs, args, in_shell);
	if (strcmp(name, "ttl") == 0)
		return cmd_ttl(cl, o, nargs, args, in_shell);
	if (strcmp(name, "type") == 0)
		return cmd_type(cl, o, nargs, args, in_shell);
	if (strcmp(name, "keys") == 0)
		return cmd_keys(cl, o, nargs, args, in_shell);
	if (strcmp(name, "scan") == 0)
		return cmd_scan(cl, o, nargs, args, in_shell);
	return -1;
}
