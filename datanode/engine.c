/*
 * Command dispatch: lookup, authentication, arity, key-size and memory
 * checks, then the command itself. The command table is hashed once at
 * start-up (case-insensitively), so dispatch costs one short hash and one
 * compare rather than a walk over ~70 names.
 */
#include "engine.h"
#include "keyspec.h"
#include "repl.h"

#include "common/coll.h"
#include "common/dict.h"
#include "common/log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#define CMD_TABLE_SIZE NARF_CMD_SLOTS /* power of two, > 4x the commands */
#define NAME_MAX_LEN 32

static const struct narf_command *cmd_table[CMD_TABLE_SIZE];
static uint8_t cmd_len[CMD_TABLE_SIZE]; /* strlen of each name */

/* Command names are ASCII: no locale lookup per byte (tolower()). */
static inline unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static unsigned name_hash(const char *s, size_t n)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= ascii_lower((unsigned char)s[i]);
		h *= 16777619u;
	}
	return h & (CMD_TABLE_SIZE - 1);
}

static void table_add(const struct narf_command *cmds)
{
	for (; cmds->name != NULL; cmds++) {
		size_t n = strlen(cmds->name);
		unsigned h = name_hash(cmds->name, n);

		assert(n <= NAME_MAX_LEN);
		while (cmd_table[h] != NULL)
			h = (h + 1) & (CMD_TABLE_SIZE - 1);
		cmd_table[h] = cmds;
		cmd_len[h] = (uint8_t)n;
	}
}

/* Does name (any case) spell lower, a table name of the same length n? */
static bool name_is(const char *name, const char *lower, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)name[i]) !=
		    (unsigned char)lower[i])
			return false;
	return true;
}

/* The table position of the command named name, or -1. */
/* The permission a command needs (users file, docs/security.md): admin
 * commands admin, writes readwrite, everything else read. NARF.* are for
 * proven peers only (cmd_cluster.c). */
static enum narf_perm needed_perm(const struct narf_command *cmd)
{
	if (cmd->flags & NARF_CMD_ADMIN)
		return NARF_PERM_ADMIN;
	if (cmd->flags & NARF_CMD_WRITE)
		return NARF_PERM_READWRITE;
	return NARF_PERM_READ;
}

/* Redis 7.0's words for an ACL refusal; a command with subcommands is
 * named "config|get", as Redis names it. */
static int reply_noperm(struct narf_buf *out,
                        const struct narf_command *cmd,
                        int argc,
                        const char **argv,
                        const size_t *argvlen)
{
	char sub[32];
	size_t n = 0;

	if (strcmp(cmd->name, "config") == 0 && argc >= 2) {
		for (; n < argvlen[1] && n < sizeof(sub) - 1; n++)
			sub[n] = (char)tolower((unsigned char)argv[1][n]);
	}
	sub[n] = '\0';
	return narf_resp_errorf(out,
	                        "NOPERM this user has no permissions to run "
	                        "the '%s%s%s' command",
	                        cmd->name, n ? "|" : "", sub);
}

static int lookup_pos(const char *name, size_t n)
{
	unsigned h;

	if (n == 0 || n > NAME_MAX_LEN)
		return -1;
	for (h = name_hash(name, n); cmd_table[h] != NULL;
	     h = (h + 1) & (CMD_TABLE_SIZE - 1))
		if (cmd_len[h] == n && name_is(name, cmd_table[h]->name, n))
			return (int)h;
	return -1;
}

static const struct narf_command *lookup_command(const char *name, size_t n)
{
	int pos = lookup_pos(name, n);

	return pos < 0 ? NULL : cmd_table[pos];
}

const struct narf_command *narf_engine_command(const char *name, size_t n)
{
	return lookup_command(name, n);
}

/*
 * The look-ahead's last two stages, for the requests whose argv[2] (or
 * argv[3]) is an element of the key's collection (NARF_CMD_MEMBER,
 * NARF_CMD_MEMBER3): once the entries are
 * in, find each collection's dict and prefetch the element's bucket, then
 * its first node. A single big set, hash or zset takes all of a pipeline's
 * requests: these are its cache misses.
 */
static void prefetch_members(struct narf_engine *e)
{
	const struct narf_dict *d[NARF_PREFETCH_MAX];
	uint64_t mh[NARF_PREFETCH_MAX];
	const uint8_t *seed = narf_store_coll_ctx(e->store)->seed;
	unsigned n = 0;

	for (unsigned i = 0; i < e->pf_n; i++) {
		const struct narf_pf_req *p = &e->pf[i];
		const struct narf_command *cmd;
		struct narf_entry *en;
		struct narf_coll c;
		int m;

		if (p->k.key == NULL)
			continue;
		cmd = cmd_table[p->cmd_pos]; /* it has a key: a command */
		m = (cmd->flags & NARF_CMD_MEMBER)    ? 2
		    : (cmd->flags & NARF_CMD_MEMBER3) ? 3
		                                      : 0;
		if (m == 0 || p->req.argc <= m)
			continue;
		en = narf_store_peek(e->store, p->k.slot, p->k.key, p->k.len,
		                     p->k.h);
		if (en == NULL || !narf_entry_coll(en, &c) ||
		    (d[n] = narf_coll_dict(&c)) == NULL)
			continue;
		mh[n] = narf_siphash(p->req.argv[m], p->req.argvlen[m], seed);
		narf_dict_prefetch(d[n], mh[n], 0);
		n++;
	}
	for (unsigned i = 0; i < n; i++)
		narf_dict_prefetch(d[i], mh[i], 1);
}

