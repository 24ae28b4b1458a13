/* SPDX-License-Identifier: MIT */
/*
 * What containers are made of and saved as: versioned templates
 * (template.c) and archives of a member's own layer (snapshot.c).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_IMAGE_H
#define GPUBOX_AGENT_IMAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"
#include "validate.h"

struct progress;

/* ---- template.c: versioned, read-only, unshifted root file systems ------ */

/*
 * Layout: <state_dir>/templates/NAME@VERSION/{rootfs/,manifest.json}.  A
 * build runs in <state_dir>/templates/.build-NAME-XXXXXX and is renamed to
 * its real name only when complete; builds are serialized by flock() on
 * <state_dir>/templates/.lock.
 */

/* Bump when the post-processing of a fresh tree changes: every template
 * is then rebuilt at the next template_build. */
#define TEMPLATE_SETUP_VERSION 2      /* 2: boot units masked, ssh.service's sshd -t */
#define TEMPLATE_HASH_HEX 65       /* SHA-256 in hex, with its NUL */

struct template_info {
	char name[64];
	uint32_t version;
	char ref[TEMPLATE_REF_SIZE];
	char rootfs[PATH_MAX];
	char recipe_hash[TEMPLATE_HASH_HEX];
	long long created;         /* unix time */
	unsigned long long size;   /* bytes, as measured at build */
};

/* Build NAME (NULL: the configured default) for release (NULL: the
 * configured one).  When the newest version's recipe is the same, returns
 * it with *cached = true and builds nothing.  Otherwise builds the next
 * version, saying each line of debootstrap's output to progress.  On error
 * writes one sentence for the admin into err (may be NULL). */
int template_build(const struct gpubox_config *cfg, const char *name, const char *release,
		   struct progress *progress, struct template_info *out, bool *cached,
		   char *err, size_t errlen);
/* The newest version of name; -ENOENT if none. */
int template_newest(const struct gpubox_config *cfg, const char *name, struct template_info *out);
/* A given NAME@VERSION; -ENOENT if absent, -EINVAL if ref is not one. */
int template_get(const struct gpubox_config *cfg, const char *ref, struct template_info *out);
/* All templates, as a JSON array of objects (each manifest without its
 * recipe text, plus "ref"), sorted by name then version. */
int template_list(const struct gpubox_config *cfg, json_t **out);

/*
 * The recipe of a build: release, mirror, the package list (blank- or
 * comma-separated; sorted and deduplicated here), arch (NULL: the host's)
 * and TEMPLATE_SETUP_VERSION, as text (*recipe, caller frees; may be NULL)
 * and its SHA-256 in hex.  -EINVAL with a sentence in err for a bad
 * release, mirror or package name.
 */
int template_recipe(const char *release, const char *mirror, const char *packages,
		    const char *arch, char **recipe, char hash[TEMPLATE_HASH_HEX],
		    char *err, size_t errlen);
/* The mirror templates are built from: template_mirror, else the first
 * Debian archive of the host's apt sources (-ENOENT, with a sentence). */
int template_mirror(const struct gpubox_config *cfg, char *mirror, size_t len, char *err,
		    size_t errlen);
/* The post-processing of a fresh rootfs opened at rootfd (host keys
 * removed, key generation unit, apt caches emptied, hostname removed,
 * locale, failing units masked, /etc/gpubox-template = ref).  Never
 * follows a symbolic link in the tree. */
int template_finish_rootfs(int rootfd, const char *ref);

/* A template that a newer version of the same name replaces: the newest
 * ref into newer and 1; 0 when ref is the newest (or not a ref). */
int template_newer(const struct gpubox_config *cfg, const char *ref, char *newer, size_t len);
/* Delete NAME@VERSION unless in_use(ref) says something uses it (then
 * -EBUSY, with who into err).  -ENOENT if absent. */
