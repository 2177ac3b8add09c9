/*
 * Connection, server and cluster commands: PING, ECHO, SELECT, AUTH,
 * HELLO, QUIT, CLIENT, COMMAND, CONFIG GET, INFO and the CLUSTER
 * subcommands cluster-aware clients ask at start-up.
 *
 * Enough of each is answered the way Redis 7.0 answers it that redis-cli,
 * redis-benchmark and redis-py start cleanly and behave; what is not
 * supported gets Redis's own error for it.
 */
#include <malloc.h>
#ifdef NARF_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "coll_config.h"
#include "engine.h"
#include "membership.h"
#include "reply.h"
#include "repl.h"

void narf_malloc_background(void)
{
#ifdef NARF_HAVE_JEMALLOC
	/* As redis-server's jemalloc-bg-thread (yes by default): jemalloc's
	 * own thread gives freed pages back to the system over time. Without
	 * it they are returned only as later allocations go through the
	 * allocator, so a big list grown by reallocs kept ~25% more resident
	 * memory than it used. The event loop stays single-threaded. */
	bool on = true;

	if (mallctl("background_thread", NULL, NULL, &on, sizeof(on)) != 0)
		NARF_DEBUG("jemalloc background thread not available");
#endif
}

/* Bytes the allocator has handed out (INFO used_memory). jemalloc counts
 * them in its stats (refreshed by writing "epoch"); glibc's mallinfo2()
 * walks the heap, so both are read only when INFO memory is asked for. */
#ifdef NARF_HAVE_JEMALLOC
#define NARF_STR2(x) #x
#define NARF_STR(x) NARF_STR2(x)
#define NARF_ALLOCATOR                                             \
	"jemalloc-" NARF_STR(JEMALLOC_VERSION_MAJOR) "." NARF_STR( \
	        JEMALLOC_VERSION_MINOR) "." NARF_STR(JEMALLOC_VERSION_BUGFIX)

static uint64_t heap_used(void)
{
	uint64_t epoch = 1;
	size_t allocated = 0, esz = sizeof(epoch), asz = sizeof(allocated);

	if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0 ||
	    mallctl("stats.allocated", &allocated, &asz, NULL, 0) != 0)
		return 0;
	return allocated;
}
#else
#define NARF_ALLOCATOR "libc"

static uint64_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}
#endif

static int cmd_ping(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	if (argc > 2)
		return narf_reply_wrong_arity(out, "ping");
	if (argc == 2)
		return narf_resp_bulk(out, argv[1], len[1]);
	return narf_resp_simple(out, "PONG");
}

static int cmd_echo(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return narf_resp_bulk(out, argv[1], len[1]);
}

static int cmd_select(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	long long db;

	if (!narf_str_to_ll(argv[1], len[1], &db))
		return narf_resp_error(out,
		                       "ERR value is not an integer or "
		                       "out of range");
	if (db != 0)
		return narf_resp_error(out, "ERR DB index is out of range");
	return narf_resp_simple(out, "OK");
}

static int cmd_quit(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	c->close_after_reply = true;
	return narf_resp_simple(out, "OK");
}

/* Constant-time comparison, so the time AUTH takes does not leak how much
 * of a guessed password matched. */
static bool password_equal(const char *want, const char *got, size_t n)
{
	size_t wn = strlen(want);
	unsigned char diff = (unsigned char)(wn != n);

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(got[i] ^ want[i % (wn ? wn : 1)]);
	return diff == 0;
}

/* A refused AUTH: counted as Redis 7.2 counts acl_access_denied_auth,
 * logged at a bounded rate with the address, never the password. */
static int wrongpass(struct narf_engine *e,
                     struct narf_client *c,
                     struct narf_buf *out)
{
	e->stats.auth_failures++;
	narf_engine_ratelog(e, &e->auth_log, c);
	narf_resp_error(out,
	                "WRONGPASS invalid username-password pair or user is "
	                "disabled.");
	return -1;
}

/*
 * AUTH [user] password. A user of the users file (docs/security.md) gets
 * its permission; "default" is --requirepass-file's user, with every
 * permission, as Redis's default user. Without any password the default
 * user is nopass; with a users file but no --requirepass-file it is
 * disabled (every client names its user).
 */
static int check_auth(struct narf_engine *e,
                      struct narf_client *c,
                      const char *user,
                      size_t ulen,
                      const char *pass,
                      size_t plen,
                      struct narf_buf *out)
{
	const struct narf_user *u =
	        user != NULL ? narf_users_find(&e->cfg.users, user, ulen)
	                     : NULL;

	if (u != NULL) {
		if (!narf_user_password_ok(u, pass, plen))
			return wrongpass(e, c, out);
		c->authenticated = true;
		c->perm = u->perm;
		return 0;
	}
	if (user != NULL && !narf_arg_is(user, ulen, "default"))
		return wrongpass(e, c, out);
	if (!narf_engine_has_password(e) && user != NULL) {
		/* As Redis: without a password the default user is nopass. */
		c->authenticated = true;
		c->perm = NARF_PERM_ADMIN;
		return 0;
	}
	if (!narf_engine_has_password(e)) {
		narf_resp_error(out,
		                "ERR AUTH <password> called without any "
		                "password configured for the default "
		                "user. Are you sure your configuration "
		                "is correct?");
		return -1;
	}
	if (e->cfg.requirepass == NULL ||
	    !password_equal(e->cfg.requirepass, pass, plen))
		return wrongpass(e, c, out);
	c->authenticated = true;
	c->perm = NARF_PERM_ADMIN;
	return 0;
}