void narf_engine_prefetch(struct narf_engine *e,
                          const struct narf_client *c,
                          const char *buf,
                          size_t len)
{
	const struct narf_resp_limits *lim = narf_engine_limits(e, c);
	unsigned n = 0, keyed = 0;
	size_t pos = 0;
	char errmsg[256];

	narf_engine_prefetch_end(e);
	e->pf_client = c;
	e->pf_lim = *lim;
	while (n < NARF_PREFETCH_MAX && pos < len) {
		struct narf_pf_req *p = &e->pf[n];
		struct narf_resp_req *r = &p->req;
		const struct narf_command *cmd;
		size_t need = 0;
		int rv = narf_resp_parse(r, buf + pos, len - pos, lim, &need,
		                         errmsg);

		if (rv != NARF_RESP_DONE) {
			narf_resp_req_reset(r);
			break;
		}
		p->off = pos;
		p->k.key = NULL;
		p->name = r->argv[0];
		p->cmd_pos = lookup_pos(r->argv[0], r->argvlen[0]);
		cmd = r->argc >= 2 && p->cmd_pos >= 0 ? cmd_table[p->cmd_pos]
		                                      : NULL;
		if (cmd != NULL && cmd->first_key == 1) {
			p->k.key = r->argv[1];
			p->k.len = r->argvlen[1];
			p->k.slot = narf_key_slot(p->k.key, p->k.len);
			p->k.h = narf_store_hash(e->store, p->k.key, p->k.len);
			keyed++;
		}
		pos += r->consumed;
		n++;
	}
	e->pf_n = n;
	if (keyed < 2) /* nothing to overlap */
		return;
	for (unsigned stage = 0; stage < 3; stage++)
		for (unsigned i = 0; i < n; i++)
			if (e->pf[i].k.key != NULL)
				narf_store_prefetch(e->store, e->pf[i].k.slot,
				                    e->pf[i].k.h, stage);
	prefetch_members(e);
}

bool narf_engine_prefetch_take(struct narf_engine *e,
                               const struct narf_client *c,
                               size_t off,
                               struct narf_resp_req *req)
{
	struct narf_pf_req *p;
	struct narf_resp_req tmp;

	e->pf_take_live = false;
	if (e->pf_client != c)
		return false;
	while (e->pf_next < e->pf_n && e->pf[e->pf_next].off < off)
		narf_resp_req_reset(&e->pf[e->pf_next++].req);
	if (e->pf_next == e->pf_n || e->pf[e->pf_next].off != off ||
	    !narf_resp_req_fresh(req))
		return false;
	/* A request parsed under other limits (AUTH or CONFIG SET since)
	 * is parsed again, under the ones that hold now. */
	if (memcmp(&e->pf_lim, narf_engine_limits(e, c), sizeof(e->pf_lim)) !=
	    0) {
		narf_engine_prefetch_end(e);
		return false;
	}
	e->pf_taken = e->pf_next;
	e->pf_take_live = true;
	p = &e->pf[e->pf_next++];
	tmp = *req;
	*req = p->req;
	p->req = tmp;
	narf_resp_req_reset(&p->req);
	return true;
}

void narf_engine_prefetch_end(struct narf_engine *e)
{
	for (unsigned i = e->pf_next; i < e->pf_n; i++)
		narf_resp_req_reset(&e->pf[i].req);
	e->pf_n = 0;
	e->pf_next = 0;
	e->pf_taken = 0;
	e->pf_take_live = false;
	e->pf_client = NULL;
}

/* The look-ahead's entry for the request about to run (argv), if it is the
 * one narf_engine_prefetch_take() has just given out; once only: a request
 * parsed in place afterwards may reuse the scratch space (and so the
 * addresses) of an inline request that was taken. */
static const struct narf_pf_req *take_taken(struct narf_engine *e,
                                            const struct narf_client *c,
                                            const char **argv)
{
	const struct narf_pf_req *p = &e->pf[e->pf_taken];
	bool live = e->pf_take_live;

	e->pf_take_live = false;
	if (!live || e->pf_client != c || e->pf_taken >= e->pf_next ||
	    p->name != argv[0])
		return NULL;
	return p;
}

/* The request's argument 1 becomes the key narf_key_ref() remembers, with
 * its slot and hash from the prefetch when it looked at this request. Only
 * argument 1: its address cannot be another key's while the request runs
 * (a key a command builds in a buffer of its own could reuse an address). */
static void kref_begin(struct narf_engine *e,
                       const struct narf_pf_req *p,
                       int argc,
                       const char **argv,
                       const size_t *argvlen)
{
	e->kref.key = NULL;
	e->kref_live = false;
	if (argc < 2)
		return;
	e->kref_live = true;
	e->kref_done = false;
	e->kref.key = argv[1];
	e->kref.len = argvlen[1];
	if (p != NULL && p->k.key == argv[1] && p->k.len == argvlen[1]) {
		e->kref = p->k;
		e->kref_done = true;
	}
}

struct narf_keyref narf_key_ref(struct narf_engine *e,
                                const char *key,
                                size_t len)
{
	struct narf_keyref k;
	bool mine = e->kref_live && e->kref.key == key && e->kref.len == len;

	if (mine && e->kref_done)
		return e->kref;
	k.key = key;
	k.len = len;
	k.slot = narf_key_slot(key, len);
	k.h = narf_store_hash(e->store, key, len);
	if (mine) {
		e->kref = k;
		e->kref_done = true;
	}
	return k;
}

const struct narf_command *narf_engine_command_at(unsigned i)
{
	return i < CMD_TABLE_SIZE ? cmd_table[i] : NULL;
}

/* Walk every command table (COMMAND, COMMAND COUNT). */
const struct narf_command *const narf_command_tables[] = {
        narf_string_commands,
        narf_hash_commands,
        narf_list_commands,
        narf_set_commands,
        narf_setalg_commands,
        narf_zset_commands,
        narf_zrange_commands,
        narf_key_commands,
        narf_server_commands,
        narf_cluster_commands,
        NULL,
};

void narf_engine_config_default(struct narf_engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = 6379;
	cfg->bind = "127.0.0.1";
	narf_coll_limits_default(&cfg->coll_limits);
	cfg->max_key_size = 64 * 1024;
	narf_resp_limits_default(&cfg->limits);
	cfg->max_clients = 10000;
	cfg->max_peer_links = NARF_DEFAULT_MAX_PEER_LINKS;
	cfg->max_query_buffer = 1ULL << 30;
	cfg->idle_timeout_ms = 300000;
	cfg->eviction = NARF_EVICT_ALLKEYS_LRU;
	cfg->standalone = true;
	cfg->protected_mode = true;
}

static int64_t real_clock(void *data)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int64_t narf_engine_now(const struct narf_engine *e)
{
	return e->now_cached != 0 ? e->now_cached : e->clock(e->clock_data);
}

