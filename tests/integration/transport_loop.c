/*
 * narf's Raft transport (coordinator/transport.c) on a real libuv loop over
 * 127.0.0.1: two transports (or a transport and a raw socket playing a
 * stranger) on one loop, with libraft's part played by the callbacks here.
 * It proves that members get each other's streams with the proven id and
 * no byte lost, that strangers, wrong secrets, silence and floods are
 * closed without libraft hearing of them, and that close() cancels pending
 * connects with RAFT_CANCELED before its own callback fires; and that with
 * TLS (--tls-cluster: tls_server and tls_client set) members connect
 * through the tunnel, plain strangers are refused in the TLS handshake
 * under the same cap, close() cancels a connect still in it, and a
 * dialed stream whose member went away fails libraft's next write (the
 * certificates are made with the openssl command-line tool; without it
 * those tests are skipped). Every test ends with uv_loop_close() == 0: no
 * handle or memory left behind (ASan).
 *
 * Run by meson (suite integration) and by tests/integration/
 * test_raft_auth.py.
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

#include "common/auth.h"
#include "common/errors.h"
#include "common/tls.h"
#include "coordinator/raft_hs.h"
#include "coordinator/transport.h"

static const char secret[] = "correct horse battery staple 42";
static const char other_secret[] = "another cluster's secret, not ours";

#define MAX_STREAMS 8
#define PAYLOAD "libraft's first message, right after OK"

/* One test's world: the loop, up to two transports, and what libraft
 * would have seen. */
struct world {
	uv_loop_t loop;
	uv_timer_t guard; /* fails a test that hangs */
	struct narf_auth_keys keys, other;
	struct narf_transport a, b; /* a listens; b connects */
	char addr_a[NARF_ADDR_SIZE], addr_b[NARF_ADDR_SIZE];
	/* accept_cb */
	unsigned accepted;
	raft_id accepted_id;
	char accepted_addr[NARF_ADDR_SIZE];
	uv_stream_t *streams[MAX_STREAMS]; /* handed to "libraft" */
	unsigned n_streams;
	char received[256]; /* read on accepted streams */
	size_t n_received;
	/* connect_cb */
	struct raft_uv_connect req;
	unsigned connect_cbs;
	int connect_status;
	unsigned connect_cb_order, close_cb_order, order;
	unsigned closed; /* transports whose close cb fired */
	/* a raw socket (a stranger) */
	uv_tcp_t raw[6];
	uv_connect_t raw_connect[6];
	uv_write_t raw_write[6];
	unsigned raw_eof; /* raw sockets the server closed */
	unsigned char raw_buf[6][NARF_RAFT_HS_MAX_FRAME];
	size_t raw_got[6];
	unsigned char raw_out[6][NARF_RAFT_HS_MAX_FRAME + 64];
	struct narf_raft_hs_client raw_hs;
	/* a raw listener (a silent stranger on a member's address) */
	uv_tcp_t silent;
	uv_tcp_t silent_conn;
	bool silent_accepted;
	/* TLS contexts, as coordinator/main.c makes them */
	struct narf_tls tls_server, tls_client;
};

static struct world *W;
/* The certificates' directory, or "" (no openssl: TLS tests skip). */
static char cert_dir[64];
static char ca_file[128], cert_file[128], key_file[128];

static void guard_cb(uv_timer_t *t)
{
	(void)t;
	fail_msg("the test did not finish within 10 s");
}

