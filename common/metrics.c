/*
 * Prometheus text exposition builder: see metrics.h.
 */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void narf_metrics_init(struct narf_metrics *m, struct narf_buf *out)
{
	m->out = out;
	m->failed = false;
}

void narf_metrics_begin(struct narf_metrics *m,
                        struct narf_buf *out,
                        const char *process)
{
	narf_metrics_init(m, out);
	narf_metrics_family(m, "narf_build_info", NARF_METRIC_GAUGE,
	                    "Always 1; labels say what runs.");
	narf_metrics_sample(m, "narf_build_info", "process", process, "version",
	                    NARF_VERSION, 1);
}

bool narf_metrics_failed(const struct narf_metrics *m)
{
	return m->failed;
}

static void put(struct narf_metrics *m, const char *s, size_t n)
{
	if (!m->failed && narf_buf_append(m->out, s, n) != 0)
		m->failed = true;
}

static void puts_(struct narf_metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

/* Escape text: backslash and newline always, double quote in labels. */
static void put_escaped(struct narf_metrics *m, const char *s, bool quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quote)
			esc = "\\\"";
		if (esc == NULL)
			continue;
		put(m, run, (size_t)(s - run));
		puts_(m, esc);
		run = s + 1;
	}
	put(m, run, (size_t)(s - run));
}

void narf_metrics_family(struct narf_metrics *m,
                         const char *name,
                         enum narf_metric_type type,
                         const char *help)
{
	puts_(m, "# HELP ");
	puts_(m, name);
	puts_(m, " ");
	put_escaped(m, help, false);
	puts_(m, "\n# TYPE ");
	puts_(m, name);
	puts_(m, type == NARF_METRIC_COUNTER ? " counter\n" : " gauge\n");
}

static void put_name_labels(struct narf_metrics *m,
                            const char *name,
                            const char *key1,
                            const char *val1,
                            const char *key2,
                            const char *val2)
{
	puts_(m, name);
	if (key1 == NULL)
		return;
	puts_(m, "{");
	puts_(m, key1);
	puts_(m, "=\"");
	put_escaped(m, val1 ? val1 : "", true);
	puts_(m, "\"");
	if (key2 != NULL) {
		puts_(m, ",");
		puts_(m, key2);
		puts_(m, "=\"");
		put_escaped(m, val2 ? val2 : "", true);
		puts_(m, "\"");
	}
	puts_(m, "}");
}

void narf_metrics_sample(struct narf_metrics *m,
                         const char *name,
                         const char *key1,
                         const char *val1,
                         const char *key2,
                         const char *val2,
                         double value)
{
	char num[64];

	put_name_labels(m, name, key1, val1, key2, val2);
	if (isnan(value))
		snprintf(num, sizeof(num), " NaN\n");
	else if (isinf(value))
		snprintf(num, sizeof(num), " %sInf\n", value > 0 ? "+" : "-");
	else if (value == floor(value) && fabs(value) < 1e15)
		snprintf(num, sizeof(num), " %.0f\n", value);
	else {
		/* The shortest of 15 or 17 digits that reads back exactly. */
		snprintf(num, sizeof(num), " %.15g\n", value);
		if (strtod(num, NULL) != value)
			snprintf(num, sizeof(num), " %.17g\n", value);
	}
	puts_(m, num);
}

void narf_metrics_sample_u64(struct narf_metrics *m,
                             const char *name,
                             const char *key1,
                             const char *val1,
                             uint64_t value)
{
	char num[32];

	put_name_labels(m, name, key1, val1, NULL, NULL);
	snprintf(num, sizeof(num), " %" PRIu64 "\n", value);
	puts_(m, num);
}

void narf_metrics_one(struct narf_metrics *m,
                      const char *name,
                      enum narf_metric_type type,
                      const char *help,
                      double value)
{
	narf_metrics_family(m, name, type, help);
	narf_metrics_sample(m, name, NULL, NULL, NULL, NULL, value);
}

void narf_metrics_one_u64(struct narf_metrics *m,
                          const char *name,
                          enum narf_metric_type type,
                          const char *help,
                          uint64_t value)
{
	narf_metrics_family(m, name, type, help);
	narf_metrics_sample_u64(m, name, NULL, NULL, value);
}

uint64_t narf_proc_rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	uint64_t n = 0;
	struct dirent *de;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

void narf_metrics_process(struct narf_metrics *m, int64_t start_ms)
{
	struct rusage ru;
	double cpu = 0;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		      ((double)ru.ru_utime.tv_usec +
		       (double)ru.ru_stime.tv_usec) /
		              1e6;
	narf_metrics_one_u64(
	        m, "process_resident_memory_bytes", NARF_METRIC_GAUGE,
	        "Resident memory size in bytes.", narf_proc_rss_bytes());
	narf_metrics_one(m, "process_cpu_seconds_total", NARF_METRIC_COUNTER,
	                 "Total user and system CPU time spent in seconds.",
	                 cpu);
	narf_metrics_one_u64(m, "process_open_fds", NARF_METRIC_GAUGE,
	                     "Number of open file descriptors.", open_fds());
	narf_metrics_one(m, "process_start_time_seconds", NARF_METRIC_GAUGE,
	                 "Start time of the process since unix epoch in "
	                 "seconds.",
	                 (double)start_ms / 1000.0);
}
