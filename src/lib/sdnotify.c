/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "sdnotify.h"
#include "banned.h"

/* The value of $NOTIFY_SOCKET as it was at start-up; "" when unset. */
static char sdnotify_socket[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

int sdnotify_parse_address(const char *value, struct sockaddr_un *addr, socklen_t *len)
{
	size_t n = value ? strlen(value) : 0;

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	/* A path needs room for its terminating NUL; an abstract name does
	 * not, its length is given by the address length. */
	if (n < 2 || (value[0] != '/' && value[0] != '@'))
		return -EINVAL;
	if (value[0] == '/' ? n >= sizeof(addr->sun_path) : n > sizeof(addr->sun_path))
		return -EINVAL;
	memcpy(addr->sun_path, value, n);
	if (value[0] == '@')
		addr->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
	return 0;
}

void sdnotify_take_socket(void)
{
	const char *value = getenv("NOTIFY_SOCKET");

	if (!value)
		return;
	if (strlen(value) < sizeof(sdnotify_socket))
		memcpy(sdnotify_socket, value, strlen(value) + 1);
	else
		log_warn("NOTIFY_SOCKET is too long to be a socket address; systemd will not hear that the service is ready");
	unsetenv("NOTIFY_SOCKET");
}

int sdnotify_send(const char *state)
{
	__do_close int fd = -EBADF;
	struct sockaddr_un addr;
	socklen_t len;
	ssize_t sent;

	if (!sdnotify_socket[0])
		return 0;
	if (sdnotify_parse_address(sdnotify_socket, &addr, &len) < 0)
		return log_warn_errno(-EINVAL, 0, "NOTIFY_SOCKET=%s is neither a path nor an @abstract name",
				      sdnotify_socket);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_warn_errno(-errno, errno, "cannot tell systemd %s", state);
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, len);
	if (sent < 0)
		return log_warn_errno(-errno, errno, "cannot tell systemd %s through %s", state, sdnotify_socket);
	return 0;
}
