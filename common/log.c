#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"

static const char *log_process = "narf";
static unsigned long long log_id;
static enum narf_log_level log_level = NARF_LOG_INFO;

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

int narf_log_enabled(enum narf_log_level level)
{
	return level >= log_level;
}

void narf_log(enum narf_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int w;
	va_list ap;

	if (!narf_log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_id != 0)
		w = snprintf(line + n, sizeof(line) - n,
		             ".%03dZ %-5s %s[%llu] ", (int)(tv.tv_usec / 1000),
		             level_names[level], log_process, log_id);
	else
		w = snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s %s ",
		             (int)(tv.tv_usec / 1000), level_names[level],
		             log_process);
	n += (size_t)w;
	va_start(ap, fmt);
	w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* A message longer than the buffer is cut, never split across lines. */
	n = (w < 0) ? n
	            : (n + (size_t)w < sizeof(line) - 1 ? n + (size_t)w
	                                                : sizeof(line) - 2);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report a failed log write. */
	}
}
