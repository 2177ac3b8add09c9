/*
 * narf-loadgen: the load of `scripts/bench.sh rebalance`.
 *
 * A closed-loop, pipelined GET/SET load on a narf cluster (or any Redis
 * Cluster) with a batch of --pipeline requests in flight to every primary:
 * each node has a client of its own, as many independent application
 * clients give it, and a node gets its next batch when its last one is
 * answered. Keys are key:0 .. key:N-1, drawn uniformly per node from the
 * slots it leads (CLUSTER SLOTS of a --seed node, read again every
 * --refresh and after any -MOVED or failure). A -MOVED request goes to the
 * node named, first in its next batch, and fails if moved again (a cluster
 * client following one redirect). Any other error reply, a request sent on
 * a connection that fails, or no reply within --timeout is a failure.
 *
 * It prints one line per wall-clock second (seconds since --t0, a Unix
 * time, so they line up with the benchmark's own clock):
 *
 *     SECOND OK FAILED MOVED BATCHES P50_US P99_US MAX_US
 *
 * where the last three are the batches' round trips, and the first few
 * failures' reasons to stderr. It runs until SIGTERM or SIGINT, --seconds,
 * or its parent exits.
 *
 * Why not redis-benchmark: it counts error replies as answered, exits when
 * a connection closes, and sends to a new node only after a -MOVED (narf
 * proxies instead). Why not the Python load the benchmark had: it used
 * about as much CPU per request as the nodes it measured, on the same two
 * cores.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/buf.h"
#include "common/flags.h"
#include "common/resp.h"
#include "common/slot.h"

#define PROG "narf-loadgen"
#define MAX_NODES 64
#define MAX_SEEDS 16
#define ADDR_SIZE 64
#define MAX_REPLY (64u << 20) /* a CLUSTER SLOTS or bulk larger: not RESP */
#define MAX_ERRORS_SHOWN 5
#define SLOTS_CMD "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"

struct node {
	char addr[ADDR_SIZE]; /* "host:port" */
	struct sockaddr_in sa;
	int fd;          /* -1 while not connected */
	unsigned *slots; /* owned: the slots it leads that hold keys */
	unsigned n_slots;
	/* The batch in flight (busy): its commands, kept for -MOVED. */
	bool busy;
	struct narf_buf cmds;
	size_t *off; /* owned: command i is cmds[off[i], off[i + 1]) */
	unsigned n, cap_off, got, n_retry;
	size_t written;
	uint64_t sent_us;
	uint64_t down_until_us; /* no new connection before (after a failure) */
	struct narf_buf in;
	/* Requests a -MOVED sent here: the start of the next batch. */
	struct narf_buf retry;
	size_t *retry_len; /* owned */
	unsigned n_retries, cap_retry;
};

struct second {
	uint64_t ok, failed, moved;
	uint32_t *lat_us; /* owned: batch round trips */
	size_t n_lat, cap_lat;
};

struct gen {
	/* options */
	char seeds[MAX_SEEDS][ADDR_SIZE];
	unsigned n_seeds, next_seed;
	uint64_t keys, value_size, pipeline, seconds, refresh_ms, timeout_ms;
	double write_ratio, t0;
	/* keys by slot: key_idx[first[s] .. first[s + 1]) lead with slot s */
	uint32_t *first, *key_idx;
	struct node nodes[MAX_NODES];
	unsigned n_nodes;
	uint64_t rng, value_gen;
	uint64_t last_refresh_us;
	bool refresh_now;
	/* the slot table read in progress (rfd >= 0) */
	int rfd;
	struct narf_buf rin;
	size_t rwritten;
	uint64_t rstart_us;
	unsigned refresh_tries; /* seeds tried this turn */
	unsigned errors_shown;
	/* the second being counted */
	long long sec;
	struct second cur;
};

static volatile sig_atomic_t stop;

/* A load generator out of memory cannot count right: it stops. */
_Noreturn static void out_of_memory(void)
{
	fputs(PROG ": out of memory\n", stderr);
	exit(1);
}

