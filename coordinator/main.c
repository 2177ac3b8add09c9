/*
 * coord: one member of the coordinator trio (see coord.h).
 *
 * main() parses the flags, starts the Raft member and the API listener, and
 * runs the loop until SIGTERM or SIGINT, which close everything in order:
 * cron and listener first, then Raft (whose pending proposals fail), then
 * the client connections and the signal handles, so the loop ends empty.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/flags.h"
#include "common/jclient.h"
#include "common/log.h"
#include "coord.h"

static const char usage_text[] =
        "Usage: coord --id N --data-dir DIR --members LIST [options]\n"
        "       coord --id N --data-dir DIR --join ADDRS --raft ADDR --api "
        "ADDR\n"
        "             [options]\n"
        "\n"
        "One member of narf's coordinator: a three-member Raft group that "
        "owns\n"
        "the cluster map (data nodes, slots, replicas) and serves it on a "
        "JSON\n"
        "API port (docs/protocol.md).\n"
        "\n"
        "Required:\n"
        "  --id N                 this member's id, one of the ids in "
        "--members\n"
        "                         (with --join: an id new to the cluster)\n"
        "  --data-dir DIR         Raft log and snapshots (created if "
        "missing);\n"
        "                         empty on the first start, which bootstraps\n"
        "  --members LIST         every member as ID=RAFT_ADDR/API_ADDR, "
        "comma\n"
        "                         separated, identical on all members, e.g.\n"
        "                         1=127.0.0.1:7101/127.0.0.1:7001,2=...,3=...\n"
        "Or, to join a running cluster (a new member, e.g. replacing a dead "
        "one;\n"
        "docs/coordinators.md):\n"
        "  --join ADDRS           API addresses (host:port,...) of running "
        "members;\n"
        "                         this member never bootstraps: with an "
        "empty\n"
        "                         --data-dir it waits until the leader adds "
        "it\n"
        "                         (cachecli coord add/replace) and sends it "
        "the\n"
        "                         map; with a non-empty one it restarts from "
        "it\n"
        "  --raft ADDR            with --join: this member's Raft address\n"
        "  --api ADDR             with --join: this member's API address;\n"
        "                         a first start checks the id (ids are "
        "never\n"
        "                         reused) and addresses against --join\n"
        "  --cluster-secret-file FILE\n"
        "                         the cluster secret (first line, at least "
        "16\n"
        "                         bytes): every caller of the API and of "
        "Raft\n"
        "                         proves it, or the node key derived from "
        "it\n"
        "                         (docs/security.md); the same on every "
        "member\n"
        "Options (up to --removed-retention, written into a new cluster's "
        "map;\n"
        "the `settings` API call changes them later):\n"
        "  --replicas N           copies per slot, primary included (1-5;\n"
        "                         default 2)\n"
        "  --node-timeout MS      heartbeat silence before a data node is\n"
        "                         marked down (100-60000; default 600)\n"
        "  --ack all|primary      default write acknowledgement (default all)\n"
        "  --moves N              slots moving at once while rebalancing\n"
        "                         (syncing a new copy or handing over;\n"
        "                         1-16384; default 1024)\n"
        "  --min-isr N            in-sync copies (primary included) a slot\n"
        "                         needs to take writes; fewer: -NOREPLICAS\n"
        "                         (1 to --replicas; default 1). With 2, no\n"
        "                         single crash loses an acknowledged write\n"
        "  --on-lost empty|wait   a slot whose primary is marked down with no\n"
        "                         live in-sync replica: given to a live node,\n"
        "                         empty (default), or held until one of its\n"
        "                         in-sync copies is up again (wait)\n"
        "  --removed-retention MS a removed data node that holds nothing\n"
        "                         leaves the map after this long (0: never;\n"
        "                         default 600000, ten minutes)\n"
        "  --election-timeout MS  Raft election timeout (200-10000; default "
        "300);\n"
        "                         the node timeout must be at least twice it\n"
        "  --heartbeat-timeout MS Raft heartbeat interval (10-5000; default "
        "50)\n"
        "  --delta-ring-entries N map entries kept for heartbeat deltas\n"
        "                         (1-1000000; default 4096): a node further\n"
        "                         behind fetches the whole map\n"
        "  --delta-ring-mb N      bytes of those entries kept, in MiB "
        "(1-4095;\n"
        "                         default 16)\n"
        "  --log-level LEVEL      debug, info, warn or error (default info)\n"
        "  --log-format FORMAT    text (default) or json: one JSON object per\n"
        "                         line (ts, level, process, node, msg)\n"
        "  --metrics ADDR         serve Prometheus metrics over HTTP at\n"
        "                         http://ADDR/metrics (host:port, e.g.\n"
        "                         127.0.0.1:9101; default off)\n"
        "  --tls-cluster yes|no   yes: the Raft and API ports take TLS only,\n"
        "                         with client certificates required, and this\n"
        "                         member dials the others over TLS (default\n"
        "                         no; docs/security.md \"TLS\"); needs the\n"
        "                         three files below, reloaded on SIGHUP\n"
        "  --tls-cert-file FILE   this member's certificate (PEM), presented\n"
        "                         as server and as client\n"
        "  --tls-key-file FILE    its private key (PEM, unencrypted)\n"
        "  --tls-ca-cert-file FILE\n"
        "                         the CA (PEM) that signs every member's and\n"
        "                         caller's certificate\n"
        "  --help                 show this text\n"
        "\n"
        "Durations accept ms, s or m suffixes. Logs go to stderr, one line "
        "per\n"
        "event. SIGTERM or SIGINT stop the member cleanly; so does its "
        "removal\n"
        "from the cluster (once a leader confirms it: libraft never tells "
        "it).\n"
        "Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on a bad "
        "flag.\n";

static const char *prog = "coord";

/* Parse "ID=RAFT/API,..." into cfg->members. */
static void parse_members(struct narf_coord_config *cfg, const char *text)
{
	char *copy = strdup(text), *save = NULL;

	if (copy == NULL)
		narf_usage_error(prog, "out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		struct narf_map_coord *m = &cfg->members[cfg->n_members];
		char *eq = strchr(tok, '=');
		char *slash = eq != NULL ? strchr(eq, '/') : NULL;
		char host[NARF_ADDR_SIZE];
		uint64_t id;
		int port;

		if (cfg->n_members == NARF_MAX_COORDS)
			narf_usage_error(prog, "--members: at most %d members",
			                 NARF_MAX_COORDS);
		if (eq == NULL || slash == NULL) {
			narf_usage_error(prog,
			                 "--members: '%s' is not "
			                 "ID=RAFT_ADDR/API_ADDR",
			                 tok);
			return; /* not reached: for static analysers */
		}
		*eq = '\0';
		*slash = '\0';
		if (narf_parse_u64(tok, 1, 1000000, &id) != 0 ||
		    narf_parse_hostport(eq + 1, host, sizeof(host), &port) !=
		            0 ||
		    narf_parse_hostport(slash + 1, host, sizeof(host), &port) !=
		            0)
			narf_usage_error(prog,
			                 "--members: bad id or address in "
			                 "'%s=%s/%s'",
			                 tok, eq + 1, slash + 1);
		for (unsigned i = 0; i < cfg->n_members; i++)
			if (cfg->members[i].id == id)
				narf_usage_error(prog, "--members: id %s twice",
				                 tok);
		m->id = id;
		snprintf(m->raft, sizeof(m->raft), "%s", eq + 1);
		snprintf(m->api, sizeof(m->api), "%s", slash + 1);
		cfg->n_members++;
	}
	free(copy);
}

