/*
 * What cachecli's files share: the parsed command line, the exit codes of
 * the command-line contract (DESIGN.md), terminal colours, and the one-line
 * error reports.
 *
 * cachecli.c parses the flags and dispatches; commands.c runs the data
 * commands (get, set, del, ttl, type, keys, scan) for the command line and for
 * the shell (shell.c); status.c draws the dashboard; data.c routes requests
 * by the map; net.c holds the sockets; parse.c the parsers.
 */
#ifndef NARF_CLI_H
#define NARF_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "data.h"

#define NARF_CLI_PROG "cachecli"
#define NARF_CLI_DEFAULT_COORD "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
#define NARF_CLI_DEFAULT_TIMEOUT_MS 5000

/* Largest value `set KEY -` reads from standard input: Redis's default
 * proto-max-bulk-len, which is also the data nodes' --max-value-size. */
#define NARF_CLI_MAX_STDIN ((size_t)512 << 20)

enum exit_code {
	EXIT_OK = 0,
	EXIT_ERROR = 1,       /* missing key, the cluster said no, or a
	                         reply too big to read */
	EXIT_USAGE = 2,       /* bad flag, missing or unknown command */
	EXIT_UNREACHABLE = 3, /* no coordinator or data node answered */
};

struct narf_cli_options {
	const char *coord;         /* borrowed: argv, environment or default */
	const char *coord_source;  /* borrowed: where coord came from */
	const char *secret_file;   /* borrowed: argv or environment, or NULL */
	const char *user;          /* borrowed: --user, or NULL */
	const char *password_file; /* borrowed: --password-file, or NULL */
	bool tls;                  /* --tls, or NARF_TLS_DIR set */
	bool insecure;             /* --insecure */
	const char *cacert;        /* borrowed: --cacert, or NULL */
	const char *cert, *key;    /* borrowed: --cert, --key, or NULL */
	bool json, watch, nx, xx;
	uint64_t timeout_ms;
	char **args; /* borrowed: positional arguments, the command first */
	int nargs;
	long long ttl;       /* set --ttl SECONDS; 0 = none */
	unsigned flags_seen; /* NARF_CLI_F_* given on the command line */
};

/* Flags that only some commands take, so others can refuse them. */
enum {
	NARF_CLI_F_JSON = 1u << 0,
	NARF_CLI_F_WATCH = 1u << 1,
	NARF_CLI_F_TTL = 1u << 2,
	NARF_CLI_F_NX = 1u << 3,
	NARF_CLI_F_XX = 1u << 4,
};

/* Terminal escapes; all empty when stdout is not a terminal. */
struct narf_cli_style {
	const char *bold, *dim, *red, *green, *yellow, *reset;
};

/* borrowed: the plain style, or colours when stdout is a terminal and
 * NO_COLOR is unset (set by main) */
extern const struct narf_cli_style *narf_cli_sty;

/*
 * One line on stderr for a coordinator request that failed (rc and errmsg
 * from narf_jclient_call_leader()); returns the exit code: EXIT_USAGE for a
 * bad address, else EXIT_UNREACHABLE.
 */
int narf_cli_report_coord(const struct narf_cli_options *o,
                          int rc,
                          const char *errmsg);

/* The same for a data command that got no usable answer (rc from
 * narf_cli_cluster_call()/_scan(), the reason in cl->errmsg): the
 * coordinators' failure when no map could be fetched, else the data
 * nodes' (EXIT_UNREACHABLE). */
int narf_cli_report_data(const struct narf_cli_options *o,
                         const char *what,
                         int rc,
                         const struct narf_cli_cluster *cl);

/* --- commands.c: the data commands ---------------------------------------- */

/* Set flags, from the command line or a shell line. */
struct narf_cli_setopts {
	long long ttl; /* seconds, 0 = none */
	bool nx, xx;
};

/*
 * Run the data command args[0] (get, set, del, ttl, type, keys, scan) with
 * its arguments args[1..nargs). In a shell (in_shell) a missing key prints
 * "(nil)" rather than nothing, and usage errors return EXIT_USAGE instead
 * of exiting. Returns the exit code, or -1 when args[0] is not a data command.
 */
int narf_cli_data_command(struct narf_cli_cluster *cl,
                          const struct narf_cli_options *o,
                          const struct narf_cli_setopts *set,
                          int nargs,
                          char **args,
                          bool in_shell);

/* --- status.c, shell.c -----------------------------------------------------
 */

int narf_cli_status(const struct narf_cli_options *o);
int narf_cli_shell(const struct narf_cli_options *o);

#endif /* NARF_CLI_H */
