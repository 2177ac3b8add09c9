#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "flags.h"

static const char *log_process = "narf";
static unsigned long long log_id;
static enum narf_log_level log_level = NARF_LOG_INFO;
static enum narf_log_format log_format = NARF_LOG_TEXT;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_words[] = {"debug", "info", "warn", "error"};

void narf_log_init(const char *process, enum narf_log_level level)
{
	log_process = process;
	log_level = level;
}

void narf_log_set_id(unsigned long long id)
{
	log_id = id;
}

void narf_log_set_level(enum narf_log_level level)
{
	log_level = level;
}

int narf_log_parse_level(const char *text, enum narf_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(text, level_words[i]) == 0) {
			*out = (enum narf_log_level)i;
			return 0;
		}
	}
	return NARF_EINVAL;
}

int narf_log_parse_format(const char *text, enum narf_log_format *out)
{
	if (strcmp(text, "text") == 0)
		*out = NARF_LOG_TEXT;
	else if (strcmp(text, "json") == 0)
		*out = NARF_LOG_JSON;
	else
		return NARF_EINVAL;
	return 0;
}

void narf_log_set_format(enum narf_log_format format)
{
	log_format = format;
}

void narf_log_flag_level(const char *prog, const char *text)
{
	enum narf_log_level level;

	if (narf_log_parse_level(text, &level) != 0)
		narf_usage_error(prog,
		                 "--log-level '%s': expected debug, info, "
		                 "warn or error",
		                 text);
	log_level = level;
}

void narf_log_flag_format(const char *prog, const char *text)
{
	enum narf_log_format format;

	if (narf_log_parse_format(text, &format) != 0)
		narf_usage_error(
		        prog, "--log-format '%s': expected text or json", text);
	log_format = format;
}

int narf_log_enabled(enum narf_log_level level)
{
	return level >= log_level;
}

/* Append s as the inside of a JSON string to line[*n..size - reserve),
 * stopping before an escape that would not fit. */
static void json_escape(char *line,
                        size_t *n,
                        size_t size,
                        size_t reserve,
                        const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t end = size - reserve;

	while (*p != '\0') {
		char esc[8];
		size_t len = 0, take = 1;
		unsigned c = *p;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			len = 2;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
			len = 2;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			len = 6;
		} else if (c < 0x80) {
			esc[0] = (char)c;
			len = 1;
		} else {
			/* A whole UTF-8 sequence is copied; a broken one
			 * becomes U+FFFD, one byte at a time. */
			size_t want = c >= 0xc2 && c <= 0xdf   ? 2
			              : c >= 0xe0 && c <= 0xef ? 3
			              : c >= 0xf0 && c <= 0xf4 ? 4
			                                       : 0;
			size_t i = 1;

			while (i < want && (p[i] & 0xc0) == 0x80)
				i++;
			if (want != 0 && i == want) {
				memcpy(esc, p, want);
				len = take = want;
			} else {
				memcpy(esc, "\\ufffd", 6);
				len = 6;
			}
		}
		if (*n + len > end)
			return;
		memcpy(line + *n, esc, len);
		*n += len;
		p += take;
	}
}

void narf_log(enum narf_log_level level, const char *fmt, ...)
{
	char msg[1024];
	char line[8192];
	char ts[40];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int w;
	va_list ap;

	if (!narf_log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
	/* A message longer than the buffer is cut, never split across
	 * lines. */
	va_start(ap, fmt);
	w = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w < 0)
		msg[0] = '\0';
	if (log_format == NARF_LOG_JSON) {
		n = (size_t)snprintf(line, sizeof(line),
		                     "{\"ts\":\"%s\",\"level\":\"%s\","
		                     "\"process\":\"",
		                     ts, level_words[level]);
		json_escape(line, &n, sizeof(line), 64, log_process);
		if (log_id != 0)
			n += (size_t)snprintf(line + n, sizeof(line) - n,
			                      "\",\"node\":%llu,\"msg\":\"",
			                      log_id);
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n,
			                      "\",\"node\":null,\"msg\":\"");
		json_escape(line, &n, sizeof(line), 4, msg);
		memcpy(line + n, "\"}\n", 3);
		n += 3;
	} else {
		/* Newlines inside a message would split the event. */
		for (char *p = msg; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		if (log_id != 0)
			w = snprintf(
			        line, sizeof(line), "%s %-5s %s[%llu] %s\n", ts,
			        level_names[level], log_process, log_id, msg);
		else
			w = snprintf(line, sizeof(line), "%s %-5s %s %s\n", ts,
			             level_names[level], log_process, msg);
		n = w < 0 ? 0 : (size_t)w;
	}
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report a failed log write. */
	}
}