static int cmd_auth(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	int rv;

	if (argc > 3)
		return narf_reply_syntax(out);
	if (argc == 3)
		rv = check_auth(e, c, argv[1], len[1], argv[2], len[2], out);
	else
		rv = check_auth(e, c, NULL, 0, argv[1], len[1], out);
	return rv == 0 ? narf_resp_simple(out, "OK") : 0;
}

/* CLIENT SETNAME's and HELLO SETNAME's check, as Redis 7.0's
 * clientSetName(): an empty name clears it. Returns 0, or -1 after the
 * error reply. */
static int set_name(struct narf_client *c,
                    const char *name,
                    size_t n,
                    struct narf_buf *out)
{
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] > '~') {
			narf_resp_error(out,
			                "ERR Client names cannot contain "
			                "spaces, newlines or special "
			                "characters.");
			return -1;
		}
	if (n >= sizeof(c->name)) {
		narf_resp_error(out, "ERR client name too long");
		return -1;
	}
	memcpy(c->name, name, n);
	c->name[n] = '\0';
	return 0;
}

/*
 * HELLO [protover [AUTH user pass] [SETNAME name]], as Redis 7.0 runs it:
 * the version first (an integer, 2 or 3); then each option acts where it
 * stands, left to right: AUTH is checked, SETNAME names the connection
 * (with CLIENT SETNAME's rules, even before the client is authenticated,
 * as 7.0 does; 7.2 parses everything first), and the first failure ends
 * the command with what the earlier options did kept. Then the client
 * must be authenticated (by it or before), and only then does the
 * protocol change, so a HELLO that fails anywhere leaves it as it was (a
 * refused HELLO 3 AUTH stays RESP2). Without a version it only describes
 * the server, in the protocol already in use. The reply is a map of 7, so
 * a RESP2 client sees a flat array of 14.
 */
static int cmd_hello(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	long long ver = 0;
	int i = 1;

	if (argc >= 2) {
		if (!narf_str_to_ll(argv[1], len[1], &ver))
			return narf_resp_error(out,
			                       "ERR Protocol version is "
			                       "not an integer or out of "
			                       "range");
		if (ver < 2 || ver > 3)
			return narf_resp_error(out,
			                       "NOPROTO unsupported "
			                       "protocol version");
		i = 2;
	}
	for (; i < argc; i++) {
		if (narf_arg_is(argv[i], len[i], "auth") && i + 2 < argc) {
			if (check_auth(e, c, argv[i + 1], len[i + 1],
			               argv[i + 2], len[i + 2], out) != 0)
				return 0;
			i += 2;
		} else if (narf_arg_is(argv[i], len[i], "setname") &&
		           i + 1 < argc) {
			if (set_name(c, argv[i + 1], len[i + 1], out) != 0)
				return 0;
			i++;
		} else {
			return narf_resp_errorf(
			        out,
			        "ERR Syntax error in HELLO "
			        "option '%.*s'",
			        (int)(len[i] > 64 ? 64 : len[i]), argv[i]);
		}
	}
	if (!c->authenticated)
		return narf_resp_error(out,
		                       "NOAUTH HELLO must be called with "
		                       "the client already authenticated, "
		                       "otherwise the HELLO AUTH <user> "
		                       "<pass> option can be used to "
		                       "authenticate the client and select "
		                       "the RESP protocol version at the "
		                       "same time");
	if (ver != 0)
		c->resp = (uint8_t)ver;
	narf_reply_map(c, out, 7);
	narf_resp_bulk_str(out, "server");
	narf_resp_bulk_str(out, "redis");
	narf_resp_bulk_str(out, "version");
	narf_resp_bulk_str(out, NARF_REDIS_VERSION);
	narf_resp_bulk_str(out, "proto");
	narf_resp_int(out, c->resp == 3 ? 3 : 2);
	narf_resp_bulk_str(out, "id");
	narf_resp_int(out, (long long)c->id);
	narf_resp_bulk_str(out, "mode");
	narf_resp_bulk_str(out, e->cfg.standalone ? "standalone" : "cluster");
	narf_resp_bulk_str(out, "role");
	narf_resp_bulk_str(out, "master");
	narf_resp_bulk_str(out, "modules");
	return narf_resp_array(out, 0);
}

/*
 * Redis 7.0's replies for a container command (CLIENT, CONFIG, CLUSTER)
 * whose subcommand is unknown or has the wrong number of arguments.
 * known: the subcommands this server implements, NULL-terminated.
 */