/* A host:port flag value copied into out (NARF_ADDR_SIZE bytes). */
static void flag_addr(const char *name, const char *text, char *out)
{
	char host[NARF_ADDR_SIZE];
	int port;

	if (!narf_map_valid_addr(text) ||
	    narf_parse_hostport(text, host, sizeof(host), &port) != 0)
		narf_usage_error(prog, "%s '%s': expected host:port", name,
		                 text);
	snprintf(out, NARF_ADDR_SIZE, "%s", text);
}

/* "host:port,host:port": 1 to NARF_MAX_COORDS valid entries. */
static void check_addr_list(const char *name, const char *list)
{
	char copy[1024], *save = NULL, addr[NARF_ADDR_SIZE];
	unsigned n = 0;

	if (strlen(list) >= sizeof(copy))
		narf_usage_error(prog, "%s: list too long", name);
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		flag_addr(name, t, addr);
		n++;
	}
	if (n == 0 || n > NARF_MAX_COORDS)
		narf_usage_error(prog,
		                 "%s '%s': expected 1 to %d host:port "
		                 "addresses, comma separated",
		                 name, list, NARF_MAX_COORDS);
}

/* The settings the safety argument needs (docs/safety.md), and the
 * min ISR within the copies. */
static void check_timing(const struct narf_coord_config *cfg)
{
	char errmsg[NARF_ERRMSG_SIZE];

	if (cfg->heartbeat_timeout_ms * 2 > cfg->election_timeout_ms)
		narf_usage_error(prog,
		                 "--heartbeat-timeout must be at most "
		                 "half the election timeout");
	if (narf_timing_check(cfg->settings.node_timeout_ms,
	                      cfg->election_timeout_ms, errmsg) != 0)
		narf_usage_error(prog, "%s", errmsg);
	if (cfg->settings.min_isr > cfg->settings.replication)
		narf_usage_error(prog,
		                 "--min-isr %u is above --replicas %u: a slot "
		                 "never has more in-sync copies than copies",
		                 cfg->settings.min_isr,
		                 cfg->settings.replication);
}

