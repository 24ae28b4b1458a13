/* SPDX-License-Identifier: MIT */
/*
 * The lab monitor's data: every registered agent's newest reading, read
 * by one thread every monitor_poll seconds (all agents at once, with each
 * server's token), and kept in memory; history, "who was there" and usage
 * are asked of the agents when someone asks the hub (agentcall.c).
 *
 * A round replaces the whole list of servers under the lock, so a reader
 * never sees half a round.  An agent that did not answer is kept with the
 * time of its last answer and no reading at all: the pages must never
 * show an old or empty reading as the present one.  The overview's JSON
 * text is built at most once per round (and per view: with or without
 * member names), so a hundred open browsers cost a hundred copies of a
 * string, not a hundred walks of every GPU.
 *
 * Nothing an agent sends is trusted beyond being JSON: the overview takes
 * only the fields it names, and the browser side writes every value as
 * text.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "hub.h"
#include "log.h"
#include "validate.h"
#include "strutil.h"
#include "banned.h"

#define MONITOR_SAMPLE_MAX (4u << 20)    /* one agent's reading */
#define MONITOR_ASK_MAX (64u << 20)      /* a history answer */
#define MONITOR_ASK_TIMEOUT_MS 15000L
#define MONITOR_ROUND_TIMEOUT_MS 4000L
#define MONITOR_GPUS_MAX 64              /* GPUs of a server, as the agent counts them */
#define MONITOR_RESERVATIONS_MAX 256     /* shown of one server */

struct monitor_server {
	char name[HUB_NAME_MAX];
	bool reachable;
	long long last_contact_ms;    /* 0: never */
	char error[192];
	json_t *sample;               /* the agent's reading; NULL unless reachable */
};

struct monitor_view {
	char *text;
	size_t len;
	uint64_t round;               /* 0: not built */
	/* text compressed, [enc] (identity's unused), of packed_round */
	char *packed[3];
	size_t packed_len[3];
	uint64_t packed_round[3];
};

struct monitor {
	struct hub *hub;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	/* Under lock: */
	struct monitor_server *servers;
	size_t nservers;
	uint64_t round;
	long long round_ms;
	struct monitor_view views[2]; /* [names] */
};

static long long monitor_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void monitor_servers_free(struct monitor_server *servers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(servers[i].sample);
	free(servers);
}

static const struct monitor_server *monitor_find(const struct monitor_server *servers, size_t n,
						 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(servers[i].name, name) == 0)
			return &servers[i];
	return NULL;
}

/* ---- a round ------------------------------------------------------------------- */

json_t *monitor_parse_reading(const char *body, size_t len, char *err, size_t errlen)
{
	json_t *sample = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);

	if (!json_is_object(sample) || !json_is_object(json_object_get(sample, "host")) ||
	    !json_is_array(json_object_get(sample, "gpus")) ||
	    !json_is_array(json_object_get(sample, "processes"))) {
		json_decref(sample);
		set_error(err, errlen, "the agent's reading is not what this hub reads "
			 "(is the agent the same version?)");
		return NULL;
	}
	return sample;
}

/* A reading is used only if it has the parts the pages read. */
static json_t *monitor_parse_sample(const struct agentcall_answer *a, char *err, size_t errlen)
{
	if (!a->body || a->status != 200) {
		set_error(err, errlen, "%s", a->error[0] ? a->error : "no answer");
		return NULL;
	}
	return monitor_parse_reading(a->body, a->len, err, errlen);
}

static void monitor_take_answer(struct monitor_server *s, const struct monitor_server *before,
				const struct hub_server *row, const struct agentcall_answer *a,
				long long now)
{
	snprintf(s->name, sizeof(s->name), "%s", row->name);
	s->last_contact_ms = row->last_contact * 1000;
	if (before && before->last_contact_ms > s->last_contact_ms)
		s->last_contact_ms = before->last_contact_ms;
	s->sample = monitor_parse_sample(a, s->error, sizeof(s->error));
	if (s->sample) {
		s->reachable = true;
		s->last_contact_ms = now;
	}
}

/*
 * Ask every registered server's agent for path, all at once.  *rows and
 * *answers (n of each, answers[i] being rows[i]'s) are the caller's to free,
 * with each answer's body.  A server removed meanwhile gets an error.
 */
