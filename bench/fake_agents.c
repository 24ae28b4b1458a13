/* SPDX-License-Identifier: MIT */
/*
 * Simulated agents for bench/monitor: COUNT HTTP servers on the loopback
 * ports FIRST..FIRST+COUNT-1, each answering GET /api/v1/sample as an
 * agent does (sample_json() in src/agent/sample.c): a server of GPUS
 * H100-like GPUs, PROCESSES processes of a few members on them and ten
 * containers, with readings that change on every request.  The bearer
 * token is checked for its form only (64 hex digits, else 401); any other
 * path is 404.  One libmicrohttpd daemon, with its own thread, per agent.
 *
 * It prints "ready" once every port listens and exits 0 on SIGTERM or
 * SIGINT.
 *
 * Usage: fake_agents --first-port P --count N [--gpus G] [--processes K]
 * (defaults: 8 GPUs, 6 processes, which leave 2 of 8 GPUs free)
 * Exit codes: 0 ok, 1 failed (a port could not be opened), 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "banned.h"

#define FAKE_AGENTS_MAX 1000
#define FAKE_AGENTS_GPUS_MAX 64
#define FAKE_AGENTS_PROCESSES_MAX 1024
#define FAKE_AGENTS_CONTAINERS 10
#define FAKE_AGENTS_TOKEN_HEX 64
#define FAKE_AGENTS_GPU_MEMORY 85520809984LL   /* an H100 80GB HBM3, as NVML says */

static const char *const fake_agents_members[] = {
	"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
};
#define FAKE_AGENTS_NMEMBERS (sizeof(fake_agents_members) / sizeof(fake_agents_members[0]))

struct fake_agents_agent {
	unsigned index;
	unsigned gpus;
	unsigned processes;
	uint64_t random;              /* xorshift64 state; one daemon thread uses it */
	struct MHD_Daemon *daemon;
};

static uint64_t fake_agents_next(struct fake_agents_agent *a)
{
	a->random ^= a->random << 13;
	a->random ^= a->random >> 7;
	a->random ^= a->random << 17;
	return a->random;
}

/* A value in [lo, hi]. */
static double fake_agents_between(struct fake_agents_agent *a, double lo, double hi)
{
	return lo + (hi - lo) * (double)(fake_agents_next(a) >> 11) / (double)(1ULL << 53);
}

static long long fake_agents_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Process p's GPU and member: spread over the GPUs, a few members per server. */
static unsigned fake_agents_process_gpu(const struct fake_agents_agent *a, unsigned p)
{
	return (p * 5) % a->gpus;
}

static const char *fake_agents_process_member(const struct fake_agents_agent *a, unsigned p)
{
	return fake_agents_members[(a->index + p / 2) % FAKE_AGENTS_NMEMBERS];
}

static json_t *fake_agents_host(struct fake_agents_agent *a)
{
	double load = fake_agents_between(a, 4, 40);

	return json_pack("{s:i, s:f, s:I, s:I, s:[f, f, f], s:I, s:I, s:f, s:f, s:f, s:f}",
			 "ncpus", 224, "cpu_percent", fake_agents_between(a, 2, 60),
			 "mem_total", (json_int_t)2164195631104LL,
			 "mem_available", (json_int_t)fake_agents_between(a, 9e11, 1.9e12),
			 "load", load, load * 0.9, load * 0.8,
			 "disk_total", (json_int_t)7681501126656LL,
			 "disk_used", (json_int_t)fake_agents_between(a, 1e12, 5e12),
			 "disk_read_rate", fake_agents_between(a, 0, 5e8),
			 "disk_write_rate", fake_agents_between(a, 0, 2e8),
			 "net_rx_rate", fake_agents_between(a, 0, 1e9),
			 "net_tx_rate", fake_agents_between(a, 0, 1e9));
}