static void random_bytes(uint8_t *buf, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	while (fd >= 0 && got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	if (got < n) {
		/* No urandom: still vary per process, though guessable. */
		struct timeval tv;

		gettimeofday(&tv, NULL);
		for (size_t i = got; i < n; i++)
			buf[i] = (uint8_t)((tv.tv_usec >> (i % 16)) ^ getpid() ^
			                   (int)i * 131);
	}
}

int narf_engine_init(struct narf_engine *e,
                     const struct narf_engine_config *cfg,
                     int64_t (*clock)(void *),
                     void *clock_data)
{
	struct narf_store_config sc = {0};
	uint8_t rid[20];
	int rv;

	static bool tables_built; /* the loop thread's, built once */

	memset(e, 0, sizeof(*e));
	for (unsigned i = 0; i < NARF_PREFETCH_MAX; i++)
		narf_resp_req_init(&e->pf[i].req);
	if (!tables_built) {
		tables_built = true;
		for (int i = 0; narf_command_tables[i] != NULL; i++)
			table_add(narf_command_tables[i]);
		table_add(narf_peer_commands);
		table_add(narf_effect_commands);
	}
	e->cfg = *cfg;
	e->clock = clock ? clock : real_clock;
	e->clock_data = clock_data;
	e->start_ms = narf_engine_now(e);
	e->next_client_id = 1;
	e->preauth_limits = cfg->limits;
	e->preauth_limits.noauth_multibulk = NARF_PREAUTH_ARGS;
	e->preauth_limits.noauth_bulk = NARF_PREAUTH_BULK;
	e->auth_log.what = "AUTH failed";
	e->denied_log.what = "denied by protected mode";
	e->tls_log.what = "TLS handshake failed";
	e->peer_auth_log.what = "NARF.AUTH failed (peer link refused, closed)";
	e->preauth_log.what =
	        "closed before AUTH, over its limit of replies "
	        "unread";
	sc.max_memory = cfg->max_memory;
	sc.eviction = cfg->eviction;
	sc.coll_limits = &e->cfg.coll_limits;
	sc.lru_samples = 5;
	if (cfg->seed != NULL)
		memcpy(sc.seed, cfg->seed, sizeof(sc.seed));
	else
		random_bytes(sc.seed, sizeof(sc.seed));
	rv = narf_store_create(&e->store, &sc);
	if (rv != 0)
		return rv;
	random_bytes(rid, sizeof(rid));
	for (int i = 0; i < 20; i++)
		snprintf(e->run_id + 2 * i, 3, "%02x", rid[i]);
	narf_block_init(&e->block, rid); /* its hash seed: 16 random bytes */
	return 0;
}

void narf_engine_close(struct narf_engine *e)
{
	if (e == NULL)
		return;
	narf_block_close(&e->block);
	for (unsigned i = 0; i < NARF_PREFETCH_MAX; i++)
		narf_resp_req_close(&e->pf[i].req);
	narf_store_destroy(e->store);
	e->store = NULL;
	free(e->cfg.requirepass);
	e->cfg.requirepass = NULL;
	explicit_bzero(&e->cfg.keys, sizeof(e->cfg.keys));
	narf_users_free(&e->cfg.users);
}

/* The first line of path (without its newline) in a new string, or NULL
 * with errmsg set. */
static char *first_line(const char *path, char *errmsg)
{
	char buf[1100];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", path,
		         strerror(errno));
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0 || n > 1024) {
		explicit_bzero(buf, sizeof(buf));
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "%s: the password is 1 to 1024 bytes on the first "
		         "line",
		         path);
		return NULL;
	}
	return strdup(buf);
}

void narf_engine_reload_credentials(struct narf_engine *e)
{
	char errmsg[NARF_ERRMSG_SIZE];

	if (e->cfg.requirepass_file != NULL) {
		char *pass = first_line(e->cfg.requirepass_file, errmsg);

		if (pass == NULL) {
			NARF_ERROR(
			        "SIGHUP: --requirepass-file %s: keeping "
			        "the password in use",
			        errmsg);
		} else {
			if (e->cfg.requirepass != NULL)
				explicit_bzero(e->cfg.requirepass,
				               strlen(e->cfg.requirepass));
			free(e->cfg.requirepass);
			e->cfg.requirepass = pass;
			NARF_INFO("SIGHUP: client password reloaded");
		}
	}
	if (e->cfg.secret_file != NULL) {
		struct narf_auth_keys keys;

		errmsg[0] = '\0';
		if (narf_auth_keys_from_file(&keys, e->cfg.secret_file,
		                             errmsg) != 0 ||
		    !narf_auth_keys_can(&keys, NARF_AUTH_NODE)) {
			NARF_ERROR(
			        "SIGHUP: --cluster-secret-file %s: keeping "
			        "the key in use",
			        errmsg[0] ? errmsg : e->cfg.secret_file);
		} else {
			e->cfg.keys = keys;
			NARF_INFO("SIGHUP: node key reloaded (%u key%s)",
			          keys.n,
			          keys.n == 1 ? "" : "s, for a rotation");
		}
		explicit_bzero(&keys, sizeof(keys));
	}
	if (e->cfg.users_file != NULL) {
		struct narf_users users;

		if (narf_users_load(&users, e->cfg.users_file, errmsg) != 0) {
			NARF_ERROR(
			        "SIGHUP: --users-file %s: keeping the users "
			        "in use",
			        errmsg);
		} else {
			narf_users_free(&e->cfg.users);
			e->cfg.users = users;
			NARF_INFO("SIGHUP: %zu users reloaded", users.n);
		}
	}
}

bool narf_engine_has_password(const struct narf_engine *e)
{
	return e->cfg.requirepass != NULL || e->cfg.users.n > 0;
}

void narf_engine_client_init(struct narf_engine *e, struct narf_client *c)
{
	memset(c, 0, sizeof(*c));
	c->id = e->next_client_id++;
	c->resp = 2;
	/* Without a password the default user is nopass and may do
	 * anything, as Redis's. */
	c->authenticated = !narf_engine_has_password(e);
	c->perm = c->authenticated ? NARF_PERM_ADMIN : NARF_PERM_NONE;
	c->created_ms = (uint64_t)narf_engine_now(e);
}