/* A free port on 127.0.0.1 (bound, read, released). */
static void free_addr(char *out)
{
	uv_loop_t loop;
	uv_tcp_t tcp;
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	uv_loop_init(&loop);
	uv_tcp_init(&loop, &tcp);
	uv_ip4_addr("127.0.0.1", 0, &sa);
	assert_int_equal(uv_tcp_bind(&tcp, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len),
	                 0);
	snprintf(out, NARF_ADDR_SIZE, "127.0.0.1:%u",
	         ntohs(((struct sockaddr_in *)&ss)->sin_port));
	uv_close((uv_handle_t *)&tcp, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	W = w;
	uv_loop_init(&w->loop);
	uv_timer_init(&w->loop, &w->guard);
	uv_timer_start(&w->guard, guard_cb, 10000, 0);
	uv_unref((uv_handle_t *)&w->guard);
	assert_int_equal(narf_auth_keys_from_text(&w->keys, secret,
	                                          strlen(secret), NULL),
	                 0);
	assert_int_equal(narf_auth_keys_from_text(&w->other, other_secret,
	                                          strlen(other_secret), NULL),
	                 0);
	free_addr(w->addr_a);
	do
		free_addr(w->addr_b);
	while (strcmp(w->addr_a, w->addr_b) == 0);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	uv_close((uv_handle_t *)&w->guard, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	narf_tls_close(&w->tls_server);
	narf_tls_close(&w->tls_client);
	free(w);
	W = NULL;
	return 0;
}

/* ---- libraft's part ---------------------------------------------------- */

static void stream_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)h;
	(void)size;
	buf->base = W->received + W->n_received;
	buf->len = sizeof(W->received) - 1 - W->n_received;
}

static void stream_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)s;
	(void)buf;
	if (n > 0)
		W->n_received += (size_t)n;
}

static void accept_cb(struct raft_uv_transport *t,
                      raft_id id,
                      const char *address,
                      uv_stream_t *stream)
{
	struct world *w = W;

	(void)t;
	w->accepted++;
	w->accepted_id = id;
	snprintf(w->accepted_addr, sizeof(w->accepted_addr), "%s", address);
	assert_true(w->n_streams < MAX_STREAMS);
	w->streams[w->n_streams++] = stream;
	assert_int_equal(uv_read_start(stream, stream_alloc_cb, stream_read_cb),
	                 0);
}

static void payload_written_cb(uv_write_t *req, int status)
{
	assert_int_equal(status, 0);
	free(req);
}

static void connect_cb(struct raft_uv_connect *req,
                       uv_stream_t *stream,
                       int status)
{
	struct world *w = W;

	assert_ptr_equal(req, &w->req);
	w->connect_cbs++;
	w->connect_status = status;
	w->connect_cb_order = ++w->order;
	if (status != 0) {
		assert_null(stream);
		return;
	}
	assert_non_null(stream);
	w->streams[w->n_streams++] = stream;
	/* libraft writes at once: none of it may be lost or taken for the
	 * handshake */
	{
		uv_write_t *wr = malloc(sizeof(*wr));
		uv_buf_t buf = uv_buf_init(PAYLOAD, sizeof(PAYLOAD) - 1);

		assert_non_null(wr);
		assert_int_equal(
		        uv_write(wr, stream, &buf, 1, payload_written_cb), 0);
	}
}

static void transport_closed_cb(struct raft_uv_transport *t)
{
	(void)t;
	W->closed++;
	W->close_cb_order = ++W->order;
}

/* libraft closes the streams it was given and frees them with
 * raft_free(). */
static void close_streams(struct world *w)
{
	for (unsigned i = 0; i < w->n_streams; i++)
		uv_close((uv_handle_t *)w->streams[i], (uv_close_cb)raft_free);
	w->n_streams = 0;
}

/* Set up transport t as member id at addr with keys. */
static void start(struct narf_transport *t,
                  const struct narf_auth_keys *keys,
                  raft_id id,
                  const char *addr,
                  bool listen)
{
	struct world *w = W;

	assert_int_equal(narf_transport_init(t, &w->loop, keys), 0);
	assert_int_equal(t->iface.init(&t->iface, id, addr), 0);
	if (listen)
		assert_int_equal(t->iface.listen(&t->iface, accept_cb), 0);
}

static void stop(struct narf_transport *t)
{
	unsigned before = W->closed;

	t->iface.close(&t->iface, transport_closed_cb);
	while (W->closed == before)
		if (uv_run(&W->loop, UV_RUN_ONCE) == 0 && W->closed == before)
			fail_msg("the loop ran dry before the close callback");
	narf_transport_close(t);
}

static void run_until(bool (*done)(struct world *w))
{
	while (!done(W))
		uv_run(&W->loop, UV_RUN_ONCE);
}