static json_t *fake_agents_processes(struct fake_agents_agent *a, long long *mem_per_gpu)
{
	json_t *list = json_array();
	char command[64];

	for (unsigned p = 0; list && p < a->processes; p++) {
		unsigned gpu = fake_agents_process_gpu(a, p);
		long long mem = (long long)fake_agents_between(a, 2e9, 3.6e10);

		mem_per_gpu[gpu] += mem;
		snprintf(command, sizeof(command), "python3 train.py --run %u", p);
		json_array_append_new(list, json_pack("{s:i, s:s, s:I, s:I, s:s, s:I, s:I, s:i}",
			"gpu", (int)gpu, "member", fake_agents_process_member(a, p),
			"pid", (json_int_t)(100 + p), "host_pid", (json_int_t)(200000 + a->index * 1000 + p),
			"command", command, "started", (json_int_t)1763800000000LL + p * 60000,
			"mem_used", (json_int_t)mem, "sm_util", (int)fake_agents_between(a, 10, 99)));
	}
	return list;
}

/* The sorted names of the members with a process on gpu. */
static json_t *fake_agents_gpu_members(const struct fake_agents_agent *a, unsigned gpu)
{
	json_t *names = json_array();

	for (size_t m = 0; names && m < FAKE_AGENTS_NMEMBERS; m++)
		for (unsigned p = 0; p < a->processes; p++)
			if (fake_agents_process_gpu(a, p) == gpu &&
			    strcmp(fake_agents_process_member(a, p), fake_agents_members[m]) == 0) {
				json_array_append_new(names, json_string(fake_agents_members[m]));
				break;
			}
	return names;
}

static json_t *fake_agents_gpus(struct fake_agents_agent *a, const long long *mem_per_gpu)
{
	json_t *list = json_array();
	char uuid[64], bus_id[32];

	for (unsigned g = 0; list && g < a->gpus; g++) {
		bool busy = mem_per_gpu[g] > 0;
		long long mem = mem_per_gpu[g] + (busy ? 536870912LL : 0);

		snprintf(uuid, sizeof(uuid), "GPU-%08x-%04x-%04x-%04x-%012x", 0x5eed0000u + a->index,
			 g, 0x4000u, 0x8000u, a->index * 64 + g);
		snprintf(bus_id, sizeof(bus_id), "00000000:%02X:00.0", 0x18 + g * 0x10);
		if (mem > FAKE_AGENTS_GPU_MEMORY)
			mem = FAKE_AGENTS_GPU_MEMORY;
		json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:i, s:f, s:o}",
			"index", (int)g, "uuid", uuid, "name", "NVIDIA H100 80GB HBM3", "bus_id", bus_id,
			"lost", false, "util", busy ? (int)fake_agents_between(a, 40, 100) : 0,
			"mem_used", (json_int_t)mem, "mem_total", (json_int_t)FAKE_AGENTS_GPU_MEMORY,
			"temperature", busy ? (int)fake_agents_between(a, 55, 78) : (int)fake_agents_between(a, 28, 35),
			"power_w", busy ? fake_agents_between(a, 300, 700) : fake_agents_between(a, 68, 75),
			"members", fake_agents_gpu_members(a, g)));
	}
	return list;
}

static json_t *fake_agents_containers(struct fake_agents_agent *a)
{
	json_t *list = json_array();

	for (unsigned c = 0; list && c < FAKE_AGENTS_CONTAINERS; c++)
		json_array_append_new(list, json_pack("{s:s, s:f, s:I, s:I}",
			"member", fake_agents_members[c % FAKE_AGENTS_NMEMBERS],
			"cpu_percent", fake_agents_between(a, 0, 800),
			"mem_used", (json_int_t)fake_agents_between(a, 1e9, 1.2e11),
			"mem_limit", (json_int_t)137438953472LL));
	return list;
}

static char *fake_agents_sample(struct fake_agents_agent *a)
{
	long long mem_per_gpu[FAKE_AGENTS_GPUS_MAX] = { 0 };
	char server[32];
	json_t *processes, *sample;
	char *text;

	snprintf(server, sizeof(server), "fake%02u", a->index);
	processes = fake_agents_processes(a, mem_per_gpu);
	sample = json_pack("{s:I, s:s, s:b, s:s, s:s, s:o, s:o, s:o, s:o}",
			   "time", (json_int_t)fake_agents_now_ms(), "server", server, "gpu_ok", true,
			   "gpu_note", "", "driver_version", "550.54.15", "host", fake_agents_host(a),
			   "gpus", fake_agents_gpus(a, mem_per_gpu), "processes", processes,
			   "containers", fake_agents_containers(a));
	text = sample ? json_dumps(sample, JSON_COMPACT) : NULL;
	json_decref(sample);
	return text;
}

