/*
 * cachecli: the operator's and user's command line for a narf cluster.
 *
 * main() parses the flags, then dispatches to one command. The data
 * commands (get, set, del, ttl, type, keys, scan) live in commands.c and go to
 * the data nodes by the map (data.c); status in status.c and dashboard.c;
 * the shell in shell.c; leave and nodes, which only talk to the
 * coordinators' JSON API (docs/protocol.md) through common/jclient.c, are
 * here. Exit codes are part of the command-line contract (DESIGN.md): 0 ok,
 * 1 a missing key or an error answer, 2 usage error, 3 cluster unreachable.
 * Every failure is one line on stderr that says what to do next.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "common/errors.h"
#include "common/flags.h"
#include "common/jclient.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/users.h"
#include "coordcmd.h"

static const char *const prog = NARF_CLI_PROG;

static const struct narf_cli_style plain_style = {"", "", "", "", "", ""};
static const struct narf_cli_style tty_style = {
        "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[0m"};
const struct narf_cli_style *narf_cli_sty = &plain_style;

/* One source line per output line, so the text reads as it prints. */
static const char help_text[] =
        "Usage: cachecli [--coord ADDR,...] [--timeout DURATION] COMMAND\n"
        "\n"
        "Talk to a narf cluster: data commands go straight to the node that\n"
        "owns the key (by the coordinators' map), admin commands to the\n"
        "coordinator leader.\n"
        "\n"
        "Data commands:\n"
        "  get KEY           print the value; a missing key prints nothing\n"
        "                    and exits 1. A hash prints field<TAB>value\n"
        "                    lines, a sorted set member<TAB>score lines\n"
        "                    (by score), a set its members, a list its\n"
        "                    elements (head first), one per line; bytes as\n"
        "                    stored: a newline or tab inside is printed\n"
        "                    as is, not escaped (as redis-cli --raw)\n"
        "  set KEY VALUE [--ttl SECONDS] [--nx|--xx]\n"
        "                    store it (replicated before the OK); VALUE '-'\n"
        "                    reads the value from stdin, as is (up to\n"
        "                    512 MiB); --nx: only if the key is absent,\n"
        "                    --xx: only if present (else exit 1, 'not set')\n"
        "  del KEY...        delete; prints how many of the keys existed\n"
        "  ttl KEY           seconds left, -1 without expiry; a missing\n"
        "                    key prints nothing and exits 1\n"
        "  type KEY          string, hash, list, set or zset; a missing\n"
        "                    key prints none and exits 1\n"
        "  keys PATTERN      every matching key ('*', 'user:*', 'a?[bc]'),\n"
        "                    sorted bytewise, one per line\n"
        "  scan [PATTERN]    the same, printed as found (unsorted), for\n"
        "                    large clusters; default pattern '*'\n"
        "  shell             an interactive prompt for get, set, del, ttl,\n"
        "                    type, keys and scan (Tab completes commands,\n"
        "                    history in ~/.cachecli_history); reads\n"
        "                    commands from stdin when not a terminal\n"
        "\n"
        "Cluster commands:\n"
        "  status [--json] [--watch]\n"
        "                    the cluster at a glance: coordinators (role,\n"
        "                    term, reachable), data nodes (state, slots,\n"
        "                    keys, memory, ops/s), slot health, a rebalance\n"
        "                    progress bar and warnings in plain words;\n"
        "                    --json: the same as one JSON object; --watch:\n"
        "                    redraw every second until Ctrl-C (with --json,\n"
        "                    one object per line)\n"
        "  nodes [--json]    the data nodes of the map: id, address, state,\n"
        "                    primary and replica slots\n"
        "  leave ID          drain data node ID: its copies move to the\n"
        "                    other nodes, then it is 'removed' and can be\n"
        "                    stopped with nothing lost (watch status); a\n"
        "                    node that is down is removed at once\n"
        "  coord status | add ID RAFT_ADDR API_ADDR | remove ID |\n"
        "  coord replace OLD_ID NEW_RAFT_ADDR NEW_API_ADDR\n"
        "                    coordinator membership (docs/coordinators.md):\n"
        "                    replace takes the new member's id from the\n"
        "                    coord --join running at NEW_API_ADDR, waits\n"
        "                    (up to --timeout) until the Raft configuration\n"
        "                    holds the new trio and prints CACHE_COORD\n"
        "  node-key          print the node key that data nodes' --cluster-\n"
        "                    secret-file holds, derived from the cluster\n"
        "                    secret (--secret-file); it proves the node role\n"
        "                    only (docs/security.md)\n"
        "  hash-password     print the users file hash of the password on\n"
        "                    stdin's first line (docs/security.md)\n"
        "\n"
        "Options (before or after the command):\n"
        "  --coord ADDR,...  coordinator API addresses (host:port, comma-\n"
        "                    separated); any member will do: the leader is\n"
        "                    found from it. Default: $CACHE_COORD, else\n"
        "                    " NARF_CLI_DEFAULT_COORD
        "\n"
        "  --timeout DUR     how long a command keeps retrying through a\n"
        "                    failover or an election before it gives up\n"
        "                    (exit 3): 500ms, 5s, 1m (default 5s)\n"
        "  --ttl SECONDS     set: expire the key after this many seconds\n"
        "  --nx, --xx        set: only if absent / only if present\n"
        "  --json            status, nodes: print JSON\n"
        "  --watch           status: redraw every second\n"
        "  --secret-file FILE\n"
        "                    the cluster secret (or a data node's node\n"
        "                    key) that the coordinators require of every\n"
        "                    caller; leave, settings and coord changes\n"
        "                    need the secret itself. Default:\n"
        "                    $NARF_SECRET_FILE\n"
        "  --user NAME       the data nodes' user to AUTH as (users file;\n"
        "                    default: the default user)\n"
        "  --password-file FILE\n"
        "                    the data nodes' password (first line);\n"
        "                    default: $NARF_PASSWORD\n"
        "  --tls             speak TLS to the coordinators' API and the data\n"
        "                    nodes (a cluster started with --tls-cluster;\n"
        "                    also on when $NARF_TLS_DIR is set)\n"
        "  --cacert FILE     the CA that signs the servers' certificates\n"
        "                    (PEM); default: $NARF_TLS_DIR/ca.crt, else the\n"
        "                    system's store\n"
        "  --cert FILE, --key FILE\n"
        "                    our client certificate and key (PEM), for\n"
        "                    servers that require one; default:\n"
        "                    $NARF_TLS_DIR/client.crt and client.key\n"
        "  --insecure        do not verify the servers' certificates\n"
        "  --log-level LVL   debug, info, warn (default) or error: debug\n"
        "                    shows leader redirects on stderr\n"
        "  -h, --help        show this help and exit\n"
        "A VALUE or KEY that starts with '-' goes after '--':\n"
        "  cachecli set temperature -- -5\n"
        "\n"
        "Environment:\n"
        "  CACHE_COORD       default for --coord; 'scripts/cluster.sh\n"
        "                    start' prints it. Empty counts as unset.\n"
        "  NARF_SECRET_FILE  default for --secret-file (a path: the secret\n"
        "                    itself never goes in the environment);\n"
        "                    'scripts/cluster.sh start' prints it\n"
        "  NARF_PASSWORD     the data nodes' password, when no\n"
        "                    --password-file is given\n"
        "  NARF_TLS_DIR      a directory with ca.crt, client.crt and\n"
        "                    client.key: turns on --tls with those files\n"
        "                    ('scripts/cluster.sh start --tls' prints it)\n"
        "  NO_COLOR          if set, never colour the output (colour is\n"
        "                    only used when stdout is a terminal)\n"
        "  HOME              the shell keeps its history in\n"
        "                    $HOME/.cachecli_history (none if unset)\n"
        "\n"
        "Exit status:\n"
        "  0  success (status exits 0 even when it shows warnings)\n"
        "  1  a missing key (get, ttl, type), a set whose --nx/--xx did not\n"
        "     hold, the cluster answered with an error, or a reply too big\n"
        "     to read (over 1048576 elements or 512 MiB)\n"
        "  2  usage error: bad flag, missing or unknown command\n"
        "  3  cluster unreachable: no coordinator, or no data node for the\n"
        "     key, answered within --timeout\n"
        "See docs/cachecli.md for more.\n";

