/* SPDX-License-Identifier: MIT */
/*
 * The package cache's proxy setting in every container (apt_cache): one
 * file of apt configuration that the agent keeps outside every member's
 * layer,
 *
 *	<state_dir>/apt-proxy.conf      Acquire::http::Proxy "http://ADDRESS:PORT";
 *
 * bound read-only at /etc/apt/apt.conf.d/01gpubox-proxy.  The mount point
 * comes from a layer of the agent's stacked beneath the template,
 *
 *	<state_dir>/mountpoints/etc/apt/apt.conf.d/01gpubox-proxy   (empty)
 *
 * because LXC would otherwise create it in the member's layer, where it
 * would stay after apt_cache is turned off and travel in their snapshots.
 * Beneath the template, the template's directories keep their owners and
 * modes.  Root inside may unmount the file in their own container: that
 * is theirs to choose; the file itself is root's on the host, and bound
 * read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define APTPROXY_FILE_NAME "apt-proxy.conf"
#define APTPROXY_LAYER_NAME "mountpoints"
#define APTPROXY_URL_MAX (CONFIG_APT_CACHE_HOST_MAX + 16)   /* http://HOST:PORT */
#define APTPROXY_TEXT_MAX 512

/* The proxy's URL again, byte by byte, whatever made it: apt's
 * configuration syntax must never receive a quote, a semicolon, a brace
 * or a line break from it. */
static bool aptproxy_url_is_plain(const char *url)
{
	if (!str_has_prefix(url, "http://") || strlen(url) > APTPROXY_URL_MAX)
		return false;
	for (const char *c = url; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr(".:/-", *c)))
			return false;
	return true;
}

int aptproxy_render(const char *proxy_url, char *buf, size_t len)
{
	int n;

	if (!proxy_url || !aptproxy_url_is_plain(proxy_url))
		return -EINVAL;
	n = snprintf(buf, len,
		     "// Written by gpuboxd (apt_cache in gpubox.conf): the server's package cache.\n"
		     "Acquire::http::Proxy \"%s\";\n", proxy_url);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Write text at path unless it holds it already: a running container's
 * mount keeps the file it was given, and should keep seeing it. */
static int aptproxy_write(const char *path, const char *text)
{
	__do_free char *old = NULL;
	size_t len = 0;

	if (fsutil_read_file(path, APTPROXY_TEXT_MAX, &old, &len) == 0 && len == strlen(text) &&
	    memcmp(old, text, len) == 0)
		return 0;
	return fsutil_write_atomic(path, text, strlen(text), 0644);
}

/* The layer with the empty mount point, made once and kept: running
 * containers may have it among their lower layers, which must not change
 * under them. */
static int aptproxy_make_layer(const char *layer)
{
	__do_close int fd = -EBADF;
	char dir[PATH_MAX], point[PATH_MAX];
	int ret;

	if (snprintf(dir, sizeof(dir), "%s/etc/apt/apt.conf.d", layer) >= (int)sizeof(dir) ||
	    snprintf(point, sizeof(point), "%s/%s", layer, APTPROXY_TARGET) >= (int)sizeof(point))
		return -ENAMETOOLONG;
	ret = fsutil_mkdir_p(dir, 0755);
	if (ret < 0)
		return ret;
	fd = open(point, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : 0;
}

static int aptproxy_paths(const char *state_dir, struct aptproxy *out)
{
	if (snprintf(out->file, sizeof(out->file), "%s/" APTPROXY_FILE_NAME, state_dir) >=
		    (int)sizeof(out->file) ||
	    snprintf(out->layer, sizeof(out->layer), "%s/" APTPROXY_LAYER_NAME, state_dir) >=
		    (int)sizeof(out->layer))
		return -ENAMETOOLONG;
	return 0;
}

int aptproxy_setup(const struct gpubox_config *cfg, const char *gateway, struct aptproxy *out)
{
	struct config_apt_cache cache;
	char url[CONFIG_APT_CACHE_HOST_MAX + 32], text[APTPROXY_TEXT_MAX], err[256];
	int ret;

	*out = (struct aptproxy){ 0 };
	if (config_apt_cache(cfg->apt_cache, &cache, err, sizeof(err)) < 0)
		return log_error_errno(-EINVAL, 0, "%s", err);
	ret = aptproxy_paths(cfg->state_dir, out);
	if (ret < 0)
		return log_error_errno(ret, -ret, "the state directory's path is too long");
	if (cache.mode == CONFIG_APT_CACHE_OFF) {
		if (unlink(out->file) < 0 && errno != ENOENT)
			return log_error_errno(-errno, errno, "cannot remove %s", out->file);
		*out = (struct aptproxy){ 0 };
		return 0;
	}
	ret = config_apt_cache_proxy(&cache, gateway, url, sizeof(url));
	if (ret == 0)
		ret = aptproxy_render(url, text, sizeof(text));
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot render the apt proxy setting of %s", cfg->apt_cache);
	ret = aptproxy_write(out->file, text);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write %s", out->file);
	ret = aptproxy_make_layer(out->layer);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot make the mount point layer %s", out->layer);
	log_info("containers' apt goes through the package cache at %s", url);
	return 0;
}

bool aptproxy_mount(const struct aptproxy *proxy, struct container_mount *out)
{
	if (!proxy->file[0])
		return false;
	*out = (struct container_mount){ .source = proxy->file, .target = APTPROXY_TARGET,
		.options = "bind,ro,nosuid,nodev,noexec,create=file" };
	return true;
}

const char *aptproxy_layer(const struct aptproxy *proxy)
{
	return proxy->file[0] ? proxy->layer : NULL;
}
