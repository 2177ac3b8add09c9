/*
 * The TLS relay (common/tls_relay.c) on a real libuv loop over 127.0.0.1:
 * a listener that accepts with narf_tls_relay_accept(), a client that dials
 * with narf_tls_relay_connect(), and the two "apps" that get the plaintext
 * ends of the socketpairs, all on one loop. It proves that megabytes go
 * through byte-exact under backpressure, that either side closing is read
 * as EOF after everything it wrote, that bad certificates, plain text,
 * silence, refused connects and cancellation end with the right status
 * and nothing left behind, and that a peer vanishing mid-stream ends the
 * other side without a crash. Every test ends with every relay gone
 * (narf_tls_relay_pending() == 0, the loop ran dry within a bound well
 * under the relay's linger time) and uv_loop_close() == 0 (ASan: no leak).
 *
 * The certificates are made here with OpenSSL's API (EC P-256): a CA, a
 * server and a client leaf signed by it (SAN IP:127.0.0.1), an expired
 * leaf, and a leaf of an unrelated CA; written as PEM to a mkdtemp()
 * directory that the group teardown removes, since narf_tls_init() reads
 * files.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/errors.h"
#include "common/tls.h"
#include "common/tls_relay.h"

#define TOTAL (16u << 20) /* bytes of the big transfers */
#define CHUNK (64u << 10)
#define MAX_WRITES (TOTAL / CHUNK)
#define ECHO_HIGH (1u << 20) /* the echo app stops reading above this */
#define ECHO_LOW (256u << 10)
#define TIMEOUT_MS 5000
/* Every relay must be gone this long after the apps closed: well under
 * NARF_TLS_RELAY_LINGER_MS, so a relay that only ends by its linger timer
 * fails the test. */
#define SETTLE_MS 2500

static unsigned char *pattern; /* TOTAL pseudo-random bytes; owned */

/* ---- certificates ------------------------------------------------------- */

static char dir[64];
static char ca_pem[128], srv_pem[128], srv_key[128], cli_pem[128], cli_key[128],
        old_pem[128], old_key[128], rogue_pem[128], rogue_key[128];
static char *const files[] = {ca_pem,  srv_pem, srv_key,   cli_pem,  cli_key,
                              old_pem, old_key, rogue_pem, rogue_key};

/* Contexts: the server (client certificates required, from the CA), the
 * server with an expired certificate, and three clients (with a
 * certificate, without one, with one of another CA). */
static struct narf_tls srv_tls, old_tls, cli_tls, nocert_tls, rogue_tls;

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key named cn, valid from `from` to `to` seconds from
 * now, signed by issuer (self-signed when NULL); the caller frees it. */
static X509 *cert_new(EVP_PKEY *key,
                      const char *cn,
                      X509 *issuer,
                      EVP_PKEY *issuer_key,
                      long from,
                      long to)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	bool ca = issuer == NULL;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)cn,
	                                            -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_issuer_name(
	                         x, ca ? name : X509_get_subject_name(issuer)),
	                 1);
	X509V3_set_ctx(&ctx, ca ? x : issuer, x, NULL, NULL, 0);
	if (ca) {
		add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, &ctx, NID_subject_key_identifier, "hash");
	} else {
		add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
		add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
		add_ext(x, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
		add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	}
	assert_true(X509_sign(x, ca ? key : issuer_key, EVP_sha256()) > 0);
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
}

static void write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL),
	                 1);
	assert_int_equal(fclose(f), 0);
}