bool narf_engine_preauth(const struct narf_engine *e,
                         const struct narf_client *c)
{
	return !c->authenticated || narf_engine_protected(e, c);
}

const struct narf_resp_limits *narf_engine_limits(const struct narf_engine *e,
                                                  const struct narf_client *c)
{
	return narf_engine_preauth(e, c) ? &e->preauth_limits : &e->cfg.limits;
}

/* --- protected mode (see engine.h) ---------------------------------------- */

bool narf_engine_protected(const struct narf_engine *e,
                           const struct narf_client *c)
{
	return e->cfg.protected_mode && !narf_engine_has_password(e) &&
	       !c->loopback && !c->peer;
}

bool narf_engine_admits_peers(const struct narf_engine *e)
{
	return narf_auth_keys_can(&e->cfg.keys, NARF_AUTH_NODE);
}

bool narf_engine_protected_denies(const struct narf_engine *e,
                                  const struct narf_client *c,
                                  const struct narf_command *cmd)
{
	if (!narf_engine_protected(e, c))
		return false;
	/* The peer handshake, and nothing else. */
	return cmd == NULL || !narf_engine_admits_peers(e) ||
	       !(cmd->flags & NARF_CMD_PEER_AUTH);
}

int narf_engine_deny(struct narf_engine *e,
                     struct narf_client *c,
                     struct narf_buf *out)
{
	e->stats.rejected_connections++;
	narf_engine_ratelog(e, &e->denied_log, c);
	c->close_after_reply = true;
	return narf_resp_error(out, NARF_DENIED);
}

/* --- rate-limited client events ------------------------------------------- */

/* Report rl's events not logged yet, once NARF_RATELOG_MS have passed. */
static void ratelog_flush(struct narf_ratelog *rl, int64_t now)
{
	if (rl->suppressed == 0 || now - rl->last_ms < NARF_RATELOG_MS)
		return;
	NARF_WARN("%s: %llu more times in the last %lld ms, the latest from %s",
	          rl->what, (unsigned long long)rl->suppressed,
	          (long long)(now - rl->last_ms), rl->last_addr);
	rl->suppressed = 0;
	rl->last_ms = now;
}

void narf_engine_ratelog(struct narf_engine *e,
                         struct narf_ratelog *rl,
                         const struct narf_client *c)
{
	narf_engine_ratelog_detail(e, rl, c, NULL);
}

void narf_engine_ratelog_detail(struct narf_engine *e,
                                struct narf_ratelog *rl,
                                const struct narf_client *c,
                                const char *detail)
{
	int64_t now = narf_engine_now(e);
	const char *sep = detail != NULL ? ": " : "";

	if (detail == NULL)
		detail = "";

	if (rl->last_ms != 0 && now - rl->last_ms < NARF_RATELOG_MS) {
		rl->suppressed++;
		snprintf(rl->last_addr, sizeof(rl->last_addr), "%s", c->addr);
		return;
	}
	if (rl->suppressed > 0)
		NARF_WARN(
		        "%s: client %llu (%s)%s%s; %llu more times before it "
		        "(not logged), the latest from %s",
		        rl->what, (unsigned long long)c->id, c->addr, sep,
		        detail, (unsigned long long)rl->suppressed,
		        rl->last_addr);
	else
		NARF_WARN("%s: client %llu (%s)%s%s", rl->what,
		          (unsigned long long)c->id, c->addr, sep, detail);
	rl->suppressed = 0;
	rl->last_ms = now;
}

/* --- connection budgets (engine.h, enum narf_budget) --------------------- */

enum narf_budget narf_engine_admit(const struct narf_engine *e)
{
	if (e->connected_clients < e->cfg.max_clients)
		return NARF_BUDGET_CLIENT;
	if (e->peer_links + e->peer_pending < e->cfg.max_peer_links)
		return NARF_BUDGET_RESERVE;
	return NARF_BUDGET_NONE;
}

static unsigned *budget_count(struct narf_engine *e, enum narf_budget b)
{
	switch (b) {
	case NARF_BUDGET_CLIENT:
		return &e->connected_clients;
	case NARF_BUDGET_RESERVE:
		return &e->peer_pending;
	case NARF_BUDGET_PEER:
		return &e->peer_links;
	case NARF_BUDGET_NONE:
		break;
	}
	return NULL;
}

void narf_engine_budget_take(struct narf_engine *e,
                             struct narf_client *c,
                             enum narf_budget b)
{
	unsigned *n = budget_count(e, b);

	narf_engine_budget_release(e, c);
	if (n != NULL)
		(*n)++;
	c->budget = b;
}

void narf_engine_budget_release(struct narf_engine *e, struct narf_client *c)
{
	unsigned *n = budget_count(e, c->budget);

	if (n != NULL && *n > 0)
		(*n)--;
	c->budget = NARF_BUDGET_NONE;
}

bool narf_engine_reserve_overdue(const struct narf_engine *e,
                                 const struct narf_client *c,
                                 int64_t now)
{
	/* A clock stepped back counts as overdue: a peer just tries again. */
	return c->budget == NARF_BUDGET_RESERVE &&
	       (now < (int64_t)c->created_ms ||
	        now - (int64_t)c->created_ms >= NARF_PEER_AUTH_DEADLINE_MS);
}

int narf_engine_reserve_refuse(struct narf_engine *e,
                               struct narf_client *c,
                               struct narf_buf *out)
{
	e->stats.rejected_connections++;
	c->close_after_reply = true;
	return narf_resp_error(out, "ERR max number of clients reached");
}

void narf_engine_client_proven(struct narf_engine *e,
                               struct narf_client *c,
                               uint32_t node)
{
	c->peer = true;
	c->peer_challenged = false;
	c->peer_node = node;
	c->authenticated = true;
	if (c->budget != NARF_BUDGET_NONE)
		narf_engine_budget_take(e, c, NARF_BUDGET_PEER);
}