static void append(struct narf_buf *b, const void *p, size_t n)
{
	if (narf_buf_append(b, p, n) != 0)
		out_of_memory();
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: fast, and good enough to pick keys. */
static uint64_t rnd(struct gen *g)
{
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 0x2545F4914F6CDD1DULL;
}

static void show_error(struct gen *g,
                       const char *fmt,
                       const char *a,
                       const char *b)
{
	if (g->errors_shown++ < MAX_ERRORS_SHOWN)
		fprintf(stderr, fmt, a, b);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Print the second being counted and start the next. */
static void flush_second(struct gen *g)
{
	struct second *c = &g->cur;
	uint32_t p50 = 0, p99 = 0, max = 0;

	if (c->n_lat > 0) {
		qsort(c->lat_us, c->n_lat, sizeof(*c->lat_us), cmp_u32);
		p50 = c->lat_us[c->n_lat / 2];
		p99 = c->lat_us[(c->n_lat * 99) / 100];
		max = c->lat_us[c->n_lat - 1];
	}
	printf("%lld %llu %llu %llu %zu %u %u %u\n", g->sec,
	       (unsigned long long)c->ok, (unsigned long long)c->failed,
	       (unsigned long long)c->moved, c->n_lat, p50, p99, max);
	c->ok = c->failed = c->moved = 0;
	c->n_lat = 0;
	g->sec++;
}

/* Seconds that ended since the last call are printed (idle ones too). */
static void tick(struct gen *g)
{
	long long now = (long long)(wall_s() - g->t0);

	while (g->sec < now)
		flush_second(g);
}

static void record_latency(struct gen *g, uint64_t us)
{
	struct second *c = &g->cur;

	if (c->n_lat == c->cap_lat) {
		size_t cap = c->cap_lat ? 2 * c->cap_lat : 4096;
		uint32_t *p = realloc(c->lat_us, cap * sizeof(*p));

		if (p == NULL)
			out_of_memory();
		c->lat_us = p;
		c->cap_lat = cap;
	}
	c->lat_us[c->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* --- nodes and connections -------------------------------------------- */

static struct node *node_get(struct gen *g, const char *addr, bool create)
{
	char host[ADDR_SIZE];
	int port;
	struct node *n;

	for (unsigned i = 0; i < g->n_nodes; i++)
		if (strcmp(g->nodes[i].addr, addr) == 0)
			return &g->nodes[i];
	if (!create || g->n_nodes == MAX_NODES ||
	    narf_parse_hostport(addr, host, sizeof(host), &port) != 0)
		return NULL;
	n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof(*n));
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	n->sa.sin_family = AF_INET;
	n->sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &n->sa.sin_addr) != 1)
		return NULL;
	snprintf(n->addr, sizeof(n->addr), "%s", addr);
	n->fd = -1;
	narf_buf_init(&n->cmds);
	narf_buf_init(&n->in);
	narf_buf_init(&n->retry);
	g->n_nodes++;
	return n;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A connected, non-blocking socket to sa, or -1. The connect itself
 * blocks: on loopback it completes at once unless the node's accept queue
 * is full. */
static int dial(const struct sockaddr_in *sa)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
	    set_nonblock(fd) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The connection to n failed: its unanswered requests failed. */
static void node_fail(struct gen *g, struct node *n, const char *why)
{
	if (n->busy) {
		g->cur.failed += n->n - n->got;
		n->busy = false;
	}
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	n->in.len = 0;
	show_error(g, PROG ": %s: %s\n", n->addr, why);
	g->refresh_now = true;
}

/* --- the slot table ------------------------------------------------------ */

struct rd {
	const char *p, *end;
};

/* A header line of type t (':', '*' or '$') and its number. */
static bool rd_num(struct rd *r, char t, long long *v)
{
	char *e;
	const char *nl;

	if (r->p >= r->end || *r->p != t)
		return false;
	nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
	if (nl == NULL)
		return false;
	errno = 0;
	*v = strtoll(r->p + 1, &e, 10);
	if (errno != 0 || e == r->p + 1 || *e != '\r' || e + 1 != nl)
		return false;
	r->p = nl + 1;
	return true;
}

static bool rd_bulk(struct rd *r, const char **s, size_t *n)
{
	long long len;

	if (!rd_num(r, '$', &len) || len < 0 || len > r->end - r->p - 2)
		return false;
	*s = r->p;
	*n = (size_t)len;
	r->p += len + 2;
	return true;
}

static bool rd_skip(struct rd *r)
{
	size_t len;

	if (narf_resp_reply_len(r->p, (size_t)(r->end - r->p), MAX_REPLY,
	                        &len) != NARF_RESP_DONE)
		return false;
	r->p += len;
	return true;
}

/*
 * CLUSTER SLOTS into owner[slot] (a node index, or -1 for a slot no range
 * names). Returns false on a reply of another shape: then nothing changed.
 */
static bool parse_slots(struct gen *g, const char *buf, size_t len, int *owner)
{
	struct rd r = {buf, buf + len};
	long long n, m, k, from, to, port;

	for (unsigned s = 0; s < NARF_SLOTS; s++)
		owner[s] = -1;
	if (!rd_num(&r, '*', &n) || n < 0)
		return false;
	for (long long i = 0; i < n; i++) {
		const char *host;
		size_t hlen;
		char addr[ADDR_SIZE];
		struct node *nd;

		if (!rd_num(&r, '*', &m) || m < 3 || !rd_num(&r, ':', &from) ||
		    !rd_num(&r, ':', &to) || from < 0 || to < from ||
		    to >= NARF_SLOTS || !rd_num(&r, '*', &k) || k < 2 ||
		    !rd_bulk(&r, &host, &hlen) || !rd_num(&r, ':', &port) ||
		    hlen >= ADDR_SIZE - 8)
			return false;
		for (long long j = 2; j < k; j++)
			if (!rd_skip(&r))
				return false;
		for (long long j = 3; j < m; j++)
			if (!rd_skip(&r))
				return false;
		snprintf(addr, sizeof(addr), "%.*s:%lld", (int)hlen, host,
		         port);
		nd = node_get(g, addr, true);
		if (nd == NULL)
			return false;
		for (long long s = from; s <= to; s++)
			owner[s] = (int)(nd - g->nodes);
	}
	return r.p == r.end;
}

/* A table naming every slot: the nodes' slot lists follow it. */
static void apply_table(struct gen *g, const int *owner)
{
	for (unsigned i = 0; i < g->n_nodes; i++)
		g->nodes[i].n_slots = 0;
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct node *nd = &g->nodes[owner[s]];

		if (g->first[s] == g->first[s + 1])
			continue; /* no keys */
		if (nd->slots == NULL &&
		    (nd->slots = malloc(NARF_SLOTS * sizeof(unsigned))) == NULL)
			out_of_memory();
		nd->slots[nd->n_slots++] = s;
	}
}

/*
 * The slot table is read without blocking, inside the loop (a blocking
 * read would hold up every batch in flight and show as their round
 * trip): CLUSTER SLOTS to the next seed, on a connection of its own; a
 * seed that fails, answers something else or names a slot nobody serves
 * passes the turn to the next one.
 */
static void refresh_end(struct gen *g, bool ok, const char *why)
{
	if (!ok)
		show_error(
		        g, PROG ": slot table from %s: %s\n",
		        g->seeds[(g->next_seed + g->n_seeds - 1) % g->n_seeds],
		        why);
	close(g->rfd);
	g->rfd = -1;
	if (ok) {
		g->refresh_tries = 0;
		g->refresh_now = false;
		g->last_refresh_us = mono_us();
	} else if (++g->refresh_tries >= g->n_seeds) {
		/* Every seed tried: again at the next turn. */
		g->last_refresh_us = mono_us();
	}
}

static void refresh_start(struct gen *g)
{
	struct node *sn =
	        node_get(g, g->seeds[g->next_seed++ % g->n_seeds], true);

	if (sn == NULL)
		return;
	g->rfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (g->rfd < 0)
		return;
	g->rin.len = 0;
	g->rwritten = 0;
	g->rstart_us = mono_us();
	if (connect(g->rfd, (const struct sockaddr *)&sn->sa, sizeof(sn->sa)) !=
	            0 &&
	    errno != EINPROGRESS)
		refresh_end(g, false, strerror(errno));
}

static void refresh_io(struct gen *g, short revents)
{
	static const char *const cmd = SLOTS_CMD;
	static int owner[NARF_SLOTS];
	size_t len = 0;
	ssize_t n;
	int rc;

	if (g->rwritten < strlen(cmd)) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return;
		n = write(g->rfd, cmd + g->rwritten, strlen(cmd) - g->rwritten);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			refresh_end(g, false,
			            n < 0 ? strerror(errno) : "cannot send");
			return;
		}
		g->rwritten += (size_t)n;
		return;
	}
	if (!(revents & (POLLIN | POLLERR | POLLHUP)))
		return;
	if (narf_buf_reserve(&g->rin, 65536) != 0)
		out_of_memory();
	n = read(g->rfd, g->rin.data + g->rin.len, g->rin.cap - g->rin.len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		refresh_end(
		        g, false,
		        n == 0 ? "closed before the reply" : strerror(errno));
		return;
	}
	g->rin.len += (size_t)n;
	rc = narf_resp_reply_len(g->rin.data, g->rin.len, MAX_REPLY, &len);
	if (rc == NARF_RESP_INCOMPLETE)
		return;
	if (rc == NARF_RESP_DONE && parse_slots(g, g->rin.data, len, owner)) {
		bool whole = true;

		for (unsigned s = 0; s < NARF_SLOTS; s++)
			whole = whole && owner[s] >= 0;
		if (whole) {
			apply_table(g, owner);
			refresh_end(g, true, NULL);
			return;
		}
		refresh_end(g, false, "a slot no node serves");
		return;
	}
	refresh_end(g, false,
	            rc == NARF_RESP_DONE ? "not a slot table" : "not RESP");
}