static void print_help(void)
{
	fputs(help_text, stdout);
}

/* Check a coordinator list up front, so a typo is a usage error (exit 2)
 * rather than an unreachable cluster (exit 3). */
static void check_coord(const char *list, const char *source)
{
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");
		char entry[80], host[64];
		int port;

		if (n >= sizeof(entry))
			n = sizeof(entry) - 1;
		memcpy(entry, p, n);
		entry[n] = '\0';
		if (narf_parse_hostport(entry, host, sizeof(host), &port) != 0)
			narf_usage_error(prog,
			                 "bad %s '%s': '%s' is not host:port "
			                 "(expected e.g. %s)",
			                 source, list, entry,
			                 NARF_CLI_DEFAULT_COORD);
		if (p[n] == '\0')
			return;
		p += n + 1;
	}
}

/* Fill in --coord from the environment or the built-in default. An empty
 * CACHE_COORD counts as unset, as shells make that easy to produce. */
static void resolve_coord(struct narf_cli_options *o)
{
	const char *env = getenv("CACHE_COORD");

	if (o->coord == NULL && env != NULL && env[0] != '\0') {
		o->coord = env;
		o->coord_source = "CACHE_COORD";
	} else if (o->coord == NULL) {
		o->coord = NARF_CLI_DEFAULT_COORD;
		o->coord_source = "default coordinator list";
	}
	check_coord(o->coord, o->coord_source);
}