void narf_engine_peer_auth_failed(struct narf_engine *e,
                                  struct narf_client *c,
                                  uint64_t claimed,
                                  const char *why)
{
	char detail[256];

	e->stats.peer_auth_failures++;
	c->close_after_reply = true;
	c->peer_challenged = false;
	if (claimed != 0)
		snprintf(detail, sizeof(detail), "claiming node %llu: %s",
		         (unsigned long long)claimed, why);
	else
		snprintf(detail, sizeof(detail), "%s", why);
	/* A stranger may fail as fast as it can connect: a line a second. */
	narf_engine_ratelog_detail(e, &e->peer_auth_log, c, detail);
}

void narf_engine_cron(struct narf_engine *e)
{
	int64_t now = narf_engine_now(e);

	ratelog_flush(&e->auth_log, now);
	ratelog_flush(&e->denied_log, now);
	ratelog_flush(&e->preauth_log, now);
	ratelog_flush(&e->tls_log, now);
	ratelog_flush(&e->peer_auth_log, now);

	/* Bounded work per tick: a few thousand entry checks and rehash
	 * steps take well under a millisecond. */
	narf_store_active_expire(e->store, now, 2000);
	narf_store_cron(e->store, 1000);
}

/* --- parsing helpers ------------------------------------------------------ */

bool narf_client_ack_primary(const struct narf_engine *e,
                             const struct narf_client *c)
{
	const struct narf_map *m =
	        e->cluster_map != NULL ? *e->cluster_map : NULL;

	if (c->ack_set || m == NULL)
		return c->ack_primary;
	return m->settings.ack == NARF_ACK_PRIMARY;
}