/* A leaf of issuer written to pem/key. */
static void make_leaf(const char *pem,
                      const char *keyfile,
                      const char *cn,
                      X509 *issuer,
                      EVP_PKEY *issuer_key,
                      long from,
                      long to)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x;

	assert_non_null(k);
	x = cert_new(k, cn, issuer, issuer_key, from, to);
	write_cert(pem, x);
	write_key(keyfile, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void tls_init(struct narf_tls *t,
                     const char *cert,
                     const char *key,
                     bool client)
{
	struct narf_tls_config cfg = {
	        .cert_file = cert,
	        .key_file = key,
	        .ca_file = ca_pem,
	        .auth = client ? NARF_TLS_AUTH_NO : NARF_TLS_AUTH_YES,
	        .client = client,
	};
	char errmsg[NARF_ERRMSG_SIZE];

	if (narf_tls_init(t, &cfg, errmsg) != 0)
		fail_msg("narf_tls_init: %s", errmsg);
}

static int group_setup(void **state)
{
	const long day = 24 * 3600;
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"),
	         *other_key = EVP_EC_gen("P-256");
	X509 *ca, *other;
	uint32_t x = 2463534242u;

	(void)state;
	assert_non_null(ca_key);
	assert_non_null(other_key);
	snprintf(dir, sizeof(dir), "/tmp/narf-relay-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
	snprintf(srv_pem, sizeof(srv_pem), "%s/server.pem", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
	snprintf(cli_pem, sizeof(cli_pem), "%s/client.pem", dir);
	snprintf(cli_key, sizeof(cli_key), "%s/client.key", dir);
	snprintf(old_pem, sizeof(old_pem), "%s/expired.pem", dir);
	snprintf(old_key, sizeof(old_key), "%s/expired.key", dir);
	snprintf(rogue_pem, sizeof(rogue_pem), "%s/rogue.pem", dir);
	snprintf(rogue_key, sizeof(rogue_key), "%s/rogue.key", dir);

	ca = cert_new(ca_key, "narf test CA", NULL, NULL, -7 * day, 30 * day);
	other = cert_new(other_key, "another CA", NULL, NULL, -7 * day,
	                 30 * day);
	write_cert(ca_pem, ca);
	make_leaf(srv_pem, srv_key, "server", ca, ca_key, -day, 30 * day);
	make_leaf(cli_pem, cli_key, "client", ca, ca_key, -day, 30 * day);
	make_leaf(old_pem, old_key, "expired", ca, ca_key, -2 * day, -day);
	make_leaf(rogue_pem, rogue_key, "rogue", other, other_key, -day,
	          30 * day);
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);

	tls_init(&srv_tls, srv_pem, srv_key, false);
	tls_init(&old_tls, old_pem, old_key, false);
	tls_init(&cli_tls, cli_pem, cli_key, true);
	tls_init(&nocert_tls, NULL, NULL, true);
	tls_init(&rogue_tls, rogue_pem, rogue_key, true);

	pattern = malloc(TOTAL);
	assert_non_null(pattern);
	for (size_t i = 0; i < TOTAL; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pattern[i] = (unsigned char)x;
	}
	/* A write to a socketpair whose other end is closed must fail with
	 * EPIPE, not kill us (the daemons ignore SIGPIPE too). */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	narf_tls_close(&srv_tls);
	narf_tls_close(&old_tls);
	narf_tls_close(&cli_tls);
	narf_tls_close(&nocert_tls);
	narf_tls_close(&rogue_tls);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(dir);
	free(pattern);
	return 0;
}

/* ---- the world: a loop, a listener, two apps ----------------------------- */

struct world;

/* One end: the relay's callback as seen, then the app on its fd (or a raw
 * TCP socket playing a stranger). */
struct side {
	struct world *w;
	/* the relay's callback */
	unsigned cbs;
	int status;
	int fd;
	char why[256];
	uint64_t cb_at; /* uv_now() */
	/* the app's stream */
	bool use_tcp; /* open the fd with uv_tcp_open, not uv_pipe_open */
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} s;
	bool opened, closing, closed;
	uint64_t read_delay_ms; /* start reading this long after opening */
	bool manual_read;       /* the test starts reading itself */
	bool check;             /* what is read must be pattern[0..] */
	size_t got;             /* bytes read */
	bool ended;             /* read EOF or an error */
	int end_status;
	char rbuf[CHUNK];
	/* echo what is read, pausing above ECHO_HIGH queued */
	bool echo, echo_paused;
	/* writes of pattern */
	uv_write_t wreq[MAX_WRITES];
	unsigned writes, writes_done, writes_failed;
	uv_shutdown_t shut;
	uv_connect_t conn; /* a raw client's */
	uv_write_t raw_wreq;
	/* hooks */
	void (*on_open)(struct side *d);
	void (*on_data)(struct side *d);
	void (*on_end)(struct side *d);     /* default: close */
	void (*on_written)(struct side *d); /* every write done */
};

enum accept_mode {
	ACCEPT_RELAY, /* narf_tls_relay_accept() */
	ACCEPT_RAW,   /* a plain TCP socket that never answers */
};

struct world {
	uv_loop_t loop;
	uv_timer_t guard; /* fails a test that hangs */
	uv_timer_t delay; /* one delayed action per test */
	uv_timer_t delay2;
	uv_tcp_t listener;
	bool listening;
	struct sockaddr_in addr;
	enum accept_mode mode;
	struct narf_tls *srv; /* borrowed */
	uint64_t accept_timeout_ms;
	struct narf_tls_relay *server_relay; /* until its cb */
	struct narf_tls_relay *client_relay;
	struct side server, client;
};

static struct world *W;

static void guard_cb(uv_timer_t *t)
{
	(void)t;
	fail_msg("the test did not finish within 15 s");
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	int len = sizeof(w->addr);

	assert_non_null(w);
	W = w;
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->guard);
	uv_timer_start(&w->guard, guard_cb, 15000, 0);
	uv_unref((uv_handle_t *)&w->guard);
	uv_timer_init(&w->loop, &w->delay);
	uv_timer_init(&w->loop, &w->delay2);
	w->server.w = w->client.w = w;
	w->server.fd = w->client.fd = -2;
	w->srv = &srv_tls;
	w->accept_timeout_ms = TIMEOUT_MS;
	uv_tcp_init(&w->loop, &w->listener);
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &w->addr), 0);
	assert_int_equal(
	        uv_tcp_bind(&w->listener, (struct sockaddr *)&w->addr, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&w->listener,
	                                    (struct sockaddr *)&w->addr, &len),
	                 0);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	if (!uv_is_closing((uv_handle_t *)&w->listener))
		uv_close((uv_handle_t *)&w->listener, NULL);
	uv_close((uv_handle_t *)&w->delay, NULL);
	uv_close((uv_handle_t *)&w->delay2, NULL);
	uv_close((uv_handle_t *)&w->guard, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	assert_int_equal(narf_tls_relay_pending(), 0);
	free(w);
	W = NULL;
	return 0;
}