/* The credential every coordinator call proves (common/auth.h): the
 * cluster secret proves the operator role, a node key the node role. */
static struct narf_auth_keys cli_keys;

static void load_credential(struct narf_cli_options *o)
{
	char errmsg[NARF_ERRMSG_SIZE];
	const char *env = getenv("NARF_SECRET_FILE");
	const char *flag = "--secret-file";

	if (o->secret_file == NULL && env != NULL && env[0] != '\0') {
		o->secret_file = env;
		flag = "NARF_SECRET_FILE";
	}
	if (o->secret_file == NULL)
		return;
	if (narf_auth_keys_from_file(&cli_keys, o->secret_file, errmsg) != 0)
		narf_usage_error(prog, "%s %s", flag, errmsg);
	narf_jclient_set_credential(
	        &cli_keys, narf_auth_keys_can(&cli_keys, NARF_AUTH_OPERATOR)
	                           ? NARF_AUTH_OPERATOR
	                           : NARF_AUTH_NODE);
}

/* The data port's password: --password-file's first line, else
 * NARF_PASSWORD; then every data node connection AUTHs first. */
static char cli_password[1025];

static void load_password(const struct narf_cli_options *o)
{
	const char *env = getenv("NARF_PASSWORD");

	if (o->password_file != NULL) {
		FILE *f = fopen(o->password_file, "r");

		if (f == NULL)
			narf_usage_error(prog, "--password-file %s: %s",
			                 o->password_file, strerror(errno));
		if (fgets(cli_password, sizeof(cli_password), f) == NULL)
			cli_password[0] = '\0';
		fclose(f);
		cli_password[strcspn(cli_password, "\r\n")] = '\0';
		if (cli_password[0] == '\0')
			narf_usage_error(prog, "--password-file %s: empty",
			                 o->password_file);
	} else if (env != NULL && env[0] != '\0') {
		snprintf(cli_password, sizeof(cli_password), "%s", env);
	} else if (o->user != NULL) {
		narf_usage_error(prog,
		                 "--user needs a password: "
		                 "--password-file or NARF_PASSWORD");
	} else {
		return;
	}
	narf_cli_set_data_auth(o->user, cli_password);
}

/* TLS for every connection (--tls, or NARF_TLS_DIR): one client context,
 * shared by the data path, the coordinator client and status's threads. */
static struct narf_tls cli_tls;
static char tls_paths[3][4096]; /* NARF_TLS_DIR's files */

/* dir/name into buf when that file exists; else NULL. */
static const char *tls_dir_file(const char *dir, const char *name, char *buf)
{
	snprintf(buf, sizeof(tls_paths[0]), "%s/%s", dir, name);
	return access(buf, F_OK) == 0 ? buf : NULL;
}