static int subcommand_error(struct narf_buf *out,
                            const char *container,
                            const char *const *known,
                            const char *sub,
                            size_t n)
{
	int shown = (int)(n > 64 ? 64 : n);
	char upper[16];
	size_t i;

	for (i = 0; known[i] != NULL; i++)
		if (narf_arg_is(sub, n, known[i]))
			return narf_resp_errorf(out,
			                        "ERR wrong number of arguments "
			                        "for '%s|%s' command",
			                        container, known[i]);
	for (i = 0; container[i] && i < sizeof(upper) - 1; i++)
		upper[i] = (char)(container[i] - 'a' + 'A');
	upper[i] = '\0';
	return narf_resp_errorf(out,
	                        "ERR unknown subcommand '%.*s'. Try %s HELP.",
	                        shown, sub, upper);
}

/* CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 when client id was blocked on keys
 * (the server answers it from the check handle, blocking_io.c), else 0.
 * Unlike Redis, a client in WAIT is not unblocked. */
static int client_unblock(struct narf_engine *e,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	enum narf_unblock how = NARF_UNBLOCK_TIMEOUT;
	long long id;

	if (argc == 4) {
		if (narf_arg_is(argv[3], len[3], "error"))
			how = NARF_UNBLOCK_ERROR;
		else if (!narf_arg_is(argv[3], len[3], "timeout"))
			return narf_resp_error(
			        out,
			        "ERR CLIENT UNBLOCK reason should "
			        "be TIMEOUT or ERROR");
	}
	if (narf_arg_ll(out, argv[2], len[2], &id) != 0)
		return 0;
	return narf_resp_int(
	        out,
	        id > 0 && narf_block_unblock(&e->block, (uint64_t)id, how));
}

static int cmd_client(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	const char *sub = argv[1];
	size_t n = len[1];

	if (narf_arg_is(sub, n, "id") && argc == 2)
		return narf_resp_int(out, (long long)c->id);
	if (narf_arg_is(sub, n, "getname") && argc == 2)
		return c->name[0] ? narf_resp_bulk_str(out, c->name)
		                  : narf_reply_null(c, out);
	if (narf_arg_is(sub, n, "setname") && argc == 3)
		return set_name(c, argv[2], len[2], out) == 0
		               ? narf_resp_simple(out, "OK")
		               : 0;
	if (narf_arg_is(sub, n, "setinfo") && argc == 4)
		return narf_resp_simple(out, "OK");
	if (narf_arg_is(sub, n, "info") && argc == 2) {
		char line[512];
		int k = snprintf(line, sizeof(line),
		                 "id=%llu addr=%s name=%s db=0\n",
		                 (unsigned long long)c->id, c->addr, c->name);

		if (k < 0 || (size_t)k >= sizeof(line))
			k = (int)strlen(line);
		return narf_reply_verbatim(c, out, line, (size_t)k);
	}
	if (narf_arg_is(sub, n, "unblock") && (argc == 3 || argc == 4))
		return client_unblock(e, argc, argv, len, out);
	if (narf_arg_is(sub, n, "unblock") && argc > 4)
		return narf_resp_errorf(
		        out,
		        "ERR unknown subcommand or wrong number "
		        "of arguments for '%.*s'. Try CLIENT "
		        "HELP.",
		        (int)(n > 64 ? 64 : n), sub);
	static const char *const known[] = {
	        "id", "getname", "setname", "setinfo", "info", "unblock", NULL};
	return subcommand_error(out, "client", known, sub, n);
}

/* COMMAND's entry for cmd, as Redis 7.0's addReplyCommandInfo(): under
 * RESP3 the flags, ACL categories, tips, key specs and subcommands are
 * sets (7.0 writes an empty set for none of them too). */
static void command_info(const struct narf_client *c,
                         struct narf_buf *out,
                         const struct narf_command *cmd)
{
	unsigned nflags = 0;

	narf_resp_array(out, 10);
	narf_resp_bulk_str(out, cmd->name);
	narf_resp_int(out, cmd->arity);
	nflags = !!(cmd->flags & NARF_CMD_WRITE) +
	         !!(cmd->flags & NARF_CMD_READONLY) +
	         !!(cmd->flags & NARF_CMD_DENYOOM) +
	         !!(cmd->flags & NARF_CMD_BLOCKING) +
	         !!(cmd->flags & NARF_CMD_FAST);
	narf_reply_set(c, out, nflags);
	if (cmd->flags & NARF_CMD_WRITE)
		narf_resp_simple(out, "write");
	if (cmd->flags & NARF_CMD_READONLY)
		narf_resp_simple(out, "readonly");
	if (cmd->flags & NARF_CMD_DENYOOM)
		narf_resp_simple(out, "denyoom");
	if (cmd->flags & NARF_CMD_BLOCKING)
		narf_resp_simple(out, "blocking");
	if (cmd->flags & NARF_CMD_FAST)
		narf_resp_simple(out, "fast");
	narf_resp_int(out, cmd->first_key);
	narf_resp_int(out, cmd->last_key);
	narf_resp_int(out, cmd->key_step);
	narf_reply_set(c, out, 0); /* ACL categories */
	narf_reply_set(c, out, 0); /* tips */
	narf_reply_set(c, out, 0); /* key specs */
	narf_reply_set(c, out, 0); /* subcommands */
}

