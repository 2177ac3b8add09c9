/*
 * TLS over a socket for the blocking tools (see tls_sock.h).
 *
 * Happy path: narf_tls_sock_new() puts an SSL on the connected socket;
 * the handshake, writes and reads are each one OpenSSL call, and when it
 * says WANT_READ or WANT_WRITE the step returns the poll() events to wait
 * for, so every wait stays the caller's (one deadline per exchange). The
 * SSL has partial writes on, so a send is retried from where it stopped,
 * as with send(2).
 *
 * Failure modes are sorted here once, from OpenSSL's first error and the
 * verify result, into the three codes tls_sock.h lists and a sentence
 * that says what to check. OpenSSL's error queue is per thread and is
 * emptied after every failure, so threads (cachecli status pings the
 * coordinators from threads) never see each other's errors.
 */
#include "tls_sock.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "clock.h"
#include "errors.h"

SSL *narf_tls_sock_new(SSL_CTX *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_set_connect_state(ssl);
	return ssl;
}

void narf_tls_sock_free(SSL *ssl)
{
	SSL_free(ssl);
}

/* Reasons that mean the other end does not speak TLS: what a Redis or a
 * JSON-lines port answers to a ClientHello reads as a bad record header. */
static int plain_text_reason(int reason)
{
	switch (reason) {
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
		return 1;
	default:
		return 0;
	}
}

/* Alerts a server sends when it will not take our certificate (TLS 1.3
 * sends them after our handshake has finished: the first read gets them). */
static int client_cert_alert(int reason)
{
	switch (reason) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return 1;
	default:
		return 0;
	}
}

/*
 * After an OpenSSL call rv on ssl failed: 0 with *events to wait for, or
 * an error with why. handshake: it failed before the handshake was done
 * (a TCP end then means the server would not talk TLS with us).
 */
static int classify(SSL *ssl, int rv, short *events, char *why, size_t whylen)
{
	int err = SSL_get_error(ssl, rv), code;
	unsigned long e = ERR_peek_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	long vr = SSL_get_verify_result(ssl);
	int handshake = !SSL_is_init_finished(ssl), r = ERR_GET_REASON(e);

	*events = 0;
	if (err == SSL_ERROR_WANT_READ) {
		*events = POLLIN;
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		*events = POLLOUT;
		return 0;
	}
	if (err == SSL_ERROR_ZERO_RETURN) {
		snprintf(why, whylen, "the server closed the TLS connection");
		code = NARF_ECLOSED;
	} else if (vr != X509_V_OK) {
		snprintf(why, whylen, "server certificate: %s",
		         X509_verify_cert_error_string(vr));
		code = NARF_EAUTH;
	} else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	           client_cert_alert(r)) {
		snprintf(why, whylen,
		         "the server refused our client certificate (%s)",
		         reason != NULL ? reason : "alert");
		code = NARF_EAUTH;
	} else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	           plain_text_reason(r)) {
		snprintf(why, whylen,
		         "plain-text server on a TLS connection? (%s)",
		         reason != NULL ? reason : "not TLS");
		code = NARF_EPROTO;
	} else if (err == SSL_ERROR_SYSCALL ||
	           (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	            r == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		snprintf(why, whylen, "%s",
		         handshake ? "the server closed the connection during "
		                     "the TLS handshake (a plain-text server, "
		                     "or it refused our certificate?)"
		                   : "the server closed the connection");
		code = NARF_ECLOSED;
	} else {
		snprintf(why, whylen, "TLS%s: %s",
		         handshake ? " handshake" : "",
		         reason != NULL ? reason : "error");
		code = NARF_EPROTO;
	}
	ERR_clear_error();
	return code;
}

int narf_tls_sock_handshake(SSL *ssl, short *events, char *why, size_t whylen)
{
	int rv;

	ERR_clear_error();
	rv = SSL_connect(ssl);
	if (rv == 1) {
		*events = 0;
		return 0;
	}
	return classify(ssl, rv, events, why, whylen);
}

int narf_tls_sock_send(SSL *ssl,
                       const char *data,
                       size_t n,
                       size_t *sent,
                       short *events,
                       char *why,
                       size_t whylen)
{
	int rv;

	*sent = 0;
	*events = 0;
	ERR_clear_error();
	rv = SSL_write(ssl, data, n > INT_MAX ? INT_MAX : (int)n);
	if (rv > 0) {
		*sent = (size_t)rv;
		return 0;
	}
	return classify(ssl, rv, events, why, whylen);
}

int narf_tls_sock_recv(SSL *ssl,
                       char *buf,
                       size_t cap,
                       size_t *got,
                       short *events,
                       char *why,
                       size_t whylen)
{
	int rv;

	*got = 0;
	*events = 0;
	ERR_clear_error();
	rv = SSL_read(ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
	if (rv > 0) {
		*got = (size_t)rv;
		return 0;
	}
	return classify(ssl, rv, events, why, whylen);
}

int narf_tls_sock_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int64_t left = deadline - (int64_t)narf_clock_ms();
		int rc;

		if (left <= 0)
			return NARF_ETIMEOUT;
		rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc == 0)
			return NARF_ETIMEOUT;
		if (errno != EINTR)
			return NARF_EIO;
	}
}

int narf_tls_sock_connect(SSL_CTX *ctx,
                          int fd,
                          int64_t deadline,
                          SSL **out,
                          char *why,
                          size_t whylen)
{
	SSL *ssl = narf_tls_sock_new(ctx, fd);
	short events = 0;
	int rv;

	*out = NULL;
	if (ssl == NULL) {
		snprintf(why, whylen, "TLS: out of memory");
		return NARF_ENOMEM;
	}
	for (;;) {
		rv = narf_tls_sock_handshake(ssl, &events, why, whylen);
		if (rv != 0 || events == 0)
			break;
		rv = narf_tls_sock_wait(fd, events, deadline);
		if (rv != 0) {
			snprintf(why, whylen, "%s",
			         rv == NARF_ETIMEOUT
			                 ? "no TLS handshake before the "
			                   "deadline (a plain-text server?)"
			                 : "poll failed");
			break;
		}
	}
	if (rv != 0) {
		SSL_free(ssl);
		return rv;
	}
	*out = ssl;
	return 0;
}
