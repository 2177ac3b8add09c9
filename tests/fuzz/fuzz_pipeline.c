/*
 * libFuzzer target for the data node's look-ahead (datanode/engine.c:
 * narf_engine_prefetch, narf_engine_prefetch_take, and the slot, hash and
 * command they hand to narf_engine_exec).
 *
 * The same request stream runs through two engines with the same seed:
 * engine A parses every request in place; engine B runs it as
 * conn_process does, reading the stream in chunks, the look-ahead over
 * each read's unparsed bytes, its requests taken where they start, the
 * others parsed in place into the same parser (so an inline request's
 * scratch space moves between the two). Both must run the same requests
 * and give the same replies, byte for byte, and stop at the same protocol
 * error. Engine B also checks what the look-ahead hands over against
 * fresh computation: a taken request's command position, key, slot and
 * hash.
 *
 * Input layout: byte 0 gives two chunk sizes (low and high nibble, 0
 * meaning "everything left"), used in turn for B's reads; the rest is the
 * stream. A handful of commands (INFO, CLIENT, ...) answer with things that
 * differ between two engines (run ids, addresses, times): they run, and
 * their replies are not compared.
 *
 * Built by tests/fuzz/run.sh (with the data node's sources), not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/resp.h"
#include "common/slot.h"
#include "common/store.h"
#include "datanode/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUESTS 256

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_pipeline: broken invariant: %s\n", what);
		abort();
	}
}

static int64_t fake_clock(void *data)
{
	(void)data;
	return 1700000000000LL;
}

/* Replies that differ between two engines whatever the look-ahead does. */
static int compared(const struct narf_resp_req *r)
{
	static const char *const skip[] = {
	        "info",   "client",   "hello", "debug",    "memory",  "config",
	        "object", "lastsave", "time",  "shutdown", "monitor", "command",
	};

	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (r->argvlen[0] == strlen(skip[i]) &&
		    strncasecmp(r->argv[0], skip[i], r->argvlen[0]) == 0)
			return 0;
	return 1;
}

/* One engine, one client, and what it answered. */
struct side {
	struct narf_engine e;
	struct narf_client c;
	struct narf_buf out;     /* the current request's reply */
	struct narf_buf replies; /* every compared reply, in order */
	unsigned requests;
	int error; /* stopped at a protocol error */
};

static void side_init(struct side *s, const uint8_t seed[16])
{
	struct narf_engine_config cfg;

	narf_engine_config_default(&cfg);
	cfg.seed = seed;
	check(narf_engine_init(&s->e, &cfg, fake_clock, NULL) == 0, "init");
	narf_engine_client_init(&s->e, &s->c);
	s->c.loopback = 1;
	snprintf(s->c.addr, sizeof(s->c.addr), "127.0.0.1:40000");
	narf_buf_init(&s->out);
	narf_buf_init(&s->replies);
	s->requests = 0;
	s->error = 0;
}

static void side_close(struct side *s)
{
	narf_buf_close(&s->out);
	narf_buf_close(&s->replies);
	narf_engine_close(&s->e);
}

/* Run the parsed request r; 0 when the stream should stop (a closing
 * command, or enough requests). */
static int run(struct side *s, const struct narf_resp_req *r)
{
	int rv;

	s->out.len = 0;
	rv = narf_engine_exec(&s->e, &s->c, r->argc, r->argv, r->argvlen,
	                      &s->out);
	if (compared(r)) {
		check(narf_buf_append(&s->replies, s->out.data, s->out.len) ==
		              0,
		      "append");
		/* what exec returned is part of the answer */
		check(narf_buf_append(&s->replies, &rv, sizeof(rv)) == 0,
		      "append");
	}
	s->requests++;
	return !s->c.close_after_reply && s->requests < MAX_REQUESTS;
}

/* A: every request parsed in place, the whole stream at once. */
static void run_in_place(struct side *s, const char *buf, size_t len)
{
	struct narf_resp_req req;
	size_t pos = 0;
	char errmsg[256];

	narf_resp_req_init(&req);
	while (pos < len) {
		size_t need = 0;
		int rv = narf_resp_parse(&req, buf + pos, len - pos,
		                         narf_engine_limits(&s->e, &s->c),
		                         &need, errmsg);

		if (rv == NARF_RESP_INCOMPLETE)
			break;
		if (rv == NARF_RESP_ERROR) {
			s->error = 1;
			break;
		}
		pos += req.consumed;
		if (rv == NARF_RESP_DONE && !run(s, &req)) {
			narf_resp_req_reset(&req);
			break;
		}
		narf_resp_req_reset(&req);
	}
	narf_resp_req_close(&req);
}