static bool connect_done(struct world *w)
{
	return w->connect_cbs > 0;
}

static bool payload_arrived(struct world *w)
{
	return w->n_received >= sizeof(PAYLOAD) - 1;
}

/* ---- a raw socket playing a stranger ------------------------------------ */

static void raw_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	unsigned i = (unsigned)(uintptr_t)h->data;

	(void)size;
	buf->base = (char *)W->raw_buf[i] + W->raw_got[i];
	buf->len = sizeof(W->raw_buf[i]) - W->raw_got[i];
}

static void raw_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	unsigned i = (unsigned)(uintptr_t)s->data;

	(void)buf;
	if (n > 0) {
		W->raw_got[i] += (size_t)n;
	} else if (n < 0) {
		W->raw_eof++;
		uv_close((uv_handle_t *)s, NULL);
	}
}

static void raw_written_cb(uv_write_t *req, int status)
{
	(void)req;
	(void)status;
}

static void raw_send(unsigned i, const void *bytes, size_t len)
{
	uv_buf_t buf;

	memcpy(W->raw_out[i], bytes, len);
	buf = uv_buf_init((char *)W->raw_out[i], (unsigned)len);
	assert_int_equal(uv_write(&W->raw_write[i], (uv_stream_t *)&W->raw[i],
	                          &buf, 1, raw_written_cb),
	                 0);
}

static void raw_connected_cb(uv_connect_t *req, int status)
{
	unsigned i = (unsigned)(uintptr_t)req->data;

	assert_int_equal(status, 0);
	uv_read_start((uv_stream_t *)&W->raw[i], raw_alloc_cb, raw_read_cb);
}

/* Open raw socket i to addr (it sends nothing by itself). */
static void raw_open(unsigned i, const char *addr)
{
	struct sockaddr_in sa;
	const char *colon = strrchr(addr, ':');

	assert_int_equal(uv_ip4_addr("127.0.0.1", atoi(colon + 1), &sa), 0);
	uv_tcp_init(&W->loop, &W->raw[i]);
	W->raw[i].data = (void *)(uintptr_t)i;
	W->raw_connect[i].data = (void *)(uintptr_t)i;
	assert_int_equal(
	        uv_tcp_connect(&W->raw_connect[i], &W->raw[i],
	                       (struct sockaddr *)&sa, raw_connected_cb),
	        0);
}

static bool raw_closed_1(struct world *w)
{
	return w->raw_eof >= 1;
}

/* ---- the tests ----------------------------------------------------------- */

/* Two members prove themselves to each other: the listener's libraft gets
 * the stream with the connector's proven id and address, the connector's
 * gets its stream with status 0, and the bytes libraft writes at once
 * arrive whole on the other side. */
static void test_members_connect(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->keys, 1, w->addr_a, true);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	assert_int_equal(w->connect_cbs, 0); /* never from inside connect */
	run_until(connect_done);
	assert_int_equal(w->connect_status, 0);
	run_until(payload_arrived);
	assert_int_equal(w->accepted, 1);
	assert_int_equal(w->accepted_id, 2);
	assert_string_equal(w->accepted_addr, w->addr_b);
	w->received[w->n_received] = '\0';
	assert_string_equal(w->received, PAYLOAD);
	assert_int_equal(w->a.accepted, 1);
	assert_int_equal(w->b.connected, 1);
	assert_int_equal(w->a.refused, 0);
	close_streams(w);
	stop(&w->a);
	stop(&w->b);
}

/* A connector holding another secret: the listener refuses its proof,
 * its connect fails with RAFT_NOCONNECTION, and the listener's libraft
 * never hears of it. */
static void test_client_of_another_secret(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->keys, 1, w->addr_a, true);
	start(&w->b, &w->other, 2, w->addr_b, false);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, RAFT_NOCONNECTION);
	while (w->a.refused == 0)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(w->accepted, 0);
	assert_int_equal(w->b.connect_failed, 1);
	stop(&w->a);
	stop(&w->b);
}

