/*
 * datanode: the cache node. With --standalone (the default until the
 * cluster issue adds --join) it owns every slot and needs no coordinator:
 * `datanode --standalone --port 6379` is a Redis-compatible cache in one
 * command.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/flags.h"
#include "common/log.h"
#include "coll_config.h"
#include "server.h"

static const char usage_text[] =
        "Usage: datanode [--standalone] [--port P] [options]\n"
        "\n"
        "A narf data node: an in-memory cache speaking the Redis protocol\n"
        "(RESP2), so redis-cli, redis-benchmark and every Redis client work\n"
        "against it. --standalone (the default) owns every hash slot and\n"
        "needs no coordinator.\n"
        "\n"
        "Options:\n"
        "  --standalone             run alone, every slot (default)\n"
        "  --join COORDS            join the cluster whose coordinators'\n"
        "                           API addresses are COORDS (host:port,\n"
        "                           comma separated): register, heartbeat\n"
        "                           the leader, follow the cluster map,\n"
        "                           replicate and proxy (see README)\n"
        "  --redirect               with --join: answer -MOVED for keys\n"
        "                           led elsewhere instead of forwarding\n"
        "                           the request to their node\n"
        "  --sync-rate BYTES        with --join: most bytes per second\n"
        "                           this node sends to fill new copies\n"
        "                           (default 0 = no limit)\n"
        "  --on-stop leave|drain    with --join, what SIGTERM does: leave\n"
        "                           (default) first asks the cluster to\n"
        "                           move this node's slots away (when the\n"
        "                           other nodes up can hold every copy),\n"
        "                           serves until removed, then drains;\n"
        "                           drain answers requests in flight and\n"
        "                           stops (the cluster then fails over)\n"
        "  --leave-timeout DURATION longest wait for the leave on SIGTERM\n"
        "                           (e.g. 90s, 5m; default 2m)\n"
        "  --port P                 RESP port (default 6379; 0: no plain\n"
        "                           port, with --tls-port)\n"
        "  --bind ADDR              listen address (default 127.0.0.1;\n"
        "                           anything else is an explicit choice)\n"
        "  --max-memory BYTES       memory limit for the data, e.g. 512mb,\n"
        "                           2gb (default 0 = unlimited)\n"
        "  --eviction POLICY        allkeys-lru (default) or noeviction\n"
        "                           (writes then get -OOM at the limit)\n"
        "  --hash-max-listpack-entries N, --hash-max-listpack-value BYTES,\n"
        "  --set-max-intset-entries N, --zset-max-listpack-entries N,\n"
        "  --zset-max-listpack-value BYTES, --list-max-listpack-size N\n"
        "                           when collections change encoding, as\n"
        "                           Redis 7.0's options of those names\n"
        "                           (defaults 512, 64, 512, 128, 64, -2;\n"
        "                           CONFIG SET changes them at run time)\n"
        "  --requirepass-file FILE  clients must AUTH with the password in\n"
        "                           FILE (first line)\n"
        "  --users-file FILE        users (name, read|readwrite|admin, "
        "password\n"
        "                           hash from 'cachecli hash-password'), one\n"
        "                           per line; clients AUTH user password.\n"
        "                           With it, the default user is\n"
        "                           --requirepass-file's (disabled without\n"
        "                           one); docs/security.md\n"
        "  --protected-mode yes|no  with no client password, serve only\n"
        "                           clients from the loopback interface\n"
        "                           (127.0.0.0/8), as Redis: others get\n"
        "                           -DENIED and are closed; a peer node\n"
        "                           may still prove itself (default yes)\n"
        "  --cluster-secret-file FILE  required with --join: its first line\n"
        "                           is the cluster secret (the coordinators'\n"
        "                           --cluster-secret-file) or this node's\n"
        "                           node key, \"node:\" and 64 hex digits\n"
        "                           derived from the secret (it proves the\n"
        "                           node role and nothing more;\n"
        "                           `cachecli node-key` prints it). Peer\n"
        "                           links prove it both ways in NARF.AUTH;\n"
        "                           a node without it takes no peer links\n"
        "  --tls-port P             a second RESP port, TLS only (redis-cli\n"
        "                           --tls; docs/security.md \"TLS\");\n"
        "                           SIGHUP reloads the files below\n"
        "  --tls-cert-file FILE     with --tls-port: the server certificate\n"
        "                           (PEM, chain allowed)\n"
        "  --tls-key-file FILE      its private key (PEM, unencrypted)\n"
        "  --tls-ca-cert-file FILE  CA certificates (PEM) that sign client\n"
        "                           certificates\n"
        "  --tls-auth-clients yes|no|optional  client certificates: yes\n"
        "                           requires one from the CA (the default\n"
        "                           with --tls-ca-cert-file), optional\n"
        "                           verifies one when sent, no never asks\n"
        "                           (the default without a CA)\n"
        "  --tls-cluster yes|no     yes: the internal links use TLS too: peer\n"
        "                           links and calls to the coordinators go "
        "over\n"
        "                           TLS (this certificate and key presented, "
        "the\n"
        "                           CA verifying the other end), and the "
        "cluster\n"
        "                           map has this node at its TLS port, so\n"
        "                           redirects and CLUSTER SLOTS name TLS "
        "ports\n"
        "                           (--port still serves local clients). "
        "Needs\n"
        "                           --join, --tls-port, the three "
        "--tls-*-file\n"
        "                           and coordinators with --tls-cluster yes\n"
        "                           (default no)\n"
        "  --max-clients N          client connections (default 10000)\n"
        "  --max-peer-links N       connections of other nodes (proven peer\n"
        "                           links, and those beyond --max-clients\n"
        "                           given 2 s to prove the node role) on top\n"
        "                           of --max-clients (default 256; 0: peers\n"
        "                           share --max-clients)\n"
        "  --max-key-size BYTES     longest key (default 64kb)\n"
        "  --max-value-size BYTES   longest argument/value, like Redis's\n"
        "                           proto-max-bulk-len (default 512mb)\n"
        "  --max-multibulk N        most arguments per request (default\n"
        "                           1048576)\n"
        "  --max-query-buffer BYTES unparsed input per client (default 1gb)\n"
        "  --timeout SECONDS        close clients idle this long (default\n"
        "                           300; 0 = never)\n"
        "  --log-level LEVEL        debug, info, warn or error (default\n"
        "                           info)\n"
        "  --log-format FORMAT      text (default) or json: one JSON\n"
        "                           object per line (ts, level, process,\n"
        "                           node, msg)\n"
        "  --metrics ADDR           serve Prometheus metrics over HTTP at\n"
        "                           http://ADDR/metrics (host:port, e.g.\n"
        "                           127.0.0.1:9100; default off)\n"
        "  --help                   show this text\n"
        "\n"
        "Logs go to stderr, one line per event. SIGTERM or SIGINT stop the\n"
        "node (see --on-stop; a second signal skips the leave, a third\n"
        "stops at once). Exit status: 0 on a clean stop, 1 on a runtime "
        "failure, 2 on\n"
        "a bad flag.\n";

static const char *prog = "datanode";

/* Read a password or secret: the first line of a file, without its
 * newline; flag names the flag for errors. */
