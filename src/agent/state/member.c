/* SPDX-License-Identifier: MIT */
/*
 * Members' host side: the allocation of their ids, SSH port and address,
 * their host account (whose login shell is gpubox), the ranges root may
 * map for their container in /etc/subuid and /etc/subgid, and the keys of
 * their host login.  Host accounts are made with the shadow tools
 * (useradd, usermod, userdel) given argument vectors, never a shell.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <shadow/subid.h>

#include "agent.h"
#include "container/container.h"
#include "net/net.h"
#include "state/state.h"
#include "array.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define MEMBER_MAX_KEYS 64
#define SUBID_FILE_MAX (4 * 1024 * 1024)

/* The ranges granted in an /etc/subuid-style file ("name:first:count"),
 * to owner only, or to anyone when owner is NULL. */
static int member_read_subid_file(const char *path, const char *owner, struct id_range **ranges,
				  size_t *n, size_t *cap)
{
	__do_free char *text = NULL;
	char *line, *save = NULL;
	int ret;

	ret = fsutil_read_file(path, SUBID_FILE_MAX, &text, NULL);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot read %s", path);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *first = strchr(line, ':'), *count;
		uint32_t f, c;

		if (!first)
			continue;
		if (owner && ((size_t)(first - line) != strlen(owner) ||
			      strncmp(line, owner, strlen(owner)) != 0))
			continue;
		count = strchr(first + 1, ':');
		if (!count)
			continue;
		*count++ = '\0';
		if (parse_uint32(first + 1, &f) < 0 || parse_uint32(strip(count), &c) < 0 || c == 0)
			continue;
		if (array_reserve(ranges, cap, *n, sizeof(**ranges)) < 0)
			return -ENOMEM;
		(*ranges)[(*n)++] = (struct id_range){ f, c };
	}
	return 0;
}

static bool member_subid_file_grants(const char *path, uint32_t base)
{
	__do_free struct id_range *ranges = NULL;
	size_t n = 0, cap = 0;

	if (member_read_subid_file(path, "root", &ranges, &n, &cap) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ranges[i].first == base && ranges[i].count == SUBID_COUNT)
			return true;
	return false;
}

/* Whether root holds exactly this block in /etc/subuid and /etc/subgid. */
static bool member_subid_granted(uint32_t base)
{
	return member_subid_file_grants("/etc/subuid", base) &&
	       member_subid_file_grants("/etc/subgid", base);
}

static int member_run(const char *const argv[], char *err, size_t errlen)
{
	char output[1024] = "";
	struct spawn_options opts = { .capture = output, .capture_size = sizeof(output), .timeout = 60 };
	int ret = spawn_run(argv, &opts);

	if (ret == 0)
		return 0;
	set_error(err, errlen, "%s failed: %s", argv[0], strip(output));
	log_error("%s", err);
	return ret < 0 ? ret : -EIO;
}

/*
 * Granting goes through usermod (it places the exact block we chose);
 * taking back goes through libsubid, since usermod refuses to change a
 * user with running processes, and root always has some.
 */
static int member_grant_subids(uint32_t base, char *err, size_t errlen)
{
	char range[48];
	const char *argv[] = { "usermod", "--add-subuids", range, "--add-subgids", range, "root", NULL };

	snprintf(range, sizeof(range), "%u-%u", base, base + SUBID_COUNT - 1);
	return member_run(argv, err, errlen);
}

static void member_ungrant_subids(uint32_t base)
{
	struct subordinate_range range = { .owner = "root", .start = base, .count = SUBID_COUNT };

	if (!subid_ungrant_uid_range(&range) || !subid_ungrant_gid_range(&range))
		log_warn("could not take back ids %u-%u from /etc/subuid or /etc/subgid", base,
			 base + SUBID_COUNT - 1);
}

static int member_ensure_group(const char *group, char *err, size_t errlen)
{
	const char *argv[] = { "groupadd", "--system", group, NULL };

	if (getgrnam(group))
		return 0;
	return member_run(argv, err, errlen);
}

static int member_write_host_keys(struct agent *a, const char *name)
{
	__do_free char *keys = NULL;
	char path[PATH_MAX];
	int ret;

	ret = fsutil_mkdir_p(a->cfg.authorized_keys_dir, 0755);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", a->cfg.authorized_keys_dir);
	/* The host login runs gpubox only: no forwarding of any kind, a
	 * terminal for the confirmations. */
	ret = db_keys_text(a->db, name, "restrict,pty ", &keys);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/%s", a->cfg.authorized_keys_dir, name);
	ret = fsutil_write_atomic(path, keys, strlen(keys), 0644);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write %s", path);
	return 0;
}

