/*
 * Command-line and config value parsing shared by every program.
 *
 * Each parser accepts the whole string or nothing: "12x" is not 12. On
 * failure they return NARF_EINVAL and leave *out untouched, so a caller can
 * print "bad --node-timeout '12x': <what we expect>" and exit 2.
 */
#ifndef NARF_FLAGS_H
#define NARF_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

/* Decimal unsigned integer within [min, max]. */
int narf_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Duration in milliseconds: "250", "250ms", "2s", "1m". Within [min, max]. */
int narf_parse_ms(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Byte size: "1048576", "512kb", "512mb", "2gb" (powers of 1024, any case). */
int narf_parse_bytes(const char *text, uint64_t *out);

/* "host:port" with a numeric IPv4 host (or "localhost") and port 1..65535.
 * host receives at most host_size - 1 bytes. */
int narf_parse_hostport(const char *text,
                        char *host,
                        unsigned host_size,
                        int *port);

/* Command-line forms of the parsers above: return the value, or print
 * "PROG: NAME 'TEXT': expected ..." and exit(2). */
uint64_t narf_flag_u64(const char *prog,
                       const char *name,
                       const char *text,
                       uint64_t min,
                       uint64_t max);
uint64_t narf_flag_ms(const char *prog,
                      const char *name,
                      const char *text,
                      uint64_t min,
                      uint64_t max);
uint64_t narf_flag_bytes(const char *prog,
                         const char *name,
                         const char *text,
                         uint64_t min,
                         uint64_t max);

/* Print "PROG: MESSAGE" and a hint to use --help on stderr, then exit(2). */
/* "yes" (true) or "no" (false); anything else exits 2 naming the flag. */
bool narf_flag_yes_no(const char *prog, const char *name, const char *text);

_Noreturn void narf_usage_error(const char *prog, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#endif /* NARF_FLAGS_H */