static int cmd_command(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	long long count = 0;

	for (int t = 0; narf_command_tables[t] != NULL; t++)
		for (const struct narf_command *k = narf_command_tables[t];
		     k->name; k++)
			count++;
	if (argc == 1) {
		narf_resp_array(out, count);
		for (int t = 0; narf_command_tables[t] != NULL; t++)
			for (const struct narf_command *k =
			             narf_command_tables[t];
			     k->name; k++)
				command_info(c, out, k);
		return 0;
	}
	if (narf_arg_is(argv[1], len[1], "count"))
		return narf_resp_int(out, count);
	if (narf_arg_is(argv[1], len[1], "docs"))
		return narf_reply_map(c, out, 0); /* no docs: clients cope */
	if (narf_arg_is(argv[1], len[1], "info")) {
		narf_resp_array(out, argc - 2);
		for (int i = 2; i < argc; i++) {
			const struct narf_command *found = NULL;

			for (int t = 0; !found && narf_command_tables[t]; t++)
				for (const struct narf_command *k =
				             narf_command_tables[t];
				     k->name && !found; k++)
					if (narf_arg_is(argv[i], len[i],
					                k->name))
						found = k;
			if (found)
				command_info(c, out, found);
			else /* addReplyNull(): `$-1` in RESP2 */
				narf_reply_null(c, out);
		}
		return 0;
	}
	static const char *const known[] = {"count", "docs", "info", NULL};
	return subcommand_error(out, "command", known, argv[1], len[1]);
}

/* --- CONFIG GET -------------------------------------------------------------
 */

static void config_value(const struct narf_engine *e,
                         const char *name,
                         char *buf,
                         size_t size)
{
	const struct narf_engine_config *cfg = &e->cfg;

	buf[0] = '\0';
	if (strcmp(name, "maxmemory") == 0)
		snprintf(buf, size, "%llu",
		         (unsigned long long)cfg->max_memory);
	else if (strcmp(name, "maxmemory-policy") == 0)
		snprintf(buf, size, "%s",
		         cfg->eviction == NARF_EVICT_NOEVICTION
		                 ? "noeviction"
		                 : "allkeys-lru");
	else if (strcmp(name, "port") == 0)
		snprintf(buf, size, "%d", cfg->port);
	else if (strcmp(name, "bind") == 0)
		snprintf(buf, size, "%s", cfg->bind);
	else if (strcmp(name, "databases") == 0)
		snprintf(buf, size, "1");
	else if (strcmp(name, "maxclients") == 0)
		snprintf(buf, size, "%u", cfg->max_clients);
	else if (strcmp(name, "timeout") == 0)
		snprintf(buf, size, "%llu",
		         (unsigned long long)cfg->idle_timeout_ms / 1000);
	else if (strcmp(name, "proto-max-bulk-len") == 0)
		snprintf(buf, size, "%zu", cfg->limits.max_bulk);
	else if (strcmp(name, "client-query-buffer-limit") == 0)
		snprintf(buf, size, "%llu",
		         (unsigned long long)cfg->max_query_buffer);
	else if (strcmp(name, "appendonly") == 0)
		snprintf(buf, size, "no");
	else if (strcmp(name, "cluster-enabled") == 0)
		snprintf(buf, size, "yes"); /* CLUSTER is always answered */
	/* "save" stays empty: nothing is persisted. */
}

static const char *const config_subs[] = {"get", "set", "resetstat", NULL};

/*
 * CONFIG SET for the collection thresholds only (coll_config.h), several
 * at once as 7.0 allows, all or nothing. Every other option is a datanode
 * flag, fixed at start: a name CONFIG GET knows gets a clear refusal, an
 * unknown one Redis's error.
 */
static int config_set(struct narf_engine *e,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      const char *const *static_names,
                      struct narf_buf *out)
{
	struct narf_coll_limits lim = e->cfg.coll_limits;
	bool seen[16] = {false};
	char why[128];

	if (argc < 4 || argc % 2 != 0)
		return narf_reply_wrong_arity(out, "config|set");
	for (int a = 2; a < argc; a += 2) {
		int i = narf_coll_option_find(argv[a], len[a]);

		if (i < 0) {
			for (int k = 0; static_names[k] != NULL; k++)
				if (narf_arg_is(argv[a], len[a],
				                static_names[k]))
					return narf_resp_errorf(
					        out,
					        "ERR CONFIG SET '%s' is not "
					        "supported by narf at run time "
					        "(it is a datanode flag)",
					        static_names[k]);
			return narf_resp_errorf(
			        out,
			        "ERR Unknown option or number of arguments for "
			        "CONFIG SET - '%.*s'",
			        (int)(len[a] > 64 ? 64 : len[a]), argv[a]);
		}
		if (seen[i])
			return narf_resp_errorf(
			        out,
			        "ERR CONFIG SET failed (possibly "
			        "related to argument '%s') - "
			        "duplicate parameter",
			        narf_coll_option_name(i));
		seen[i] = true;
		if (!narf_coll_option_set(&lim, i, argv[a + 1], len[a + 1], why,
		                          sizeof(why)))
			return narf_resp_errorf(
			        out,
			        "ERR CONFIG SET failed (possibly "
			        "related to argument '%s') - %s",
			        narf_coll_option_name(i), why);
	}
	e->cfg.coll_limits = lim;
	narf_store_set_coll_limits(e->store, &lim);
	return narf_resp_simple(out, "OK");
}