/* Last of the checks, so a flag's own error is the one reported. */
static void require_secret(const struct narf_coord_config *cfg)
{
	if (!narf_auth_keys_can(&cfg->keys, NARF_AUTH_COORD))
		narf_usage_error(prog,
		                 "--cluster-secret-file is required: every "
		                 "caller proves the cluster secret "
		                 "(docs/security.md)");
}

/* --tls-*: all three files with --tls-cluster yes, none without; load
 * them into the server and client contexts (exit 2 on a bad file). */
static void parse_tls(struct narf_coord_config *cfg,
                      const struct narf_tls_config *files)
{
	struct narf_tls_config server = *files, client = *files;
	char errmsg[NARF_ERRMSG_SIZE];

	if (!cfg->tls) {
		if (files->cert_file != NULL || files->key_file != NULL ||
		    files->ca_file != NULL)
			narf_usage_error(prog,
			                 "--tls-cert-file, --tls-key-file and "
			                 "--tls-ca-cert-file go with "
			                 "--tls-cluster yes");
		return;
	}
	if (files->cert_file == NULL || files->key_file == NULL ||
	    files->ca_file == NULL)
		narf_usage_error(prog,
		                 "--tls-cluster yes needs --tls-cert-file, "
		                 "--tls-key-file and --tls-ca-cert-file");
	server.auth = NARF_TLS_AUTH_YES;
	client.client = true;
	if (narf_tls_init(&cfg->tls_server, &server, errmsg) != 0)
		narf_usage_error(prog, "%s", errmsg);
	if (narf_tls_init(&cfg->tls_client, &client, errmsg) != 0)
		narf_usage_error(prog, "%s", errmsg);
}

static void check_join_flags(struct narf_coord_config *cfg)
{
	if (cfg->n_members != 0)
		narf_usage_error(prog,
		                 "--join and --members exclude each other: "
		                 "--members is for the first trio, --join "
		                 "for a member added later");
	if (cfg->id == 0 || cfg->data_dir == NULL || !cfg->self_entry.raft[0] ||
	    !cfg->self_entry.api[0])
		narf_usage_error(prog,
		                 "--join needs --id, --data-dir, --raft and "
		                 "--api");
	if (strcmp(cfg->self_entry.raft, cfg->self_entry.api) == 0)
		narf_usage_error(prog, "--raft and --api must differ");
	cfg->self_entry.id = cfg->id;
	cfg->self = &cfg->self_entry;
	check_timing(cfg);
}