bool narf_str_to_ll(const char *s, size_t n, long long *v)
{
	unsigned long long acc = 0;
	bool neg = false;
	size_t i = 0;

	if (n == 0 || n > 20)
		return false;
	if (n == 1 && s[0] == '0') {
		*v = 0;
		return true;
	}
	if (s[0] == '-') {
		neg = true;
		i = 1;
		if (n == 1)
			return false;
	}
	if (s[i] < '1' || s[i] > '9')
		return false; /* no leading zeros, spaces or '+' */
	for (; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (acc > (ULLONG_MAX - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	if (neg) {
		if (acc > (unsigned long long)LLONG_MAX + 1)
			return false;
		*v = (acc == (unsigned long long)LLONG_MAX + 1)
		             ? LLONG_MIN
		             : -(long long)acc;
	} else {
		if (acc > LLONG_MAX)
			return false;
		*v = (long long)acc;
	}
	return true;
}

bool narf_str_to_ld(const char *s, size_t n, long double *v)
{
	char buf[5120];
	char *end;
	long double d;

	if (n == 0 || n >= sizeof(buf) || isspace((unsigned char)s[0]))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	d = strtold(buf, &end);
	if (*end != '\0' || isspace((unsigned char)buf[n - 1]) ||
	    (errno == ERANGE &&
	     (d == HUGE_VALL || d == -HUGE_VALL || fpclassify(d) == FP_ZERO)) ||
	    isnan(d))
		return false;
	*v = d;
	return true;
}

int narf_arg_ll(struct narf_buf *out, const char *s, size_t n, long long *v)
{
	if (narf_str_to_ll(s, n, v))
		return 0;
	narf_resp_error(out, "ERR value is not an integer or out of range");
	return -1;
}

bool narf_arg_is(const char *arg, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(arg, word, n) == 0;
}

int narf_reply_wrong_arity(struct narf_buf *out, const char *cmd)
{
	return narf_resp_errorf(out,
	                        "ERR wrong number of arguments for '%s' "
	                        "command",
	                        cmd);
}

int narf_reply_syntax(struct narf_buf *out)
{
	return narf_resp_error(out, "ERR syntax error");
}

unsigned narf_key_slot(const char *key, size_t len)
{
	return narf_slot_of(key, len);
}

struct narf_entry *narf_lookup(struct narf_engine *e,
                               const char *key,
                               size_t len,
                               bool count)
{
	struct narf_keyref k = narf_key_ref(e, key, len);
	struct narf_entry *en = narf_store_get_h(e->store, k.slot, key, len,
	                                         k.h, narf_engine_now(e), 0);

	if (count) {
		if (en != NULL)
			e->stats.hits++;
		else
			e->stats.misses++;
	}
	return en;
}

int narf_engine_effect(struct narf_engine *e,
                       unsigned slot,
                       const char *op,
                       const char *key,
                       size_t klen,
                       long long count,
                       int n,
                       const char *const *args,
                       const size_t *lens)
{
	const char *small[64], **argv = small;
	size_t smalllen[64], *argvlen = smalllen;
	char cnt[24];
	int argc = 4 + n;

	if (e->repl == NULL)
		return 0;
	if (argc > 64) {
		argv = malloc(sizeof(*argv) * (size_t)argc);
		argvlen = malloc(sizeof(*argvlen) * (size_t)argc);
		if (argv == NULL || argvlen == NULL) {
			free(argv);
			free(argvlen);
			return NARF_ENOMEM;
		}
	}
	argv[0] = op;
	argvlen[0] = strlen(op);
	argv[2] = key;
	argvlen[2] = klen;
	argvlen[3] = (size_t)snprintf(cnt, sizeof(cnt), "%lld", count);
	argv[3] = cnt;
	for (int i = 0; i < n; i++) {
		argv[4 + i] = args[i];
		argvlen[4 + i] = lens[i];
	}
	narf_repl_effect(e->repl, slot, argc, argv, argvlen);
	if (argv != small) {
		free(argv);
		free(argvlen);
	}
	return 0;
}

void narf_fx_init(struct narf_fx *fx)
{
	memset(fx, 0, sizeof(*fx));
	narf_buf_init(&fx->data);
}

void narf_fx_close(struct narf_fx *fx)
{
	narf_buf_close(&fx->data);
	free(fx->lens);
	fx->lens = NULL;
}

void narf_fx_add(struct narf_fx *fx, const void *p, size_t n)
{
	if (fx->err != 0)
		return;
	if (fx->n == fx->cap) {
		size_t cap = fx->cap ? fx->cap * 2 : 16;
		size_t *lens = realloc(fx->lens, cap * sizeof(*lens));

		if (lens == NULL) {
			fx->err = NARF_ENOMEM;
			return;
		}
		fx->lens = lens;
		fx->cap = cap;
	}
	if (narf_buf_append(&fx->data, p, n) != 0) {
		fx->err = NARF_ENOMEM;
		return;
	}
	fx->lens[fx->n++] = n;
}

void narf_fx_double(struct narf_fx *fx, double v)
{
	char num[40];
	int n = snprintf(num, sizeof(num), "%.17g", v);

	narf_fx_add(fx, num, (size_t)n);
}

void narf_fx_send(struct narf_engine *e,
                  struct narf_fx *fx,
                  unsigned slot,
                  const char *op,
                  const char *key,
                  size_t klen,
                  long long count)
{
	const char **args;
	size_t off = 0;

	if (e->repl == NULL || fx->n == 0)
		return;
	args = fx->err == 0 ? malloc(sizeof(*args) * fx->n) : NULL;
	if (args == NULL) {
		/* what the replicas miss they must not pretend to have: a
		 * count nobody can match fails the link, which resyncs */
		narf_engine_effect(e, slot, op, key, klen, -2, 0, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < fx->n; i++) {
		args[i] = fx->data.data + off;
		off += fx->lens[i];
	}
	narf_engine_effect(e, slot, op, key, klen, count, (int)fx->n, args,
	                   fx->lens);
	free(args);
}

void narf_engine_send_value(struct narf_engine *e,
                            unsigned slot,
                            const char *key,
                            size_t klen)
{
	struct narf_entry *en;

	if (e->repl == NULL)
		return;
	en = narf_store_get(e->store, slot, key, klen, narf_engine_now(e),
	                    NARF_STORE_NOTOUCH);
	if (en != NULL)
		narf_repl_store_write(e->repl, slot, key, klen, en);
}

int narf_parse_block_timeout(struct narf_buf *out,
                             const char *s,
                             size_t n,
                             uint64_t *ms)
{
	long double v;

	if (!narf_str_to_ld(s, n, &v)) {
		narf_resp_error(out,
		                "ERR timeout is not a float or out of range");
		return -1;
	}
	/* 7.0.15's (long long)ceill(v * 1000.0): beyond long long, x86's
	 * conversion gives LLONG_MIN, so "inf" and 1e16 are negative. */
	v = ceill(v * 1000.0L);
	if (!(v < 9223372036854775808.0L) || v < 0) {
		narf_resp_error(out, "ERR timeout is negative");
		return -1;
	}
	*ms = (uint64_t)v;
	return 0;
}

int narf_block_wait(struct narf_client *c,
                    enum narf_type type,
                    int first,
                    int last,
                    int numkeys_at,
                    uint64_t ms)
{
	c->block_type = type;
	c->block_first = first;
	c->block_last = last;
	c->block_numkeys_at = numkeys_at;
	c->block_ms = ms;
	return NARF_EXEC_BLOCK;
}

int narf_reply_store_error(struct narf_buf *out, int rv)
{
	if (rv == NARF_EWRONGTYPE)
		return narf_reply_wrongtype(out);
	if (rv == NARF_EOOM)
		return narf_resp_error(out,
		                       "OOM command not allowed when used "
		                       "memory > 'maxmemory'.");
	if (rv == NARF_ETOOLARGE)
		return narf_resp_error(out, "ERR value is too large");
	return rv; /* NARF_ENOMEM: the connection closes */
}

int narf_coll_open_write(struct narf_engine *e,
                         const char *key,
                         size_t klen,
                         enum narf_type t,
                         size_t grow,
                         bool create,
                         struct narf_cref *r,
                         struct narf_buf *out)
{
	struct narf_keyref k = narf_key_ref(e, key, klen);
	int rv = narf_store_coll_open_h(e->store, k.slot, key, klen, k.h, t,
	                                grow, create ? NARF_COLL_CREATE : 0,
	                                narf_engine_now(e), r);

	if (rv != 0) {
		narf_reply_store_error(out, rv);
		return -1;
	}
	return 0;
}

int narf_reply_wrongtype(struct narf_buf *out)
{
	return narf_resp_error(out,
	                       "WRONGTYPE Operation against a key holding "
	                       "the wrong kind of value");
}

int narf_lookup_coll(struct narf_engine *e,
                     const char *key,
                     size_t len,
                     enum narf_type t,
                     struct narf_coll *c,
                     struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, key, len, true);

	if (en == NULL)
		return 0;
	if (narf_entry_type(en) != t) {
		narf_reply_wrongtype(out);
		return -1;
	}
	narf_entry_coll(en, c);
	return 1;
}

int narf_parse_scan_opts(int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_scan_opts *o,
                         struct narf_buf *out)
{
	o->pat = NULL;
	o->plen = 0;
	o->count = 10;
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc) {
			narf_reply_syntax(out);
			return -1;
		}
		if (narf_arg_is(argv[i], len[i], "count")) {
			if (narf_arg_ll(out, argv[i + 1], len[i + 1],
			                &o->count) != 0)
				return -1;
			if (o->count < 1) {
				narf_reply_syntax(out);
				return -1;
			}
		} else if (narf_arg_is(argv[i], len[i], "match")) {
			o->pat = argv[i + 1];
			o->plen = len[i + 1];
			if (o->plen == 1 && o->pat[0] == '*')
				o->pat = NULL;
		} else {
			narf_reply_syntax(out);
			return -1;
		}
	}
	if (o->count > 100000)
		o->count = 100000;
	return 0;
}

int narf_reply_scan(struct narf_buf *out,
                    unsigned long long cursor,
                    long long n,
                    const struct narf_buf *items)
{
	char num[32];
	int len = snprintf(num, sizeof(num), "%llu", cursor);

	narf_resp_array(out, 2);
	narf_resp_bulk(out, num, (size_t)len);
	narf_resp_array(out, n);
	return items != NULL ? narf_buf_append(out, items->data, items->len)
	                     : 0;
}

int narf_parse_scan_cursor(const char *s, size_t n, unsigned long long *v)
{
	unsigned long long cursor = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || cursor > (ULLONG_MAX - 9) / 10)
			return -1;
		cursor = cursor * 10 + (unsigned)(s[i] - '0');
	}
	*v = cursor;
	return 0;
}

