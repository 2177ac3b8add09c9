/*
 * Logging: one line per event, to stderr.
 *
 *   2026-11-23T09:40:00.123Z INFO  coord[1] became leader term=3
 *
 * Each line carries UTC time with milliseconds, a level, the process name and
 * its id (coordinator id or data node id, once known). Lines are written with
 * a single write(2) so concurrent processes sharing a log file do not
 * interleave mid-line.
 *
 * With the JSON format (--log-format json) each line is one JSON object
 * with the same facts, for log shippers:
 *
 *   {"ts":"2026-11-23T09:40:00.123Z","level":"info","process":"coord",
 *    "node":1,"msg":"became leader term=3"}
 *
 * "node" is null until the id is known. The message is escaped as JSON
 * strings require (quotes, backslashes, control characters), and bytes that
 * are not UTF-8 become U+FFFD, so every line parses.
 */
#ifndef NARF_LOG_H
#define NARF_LOG_H

enum narf_log_level {
	NARF_LOG_DEBUG,
	NARF_LOG_INFO,
	NARF_LOG_WARN,
	NARF_LOG_ERROR,
};

enum narf_log_format {
	NARF_LOG_TEXT,
	NARF_LOG_JSON,
};

/* Set the process name shown on every line (borrowed; must outlive logging). */
void narf_log_init(const char *process, enum narf_log_level level);

/* Set the id shown after the process name; 0 hides it. */
void narf_log_set_id(unsigned long long id);

void narf_log_set_level(enum narf_log_level level);

/* Parse "debug", "info", "warn" or "error"; returns 0 or NARF_EINVAL. */
int narf_log_parse_level(const char *text, enum narf_log_level *out);

/* Parse "text" or "json"; returns 0 or NARF_EINVAL. */
int narf_log_parse_format(const char *text, enum narf_log_format *out);
void narf_log_set_format(enum narf_log_format format);

/* Command-line forms: set the level or format from a flag's value, or
 * print "PROG: --log-level 'x': expected ..." and exit(2). */
void narf_log_flag_level(const char *prog, const char *text);
void narf_log_flag_format(const char *prog, const char *text);

int narf_log_enabled(enum narf_log_level level);

void narf_log(enum narf_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define NARF_DEBUG(...)                                        \
	do {                                                   \
		if (narf_log_enabled(NARF_LOG_DEBUG))          \
			narf_log(NARF_LOG_DEBUG, __VA_ARGS__); \
	} while (0)
#define NARF_INFO(...) narf_log(NARF_LOG_INFO, __VA_ARGS__)
#define NARF_WARN(...) narf_log(NARF_LOG_WARN, __VA_ARGS__)
#define NARF_ERROR(...) narf_log(NARF_LOG_ERROR, __VA_ARGS__)

#endif /* NARF_LOG_H */