static void parse_flags(struct narf_coord_config *cfg, int argc, char **argv)
{
	enum {
		O_ID = 256,
		O_DIR,
		O_MEMBERS,
		O_REPLICAS,
		O_MOVES,
		O_MIN_ISR,
		O_ON_LOST,
		O_NODE_TIMEOUT,
		O_RETENTION,
		O_ACK,
		O_ELECTION,
		O_HEARTBEAT,
		O_RING_ENTRIES,
		O_RING_MB,
		O_LOG,
		O_LOGFMT,
		O_METRICS,
		O_JOIN,
		O_RAFT,
		O_API,
		O_SECRET,
		O_TLS,
		O_TLSCERT,
		O_TLSKEY,
		O_TLSCA,
		O_HELP
	};
	static const struct option opts[] = {
	        {"id", required_argument, NULL, O_ID},
	        {"data-dir", required_argument, NULL, O_DIR},
	        {"members", required_argument, NULL, O_MEMBERS},
	        {"replicas", required_argument, NULL, O_REPLICAS},
	        {"moves", required_argument, NULL, O_MOVES},
	        {"min-isr", required_argument, NULL, O_MIN_ISR},
	        {"on-lost", required_argument, NULL, O_ON_LOST},
	        {"node-timeout", required_argument, NULL, O_NODE_TIMEOUT},
	        {"removed-retention", required_argument, NULL, O_RETENTION},
	        {"ack", required_argument, NULL, O_ACK},
	        {"election-timeout", required_argument, NULL, O_ELECTION},
	        {"heartbeat-timeout", required_argument, NULL, O_HEARTBEAT},
	        {"delta-ring-entries", required_argument, NULL, O_RING_ENTRIES},
	        {"delta-ring-mb", required_argument, NULL, O_RING_MB},
	        {"log-level", required_argument, NULL, O_LOG},
	        {"log-format", required_argument, NULL, O_LOGFMT},
	        {"metrics", required_argument, NULL, O_METRICS},
	        {"join", required_argument, NULL, O_JOIN},
	        {"raft", required_argument, NULL, O_RAFT},
	        {"api", required_argument, NULL, O_API},
	        {"cluster-secret-file", required_argument, NULL, O_SECRET},
	        {"tls-cluster", required_argument, NULL, O_TLS},
	        {"tls-cert-file", required_argument, NULL, O_TLSCERT},
	        {"tls-key-file", required_argument, NULL, O_TLSKEY},
	        {"tls-ca-cert-file", required_argument, NULL, O_TLSCA},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0},
	};
	struct narf_tls_config tls = {0};
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_ID:
			if (narf_parse_u64(optarg, 1, 1000000, &cfg->id) != 0)
				narf_usage_error(prog,
				                 "--id '%s': expected a "
				                 "positive integer",
				                 optarg);
			break;
		case O_DIR:
			cfg->data_dir = optarg;
			break;
		case O_MEMBERS:
			parse_members(cfg, optarg);
			break;
		case O_REPLICAS:
			cfg->settings.replication = (unsigned)narf_flag_u64(
			        prog, "--replicas", optarg, 1, NARF_MAX_COPIES);
			break;
		case O_MOVES:
			cfg->settings.moves = (unsigned)narf_flag_u64(
			        prog, "--moves", optarg, 1, NARF_SLOTS);
			break;
		case O_MIN_ISR:
			cfg->settings.min_isr = (unsigned)narf_flag_u64(
			        prog, "--min-isr", optarg, 1, NARF_MAX_COPIES);
			break;
		case O_ON_LOST:
			if (narf_lost_policy_parse(optarg,
			                           &cfg->settings.on_lost) != 0)
				narf_usage_error(prog,
				                 "--on-lost '%s': expected "
				                 "empty or wait",
				                 optarg);
			break;
		case O_NODE_TIMEOUT:
			cfg->settings.node_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--node-timeout", optarg, 100, 60000);
			break;
		case O_RETENTION:
			cfg->settings.removed_retention_ms =
			        (unsigned)narf_flag_ms(prog,
			                               "--removed-retention",
			                               optarg, 0, INT32_MAX);
			break;
		case O_ACK:
			if (strcmp(optarg, "all") != 0 &&
			    strcmp(optarg, "primary") != 0)
				narf_usage_error(prog,
				                 "--ack '%s': expected "
				                 "all or primary",
				                 optarg);
			cfg->settings.ack = strcmp(optarg, "all") == 0
			                            ? NARF_ACK_ALL
			                            : NARF_ACK_PRIMARY;
			break;
		case O_ELECTION:
			cfg->election_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--election-timeout", optarg, 200, 10000);
			break;
		case O_HEARTBEAT:
			cfg->heartbeat_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--heartbeat-timeout", optarg, 10, 5000);
			break;
		case O_RING_ENTRIES:
			cfg->ring_entries = (unsigned)narf_flag_u64(
			        prog, "--delta-ring-entries", optarg, 1,
			        1000000);
			break;
		case O_RING_MB:
			cfg->ring_bytes =
			        (size_t)narf_flag_u64(prog, "--delta-ring-mb",
			                              optarg, 1, 4095)
			        << 20;
			break;
		case O_LOG:
			narf_log_flag_level(prog, optarg);
			break;
		case O_LOGFMT:
			narf_log_flag_format(prog, optarg);
			break;
		case O_METRICS: {
			char host[NARF_ADDR_SIZE];
			int port;

			if (narf_parse_hostport(optarg, host, sizeof(host),
			                        &port) != 0)
				narf_usage_error(prog,
				                 "--metrics '%s': expected "
				                 "host:port, e.g. "
				                 "127.0.0.1:9101",
				                 optarg);
			cfg->metrics_addr = optarg;
			break;
		}
		case O_JOIN:
			check_addr_list("--join", optarg);
			cfg->join = optarg;
			break;
		case O_RAFT:
		case O_API:
			flag_addr(o == O_RAFT ? "--raft" : "--api", optarg,
			          o == O_RAFT ? cfg->self_entry.raft
			                      : cfg->self_entry.api);
			break;
		case O_SECRET: {
			char errmsg[NARF_ERRMSG_SIZE];

			if (narf_auth_keys_from_file(&cfg->keys, optarg,
			                             errmsg) != 0)
				narf_usage_error(prog,
				                 "--cluster-secret-file %s",
				                 errmsg);
			if (!narf_auth_keys_can(&cfg->keys, NARF_AUTH_COORD))
				narf_usage_error(
				        prog,
				        "--cluster-secret-file %s: a "
				        "coordinator needs the cluster "
				        "secret, not a node key",
				        optarg);
			cfg->secret_file = optarg;
			break;
		}
		case O_TLS:
			cfg->tls =
			        narf_flag_yes_no(prog, "--tls-cluster", optarg);
			break;
		case O_TLSCERT:
			tls.cert_file = optarg;
			break;
		case O_TLSKEY:
			tls.key_file = optarg;
			break;
		case O_TLSCA:
			tls.ca_file = optarg;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			exit(0);
		default:
			narf_usage_error(prog,
			                 "unknown or incomplete flag '%s'",
			                 argv[optind - 1]);
		}
	}
	if (optind < argc)
		narf_usage_error(prog, "unexpected argument '%s'",
		                 argv[optind]);
	if (cfg->join != NULL) {
		check_join_flags(cfg);
		require_secret(cfg);
		parse_tls(cfg, &tls);
		return;
	}
	if (cfg->self_entry.raft[0] || cfg->self_entry.api[0])
		narf_usage_error(prog,
		                 "--raft and --api go with --join (with "
		                 "--members, this member's addresses come "
		                 "from the list)");
	if (cfg->id == 0 || cfg->data_dir == NULL || cfg->n_members == 0)
		narf_usage_error(prog,
		                 "--id, --data-dir and --members (or --join) "
		                 "are required");
	for (unsigned i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == cfg->id)
			cfg->self = &cfg->members[i];
	if (cfg->self == NULL)
		narf_usage_error(prog, "--id %llu is not listed in --members",
		                 (unsigned long long)cfg->id);
	check_timing(cfg);
	require_secret(cfg);
	parse_tls(cfg, &tls);
}

