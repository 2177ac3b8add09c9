/*
 * The collection thresholds' option table (coll_config.h).
 */
#include "coll_config.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine.h"

struct option {
	const char *name;
	const char *alias; /* the pre-7.0 ziplist name, still accepted */
	size_t off;        /* of the field in struct narf_coll_limits */
	bool is_signed;    /* int32_t (list-max-listpack-size), else uint32 */
	long long min, max;
};

#define LIM(f) offsetof(struct narf_coll_limits, f)

static const struct option options[] = {
        {"hash-max-listpack-entries", "hash-max-ziplist-entries",
         LIM(hash_lp_entries), false, 0, LLONG_MAX},
        {"hash-max-listpack-value", "hash-max-ziplist-value",
         LIM(hash_lp_value), false, 0, LLONG_MAX},
        {"set-max-intset-entries", NULL, LIM(set_intset_entries), false, 0,
         LLONG_MAX},
        {"zset-max-listpack-entries", "zset-max-ziplist-entries",
         LIM(zset_lp_entries), false, 0, LLONG_MAX},
        {"zset-max-listpack-value", "zset-max-ziplist-value",
         LIM(zset_lp_value), false, 0, LLONG_MAX},
        {"list-max-listpack-size", "list-max-ziplist-size", LIM(list_lp_size),
         true, INT_MIN, INT_MAX},
};

#define NOPTIONS ((int)(sizeof(options) / sizeof(options[0])))

int narf_coll_option_count(void)
{
	return NOPTIONS;
}

const char *narf_coll_option_name(int i)
{
	return options[i].name;
}

static bool same(const char *a, const char *b, size_t n)
{
	return a != NULL && strlen(a) == n && strncasecmp(a, b, n) == 0;
}

int narf_coll_option_find(const char *name, size_t n)
{
	for (int i = 0; i < NOPTIONS; i++)
		if (same(options[i].name, name, n) ||
		    same(options[i].alias, name, n))
			return i;
	return -1;
}

void narf_coll_option_get(const struct narf_coll_limits *lim,
                          int i,
                          char *buf,
                          size_t size)
{
	const char *p = (const char *)lim + options[i].off;

	if (options[i].is_signed) {
		int32_t v;

		memcpy(&v, p, sizeof(v));
		snprintf(buf, size, "%d", (int)v);
	} else {
		uint32_t v;

		memcpy(&v, p, sizeof(v));
		snprintf(buf, size, "%u", (unsigned)v);
	}
}

bool narf_coll_option_set(struct narf_coll_limits *lim,
                          int i,
                          const char *v,
                          size_t n,
                          char *why,
                          size_t whysize)
{
	const struct option *o = &options[i];
	char *p = (char *)lim + o->off;
	long long x;

	if (!narf_str_to_ll(v, n, &x)) {
		snprintf(why, whysize,
		         "argument couldn't be parsed into an integer");
		return false;
	}
	if (x < o->min || x > o->max) {
		snprintf(why, whysize,
		         "argument must be between %lld and %lld inclusive",
		         o->min, o->max);
		return false;
	}
	if (o->is_signed) {
		int32_t s = (int32_t)x;

		memcpy(p, &s, sizeof(s));
	} else {
		/* Redis takes up to LONG_MAX; past 2^32 - 1 no collection
		 * can get, so the threshold saturates there. */
		uint32_t u = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;

		memcpy(p, &u, sizeof(u));
	}
	return true;
}