void narf_bytes_human(char *buf, size_t size, uint64_t n)
{
	static const char units[] = "BKMGTP";
	double d = (double)n;
	int u = 0;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lluB", (unsigned long long)n);
	else
		snprintf(buf, size, "%.2f%c", d, units[u]);
}

/* --- dispatch ------------------------------------------------------------- */

static int reply_unknown(struct narf_buf *out,
                         int argc,
                         const char **argv,
                         const size_t *argvlen)
{
	char msg[1024];
	int n;

	n = snprintf(msg, sizeof(msg),
	             "ERR unknown command '%.*s', with args "
	             "beginning with: ",
	             (int)(argvlen[0] > 128 ? 128 : argvlen[0]), argv[0]);
	for (int i = 1; i < argc && n < (int)sizeof(msg) - 140; i++)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, "'%.*s' ",
		              (int)(argvlen[i] > 128 ? 128 : argvlen[i]),
		              argv[i]);
	/* An error line must not contain CR or LF. */
	for (int i = 0; i < n && msg[i]; i++)
		if (msg[i] == '\r' || msg[i] == '\n')
			msg[i] = ' ';
	return narf_resp_error(out, msg);
}

const struct narf_map *narf_engine_map(const struct narf_engine *e)
{
	if (e->cluster_map == NULL || *e->cluster_map == NULL ||
	    e->cluster_node_id == NULL || *e->cluster_node_id == 0)
		return NULL;
	return *e->cluster_map;
}

void narf_node_name(char out[41], uint32_t id)
{
	snprintf(out, 41, "%040x", id);
}

enum route { ROUTE_HERE, ROUTE_DONE, ROUTE_RETRY, ROUTE_PROXY, ROUTE_SPLIT };

/* Is node id in slot's ISR? */
static bool in_isr(const struct narf_slot *slot, uint32_t id)
{
	for (unsigned i = 0; i < slot->n_isr; i++)
		if (slot->isr[i] == id)
			return true;
	return false;
}

/*
 * Cluster mode routing. Every key of a request must hash to one slot (else
 * -CROSSSLOT, as Redis Cluster). The slot's primary runs it while its lease
 * holds (else the request is put off: ROUTE_RETRY); an in-sync replica runs
 * reads for a READONLY client; otherwise the request is forwarded to the
 * primary (ROUTE_PROXY), or answered -MOVED with --redirect and to peers (a
 * peer never forwards twice).
 */
/* Fewer in-sync copies of slot s (the primary and its ISR) than the map's
 * min_isr: writes to it are refused (Redis's min-replicas-to-write). */
static bool isr_short(const struct narf_map *map, int s)
{
	return 1u + map->slots[s].n_isr < map->settings.min_isr;
}

static enum route no_replicas(struct narf_buf *out)
{
	narf_resp_error(out, "NOREPLICAS Not enough good replicas to write.");
	return ROUTE_DONE;
}

static enum route route(struct narf_engine *e,
                        const struct narf_command *cmd,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *argvlen,
                        struct narf_buf *out)
{
	const struct narf_map *map;
	const struct narf_map_node *owner;
	const struct narf_slot *sl;
	struct narf_keyiter it;
	uint32_t me;
	int i, slot = -1;
	bool cross = false, all_here = true, short_isr = false;
	bool write = (cmd->flags & NARF_CMD_WRITE) != 0;

	if (e->cluster_map == NULL || !narf_keys_any(cmd))
		return ROUTE_HERE;
	map = narf_engine_map(e);
	/* Joining (a restarted node, say): wait for the map, briefly. */
	if (map == NULL && e->repl != NULL)
		return ROUTE_RETRY;
	if (map == NULL) {
		narf_resp_error(out,
		                "CLUSTERDOWN The cluster is down (this "
		                "node has not joined yet)");
		return ROUTE_DONE;
	}
	me = *e->cluster_node_id;
	narf_keys_begin(&it, cmd, argc, argv, argvlen);
	while ((i = narf_keys_next(&it)) >= 0) {
		int s = (int)narf_key_ref(e, argv[i], argvlen[i]).slot;

		cross = cross || (slot >= 0 && s != slot);
		short_isr = short_isr || isr_short(map, s);
		all_here = all_here && map->slots[s].primary == me &&
		           (e->repl == NULL || !(cmd->flags & NARF_CMD_WRITE) ||
		            !narf_repl_handing_off(e->repl, (unsigned)s));
		slot = s;
	}
	if (slot < 0)
		return ROUTE_HERE;
	/* Keys of several slots: fine when we lead them all (we hold them
	 * all); MGET, MSET, DEL, UNLINK, EXISTS and TOUCH are otherwise split
	 * by owner and merged (ROUTE_SPLIT); anything else is -CROSSSLOT, as
	 * in Redis Cluster. */
	if (cross) {
		if (all_here && e->lease_ok && write && short_isr)
			return no_replicas(out);
		if (all_here)
			return e->lease_ok ? ROUTE_HERE : ROUTE_RETRY;
		if ((cmd->flags & NARF_CMD_SPLIT) && e->repl != NULL &&
		    !e->cfg.redirect && !c->peer)
			return e->lease_ok ? ROUTE_SPLIT : ROUTE_RETRY;
		narf_resp_error(out,
		                "CROSSSLOT Keys in request don't "
		                "hash to the same slot");
		return ROUTE_DONE;
	}
	sl = &map->slots[slot];
	if (sl->primary == me) {
		/* During a handoff writes wait for the new primary. */
		if (!e->lease_ok || (write && e->repl != NULL &&
		                     narf_repl_handing_off(e->repl, slot)))
			return ROUTE_RETRY;
		if (write && short_isr)
			return no_replicas(out);
		return ROUTE_HERE;
	}
	if (c->readonly && (cmd->flags & NARF_CMD_READONLY) && in_isr(sl, me) &&
	    (e->repl == NULL || narf_repl_replica_ready(e->repl, slot)))
		return e->lease_ok ? ROUTE_HERE : ROUTE_RETRY;
	owner = narf_map_node_get(map, sl->primary);
	if (owner == NULL) {
		narf_resp_error(out, "CLUSTERDOWN Hash slot not served");
		return ROUTE_DONE;
	}
	/* A primary the map has down leads only held slots (on_lost wait:
	 * every in-sync copy is down): nothing serves them until one comes
	 * back. Forwarding would wait on a dead node, or, when this node
	 * took over its address (a restart as a new node), loop back here. */
	if (owner->state == NARF_NODE_DOWN ||
	    owner->state == NARF_NODE_REMOVED) {
		narf_resp_errorf(out,
		                 "CLUSTERDOWN Hash slot %d is held: its "
		                 "in-sync copies are down (primary node %u)",
		                 slot, owner->id);
		return ROUTE_DONE;
	}
	/* A peer forwarded this to us because its map says we lead the
	 * slot, while ours says it does: one of the two maps is behind (a
	 * role change is in flight). Put the request off and fetch the map
	 * rather than bounce it back and forth. Not on a node that is
	 * leaving: once it has left, no map comes any more, and the request
	 * would wait until the drain closes the link (the peer's client got
	 * -TRYAGAIN); the -MOVED below sends the peer to look again. */
	if (c->peer && owner->id == c->peer_node && e->repl != NULL &&
	    !narf_repl_leaving(e->repl)) {
		uint64_t checks = narf_repl_map_checks(e->repl);

		if (c->peer_map_checks == 0 || c->peer_map_checks == checks) {
			/* first time, or no map reply since: wait */
			if (c->peer_map_checks == 0)
				narf_repl_refresh_map(e->repl);
			c->peer_map_checks = checks;
			return ROUTE_RETRY;
		}
		/* Our map is current and still names the peer: it is the
		 * one behind; the redirect below makes it look again. */
	}
	c->peer_map_checks = 0;
	if (e->cfg.redirect || c->peer || e->repl == NULL ||
	    narf_repl_leaving(e->repl)) {
		narf_resp_errorf(out, "MOVED %d %s", slot, owner->addr);
		return ROUTE_DONE;
	}
	/* A blocking pop goes with a token and never sits on the pipelined
	 * proxy link (fwd_block.c). */
	e->proxy_node = owner->id;
	e->proxy_blocking = (cmd->flags & NARF_CMD_BLOCKING) != 0;
	return ROUTE_PROXY;
}