static void run_until(bool (*done)(struct world *w))
{
	while (!done(W))
		uv_run(&W->loop, UV_RUN_ONCE);
}

/* Close the listener and run the loop dry: every relay must free itself
 * soon, not by its linger timer (the guard is unreferenced, the delay
 * timers stopped). */
static void settle(struct world *w)
{
	uint64_t start;

	uv_timer_stop(&w->delay);
	uv_timer_stop(&w->delay2);
	if (!uv_is_closing((uv_handle_t *)&w->listener))
		uv_close((uv_handle_t *)&w->listener, NULL);
	uv_update_time(&w->loop);
	start = uv_now(&w->loop);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_update_time(&w->loop);
	if (uv_now(&w->loop) - start > SETTLE_MS)
		fail_msg("relays took %llu ms to end",
		         (unsigned long long)(uv_now(&w->loop) - start));
	assert_int_equal(narf_tls_relay_pending(), 0);
}

/* ---- the apps ----------------------------------------------------------- */

static uv_stream_t *stream_of(struct side *d)
{
	return (uv_stream_t *)&d->s;
}

static void side_closed_cb(uv_handle_t *h)
{
	struct side *d = h->data;

	d->closed = true;
}

static void side_close(struct side *d)
{
	if (d->closing)
		return;
	d->closing = true;
	uv_close((uv_handle_t *)&d->s, side_closed_cb);
}

static void side_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct side *d = h->data;

	(void)size;
	*buf = uv_buf_init(d->rbuf, sizeof(d->rbuf));
}

struct echo_write {
	uv_write_t req;
	struct side *d;
	char data[];
};

static void side_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void echo_written_cb(uv_write_t *req, int status)
{
	struct echo_write *e = (struct echo_write *)req;
	struct side *d = e->d;

	free(e);
	if (d->closing || status != 0)
		return;
	if (d->echo_paused &&
	    uv_stream_get_write_queue_size(stream_of(d)) < ECHO_LOW) {
		d->echo_paused = false;
		assert_int_equal(uv_read_start(stream_of(d), side_alloc_cb,
		                               side_read_cb),
		                 0);
	}
}