static void load_tls(struct narf_cli_options *o)
{
	const char *dir = getenv("NARF_TLS_DIR");
	struct narf_tls_config cfg = {
	        .client = true,
	        .cert_flag = "--cert",
	        .key_flag = "--key",
	        .ca_flag = "--cacert",
	};
	char errmsg[NARF_ERRMSG_SIZE];

	if (dir != NULL && dir[0] == '\0')
		dir = NULL;
	if (!o->tls && dir == NULL) {
		if (o->cacert || o->cert || o->key || o->insecure)
			narf_usage_error(prog,
			                 "--cacert, --cert, --key and "
			                 "--insecure go with --tls");
		return;
	}
	o->tls = true;
	if (dir != NULL) {
		if (o->cacert == NULL)
			o->cacert = tls_dir_file(dir, "ca.crt", tls_paths[0]);
		if (o->cert == NULL && o->key == NULL) {
			o->cert = tls_dir_file(dir, "client.crt", tls_paths[1]);
			o->key = tls_dir_file(dir, "client.key", tls_paths[2]);
		}
	}
	if ((o->cert == NULL) != (o->key == NULL))
		narf_usage_error(prog, "--cert and --key go together");
	cfg.cert_file = o->cert;
	cfg.key_file = o->key;
	cfg.ca_file = o->cacert;
	cfg.insecure = o->insecure;
	if (narf_tls_init(&cli_tls, &cfg, errmsg) != 0)
		narf_usage_error(prog, "%s", errmsg);
	narf_cli_set_tls(cli_tls.ctx);
	narf_jclient_set_tls(cli_tls.ctx);
}

/* getopt leaves the culprit in optopt for a short option; for a long one
 * it is the last argument consumed, and optopt is set only when a known
 * flag was given a value it does not take ("--json=1"). */
_Noreturn static void bad_option(const char *arg)
{
	int len = (int)strcspn(arg, "=");

	if (strncmp(arg, "--", 2) != 0)
		narf_usage_error(prog, "unknown option '-%c'", optopt);
	if (optopt != 0)
		narf_usage_error(prog, "option '%.*s' takes no value", len,
		                 arg);
	narf_usage_error(prog, "unknown option '%.*s'", len, arg);
}

/*
 * Flags may come before or after the command (getopt_long permutes), as the
 * contract writes both "cachecli --coord X status" and "status --json".
 */
