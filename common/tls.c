/*
 * TLS glue for every port (tls.h): contexts built from the PEM files,
 * and per-connection SSL objects over two in-memory BIOs.
 *
 * Happy path of a connection: the server feeds ciphertext in; the
 * handshake runs on it and leaves its answers in the write BIO, which the
 * server writes out; once it is done every read callback decrypts all the
 * whole records it got into the query buffer, and every flush encrypts
 * the whole reply buffer with one SSL_write. Failure modes: a handshake
 * that fails (a plain-text client, no or a bad client certificate, a
 * client that does not trust us) and a bad record give NARF_EPROTO with
 * OpenSSL's reason; the server logs it and closes only that connection.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/errors.h"

/* TLS 1.2 suites: ECDHE key exchange, AEAD only (TLS 1.3 keeps
 * OpenSSL's default suites, all of them (EC)DHE). */
#define NARF_TLS12_CIPHERS                                           \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Resumed sessions must come from this server's contexts. */
#define NARF_TLS_SID_CTX "narf"

struct narf_tls_conn {
	SSL *ssl;            /* owned; owns rbio and wbio */
	BIO *rbio;           /* borrowed from ssl: ciphertext fed in */
	BIO *wbio;           /* borrowed from ssl: appends to out */
	struct narf_buf out; /* ciphertext to write */
	bool ready;          /* handshake finished */
};

/*
 * The write side is a BIO of our own that appends to the connection's
 * `out`, not a BIO_s_mem: a memory BIO cannot drop the part of its data
 * the kernel took without copying the rest, and its BIO_reset zeroes its
 * whole buffer, so every flush would cost a pass over a buffer as large
 * as the largest reply. With `out` the server writes the ciphertext
 * straight from where SSL_write put it, and handles a short write as it
 * does for plain text. The method is made once and kept for the life of
 * the process (BIOs of closing connections may outlive any context).
 */
static BIO_METHOD *out_method; /* owned by this file, never freed */

static int out_write_cb(BIO *b, const char *data, int n)
{
	struct narf_buf *out = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	return narf_buf_append(out, data, (size_t)n) == 0 ? n : -1;
}

static long out_ctrl_cb(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	/* The handshake flushes after each flight: nothing to do. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int out_method_make(void)
{
	if (out_method != NULL)
		return 0;
	out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                          "narf_tls_out");
	if (out_method == NULL ||
	    BIO_meth_set_write(out_method, out_write_cb) != 1 ||
	    BIO_meth_set_ctrl(out_method, out_ctrl_cb) != 1) {
		BIO_meth_free(out_method);
		out_method = NULL;
		ERR_clear_error();
		return NARF_ENOMEM;
	}
	return 0;
}

/* OpenSSL's reason for the last failure (and the verify result, which
 * says more than "certificate verify failed"), then the error queue
 * emptied: it is per thread and must not leak into the next connection. */
static void ssl_why(SSL *ssl, char *why, size_t whylen)
{
	unsigned long e = ERR_peek_error(); /* the first: the cause */
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (vr != X509_V_OK)
		snprintf(why, whylen, "%s certificate: %s",
		         SSL_is_server(ssl) ? "client" : "server",
		         X509_verify_cert_error_string(vr));
	else if (reason != NULL)
		snprintf(why, whylen, "%s", reason);
	else
		snprintf(why, whylen, "TLS error");
	ERR_clear_error();
}

/* Never prompt for a passphrase on the terminal: a protected key fails. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* The file can be opened (for a clearer error than OpenSSL's). */
static int readable(const char *flag, const char *path, char *errmsg)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s %s: %s", flag, path,
		         strerror(errno));
		return NARF_EINVAL;
	}
	fclose(f);
	return 0;
}

/* A client context's trust: the CA file, or the system's store, or
 * nothing (insecure); then *out = ctx, or ctx freed on an error. */
static int client_verify(SSL_CTX *ctx,
                         const struct narf_tls_config *cfg,
                         const char *ca_flag,
                         SSL_CTX **out,
                         char *errmsg)
{
	char why[160];
	int rv;

	if (cfg->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		*out = ctx;
		return 0;
	}
	rv = cfg->ca_file != NULL
	             ? SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)
	             : SSL_CTX_set_default_verify_paths(ctx);
	if (rv != 1) {
		ssl_why(NULL, why, sizeof(why));
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "%s %s: no PEM certificate (%s)", ca_flag,
		         cfg->ca_file != NULL ? cfg->ca_file : "(system)", why);
		SSL_CTX_free(ctx);
		return NARF_EINVAL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	*out = ctx;
	return 0;
}

/* The flag that names a file, for errors. */
static const char *flag_of(const char *set, const char *dflt)
{
	return set != NULL ? set : dflt;
}