static char *read_secret(const char *flag, const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		narf_usage_error(prog, "%s %s: %s", flag, path,
		                 strerror(errno));
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0)
		narf_usage_error(prog, "%s %s: empty first line", flag, path);
	return strdup(line);
}

/* --tls-*: check them together and load the files (exit 2 on a bad one).
 * With --tls-cluster yes, a client context on the same files too: the
 * internal links present this node's certificate and verify the other
 * end against the CA. */
static void parse_tls(const struct narf_engine_config *cfg,
                      struct narf_dn *dn,
                      struct narf_tls_config *tls,
                      bool auth_set)
{
	char errmsg[NARF_ERRMSG_SIZE];
	struct narf_tls_config client;

	if (cfg->port == 0 && dn->tls_port == 0)
		narf_usage_error(prog, "--port 0 needs --tls-port");
	if (dn->tls_cluster &&
	    (!dn->cluster || dn->tls_port == 0 || tls->cert_file == NULL ||
	     tls->key_file == NULL || tls->ca_file == NULL))
		narf_usage_error(prog,
		                 "--tls-cluster yes needs --join, --tls-port, "
		                 "--tls-cert-file, --tls-key-file and "
		                 "--tls-ca-cert-file (the CA verifies the "
		                 "other nodes and the coordinators)");
	if (cfg->port == 0 && dn->cluster && !dn->tls_cluster)
		narf_usage_error(prog,
		                 "--join needs a plain --port without "
		                 "--tls-cluster yes: peer links then do not "
		                 "use TLS");
	if (dn->tls_port == 0)
		return;
	if (dn->tls_port == cfg->port)
		narf_usage_error(prog, "--tls-port and --port are both %d",
		                 cfg->port);
	if (tls->cert_file == NULL || tls->key_file == NULL)
		narf_usage_error(prog,
		                 "--tls-port needs --tls-cert-file and "
		                 "--tls-key-file");
	/* As Redis: a CA given means client certificates are required,
	 * unless --tls-auth-clients says otherwise. */
	if (!auth_set)
		tls->auth = tls->ca_file != NULL ? NARF_TLS_AUTH_YES
		                                 : NARF_TLS_AUTH_NO;
	if (narf_tls_init(&dn->tls, tls, errmsg) != 0)
		narf_usage_error(prog, "%s", errmsg);
	if (!dn->tls_cluster)
		return;
	client = *tls;
	client.client = true;
	client.insecure = false;
	client.auth = NARF_TLS_AUTH_NO;
	if (narf_tls_init(&dn->tls_client, &client, errmsg) != 0)
		narf_usage_error(prog, "--tls-cluster: %s", errmsg);
}