/* A listener holding another secret (a stranger on a member's address):
 * the connector refuses the server's proof and never hands libraft a
 * stream. */
static void test_server_of_another_secret(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->other, 1, w->addr_a, true);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, RAFT_NOCONNECTION);
	assert_int_equal(w->accepted, 0);
	assert_int_equal(w->n_streams, 0);
	stop(&w->a);
	stop(&w->b);
}

/* A stranger sending garbage (here libraft's own preamble and an
 * AppendEntries header) is closed; libraft never hears of it. */
static void test_garbage_closed(void **state)
{
	struct world *w = *state;
	unsigned char junk[NARF_RAFT_HS_HELLO_SIZE + 32];

	memset(junk, 0xff, sizeof(junk));
	memset(junk, 0, 24);
	junk[0] = 1;
	junk[8] = 9;
	junk[16] = 16;
	start(&w->a, &w->keys, 1, w->addr_a, true);
	raw_open(0, w->addr_a);
	raw_send(0, junk, sizeof(junk));
	run_until(raw_closed_1);
	assert_int_equal(w->accepted, 0);
	assert_int_equal(w->a.refused, 1);
	assert_int_equal(w->raw_got[0], 0); /* not even a CHALLENGE */
	stop(&w->a);
}

/* A stranger that sends nothing is closed once the deadline passes. */
static void test_silence_closed(void **state)
{
	struct world *w = *state;
	uint64_t t0;

	start(&w->a, &w->keys, 1, w->addr_a, true);
	w->a.handshake_ms = 150;
	t0 = uv_now(&w->loop);
	raw_open(0, w->addr_a);
	run_until(raw_closed_1);
	uv_update_time(&w->loop);
	assert_true(uv_now(&w->loop) - t0 >= 140);
	assert_int_equal(w->accepted, 0);
	assert_int_equal(w->a.refused, 1);
	stop(&w->a);
}

static bool two_closed(struct world *w)
{
	return w->raw_eof >= 2;
}

/* Past max_pending handshakes, new connections are closed at once; close()
 * then closes the pending ones and still fires its callback. */
static void test_pending_cap(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->keys, 1, w->addr_a, true);
	w->a.max_pending = 2;
	for (unsigned i = 0; i < 4; i++)
		raw_open(i, w->addr_a);
	run_until(two_closed);
	assert_int_equal(w->a.refused, 2);
	assert_int_equal(w->a.n_in, 2);
	stop(&w->a);
	assert_int_equal(w->a.n_in, 0);
	while (w->raw_eof < 4)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(w->accepted, 0);
}

/* A client that proves itself and then sends libraft bytes without
 * waiting for OK (which narf's own client never does) loses none of
 * them: the server reads exactly the handshake's bytes. */
static void test_no_byte_taken(void **state)
{
	struct world *w = *state;
	unsigned char out[NARF_RAFT_HS_PROOF_SIZE + sizeof(PAYLOAD)];

	start(&w->a, &w->keys, 1, w->addr_a, true);
	assert_int_equal(narf_raft_hs_client_start(&w->raw_hs, 5, w->addr_b),
	                 0);
	raw_open(0, w->addr_a);
	raw_send(0, w->raw_hs.hello, sizeof(w->raw_hs.hello));
	while (w->raw_got[0] < NARF_RAFT_HS_CHALLENGE_SIZE)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(narf_raft_hs_client_challenge(
	                         &w->raw_hs, &w->keys, w->raw_buf[0],
	                         NARF_RAFT_HS_CHALLENGE_SIZE, NULL),
	                 0);
	memcpy(out, w->raw_hs.proof, NARF_RAFT_HS_PROOF_SIZE);
	memcpy(out + NARF_RAFT_HS_PROOF_SIZE, PAYLOAD, sizeof(PAYLOAD) - 1);
	raw_send(0, out, NARF_RAFT_HS_PROOF_SIZE + sizeof(PAYLOAD) - 1);
	run_until(payload_arrived);
	assert_int_equal(w->accepted, 1);
	assert_int_equal(w->accepted_id, 5);
	w->received[w->n_received] = '\0';
	assert_string_equal(w->received, PAYLOAD);
	/* and the client got exactly CHALLENGE then OK */
	while (w->raw_got[0] < NARF_RAFT_HS_CHALLENGE_SIZE + 1)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(w->raw_buf[0][NARF_RAFT_HS_CHALLENGE_SIZE],
	                 NARF_RAFT_HS_OK);
	close_streams(w);
	if (!uv_is_closing((uv_handle_t *)&w->raw[0]))
		uv_close((uv_handle_t *)&w->raw[0], NULL);
	stop(&w->a);
}