static void echo(struct side *d, const char *data, size_t n)
{
	struct echo_write *e = malloc(sizeof(*e) + n);
	uv_buf_t b;

	assert_non_null(e);
	e->d = d;
	memcpy(e->data, data, n);
	b = uv_buf_init(e->data, (unsigned)n);
	assert_int_equal(
	        uv_write(&e->req, stream_of(d), &b, 1, echo_written_cb), 0);
	if (uv_stream_get_write_queue_size(stream_of(d)) > ECHO_HIGH) {
		d->echo_paused = true;
		uv_read_stop(stream_of(d));
	}
}

static void side_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct side *d = s->data;

	if (n > 0) {
		if (d->check) {
			assert_true(d->got + (size_t)n <= TOTAL);
			if (memcmp(buf->base, pattern + d->got, (size_t)n) != 0)
				fail_msg("bytes %zu..%zu differ", d->got,
				         d->got + (size_t)n);
		}
		d->got += (size_t)n;
		if (d->echo)
			echo(d, buf->base, (size_t)n);
		if (d->on_data != NULL)
			d->on_data(d);
		return;
	}
	if (n < 0) {
		d->ended = true;
		d->end_status = (int)n;
		uv_read_stop(s);
		if (d->on_end != NULL)
			d->on_end(d);
		else
			side_close(d);
	}
}

static void side_read_start(struct side *d)
{
	assert_int_equal(
	        uv_read_start(stream_of(d), side_alloc_cb, side_read_cb), 0);
}

static void delayed_read_cb(uv_timer_t *t)
{
	struct side *d = t->data;

	if (!d->closing)
		side_read_start(d);
}

static void pattern_written_cb(uv_write_t *req, int status)
{
	struct side *d = req->handle->data;

	d->writes_done++;
	if (status != 0)
		d->writes_failed++;
	if (d->writes_done == d->writes && d->on_written != NULL)
		d->on_written(d);
}

/* Queue pattern[0..total) in CHUNK-sized writes. */
static void write_pattern(struct side *d, size_t total)
{
	for (size_t off = 0; off < total; off += CHUNK) {
		uv_buf_t b = uv_buf_init((char *)pattern + off, CHUNK);

		assert_true(d->writes < MAX_WRITES);
		assert_int_equal(uv_write(&d->wreq[d->writes++], stream_of(d),
		                          &b, 1, pattern_written_cb),
		                 0);
	}
}

/* Open the app's stream on fd, the way callers will (uv_pipe_open or
 * uv_tcp_open), and start reading (now or after read_delay_ms). */
static void side_open(struct side *d, int fd)
{
	if (d->use_tcp) {
		assert_int_equal(uv_tcp_init(&d->w->loop, &d->s.tcp), 0);
		assert_int_equal(uv_tcp_open(&d->s.tcp, fd), 0);
	} else {
		assert_int_equal(uv_pipe_init(&d->w->loop, &d->s.pipe, 0), 0);
		assert_int_equal(uv_pipe_open(&d->s.pipe, fd), 0);
	}
	d->s.pipe.data = d;
	d->opened = true;
	if (d->manual_read) {
		/* (the test starts reading) */
	} else if (d->read_delay_ms > 0) {
		uv_timer_t *t =
		        d == &d->w->server ? &d->w->delay2 : &d->w->delay;

		t->data = d;
		uv_timer_start(t, delayed_read_cb, d->read_delay_ms, 0);
	} else {
		side_read_start(d);
	}
	if (d->on_open != NULL)
		d->on_open(d);
}

static void relay_cb(void *data,
                     int fd,
                     const struct sockaddr_storage *peer,
                     int status,
                     const char *why)
{
	struct side *d = data;

	d->cbs++;
	assert_int_equal(d->cbs, 1);
	d->status = status;
	d->fd = fd;
	uv_update_time(&d->w->loop);
	d->cb_at = uv_now(&d->w->loop);
	if (d == &d->w->server)
		d->w->server_relay = NULL;
	else
		d->w->client_relay = NULL;
	assert_non_null(peer);
	assert_int_equal(peer->ss_family, AF_INET);
	snprintf(d->why, sizeof(d->why), "%s", why != NULL ? why : "");
	if (status != 0) {
		assert_int_equal(fd, -1);
		assert_non_null(why);
		return;
	}
	assert_true(fd >= 0);
	assert_null(why);
	side_open(d, fd);
}