static void parse_flags(struct narf_engine_config *cfg,
                        struct narf_dn *dn,
                        int argc,
                        char **argv)
{
	char errmsg[NARF_ERRMSG_SIZE];
	enum {
		O_STANDALONE = 256,
		O_PORT,
		O_BIND,
		O_MAXMEM,
		O_EVICT,
		O_PASS,
		O_USERS,
		O_SECRET,
		O_CLIENTS,
		O_PEERLINKS,
		O_KEYSIZE,
		O_VALSIZE,
		O_MULTIBULK,
		O_QBUF,
		O_TIMEOUT,
		O_LOG,
		O_JOIN,
		O_REDIRECT,
		O_SYNCRATE,
		O_ONSTOP,
		O_LEAVETIMEOUT,
		O_LOGFMT,
		O_METRICS,
		O_PROTECTED,
		O_TLSPORT,
		O_TLSCERT,
		O_TLSKEY,
		O_TLSCA,
		O_TLSAUTH,
		O_TLSCLUSTER,
		O_HELP,
		O_COLL /* + i: the collection thresholds (coll_config.h) */
	};
	static const struct option opts[] = {
	        {"standalone", no_argument, NULL, O_STANDALONE},
	        {"port", required_argument, NULL, O_PORT},
	        {"bind", required_argument, NULL, O_BIND},
	        {"max-memory", required_argument, NULL, O_MAXMEM},
	        {"eviction", required_argument, NULL, O_EVICT},
	        {"requirepass-file", required_argument, NULL, O_PASS},
	        {"users-file", required_argument, NULL, O_USERS},
	        {"cluster-secret-file", required_argument, NULL, O_SECRET},
	        {"max-clients", required_argument, NULL, O_CLIENTS},
	        {"max-peer-links", required_argument, NULL, O_PEERLINKS},
	        {"max-key-size", required_argument, NULL, O_KEYSIZE},
	        {"max-value-size", required_argument, NULL, O_VALSIZE},
	        {"max-multibulk", required_argument, NULL, O_MULTIBULK},
	        {"max-query-buffer", required_argument, NULL, O_QBUF},
	        {"timeout", required_argument, NULL, O_TIMEOUT},
	        {"log-level", required_argument, NULL, O_LOG},
	        {"join", required_argument, NULL, O_JOIN},
	        {"redirect", no_argument, NULL, O_REDIRECT},
	        {"sync-rate", required_argument, NULL, O_SYNCRATE},
	        {"on-stop", required_argument, NULL, O_ONSTOP},
	        {"leave-timeout", required_argument, NULL, O_LEAVETIMEOUT},
	        {"log-format", required_argument, NULL, O_LOGFMT},
	        {"metrics", required_argument, NULL, O_METRICS},
	        {"protected-mode", required_argument, NULL, O_PROTECTED},
	        {"tls-port", required_argument, NULL, O_TLSPORT},
	        {"tls-cert-file", required_argument, NULL, O_TLSCERT},
	        {"tls-key-file", required_argument, NULL, O_TLSKEY},
	        {"tls-ca-cert-file", required_argument, NULL, O_TLSCA},
	        {"tls-auth-clients", required_argument, NULL, O_TLSAUTH},
	        {"tls-cluster", required_argument, NULL, O_TLSCLUSTER},
	        {"help", no_argument, NULL, O_HELP},
	        {"hash-max-listpack-entries", required_argument, NULL, O_COLL},
	        {"hash-max-listpack-value", required_argument, NULL,
	         O_COLL + 1},
	        {"set-max-intset-entries", required_argument, NULL, O_COLL + 2},
	        {"zset-max-listpack-entries", required_argument, NULL,
	         O_COLL + 3},
	        {"zset-max-listpack-value", required_argument, NULL,
	         O_COLL + 4},
	        {"list-max-listpack-size", required_argument, NULL, O_COLL + 5},
	        {NULL, 0, NULL, 0},
	};
	struct narf_tls_config tls = {0};
	bool tls_auth_set = false;
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_STANDALONE:
			cfg->standalone_flag = true;
			break;
		case O_REDIRECT:
			cfg->redirect = true;
			break;
		case O_SYNCRATE:
			dn->sync_rate =
			        narf_flag_bytes(prog, "--sync-rate", optarg, 0,
			                        UINT64_MAX / 1000);
			break;
		case O_ONSTOP:
			if (strcmp(optarg, "leave") != 0 &&
			    strcmp(optarg, "drain") != 0)
				narf_usage_error(prog,
				                 "--on-stop '%s': expected "
				                 "leave or drain",
				                 optarg);
			dn->leave_on_stop = strcmp(optarg, "leave") == 0;
			break;
		case O_LEAVETIMEOUT:
			dn->leave_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--leave-timeout", optarg, 0, 3600000);
			break;
		case O_PORT:
			cfg->port = (int)narf_flag_u64(prog, "--port", optarg,
			                               0, 65535);
			break;
		case O_BIND: {
			char host[64];
			int port;
			char probe[80];

			snprintf(probe, sizeof(probe), "%s:1", optarg);
			if (narf_parse_hostport(probe, host, sizeof(host),
			                        &port) != 0)
				narf_usage_error(prog,
				                 "--bind '%s': expected "
				                 "an IPv4 address",
				                 optarg);
			cfg->bind = optarg;
			break;
		}
		case O_MAXMEM:
			cfg->max_memory = narf_flag_bytes(
			        prog, "--max-memory", optarg, 0, UINT64_MAX);
			break;
		case O_EVICT:
			if (strcmp(optarg, "allkeys-lru") == 0)
				cfg->eviction = NARF_EVICT_ALLKEYS_LRU;
			else if (strcmp(optarg, "noeviction") == 0)
				cfg->eviction = NARF_EVICT_NOEVICTION;
			else
				narf_usage_error(prog,
				                 "--eviction '%s': "
				                 "expected allkeys-lru or "
				                 "noeviction",
				                 optarg);
			break;
		case O_PASS:
			free(cfg->requirepass);
			cfg->requirepass =
			        read_secret("--requirepass-file", optarg);
			cfg->requirepass_file = optarg;
			break;
		case O_USERS:
			narf_users_free(&cfg->users);
			if (narf_users_load(&cfg->users, optarg, errmsg) != 0)
				narf_usage_error(prog, "--users-file %s",
				                 errmsg);
			cfg->users_file = optarg;
			break;
		case O_SECRET:
			if (narf_auth_keys_from_file(&cfg->keys, optarg,
			                             errmsg) != 0)
				narf_usage_error(prog,
				                 "--cluster-secret-file %s",
				                 errmsg);
			cfg->secret_file = optarg;
			break;
		case O_CLIENTS:
			cfg->max_clients = (unsigned)narf_flag_u64(
			        prog, "--max-clients", optarg, 1, 1000000);
			break;
		case O_PEERLINKS:
			cfg->max_peer_links = (unsigned)narf_flag_u64(
			        prog, "--max-peer-links", optarg, 0, 100000);
			break;
		case O_KEYSIZE:
			cfg->max_key_size = narf_flag_bytes(
			        prog, "--max-key-size", optarg, 1, UINT32_MAX);
			break;
		case O_VALSIZE:
			cfg->limits.max_bulk =
			        narf_flag_bytes(prog, "--max-value-size",
			                        optarg, 1, UINT32_MAX);
			break;
		case O_MULTIBULK:
			cfg->limits.max_multibulk = narf_flag_u64(
			        prog, "--max-multibulk", optarg, 1, 1u << 30);
			break;
		case O_QBUF:
			cfg->max_query_buffer =
			        narf_flag_bytes(prog, "--max-query-buffer",
			                        optarg, 1024, UINT64_MAX);
			break;
		case O_TIMEOUT:
			cfg->idle_timeout_ms =
			        narf_flag_u64(prog, "--timeout", optarg, 0,
			                      1000000) *
			        1000;
			break;
		case O_LOG:
			narf_log_flag_level(prog, optarg);
			break;
		case O_LOGFMT:
			narf_log_flag_format(prog, optarg);
			break;
		case O_METRICS: {
			char host[64];
			int port;

			if (narf_parse_hostport(optarg, host, sizeof(host),
			                        &port) != 0)
				narf_usage_error(prog,
				                 "--metrics '%s': expected "
				                 "host:port, e.g. "
				                 "127.0.0.1:9100",
				                 optarg);
			dn->metrics_addr = optarg;
			break;
		}
		case O_JOIN:
			if (narf_member_parse_coords(&dn->member, optarg) != 0)
				narf_usage_error(prog,
				                 "--join '%s': expected "
				                 "host:port[,host:port...] "
				                 "of coordinators",
				                 optarg);
			dn->cluster = true;
			break;
		case O_PROTECTED:
			cfg->protected_mode = narf_flag_yes_no(
			        prog, "--protected-mode", optarg);
			break;
		case O_TLSPORT:
			dn->tls_port = (int)narf_flag_u64(prog, "--tls-port",
			                                  optarg, 0, 65535);
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
		case O_TLSAUTH:
			if (strcmp(optarg, "yes") == 0)
				tls.auth = NARF_TLS_AUTH_YES;
			else if (strcmp(optarg, "optional") == 0)
				tls.auth = NARF_TLS_AUTH_OPTIONAL;
			else if (strcmp(optarg, "no") == 0)
				tls.auth = NARF_TLS_AUTH_NO;
			else
				narf_usage_error(prog,
				                 "--tls-auth-clients '%s': "
				                 "expected yes, no or optional",
				                 optarg);
			tls_auth_set = true;
			break;
		case O_TLSCLUSTER:
			dn->tls_cluster =
			        narf_flag_yes_no(prog, "--tls-cluster", optarg);
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			exit(0);
		default:
			if (o >= O_COLL &&
			    o < O_COLL + narf_coll_option_count()) {
				char why[128];
				int i = o - O_COLL;

				if (!narf_coll_option_set(
				            &cfg->coll_limits, i, optarg,
				            strlen(optarg), why, sizeof(why)))
					narf_usage_error(
					        prog, "--%s '%s': %s",
					        narf_coll_option_name(i),
					        optarg, why);
				break;
			}
			narf_usage_error(prog,
			                 "unknown or incomplete flag '%s'",
			                 argv[optind - 1]);
		}
	}
	if (optind < argc)
		narf_usage_error(prog, "unexpected argument '%s'",
		                 argv[optind]);
	if (dn->cluster && cfg->standalone_flag)
		narf_usage_error(prog,
		                 "--join and --standalone exclude each "
		                 "other");
	cfg->standalone = !dn->cluster;
	parse_tls(cfg, dn, &tls, tls_auth_set);
	if (dn->cluster && !narf_auth_keys_can(&cfg->keys, NARF_AUTH_NODE))
		narf_usage_error(prog,
		                 "--join needs --cluster-secret-file: the "
		                 "coordinators and the other nodes take only "
		                 "callers that prove it (docs/security.md)");
	/* Secrets come from files only, never from the environment (a
	 * child's environment is readable where its argv is). */
	/* Entries store 32-bit lengths: the flags cap both sizes there. A
	 * value longer than --max-query-buffer is refused by that limit. */
	if (cfg->max_key_size > cfg->limits.max_bulk)
		cfg->max_key_size = cfg->limits.max_bulk;
}