static void silent_closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void silent_listen_cb(uv_stream_t *server, int status)
{
	assert_int_equal(status, 0);
	assert_false(W->silent_accepted);
	uv_tcp_init(&W->loop, &W->silent_conn);
	assert_int_equal(uv_accept(server, (uv_stream_t *)&W->silent_conn), 0);
	W->silent_accepted = true;
}

/* A raw listener on addr_a that accepts and never answers. */
static void silent_listen(struct world *w)
{
	struct sockaddr_in sa;
	const char *colon = strrchr(w->addr_a, ':');

	uv_ip4_addr("127.0.0.1", atoi(colon + 1), &sa);
	uv_tcp_init(&w->loop, &w->silent);
	assert_int_equal(uv_tcp_bind(&w->silent, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(
	        uv_listen((uv_stream_t *)&w->silent, 4, silent_listen_cb), 0);
}

static void silent_close(struct world *w)
{
	if (w->silent_accepted)
		uv_close((uv_handle_t *)&w->silent_conn, silent_closed_cb);
	uv_close((uv_handle_t *)&w->silent, silent_closed_cb);
}

static bool silent_got_one(struct world *w)
{
	return w->silent_accepted;
}

/* close() with a connect mid-handshake: its callback fires with
 * RAFT_CANCELED, before the transport's close callback. */
static void test_close_cancels_connect(void **state)
{
	struct world *w = *state;

	silent_listen(w);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(silent_got_one);
	assert_int_equal(w->connect_cbs, 0);
	stop(&w->b);
	assert_int_equal(w->connect_cbs, 1);
	assert_int_equal(w->connect_status, RAFT_CANCELED);
	assert_true(w->connect_cb_order < w->close_cb_order);
	silent_close(w);
}

/* A server that never answers: the connect fails once the deadline
 * passes. */
static void test_connect_deadline(void **state)
{
	struct world *w = *state;

	silent_listen(w);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	w->b.handshake_ms = 150;
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, RAFT_NOCONNECTION);
	stop(&w->b);
	silent_close(w);
}

/* Nobody listening: RAFT_NOCONNECTION, later; a malformed address is
 * refused at once (libraft retries later). */
static void test_connect_refused(void **state)
{
	struct world *w = *state;

	start(&w->b, &w->keys, 2, w->addr_b, false);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, "nohost:1",
	                                    connect_cb),
	                 RAFT_NOCONNECTION);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, RAFT_NOCONNECTION);
	stop(&w->b);
}

/* A transport whose keys cannot prove the coordinator role is refused at
 * init, and one closed before it ever listened closes at once. */
static void test_init_and_idle_close(void **state)
{
	struct world *w = *state;
	struct narf_auth_keys none;

	memset(&none, 0, sizeof(none));
	assert_int_equal(narf_transport_init(&w->a, &w->loop, &none),
	                 NARF_EINVAL);
	assert_int_equal(narf_transport_init(&w->a, &w->loop, NULL),
	                 NARF_EINVAL);
	start(&w->a, &w->keys, 1, w->addr_a, false);
	stop(&w->a);
	assert_int_equal(w->closed, 1);
}

/* ---- TLS ------------------------------------------------------------------
 */

/* A CA and one certificate it signs for both ends (as a coordinator's:
 * server and client), made with the openssl command-line tool. */