static void listener_cb(uv_stream_t *server, int status)
{
	struct world *w = W;

	assert_int_equal(status, 0);
	if (w->mode == ACCEPT_RAW) {
		assert_false(w->server.opened);
		uv_tcp_init(&w->loop, &w->server.s.tcp);
		assert_int_equal(
		        uv_accept(server, (uv_stream_t *)&w->server.s.tcp), 0);
		w->server.s.tcp.data = &w->server;
		w->server.opened = true;
		side_read_start(&w->server);
		return;
	}
	assert_null(w->server_relay);
	w->server_relay = narf_tls_relay_accept(
	        server, w->srv, w->accept_timeout_ms, relay_cb, &w->server);
	assert_non_null(w->server_relay);
}

static void listen_on(struct world *w, enum accept_mode mode)
{
	w->mode = mode;
	assert_int_equal(
	        uv_listen((uv_stream_t *)&w->listener, 16, listener_cb), 0);
}

static void dial(struct world *w, struct narf_tls *t)
{
	w->client_relay = narf_tls_relay_connect(
	        &w->loop, (const struct sockaddr *)&w->addr, t, TIMEOUT_MS,
	        relay_cb, &w->client);
	assert_non_null(w->client_relay);
}

static void raw_connected_cb(uv_connect_t *req, int status)
{
	struct side *d = req->data;

	assert_int_equal(status, 0);
	side_read_start(d);
	if (d->on_open != NULL)
		d->on_open(d);
}

/* The client side as a plain TCP socket (a stranger). */
static void raw_dial(struct world *w)
{
	struct side *d = &w->client;

	uv_tcp_init(&w->loop, &d->s.tcp);
	d->s.tcp.data = d;
	d->conn.data = d;
	d->opened = true;
	assert_int_equal(uv_tcp_connect(&d->conn, &d->s.tcp,
	                                (const struct sockaddr *)&w->addr,
	                                raw_connected_cb),
	                 0);
}

static bool both_closed(struct world *w)
{
	return w->server.closed && w->client.closed;
}

/* ---- 1. echo ------------------------------------------------------------ */

static void client_read_all_then_close(struct side *d)
{
	if (d->got == TOTAL)
		side_close(d);
}

static void client_write_all(struct side *d)
{
	write_pattern(d, TOTAL);
}

/* 16 MiB written in 64 KiB pieces come back byte-exact through two relays
 * and an echo app while the client app reads nothing for 300 ms (the
 * client relay's queue to its app fills past NARF_TLS_RELAY_HIGH and
 * drains), over both uv_pipe_open and uv_tcp_open. The client closing is
 * read as EOF by the server app, and both relays then end. */
static void test_echo(void **state)
{
	struct world *w = *state;

	w->server.use_tcp = true;
	w->server.echo = true;
	w->client.check = true;
	w->client.read_delay_ms = 300;
	w->client.on_open = client_write_all;
	w->client.on_data = client_read_all_then_close;
	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	run_until(both_closed);
	assert_int_equal(w->server.status, 0);
	assert_int_equal(w->client.status, 0);
	assert_int_equal(w->client.got, TOTAL);
	assert_int_equal(w->client.writes_done, MAX_WRITES);
	assert_int_equal(w->client.writes_failed, 0);
	assert_int_equal(w->server.got, TOTAL);
	assert_true(w->server.ended);
	assert_int_equal(w->server.end_status, UV_EOF);
	settle(w);
}

/* ---- 1b. a slow reader ------------------------------------------------- */

static void close_when_all_read(struct side *d)
{
	if (d->got == TOTAL)
		side_close(d);
}

/* 16 MiB from a client app to a server app that reads nothing for 500 ms,
 * behind a small TCP receive buffer, arrive byte-exact: the server
 * relay's queue to its app and then the client relay's queue to the
 * network fill past NARF_TLS_RELAY_HIGH (each relay stops reading its
 * source) and drain again below NARF_TLS_RELAY_LOW. */