/* --- batches -------------------------------------------------------------- */

static void append_bulk(struct narf_buf *b, const char *s, size_t n)
{
	if (narf_resp_bulk(b, s, n) != 0)
		out_of_memory();
}

/* The command just appended to n's batch ends here. */
static void mark(struct node *n)
{
	if (n->n + 1 >= n->cap_off) {
		unsigned cap = n->cap_off ? 2 * n->cap_off : 64;
		size_t *p = realloc(n->off, cap * sizeof(*p));

		if (p == NULL)
			out_of_memory();
		n->off = p;
		n->cap_off = cap;
	}
	n->off[++n->n] = n->cmds.len;
}

static void add_request(struct gen *g, struct node *n)
{
	char key[32];
	unsigned s = n->slots[rnd(g) % n->n_slots];
	uint32_t cnt = g->first[s + 1] - g->first[s];
	uint32_t i = g->key_idx[g->first[s] + rnd(g) % cnt];
	size_t klen = 4 + narf_format_u64(key + 4, i);

	memcpy(key, "key:", 4);
	if ((double)(rnd(g) >> 11) * 0x1.0p-53 < g->write_ratio) {
		char val[4096];
		size_t vlen =
		        (size_t)snprintf(val, sizeof(val), "%u:%llu:", i,
		                         (unsigned long long)g->value_gen);

		/* "i:gen:" padded with x to --value-size, as the loader's */
		if (vlen < g->value_size)
			memset(val + vlen, 'x', g->value_size - vlen);
		append(&n->cmds, "*3\r\n$3\r\nSET\r\n", 13);
		append_bulk(&n->cmds, key, klen);
		append_bulk(&n->cmds, val, g->value_size);
	} else {
		append(&n->cmds, "*2\r\n$3\r\nGET\r\n", 13);
		append_bulk(&n->cmds, key, klen);
	}
	mark(n);
}