static int member_create_account(struct agent *a, const struct member_record *rec,
				 char *err, size_t errlen);

int member_sync_host(struct agent *a, const struct member_record *rec)
{
	char err[512];
	int ret;

	/* An agent killed half-way through user add left the record only. */
	if (!getpwnam(rec->name)) {
		log_warn("the host account of %s is missing; creating it", rec->name);
		ret = member_create_account(a, rec, err, sizeof(err));
		if (ret < 0)
			return ret;
	}

	if (!member_subid_granted(rec->subid_base)) {
		ret = member_grant_subids(rec->subid_base, err, sizeof(err));
		if (ret < 0)
			return ret;
	}
	return member_write_host_keys(a, rec->name);
}

/* Parse and check every key; fills lines and fingerprints (caller frees). */
static int member_parse_keys(json_t *keys, char ***lines, char ***fingerprints, size_t *n,
			     char *err, size_t errlen)
{
	__do_strv char **l = NULL;
	__do_strv char **f = NULL;
	size_t count = json_array_size(keys);
	struct ssh_key *key;
	json_t *value;
	size_t i;

	if (!json_is_array(keys) || count == 0) {
		set_error(err, errlen, "give at least one SSH public key (--key FILE)");
		return -EINVAL;
	}
	if (count > MEMBER_MAX_KEYS) {
		set_error(err, errlen, "at most %d keys per member", MEMBER_MAX_KEYS);
		return -EINVAL;
	}
	l = calloc(count + 1, sizeof(*l));
	f = calloc(count + 1, sizeof(*f));
	key = malloc(sizeof(*key));
	if (!l || !f || !key) {
		free(key);
		return -ENOMEM;
	}
	json_array_foreach(keys, i, value) {
		char why[256];
		int ret;

		if (!json_is_string(value)) {
			free(key);
			set_error(err, errlen, "key %zu is not text", i + 1);
			return -EINVAL;
		}
		ret = ssh_key_parse(json_string_value(value), key, why, sizeof(why));
		if (ret < 0) {
			free(key);
			set_error(err, errlen, "key %zu: %s", i + 1, why);
			return ret;
		}
		if (asprintf(&l[i], "%s %s%s%s", key->type, key->base64, key->comment[0] ? " " : "",
			     key->comment) < 0 || !(f[i] = strdup(key->fingerprint))) {
			free(key);
			return -ENOMEM;
		}
	}
	free(key);
	*lines = move_ptr(l);
	*fingerprints = move_ptr(f);
	*n = count;
	return 0;
}

/* Lowest free uid in the range that no host account holds either. */
static int member_alloc_uid(struct agent *a, const struct member_record *list, size_t n,
			    uint32_t *out)
{
	__do_free uint32_t *used = calloc(n + 1024, sizeof(*used));
	size_t nused = 0;

	if (!used)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		used[nused++] = list[i].uid;
	for (;;) {
		int ret = ids_lowest_free(&a->cfg.uid_range, used, nused, out);
		if (ret < 0)
			return ret;
		if (!getpwuid(*out) && !getgrgid(*out))
			return 0;
		if (nused == n + 1024)
			return -ENOSPC;
		used[nused++] = *out;
	}
}

static int member_alloc_subid(struct agent *a, const struct member_record *list, size_t n,
			      uint32_t *out)
{
	__do_free struct id_range *taken = NULL;
	size_t ntaken = 0, cap = 0;
	int ret;

	ret = member_read_subid_file("/etc/subuid", NULL, &taken, &ntaken, &cap);
	if (ret == 0)
		ret = member_read_subid_file("/etc/subgid", NULL, &taken, &ntaken, &cap);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (ARRAY_RESERVE(taken, cap, ntaken) < 0)
			return -ENOMEM;
		taken[ntaken++] = (struct id_range){ list[i].subid_base, SUBID_COUNT };
	}
	return ids_subid_block(&a->cfg.subid_range, taken, ntaken, out);
}

static int member_alloc_port_and_address(struct agent *a, const struct member_record *list,
					 size_t n, struct member_record *rec)
{
	__do_free uint32_t *ports = calloc(n + 1, sizeof(*ports));
	__do_free uint32_t *indexes = calloc(n + 1, sizeof(*indexes));
	struct config_range all = { 0, UINT32_MAX - 1 };
	char address[32];
	int ret;

	if (!ports || !indexes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ports[i] = list[i].ssh_port;
		indexes[i] = list[i].address_index;
	}
	ret = ids_lowest_free(&a->cfg.ssh_port_range, ports, n, &rec->ssh_port);
	if (ret < 0)
		return ret;
	ret = ids_lowest_free(&all, indexes, n, &rec->address_index);
	if (ret < 0)
		return ret;
	return network_member_address(&a->subnet, rec->address_index, address, sizeof(address));
}