/* Many clients need many descriptors: take the hard limit. clients counts
 * every connection the listener may hold (--max-clients and
 * --max-peer-links). */
static void raise_fd_limit(unsigned clients)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)clients + 32)
		NARF_WARN(
		        "open file limit %llu is below --max-clients plus "
		        "--max-peer-links (%u)",
		        (unsigned long long)rl.rlim_cur, clients);
}

static void member_map_cb(void *data,
                          const struct narf_map *old,
                          const struct narf_map *map,
                          const struct narf_map_dirty *dirty)
{
	(void)dirty; /* the replication core walks every slot for now */
	struct narf_dn *dn = data;

	narf_repl_map_changed(dn->repl, old, map);
	narf_dn_block_map_changed(dn);
}

static void member_lease_cb(void *data)
{
	struct narf_dn *dn = data;

	dn->progress = true;
}

int main(int argc, char **argv)
{
	static struct narf_dn dn;
	struct narf_engine_config cfg;
	char errmsg[NARF_ERRMSG_SIZE];
	int rv;

	narf_log_init(prog, NARF_LOG_INFO);
	narf_engine_config_default(&cfg);
	dn.sync_rate = NARF_DEFAULT_SYNC_RATE;
	dn.leave_on_stop = true;
	dn.leave_timeout_ms = NARF_DEFAULT_LEAVE_TIMEOUT_MS;
	/* Before --help too: `datanode --help | grep -q --join` (cluster.sh,
	 * under pipefail) must not die of SIGPIPE when grep quits early. */
	signal(SIGPIPE, SIG_IGN);
	parse_flags(&cfg, &dn, argc, argv);
	raise_fd_limit(cfg.max_clients + cfg.max_peer_links);
	narf_malloc_background();
	uv_loop_init(&dn.loop);
	rv = narf_engine_init(&dn.engine, &cfg, NULL, NULL);
	explicit_bzero(&cfg.keys, sizeof(cfg.keys)); /* the engine's copy */
	if (rv != 0) {
		NARF_ERROR("cannot start the engine: %s", narf_strerror(rv));
		return 1;
	}
	if (dn.cluster) {
		dn.repl =
		        narf_repl_create(&dn.loop, dn.engine.store, &dn.member);
		if (dn.repl == NULL) {
			NARF_ERROR("cannot start replication: out of memory");
			return 1;
		}
		dn.engine.repl = dn.repl;
		narf_repl_set_sync_rate(dn.repl, dn.sync_rate);
		narf_repl_set_keys(dn.repl, &dn.engine.cfg.keys);
		if (dn.tls_cluster) {
			narf_repl_set_tls(dn.repl, &dn.tls_client);
			dn.member.tls = &dn.tls_client;
		}
		narf_store_set_write_cb(dn.engine.store, narf_repl_store_write,
		                        dn.repl);
		narf_store_set_removed_cb(dn.engine.store,
		                          narf_repl_store_removed, dn.repl);
		dn.member.on_map = member_map_cb;
		dn.member.on_lease = member_lease_cb;
		dn.member.cb_data = &dn;
	}
	rv = narf_dn_start(&dn, errmsg);
	if (rv != 0) {
		NARF_ERROR("%s", errmsg);
		narf_engine_close(&dn.engine);
		return 1;
	}
	if (dn.metrics_addr != NULL &&
	    narf_httpd_start(&dn.metrics, &dn.loop, dn.metrics_addr,
	                     narf_dn_metrics_handler, &dn, errmsg) != 0) {
		NARF_ERROR("%s", errmsg);
		return 1;
	}
	if (dn.cluster) {
		char self[NARF_ADDR_SIZE];

		/* The address the map gives for us, which peers dial, the
		 * coordinators probe and redirects name: the TLS port in a
		 * TLS cluster (the plain one then serves local clients). */
		snprintf(self, sizeof(self), "%s:%d", cfg.bind,
		         dn.tls_cluster ? dn.tls_port : cfg.port);
		dn.engine.cluster_map = &dn.member.map;
		dn.engine.cluster_node_id = &dn.member.node_id;
		dn.engine.member = &dn.member;
		if (narf_member_start(&dn.member, &dn.loop, &dn.engine, self) !=
		    0) {
			NARF_ERROR("cannot start cluster membership");
			return 1;
		}
	}
	if (dn.metrics_addr != NULL)
		NARF_INFO("metrics on http://%s/metrics", dn.metrics_addr);
	NARF_INFO("%s on %s:%d, max memory %llu, %s%s%s",
	          dn.cluster ? "cluster member" : "standalone (every slot)",
	          cfg.bind, cfg.port, (unsigned long long)cfg.max_memory,
	          cfg.eviction == NARF_EVICT_NOEVICTION ? "noeviction"
	                                                : "allkeys-lru",
	          cfg.requirepass ? ", password required" : "",
	          dn.tls_cluster ? ", internal links over TLS (the map has "
	                           "us at the TLS port)"
	                         : "");
	uv_run(&dn.loop, UV_RUN_DEFAULT);
	narf_engine_close(&dn.engine);
	narf_repl_destroy(dn.repl);
	rv = uv_loop_close(&dn.loop);
	if (rv != 0)
		NARF_WARN("loop closed with handles open: %s", uv_strerror(rv));
	NARF_INFO("stopped");
	return 0;
}