/* What B's look-ahead handed over for the request just taken must be
 * what computing it afresh gives. */
static void check_taken(struct side *s, const struct narf_resp_req *r)
{
	const struct narf_pf_req *p = &s->e.pf[s->e.pf_taken];
	const struct narf_command *cmd;

	check(s->e.pf_take_live, "a taken request is live");
	check(p->name == r->argv[0], "taken name");
	cmd = narf_engine_command(r->argv[0], r->argvlen[0]);
	check(p->cmd_pos < 0
	              ? cmd == NULL
	              : narf_engine_command_at((unsigned)p->cmd_pos) == cmd,
	      "taken command");
	if (p->k.key != NULL) {
		check(r->argc >= 2 && p->k.key == r->argv[1] &&
		              p->k.len == r->argvlen[1],
		      "taken key");
		check(p->k.slot == narf_slot_of(r->argv[1], r->argvlen[1]),
		      "taken slot");
		check(p->k.h == narf_store_hash(s->e.store, r->argv[1],
		                                r->argvlen[1]),
		      "taken hash");
	}
}

/* B: as conn_process, over reads of the given chunk sizes. */
static void run_as_server(struct side *s,
                          const char *stream,
                          size_t len,
                          const size_t chunk[2])
{
	struct narf_resp_req req;
	struct narf_buf in;
	size_t fed = 0;
	unsigned turn = 0;
	char errmsg[256];
	int stop = 0;

	narf_resp_req_init(&req);
	narf_buf_init(&in);
	while (fed < len && !stop) {
		size_t n = chunk[turn++ % 2], pos = 0;

		if (n == 0 || n > len - fed)
			n = len - fed;
		check(narf_buf_append(&in, stream + fed, n) == 0, "append");
		fed += n;
		if (in.len > 64)
			narf_engine_prefetch(&s->e, &s->c, in.data, in.len);
		while (pos < in.len) {
			size_t need = 0;
			int rv;

			if (narf_engine_prefetch_take(&s->e, &s->c, pos,
			                              &req)) {
				check_taken(s, &req);
				rv = NARF_RESP_DONE;
			} else {
				rv = narf_resp_parse(
				        &req, in.data + pos, in.len - pos,
				        narf_engine_limits(&s->e, &s->c), &need,
				        errmsg);
			}
			if (rv == NARF_RESP_INCOMPLETE)
				break;
			if (rv == NARF_RESP_ERROR) {
				s->error = 1;
				stop = 1;
				break;
			}
			pos += req.consumed;
			if (rv == NARF_RESP_DONE && !run(s, &req))
				stop = 1;
			narf_resp_req_reset(&req);
			if (stop)
				break;
		}
		narf_engine_prefetch_end(&s->e);
		narf_buf_consume(&in, pos);
	}
	narf_buf_close(&in);
	narf_resp_req_close(&req);
}

/* Do x and y agree on their first n bytes (both at least n long)? */
static int same(const struct narf_buf *x, const struct narf_buf *y, size_t n)
{
	return n == 0 || memcmp(x->data, y->data, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[16] = "narf-fuzz-seed!";
	struct side a, b;
	size_t chunk[2];

	if (size < 1)
		return 0;
	chunk[0] = data[0] & 0x0f;
	chunk[1] = data[0] >> 4;
	side_init(&a, seed);
	side_init(&b, seed);
	run_in_place(&a, (const char *)data + 1, size - 1);
	run_as_server(&b, (const char *)data + 1, size - 1, chunk);
	/* A saw the whole stream at once; B in reads. A line cut by a read
	 * may hit a "too big" limit first (fuzz_resp.c), so compare only
	 * the requests both ran. */
	if (a.error == b.error && a.requests == b.requests)
		check(a.replies.len == b.replies.len &&
		              same(&a.replies, &b.replies, a.replies.len),
		      "the same replies");
	else
		check(same(&a.replies, &b.replies,
		           a.replies.len < b.replies.len ? a.replies.len
		                                         : b.replies.len),
		      "the same replies as far as both went");
	side_close(&a);
	side_close(&b);
	return 0;
}
