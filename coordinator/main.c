/*
 * coord: one member of the coordinator trio (see coord.h).
 *
 * main() parses the flags, starts the Raft member and the API listener, and
 * runs the loop until SIGTERM or SIGINT, which close everything in order:
 * cron and listener first, then Raft (whose pending proposals fail), then
 * the client connections and the signal handles, so the loop ends empty.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/flags.h"
#include "common/log.h"
#include "coord.h"

static const char usage_text[] =
        "Usage: coord --id N --data-dir DIR --members LIST [options]\n"
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
        "  --data-dir DIR         Raft log and snapshots (created if "
        "missing);\n"
        "                         empty on the first start, which bootstraps\n"
        "  --members LIST         every member as ID=RAFT_ADDR/API_ADDR, "
        "comma\n"
        "                         separated, identical on all members, e.g.\n"
        "                         1=127.0.0.1:7101/127.0.0.1:7001,2=...,3=...\n"
        "Options (the first four are written into a new cluster's map;\n"
        "the `settings` API call changes them later):\n"
        "  --replicas N           copies per slot, primary included (1-5;\n"
        "                         default 2)\n"
        "  --node-timeout MS      heartbeat silence before a data node is\n"
        "                         marked down (100-60000; default 600)\n"
        "  --ack all|primary      default write acknowledgement (default all)\n"
        "  --moves N              slots moving at once while rebalancing\n"
        "                         (syncing a new copy or handing over;\n"
        "                         1-16384; default 1024)\n"
        "  --election-timeout MS  Raft election timeout (50-10000; default "
        "300)\n"
        "  --heartbeat-timeout MS Raft heartbeat interval (10-5000; default "
        "50)\n"
        "  --log-level LEVEL      debug, info, warn or error (default info)\n"
        "  --log-format FORMAT    text (default) or json: one JSON object per\n"
        "                         line (ts, level, process, node, msg)\n"
        "  --metrics ADDR         serve Prometheus metrics over HTTP at\n"
        "                         http://ADDR/metrics (host:port, e.g.\n"
        "                         127.0.0.1:9101; default off)\n"
        "  --help                 show this text\n"
        "\n"
        "Durations accept ms, s or m suffixes. Logs go to stderr, one line "
        "per\n"
        "event. SIGTERM or SIGINT stop the member cleanly. Exit status: 0 on "
        "a\n"
        "clean stop, 1 on a runtime failure, 2 on a bad flag.\n";

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

static void parse_flags(struct narf_coord_config *cfg, int argc, char **argv)
{
	enum {
		O_ID = 256,
		O_DIR,
		O_MEMBERS,
		O_REPLICAS,
		O_MOVES,
		O_NODE_TIMEOUT,
		O_ACK,
		O_ELECTION,
		O_HEARTBEAT,
		O_LOG,
		O_LOGFMT,
		O_METRICS,
		O_HELP
	};
	static const struct option opts[] = {
	        {"id", required_argument, NULL, O_ID},
	        {"data-dir", required_argument, NULL, O_DIR},
	        {"members", required_argument, NULL, O_MEMBERS},
	        {"replicas", required_argument, NULL, O_REPLICAS},
	        {"moves", required_argument, NULL, O_MOVES},
	        {"node-timeout", required_argument, NULL, O_NODE_TIMEOUT},
	        {"ack", required_argument, NULL, O_ACK},
	        {"election-timeout", required_argument, NULL, O_ELECTION},
	        {"heartbeat-timeout", required_argument, NULL, O_HEARTBEAT},
	        {"log-level", required_argument, NULL, O_LOG},
	        {"log-format", required_argument, NULL, O_LOGFMT},
	        {"metrics", required_argument, NULL, O_METRICS},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0},
	};
	uint64_t v;
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
			if (narf_parse_u64(optarg, 1, NARF_MAX_COPIES, &v) != 0)
				narf_usage_error(prog,
				                 "--replicas '%s': "
				                 "expected 1 to 5",
				                 optarg);
			cfg->settings.replication = (unsigned)v;
			break;
		case O_MOVES:
			if (narf_parse_u64(optarg, 1, NARF_SLOTS, &v) != 0)
				narf_usage_error(prog,
				                 "--moves '%s': "
				                 "expected 1 to 16384",
				                 optarg);
			cfg->settings.moves = (unsigned)v;
			break;
		case O_NODE_TIMEOUT:
			cfg->settings.node_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--node-timeout", optarg, 100, 60000);
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
			        prog, "--election-timeout", optarg, 50, 10000);
			break;
		case O_HEARTBEAT:
			cfg->heartbeat_timeout_ms = (unsigned)narf_flag_ms(
			        prog, "--heartbeat-timeout", optarg, 10, 5000);
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
	if (cfg->id == 0 || cfg->data_dir == NULL || cfg->n_members == 0)
		narf_usage_error(prog,
		                 "--id, --data-dir and --members are "
		                 "required");
	for (unsigned i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == cfg->id)
			cfg->self = &cfg->members[i];
	if (cfg->self == NULL)
		narf_usage_error(prog, "--id %llu is not listed in --members",
		                 (unsigned long long)cfg->id);
	if (cfg->heartbeat_timeout_ms * 2 > cfg->election_timeout_ms)
		narf_usage_error(prog,
		                 "--heartbeat-timeout must be at most "
		                 "half the election timeout");
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
	NARF_INFO("stopped");
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct narf_coord *c = s->data;

	if (c->closing)
		return;
	c->closing = true;
	NARF_INFO("signal %d: stopping", signum);
	uv_timer_stop(&c->cron);
	uv_close((uv_handle_t *)&c->cron, handle_closed_cb);
	if (!uv_is_closing((uv_handle_t *)&c->listener))
		uv_close((uv_handle_t *)&c->listener, NULL);
	narf_httpd_close(&c->metrics);
	narf_raftnode_close(&c->rn, raft_closed_cb);
}

static int start(struct narf_coord *c)
{
	struct narf_raftnode_config rc = {
	        .id = c->cfg.id,
	        .data_dir = c->cfg.data_dir,
	        .raft_addr = c->cfg.self->raft,
	        .members = c->cfg.members,
	        .n_members = c->cfg.n_members,
	        .election_timeout_ms = c->cfg.election_timeout_ms,
	        .heartbeat_timeout_ms = c->cfg.heartbeat_timeout_ms,
	};
	char errmsg[NARF_ERRMSG_SIZE];
	int rv;

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
		return 1; /* the OS reclaims the half-built loop */
	uv_run(&c->loop, UV_RUN_DEFAULT);
	narf_leader_close(&c->leader);
	rv = uv_loop_close(&c->loop);
	if (rv != 0)
		NARF_WARN("loop closed with handles open: %s", uv_strerror(rv));
	return 0;
}