static int monitor_ask_every(struct monitor *m, const char *path, long timeout_ms,
			     struct hub_server **rows, struct agentcall_answer **answers, size_t *n)
{
	__do_free struct agentcall_target *targets = NULL;
	__do_free bool *removed = NULL;
	int ret;

	*answers = NULL;
	ret = hubdb_server_list(m->hub->db, rows, n);
	if (ret < 0)
		return ret;
	targets = calloc(*n ? *n : 1, sizeof(*targets));
	removed = calloc(*n ? *n : 1, sizeof(*removed));
	*answers = calloc(*n ? *n : 1, sizeof(**answers));
	if (!targets || !removed || !*answers) {
		free(*answers);
		*answers = NULL;
		free(*rows);
		*rows = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < *n; i++) {
		removed[i] = agentcall_target(m->hub->db, (*rows)[i].name, path, &targets[i]) < 0;
		if (removed[i])
			snprintf(targets[i].url, sizeof(targets[i].url), "about:removed");
	}
	agentcall_get(targets, *n, timeout_ms, MONITOR_SAMPLE_MAX, *answers);
	for (size_t i = 0; i < *n; i++)
		if (removed[i])
			snprintf((*answers)[i].error, sizeof((*answers)[i].error),
				 "the server was removed from the hub");
	return 0;
}

static void monitor_round(struct monitor *m)
{
	__do_free struct hub_server *rows = NULL;
	__do_free struct agentcall_answer *answers = NULL;
	struct monitor_server *servers, *old;
	size_t n = 0, nold;
	long long now;

	if (monitor_ask_every(m, "/api/v1/sample", MONITOR_ROUND_TIMEOUT_MS, &rows, &answers,
			      &n) < 0) {
		log_warn("monitor: cannot list the servers");
		return;
	}
	now = monitor_now_ms();
	servers = calloc(n ? n : 1, sizeof(*servers));
	if (!servers) {
		for (size_t i = 0; i < n; i++)
			agentcall_answer_free(&answers[i]);
		return;
	}

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		monitor_take_answer(&servers[i], monitor_find(m->servers, m->nservers, rows[i].name),
				    &rows[i], &answers[i], now);
		agentcall_answer_free(&answers[i]);
	}
	old = m->servers;
	nold = m->nservers;
	m->servers = servers;
	m->nservers = n;
	m->round++;
	m->round_ms = now;
	pthread_mutex_unlock(&m->lock);
	monitor_servers_free(old, nold);
}

