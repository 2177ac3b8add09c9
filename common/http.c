/*
 * HTTP/1.x request heads through libhttp-parser: see http.h.
 *
 * The parser is fed at most what is left of the head limit, so it can never
 * read past it; once the headers are complete it is paused, so whatever
 * follows (a body, a pipelined request) is left alone.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

#include "errors.h"

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct narf_http_req *r = p->data;

	/* The target may come in several pieces, one per feed. */
	if (r->url_len + len > NARF_HTTP_PATH_MAX) {
		r->url_too_long = true;
		return 0;
	}
	memcpy(r->url + r->url_len, at, len);
	r->url_len += len;
	r->url[r->url_len] = '\0';
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct narf_http_req *r = p->data;

	r->state = NARF_HTTP_DONE;
	/* Stop here: the rest of the input is not ours to read. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
        .on_url = on_url,
        .on_headers_complete = on_headers_complete,
};

void narf_http_req_init(struct narf_http_req *r, size_t head_max)
{
	memset(r, 0, sizeof(*r));
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	r->head_max = head_max;
	r->state = NARF_HTTP_INCOMPLETE;
}

static enum narf_http_state fail(struct narf_http_req *r, int status)
{
	r->state = NARF_HTTP_ERROR;
	r->status = status;
	return r->state;
}

/* The head is complete: check what the request asks for. */
static enum narf_http_state finish(struct narf_http_req *r)
{
	struct http_parser_url u;

	if (r->url_too_long)
		return fail(r, 414);
	if (r->parser.http_major != 1)
		return fail(r, 505);
	switch (r->parser.method) {
	case HTTP_GET:
		r->method = NARF_HTTP_GET;
		break;
	case HTTP_HEAD:
		r->method = NARF_HTTP_HEAD;
		break;
	default:
		r->method = NARF_HTTP_OTHER;
	}
	/* origin-form "/metrics?x" or absolute-form "http://h/metrics" */
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->url, r->url_len,
	                          r->parser.method == HTTP_CONNECT, &u) != 0)
		return fail(r, 400);
	if (u.field_set & (1 << UF_PATH))
		snprintf(r->path, sizeof(r->path), "%.*s",
		         (int)u.field_data[UF_PATH].len,
		         r->url + u.field_data[UF_PATH].off);
	return r->state;
}

enum narf_http_state narf_http_req_feed(struct narf_http_req *r,
                                        const char *data,
                                        size_t len)
{
	size_t room, take, used;
	enum http_errno err;

	if (r->state != NARF_HTTP_INCOMPLETE)
		return r->state;
	room = r->head_max - r->seen;
	take = len < room ? len : room;
	used = http_parser_execute(&r->parser, &settings, data, take);
	err = HTTP_PARSER_ERRNO(&r->parser);
	if (r->state == NARF_HTTP_DONE)
		return finish(r);
	if (err != HPE_OK || used != take)
		return fail(r, err == HPE_HEADER_OVERFLOW ? 431 : 400);
	r->seen += take;
	/* A head that has used its whole allowance without ending. */
	if (r->seen >= r->head_max)
		return fail(r, 431);
	return r->state;
}

const char *narf_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

int narf_http_response(struct narf_buf *out,
                       int status,
                       const char *content_type,
                       const char *body,
                       size_t len,
                       bool head_only)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head),
	             "HTTP/1.1 %d %s\r\n"
	             "Content-Type: %s\r\n"
	             "Content-Length: %zu\r\n"
	             "%s"
	             "Connection: close\r\n"
	             "\r\n",
	             status, narf_http_reason(status),
	             content_type ? content_type : "text/plain; charset=utf-8",
	             len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return NARF_EINVAL;
	if (narf_buf_append(out, head, (size_t)n) != 0)
		return NARF_ENOMEM;
	if (!head_only && len > 0 && narf_buf_append(out, body, len) != 0)
		return NARF_ENOMEM;
	return 0;
}