static int member_allocate(struct agent *a, struct member_record *rec, char *err, size_t errlen)
{
	__do_free struct member_record *list = NULL;
	size_t n = 0;
	int ret;

	ret = db_member_list(a->db, &list, &n);
	if (ret < 0)
		return ret;
	ret = member_alloc_uid(a, list, n, &rec->uid);
	if (ret < 0) {
		set_error(err, errlen, "no free uid left in uid_range %u-%u; widen it in gpubox.conf",
			 a->cfg.uid_range.first, a->cfg.uid_range.last);
		return ret;
	}
	ret = member_alloc_subid(a, list, n, &rec->subid_base);
	if (ret < 0) {
		set_error(err, errlen, "no free block of %u ids left in subid_range; widen it in gpubox.conf",
			 SUBID_COUNT);
		return ret;
	}
	ret = member_alloc_port_and_address(a, list, n, rec);
	if (ret < 0) {
		set_error(err, errlen, "no free SSH port or address left; widen ssh_port_range or bridge_address");
		return ret;
	}
	return 0;
}

static int member_create_account(struct agent *a, const struct member_record *rec,
				 char *err, size_t errlen)
{
	char uid[16];
	const char *useradd[] = { "useradd", "--uid", uid, "--user-group",
				  "--groups", a->cfg.member_group, "--no-create-home",
				  "--home-dir", "/", "--shell", a->cfg.member_shell,
				  "--comment", "gpubox member", rec->name, NULL };
	int ret;

	ret = member_ensure_group(a->cfg.member_group, err, errlen);
	if (ret < 0)
		return ret;
	snprintf(uid, sizeof(uid), "%u", rec->uid);
	return member_run(useradd, err, errlen);
}

/* The name is free here: no record, no host account or group. */
static int member_name_free(struct agent *a, const char *name, char *err, size_t errlen)
{
	struct member_record rec;

	if (db_member_get(a->db, name, &rec) == 0) {
		set_error(err, errlen, "member %s exists already", name);
		return -EEXIST;
	}
	if (getpwnam(name) || getgrnam(name)) {
		set_error(err, errlen, "a host account or group named %s exists already; choose another name",
			 name);
		return -EEXIST;
	}
	return 0;
}

/* Record rec with its keys (and, from the hub, its mark), then make its
 * host account; nothing is left half made.  rec is then read back with
 * what the database gave it (its identity).  Caller holds members_lock. */
static int member_create(struct agent *a, struct member_record *rec, const char *const *lines,
			 const char *const *fingerprints, size_t nkeys, bool from_hub,
			 char *err, size_t errlen)
{
	int ret = db_begin(a->db);

	if (ret == 0) {
		ret = db_member_insert(a->db, rec);
		if (ret == 0)
			ret = db_keys_set(a->db, rec->name, lines, fingerprints, nkeys);
		if (ret == 0 && from_hub)
			ret = db_hub_member_add(a->db, rec->name);
		if (ret == 0)
			ret = db_commit(a->db);
		else
			db_rollback(a->db);
		if (ret < 0 && !err[0])
			set_error(err, errlen, "could not record member %s", rec->name);
	}
	if (ret == 0) {
		ret = member_create_account(a, rec, err, errlen);
		if (ret == 0)
			ret = member_sync_host(a, rec);
		if (ret < 0) {
			/* Leave nothing half made: the records go with the account. */
			const char *userdel[] = { "userdel", rec->name, NULL };
			char ignored[256];

			if (getpwnam(rec->name))
				member_run(userdel, ignored, sizeof(ignored));
			db_member_delete(a->db, rec->name);
			if (!err[0])
				set_error(err, errlen, "could not set up the host account of %s", rec->name);
		}
	}
	if (ret < 0)
		return ret;
	log_info("member %s added%s: uid %u, ids %u-%u, ssh port %u", rec->name,
		 from_hub ? " from the hub" : "", rec->uid, rec->subid_base,
		 rec->subid_base + SUBID_COUNT - 1, rec->ssh_port);
	return db_member_get(a->db, rec->name, rec);
}