/* Write what is left of n's batch; false when the connection failed. */
static bool flush_batch(struct gen *g, struct node *n)
{
	while (n->written < n->cmds.len) {
		ssize_t w = write(n->fd, n->cmds.data + n->written,
		                  n->cmds.len - n->written);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (w <= 0) {
			node_fail(g, n, strerror(errno));
			return false;
		}
		n->written += (size_t)w;
	}
	return true;
}

/* Send n its next batch: the requests moved here, then --pipeline new. */
static void send_batch(struct gen *g, struct node *n)
{
	size_t pos = 0;

	if (n->busy || (n->n_slots == 0 && n->n_retries == 0))
		return;
	if (n->fd < 0) {
		if (mono_us() < n->down_until_us)
			return;
		n->fd = dial(&n->sa);
		if (n->fd < 0) {
			/* The batch it was due fails, as a client's would, and
			 * the node rests 100 ms (not a failure per loop) while
			 * the table says who leads now. */
			n->busy = true;
			n->n = (unsigned)(n->n_slots ? g->pipeline : 0) +
			       n->n_retries;
			n->got = 0;
			n->n_retries = 0;
			n->retry.len = 0;
			n->down_until_us = mono_us() + 100000;
			node_fail(g, n, "cannot connect");
			return;
		}
	}
	n->cmds.len = 0;
	n->n = 0;
	if (n->off == NULL) {
		n->off = malloc(64 * sizeof(size_t));
		if (n->off == NULL)
			out_of_memory();
		n->cap_off = 64;
	}
	n->off[0] = 0;
	for (unsigned i = 0; i < n->n_retries; i++) {
		append(&n->cmds, n->retry.data + pos, n->retry_len[i]);
		pos += n->retry_len[i];
		mark(n);
	}
	n->n_retry = n->n_retries;
	n->n_retries = 0;
	n->retry.len = 0;
	for (uint64_t i = 0; n->n_slots > 0 && i < g->pipeline; i++)
		add_request(g, n);
	g->value_gen++;
	n->busy = true;
	n->got = 0;
	n->written = 0;
	n->sent_us = mono_us();
	flush_batch(g, n);
}

