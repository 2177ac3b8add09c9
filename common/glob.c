/*
 * Glob matching with the semantics of Redis's stringmatchlen(), used by
 * KEYS, SCAN MATCH and CONFIG GET.
 *
 * Redis matches recursively, one level per '*', and Redis 7 caps the nesting
 * because "a*a*a*...b" against a long string otherwise takes exponential
 * time. Here every token other than '*' consumes exactly one character, so
 * the classic iterative matcher is exact: on a mismatch, let the most recent
 * '*' swallow one more character and retry from just after it. Earlier
 * stars never need revisiting, which bounds the work by
 * O(pattern length x string length) with no recursion at all.
 */
#include <ctype.h>

#include "store.h"

static bool char_eq(char a, char b, bool nocase)
{
	if (nocase)
		return tolower((unsigned char)a) == tolower((unsigned char)b);
	return a == b;
}

/*
 * Match c against the class starting at pat[i] == '[', and set *next to the
 * index just past it. This follows Redis's pointer moves exactly, quirks
 * included: escapes inside a class compare case-sensitively, a range may be
 * given backwards, and an unterminated class runs to the end of the pattern.
 */
static bool match_class(const char *pat,
                        size_t plen,
                        size_t i,
                        char c,
                        bool nocase,
                        size_t *next)
{
	bool neg, match = false;

	i++;
	neg = i < plen && pat[i] == '^';
	if (neg)
		i++;
	for (;;) {
		size_t left = plen - i;

		if (left >= 2 && pat[i] == '\\') {
			i++;
			if (pat[i] == c)
				match = true;
		} else if (left == 0) {
			i--;
			break;
		} else if (pat[i] == ']') {
			break;
		} else if (left >= 3 && pat[i + 1] == '-') {
			int lo = (unsigned char)pat[i];
			int hi = (unsigned char)pat[i + 2];
			int ch = (unsigned char)c;

			if (lo > hi) {
				int t = lo;

				lo = hi;
				hi = t;
			}
			if (nocase) {
				lo = tolower(lo);
				hi = tolower(hi);
				ch = tolower(ch);
			}
			i += 2;
			if (ch >= lo && ch <= hi)
				match = true;
		} else if (char_eq(pat[i], c, nocase)) {
			match = true;
		}
		i++;
	}
	*next = i + 1;
	return neg ? !match : match;
}

/* Does the single-character token at pat[p] match c? Sets *next past it. */
static bool match_token(const char *pat,
                        size_t plen,
                        size_t p,
                        char c,
                        bool nocase,
                        size_t *next)
{
	switch (pat[p]) {
	case '?':
		*next = p + 1;
		return true;
	case '[':
		return match_class(pat, plen, p, c, nocase, next);
	case '\\':
		if (plen - p >= 2)
			p++;
		/* fall through */
	default:
		*next = p + 1;
		return char_eq(pat[p], c, nocase);
	}
}

bool narf_glob_match(const char *pat,
                     size_t plen,
                     const char *str,
                     size_t slen,
                     bool nocase)
{
	size_t p = 0, s = 0, star_p = 0, star_s = 0, next;
	bool star = false;

	while (s < slen) {
		if (p < plen && pat[p] == '*') {
			while (p + 1 < plen && pat[p + 1] == '*')
				p++;
			if (p + 1 == plen)
				return true;
			star = true;
			star_p = ++p;
			star_s = s;
			continue;
		}
		if (p < plen &&
		    match_token(pat, plen, p, str[s], nocase, &next)) {
			p = next;
			s++;
			continue;
		}
		if (!star)
			return false;
		p = star_p;
		s = ++star_s;
	}
	while (p < plen && pat[p] == '*')
		p++;
	return p == plen;
}