static void parse_flags(int argc, char **argv, struct narf_cli_options *o)
{
	static const struct option longopts[] = {
	        {"coord", required_argument, NULL, 'c'},
	        {"timeout", required_argument, NULL, 't'},
	        {"json", no_argument, NULL, 'j'},
	        {"watch", no_argument, NULL, 'w'},
	        {"ttl", required_argument, NULL, 'T'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"secret-file", required_argument, NULL, 'S'},
	        {"user", required_argument, NULL, 'U'},
	        {"password-file", required_argument, NULL, 'P'},
	        {"tls", no_argument, NULL, 'Z'},
	        {"cacert", required_argument, NULL, 'A'},
	        {"cert", required_argument, NULL, 'C'},
	        {"key", required_argument, NULL, 'K'},
	        {"insecure", no_argument, NULL, 'I'},
	        {"nx", no_argument, NULL, 'N'},
	        {"xx", no_argument, NULL, 'X'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0; /* we print our own one-line messages */
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->coord = optarg;
			o->coord_source = "--coord";
			break;
		case 't':
			if (narf_parse_ms(optarg, 1, 3600000, &o->timeout_ms))
				narf_usage_error(prog,
				                 "bad --timeout '%s': expected "
				                 "a duration like 500ms or 5s",
				                 optarg);
			break;
		case 'j':
			o->json = true;
			o->flags_seen |= NARF_CLI_F_JSON;
			break;
		case 'w':
			o->watch = true;
			o->flags_seen |= NARF_CLI_F_WATCH;
			break;
		case 'T': {
			uint64_t v;

			if (narf_parse_u64(optarg, 1, 100000000ull, &v) != 0)
				narf_usage_error(prog,
				                 "bad --ttl '%s': expected "
				                 "seconds, 1 to 100000000",
				                 optarg);
			o->ttl = (long long)v;
			o->flags_seen |= NARF_CLI_F_TTL;
			break;
		}
		case 'L':
			narf_log_flag_level(prog, optarg);
			break;
		case 'S':
			o->secret_file = optarg;
			break;
		case 'U':
			o->user = optarg;
			break;
		case 'P':
			o->password_file = optarg;
			break;
		case 'Z':
			o->tls = true;
			break;
		case 'A':
			o->cacert = optarg;
			break;
		case 'C':
			o->cert = optarg;
			break;
		case 'K':
			o->key = optarg;
			break;
		case 'I':
			o->insecure = true;
			break;
		case 'N':
			o->nx = true;
			o->flags_seen |= NARF_CLI_F_NX;
			break;
		case 'X':
			o->xx = true;
			o->flags_seen |= NARF_CLI_F_XX;
			break;
		case 'h':
			print_help();
			exit(EXIT_OK);
		case ':':
			narf_usage_error(prog, "option '%s' needs a value",
			                 argv[optind - 1]);
		default:
			bad_option(argv[optind - 1]);
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
}

/* --- reports shared by the commands (cli.h) --------------------------------
 */

int narf_cli_report_coord(const struct narf_cli_options *o,
                          int rc,
                          const char *errmsg)
{
	if (rc == NARF_EINVAL) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		return EXIT_USAGE;
	}
	if (strstr(errmsg, ": TLS: ") != NULL &&
	    (rc == NARF_EAUTH || rc == NARF_EPROTO)) {
		fprintf(stderr,
		        "%s: %s (check --tls, --cacert, --cert and --key, or "
		        "NARF_TLS_DIR)\n",
		        prog, errmsg);
		return EXIT_UNREACHABLE;
	}
	if (rc == NARF_ECONNECT)
		fprintf(stderr,
		        "%s: cluster unreachable: no coordinator answers at "
		        "%s: is the cluster running? (scripts/cluster.sh "
		        "start)\n",
		        prog, o->coord);
	else if (rc == NARF_EAUTH)
		fprintf(stderr,
		        "%s: %s: the coordinators take only callers that "
		        "prove the cluster secret, and prove it back (give "
		        "its file with --secret-file or NARF_SECRET_FILE; "
		        "scripts/cluster.sh start prints it)\n",
		        prog, errmsg);
	else if (rc == NARF_EPROTO)
		fprintf(stderr,
		        "%s: %s: not a coordinator API port? (check --coord "
		        "or CACHE_COORD%s)\n",
		        prog, errmsg,
		        o->tls ? ""
		               : "; a cluster with TLS needs --tls or "
		                 "NARF_TLS_DIR");
	else
		fprintf(stderr,
		        "%s: no usable answer from the coordinators at %s "
		        "within %llums (%s): is a majority of them up? "
		        "(scripts/cluster.sh status)%s\n",
		        prog, o->coord, (unsigned long long)o->timeout_ms,
		        errmsg,
		        /* A TLS port closes on a plain-text request without
		         * a word (OpenSSL sends no alert for it). */
		        !o->tls && strstr(errmsg, "closed without a reply")
		                ? "; or TLS ports: a cluster with TLS needs "
		                  "--tls or NARF_TLS_DIR"
		                : "");
	return EXIT_UNREACHABLE;
}

int narf_cli_report_data(const struct narf_cli_options *o,
                         const char *what,
                         int rc,
                         const struct narf_cli_cluster *cl)
{
	const char *errmsg = cl->errmsg;

	/* no map: the coordinators did not answer */
	if (!cl->have_map && rc != NARF_ENOMEM)
		return narf_cli_report_coord(o, rc, errmsg);
	if (cl->tls_error) {
		fprintf(stderr,
		        "%s: %s: %s (check --tls, --cacert, --cert and --key, "
		        "or NARF_TLS_DIR)\n",
		        prog, what, errmsg);
		return EXIT_UNREACHABLE;
	}
	if (rc == NARF_ETIMEOUT) {
		fprintf(stderr,
		        "%s: %s: cluster unreachable: %s; is the node up? "
		        "(cachecli status; a longer --timeout rides out a "
		        "slow failover)\n",
		        prog, what, errmsg);
		return EXIT_UNREACHABLE;
	}
	if (rc == NARF_ENOMEM) {
		fprintf(stderr, "%s: %s: out of memory\n", prog, what);
		return EXIT_ERROR;
	}
	if (rc == NARF_ETOOLARGE) {
		fprintf(stderr, "%s: %s: %s\n", prog, what, errmsg);
		return EXIT_ERROR;
	}
	if (rc == NARF_EAUTH) {
		fprintf(stderr,
		        "%s: %s: %s (check --user and --password-file or "
		        "NARF_PASSWORD)\n",
		        prog, what, errmsg);
		return EXIT_ERROR;
	}
	return narf_cli_report_coord(o, rc, errmsg);
}

/* Report an {"ok":false} reply; returns the exit code. */
static int report_error_reply(const char *what, const json_t *reply)
{
	const char *err = json_string_value(json_object_get(reply, "error"));
	const char *msg = json_string_value(json_object_get(reply, "message"));

	fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, err ? err : "?",
	        msg ? ": " : "", msg ? msg : "");
	if (err != NULL && strcmp(err, "auth_failed") == 0)
		fprintf(stderr,
		        "%s: the coordinators take only callers that prove "
		        "the cluster secret: give its file with --secret-file "
		        "or NARF_SECRET_FILE (scripts/cluster.sh start prints "
		        "it)\n",
		        prog);
	else if (err != NULL && strcmp(err, "denied") == 0)
		fprintf(stderr,
		        "%s: a node key cannot do that: use the cluster "
		        "secret's file\n",
		        prog);
	return EXIT_ERROR;
}