/* --- replies ------------------------------------------------------------- */

/* Request k of n's batch was answered -MOVED <slot> <addr> (text, len
 * bytes): it goes to addr first in its next batch. False if it cannot. */
static bool follow_moved(struct gen *g,
                         struct node *n,
                         unsigned k,
                         const char *text,
                         size_t len)
{
	char addr[ADDR_SIZE];
	const char *sp = memchr(text + 6, ' ', len - 6);
	struct node *to;
	size_t clen = n->off[k + 1] - n->off[k];

	if (sp == NULL || (size_t)(text + len - sp - 1) >= sizeof(addr))
		return false;
	snprintf(addr, sizeof(addr), "%.*s", (int)(text + len - sp - 1),
	         sp + 1);
	to = node_get(g, addr, true);
	if (to == NULL)
		return false;
	if (to->n_retries == to->cap_retry) {
		unsigned cap = to->cap_retry ? 2 * to->cap_retry : 64;
		size_t *p = realloc(to->retry_len, cap * sizeof(*p));

		if (p == NULL)
			return false;
		to->retry_len = p;
		to->cap_retry = cap;
	}
	if (narf_buf_append(&to->retry, n->cmds.data + n->off[k], clen) != 0)
		return false;
	to->retry_len[to->n_retries++] = clen;
	return true;
}