static int cmd_config(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	static const char *const names[] = {"maxmemory",
	                                    "maxmemory-policy",
	                                    "port",
	                                    "bind",
	                                    "databases",
	                                    "maxclients",
	                                    "timeout",
	                                    "proto-max-bulk-len",
	                                    "client-query-buffer-limit",
	                                    "appendonly",
	                                    "save",
	                                    "cluster-enabled",
	                                    NULL};
	struct narf_buf body;
	long long n = 0;
	char value[128];

	if (narf_arg_is(argv[1], len[1], "resetstat") && argc == 2) {
		memset(&e->stats, 0, sizeof(e->stats));
		return narf_resp_simple(out, "OK");
	}
	if (narf_arg_is(argv[1], len[1], "set"))
		return config_set(e, argc, argv, len, names, out);
	if (!narf_arg_is(argv[1], len[1], "get") || argc < 3)
		return subcommand_error(out, "config", config_subs, argv[1],
		                        len[1]);
	narf_buf_init(&body);
	for (int i = 0; names[i] != NULL; i++) {
		bool match = false;

		for (int a = 2; a < argc && !match; a++)
			match = narf_glob_match(argv[a], len[a], names[i],
			                        strlen(names[i]), true);
		if (!match)
			continue;
		config_value(e, names[i], value, sizeof(value));
		narf_resp_bulk_str(&body, names[i]);
		narf_resp_bulk_str(&body, value);
		n += 2;
	}
	for (int i = 0; i < narf_coll_option_count(); i++) {
		const char *name = narf_coll_option_name(i);
		bool match = false;

		for (int a = 2; a < argc && !match; a++)
			match = narf_glob_match(argv[a], len[a], name,
			                        strlen(name), true);
		/* an alias asked by its exact name answers under it */
		for (int a = 2; a < argc && !match; a++)
			if (narf_coll_option_find(argv[a], len[a]) == i) {
				match = true;
				name = NULL;
				narf_coll_option_get(&e->cfg.coll_limits, i,
				                     value, sizeof(value));
				narf_resp_bulk(&body, argv[a], len[a]);
				narf_resp_bulk_str(&body, value);
				n += 2;
			}
		if (!match || name == NULL)
			continue;
		narf_coll_option_get(&e->cfg.coll_limits, i, value,
		                     sizeof(value));
		narf_resp_bulk_str(&body, name);
		narf_resp_bulk_str(&body, value);
		n += 2;
	}
	narf_reply_map(c, out, n / 2);
	narf_buf_append(out, body.data, body.len);
	narf_buf_close(&body);
	return 0;
}

/* --- INFO --------------------------------------------------------------------
 */

static bool want_section(int argc,
                         const char **argv,
                         const size_t *len,
                         const char *name)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (narf_arg_is(argv[i], len[i], name) ||
		    narf_arg_is(argv[i], len[i], "all") ||
		    narf_arg_is(argv[i], len[i], "everything") ||
		    narf_arg_is(argv[i], len[i], "default"))
			return true;
	return false;
}

/*
 * INFO's cluster section: what this node knows of its cluster. A standalone
 * node says cluster_enabled:1 too (redis-py's cluster client checks it) and
 * cluster_mode:standalone.
 */
static void info_cluster(const struct narf_engine *e, struct narf_buf *out)
{
	const struct narf_map *map = narf_engine_map(e);
	const struct narf_member *m = e->member;
	const struct narf_map_node *self = NULL;
	uint32_t id = e->cluster_node_id ? *e->cluster_node_id : 0;
	unsigned primaries = 0, replicas = 0, known = 0;
	uint64_t now = 0, left = 0;
	const char *leader = NULL;
	bool lease = false;
	char text[1024];
	int n;

	if (e->cfg.standalone || m == NULL) {
		n = snprintf(text, sizeof(text),
		             "cluster_enabled:1\r\ncluster_mode:standalone\r\n"
		             "cluster_state:ok\r\ncluster_slots_primary:%u\r\n"
		             "cluster_slots_replica:0\r\n",
		             (unsigned)NARF_SLOTS);
		narf_buf_append(out, text, (size_t)n);
		return;
	}
	if (m->loop != NULL) {
		now = narf_clock_ms();
		lease = narf_member_lease_ok(m, now);
		left = narf_member_lease_left_ms(m, now);
		leader = narf_member_leader(m, uv_now(m->loop));
	}
	if (map != NULL) {
		narf_map_node_counts(map, id, &primaries, &replicas);
		self = narf_map_node_get(map, id);
		for (unsigned i = 0; i < map->n_nodes; i++)
			known += map->nodes[i].state != NARF_NODE_REMOVED;
	}
	n = snprintf(text, sizeof(text),
	             "cluster_enabled:1\r\ncluster_mode:cluster\r\n"
	             "cluster_state:%s\r\ncluster_node_id:%u\r\n"
	             "cluster_node_state:%s\r\ncluster_map_epoch:%llu\r\n"
	             "cluster_known_nodes:%u\r\n"
	             "cluster_coordinator_leader:%s\r\n"
	             "cluster_slots_primary:%u\r\n"
	             "cluster_slots_replica:%u\r\n"
	             "cluster_lease_valid:%d\r\ncluster_lease_ms_left:%llu\r\n",
	             map != NULL && lease ? "ok" : "fail", id,
	             self != NULL ? narf_node_state_name(self->state)
	             : id == 0    ? "joining"
	                          : "unknown",
	             (unsigned long long)(map ? map->epoch : 0), known,
	             leader ? leader : "", primaries, replicas, lease ? 1 : 0,
	             (unsigned long long)left);
	narf_buf_append(out, text, (size_t)n);
	/* how the map arrives (docs/protocol.md, "Map deltas") */
	n = snprintf(text, sizeof(text),
	             "map_deltas_applied:%llu\r\nmap_full_installs:%llu\r\n"
	             "map_digest_mismatches:%llu\r\n",
	             (unsigned long long)m->sync.deltas_applied,
	             (unsigned long long)m->sync.full_installs,
	             (unsigned long long)m->sync.digest_mismatches);
	narf_buf_append(out, text, (size_t)n);
}

