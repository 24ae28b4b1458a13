/* SPDX-License-Identifier: MIT */
/*
 * sd_notify without libsystemd (src/lib/sdnotify.c): the addresses a
 * $NOTIFY_SOCKET value names (paths, '@' abstract names, what is refused),
 * and the datagram itself, received on a real socket of each kind, the
 * variable gone from the environment once taken.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "sdnotify.h"
#include "banned.h"

static void test_path_address(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = 0;

	(void)state;
	assert_int_equal(sdnotify_parse_address("/run/systemd/notify", &addr, &len), 0);
	assert_int_equal(addr.sun_family, AF_UNIX);
	assert_string_equal(addr.sun_path, "/run/systemd/notify");
	/* The path and its NUL. */
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
}

static void test_abstract_address(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = 0;

	(void)state;
	assert_int_equal(sdnotify_parse_address("@/org/freedesktop/systemd1/notify/42", &addr, &len), 0);
	assert_int_equal(addr.sun_path[0], '\0');
	assert_memory_equal(addr.sun_path + 1, "/org/freedesktop/systemd1/notify/42",
			    strlen("/org/freedesktop/systemd1/notify/42"));
	/* No NUL counted: the name is exactly its bytes. */
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("@/org/freedesktop/systemd1/notify/42"));
}

static void test_refused_addresses(void **state)
{
	char longest_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	char longest_name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	struct sockaddr_un addr;
	socklen_t len;

	(void)state;
	assert_int_equal(sdnotify_parse_address(NULL, &addr, &len), -EINVAL);
	assert_int_equal(sdnotify_parse_address("", &addr, &len), -EINVAL);
	assert_int_equal(sdnotify_parse_address("@", &addr, &len), -EINVAL);
	assert_int_equal(sdnotify_parse_address("/", &addr, &len), -EINVAL);
	assert_int_equal(sdnotify_parse_address("run/notify", &addr, &len), -EINVAL);
	assert_int_equal(sdnotify_parse_address("vsock:2:1234", &addr, &len), -EINVAL);
	/* sun_path holds a path of 107 bytes and its NUL, or a name of 108. */
	memset(longest_path, 'a', sizeof(longest_path));
	longest_path[0] = '/';
	longest_path[sizeof(longest_path) - 2] = '\0';
	assert_int_equal(sdnotify_parse_address(longest_path, &addr, &len), 0);
	longest_path[sizeof(longest_path) - 2] = 'a';
	longest_path[sizeof(longest_path) - 1] = '\0';
	assert_int_equal(sdnotify_parse_address(longest_path, &addr, &len), -EINVAL);
	memset(longest_name, 'b', sizeof(longest_name));
	longest_name[0] = '@';
	longest_name[sizeof(longest_name) - 2] = '\0';
	assert_int_equal(sdnotify_parse_address(longest_name, &addr, &len), 0);
	longest_name[sizeof(longest_name) - 2] = 'b';
	longest_name[sizeof(longest_name) - 1] = '\0';
	assert_int_equal(sdnotify_parse_address(longest_name, &addr, &len), -EINVAL);
}

/* Bind a datagram socket at value (as $NOTIFY_SOCKET names it), take the
 * variable, send, and read what arrived. */
static void notify_through(const char *value, const char *path_to_remove)
{
	__do_close int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr;
	socklen_t len;
	char got[64] = { 0 };

	assert_true(fd >= 0);
	assert_int_equal(sdnotify_parse_address(value, &addr, &len), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", value, 1), 0);
	sdnotify_take_socket();
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_int_equal(sdnotify_send("READY=1"), 0);
	assert_int_equal(recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT), (ssize_t)strlen("READY=1"));
	assert_string_equal(got, "READY=1");
	if (path_to_remove)
		unlink(path_to_remove);
}

static void test_send_to_abstract_socket(void **state)
{
	char value[64];

	(void)state;
	snprintf(value, sizeof(value), "@gpubox-test-notify-%d", (int)getpid());
	notify_through(value, NULL);
}

static void test_send_to_path_socket(void **state)
{
	char dir[] = "/tmp/gpubox-notify-XXXXXX", value[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(value, sizeof(value), "%s/notify", dir);
	notify_through(value, value);
	rmdir(dir);
}

/* Nothing taken (the variable unset): nothing to send, and no error.
 * Runs first, before any test has taken a socket. */
static void test_no_socket_no_send(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	sdnotify_take_socket();
	assert_int_equal(sdnotify_send("READY=1"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_socket_no_send),
		cmocka_unit_test(test_path_address),
		cmocka_unit_test(test_abstract_address),
		cmocka_unit_test(test_refused_addresses),
		cmocka_unit_test(test_send_to_abstract_socket),
		cmocka_unit_test(test_send_to_path_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