/* Count the whole replies n has received; the batch ends with its last. */
static void read_replies(struct gen *g, struct node *n)
{
	size_t pos = 0, len;
	const char *closed = NULL; /* why, once the connection ended */

	for (;;) {
		ssize_t got;

		if (narf_buf_reserve(&n->in, 65536) != 0)
			out_of_memory();
		got = read(n->fd, n->in.data + n->in.len,
		           n->in.cap - n->in.len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (got <= 0) {
			/* The replies that came before it still count. */
			closed = got == 0 ? "closed by the node"
			                  : strerror(errno);
			break;
		}
		n->in.len += (size_t)got;
		if (n->in.len < n->in.cap)
			break;
	}
	while (n->busy && n->got < n->n) {
		const char *r = n->in.data + pos;
		int rc = narf_resp_reply_len(r, n->in.len - pos, MAX_REPLY,
		                             &len);

		if (rc == NARF_RESP_INCOMPLETE)
			break;
		if (rc != NARF_RESP_DONE) {
			node_fail(g, n, "a reply that is not RESP");
			return;
		}
		if (r[0] == '+' || r[0] == '$' || r[0] == ':') {
			g->cur.ok++;
		} else if (r[0] != '-') {
			/* A GET or SET answered with an array: wrong. */
			g->cur.failed++;
			show_error(g, PROG ": %s: %s\n", n->addr,
			           "a reply of the wrong type");
		} else if (len > 8 && memcmp(r, "-MOVED ", 7) == 0 &&
		           n->got >= n->n_retry &&
		           follow_moved(g, n, n->got, r + 1, len - 3)) {
			g->cur.moved++;
			g->refresh_now = true;
		} else {
			char text[200];

			/* without '-' and CRLF; cut to the buffer */
			snprintf(text, sizeof(text), "%.*s", (int)(len - 3),
			         r + 1);
			g->cur.failed++;
			g->refresh_now = true;
			show_error(g, PROG ": %s: -%s\n", n->addr, text);
		}
		n->got++;
		pos += len;
	}
	narf_buf_consume(&n->in, pos);
	if (n->busy && n->got == n->n) {
		n->busy = false;
		record_latency(g, mono_us() - n->sent_us);
		if (n->in.len > 0 && closed == NULL)
			closed = "a reply to no request";
	}
	if (closed != NULL)
		node_fail(g, n, closed);
}

/* --- the loop ------------------------------------------------------------- */

static void run(struct gen *g)
{
	struct pollfd pfd[MAX_NODES + 1];
	struct node *of[MAX_NODES];
	uint64_t end_us = mono_us() + g->seconds * 1000000u;

	g->sec = (long long)(wall_s() - g->t0);
	while (!stop && mono_us() < end_us) {
		uint64_t now = mono_us();
		unsigned np = 0;

		tick(g);
		/* Again after -MOVED or a failure, but not more often than
		 * every 50 ms; a seed silent for a second loses its turn. */
		if (g->rfd >= 0 && now - g->rstart_us > 1000000u) {
			refresh_end(g, false, "no reply within 1 s");
			now = mono_us();
		}
		if (g->rfd < 0 &&
		    now - g->last_refresh_us >=
		            (g->refresh_now ? 50000u : g->refresh_ms * 1000u)) {
			if (g->refresh_tries >= g->n_seeds)
				g->refresh_tries = 0;
			refresh_start(g);
		}
		for (unsigned i = 0; i < g->n_nodes; i++) {
			struct node *n = &g->nodes[i];

			send_batch(g, n);
			if (n->busy && now > n->sent_us &&
			    now - n->sent_us > g->timeout_ms * 1000u) {
				node_fail(g, n, "no reply within --timeout");
				continue;
			}
			if (!n->busy || n->fd < 0)
				continue;
			pfd[np] = (struct pollfd){
			        n->fd,
			        (short)(POLLIN |
			                (n->written < n->cmds.len ? POLLOUT
			                                          : 0)),
			        0};
			of[np++] = n;
		}
		/* the slot table read, last */
		if (g->rfd >= 0)
			pfd[np] = (struct pollfd){
			        g->rfd,
			        (short)(g->rwritten < strlen(SLOTS_CMD)
			                        ? POLLOUT
			                        : POLLIN),
			        0};
		if (np == 0 && g->rfd < 0) {
			usleep(10000);
			continue;
		}
		if (poll(pfd, np + (g->rfd >= 0), 100) < 0)
			continue; /* EINTR: the loop checks stop */
		if (g->rfd >= 0 && pfd[np].revents != 0)
			refresh_io(g, pfd[np].revents);
		for (unsigned i = 0; i < np; i++) {
			if (pfd[i].revents & POLLOUT)
				if (!flush_batch(g, of[i]))
					continue;
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				read_replies(g, of[i]);
		}
	}
	tick(g);
	flush_second(g); /* the one it stopped in (partial) */
}

/* --- options -------------------------------------------------------- */

static const char usage[] =
        "Usage: " PROG
        " --seed HOST:PORT[,HOST:PORT...] [options]\n"
        "\n"
        "A pipelined GET/SET load with a batch in flight to every primary\n"
        "of a narf (or Redis) cluster; one line per second on stdout:\n"
        "SECOND OK FAILED MOVED BATCHES P50_US P99_US MAX_US.\n"
        "\n"
        "  --seed LIST        data nodes to read CLUSTER SLOTS from\n"
        "  --keys N           keys key:0 .. key:N-1 (default 1000000)\n"
        "  --value-size B     SET value bytes, 1..4000 (default 32)\n"
        "  --pipeline P       requests per batch, 1..10000 (default 32)\n"
        "  --write-ratio R    share of SETs, 0..1 (default 0.2)\n"
        "  --seconds S        stop after S seconds (default 600)\n"
        "  --refresh MS       read the slot table this often (default 500)\n"
        "  --timeout MS       a batch unanswered this long failed "
        "(default 5000)\n"
        "  --t0 UNIXTIME      second 0 of the output (default: now)\n"
        "  --seed-rng N       random seed (default 1)\n"
        "  -h, --help         this help\n";

static void parse_seeds(struct gen *g, const char *list)
{
	char copy[MAX_SEEDS * ADDR_SIZE], *save = NULL, host[ADDR_SIZE];
	int port;

	if (strlen(list) >= sizeof(copy))
		narf_usage_error(PROG, "--seed: list too long");
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		if (g->n_seeds == MAX_SEEDS ||
		    narf_parse_hostport(t, host, sizeof(host), &port) != 0)
			narf_usage_error(PROG,
			                 "--seed '%s': expected a list "
			                 "of HOST:PORT",
			                 list);
		snprintf(g->seeds[g->n_seeds++], ADDR_SIZE, "%s", t);
	}
}