/* One request to the coordinator leader; 0 with *reply (new reference)
 * whose "ok" is true, else the exit code (reported). */
static int call_leader(const struct narf_cli_options *o,
                       const char *what,
                       json_t *req,
                       json_t **reply)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	int rc;

	rc = narf_jclient_call_leader(o->coord, req, (int)o->timeout_ms, reply,
	                              errmsg);
	json_decref(req);
	if (rc != 0)
		return narf_cli_report_coord(o, rc, errmsg);
	if (!json_is_true(json_object_get(*reply, "ok"))) {
		rc = report_error_reply(what, *reply);
		json_decref(*reply);
		*reply = NULL;
		return rc;
	}
	return 0;
}

/* --- commands --------------------------------------------------------------
 */

static void need_args(const struct narf_cli_options *o,
                      int n,
                      const char *usage)
{
	if (o->nargs != n)
		narf_usage_error(prog, "usage: cachecli %s", usage);
}

/* The state of node id in a map object (borrowed), or NULL. */
static const char *node_state_of(const json_t *map, uint64_t id)
{
	const json_t *n;
	size_t i;

	json_array_foreach(json_object_get(map, "nodes"), i, n)
	{
		if ((uint64_t)json_integer_value(json_object_get(n, "id")) ==
		    id)
			return json_string_value(json_object_get(n, "state"));
	}
	return NULL;
}

/* Print the node key data nodes prove (common/auth.h), derived from the
 * cluster secret: a data node's --cluster-secret-file holds it instead of
 * the secret, so a data node cannot act as an operator. */
static int cmd_node_key(const struct narf_cli_options *o)
{
	char text[80];

	need_args(o, 1, "node-key");
	if (o->secret_file == NULL)
		narf_usage_error(prog,
		                 "node-key needs --secret-file (or "
		                 "NARF_SECRET_FILE): the cluster secret");
	if (narf_auth_node_key_text(&cli_keys, text, sizeof(text)) != 0 ||
	    !narf_auth_keys_can(&cli_keys, NARF_AUTH_OPERATOR))
		narf_usage_error(prog,
		                 "node-key: %s holds a node key, not the "
		                 "cluster secret",
		                 o->secret_file);
	printf("%s\n", text);
	return EXIT_OK;
}

/* Print the users file hash (common/users.h) of the password on stdin's
 * first line: the password never goes through argv. */
