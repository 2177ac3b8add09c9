/*
 * Users of the data port (docs/security.md, "Users"): a users file gives
 * each user a salted password hash and a permission, as Redis's ACL users
 * do in their simplest form.
 *
 *   # name     permission  password hash (cachecli hash-password)
 *   app        readwrite   sha256$<32 hex salt>$<64 hex digest>
 *   dashboard  read        sha256$...$...
 *   ops        admin       sha256$...$...
 *
 * Permissions: `read` runs commands that only read; `readwrite` adds
 * writes; `admin` adds CLUSTER, CONFIG, FLUSHALL and the operator
 * commands. The digest is SHA-256(salt || password): fast to check, as
 * Redis's own ACL hashes are, because AUTH runs on the event loop; so
 * passwords must be long and random (`openssl rand -hex 32`), which makes
 * a fast hash as good as a slow one against guessing.
 *
 * Pure: no sockets, no loop; the file is read once (and again on reload).
 */
#ifndef NARF_USERS_H
#define NARF_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define NARF_USER_NAME_MAX 64
#define NARF_USERS_FILE_MAX (1u << 20)
#define NARF_USER_SALT_SIZE 16
#define NARF_USER_DIGEST_SIZE 32
/* "sha256$" + 32 hex + "$" + 64 hex + NUL */
#define NARF_USER_HASH_TEXT (7 + 32 + 1 + 64 + 1)

enum narf_perm {
	NARF_PERM_NONE = 0,
	NARF_PERM_READ = 1,
	NARF_PERM_READWRITE = 2,
	NARF_PERM_ADMIN = 3,
};

struct narf_user {
	char name[NARF_USER_NAME_MAX + 1];
	enum narf_perm perm;
	unsigned char salt[NARF_USER_SALT_SIZE];
	unsigned char digest[NARF_USER_DIGEST_SIZE];
};

struct narf_users {
	struct narf_user *v; /* owned */
	size_t n;
};

/* "read" / "readwrite" / "admin" <-> the permission; parse returns -1 on
 * anything else. */
const char *narf_perm_name(enum narf_perm p);
int narf_perm_parse(const char *name, size_t len, enum narf_perm *out);

/*
 * Parse a users file's text (borrowed, len bytes) into u (emptied first).
 * Returns 0, NARF_EINVAL (errmsg: "line N: what is wrong": a bad name,
 * permission or hash, a user twice, a file over NARF_USERS_FILE_MAX,
 * which also bounds the users to about 9,000) or
 * NARF_ENOMEM. On error u is left empty.
 */
int narf_users_parse(struct narf_users *u,
                     const char *text,
                     size_t len,
                     char *errmsg);

/* Read and parse the file at path; NARF_EIO when it cannot be read. */
int narf_users_load(struct narf_users *u, const char *path, char *errmsg);

void narf_users_free(struct narf_users *u);

/* The user of that name (borrowed from u), or NULL. */
const struct narf_user *narf_users_find(const struct narf_users *u,
                                        const char *name,
                                        size_t len);

/* Does pass (len bytes) hash to the user's digest? Constant time in the
 * digest comparison. */
bool narf_user_password_ok(const struct narf_user *user,
                           const char *pass,
                           size_t len);

/*
 * The hash text of a password with a fresh random salt, as a users file
 * holds it, into out (NARF_USER_HASH_TEXT bytes). Returns 0 or
 * NARF_EINTERNAL (no randomness).
 */
int narf_users_hash(const char *pass, size_t len, char *out);

#endif