static bool keys_too_large(const struct narf_engine *e,
                           const struct narf_command *cmd,
                           int argc,
                           const char **argv,
                           const size_t *argvlen)
{
	struct narf_keyiter it;
	int i;

	if (!narf_keys_any(cmd))
		return false;
	narf_keys_begin(&it, cmd, argc, argv, argvlen);
	while ((i = narf_keys_next(&it)) >= 0)
		if (argvlen[i] > e->cfg.max_key_size)
			return true;
	return false;
}

int narf_engine_exec(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *argvlen,
                     struct narf_buf *out)
{
	const struct narf_command *cmd;
	const struct narf_pf_req *pf;
	size_t before = out->len;
	int pos, rv;

	pf = take_taken(e, c, argv);
	pos = pf != NULL ? pf->cmd_pos : lookup_pos(argv[0], argvlen[0]);
	cmd = pos < 0 ? NULL : cmd_table[pos];
	if (narf_engine_protected_denies(e, c, cmd)) {
		rv = narf_engine_deny(e, c, out);
		e->stats.net_output_bytes += out->len - before;
		return rv;
	}
	kref_begin(e, pf, argc, argv, argvlen);
	e->stats.commands++;
	if (cmd != NULL)
		e->stats.calls[pos]++;
	if (c->budget == NARF_BUDGET_RESERVE &&
	    (cmd == NULL || !(cmd->flags & NARF_CMD_PEER_AUTH))) {
		/* Beyond --max-clients: only a peer proving itself gets in. */
		rv = narf_engine_reserve_refuse(e, c, out);
	} else if (cmd == NULL) {
		e->stats.unknown_commands++;
		rv = reply_unknown(out, argc, argv, argvlen);
	} else if ((cmd->flags & NARF_CMD_PEER) && !c->peer) {
		/* Whatever the password, and before arity: never run. */
		rv = narf_resp_error(
		        out,
		        "NOPERM this is a cluster-internal command "
		        "(a peer link proves the node role with "
		        "NARF.AUTH first)");
	} else if ((cmd->arity > 0 && argc != cmd->arity) ||
	           (cmd->arity < 0 && argc < -cmd->arity)) {
		/* Before NOAUTH, as in Redis 7.0's processCommand(). */
		rv = narf_reply_wrong_arity(out, cmd->name);
	} else if (!c->authenticated && !(cmd->flags & NARF_CMD_NOAUTH)) {
		rv = narf_resp_error(out, "NOAUTH Authentication required.");
	} else if (!c->peer && !(cmd->flags & NARF_CMD_NOAUTH) &&
	           c->perm < needed_perm(cmd)) {
		rv = reply_noperm(out, cmd, argc, argv, argvlen);
	} else if (keys_too_large(e, cmd, argc, argv, argvlen)) {
		rv = narf_resp_error(out,
		                     "ERR key is too large (max-key-size)");
	} else if ((cmd->flags & NARF_CMD_DENYOOM) && e->cfg.max_memory &&
	           narf_store_make_room(e->store, 0, narf_engine_now(e)) != 0) {
		rv = narf_resp_error(out,
		                     "OOM command not allowed when used "
		                     "memory > 'maxmemory'.");
	} else {
		switch (route(e, cmd, c, argc, argv, argvlen, out)) {
		case ROUTE_HERE:
			rv = cmd->fn(e, c, argc, argv, argvlen, out);
			if (rv == NARF_EXEC_BLOCK) {
				/* counted once it is served */
				e->stats.commands--;
				e->stats.calls[pos]--;
			}
			break;
		case ROUTE_RETRY:
			e->stats.commands--; /* it runs again later */
			e->stats.calls[pos]--;
			rv = NARF_EXEC_RETRY;
			break;
		case ROUTE_PROXY:
			rv = NARF_EXEC_PROXY;
			break;
		case ROUTE_SPLIT:
			rv = NARF_EXEC_SPLIT;
			break;
		default:
			rv = 0;
		}
	}
	e->stats.net_output_bytes += out->len - before;
	/* A nested run (MULTI's EXEC) ends the memo for its caller too. */
	e->kref_live = false;
	e->kref.key = NULL;
	return rv;
}