static int cmd_hash_password(const struct narf_cli_options *o)
{
	char line[1100], out[NARF_USER_HASH_TEXT];
	size_t len;

	need_args(o, 1, "hash-password");
	if (fgets(line, sizeof(line), stdin) == NULL)
		narf_usage_error(prog,
		                 "hash-password reads the password from "
		                 "stdin's first line");
	len = strcspn(line, "\r\n");
	if (len == 0 || len > 1024)
		narf_usage_error(prog,
		                 "hash-password: the password is 1 to "
		                 "1024 bytes");
	if (narf_users_hash(line, len, out) != 0) {
		explicit_bzero(line, sizeof(line));
		fprintf(stderr, "%s: no randomness for a salt\n", prog);
		return EXIT_ERROR;
	}
	explicit_bzero(line, sizeof(line));
	printf("%s\n", out);
	return EXIT_OK;
}

static int cmd_leave(const struct narf_cli_options *o)
{
	json_t *reply = NULL, *map = NULL;
	const char *state = NULL;
	uint64_t id;
	int rc;

	need_args(o, 2, "leave ID");
	if (narf_parse_u64(o->args[1], 1, UINT32_MAX, &id) != 0)
		narf_usage_error(prog,
		                 "bad node id '%s': expected a number "
		                 "from 'cachecli nodes'",
		                 o->args[1]);
	rc = call_leader(
	        o, "leave",
	        json_pack("{s:s,s:I}", "op", "leave", "node", (json_int_t)id),
	        &reply);
	if (rc != 0)
		return rc;
	/* A down node is removed at once; say which happened. */
	if (call_leader(o, "map", json_pack("{s:s}", "op", "map"), &map) == 0)
		state = node_state_of(json_object_get(map, "map"), id);
	if (state != NULL && strcmp(state, "removed") == 0)
		printf("node %llu removed (it held no copies)\n",
		       (unsigned long long)id);
	else
		printf("node %llu is leaving (epoch %lld): its copies move to "
		       "the other nodes; 'cachecli status' shows progress\n",
		       (unsigned long long)id,
		       (long long)json_integer_value(
		               json_object_get(reply, "epoch")));
	json_decref(map);
	json_decref(reply);
	return EXIT_OK;
}

/* nodes: the map's data nodes with their slot counts. */
static int cmd_nodes(const struct narf_cli_options *o)
{
	struct narf_map m;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *reply = NULL, *arr;
	int rc, wa = 4;

	need_args(o, 1, "nodes [--json]");
	rc = call_leader(o, "nodes", json_pack("{s:s}", "op", "map"), &reply);
	if (rc != 0)
		return rc;
	narf_map_init(&m, NULL);
	if (narf_map_from_json(&m, json_object_get(reply, "map"), errmsg) !=
	    0) {
		fprintf(stderr, "%s: nodes: the leader sent a bad map: %s\n",
		        prog, errmsg);
		rc = EXIT_ERROR;
		goto out;
	}
	arr = json_array();
	for (unsigned i = 0; i < m.n_nodes; i++) {
		const struct narf_map_node *n = &m.nodes[i];
		unsigned p, r;

		narf_map_node_counts(&m, n->id, &p, &r);
		json_array_append_new(
		        arr,
		        json_pack("{s:I,s:s,s:s,s:s,s:i,s:i}", "id",
		                  (json_int_t)n->id, "addr", n->addr, "zone",
		                  n->zone, "state",
		                  narf_node_state_name(n->state), "primaries",
		                  (int)p, "replicas", (int)r));
		if ((int)strlen(n->addr) > wa)
			wa = (int)strlen(n->addr);
	}
	if (o->json) {
		char *text =
		        json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", text ? text : "[]");
		free(text);
	} else if (m.n_nodes == 0) {
		printf("no data node has joined yet (epoch %llu)\n",
		       (unsigned long long)m.epoch);
	} else {
		size_t i;
		json_t *n;

		/* ZONE last: scripts that read the first columns keep
		 * working. */
		printf("%-4s %-*s  %-8s %9s %8s  %s\n", "ID", wa, "ADDR",
		       "STATE", "PRIMARIES", "REPLICAS", "ZONE");
		json_array_foreach(arr, i, n)
		{
			const char *zone =
			        json_string_value(json_object_get(n, "zone"));

			printf("%-4lld %-*s  %-8s %9lld %8lld  %s\n",
			       (long long)json_integer_value(
			               json_object_get(n, "id")),
			       wa,
			       json_string_value(json_object_get(n, "addr")),
			       json_string_value(json_object_get(n, "state")),
			       (long long)json_integer_value(
			               json_object_get(n, "primaries")),
			       (long long)json_integer_value(
			               json_object_get(n, "replicas")),
			       zone != NULL && zone[0] != '\0' ? zone : "-");
		}
	}
	json_decref(arr);
out:
	narf_map_close(&m);
	json_decref(reply);
	return rc;
}