#define INFO_ADD(...)                                                     \
	do {                                                              \
		if (n < sizeof(text))                                     \
			n += (size_t)snprintf(text + n, sizeof(text) - n, \
			                      __VA_ARGS__);               \
	} while (0)

static int cmd_info(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	char text[8192], human[32], maxhuman[32];
	size_t n = 0;
	int64_t now = narf_engine_now(e);
	struct narf_store_stats st;
	uint64_t used = 0;

	narf_store_stats(e->store, &st);
	if (want_section(argc, argv, len, "server")) {
		INFO_ADD(
		        "# Server\r\nredis_version:%s\r\nnarf_version:0.1.0\r\n"
		        "redis_mode:%s\r\nos:Linux\r\narch_bits:64\r\n"
		        "process_id:%d\r\nrun_id:%s\r\ntcp_port:%d\r\n"
		        "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n"
		        "\r\n",
		        NARF_REDIS_VERSION,
		        e->cfg.standalone ? "standalone" : "cluster",
		        (int)getpid(), e->run_id, e->cfg.port,
		        (long long)(now - e->start_ms) / 1000,
		        (long long)(now - e->start_ms) / 86400000);
	}
	if (want_section(argc, argv, len, "clients"))
		INFO_ADD(
		        "# Clients\r\nconnected_clients:%u\r\n"
		        "maxclients:%u\r\nblocked_clients:%u\r\n"
		        /* peer links: their own budget (engine.h) */
		        "connected_peer_links:%u\r\npending_peer_links:%u\r\n"
		        "max_peer_links:%u\r\n\r\n",
		        e->connected_clients, e->cfg.max_clients,
		        narf_block_count(&e->block), e->peer_links,
		        e->peer_pending, e->cfg.max_peer_links);
	if (want_section(argc, argv, len, "memory")) {
		/* Under AddressSanitizer the heap reports nothing: fall back
		 * to what the store counts itself, never more than the heap. */
		used = heap_used();
		if (used < st.used_memory)
			used = st.used_memory;
		narf_bytes_human(human, sizeof(human), used);
		narf_bytes_human(maxhuman, sizeof(maxhuman), e->cfg.max_memory);
		INFO_ADD(
		        "# Memory\r\nused_memory:%llu\r\n"
		        "used_memory_human:%s\r\nused_memory_rss:%llu\r\n"
		        "used_memory_dataset:%llu\r\nmaxmemory:%llu\r\n"
		        "maxmemory_human:%s\r\nmaxmemory_policy:%s\r\n"
		        "mem_allocator:" NARF_ALLOCATOR
		        "\r\nlazyfree_pending_objects:%"
		        "llu\r\n"
		        "\r\n",
		        (unsigned long long)used, human,
		        (unsigned long long)narf_proc_rss_bytes(),
		        (unsigned long long)st.used_memory,
		        (unsigned long long)e->cfg.max_memory, maxhuman,
		        e->cfg.eviction == NARF_EVICT_NOEVICTION
		                ? "noeviction"
		                : "allkeys-lru",
		        (unsigned long long)st.lazyfree_pending);
	}
	if (want_section(argc, argv, len, "stats"))
		INFO_ADD(
		        "# Stats\r\ntotal_connections_received:%llu\r\n"
		        "total_commands_processed:%llu\r\n"
		        "total_net_input_bytes:%llu\r\n"
		        "total_net_output_bytes:%llu\r\n"
		        "rejected_connections:%llu\r\nexpired_keys:%llu\r\n"
		        "evicted_keys:%llu\r\nkeyspace_hits:%llu\r\n"
		        "keyspace_misses:%llu\r\n"
		        "acl_access_denied_auth:%llu\r\n"
		        "tls_handshake_failures:%llu\r\n"
		        "peer_auth_failures:%llu\r\n\r\n",
		        (unsigned long long)e->stats.connections,
		        (unsigned long long)e->stats.commands,
		        (unsigned long long)e->stats.net_input_bytes,
		        (unsigned long long)e->stats.net_output_bytes,
		        (unsigned long long)e->stats.rejected_connections,
		        (unsigned long long)st.expired,
		        (unsigned long long)st.evicted,
		        (unsigned long long)e->stats.hits,
		        (unsigned long long)e->stats.misses,
		        (unsigned long long)e->stats.auth_failures,
		        (unsigned long long)e->stats.tls_handshake_failures,
		        (unsigned long long)e->stats.peer_auth_failures);
	if (want_section(argc, argv, len, "cluster")) {
		struct narf_buf cb;

		narf_buf_init(&cb);
		info_cluster(e, &cb);
		INFO_ADD("# Cluster\r\n%.*s\r\n", (int)cb.len,
		         cb.data ? cb.data : "");
		narf_buf_close(&cb);
	}
	if (e->repl != NULL && want_section(argc, argv, len, "replication")) {
		struct narf_buf rb;

		INFO_ADD("# Replication\r\nrole:%s\r\nlease:%s\r\n",
		         narf_engine_map(e) ? "cluster-node" : "joining",
		         e->lease_ok ? "held" : "lapsed");
		narf_buf_init(&rb);
		narf_repl_info(e->repl, &rb);
		INFO_ADD("%.*s\r\n", (int)rb.len, rb.data ? rb.data : "");
		narf_buf_close(&rb);
	}
	if (want_section(argc, argv, len, "keyspace")) {
		INFO_ADD("# Keyspace\r\n");
		if (st.keys > 0)
			INFO_ADD("db0:keys=%llu,expires=%llu,avg_ttl=0\r\n",
			         (unsigned long long)st.keys,
			         (unsigned long long)st.keys_with_ttl);
	}
	if (n >= sizeof(text))
		n = sizeof(text) - 1;
	return narf_reply_verbatim(c, out, text, n);
}