static void make_certs(void)
{
	char cmd[1024];

	snprintf(cert_dir, sizeof(cert_dir), "/tmp/narf-tloop-XXXXXX");
	if (mkdtemp(cert_dir) == NULL) {
		cert_dir[0] = '\0';
		return;
	}
	snprintf(
	        cmd, sizeof(cmd),
	        "cd %s && { "
	        "openssl req -x509 -newkey ec -pkeyopt "
	        "ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
	        "-out ca.crt -days 2 -subj /CN=ca && "
	        "openssl req -newkey ec -pkeyopt "
	        "ec_paramgen_curve:prime256v1 -nodes -keyout m.key "
	        "-out m.csr -subj /CN=member && "
	        "printf 'extendedKeyUsage=serverAuth,clientAuth\\n' > m.ext && "
	        "openssl x509 -req -in m.csr -CA ca.crt -CAkey ca.key "
	        "-CAcreateserial -out m.crt -days 2 -extfile m.ext; "
	        "} >/dev/null 2>&1",
	        cert_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "openssl failed: the TLS tests skip\n");
		snprintf(cmd, sizeof(cmd), "rm -rf %s", cert_dir);
		(void)system(cmd);
		cert_dir[0] = '\0';
		return;
	}
	snprintf(ca_file, sizeof(ca_file), "%s/ca.crt", cert_dir);
	snprintf(cert_file, sizeof(cert_file), "%s/m.crt", cert_dir);
	snprintf(key_file, sizeof(key_file), "%s/m.key", cert_dir);
}

/* t takes TLS, with the world's contexts (made on first use). */
static void tls_on(struct narf_transport *t)
{
	struct world *w = W;
	struct narf_tls_config cfg = {.cert_file = cert_file,
	                              .key_file = key_file,
	                              .ca_file = ca_file,
	                              .auth = NARF_TLS_AUTH_YES};
	char errmsg[NARF_ERRMSG_SIZE];

	if (cert_dir[0] == '\0')
		skip();
	if (w->tls_server.ctx == NULL) {
		assert_int_equal(narf_tls_init(&w->tls_server, &cfg, errmsg),
		                 0);
		cfg.client = true;
		assert_int_equal(narf_tls_init(&w->tls_client, &cfg, errmsg),
		                 0);
	}
	t->tls_server = &w->tls_server;
	t->tls_client = &w->tls_client;
}

/* Two members with TLS: the connector's stream and the listener's are
 * the tunnel's, the proven id arrives, and libraft's first bytes too. */
static void test_tls_members_connect(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->keys, 1, w->addr_a, false);
	tls_on(&w->a);
	assert_int_equal(w->a.iface.listen(&w->a.iface, accept_cb), 0);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	tls_on(&w->b);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	assert_int_equal(w->connect_cbs, 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, 0);
	run_until(payload_arrived);
	assert_int_equal(w->accepted, 1);
	assert_int_equal(w->accepted_id, 2);
	w->received[w->n_received] = '\0';
	assert_string_equal(w->received, PAYLOAD);
	assert_int_equal(w->a.tls_failed, 0);
	close_streams(w);
	stop(&w->a);
	stop(&w->b);
}

/* A plain-text stranger on a TLS Raft port is refused in the TLS
 * handshake (at most an alert comes back, never a CHALLENGE), counted as
 * a TLS failure, and libraft never hears of it. */
static void test_tls_plain_client_closed(void **state)
{
	struct world *w = *state;
	unsigned char junk[NARF_RAFT_HS_HELLO_SIZE];

	memset(junk, 0x41, sizeof(junk));
	start(&w->a, &w->keys, 1, w->addr_a, false);
	tls_on(&w->a);
	assert_int_equal(w->a.iface.listen(&w->a.iface, accept_cb), 0);
	raw_open(0, w->addr_a);
	raw_send(0, junk, sizeof(junk));
	run_until(raw_closed_1);
	assert_int_equal(w->accepted, 0);
	assert_int_equal(w->a.refused, 1);
	assert_int_equal(w->a.tls_failed, 1);
	assert_true(w->raw_got[0] == 0 || w->raw_buf[0][0] == 0x15);
	stop(&w->a);
}