int template_remove(const struct gpubox_config *cfg, const char *ref,
		    int (*in_use)(void *data, const char *ref, char *who, size_t wholen),
		    void *data, char *err, size_t errlen);

/* ---- snapshot.c: archives of a member's own layer ----------------------- */

/*
 * Layout: <snapshot_dir>/<member>/<name>.tar.zst (pax, zstd), <name>.json
 * (the manifest: a snapshot exists when its manifest does) and
 * <name>.sha256 (sha256sum's format).  Written as *.tmp-XXXXXX, synced,
 * then renamed; stale temporary files are removed by snapshot_clean().
 */
#define SNAPSHOT_NAME_MAX 40

struct snapshot_stats {
	unsigned long long entries;
	unsigned long long content_bytes;     /* file data in the layer */
	unsigned long long archive_bytes;     /* the archive's size */
	unsigned long long reused_files;      /* restore: linked from the previous layer */
	unsigned long long reused_bytes;
	char sha256[TEMPLATE_HASH_HEX];       /* of the archive's bytes */
};

/* A member's identity: 32 hex digits and a NUL (state.h, member_record). */
#define SNAPSHOT_MEMBER_ID_SIZE 33

struct snapshot_info {
	char name[SNAPSHOT_NAME_MAX + 1];
	char member[MEMBER_NAME_SIZE];
	/* The identity of the member who took it; "" in a manifest made
	 * before snapshots named one (see snapshot_check_owner). */
	char member_id[SNAPSHOT_MEMBER_ID_SIZE];
	char template_ref[TEMPLATE_REF_SIZE];
	char template_hash[TEMPLATE_HASH_HEX];
	char server[64];
	long long created;
	unsigned long long size;              /* the archive's bytes */
	unsigned long long content_size;
	char sha256[TEMPLATE_HASH_HEX];
	/* A local snapshot ("kind": "local"): no archive, its files are a
	 * copy-on-write snapshot of the layer (localsnap.c); size, content_size
	 * 0 and sha256 "". */
	bool local;
};

/* What a snapshot or a restore may take of the disk it writes to. */
struct snapshot_limits {
	unsigned long long max_archive;    /* snapshot_write: archive bytes; 0: no limit */
	unsigned long long disk_reserve;   /* bytes the disk keeps free (fsutil_space_left) */
	/* snapshot_extract: the layer the restore replaces, on the same file
	 * system; a file of it found identical to the archive's is linked
	 * into the new layer instead of written again.  NULL: none. */
	const char *previous_upper;
};

/* The zstd threads of a snapshot: configured, or 0 for half the cores (at
 * least one). */
unsigned snapshot_compress_threads(unsigned configured);
/*
 * Archive the layer at upper_dir into out_fd: owners relative to
 * subid_base, zstd with threads (snapshot_compress_threads()), progress in
 * percent.  Sparse files keep their holes, however many.  The write stops
 * as it would pass limits (may be NULL: none): -EDQUOT past max_archive,
 * -ENOSPC where out_fd's disk would keep less than disk_reserve, with a
 * sentence in err (also for -E2BIG: a file of over a million data regions
 * strewn over wide holes); what was written to out_fd is the caller's to
 * remove.
 */
int snapshot_write(const char *upper_dir, int out_fd, uint32_t subid_base, unsigned threads,
		   const struct snapshot_limits *limits, struct progress *progress,
		   struct snapshot_stats *stats, char *err, size_t errlen);
/*
 * Extract the archive of manifest (a regular file, read from its start)
 * into the empty directory new_upper_dir as the ids of subid_base.  Its
 * checksum is verified against manifest->sha256 before any entry is read;
 * more file data than manifest->content_size, and what does not belong in
 * a layer (see the file's head) are refused.  -EPERM with a sentence in err
 * for a refused archive, -EBADMSG for a damaged one (its checksum),
 * -ENOSPC where the new layer's disk would keep less than
 * limits->disk_reserve (limits may be NULL).  Holes, and blocks of zeros,
 * are restored as holes.  A regular file of limits->previous_upper at the
 * same path, with the same size, owner and mode, one link, no extended
 * attributes and the same bytes, is linked instead (stats->reused_*).
 */