static void *monitor_thread(void *arg)
{
	struct monitor *m = arg;
	long long poll_ms = (long long)m->hub->cfg.monitor_poll * 1000;

	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		struct timespec until;
		long long next;

		pthread_mutex_unlock(&m->lock);
		monitor_round(m);
		next = monitor_now_ms() + poll_ms;
		until.tv_sec = next / 1000;
		until.tv_nsec = (next % 1000) * 1000000;
		pthread_mutex_lock(&m->lock);
		while (!m->stopping && monitor_now_ms() < next)
			pthread_cond_timedwait(&m->wake, &m->lock, &until);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int monitor_start(struct hub *hub, struct monitor **out)
{
	struct monitor *m;
	int ret;

	*out = NULL;
	if (hub->cfg.monitor_poll == 0)
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->hub = hub;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	agentcall_init();
	ret = -pthread_create(&m->thread, NULL, monitor_thread, m);
	if (ret < 0) {
		pthread_cond_destroy(&m->wake);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void monitor_stop(struct monitor *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	monitor_servers_free(m->servers, m->nservers);
	for (size_t i = 0; i < ARRAY_SIZE(m->views); i++) {
		free(m->views[i].text);
		for (size_t e = 0; e < ARRAY_SIZE(m->views[i].packed); e++)
			free(m->views[i].packed[e]);
	}
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- the overview ---------------------------------------------------------------- */

static void monitor_copy_fields(json_t *to, json_t *from, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(from, keys[i]);

		if (v)
			json_object_set(to, keys[i], v);
	}
}

/* A process the agent marked as holding its GPU idle: the entry gets
 * "idle" and the longest "idle_seconds". */
static void monitor_note_idle(json_t *entry, json_t *process)
{
	json_t *seconds = json_object_get(process, "idle_seconds");
	json_int_t longest = json_integer_value(json_object_get(entry, "idle_seconds"));

	if (!json_is_true(json_object_get(process, "idle")))
		return;
	json_object_set_new(entry, "idle", json_true());
	if (json_is_integer(seconds) && json_integer_value(seconds) > longest)
		json_object_set_new(entry, "idle_seconds", json_integer(json_integer_value(seconds)));
}

/* Who has processes on GPU index: [{"member", "mem_used", "processes",
 * "idle"?, "idle_seconds"?}]. */
static json_t *monitor_gpu_members(json_t *processes, json_int_t index, bool names)
{
	json_t *by_member = json_object(), *list = json_array(), *p, *entry;
	const char *member;
	size_t i;

	json_array_foreach(processes, i, p) {
		json_t *gpu = json_object_get(p, "gpu"), *mem = json_object_get(p, "mem_used");
		const char *who = json_string_value(json_object_get(p, "member"));

		if (!json_is_integer(gpu) || json_integer_value(gpu) != index || !who)
			continue;
		entry = json_object_get(by_member, who);
		if (!entry) {
			entry = json_pack("{s:I}", "processes", (json_int_t)0);
			if (names)
				json_object_set_new(entry, "member", json_string(who));
			json_object_set_new(by_member, who, entry);
		}
		json_object_set_new(entry, "processes", json_integer(
			json_integer_value(json_object_get(entry, "processes")) + 1));
		if (json_is_integer(mem))
			json_object_set_new(entry, "mem_used", json_integer(
				json_integer_value(json_object_get(entry, "mem_used")) +
				json_integer_value(mem)));
		monitor_note_idle(entry, p);
	}
	json_object_foreach(by_member, member, entry)
		json_array_append(list, entry);
	json_decref(by_member);
	return list;
}

static json_t *monitor_gpu_view(json_t *gpu, json_t *processes, bool names)
{
	static const char *const keys[] = {
		"index", "uuid", "name", "lost", "util", "mem_used", "mem_total",
		"temperature", "power_w",
	};
	json_t *o = json_object(), *index = json_object_get(gpu, "index");

	monitor_copy_fields(o, gpu, keys, ARRAY_SIZE(keys));
	json_object_set_new(o, "members",
			    monitor_gpu_members(processes, json_integer_value(index), names));
	return o;
}

/*
 * The containers against their limits: how many are near their memory
 * limit (90 % or more) and how many processes the kernel killed for it,
 * for every viewer; each member's figures only where names are shown.
 */
static void monitor_limits_view(json_t *sample, bool names, json_t *o)
{
	static const char *const keys[] = { "member", "mem_used", "mem_limit", "pids", "oom_kills" };
	json_t *c, *list = names ? json_array() : NULL;
	json_int_t near = 0, kills = 0;
	size_t i;

	json_array_foreach(json_object_get(sample, "containers"), i, c) {
		json_int_t used = json_integer_value(json_object_get(c, "mem_used"));
		json_int_t limit = json_integer_value(json_object_get(c, "mem_limit"));

		near += limit > 0 && (double)used >= 0.9 * (double)limit;
		kills += json_integer_value(json_object_get(c, "oom_kills"));
		if (list) {
			json_t *entry = json_object();

			monitor_copy_fields(entry, c, keys, ARRAY_SIZE(keys));
			json_array_append_new(list, entry);
		}
	}
	json_object_set_new(o, "near_memory_limit", json_integer(near));
	json_object_set_new(o, "oom_kills", json_integer(kills));
	if (list)
		json_object_set_new(o, "container_limits", list);
}

/* Whether gpus is a short array of GPU indices. */
static bool monitor_gpu_indices(json_t *gpus)
{
	json_t *g;
	size_t i;

	if (!json_is_array(gpus) || json_array_size(gpus) > MONITOR_GPUS_MAX)
		return false;
	json_array_foreach(gpus, i, g)
		if (!json_is_integer(g) || json_integer_value(g) < 0 ||
		    json_integer_value(g) >= MONITOR_GPUS_MAX)
			return false;
	return true;
}

/* One reservation as the pages show it, or NULL when it is not of the
 * agent's shape: {"id", "gpus", "until_ms", "state": "active"|"queued",
 * "count"?}, and "member" where names are shown.  A queued one has no end
 * yet (the agent sends none), and no GPUs when it asks for any. */
static json_t *monitor_reservation_view(json_t *r, bool names)
{
	const char *state = json_string_value(json_object_get(r, "state"));
	const char *member = json_string_value(json_object_get(r, "member"));
	json_t *id = json_object_get(r, "id"), *until = json_object_get(r, "until_ms");
	json_t *gpus = json_object_get(r, "gpus"), *count = json_object_get(r, "count"), *o;
	bool queued = state && strcmp(state, "queued") == 0;

	if (!state || (strcmp(state, "active") != 0 && !queued) || !json_is_integer(id) ||
	    (!queued && !json_is_integer(until)) || !monitor_gpu_indices(gpus) ||
	    !member || validate_member_name(member, NULL, 0) < 0)
		return NULL;
	o = json_pack("{s:O, s:s, s:O}", "id", id, "state", state, "gpus", gpus);
	if (o && json_is_integer(until))
		json_object_set(o, "until_ms", until);
	if (o && json_is_integer(count) && json_integer_value(count) > 0 &&
	    json_integer_value(count) <= MONITOR_GPUS_MAX)
		json_object_set(o, "count", count);
	if (o && names)
		json_object_set_new(o, "member", json_string(member));
	return o;
}

/* Each GPU an active reservation holds gets "reserved": {"until_ms",
 * "member"?}: it is not free, even with nothing running on it. */
static void monitor_mark_reserved(json_t *gpus, json_t *reservation)
{
	json_t *index, *gpu, *mark;
	size_t i, k;

	if (strcmp(json_string_value(json_object_get(reservation, "state")), "active") != 0)
		return;
	mark = json_pack("{s:O}", "until_ms", json_object_get(reservation, "until_ms"));
	if (mark && json_object_get(reservation, "member"))
		json_object_set(mark, "member", json_object_get(reservation, "member"));
	json_array_foreach(json_object_get(reservation, "gpus"), k, index)
		json_array_foreach(gpus, i, gpu)
			if (json_equal(json_object_get(gpu, "index"), index))
				json_object_set(gpu, "reserved", mark);
	json_decref(mark);
}

/* The server's reservations and queued requests (the agent's
 * "reservations", when it has them), and the GPUs they hold marked. */
static void monitor_reservations_view(json_t *sample, bool names, json_t *o)
{
	json_t *list, *r;
	size_t i;

	if (!json_is_array(json_object_get(sample, "reservations")))
		return;
	list = json_array();
	json_array_foreach(json_object_get(sample, "reservations"), i, r) {
		json_t *view = i < MONITOR_RESERVATIONS_MAX ? monitor_reservation_view(r, names) : NULL;

		if (!view)
			continue;
		monitor_mark_reserved(json_object_get(o, "gpus"), view);
		json_array_append_new(list, view);
	}
	json_object_set_new(o, "reservations", list);
}

json_t *monitor_reading_view(json_t *sample, bool names)
{
	static const char *const keys[] = { "time", "gpu_ok", "gpu_note", "driver_version", "host" };
	json_t *o = json_object(), *gpus = json_array(), *processes, *gpu;
	size_t i;

	monitor_copy_fields(o, sample, keys, ARRAY_SIZE(keys));
	processes = json_object_get(sample, "processes");
	json_array_foreach(json_object_get(sample, "gpus"), i, gpu)
		json_array_append_new(gpus, monitor_gpu_view(gpu, processes, names));
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "containers",
			    json_integer((json_int_t)json_array_size(json_object_get(sample, "containers"))));
	monitor_limits_view(sample, names, o);
	monitor_reservations_view(sample, names, o);
	return o;
}

static json_t *monitor_contact(long long ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

static json_t *monitor_server_view(const struct monitor_server *s, bool names)
{
	json_t *o = json_pack("{s:s, s:b, s:o}", "name", s->name, "reachable", s->reachable,
			      "last_contact", monitor_contact(s->last_contact_ms));

	if (!s->reachable)
		json_object_set_new(o, "error", json_string(s->error));
	json_object_set_new(o, "sample", s->sample ? monitor_reading_view(s->sample, names)
						   : json_null());
	return o;
}

/* Under lock: rebuild the view's text when a round came since. */
static int monitor_view_build(struct monitor *m, bool names)
{
	struct monitor_view *v = &m->views[names];
	__do_json json_t *doc = NULL;
	json_t *servers;
	char *text;

	if (v->round == m->round && v->text)
		return 0;
	servers = json_array();
	for (size_t i = 0; servers && i < m->nservers; i++)
		json_array_append_new(servers, monitor_server_view(&m->servers[i], names));
	doc = json_pack("{s:I, s:I, s:b, s:o}", "time", (json_int_t)m->round_ms, "poll_ms",
			(json_int_t)m->hub->cfg.monitor_poll * 1000, "names", names,
			"servers", servers);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (!text)
		return -ENOMEM;
	free(v->text);
	v->text = text;
	v->len = strlen(text);
	v->round = m->round;
	return 0;
}

/* Under lock, the view built: its text in *enc, compressed once per round;
 * a short one as it is (*enc identity). */
static int monitor_view_pack(struct monitor_view *v, enum http_encoding *encp, const char **text,
			     size_t *len)
{
	enum http_encoding enc = *encp;
	int ret;

	if (v->len < HTTP_COMPRESS_MIN || enc >= ARRAY_SIZE(v->packed))
		enc = *encp = HTTP_ENCODING_IDENTITY;
	if (enc == HTTP_ENCODING_IDENTITY) {
		*text = v->text;
		*len = v->len;
		return 0;
	}
	if (!v->packed[enc] || v->packed_round[enc] != v->round) {
		free(v->packed[enc]);
		v->packed[enc] = NULL;
		ret = encoding_compress(enc, v->text, v->len, &v->packed[enc], &v->packed_len[enc]);
		if (ret < 0)
			return ret;
		v->packed_round[enc] = v->round;
	}
	*text = v->packed[enc];
	*len = v->packed_len[enc];
	return 0;
}

int monitor_overview(struct monitor *m, bool names, enum http_encoding *enc, char **text,
		     size_t *len)
{
	const char *kept = NULL;
	int ret;

	*text = NULL;
	pthread_mutex_lock(&m->lock);
	ret = monitor_view_build(m, names);
	if (ret == 0)
		ret = monitor_view_pack(&m->views[names], enc, &kept, len);
	if (ret == 0) {
		*text = malloc(*len + 1);
		if (*text) {
			memcpy(*text, kept, *len);
			(*text)[*len] = '\0';
		} else {
			ret = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* ---- a member's own view ------------------------------------------------------ */

static json_t *monitor_member_container(json_t *sample, const char *member)
{
	static const char *const keys[] = { "cpu_percent", "mem_used", "mem_limit", "pids", "oom_kills" };
	json_t *c, *o;
	size_t i;

	if (!sample)
		return json_pack("{s:s}", "state", "unknown");
	json_array_foreach(json_object_get(sample, "containers"), i, c) {
		const char *who = json_string_value(json_object_get(c, "member"));

		if (!who || strcmp(who, member) != 0)
			continue;
		o = json_pack("{s:s}", "state", "running");
		monitor_copy_fields(o, c, keys, ARRAY_SIZE(keys));
		return o;
	}
	return json_pack("{s:s}", "state", "stopped");
}

/* The member's processes (pids inside the container) and their GPUs. */
static void monitor_member_processes(json_t *sample, const char *member, json_t *procs,
				     json_t *gpus)
{
	static const char *const keys[] = {
		"gpu", "pid", "command", "started", "mem_used", "sm_util", "idle", "idle_seconds",
	};
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(sample, "processes"), i, p) {
		const char *who = json_string_value(json_object_get(p, "member"));
		json_t *o, *gpu = json_object_get(p, "gpu"), *seen;
		size_t k;
		bool known = false;

		if (!who || strcmp(who, member) != 0)
			continue;
		o = json_object();
		monitor_copy_fields(o, p, keys, ARRAY_SIZE(keys));
		json_array_append_new(procs, o);
		json_array_foreach(gpus, k, seen)
			known = known || json_equal(seen, gpu);
		if (!known && json_is_integer(gpu))
			json_array_append(gpus, gpu);
	}
}

/* The member's own reservations and queued requests, without the name. */
static json_t *monitor_member_reservations(json_t *sample, const char *member)
{
	json_t *list = json_array(), *r;
	size_t i;

	json_array_foreach(json_object_get(sample, "reservations"), i, r) {
		const char *who = json_string_value(json_object_get(r, "member"));
		json_t *view;

		if (i >= MONITOR_RESERVATIONS_MAX || !who || strcmp(who, member) != 0)
			continue;
		view = monitor_reservation_view(r, false);
		if (view)
			json_array_append_new(list, view);
	}
	return list;
}

void monitor_reading_member(json_t *sample, const char *member, json_t *o)
{
	json_t *procs = json_array(), *gpus = json_array();
	json_t *container = monitor_member_container(sample, member);

	if (sample)
		monitor_member_processes(sample, member, procs, gpus);
	/* The agent reads a few containers' cgroups per tick, in turn: one
	 * with processes on a GPU runs even if its turn has not come yet. */
	if (json_array_size(procs) > 0)
		json_object_set_new(container, "state", json_string("running"));
	json_object_set_new(o, "container", container);
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "processes", procs);
	json_object_set_new(o, "reservations", monitor_member_reservations(sample, member));
}

static json_t *monitor_member_server(const struct monitor_server *s, const char *name,
				     const char *member)
{
	json_t *o = json_pack("{s:s, s:b, s:o}", "name", name, "reachable", s && s->reachable,
			      "last_contact", monitor_contact(s ? s->last_contact_ms : 0));

	if (!s)
		json_object_set_new(o, "error", json_string("not read yet"));
	else if (!s->reachable)
		json_object_set_new(o, "error", json_string(s->error));
	monitor_reading_member(s ? s->sample : NULL, member, o);
	return o;
}

int monitor_member(struct monitor *m, const char *member, json_t **out)
{
	__do_free char (*names)[HUB_NAME_MAX] = NULL;
	json_t *servers;
	size_t n = 0;
	int ret;

	ret = hubdb_enabled_servers(m->hub->db, member, &names, &n);
	if (ret < 0)
		return ret;
	servers = json_array();
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; servers && i < n; i++)
		json_array_append_new(servers, monitor_member_server(
			monitor_find(m->servers, m->nservers, names[i]), names[i], member));
	pthread_mutex_unlock(&m->lock);
	*out = json_pack("{s:I, s:s, s:o}", "time", (json_int_t)monitor_now_ms(), "member", member,
			 "servers", servers);
	return *out ? 0 : -ENOMEM;
}

/* ---- asking agents now ------------------------------------------------------------ */

int monitor_ask(struct monitor *m, const char *server, const char *path, json_t **out,
		char *err, size_t errlen)
{
	struct agentcall_target target;
	struct agentcall_answer answer;
	int ret;

	*out = NULL;
	ret = agentcall_target(m->hub->db, server, path, &target);
	if (ret < 0)
		return ret;
	agentcall_get(&target, 1, MONITOR_ASK_TIMEOUT_MS, MONITOR_ASK_MAX, &answer);
	if (answer.status == 404) {
		set_error(err, errlen, "%s has nothing recorded then.", server);
		ret = -ENODATA;
	} else if (answer.status != 200) {
		set_error(err, errlen, "%s did not answer: %s.", server, answer.error);
		ret = -EHOSTUNREACH;
	} else {
		*out = json_loadb(answer.body, answer.len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			set_error(err, errlen, "%s answered something that is not a JSON object.",
				 server);
			ret = -EHOSTUNREACH;
		}
	}
	agentcall_answer_free(&answer);
	return ret;
}

void monitor_strip_names(json_t *answer)
{
	json_t *gpu, *member;
	size_t i;

	json_array_foreach(json_object_get(answer, "gpus"), i, gpu)
		if (json_object_get(gpu, "members"))
			json_object_set_new(gpu, "members", json_object());
	json_array_foreach(json_object_get(answer, "members"), i, member)
		json_object_del(member, "member");
}

/* ---- usage over every server --------------------------------------------------------- */

static void monitor_add_number(json_t *o, const char *key, json_t *value)
{
	json_object_set_new(o, key, json_real(json_number_value(json_object_get(o, key)) +
					      json_number_value(value)));
}

static void monitor_usage_rows(json_t *by_member, const char *server, json_t *rows)
{
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row) {
		const char *member = json_string_value(json_object_get(row, "member"));
		json_t *hours = json_object_get(row, "gpu_hours");
		json_t *mem = json_object_get(row, "gpu_mem_gib_hours");
		/* Agents from before idle time send none: 0. */
		json_t *idle = json_is_number(json_object_get(row, "idle_gpu_hours")) ?
			       json_object_get(row, "idle_gpu_hours") : NULL;
		json_t *total;

		/* Names go into the CSV as they are: only valid ones. */
		if (!member || validate_member_name(member, NULL, 0) < 0 ||
		    !json_is_number(hours) || !json_is_number(mem))
			continue;
		total = json_object_get(by_member, member);
		if (!total) {
			total = json_pack("{s:s, s:f, s:f, s:f, s:{}}", "member", member, "gpu_hours",
					  0.0, "gpu_mem_gib_hours", 0.0, "idle_gpu_hours", 0.0, "servers");
			json_object_set_new(by_member, member, total);
		}
		monitor_add_number(total, "gpu_hours", hours);
		monitor_add_number(total, "gpu_mem_gib_hours", mem);
		monitor_add_number(total, "idle_gpu_hours", idle);
		json_object_set_new(json_object_get(total, "servers"), server,
				    json_pack("{s:O, s:O, s:f}", "gpu_hours", hours,
					      "gpu_mem_gib_hours", mem, "idle_gpu_hours",
					      json_number_value(idle)));
	}
}

bool monitor_usage_add(json_t *by_member, const char *server, const char *body, size_t len)
{
	__do_json json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *rows = json_object_get(doc, "members");

	if (!json_is_array(rows))
		return false;
	monitor_usage_rows(by_member, server, rows);
	return true;
}

static int monitor_usage_order(const void *a, const void *b)
{
	double x = json_number_value(json_object_get(*(json_t *const *)a, "gpu_hours"));
	double y = json_number_value(json_object_get(*(json_t *const *)b, "gpu_hours"));

	return (x < y) - (x > y);
}

json_t *monitor_usage_list(json_t *by_member)
{
	size_t n = json_object_size(by_member), k = 0;
	__do_free json_t **items = calloc(n ? n : 1, sizeof(*items));
	json_t *list = json_array(), *v;
	const char *key;

	if (!items || !list) {
		json_decref(list);
		return NULL;
	}
	json_object_foreach(by_member, key, v)
		items[k++] = v;
	qsort(items, n, sizeof(*items), monitor_usage_order);
	for (size_t i = 0; i < n; i++)
		json_array_append(list, items[i]);
	return list;
}

int monitor_usage(struct monitor *m, long long from_ms, long long to_ms, json_t **out)
{
	__do_free struct hub_server *rows = NULL;
	__do_free struct agentcall_answer *answers = NULL;
	__do_json json_t *by_member = json_object();
	json_t *servers = json_array();
	char path[128];
	size_t n = 0;
	int ret;

	*out = NULL;
	if (!by_member || !servers) {
		json_decref(servers);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "/api/v1/usage?from=%lld&to=%lld", from_ms, to_ms);
	ret = monitor_ask_every(m, path, MONITOR_ASK_TIMEOUT_MS, &rows, &answers, &n);
	if (ret < 0) {
		json_decref(servers);
		return ret;
	}
	for (size_t i = 0; i < n; i++) {
		if (answers[i].status == 200 &&
		    monitor_usage_add(by_member, rows[i].name, answers[i].body, answers[i].len)) {
			json_array_append_new(servers, json_pack("{s:s, s:b}", "name", rows[i].name,
								 "ok", true));
		} else {
			json_array_append_new(servers, json_pack("{s:s, s:b, s:s}", "name",
				rows[i].name, "ok", false, "error",
				answers[i].error[0] ? answers[i].error : "the answer is not usage"));
		}
		agentcall_answer_free(&answers[i]);
	}
	*out = json_pack("{s:I, s:I, s:o, s:o*}", "from", (json_int_t)from_ms, "to",
			 (json_int_t)to_ms, "servers", servers, "members",
			 monitor_usage_list(by_member));
	return *out ? 0 : -ENOMEM;
}
