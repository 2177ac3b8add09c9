#include "frame.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void narf_frame_decoder_init(struct narf_frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
}

void narf_frame_decoder_close(struct narf_frame_decoder *d)
{
	if (d == NULL)
		return;
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = d->scanned = 0;
}

int narf_frame_feed(struct narf_frame_decoder *d, const char *data, size_t n)
{
	if (d->failed)
		return d->failed;
	if (n == 0)
		return 0;
	if (d->len + n > d->cap) {
		/* Callers drain whole lines after every feed, so the buffer
		 * holds at most one partial line (<= max) plus one read. */
		size_t want = d->cap ? d->cap : 4096;
		char *p;

		while (want < d->len + n)
			want *= 2;
		p = realloc(d->buf, want);
		if (p == NULL)
			return NARF_ENOMEM;
		d->buf = p;
		d->cap = want;
	}
	memcpy(d->buf + d->len, data, n);
	d->len += n;
	/* Reject an overlong partial line now rather than when its newline
	 * (maybe never) arrives. */
	if (memchr(d->buf + d->scanned, '\n', d->len - d->scanned) == NULL &&
	    d->len > d->max) {
		d->failed = NARF_ETOOLARGE;
		return NARF_ETOOLARGE;
	}
	return 0;
}

int narf_frame_check_depth(const char *text, size_t len, int max)
{
	int depth = 0, in_string = 0, escaped = 0;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return NARF_ETOODEEP;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}

static void set_errmsg(char *errmsg, const char *fmt, const char *detail)
{
	if (errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, fmt, detail);
}

int narf_frame_next(struct narf_frame_decoder *d, json_t **out, char *errmsg)
{
	*out = NULL;
	for (;;) {
		char *nl;
		size_t line_len, text_len;
		json_t *msg;
		json_error_t jerr;

		if (d->failed) {
			set_errmsg(errmsg, "%s", "stream already failed");
			return d->failed;
		}
		if (d->scanned == d->len)
			return 0; /* nothing new (buf may still be NULL) */
		nl = memchr(d->buf + d->scanned, '\n', d->len - d->scanned);
		if (nl == NULL) {
			d->scanned = d->len;
			return 0;
		}
		line_len = (size_t)(nl - d->buf);
		/* Trailing whitespace (a CR from CRLF) is not the message's;
		 * a blank line is skipped. */
		text_len = line_len;
		while (text_len > 0 &&
		       isspace((unsigned char)d->buf[text_len - 1]))
			text_len--;
		if (text_len > d->max) {
			d->failed = NARF_ETOOLARGE;
			if (errmsg != NULL)
				snprintf(errmsg, NARF_ERRMSG_SIZE,
				         "line longer than %zu bytes", d->max);
			return NARF_ETOOLARGE;
		}
		msg = NULL;
		if (text_len > 0) {
			if (narf_frame_check_depth(d->buf, line_len,
			                           NARF_FRAME_MAX_DEPTH) != 0) {
				d->failed = NARF_ETOODEEP;
				set_errmsg(errmsg, "%s", "nesting too deep");
				return NARF_ETOODEEP;
			}
			msg = json_loadb(d->buf, text_len,
			                 JSON_REJECT_DUPLICATES, &jerr);
			if (msg == NULL || !json_is_object(msg)) {
				d->failed = NARF_EPROTO;
				set_errmsg(errmsg, "%s",
				           msg ? "message is not a JSON object"
				               : jerr.text);
				json_decref(msg);
				return NARF_EPROTO;
			}
		}
		/* Consume the line and its newline. */
		memmove(d->buf, nl + 1, d->len - line_len - 1);
		d->len -= line_len + 1;
		d->scanned = 0;
		if (msg != NULL) {
			*out = msg;
			return 0;
		}
	}
}

char *narf_frame_encode(const json_t *msg, size_t *len)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t n;
	char *line;

	if (text == NULL)
		return NULL;
	n = strlen(text);
	line = realloc(text, n + 2);
	if (line == NULL) {
		free(text);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}