int member_add(struct agent *a, const char *name, json_t *keys, struct member_record *out,
	       char *err, size_t errlen)
{
	__do_strv char **lines = NULL;
	__do_strv char **fingerprints = NULL;
	struct member_record rec = { 0 };
	size_t nkeys = 0;
	int ret;

	if (validate_member_name(name, err, errlen) < 0)
		return -EINVAL;
	ret = member_parse_keys(keys, &lines, &fingerprints, &nkeys, err, errlen);
	if (ret < 0)
		return ret;

	pthread_mutex_lock(&a->members_lock);
	ret = member_name_free(a, name, err, errlen);
	if (ret == 0) {
		snprintf(rec.name, sizeof(rec.name), "%s", name);
		rec.created = (long long)time(NULL);
		ret = member_allocate(a, &rec, err, errlen);
	}
	if (ret == 0)
		ret = member_create(a, &rec, (const char *const *)lines,
				    (const char *const *)fingerprints, nkeys, false, err, errlen);
	pthread_mutex_unlock(&a->members_lock);
	if (ret < 0)
		return ret;
	*out = rec;
	return 0;
}

static bool member_ranges_overlap(uint32_t a_first, uint32_t a_count, uint32_t b_first,
				  uint32_t b_count)
{
	return (uint64_t)a_first < (uint64_t)b_first + b_count &&
	       (uint64_t)b_first < (uint64_t)a_first + a_count;
}

/* Whether the block at base overlaps a range of an /etc/subuid-style
 * file; root's exact block is this agent's own grant (left by an add that
 * was cut short), not a clash. */
static int member_subid_file_clash(const char *path, uint32_t base, char *err, size_t errlen)
{
	__do_free struct id_range *ranges = NULL;
	size_t n = 0, cap = 0;
	int ret;

	ret = member_read_subid_file(path, NULL, &ranges, &n, &cap);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (!member_ranges_overlap(base, SUBID_COUNT, ranges[i].first, ranges[i].count))
			continue;
		if (ranges[i].first == base && ranges[i].count == SUBID_COUNT &&
		    member_subid_file_grants(path, base))
			continue;
		set_error(err, errlen, "its ids %u-%u overlap the range %u-%u of %s", base,
			 base + SUBID_COUNT - 1, ranges[i].first,
			 (uint32_t)((uint64_t)ranges[i].first + ranges[i].count - 1), path);
		return -EEXIST;
	}
	return 0;
}

/* The hub's uid, subid block and port against everything on this server. */
static int member_check_preset(struct agent *a, const struct member_record *want,
			       const struct member_record *list, size_t n, char *err, size_t errlen)
{
	struct forward_record forward;
	int ret;

	for (size_t i = 0; i < n; i++) {
		const char *clash = list[i].uid == want->uid ? "uid" :
				    member_ranges_overlap(list[i].subid_base, SUBID_COUNT,
							  want->subid_base, SUBID_COUNT) ? "subordinate ids" :
				    list[i].ssh_port == want->ssh_port ? "SSH port" : NULL;

		if (clash) {
			set_error(err, errlen, "its %s clash with local member %s", clash, list[i].name);
			return -EEXIST;
		}
	}
	if (getpwuid(want->uid) || getgrgid(want->uid)) {
		set_error(err, errlen, "uid %u is taken by a host account or group", want->uid);
		return -EEXIST;
	}
	ret = member_subid_file_clash("/etc/subuid", want->subid_base, err, errlen);
	if (ret == 0)
		ret = member_subid_file_clash("/etc/subgid", want->subid_base, err, errlen);
	if (ret < 0)
		return ret;
	if (want->ssh_port >= a->cfg.forward_port_range.first &&
	    want->ssh_port <= a->cfg.forward_port_range.last) {
		set_error(err, errlen, "SSH port %u lies in this server's forward_port_range %u-%u",
			 want->ssh_port, a->cfg.forward_port_range.first, a->cfg.forward_port_range.last);
		return -EEXIST;
	}
	if (db_forward_by_host_port(a->db, want->ssh_port, &forward) == 0) {
		set_error(err, errlen, "SSH port %u is forwarded for member %s", want->ssh_port,
			 forward.member);
		return -EEXIST;
	}
	return 0;
}

/* The lowest container address no member holds. */
static int member_alloc_address(struct agent *a, const struct member_record *list, size_t n,
				struct member_record *rec)
{
	__do_free uint32_t *indexes = calloc(n + 1, sizeof(*indexes));
	struct config_range all = { 0, UINT32_MAX - 1 };
	char address[32];
	int ret;

