/*
 * cachecli's data commands (get, set, del, ttl): one Redis-protocol request
 * to a data node of the cluster.
 *
 * The map comes from the coordinator leader; the request goes to the key's
 * primary, else to any other node that is up (every node forwards requests
 * for slots it does not lead). Blocking sockets with one deadline for the
 * whole exchange: a CLI waits for one answer, it needs no event loop.
 */
#include "data.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/flags.h"
#include "common/jclient.h"
#include "common/map.h"
#include "common/resp.h"
#include "common/slot.h"

#define MAX_REPLY (64u << 20)

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events before deadline; 0 or NARF_ETIMEOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int64_t left = deadline - mono_ms();
	int n;

	if (left <= 0)
		return NARF_ETIMEOUT;
	do
		n = poll(&p, 1, (int)left);
	while (n < 0 && errno == EINTR);
	return n > 0 ? 0 : NARF_ETIMEOUT;
}

static int connect_to(const char *addr, int64_t deadline, int *out)
{
	char host[NARF_ADDR_SIZE];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int port, fd, err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (narf_parse_hostport(addr, host, sizeof(host), &port) != 0 ||
	    inet_pton(AF_INET,
	              strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	              &sa.sin_addr) != 1)
		return NARF_EINVAL;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NARF_EIO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return NARF_ECONNECT;
	}
	if (wait_fd(fd, POLLOUT, deadline) != 0) {
		close(fd);
		return NARF_ETIMEOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
		close(fd);
		return NARF_ECONNECT;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*out = fd;
	return 0;
}

/* Send req to addr and read one whole reply into reply. */
static int exchange(const char *addr,
                    const struct narf_buf *req,
                    int64_t deadline,
                    struct narf_buf *reply)
{
	size_t sent = 0, len;
	int fd, rv;

	rv = connect_to(addr, deadline, &fd);
	if (rv != 0)
		return rv;
	while (sent < req->len) {
		ssize_t n = send(fd, req->data + sent, req->len - sent,
		                 MSG_NOSIGNAL);

		if (n > 0) {
			sent += (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			if ((rv = wait_fd(fd, POLLOUT, deadline)) != 0)
				goto out;
		} else if (n < 0 && errno != EINTR) {
			rv = NARF_ECLOSED;
			goto out;
		}
	}
	reply->len = 0;
	for (;;) {
		ssize_t n;

		rv = narf_resp_reply_len(reply->data, reply->len, MAX_REPLY,
		                         &len);
		if (rv == NARF_RESP_DONE) {
			rv = 0;
			break;
		}
		if (rv == NARF_RESP_ERROR) {
			rv = NARF_EPROTO;
			break;
		}
		if (narf_buf_reserve(reply, 64 * 1024) != 0) {
			rv = NARF_ENOMEM;
			break;
		}
		n = recv(fd, reply->data + reply->len, reply->cap - reply->len,
		         0);
		if (n > 0) {
			reply->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			rv = NARF_ECLOSED;
			break;
		}
		if (errno == EAGAIN) {
			if ((rv = wait_fd(fd, POLLIN, deadline)) != 0)
				break;
		} else if (errno != EINTR) {
			rv = NARF_ECLOSED;
			break;
		}
	}
out:
	close(fd);
	return rv;
}

/* Addresses to try for slot s: its primary first, then every other up
 * node. Returns how many were written to addrs. */
static unsigned candidates(const struct narf_map *m,
                           unsigned s,
                           char (*addrs)[NARF_ADDR_SIZE],
                           unsigned max)
{
	const struct narf_map_node *p =
	        narf_map_node_get(m, m->slots[s].primary);
	unsigned n = 0;

	if (p != NULL && p->state == NARF_NODE_UP)
		snprintf(addrs[n++], NARF_ADDR_SIZE, "%s", p->addr);
	for (unsigned i = 0; i < m->n_nodes && n < max; i++)
		if (m->nodes[i].state == NARF_NODE_UP &&
		    (p == NULL || m->nodes[i].id != p->id))
			snprintf(addrs[n++], NARF_ADDR_SIZE, "%s",
			         m->nodes[i].addr);
	return n;
}

int narf_cli_data(const char *coords,
                  uint64_t timeout_ms,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen,
                  struct narf_buf *reply,
                  char *errmsg)
{
	int64_t deadline = mono_ms() + (int64_t)timeout_ms;
	json_t *req = json_pack("{s:s}", "op", "map"), *rep = NULL;
	char(*addrs)[NARF_ADDR_SIZE] = NULL;
	struct narf_map m;
	struct narf_buf cmd;
	unsigned n = 0, slot = 0;
	int rv;

	narf_map_init(&m, NULL);
	narf_buf_init(&cmd);
	rv = narf_jclient_call_leader(coords, req, (int)timeout_ms, &rep,
	                              errmsg);
	json_decref(req);
	if (rv != 0)
		goto out;
	if (!json_is_true(json_object_get(rep, "ok")) ||
	    narf_map_from_json(&m, json_object_get(rep, "map"), errmsg) != 0) {
		if (errmsg[0] == '\0')
			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "the coordinator sent no usable map");
		rv = NARF_EPROTO;
		goto out;
	}
	if (argc > 1)
		slot = narf_slot_of(argv[1], argvlen[1]);
	addrs = calloc(m.n_nodes + 1, sizeof(*addrs));
	if (addrs == NULL ||
	    narf_resp_command(&cmd, argc, argv, argvlen) != 0) {
		rv = NARF_ENOMEM;
		goto out;
	}
	n = candidates(&m, slot, addrs, m.n_nodes + 1);
	rv = NARF_ECONNECT;
	snprintf(errmsg, NARF_ERRMSG_SIZE, "no data node is up");
	for (unsigned i = 0; i < n && mono_ms() < deadline; i++) {
		rv = exchange(addrs[i], &cmd, deadline, reply);
		if (rv == 0)
			break;
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", addrs[i],
		         narf_strerror(rv));
	}
out:
	free(addrs);
	narf_buf_close(&cmd);
	narf_map_close(&m);
	json_decref(rep);
	return rv;
}