static void test_slow_reader(void **state)
{
	struct world *w = *state;
	int rcvbuf = 64 << 10;

	/* (accepted sockets inherit it, and it stops the autotuning that
	 * would otherwise absorb megabytes in the kernel) */
	assert_int_equal(
	        uv_recv_buffer_size((uv_handle_t *)&w->listener, &rcvbuf), 0);
	w->server.check = true;
	w->server.read_delay_ms = 500;
	w->server.on_data = close_when_all_read;
	w->client.on_open = client_write_all;
	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	run_until(both_closed);
	assert_int_equal(w->server.got, TOTAL);
	assert_int_equal(w->client.writes_done, MAX_WRITES);
	assert_int_equal(w->client.writes_failed, 0);
	assert_int_equal(w->client.end_status, UV_EOF);
	settle(w);
}

/* ---- 2. the server closes first ----------------------------------------- */

static void close_when_written(struct side *d)
{
	side_close(d);
}

static void server_write_all(struct side *d)
{
	d->on_written = close_when_written;
	write_pattern(d, TOTAL);
}

/* A server app that writes 16 MiB and closes its fd at once: the client
 * app, which starts reading only later, reads all of it and then EOF (the
 * network EOF arrives while the relay's writes to the app are queued). */
static void test_server_closes_first(void **state)
{
	struct world *w = *state;

	w->client.use_tcp = true;
	w->client.check = true;
	w->client.read_delay_ms = 300;
	w->server.on_open = server_write_all;
	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	run_until(both_closed);
	assert_int_equal(w->server.writes_failed, 0);
	assert_int_equal(w->client.got, TOTAL);
	assert_true(w->client.ended);
	assert_int_equal(w->client.end_status, UV_EOF);
	settle(w);
}

/* ---- 2b. half-close ----------------------------------------------------- */

#define HALF (2u << 20)

static void server_write_half(struct side *d)
{
	d->on_written = close_when_written;
	write_pattern(d, HALF);
}

static void shut_cb(uv_shutdown_t *req, int status)
{
	(void)req;
	assert_int_equal(status, 0);
}

static void half_close_then_read(uv_timer_t *t)
{
	struct side *d = t->data;

	assert_int_equal(uv_shutdown(&d->shut, stream_of(d), shut_cb), 0);
	side_read_start(d);
}

static void client_half_close_later(struct side *d)
{
	uv_timer_t *t = &d->w->delay;

	t->data = d;
	uv_timer_start(t, half_close_then_read, 300, 0);
}

/* A client app that shuts down its write side after the server app wrote
 * 2 MiB and closed (all of it waiting in the relay, unread) still reads
 * all of it, then EOF: the relay does not end before what it holds for
 * the app went out. */
static void test_half_close_keeps_data(void **state)
{
	struct world *w = *state;

	w->client.check = true;
	w->client.on_open = client_half_close_later;
	w->server.on_open = server_write_half;
	listen_on(w, ACCEPT_RELAY);
	/* (reading starts in half_close_then_read, not at open) */
	w->client.manual_read = true;
	dial(w, &cli_tls);
	run_until(both_closed);
	assert_int_equal(w->client.got, HALF);
	assert_int_equal(w->client.end_status, UV_EOF);
	settle(w);
}

/* ---- 3. bad certificates ------------------------------------------------ */

static bool handshake_over(struct world *w)
{
	if (w->server.cbs == 0 || w->client.cbs == 0)
		return false;
	return (w->server.status != 0 || w->server.closed) &&
	       (w->client.status != 0 || w->client.closed);
}

/* Run a handshake between srv and cli that must fail; the side that
 * verifies (the server when server_verifies) must report NARF_EPROTO with
 * a reason naming the certificate. The other side may have finished its
 * handshake first (TLS 1.3 clients do before the server checks their
 * certificate): then its app must read the end without a byte. */