static int cmd_status(const struct narf_cli_options *o)
{
	return narf_cli_status(o);
}

static int cmd_shell(const struct narf_cli_options *o)
{
	return narf_cli_shell(o);
}

static int cmd_data(const struct narf_cli_options *o)
{
	struct narf_cli_cluster cl;
	struct narf_cli_setopts set = {o->ttl, o->nx, o->xx};
	int rc;

	narf_cli_cluster_init(&cl, o->coord, o->timeout_ms);
	rc = narf_cli_data_command(&cl, o, &set, o->nargs, o->args, false);
	narf_cli_cluster_close(&cl);
	return rc;
}

static int cmd_coord(const struct narf_cli_options *o)
{
	return narf_cli_coord(o->coord, o->timeout_ms, o->json, o->nargs,
	                      o->args);
}

/* Each command with the flags it takes beyond --coord and --timeout. */
static const struct command {
	const char *name;
	int (*run)(const struct narf_cli_options *o);
	unsigned flags;
} commands[] = {
        {"get", cmd_data, 0},
        {"set", cmd_data, NARF_CLI_F_TTL | NARF_CLI_F_NX | NARF_CLI_F_XX},
        {"del", cmd_data, 0},
        {"ttl", cmd_data, 0},
        {"type", cmd_data, 0},
        {"keys", cmd_data, 0},
        {"scan", cmd_data, 0},
        {"shell", cmd_shell, 0},
        {"status", cmd_status, NARF_CLI_F_JSON | NARF_CLI_F_WATCH},
        {"nodes", cmd_nodes, NARF_CLI_F_JSON},
        {"leave", cmd_leave, 0},
        {"node-key", cmd_node_key, 0},
        {"hash-password", cmd_hash_password, 0},
        {"coord", cmd_coord, NARF_CLI_F_JSON},
};

static const char command_list[] =
        "get, set, del, ttl, type, keys, scan, shell, status, nodes, leave, "
        "coord, node-key or hash-password";

/* A flag given to a command that does not take it is a usage error, not
 * something to ignore silently ("get k --ttl 5"). */
static void check_flags(const struct narf_cli_options *o,
                        const struct command *cmd)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	        {NARF_CLI_F_JSON, "--json"}, {NARF_CLI_F_WATCH, "--watch"},
	        {NARF_CLI_F_TTL, "--ttl"},   {NARF_CLI_F_NX, "--nx"},
	        {NARF_CLI_F_XX, "--xx"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((o->flags_seen & names[i].bit) &&
		    !(cmd->flags & names[i].bit))
			narf_usage_error(prog, "%s does not take %s", cmd->name,
			                 names[i].name);
	if (o->nx && o->xx)
		narf_usage_error(prog, "--nx and --xx exclude each other");
}

/* A closed or full stdout must not pass for success in a script. */
static int finish_output(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("cachecli: writing output");
		return code == EXIT_OK ? EXIT_ERROR : code;
	}
	return code;
}

int main(int argc, char **argv)
{
	struct narf_cli_options o = {.timeout_ms = NARF_CLI_DEFAULT_TIMEOUT_MS};
	const char *no_color = getenv("NO_COLOR");

	narf_log_init(prog, NARF_LOG_WARN);
	parse_flags(argc, argv, &o);
	if (o.nargs == 0)
		narf_usage_error(prog, "missing command (%s)", command_list);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(o.args[0], commands[i].name) != 0)
			continue;
		check_flags(&o, &commands[i]);
		resolve_coord(&o);
		load_credential(&o);
		load_password(&o);
		load_tls(&o);
		if (isatty(STDOUT_FILENO) && (no_color == NULL || !no_color[0]))
			narf_cli_sty = &tty_style;
		return finish_output(commands[i].run(&o));
	}
	narf_usage_error(prog, "unknown command '%s' (expected %s)", o.args[0],
	                 command_list);
}