/* --- CLUSTER (standalone: one node owns every slot) ------------------------
 */

/* --- CLUSTER in cluster mode: answered from the coordinator's map -------- */

/* [host, port, name] of a node, as CLUSTER SLOTS lists it. */
static void slots_node(struct narf_buf *out,
                       const struct narf_map *map,
                       uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(map, id);
	char host[NARF_ADDR_SIZE] = "", name[41];
	const char *colon;
	int port = 0;

	if (n != NULL && (colon = strrchr(n->addr, ':')) != NULL) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - n->addr),
		         n->addr);
		port = atoi(colon + 1);
	}
	narf_node_name(name, id);
	narf_resp_array(out, 3);
	narf_resp_bulk_str(out, host);
	narf_resp_int(out, port);
	narf_resp_bulk_str(out, name);
}

static bool same_owners(const struct narf_slot *a, const struct narf_slot *b)
{
	return a->primary == b->primary && a->n_replicas == b->n_replicas &&
	       memcmp(a->replicas, b->replicas,
	              a->n_replicas * sizeof(a->replicas[0])) == 0;
}

static int map_cluster_slots(struct narf_buf *out, const struct narf_map *map)
{
	struct narf_buf body;
	long long ranges = 0;
	unsigned s = 0;
	int rv;

	narf_buf_init(&body);
	while (s < NARF_SLOTS) {
		const struct narf_slot *sl = &map->slots[s];
		unsigned end = s;

		while (end + 1 < NARF_SLOTS &&
		       same_owners(sl, &map->slots[end + 1]))
			end++;
		if (sl->primary != 0) {
			narf_resp_array(&body, 3 + sl->n_replicas);
			narf_resp_int(&body, s);
			narf_resp_int(&body, end);
			slots_node(&body, map, sl->primary);
			for (unsigned i = 0; i < sl->n_replicas; i++)
				slots_node(&body, map, sl->replicas[i]);
			ranges++;
		}
		s = end + 1;
	}
	rv = narf_resp_array(out, ranges);
	if (rv == 0)
		rv = narf_buf_append(out, body.data, body.len);
	narf_buf_close(&body);
	return rv;
}

/* One CLUSTER NODES line per live node: its primary ranges, or the
 * primary it replicates most. */
static int map_cluster_nodes(const struct narf_client *c,
                             struct narf_buf *out,
                             const struct narf_map *map,
                             uint32_t self)
{
	struct narf_buf text;
	int rv;

	narf_buf_init(&text);
	for (unsigned i = 0; i < map->n_nodes; i++) {
		const struct narf_map_node *n = &map->nodes[i];
		char name[41], line[256];
		unsigned s = 0, p, r;
		int len;

		if (n->state == NARF_NODE_REMOVED)
			continue;
		narf_node_name(name, n->id);
		narf_map_node_counts(map, n->id, &p, &r);
		len = snprintf(
		        line, sizeof(line), "%s %s@0 %s%s - 0 0 %llu %s", name,
		        n->addr, n->id == self ? "myself," : "",
		        n->state == NARF_NODE_UP ? "master" : "master,fail",
		        (unsigned long long)map->epoch,
		        n->state == NARF_NODE_UP ? "connected"
		                                 : "disconnected");
		narf_buf_append(&text, line, (size_t)len);
		/* p (the map's derived count) ends the walk after the node's
		 * last range: a node that leads nothing costs nothing. */
		while (p > 0 && s < NARF_SLOTS) {
			unsigned end = s;

			if (map->slots[s].primary != n->id) {
				s++;
				continue;
			}
			while (end + 1 < NARF_SLOTS &&
			       map->slots[end + 1].primary == n->id)
				end++;
			len = end == s ? snprintf(line, sizeof(line), " %u", s)
			               : snprintf(line, sizeof(line), " %u-%u",
			                          s, end);
			narf_buf_append(&text, line, (size_t)len);
			p -= end - s + 1 < p ? end - s + 1 : p;
			s = end + 1;
		}
		narf_buf_append(&text, "\n", 1);
	}
	rv = narf_reply_verbatim(c, out, text.data, text.len);
	narf_buf_close(&text);
	return rv;
}