static void bad_handshake(struct world *w,
                          struct narf_tls *srv,
                          struct narf_tls *cli,
                          bool server_verifies)
{
	struct side *v = server_verifies ? &w->server : &w->client;
	struct side *o = server_verifies ? &w->client : &w->server;

	w->srv = srv;
	listen_on(w, ACCEPT_RELAY);
	dial(w, cli);
	run_until(handshake_over);
	print_message("verifier: %s; other side: %s\n", v->why,
	              o->status == 0 ? "handed over, then ended" : o->why);
	assert_int_equal(v->status, NARF_EPROTO);
	assert_int_equal(v->fd, -1);
	if (strstr(v->why, "certificate") == NULL)
		fail_msg("why does not name the certificate: %s", v->why);
	assert_false(v->opened);
	if (o->status == 0) {
		assert_true(o->ended);
		assert_int_equal(o->got, 0);
	} else {
		assert_int_equal(o->fd, -1);
	}
	settle(w);
}

/* A client certificate from another CA is refused by the server. */
static void test_client_cert_wrong_ca(void **state)
{
	bad_handshake(*state, &srv_tls, &rogue_tls, true);
}

/* An expired server certificate is refused by the client. */
static void test_server_cert_expired(void **state)
{
	struct world *w = *state;

	bad_handshake(w, &old_tls, &cli_tls, false);
	assert_non_null(strstr(w->client.why, "expired"));
}

/* A client without a certificate is refused by a server that requires
 * one. */
static void test_client_without_cert(void **state)
{
	bad_handshake(*state, &srv_tls, &nocert_tls, true);
}

/* ---- 4, 5. strangers ---------------------------------------------------- */

static void raw_send_ping(struct side *d)
{
	uv_buf_t b = uv_buf_init("PING\r\n", 6);

	assert_int_equal(uv_write(&d->raw_wreq, stream_of(d), &b, 1, NULL), 0);
}

static bool server_failed_client_closed(struct world *w)
{
	return w->server.cbs == 1 && w->client.closed;
}

/* A plain-text client is failed with NARF_EPROTO and its connection
 * closed. */
static void test_plaintext_client(void **state)
{
	struct world *w = *state;

	w->client.on_open = raw_send_ping;
	listen_on(w, ACCEPT_RELAY);
	raw_dial(w);
	run_until(server_failed_client_closed);
	assert_int_equal(w->server.status, NARF_EPROTO);
	assert_int_equal(w->server.fd, -1);
	assert_true(w->client.ended);
	settle(w);
}

/* A client that connects and says nothing is failed with NARF_ETIMEOUT
 * after timeout_ms, and its connection closed. */
static void test_silent_client(void **state)
{
	struct world *w = *state;
	uint64_t start;

	w->accept_timeout_ms = 200;
	listen_on(w, ACCEPT_RELAY);
	uv_update_time(&w->loop);
	start = uv_now(&w->loop);
	raw_dial(w);
	run_until(server_failed_client_closed);
	assert_int_equal(w->server.status, NARF_ETIMEOUT);
	assert_int_equal(w->server.fd, -1);
	assert_non_null(strstr(w->server.why, "200 ms"));
	assert_true(w->server.cb_at - start >= 190);
	assert_true(w->server.cb_at - start < 1500);
	assert_true(w->client.ended);
	assert_int_equal(w->client.got, 0);
	settle(w);
}

/* ---- 6. refused --------------------------------------------------------- */

static bool client_cb_ran(struct world *w)
{
	return w->client.cbs == 1;
}

/* Dialling a port nobody listens on fails with NARF_ECONNECT and no fd. */
static void test_connect_refused(void **state)
{
	struct world *w = *state;

	/* (the listener is bound, not listening: connects are refused) */
	dial(w, &cli_tls);
	run_until(client_cb_ran);
	assert_int_equal(w->client.status, NARF_ECONNECT);
	assert_int_equal(w->client.fd, -1);
	assert_non_null(strstr(w->client.why, "refused"));
	settle(w);
}

/* ---- 7. cancel ---------------------------------------------------------- */

static bool server_cb_ran(struct world *w)
{
	return w->server.cbs == 1;
}

/* A relay cancelled while it connects never calls back; the server's
 * relay sees the connection end during its handshake. */
static void test_cancel_connecting(void **state)
{
	struct world *w = *state;

	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	assert_int_equal(narf_tls_relay_pending(), 1);
	narf_tls_relay_cancel(w->client_relay);
	w->client_relay = NULL;
	assert_int_equal(narf_tls_relay_pending(), 0);
	run_until(server_cb_ran);
	assert_int_not_equal(w->server.status, 0);
	assert_int_equal(w->server.fd, -1);
	settle(w);
	assert_int_equal(w->client.cbs, 0);
}