int snapshot_extract(int archive_fd, const struct snapshot_info *manifest,
		     const char *new_upper_dir, uint32_t subid_base,
		     const struct snapshot_limits *limits, struct progress *progress,
		     struct snapshot_stats *stats, char *err, size_t errlen);
/* [A-Za-z0-9][A-Za-z0-9_-]{0,39}: a file name, never a path. */
int snapshot_check_name(const char *name, char *err, size_t errlen);
/* <snapshot_dir> (the configured one, or <state_dir>/snapshots). */
int snapshot_root(const struct gpubox_config *cfg, char *buf, size_t len);
/* <snapshot_dir>/<member>[/<name><suffix>]; name may be NULL. */
int snapshot_path(const struct gpubox_config *cfg, const char *member, const char *name,
		  const char *suffix, char *buf, size_t len);
/* Who asks for a member's snapshots: the member's record on this server. */
struct snapshot_owner {
	const char *name;
	const char *identity;     /* the member's random identity */
	long long created;        /* when the member was added here */
	const char *server;       /* this server's name */
};
/*
 * Whether owner took the snapshot: the manifest names owner's name and
 * identity.  A manifest without identity (made before they were recorded)
 * is owner's only when this server wrote it after owner was added: an
 * earlier member of the same name, or another server, cannot have been
 * owner.  -EPERM with the reason in err when not owner's.
 */
int snapshot_check_owner(const struct snapshot_info *info, const struct snapshot_owner *owner,
			 char *err, size_t errlen);
/* The snapshots in the member's directory, oldest first (caller frees):
 * owner's only, or all of them when owner is NULL. */
int snapshot_list(const struct gpubox_config *cfg, const char *member,
		  const struct snapshot_owner *owner, struct snapshot_info **out, size_t *n);
/* Remove owner's snapshots (what snapshot_check_owner says is owner's) and
 * this server's unfinished files, then the member's directory if nothing
 * else is in it.  Snapshots of another identity (another server sharing
 * the store) stay.  Returns the number removed. */
int snapshot_retire(const struct gpubox_config *cfg, const struct snapshot_owner *owner,
		    bool local_only);
/* A file of the store (suffix ".tar.zst", ".json"), opened read-only
 * without following a link nor waiting on a FIFO: -EPERM unless a regular
 * file.  Returns the descriptor. */
int snapshot_open(const struct gpubox_config *cfg, const char *member, const char *name,
		  const char *suffix);
/* A snapshot restores only on its template as it was built: -EPERM with a
 * sentence in err when the manifest names no recipe hash or another one. */
int snapshot_check_template(const struct snapshot_info *info, const struct template_info *tpl,
			    char *err, size_t errlen);
/* -ENOENT when the member has no snapshot of that name. */
int snapshot_get(const struct gpubox_config *cfg, const char *member, const char *name,
		 struct snapshot_info *out);
int snapshot_manifest_write(const struct gpubox_config *cfg, const struct snapshot_info *info);
/* Manifest first (the snapshot is gone), then the archive. */
int snapshot_remove(const struct gpubox_config *cfg, const char *member, const char *name);
/* ".tmp-<server>-": the mark of this server's temporary files. */
void snapshot_tmp_mark(const struct gpubox_config *cfg, char *buf, size_t len);
/* Remove the member's temporary files of this server (those of another
 * server sharing the store after a day), and archives left without a
 * manifest for an hour. */
void snapshot_clean(const struct gpubox_config *cfg, const char *member);
/* 1 (and "member/name" into who) when a snapshot of any member uses ref. */
int snapshot_uses_template(const struct gpubox_config *cfg, const char *ref, char *who,
			   size_t wholen);

#endif