static double parse_double(const char *name,
                           const char *text,
                           double min,
                           double max)
{
	char *e;
	double v;

	errno = 0;
	v = strtod(text, &e);
	if (errno != 0 || e == text || *e != '\0' || !(v >= min && v <= max))
		narf_usage_error(PROG, "%s '%s': expected a number in %g..%g",
		                 name, text, min, max);
	return v;
}

static void parse_args(struct gen *g, int argc, char **argv)
{
	enum {
		O_SEED = 256,
		O_KEYS,
		O_VSIZE,
		O_PIPE,
		O_WRATIO,
		O_SECS,
		O_REFRESH,
		O_TIMEOUT,
		O_T0,
		O_RNG
	};
	static const struct option opts[] = {
	        {"seed", required_argument, NULL, O_SEED},
	        {"keys", required_argument, NULL, O_KEYS},
	        {"value-size", required_argument, NULL, O_VSIZE},
	        {"pipeline", required_argument, NULL, O_PIPE},
	        {"write-ratio", required_argument, NULL, O_WRATIO},
	        {"seconds", required_argument, NULL, O_SECS},
	        {"refresh", required_argument, NULL, O_REFRESH},
	        {"timeout", required_argument, NULL, O_TIMEOUT},
	        {"t0", required_argument, NULL, O_T0},
	        {"seed-rng", required_argument, NULL, O_RNG},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	int c;

	g->keys = 1000000;
	g->value_size = 32;
	g->pipeline = 32;
	g->write_ratio = 0.2;
	g->seconds = 600;
	g->refresh_ms = 500;
	g->timeout_ms = 5000;
	g->t0 = wall_s();
	g->rng = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SEED:
			parse_seeds(g, optarg);
			break;
		case O_KEYS:
			g->keys = narf_flag_u64(PROG, "--keys", optarg, 1,
			                        UINT32_MAX);
			break;
		case O_VSIZE:
			g->value_size = narf_flag_u64(PROG, "--value-size",
			                              optarg, 1, 4000);
			break;
		case O_PIPE:
			g->pipeline = narf_flag_u64(PROG, "--pipeline", optarg,
			                            1, 10000);
			break;
		case O_WRATIO:
			g->write_ratio =
			        parse_double("--write-ratio", optarg, 0, 1);
			break;
		case O_SECS:
			g->seconds = narf_flag_u64(PROG, "--seconds", optarg, 1,
			                           86400);
			break;
		case O_REFRESH:
			g->refresh_ms = narf_flag_ms(PROG, "--refresh", optarg,
			                             10, 3600000);
			break;
		case O_TIMEOUT:
			g->timeout_ms = narf_flag_ms(PROG, "--timeout", optarg,
			                             10, 3600000);
			break;
		case O_T0:
			g->t0 = parse_double("--t0", optarg, 0, 1e11);
			break;
		case O_RNG:
			g->rng = narf_flag_u64(PROG, "--seed-rng", optarg, 1,
			                       UINT64_MAX);
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			narf_usage_error(PROG, "unknown option");
		}
	}
	if (optind < argc)
		narf_usage_error(PROG, "unexpected argument '%s'",
		                 argv[optind]);
	if (g->n_seeds == 0)
		narf_usage_error(PROG, "--seed is required");
}