static void handle_closed_cb(uv_handle_t *h)
{
}

static void raft_closed_cb(struct narf_raftnode *rn)
{
	struct narf_coord *c = container_of(rn, struct narf_coord, rn);

	/* Proposals have all called back: connections can go now. */
	narf_api_close(c);
	uv_close((uv_handle_t *)&c->sigterm, handle_closed_cb);
	uv_close((uv_handle_t *)&c->sigint, handle_closed_cb);
	uv_close((uv_handle_t *)&c->sighup, handle_closed_cb);
	NARF_INFO("stopped");
}

static void signal_cb(uv_signal_t *s, int signum)
{
	char why[32];

	snprintf(why, sizeof(why), "signal %d", signum);
	narf_coord_stop(s->data, why);
}

/* SIGHUP: read --cluster-secret-file again (a rotation, docs/security.md),
 * and the TLS files. Connections already proven stay; new ones prove the
 * new keys. A file that does not parse, or holds no coordinator's secret,
 * changes nothing. */
/* SIGHUP with --tls-cluster yes: read the three files again into new
 * server and client contexts, used by connections made from then on;
 * open ones keep theirs. A file that fails keeps the contexts in use. */
static void reload_tls(struct narf_coord *c)
{
	struct narf_coord_config *cfg = &c->cfg;
	char errmsg[NARF_ERRMSG_SIZE], desc[256];

	if (!cfg->tls)
		return;
	if (narf_tls_reload(&cfg->tls_server, errmsg) != 0 ||
	    narf_tls_reload(&cfg->tls_client, errmsg) != 0) {
		NARF_ERROR("SIGHUP: TLS: %s: keeping the certificate in use",
		           errmsg);
		return;
	}
	narf_tls_describe(&cfg->tls_server, desc, sizeof(desc));
	NARF_INFO(
	        "SIGHUP: TLS reloaded: new connections get %s (open "
	        "connections keep theirs)",
	        desc);
}

