#include "flags.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"

/* Parse leading decimal digits; *end receives the first other byte. */
static int parse_digits(const char *text, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return NARF_EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return NARF_EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

int narf_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	const char *end;

	if (text == NULL || parse_digits(text, &v, &end) != 0 || *end != '\0')
		return NARF_EINVAL;
	if (v < min || v > max)
		return NARF_EINVAL;
	*out = v;
	return 0;
}

/* Multiply with overflow check. */
static int scale(uint64_t v, uint64_t factor, uint64_t *out)
{
	if (factor != 0 && v > UINT64_MAX / factor)
		return NARF_EINVAL;
	*out = v * factor;
	return 0;
}

int narf_parse_ms(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}};
	uint64_t v, ms;
	const char *end;

	if (text == NULL || parse_digits(text, &v, &end) != 0)
		return NARF_EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (scale(v, units[i].factor, &ms) != 0 || ms < min || ms > max)
			return NARF_EINVAL;
		*out = ms;
		return 0;
	}
	return NARF_EINVAL;
}

int narf_parse_bytes(const char *text, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {{"", 1},           {"b", 1},
	             {"k", 1ULL << 10}, {"kb", 1ULL << 10},
	             {"m", 1ULL << 20}, {"mb", 1ULL << 20},
	             {"g", 1ULL << 30}, {"gb", 1ULL << 30}};
	uint64_t v;
	const char *end;

	if (text == NULL || parse_digits(text, &v, &end) != 0)
		return NARF_EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].suffix) == 0)
			return scale(v, units[i].factor, out);
	return NARF_EINVAL;
}

int narf_parse_hostport(const char *text,
                        char *host,
                        unsigned host_size,
                        int *port)
{
	const char *colon;
	size_t hlen;
	uint64_t p;
	struct in_addr addr;
	char buf[64];

	if (text == NULL || (colon = strrchr(text, ':')) == NULL)
		return NARF_EINVAL;
	hlen = (size_t)(colon - text);
	if (hlen == 0 || hlen >= sizeof(buf) || hlen >= host_size)
		return NARF_EINVAL;
	memcpy(buf, text, hlen);
	buf[hlen] = '\0';
	if (strcmp(buf, "localhost") != 0 &&
	    inet_pton(AF_INET, buf, &addr) != 1)
		return NARF_EINVAL;
	if (narf_parse_u64(colon + 1, 1, 65535, &p) != 0)
		return NARF_EINVAL;
	memcpy(host, buf, hlen + 1);
	*port = (int)p;
	return 0;
}

void narf_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for the list of flags.\n", prog);
	exit(2);
}

uint64_t narf_flag_u64(const char *prog,
                       const char *name,
                       const char *text,
                       uint64_t min,
                       uint64_t max)
{
	uint64_t v = 0;

	if (narf_parse_u64(text, min, max, &v) != 0)
		narf_usage_error(prog,
		                 "%s '%s': expected a number from %llu to "
		                 "%llu",
		                 name, text, (unsigned long long)min,
		                 (unsigned long long)max);
	return v;
}

uint64_t narf_flag_ms(const char *prog,
                      const char *name,
                      const char *text,
                      uint64_t min,
                      uint64_t max)
{
	uint64_t v = 0;

	if (narf_parse_ms(text, min, max, &v) != 0)
		narf_usage_error(prog,
		                 "%s '%s': expected a duration from %llu "
		                 "to %llu ms",
		                 name, text, (unsigned long long)min,
		                 (unsigned long long)max);
	return v;
}

uint64_t narf_flag_bytes(const char *prog,
                         const char *name,
                         const char *text,
                         uint64_t min,
                         uint64_t max)
{
	uint64_t v = 0;

	if (narf_parse_bytes(text, &v) != 0 || v < min || v > max)
		narf_usage_error(prog,
		                 "%s '%s': expected a size such as "
		                 "1048576, 512mb or 2gb, from %llu to %llu",
		                 name, text, (unsigned long long)min,
		                 (unsigned long long)max);
	return v;
}

bool narf_flag_yes_no(const char *prog, const char *name, const char *text)
{
	if (strcmp(text, "yes") == 0)
		return true;
	if (strcmp(text, "no") != 0)
		narf_usage_error(prog, "%s '%s': expected yes or no", name,
		                 text);
	return false;
}
