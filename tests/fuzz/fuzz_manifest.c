/* SPDX-License-Identifier: MIT */
/*
 * A snapshot's manifest (snapshot.c's snapshot_parse, through
 * snapshot_get): the kinds' rules hold for whatever it accepts, and a
 * manifest it accepts is written back and read again as the same snapshot.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/fuzz_manifest.XXXXXX";

static void fuzz_cleanup(void)
{
	fsutil_remove_tree(fuzz_dir);
}

/* A store of one member, alice, made once. */
static struct gpubox_config *fuzz_store(void)
{
	static struct gpubox_config *cfg;
	char member[128];

	if (cfg)
		return cfg;
	log_init("fuzz_manifest", false, LOG_LEVEL_ERROR);
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !mkdtemp(fuzz_dir))
		abort();
	atexit(fuzz_cleanup);
	snprintf(cfg->snapshot_dir, sizeof(cfg->snapshot_dir), "%s", fuzz_dir);
	snprintf(cfg->server_name, sizeof(cfg->server_name), "gpu1");
	snprintf(member, sizeof(member), "%s/alice", fuzz_dir);
	if (mkdir(member, 0700) < 0)
		abort();
	return cfg;
}

static bool fuzz_terminated(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

static void fuzz_check(const struct snapshot_info *m)
{
	if (!fuzz_terminated(m->member, sizeof(m->member)) ||
	    !fuzz_terminated(m->template_ref, sizeof(m->template_ref)) ||
	    !fuzz_terminated(m->server, sizeof(m->server)) || strcmp(m->name, "m") != 0)
		abort();
	/* A local snapshot has no archive; an archive has its checksum. */
	if (m->local ? m->size != 0 || m->sha256[0] : strlen(m->sha256) != 64)
		abort();
	if (m->member_id[0] && strlen(m->member_id) != 32)
		abort();
}

static bool fuzz_same(const struct snapshot_info *a, const struct snapshot_info *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->member, b->member) == 0 &&
	       strcmp(a->member_id, b->member_id) == 0 &&
	       strcmp(a->template_ref, b->template_ref) == 0 &&
	       strcmp(a->template_hash, b->template_hash) == 0 && strcmp(a->server, b->server) == 0 &&
	       a->created == b->created && a->size == b->size &&
	       (a->local || a->content_size == b->content_size) &&
	       strcmp(a->sha256, b->sha256) == 0 && a->local == b->local;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gpubox_config *cfg = fuzz_store();
	struct snapshot_info first, again;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/alice/m.json", fuzz_dir);
	if (fsutil_write_atomic(path, (const char *)data, size, 0600) < 0)
		abort();
	if (snapshot_get(cfg, "alice", "m", &first) == 0) {
		fuzz_check(&first);
		/* Written back (only with an identity: never one without), the
		 * same snapshot reads again. */
		if (first.member_id[0] && strcmp(first.member, "alice") == 0) {
			if (snapshot_manifest_write(cfg, &first) < 0 ||
			    snapshot_get(cfg, "alice", "m", &again) < 0 || !fuzz_same(&first, &again))
				abort();
		}
	}
	snapshot_remove(cfg, "alice", "m");
	return 0;
}