static void sighup_cb(uv_signal_t *s, int signum)
{
	struct narf_coord *c = s->data;
	struct narf_auth_keys keys;
	char errmsg[NARF_ERRMSG_SIZE];

	reload_tls(c);
	if (narf_auth_keys_from_file(&keys, c->cfg.secret_file, errmsg) != 0) {
		NARF_ERROR(
		        "SIGHUP: --cluster-secret-file %s: keeping the "
		        "secret in use",
		        errmsg);
		return;
	}
	if (!narf_auth_keys_can(&keys, NARF_AUTH_COORD)) {
		NARF_ERROR(
		        "SIGHUP: %s holds a node key, not the cluster "
		        "secret: keeping the secret in use",
		        c->cfg.secret_file);
		return;
	}
	c->cfg.keys = keys;
	explicit_bzero(&keys, sizeof(keys));
	NARF_INFO("SIGHUP: cluster secret reloaded (%u secret%s)",
	          c->cfg.keys.n, c->cfg.keys.n == 1 ? "" : "s, for a rotation");
}

void narf_coord_stop(struct narf_coord *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	NARF_INFO("%s: stopping", why);
	narf_members_close(c);
	uv_timer_stop(&c->cron);
	uv_close((uv_handle_t *)&c->cron, handle_closed_cb);
	if (!uv_is_closing((uv_handle_t *)&c->listener))
		uv_close((uv_handle_t *)&c->listener, NULL);
	narf_httpd_close(&c->metrics);
	narf_raftnode_close(&c->rn, raft_closed_cb);
}

