/*
 * A minimal HTTP/1.x request reader and response writer, for the /metrics
 * endpoint every process can serve (--metrics ADDR).
 *
 * The parsing itself is Debian's libhttp-parser (nodejs/http-parser 2.9);
 * this module drives it for one request per connection and turns what it
 * finds into the status the server should answer: the request head (request
 * line and headers) must fit in a fixed limit (431 past it), parse cleanly
 * (400), name HTTP/1.x (505), and use GET or HEAD (405). The body of a
 * request, if any, is never read: the answer goes out once the head is
 * complete and the connection closes after it.
 *
 * Loop-free: the server (httpd.h) feeds it bytes as they arrive, and unit
 * tests feed it truncated, oversized and malformed heads directly.
 */
#ifndef NARF_HTTP_H
#define NARF_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#include "buf.h"

#define NARF_HTTP_HEAD_MAX 8192 /* request line and headers, bytes */
#define NARF_HTTP_PATH_MAX 1024 /* longer request targets get 414 */

enum narf_http_state {
	NARF_HTTP_INCOMPLETE, /* feed more bytes */
	NARF_HTTP_DONE,       /* head complete: method, path are set */
	NARF_HTTP_ERROR,      /* answer status and close */
};

enum narf_http_method {
	NARF_HTTP_GET,
	NARF_HTTP_HEAD,
	NARF_HTTP_OTHER,
};

struct narf_http_req {
	http_parser parser;
	size_t head_max; /* limit on the head, bytes */
	size_t seen;     /* head bytes fed so far */
	enum narf_http_state state;
	int status; /* with NARF_HTTP_ERROR: the status to answer */
	enum narf_http_method method;
	char url[NARF_HTTP_PATH_MAX + 1]; /* the raw request target */
	size_t url_len;
	bool url_too_long;
	char path[NARF_HTTP_PATH_MAX + 1]; /* its path, NUL-terminated */
};

/* Start reading a request whose head may be at most head_max bytes. */
void narf_http_req_init(struct narf_http_req *r, size_t head_max);

/*
 * Feed the next bytes of the connection. Returns the new state; once it is
 * DONE or ERROR, further calls return it again and ignore their input.
 * DONE: r->method and r->path are set (any method: the caller answers 405
 * for those it does not serve, see narf_http_req_allowed()). ERROR:
 * r->status is 400 (malformed), 414 (request target over
 * NARF_HTTP_PATH_MAX), 431 (head over head_max) or 505 (not HTTP/1.x).
 */
enum narf_http_state narf_http_req_feed(struct narf_http_req *r,
                                        const char *data,
                                        size_t len);

/* The standard reason phrase of a status ("Not Found"), "Unknown" else. */
const char *narf_http_reason(int status);

/*
 * Append a whole response to out: status line, Content-Type (NULL:
 * text/plain), Content-Length, "Connection: close", an Allow header with
 * 405, then the body unless head_only (a HEAD request). Returns 0 or
 * NARF_ENOMEM.
 */
int narf_http_response(struct narf_buf *out,
                       int status,
                       const char *content_type,
                       const char *body,
                       size_t len,
                       bool head_only);

#endif /* NARF_HTTP_H */