/* A new context from cfg's files into *out (one reference, the caller's),
 * or an error naming the file. */
static int ctx_build(const struct narf_tls_config *cfg,
                     SSL_CTX **out,
                     char *errmsg)
{
	const char *cert_flag = flag_of(cfg->cert_flag, "--tls-cert-file");
	const char *key_flag = flag_of(cfg->key_flag, "--tls-key-file");
	const char *ca_flag = flag_of(cfg->ca_flag, "--tls-ca-cert-file");
	SSL_CTX *ctx;
	char why[160];
	int mode = SSL_VERIFY_NONE;

	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL) ||
	    (!cfg->client && cfg->cert_file == NULL)) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s and %s go together",
		         cert_flag, key_flag);
		return NARF_EINVAL;
	}
	if ((cfg->cert_file != NULL &&
	     (readable(cert_flag, cfg->cert_file, errmsg) != 0 ||
	      readable(key_flag, cfg->key_file, errmsg) != 0)) ||
	    (cfg->ca_file != NULL &&
	     readable(ca_flag, cfg->ca_file, errmsg) != 0))
		return NARF_EINVAL;
	ctx = SSL_CTX_new(cfg->client ? TLS_client_method()
	                              : TLS_server_method());
	if (ctx == NULL) {
		ERR_clear_error();
		snprintf(errmsg, NARF_ERRMSG_SIZE, "TLS: out of memory");
		return NARF_ENOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
	                                 SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_default_passwd_cb(ctx, no_password_cb);
	if (SSL_CTX_set_cipher_list(ctx, NARF_TLS12_CIPHERS) != 1 ||
	    (!cfg->client &&
	     SSL_CTX_set_session_id_context(
	             ctx, (const unsigned char *)NARF_TLS_SID_CTX,
	             sizeof(NARF_TLS_SID_CTX) - 1) != 1)) {
		ssl_why(NULL, why, sizeof(why));
		snprintf(errmsg, NARF_ERRMSG_SIZE, "TLS settings: %s", why);
		goto err_after_ctx;
	}
	if (cfg->cert_file != NULL &&
	    SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
		ssl_why(NULL, why, sizeof(why));
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "%s %s: not a PEM certificate (%s)", cert_flag,
		         cfg->cert_file, why);
		goto err_after_ctx;
	}
	if (cfg->key_file != NULL &&
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) !=
	            1) {
		unsigned long e = ERR_peek_last_error();

		/* (the last error is the mismatch, when it is one) */
		ssl_why(NULL, why, sizeof(why));
		if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "%s %s does not match %s %s", key_flag,
			         cfg->key_file, cert_flag, cfg->cert_file);
		else
			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "%s %s: not an unencrypted PEM "
			         "private key (%s)",
			         key_flag, cfg->key_file, why);
		goto err_after_ctx;
	}
	if (cfg->key_file != NULL && SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s %s does not match %s %s",
		         key_flag, cfg->key_file, cert_flag, cfg->cert_file);
		goto err_after_ctx;
	}
	if (cfg->client)
		return client_verify(ctx, cfg, ca_flag, out, errmsg);
	if (cfg->ca_file != NULL) {
		STACK_OF(X509_NAME) * names;

		if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) !=
		            1 ||
		    (names = SSL_load_client_CA_file(cfg->ca_file)) == NULL) {
			ssl_why(NULL, why, sizeof(why));
			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "%s %s: no PEM certificate (%s)", ca_flag,
			         cfg->ca_file, why);
			goto err_after_ctx;
		}
		/* Named in the CertificateRequest, so a client with several
		 * certificates picks the right one. */
		SSL_CTX_set_client_CA_list(ctx, names);
	} else if (cfg->auth != NARF_TLS_AUTH_NO) {
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "--tls-auth-clients %s needs %s (the "
		         "CA that signs client certificates)",
		         cfg->auth == NARF_TLS_AUTH_YES ? "yes" : "optional",
		         ca_flag);
		goto err_after_ctx;
	}
	if (cfg->auth == NARF_TLS_AUTH_YES)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (cfg->auth == NARF_TLS_AUTH_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	SSL_CTX_set_verify(ctx, mode, NULL);
	*out = ctx;
	return 0;

err_after_ctx:
	SSL_CTX_free(ctx);
	return NARF_EINVAL;
}

int narf_tls_init(struct narf_tls *t,
                  const struct narf_tls_config *cfg,
                  char *errmsg)
{
	memset(t, 0, sizeof(*t));
	t->cfg = *cfg;
	if (out_method_make() != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "TLS: out of memory");
		return NARF_ENOMEM;
	}
	return ctx_build(&t->cfg, &t->ctx, errmsg);
}