/* Is dir missing or empty? */
static bool pristine(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = true;

	if (d == NULL)
		return errno == ENOENT;
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 ||
		        strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/*
 * First start of a member with --join: check --id and the addresses
 * against the running cluster's coordinators, so a reused id or a taken
 * address fails now (exit 2) rather than when the operator adds it. This
 * runs before the loop exists, so the blocking client is fine here. An
 * unreachable cluster is not fatal: the member can wait to be added.
 */
static int check_join(const struct narf_coord_config *cfg)
{
	const struct narf_map_coord *self = cfg->self;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *req = json_pack("{s:s}", "op", "coords"), *reply = NULL, *e;
	json_t *next;
	size_t i;
	int rv;

	narf_jclient_set_credential(&cfg->keys, NARF_AUTH_OPERATOR);
	rv = narf_jclient_call_leader(cfg->join, req, 5000, &reply, errmsg);
	json_decref(req);
	if (rv != 0 || !json_is_true(json_object_get(reply, "ok"))) {
		NARF_WARN(
		        "--join %s: cannot check member %llu against the "
		        "cluster (%s): starting anyway",
		        cfg->join, (unsigned long long)cfg->id,
		        rv != 0 ? errmsg
		                : json_string_value(
		                          json_object_get(reply, "message")));
		json_decref(reply);
		return 0;
	}
	json_array_foreach(json_object_get(reply, "coordinators"), i, e)
	{
		const char *raft =
		        json_string_value(json_object_get(e, "raft"));
		const char *api = json_string_value(json_object_get(e, "api"));
		uint64_t id =
		        (uint64_t)json_integer_value(json_object_get(e, "id"));

		if (raft == NULL || api == NULL)
			continue;
		if (id == cfg->id && strcmp(raft, self->raft) == 0 &&
		    strcmp(api, self->api) == 0) {
			NARF_INFO(
			        "member %llu is already listed: waiting "
			        "for the leader to add it",
			        (unsigned long long)id);
			json_decref(reply);
			return 0;
		}
		if (id == cfg->id || !strcmp(raft, self->raft) ||
		    !strcmp(raft, self->api) || !strcmp(api, self->raft) ||
		    !strcmp(api, self->api)) {
			NARF_ERROR(
			        "--id %llu --raft %s --api %s: coordinator "
			        "%llu is %s/%s already: pick a new id and "
			        "free addresses",
			        (unsigned long long)cfg->id, self->raft,
			        self->api, (unsigned long long)id, raft, api);
			json_decref(reply);
			return 2;
		}
	}
	next = json_object_get(reply, "next_coord");
	if (json_is_integer(next) &&
	    cfg->id < (uint64_t)json_integer_value(next)) {
		NARF_ERROR(
		        "--id %llu was used before and coordinator ids are "
		        "never reused: use --id %lld or higher",
		        (unsigned long long)cfg->id,
		        (long long)json_integer_value(next));
		json_decref(reply);
		return 2;
	}
	json_decref(reply);
	NARF_INFO(
	        "not a member yet: add it with 'cachecli --coord %s coord "
	        "add %llu %s %s' (or 'coord replace OLD_ID %s %s')",
	        cfg->join, (unsigned long long)cfg->id, self->raft, self->api,
	        self->raft, self->api);
	return 0;
}

static int start(struct narf_coord *c)
{
	struct narf_raftnode_config rc = {
	        .id = c->cfg.id,
	        .data_dir = c->cfg.data_dir,
	        .raft_addr = c->cfg.self->raft,
	        .keys = &c->cfg.keys,
	        .members = c->cfg.members,
	        .n_members = c->cfg.n_members,
	        .election_timeout_ms = c->cfg.election_timeout_ms,
	        .heartbeat_timeout_ms = c->cfg.heartbeat_timeout_ms,
	        .join = c->cfg.join != NULL,
	        .tls_server = c->cfg.tls ? &c->cfg.tls_server : NULL,
	        .tls_client = c->cfg.tls ? &c->cfg.tls_client : NULL,
	        .ring_entries = c->cfg.ring_entries,
	        .ring_bytes = c->cfg.ring_bytes,
	};
	char errmsg[NARF_ERRMSG_SIZE];
	int rv;

	if (c->cfg.join != NULL && pristine(c->cfg.data_dir)) {
		/* (over TLS with the member's own client certificate) */
		if (c->cfg.tls)
			narf_jclient_set_tls(c->cfg.tls_client.ctx);
		rv = check_join(&c->cfg);
		if (rv != 0)
			return rv;
	}
	if (mkdir(c->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
		NARF_ERROR("cannot create --data-dir %s: %s", c->cfg.data_dir,
		           strerror(errno));
		return 1;
	}
	rv = narf_leader_init(&c->leader);
	if (rv != 0) {
		NARF_ERROR("out of memory");
		return 1;
	}
	if (c->cfg.tls) {
		char desc[256];

		narf_tls_describe(&c->cfg.tls_server, desc, sizeof(desc));
		NARF_INFO("TLS on the Raft and API ports: %s", desc);
	}
	rv = narf_api_listen(c, errmsg);
	if (rv != 0) {
		NARF_ERROR("%s", errmsg);
		return 1;
	}
	rv = narf_raftnode_start(&c->rn, &c->loop, &rc);
	if (rv != 0) {
		NARF_ERROR("%s", c->rn.errmsg);
		return 1;
	}
	if (c->cfg.metrics_addr != NULL) {
		rv = narf_httpd_start(&c->metrics, &c->loop,
		                      c->cfg.metrics_addr,
		                      narf_coord_metrics_handler, c, errmsg);
		if (rv != 0) {
			NARF_ERROR("%s", errmsg);
			return 1;
		}
		NARF_INFO("metrics on http://%s/metrics", c->cfg.metrics_addr);
	}
	narf_leader_start_cron(c);
	uv_signal_init(&c->loop, &c->sigterm);
	uv_signal_init(&c->loop, &c->sigint);
	c->sigterm.data = c->sigint.data = c;
	uv_signal_start(&c->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&c->sigint, signal_cb, SIGINT);
	uv_signal_init(&c->loop, &c->sighup);
	c->sighup.data = c;
	uv_signal_start(&c->sighup, sighup_cb, SIGHUP);
	NARF_INFO("member %llu: raft %s, api %s, data %s",
	          (unsigned long long)c->cfg.id, c->cfg.self->raft,
	          c->cfg.self->api, c->cfg.data_dir);
	return 0;
}

int main(int argc, char **argv)
{
	static struct narf_coord coord; /* large; keep it off the stack */
	struct narf_coord *c = &coord;
	int rv;

	narf_log_init(prog, NARF_LOG_INFO);
	c->start_ms = (int64_t)time(NULL) * 1000;
	narf_map_settings_default(&c->cfg.settings);
	c->cfg.election_timeout_ms = 300;
	c->cfg.heartbeat_timeout_ms = 50;
	parse_flags(&c->cfg, argc, argv);
	narf_log_set_id(c->cfg.id);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&c->loop);
	rv = start(c);
	if (rv != 0)
		return rv; /* the OS reclaims the half-built loop */
	uv_run(&c->loop, UV_RUN_DEFAULT);
	narf_leader_close(&c->leader);
	narf_blob_unref(c->full);
	narf_tls_close(&c->cfg.tls_server);
	narf_tls_close(&c->cfg.tls_client);
	rv = uv_loop_close(&c->loop);
	if (rv != 0)
		NARF_WARN("loop closed with handles open: %s", uv_strerror(rv));
	return 0;
}