/* key_idx grouped by slot, first[] the start of each slot's run. */
static int index_keys(struct gen *g)
{
	char key[32];
	uint32_t *fill;

	g->first = calloc(NARF_SLOTS + 1, sizeof(*g->first));
	g->key_idx = malloc(g->keys * sizeof(*g->key_idx));
	fill = calloc(NARF_SLOTS, sizeof(*fill));
	if (g->first == NULL || g->key_idx == NULL || fill == NULL) {
		free(fill);
		return -1;
	}
	memcpy(key, "key:", 4);
	for (uint64_t i = 0; i < g->keys; i++)
		g->first[narf_slot_of(key, 4 + narf_format_u64(key + 4, i)) +
		         1]++;
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		g->first[s + 1] += g->first[s];
	for (uint64_t i = 0; i < g->keys; i++) {
		unsigned s = narf_slot_of(key, 4 + narf_format_u64(key + 4, i));

		g->key_idx[g->first[s] + fill[s]++] = (uint32_t)i;
	}
	free(fill);
	return 0;
}

int main(int argc, char **argv)
{
	static struct gen g;
	struct sigaction sa;

	parse_args(&g, argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Stop with the benchmark, also when it is killed. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 0;
	g.rfd = -1;
	narf_buf_init(&g.rin);
	if (index_keys(&g) != 0) {
		fprintf(stderr, PROG ": out of memory for %llu keys\n",
		        (unsigned long long)g.keys);
		return 1;
	}
	run(&g);
	for (unsigned i = 0; i < g.n_nodes; i++) {
		struct node *n = &g.nodes[i];

		if (n->fd >= 0)
			close(n->fd);
		narf_buf_close(&n->cmds);
		narf_buf_close(&n->in);
		narf_buf_close(&n->retry);
		free(n->slots);
		free(n->off);
		free(n->retry_len);
	}
	if (g.rfd >= 0)
		close(g.rfd);
	narf_buf_close(&g.rin);
	free(g.cur.lat_us);
	free(g.first);
	free(g.key_idx);
	return 0;
}