/* Connections in their TLS handshake count against max_pending. */
static void test_tls_pending_cap(void **state)
{
	struct world *w = *state;

	start(&w->a, &w->keys, 1, w->addr_a, false);
	tls_on(&w->a);
	assert_int_equal(w->a.iface.listen(&w->a.iface, accept_cb), 0);
	w->a.max_pending = 2;
	for (unsigned i = 0; i < 4; i++)
		raw_open(i, w->addr_a);
	run_until(two_closed);
	assert_int_equal(w->a.refused, 2);
	assert_int_equal(w->a.n_in, 2);
	stop(&w->a);
	assert_int_equal(w->a.n_in, 0);
	while (w->raw_eof < 4)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(w->accepted, 0);
}

/* close() with a connect still in its TLS handshake (the server never
 * answers the hello): the relay is cancelled and the callback fires with
 * RAFT_CANCELED, before the transport's close callback. */
static void test_tls_close_cancels_connect(void **state)
{
	struct world *w = *state;

	silent_listen(w);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	tls_on(&w->b);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(silent_got_one);
	assert_int_equal(w->connect_cbs, 0);
	stop(&w->b);
	assert_int_equal(w->connect_cbs, 1);
	assert_int_equal(w->connect_status, RAFT_CANCELED);
	assert_true(w->connect_cb_order < w->close_cb_order);
	silent_close(w);
}

static void wait_done_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Run the loop for ms milliseconds. */
static void run_for(unsigned ms)
{
	uv_timer_t timer;
	bool done = false;

	uv_timer_init(&W->loop, &timer);
	timer.data = &done;
	uv_timer_start(&timer, wait_done_cb, ms, 0);
	while (!done)
		uv_run(&W->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&W->loop, UV_RUN_NOWAIT);
}

static int late_status = 1;

static void late_written_cb(uv_write_t *req, int status)
{
	(void)req;
	late_status = status;
}

/* With TLS, once the member libraft dialed has gone away (its libraft
 * closed the stream, it closed), libraft's next write on the stream fails
 * at once (libraft then reconnects) instead of being taken by the relay
 * and lost. */
static void test_tls_dialed_stream_end_seen(void **state)
{
	struct world *w = *state;
	uv_write_t wr;
	uv_buf_t buf = uv_buf_init("x", 1);
	uv_stream_t *mine;

	start(&w->a, &w->keys, 1, w->addr_a, false);
	tls_on(&w->a);
	assert_int_equal(w->a.iface.listen(&w->a.iface, accept_cb), 0);
	start(&w->b, &w->keys, 2, w->addr_b, false);
	tls_on(&w->b);
	assert_int_equal(w->b.iface.connect(&w->b.iface, &w->req, 1, w->addr_a,
	                                    connect_cb),
	                 0);
	run_until(connect_done);
	assert_int_equal(w->connect_status, 0);
	run_until(payload_arrived);
	/* a goes away: its "libraft" closes the accepted stream. */
	assert_int_equal(w->n_streams, 2);
	mine = w->streams[1]; /* accept_cb ran first: [0] is a's */
	uv_close((uv_handle_t *)w->streams[0], (uv_close_cb)raft_free);
	stop(&w->a);
	run_for(300); /* the end reaches b through both relays */
	late_status = 1;
	assert_int_equal(uv_write(&wr, mine, &buf, 1, late_written_cb), 0);
	while (late_status == 1)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(late_status, UV_EPIPE);
	uv_close((uv_handle_t *)mine, (uv_close_cb)raft_free);
	w->n_streams = 0;
	stop(&w->b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_members_connect, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_client_of_another_secret,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_of_another_secret,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_garbage_closed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_silence_closed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_pending_cap, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_no_byte_taken, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_close_cancels_connect,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_connect_deadline, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_connect_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_init_and_idle_close, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_tls_members_connect, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_tls_plain_client_closed,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tls_pending_cap, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_tls_close_cancels_connect,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tls_dialed_stream_end_seen,
	                                        setup, teardown),
	};
	char cmd[128];
	int rv;

	signal(SIGPIPE, SIG_IGN); /* as the daemons do (tls_relay.h) */
	make_certs();
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	if (cert_dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", cert_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", cert_dir);
	}
	return rv;
}