static int cmd_cluster(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	const char *sub = argv[1];
	size_t n = len[1];
	const char *host = e->cfg.bind;
	char line[256];

	const struct narf_map *map = narf_engine_map(e);

	if (map != NULL && argc == 2) {
		char name[41];

		narf_node_name(name, *e->cluster_node_id);
		if (narf_arg_is(sub, n, "slots"))
			return map_cluster_slots(out, map);
		if (narf_arg_is(sub, n, "nodes"))
			return map_cluster_nodes(c, out, map,
			                         *e->cluster_node_id);
		if (narf_arg_is(sub, n, "myid"))
			return narf_resp_bulk_str(out, name);
	}
	if (narf_arg_is(sub, n, "keyslot") && argc == 3)
		return narf_resp_int(out, narf_key_slot(argv[2], len[2]));
	if (narf_arg_is(sub, n, "myid") && argc == 2)
		return narf_resp_bulk_str(out, e->run_id);
	if (narf_arg_is(sub, n, "slots") && argc == 2) {
		narf_resp_array(out, 1);
		narf_resp_array(out, 3);
		narf_resp_int(out, 0);
		narf_resp_int(out, NARF_SLOTS - 1);
		narf_resp_array(out, 3);
		narf_resp_bulk_str(out, host);
		narf_resp_int(out, e->cfg.port);
		return narf_resp_bulk_str(out, e->run_id);
	}
	if (narf_arg_is(sub, n, "shards") && argc == 2) {
		narf_resp_array(out, 1);
		narf_reply_map(c, out, 2);
		narf_resp_bulk_str(out, "slots");
		narf_resp_array(out, 2);
		narf_resp_int(out, 0);
		narf_resp_int(out, NARF_SLOTS - 1);
		narf_resp_bulk_str(out, "nodes");
		narf_resp_array(out, 1);
		narf_reply_map(c, out, 7);
		narf_resp_bulk_str(out, "id");
		narf_resp_bulk_str(out, e->run_id);
		narf_resp_bulk_str(out, "port");
		narf_resp_int(out, e->cfg.port);
		narf_resp_bulk_str(out, "ip");
		narf_resp_bulk_str(out, host);
		narf_resp_bulk_str(out, "endpoint");
		narf_resp_bulk_str(out, host);
		narf_resp_bulk_str(out, "role");
		narf_resp_bulk_str(out, "master");
		narf_resp_bulk_str(out, "replication-offset");
		narf_resp_int(out, 0);
		narf_resp_bulk_str(out, "health");
		return narf_resp_bulk_str(out, "online");
	}
	if (narf_arg_is(sub, n, "nodes") && argc == 2) {
		snprintf(line, sizeof(line),
		         "%s %s:%d@%d myself,master - 0 0 1 connected 0-%d\n",
		         e->run_id, host, e->cfg.port, e->cfg.port + 10000,
		         NARF_SLOTS - 1);
		return narf_reply_verbatim(c, out, line, strlen(line));
	}
	if (narf_arg_is(sub, n, "info") && argc == 2) {
		snprintf(line, sizeof(line),
		         "cluster_enabled:1\r\ncluster_state:ok\r\n"
		         "cluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n"
		         "cluster_known_nodes:1\r\ncluster_size:1\r\n"
		         "cluster_current_epoch:1\r\ncluster_my_epoch:1\r\n",
		         NARF_SLOTS, NARF_SLOTS);
		return narf_reply_verbatim(c, out, line, strlen(line));
	}
	static const char *const known[] = {
	        "keyslot", "myid", "slots", "shards", "nodes", "info", NULL};
	return subcommand_error(out, "cluster", known, sub, n);
}

#define A NARF_CMD_NOAUTH
#define F NARF_CMD_FAST
const struct narf_command narf_server_commands[] = {
        {"ping", cmd_ping, -1, F, 0, 0, 0},
        {"echo", cmd_echo, 2, F, 0, 0, 0},
        {"select", cmd_select, 2, F, 0, 0, 0},
        {"quit", cmd_quit, -1, A | F, 0, 0, 0},
        {"auth", cmd_auth, -2, A | F, 0, 0, 0},
        {"hello", cmd_hello, -1, A | F, 0, 0, 0},
        {"client", cmd_client, -2, 0, 0, 0, 0},
        {"command", cmd_command, -1, 0, 0, 0, 0},
        {"config", cmd_config, -2, NARF_CMD_ADMIN, 0, 0, 0},
        {"info", cmd_info, -1, 0, 0, 0, 0},
        {"cluster", cmd_cluster, -2, 0, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
