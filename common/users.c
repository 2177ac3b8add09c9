/*
 * Users of the data port: see users.h.
 */
#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth.h"
#include "errors.h"

static const char *const perm_names[] = {"none", "read", "readwrite", "admin"};

const char *narf_perm_name(enum narf_perm p)
{
	return p <= NARF_PERM_ADMIN ? perm_names[p] : "?";
}

int narf_perm_parse(const char *name, size_t len, enum narf_perm *out)
{
	for (int p = NARF_PERM_READ; p <= NARF_PERM_ADMIN; p++)
		if (strlen(perm_names[p]) == len &&
		    memcmp(name, perm_names[p], len) == 0) {
			*out = (enum narf_perm)p;
			return 0;
		}
	return -1;
}

static void digest_of(const unsigned char *salt,
                      const char *pass,
                      size_t len,
                      unsigned char *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt, NARF_USER_SALT_SIZE) != 1 ||
	    EVP_DigestUpdate(ctx, pass, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1)
		/* Never matches a stored digest of real data. */
		memset(out, 0, NARF_USER_DIGEST_SIZE);
	EVP_MD_CTX_free(ctx);
}

bool narf_user_password_ok(const struct narf_user *user,
                           const char *pass,
                           size_t len)
{
	unsigned char d[NARF_USER_DIGEST_SIZE];

	digest_of(user->salt, pass, len, d);
	return narf_auth_equal(d, user->digest, sizeof(d));
}

int narf_users_hash(const char *pass, size_t len, char *out)
{
	unsigned char salt[NARF_USER_SALT_SIZE], d[NARF_USER_DIGEST_SIZE];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return NARF_EINTERNAL;
	digest_of(salt, pass, len, d);
	memcpy(out, "sha256$", 7);
	narf_auth_hex(salt, sizeof(salt), out + 7);
	out[7 + 32] = '$';
	narf_auth_hex(d, sizeof(d), out + 7 + 32 + 1);
	return 0;
}

void narf_users_free(struct narf_users *u)
{
	if (u == NULL)
		return;
	if (u->v != NULL)
		explicit_bzero(u->v, u->n * sizeof(*u->v));
	free(u->v);
	u->v = NULL;
	u->n = 0;
}

const struct narf_user *narf_users_find(const struct narf_users *u,
                                        const char *name,
                                        size_t len)
{
	for (size_t i = 0; i < u->n; i++)
		if (strlen(u->v[i].name) == len &&
		    memcmp(u->v[i].name, name, len) == 0)
			return &u->v[i];
	return NULL;
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
	       ch == '.' || ch == '@';
}

/* The next whitespace-separated field of [*p, end): its start and length
 * (0 at the end of the line). */
static size_t field(const char **p, const char *end, const char **start)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*start = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*p = s;
	return (size_t)(s - *start);
}

static int line_error(struct narf_users *u,
                      char *errmsg,
                      unsigned line,
                      const char *what)
{
	if (errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, "line %u: %s", line, what);
	narf_users_free(u);
	return NARF_EINVAL;
}

/* One line's three fields into user; NULL or what is wrong. */
static const char *parse_user(const char *p,
                              const char *end,
                              struct narf_user *user)
{
	const char *f;
	size_t n = field(&p, end, &f);

	if (n == 0 || n > NARF_USER_NAME_MAX)
		return "a user name is 1 to 64 characters";
	for (size_t i = 0; i < n; i++)
		if (!name_char(f[i]))
			return "a user name is letters, digits and _ - . @";
	memcpy(user->name, f, n);
	user->name[n] = '\0';
	n = field(&p, end, &f);
	if (narf_perm_parse(f, n, &user->perm) != 0)
		return "the permission is read, readwrite or admin";
	n = field(&p, end, &f);
	if (n != NARF_USER_HASH_TEXT - 1 || memcmp(f, "sha256$", 7) != 0 ||
	    f[7 + 32] != '$' ||
	    narf_auth_unhex(f + 7, 32, user->salt, NARF_USER_SALT_SIZE) != 0 ||
	    narf_auth_unhex(f + 7 + 33, 64, user->digest,
	                    NARF_USER_DIGEST_SIZE) != 0)
		return "the password hash is sha256$<32 hex>$<64 hex> "
		       "(cachecli hash-password makes one)";
	if (field(&p, end, &f) != 0)
		return "more than three fields";
	return NULL;
}

int narf_users_parse(struct narf_users *u,
                     const char *text,
                     size_t len,
                     char *errmsg)
{
	const char *p = text, *end = text + len;
	unsigned line = 0;
	size_t cap = 0;

	u->v = NULL;
	u->n = 0;
	if (len > NARF_USERS_FILE_MAX)
		return line_error(u, errmsg, 0, "the file is over 1 MiB");
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end, *first, *q = p;
		struct narf_user user;
		const char *why;

		line++;
		if (le > p && le[-1] == '\r')
			le--;
		if (memchr(p, '\0', (size_t)(le - p)) != NULL)
			return line_error(u, errmsg, line, "a NUL byte");
		if (field(&q, le, &first) == 0 || first[0] == '#') {
			p = eol ? eol + 1 : end;
			continue;
		}
		memset(&user, 0, sizeof(user));
		why = parse_user(p, le, &user);
		if (why != NULL)
			return line_error(u, errmsg, line, why);
		if (narf_users_find(u, user.name, strlen(user.name)) != NULL)
			return line_error(u, errmsg, line, "that user twice");
		if (u->n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct narf_user *v = realloc(u->v, ncap * sizeof(*v));

			if (v == NULL) {
				narf_users_free(u);
				return NARF_ENOMEM;
			}
			u->v = v;
			cap = ncap;
		}
		u->v[u->n++] = user;
		explicit_bzero(&user, sizeof(user));
		p = eol ? eol + 1 : end;
	}
	return 0;
}

int narf_users_load(struct narf_users *u, const char *path, char *errmsg)
{
	char why[NARF_ERRMSG_SIZE];
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int rv;

	u->v = NULL;
	u->n = 0;
	if (f == NULL) {
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", path,
			         strerror(errno));
		return NARF_EIO;
	}
	buf = malloc(NARF_USERS_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return NARF_ENOMEM;
	}
	n = fread(buf, 1, NARF_USERS_FILE_MAX + 1, f);
	if (ferror(f)) {
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: read error",
			         path);
		fclose(f);
		free(buf);
		return NARF_EIO;
	}
	fclose(f);
	rv = narf_users_parse(u, buf, n, why);
	explicit_bzero(buf, n);
	free(buf);
	if (rv == NARF_EINVAL && errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", path, why);
	return rv;
}