static bool fake_agents_authorized(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != FAKE_AGENTS_TOKEN_HEX)
		return false;
	return strspn(h + 7, "0123456789abcdefABCDEF") == FAKE_AGENTS_TOKEN_HEX;
}

static enum MHD_Result fake_agents_reply(struct MHD_Connection *c, unsigned status, char *body,
					 const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result fake_agents_request(void *cls, struct MHD_Connection *c, const char *url,
					   const char *method, const char *version,
					   const char *upload, size_t *upload_size, void **state)
{
	struct fake_agents_agent *a = cls;
	char *body;

	if (strcmp(url, "/api/v1/sample") != 0)
		return fake_agents_reply(c, MHD_HTTP_NOT_FOUND, strdup("not found\n"), "text/plain");
	if (!fake_agents_authorized(c))
		return fake_agents_reply(c, MHD_HTTP_UNAUTHORIZED, strdup("unauthorized\n"), "text/plain");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return fake_agents_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET only\n"), "text/plain");
	body = fake_agents_sample(a);
	if (!body)
		return fake_agents_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strdup("no sample\n"), "text/plain");
	return fake_agents_reply(c, MHD_HTTP_OK, body, "application/json");
}

static int fake_agents_start(struct fake_agents_agent *a, unsigned port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->random = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)port << 20) ^ (uint64_t)time(NULL);
	a->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port,
				     NULL, NULL, fake_agents_request, a,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				     MHD_OPTION_END);
	return a->daemon ? 0 : -EADDRINUSE;
}

static unsigned fake_agents_number(const char *text, unsigned min, unsigned max, bool *ok)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		*ok = false;
	return (unsigned)v;
}

static void fake_agents_usage(FILE *out)
{
	fprintf(out, "usage: fake_agents --first-port P --count N [--gpus G] [--processes K]\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "first-port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "gpus", required_argument, NULL, 'g' },
		{ "processes", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fake_agents_agent agents[FAKE_AGENTS_MAX];
	unsigned first = 0, count = 0, gpus = 8, processes = 6;
	bool ok = true;
	sigset_t stop;
	int opt, sig, status = 0;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'p': first = fake_agents_number(optarg, 1, 65535, &ok); break;
		case 'n': count = fake_agents_number(optarg, 1, FAKE_AGENTS_MAX, &ok); break;
		case 'g': gpus = fake_agents_number(optarg, 1, FAKE_AGENTS_GPUS_MAX, &ok); break;
		case 'k': processes = fake_agents_number(optarg, 0, FAKE_AGENTS_PROCESSES_MAX, &ok); break;
		case 'h': fake_agents_usage(stdout); return 0;
		default: fake_agents_usage(stderr); return 2;
		}
	}
	if (!ok || optind != argc || first == 0 || count == 0 || first + count - 1 > 65535) {
		fake_agents_usage(stderr);
		return 2;
	}

	/* Blocked before the daemons' threads start, so that they inherit the
	 * mask and only sigwait() below receives the signal. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (unsigned i = 0; i < count; i++) {
		agents[i] = (struct fake_agents_agent){ .index = i, .gpus = gpus, .processes = processes };
		if (fake_agents_start(&agents[i], first + i) < 0) {
			fprintf(stderr, "fake_agents: cannot listen on 127.0.0.1:%u\n", first + i);
			status = 1;
			break;
		}
	}
	if (status == 0) {
		printf("ready\n");
		fflush(stdout);
		sigwait(&stop, &sig);
	}
	for (unsigned i = 0; i < count; i++)
		if (agents[i].daemon)
			MHD_stop_daemon(agents[i].daemon);
	return status;
}
