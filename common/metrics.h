/*
 * Prometheus text exposition (format 0.0.4) builder.
 *
 *   # HELP narf_commands_total Commands run, by command.
 *   # TYPE narf_commands_total counter
 *   narf_commands_total{command="get"} 12
 *
 * A family (HELP and TYPE) is written once, then its samples, all together:
 * the format wants a family's samples in one group. Label values and help
 * text are escaped as the format says (backslash, double quote, newline).
 * Names are the caller's constants and are not checked. Allocation failures
 * are sticky: narf_metrics_failed() says whether the text is whole.
 *
 * Loop-free; the processes' /metrics handlers (datanode/metrics.c,
 * coordinator/metrics.c) fill one per scrape.
 */
#ifndef NARF_METRICS_H
#define NARF_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define NARF_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum narf_metric_type {
	NARF_METRIC_COUNTER,
	NARF_METRIC_GAUGE,
};

struct narf_metrics {
	struct narf_buf *out; /* borrowed */
	bool failed;
};

void narf_metrics_init(struct narf_metrics *m, struct narf_buf *out);

/* narf_metrics_init() and the narf_build_info family every process starts
 * its exposition with (process: "coord" or "datanode"). */
void narf_metrics_begin(struct narf_metrics *m,
                        struct narf_buf *out,
                        const char *process);

/* "# HELP name help" and "# TYPE name counter|gauge". */
void narf_metrics_family(struct narf_metrics *m,
                         const char *name,
                         enum narf_metric_type type,
                         const char *help);

/* One sample with up to two labels (a NULL key ends the list early). */
void narf_metrics_sample(struct narf_metrics *m,
                         const char *name,
                         const char *key1,
                         const char *val1,
                         const char *key2,
                         const char *val2,
                         double value);

/* The same for an integer value (exact beyond 2^53). */
void narf_metrics_sample_u64(struct narf_metrics *m,
                             const char *name,
                             const char *key1,
                             const char *val1,
                             uint64_t value);

/* A family with a single unlabelled sample. */
void narf_metrics_one(struct narf_metrics *m,
                      const char *name,
                      enum narf_metric_type type,
                      const char *help,
                      double value);
void narf_metrics_one_u64(struct narf_metrics *m,
                          const char *name,
                          enum narf_metric_type type,
                          const char *help,
                          uint64_t value);

bool narf_metrics_failed(const struct narf_metrics *m);

/* This process's resident memory in bytes (/proc/self/statm; 0 when it
 * cannot be read). INFO's used_memory_rss uses it too. */
uint64_t narf_proc_rss_bytes(void);

/* The standard process families: process_resident_memory_bytes,
 * process_cpu_seconds_total, process_open_fds and
 * process_start_time_seconds (start_ms: wall clock ms at start). */
void narf_metrics_process(struct narf_metrics *m, int64_t start_ms);

#endif /* NARF_METRICS_H */