int narf_tls_reload(struct narf_tls *t, char *errmsg)
{
	SSL_CTX *ctx;
	int rv = ctx_build(&t->cfg, &ctx, errmsg);

	if (rv != 0)
		return rv;
	/* Connections made with the old context hold references to it. */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	t->reloads++;
	return 0;
}

void narf_tls_close(struct narf_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	t->ctx = NULL;
}

void narf_tls_describe(const struct narf_tls *t, char *out, size_t size)
{
	X509 *x = t->ctx != NULL ? SSL_CTX_get0_certificate(t->ctx) : NULL;
	char subject[128] = "?", expires[64] = "?";
	BIO *b;

	if (x != NULL) {
		X509_NAME_oneline(X509_get_subject_name(x), subject,
		                  sizeof(subject));
		b = BIO_new(BIO_s_mem());
		if (b != NULL &&
		    ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
			int n = BIO_read(b, expires, sizeof(expires) - 1);

			expires[n > 0 ? n : 0] = '\0';
		}
		BIO_free(b);
	}
	snprintf(out, size, "subject %s, expires %s", subject, expires);
	ERR_clear_error();
}

struct narf_tls_conn *narf_tls_conn_create(struct narf_tls *t)
{
	struct narf_tls_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ssl = SSL_new(t->ctx); /* takes a reference to the context */
	if (c->ssl == NULL)
		goto err_after_alloc;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(out_method);
	if (c->rbio == NULL || c->wbio == NULL)
		goto err_after_bios;
	/* An empty read BIO means "more input later", not end of file. */
	BIO_set_mem_eof_return(c->rbio, -1);
	BIO_set_data(c->wbio, &c->out);
	BIO_set_init(c->wbio, 1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio); /* ssl owns both now */
	if (t->cfg.client)
		SSL_set_connect_state(c->ssl);
	else
		SSL_set_accept_state(c->ssl);
	return c;

err_after_bios:
	BIO_free(c->rbio);
	BIO_free(c->wbio);
	SSL_free(c->ssl);
err_after_alloc:
	ERR_clear_error();
	free(c);
	return NULL;
}

void narf_tls_conn_destroy(struct narf_tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	narf_buf_close(&c->out);
	free(c);
}

bool narf_tls_conn_ready(const struct narf_tls_conn *c)
{
	return c->ready;
}

int narf_tls_conn_feed(struct narf_tls_conn *c, const char *data, size_t n)
{
	/* A memory BIO takes it all or fails (out of memory). */
	if (n > 0 && BIO_write(c->rbio, data, (int)n) != (int)n) {
		ERR_clear_error();
		return NARF_ENOMEM;
	}
	return 0;
}

int narf_tls_conn_handshake(struct narf_tls_conn *c,
                            bool *done,
                            char *why,
                            size_t whylen)
{
	int rv, err;

	*done = c->ready;
	if (c->ready)
		return 0;
	rv = SSL_do_handshake(c->ssl);
	if (rv == 1) {
		c->ready = *done = true;
		return 0;
	}
	err = SSL_get_error(c->ssl, rv);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	ssl_why(c->ssl, why, whylen);
	return NARF_EPROTO;
}

int narf_tls_conn_decrypt(struct narf_tls_conn *c,
                          struct narf_buf *in,
                          size_t chunk,
                          bool *eof,
                          char *why,
                          size_t whylen)
{
	*eof = false;
	for (;;) {
		size_t room;
		int n, err;

		if (narf_buf_reserve(in, chunk) != 0)
			return NARF_ENOMEM;
		room = in->cap - in->len;
		if (room > INT32_MAX)
			room = INT32_MAX;
		n = SSL_read(c->ssl, in->data + in->len, (int)room);
		if (n > 0) {
			in->len += (size_t)n;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return 0;
		if (err == SSL_ERROR_ZERO_RETURN) {
			*eof = true;
			return 0;
		}
		ssl_why(c->ssl, why, whylen);
		return NARF_EPROTO;
	}
}

int narf_tls_conn_encrypt(struct narf_tls_conn *c, const char *data, size_t n)
{
	/* No SSL_MODE_ENABLE_PARTIAL_WRITE and a memory BIO that never
	 * fills: SSL_write takes it all, in records of 16 KiB. */
	while (n > 0) {
		int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
		int rv = SSL_write(c->ssl, data, chunk);

		if (rv <= 0) {
			ERR_clear_error();
			return NARF_EPROTO;
		}
		data += rv;
		n -= (size_t)rv;
	}
	return 0;
}

struct narf_buf *narf_tls_conn_out(struct narf_tls_conn *c)
{
	return &c->out;
}

void narf_tls_conn_close_notify(struct narf_tls_conn *c)
{
	if (c->ready)
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}