	if (!indexes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		indexes[i] = list[i].address_index;
	ret = ids_lowest_free(&all, indexes, n, &rec->address_index);
	if (ret < 0)
		return ret;
	return network_member_address(&a->subnet, rec->address_index, address, sizeof(address));
}

int member_add_allocated(struct agent *a, const struct member_record *want,
			 const char *const *lines, const char *const *fingerprints, size_t nkeys,
			 struct member_record *out, char *err, size_t errlen)
{
	__do_free struct member_record *list = NULL;
	struct member_record rec = { 0 };
	size_t n = 0;
	int ret;

	if (validate_member_name(want->name, err, errlen) < 0)
		return -EINVAL;
	if (want->uid == 0 || want->uid >= SUBID_COUNT || want->subid_base == 0 ||
	    want->subid_base % SUBID_COUNT != 0 || want->ssh_port == 0 || want->ssh_port > 65535) {
		set_error(err, errlen, "uid %u, ids from %u or SSH port %u are out of range", want->uid,
			 want->subid_base, want->ssh_port);
		return -EINVAL;
	}
	snprintf(rec.name, sizeof(rec.name), "%s", want->name);
	rec.uid = want->uid;
	rec.subid_base = want->subid_base;
	rec.ssh_port = want->ssh_port;
	rec.created = (long long)time(NULL);

	pthread_mutex_lock(&a->members_lock);
	ret = member_name_free(a, rec.name, err, errlen);
	if (ret == 0)
		ret = db_member_list(a->db, &list, &n);
	if (ret == 0)
		ret = member_check_preset(a, &rec, list, n, err, errlen);
	if (ret == 0) {
		ret = member_alloc_address(a, list, n, &rec);
		if (ret < 0)
			set_error(err, errlen, "no free address left; widen bridge_address");
	}
	if (ret == 0)
		ret = member_create(a, &rec, lines, fingerprints, nkeys, true, err, errlen);
	pthread_mutex_unlock(&a->members_lock);
	if (ret < 0)
		return ret;
	*out = rec;
	return 0;
}

int member_remove(struct agent *a, const char *name, bool purge, char *kept, size_t keptlen,
		  char *err, size_t errlen)
{
	const char *userdel[] = { "userdel", name, NULL };
	struct member_record rec;
	struct storage_paths paths;
	char path[PATH_MAX], lxcdir[PATH_MAX + 64];
	int ret;

	kept[0] = '\0';
	pthread_mutex_lock(&a->members_lock);
	ret = db_member_get(a->db, name, &rec);
	if (ret < 0) {
		pthread_mutex_unlock(&a->members_lock);
		set_error(err, errlen, "there is no member %s (see gpubox admin user ls)", name);
		return ret;
	}
	if (getpwnam(name)) {
		ret = member_run(userdel, err, errlen);
		if (ret < 0) {
			pthread_mutex_unlock(&a->members_lock);
			return ret;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", a->cfg.authorized_keys_dir, name);
	unlink(path);
	member_ungrant_subids(rec.subid_base);
	db_member_delete(a->db, name);
	pthread_mutex_unlock(&a->members_lock);

	/* LXC's own directory (configuration, logs) goes with the member. */
	snprintf(lxcdir, sizeof(lxcdir), "%s/%s", a->lxcpath, name);
	ret = fsutil_remove_tree(lxcdir);
	if (ret < 0)
		log_warn_errno(ret, -ret, "cannot remove %s", lxcdir);
	ret = storage_paths(a->cfg.state_dir, name, &paths);
	if (ret < 0)
		return ret;
	if (purge) {
		ret = storage_remove_layer(&paths);
		if (ret == 0)
			ret = fsutil_remove_tree(paths.dir);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot remove %s", paths.dir);
	} else {
		char retired[PATH_MAX], stamp[32];

		/* Nothing is lost without --purge: the layer is put aside, in
		 * the pool when it is there (kept names it), and the rest. */
		snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
		ret = storage_retire_layer(&paths, stamp, kept, keptlen);
		if (ret < 0)
			return ret;
		if (fsutil_exists(paths.dir)) {
			snprintf(retired, sizeof(retired), "%s/retired", a->cfg.state_dir);
			fsutil_mkdir_p(retired, 0700);
			snprintf(retired, sizeof(retired), "%s/retired/%s-%s", a->cfg.state_dir, name, stamp);
			if (rename(paths.dir, retired) < 0)
				return log_error_errno(-errno, errno, "cannot move %s aside", paths.dir);
			if (!kept[0])
				snprintf(kept, keptlen, "%s", retired);
		}
	}
	log_info("member %s removed%s", name, purge ? " with their files" : "");
	return 0;
}