static void cancel_client_cb(uv_timer_t *t)
{
	struct world *w = t->data;

	assert_non_null(w->client_relay);
	narf_tls_relay_cancel(w->client_relay);
	w->client_relay = NULL;
}

static bool server_saw_end(struct world *w)
{
	return w->server.closed;
}

/* A client relay cancelled mid-handshake (its hello sent, no answer)
 * never calls back, and the peer sees the connection close. */
static void test_cancel_handshaking_client(void **state)
{
	struct world *w = *state;

	listen_on(w, ACCEPT_RAW);
	dial(w, &cli_tls);
	w->delay.data = w;
	uv_timer_start(&w->delay, cancel_client_cb, 100, 0);
	run_until(server_saw_end);
	assert_true(w->server.got > 0); /* the ClientHello */
	settle(w);
	assert_int_equal(w->client.cbs, 0);
}

static void cancel_server_cb(uv_timer_t *t)
{
	struct world *w = t->data;

	assert_non_null(w->server_relay);
	narf_tls_relay_cancel(w->server_relay);
	w->server_relay = NULL;
	assert_int_equal(narf_tls_relay_pending(), 0);
}

static void arm_server_cancel(struct side *d)
{
	d->w->delay.data = d->w;
	uv_timer_start(&d->w->delay, cancel_server_cb, 100, 0);
}

static bool client_closed(struct world *w)
{
	return w->client.closed;
}

/* A server relay cancelled mid-handshake never calls back, and the
 * silent client sees its connection close. */
static void test_cancel_handshaking_server(void **state)
{
	struct world *w = *state;

	w->client.on_open = arm_server_cancel;
	listen_on(w, ACCEPT_RELAY);
	raw_dial(w);
	run_until(client_closed);
	assert_true(w->client.ended);
	settle(w);
	assert_int_equal(w->server.cbs, 0);
}

/* ---- 8. the peer vanishes ----------------------------------------------- */

static void vanish_after_1m(struct side *d)
{
	if (d->got >= (1u << 20))
		side_close(d);
}

static bool client_ended(struct world *w)
{
	return w->server.closed && w->client.closed &&
	       w->client.writes_done == w->client.writes;
}

/* A server app that closes its fd after 1 MiB of the client's 16 MiB:
 * the client app's stream ends (EOF or an error, its writes fail or are
 * cancelled), nothing crashes and both relays end. */
static void test_peer_vanishes(void **state)
{
	struct world *w = *state;

	w->server.on_data = vanish_after_1m;
	w->client.on_open = client_write_all;
	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	run_until(client_ended);
	assert_true(w->client.ended);
	settle(w);
}

/* ---- 8b. the peer answers and closes ------------------------------------ */

#define REPLY (2u << 20)

static void answer_and_close(struct side *d)
{
	if (d->writes > 0)
		return;
	d->on_written = close_when_written;
	write_pattern(d, REPLY);
}

static bool reply_read(struct world *w)
{
	return w->server.closed && w->client.closed;
}

/* A server app that answers 2 MiB and closes at once while the client is
 * still sending 16 MiB (its relay resets the unread connection) and the
 * client app reads only later: the client app still reads the whole
 * answer, then the end. */
static void test_answer_then_reset(void **state)
{
	struct world *w = *state;

	w->server.on_data = answer_and_close;
	w->client.check = true;
	w->client.read_delay_ms = 500;
	w->client.on_open = client_write_all;
	listen_on(w, ACCEPT_RELAY);
	dial(w, &cli_tls);
	run_until(reply_read);
	assert_int_equal(w->server.writes_failed, 0);
	assert_int_equal(w->client.got, REPLY);
	assert_true(w->client.ended);
	settle(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_slow_reader, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_server_closes_first, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_half_close_keeps_data,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_client_cert_wrong_ca,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_cert_expired, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_client_without_cert, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_plaintext_client, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_silent_client, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_connect_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_cancel_connecting, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_cancel_handshaking_client,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cancel_handshaking_server,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_peer_vanishes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_answer_then_reset, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
