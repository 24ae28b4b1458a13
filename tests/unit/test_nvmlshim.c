/* SPDX-License-Identifier: MIT */
/*
 * The NVML interposer (src/nvmlshim) against the fake driver: the pid
 * map's parser and writer, and nvml_client (which loads libnvidia-ml.so.1
 * as nvidia-smi does) run through the interposer, its dependency being
 * the fake of a recent driver, of drivers 535.43-535.86 or of one older
 * than 510.  The paths come from meson: NVMLSHIM_LIBRARY, NVML_CLIENT,
 * FAKE_NVML_DIR, FAKE_NVML_WIDE_DIR, FAKE_NVML_OLD_DIR.
 *
 * The fake reports host pids 1000 and 1001 (this container's: 17 and 18
 * inside), 2000 (another member's) and 3000 (no one's the map knows).
 */
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"
#include "nvmlshim/pidmap.h"
#include "banned.h"

#define OUTPUT_MAX (64 * 1024)

static const char fake_state[] =
	"gpu 0 name=Fake_A total=1000000 used=10000\n"
	"gpu 1\n"
	"proc 0 pid=1000 mem=1000 sm=10\n"
	"proc 0 pid=1001 mem=2000 sm=20 type=both\n"
	"proc 0 pid=2000 mem=3000 sm=30\n"
	"proc 0 pid=3000 mem=4000 sm=40\n"
	"proc 1 pid=2000 mem=5000 type=mps\n";

struct fixture {
	char dir[PATH_MAX];
};

static const char *env_path(const char *name)
{
	const char *v = getenv(name);

	assert_non_null(v);
	return v;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A map of this container (1000 -> 17, 1001 -> 18) written at time. */
static void write_map(const char *dir, long long time, const char *mode)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "gpubox-nvml-pids 1\ntime %lld\nvalid 60000\nmode %s\npid 1000 17\npid 1001 18\nend\n",
		 time, mode);
	tu_write_file(dir, "map", text);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/gbx-nvmlshim.XXXXXX") < 0)
		return -1;
	*state = f;
	return tu_make_dir(f->dir, "lib", getuid(), getgid(), 0755);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

/* Run nvml_client with libnvidia-ml.so.1 = the interposer (interposed)
 * or the fake itself, the fake in fake_dir; its output into out. */
static void run_client(const struct fixture *f, const char *fake_dir, bool interposed, char *out)
{
	char lib[PATH_MAX], real[PATH_MAX], env_lib[PATH_MAX + 32], env_state[PATH_MAX + 32],
		env_map[PATH_MAX + 32], path[PATH_MAX];
	const char *client = env_path("NVML_CLIENT");
	int pipefd[2], status = 0;
	size_t used = 0;
	pid_t pid;

	tu_join(lib, sizeof(lib), f->dir, "lib/libnvidia-ml.so.1");
	tu_join(path, sizeof(path), f->dir, "lib/libgpubox-nvml-real.so");
	unlink(lib);
	unlink(path);
	snprintf(real, sizeof(real), "%s/libnvidia-ml.so.1", fake_dir);
	assert_int_equal(symlink(interposed ? env_path("NVMLSHIM_LIBRARY") : real, lib), 0);
	assert_int_equal(symlink(real, path), 0);
	tu_write_file(f->dir, "state", fake_state);
	snprintf(env_lib, sizeof(env_lib), "LD_LIBRARY_PATH=%s/lib", f->dir);
	snprintf(env_state, sizeof(env_state), "FAKE_NVML_STATE=%s/state", f->dir);
	snprintf(env_map, sizeof(env_map), "GPUBOX_NVML_PIDMAP=%s/map", f->dir);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *const argv[] = { (char *)client, NULL };
		char *const envp[] = { env_lib, env_state, env_map,
				       (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };

		dup2(pipefd[1], 1);
		execve(client, argv, envp);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t n = read(pipefd[0], out + used, OUTPUT_MAX - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
	}
	out[used] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The line of out that starts with prefix (up to its end), or "". */
static const char *line(const char *out, const char *prefix, char *buf, size_t len)
{
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			size_t n = strcspn(p, "\n");

			snprintf(buf, len, "%.*s", (int)n, p);
			return buf;
		}
	}
	snprintf(buf, len, "%s", "");
	return buf;
}

#define assert_line(out, prefix, expected) \
	do { \
		char line_[512]; \
		assert_string_equal(line(out, prefix, line_, sizeof(line_)), expected); \
	} while (0)

/* ---- the map's text ---- */

static void test_pidmap_round_trip(void **state)
{
	static struct pidmap map, back;
	static char text[PIDMAP_TEXT_MAX];
	int len;

	(void)state;
	map = (struct pidmap){ .time_ms = 1733140000123, .valid_ms = 4000, .mode = PIDMAP_ANONYMOUS, .n = 3 };
	map.entries[0] = (struct pidmap_entry){ 90, 3 };
	map.entries[1] = (struct pidmap_entry){ 7, 2 };
	map.entries[2] = (struct pidmap_entry){ 4194304, 1 };
	pidmap_sort(map.entries, map.n);
	len = pidmap_render(&map, text, sizeof(text));
	assert_true(len > 0);
	assert_string_equal(text, "gpubox-nvml-pids 1\ntime 1733140000123\nvalid 4000\nmode anonymous\n"
				  "pid 7 2\npid 90 3\npid 4194304 1\nend\n");
	assert_int_equal(pidmap_parse(text, (size_t)len, &back), 0);
	assert_int_equal(back.n, 3);
	assert_int_equal(back.mode, PIDMAP_ANONYMOUS);
	assert_int_equal(pidmap_lookup(&back, 90), 3);
	assert_int_equal(pidmap_lookup(&back, 91), 0);
	assert_int_equal(pidmap_reverse(&back, 1), 4194304);
	assert_true(pidmap_fresh(&back, 1733140002000));
	assert_false(pidmap_fresh(&back, 1733140004124));
	assert_false(pidmap_fresh(&back, 1733139990000));
	/* Not ascending, or a pid out of range: no text. */
	map.entries[0].host = 95;
	assert_int_equal(pidmap_render(&map, text, sizeof(text)), -1);
	map.entries[0] = (struct pidmap_entry){ 7, 0 };
	assert_int_equal(pidmap_render(&map, text, sizeof(text)), -1);
	map.entries[0] = (struct pidmap_entry){ 7, 2 };
	assert_int_equal(pidmap_render(&map, text, 40), -1);
}

static void test_pidmap_refuses(void **state)
{
	static const char *const bad[] = {
		"",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\nend",             /* no last newline */
		"gpubox-nvml-pids 2\ntime 1\nvalid 1\nmode own\nend\n",
		"gpubox-nvml-pids 1\ntime 01\nvalid 1\nmode own\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode mine\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 5 1\npid 5 2\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 6 1\npid 5 2\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 0 1\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 4194305 1\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 5  1\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid -5 1\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 99999999999999999999 1\nend\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\nend\nextra\n",
		"gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 5 1\n",   /* cut off */
	};
	static struct pidmap map;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(pidmap_parse(bad[i], strlen(bad[i]), &map), -1);
	assert_int_equal(pidmap_parse("gpubox-nvml-pids 1\ntime 0\nvalid 0\nmode own\nend\n", 47, &map), 0);
}

/* ---- the interposer ---- */

static void test_own_mode(void **state)
{
	struct fixture *f = *state;
	__do_free char *out = malloc(OUTPUT_MAX);

	write_map(f->dir, now_ms(), "own");
	run_client(f, env_path("FAKE_NVML_DIR"), true, out);
	assert_line(out, "interposer ", "interposer yes");
	assert_line(out, "compute_v3 0 ", "compute_v3 0 rc=0 pids=17/1000,18/2000");
	assert_line(out, "compute_v2 0 ", "compute_v2 0 rc=0 pids=17/1000,18/2000");
	assert_line(out, "compute_v1 0 ", "compute_v1 0 rc=0 pids=17/1000,18/2000");
	assert_line(out, "graphics_v3 0 ", "graphics_v3 0 rc=0 pids=18/2000");
	assert_line(out, "mps_v3 1 ", "mps_v3 1 rc=0 pids=");
	assert_line(out, "util 0 ", "util 0 rc=0 pids=17/0,18/0");
	assert_line(out, "utilinfo 0 ", "utilinfo 0 rc=0 pids=17/0,18/0");
	assert_line(out, "detail 0 ", "detail 0 rc=0 pids=17/1000,18/2000");
	assert_line(out, "acct_pids 0 ", "acct_pids 0 rc=0 pids=17/0,18/0");
	assert_line(out, "acct_stats 0 17 ", "acct_stats 0 17 rc=0 mem=1000");
	/* A pid inside that is not this container's GPU process. */
	assert_line(out, "acct_stats 0 1 ", "acct_stats 0 1 rc=6 mem=0");
}

static void test_anonymous_mode(void **state)
{
	struct fixture *f = *state;
	__do_free char *out = malloc(OUTPUT_MAX);

	write_map(f->dir, now_ms(), "anonymous");
	run_client(f, env_path("FAKE_NVML_DIR"), true, out);
	/* Every process's memory is there: the GPU's 10000 add up. */
	assert_line(out, "compute_v3 0 ", "compute_v3 0 rc=0 pids=17/1000,18/2000,0/3000,0/4000");
	assert_line(out, "detail 0 ", "detail 0 rc=0 pids=17/1000,18/2000,0/3000,0/4000");
	assert_line(out, "mps_v3 1 ", "mps_v3 1 rc=0 pids=0/5000");
	/* A list of pids has no use for pid 0. */
	assert_line(out, "acct_pids 0 ", "acct_pids 0 rc=0 pids=17/0,18/0");
}

/* Everything else is the fake's answer, through the interposer or not:
 * the GPUs, and a function the interposer has never heard of. */
static void test_other_calls_unchanged(void **state)
{
	struct fixture *f = *state;
	__do_free char *direct = malloc(OUTPUT_MAX);
	__do_free char *through = malloc(OUTPUT_MAX);
	char a[512], b[512];

	write_map(f->dir, now_ms(), "own");
	run_client(f, env_path("FAKE_NVML_DIR"), false, direct);
	run_client(f, env_path("FAKE_NVML_DIR"), true, through);
	assert_line(direct, "interposer ", "interposer no");
	assert_line(through, "novelty 0 ", "novelty 0 rc=0 value=4242000");
	assert_line(through, "novelty 1 ", "novelty 1 rc=0 value=4242001");
	for (size_t i = 0; i < 5; i++) {
		static const char *const prefixes[] = { "driver ", "gpu 0 ", "gpu 1 ", "novelty 0 ", "novelty 1 " };

		assert_string_equal(line(through, prefixes[i], a, sizeof(a)), line(direct, prefixes[i], b, sizeof(b)));
		assert_true(a[0]);
	}
	/* The untranslated answer, for comparison. */
	assert_line(direct, "compute_v3 0 ", "compute_v3 0 rc=0 pids=1000/1000,1001/2000,2000/3000,3000/4000");
}

/* No map, a stale one, one that is not a map: the driver's answer. */
static void test_no_map_passes_through(void **state)
{
	static const char expected[] = "compute_v3 0 rc=0 pids=1000/1000,1001/2000,2000/3000,3000/4000";
	struct fixture *f = *state;
	__do_free char *out = malloc(OUTPUT_MAX);

	run_client(f, env_path("FAKE_NVML_DIR"), true, out);
	assert_line(out, "compute_v3 0 ", expected);
	write_map(f->dir, now_ms() - 120000, "own");
	run_client(f, env_path("FAKE_NVML_DIR"), true, out);
	assert_line(out, "compute_v3 0 ", expected);
	assert_line(out, "acct_stats 0 1000 ", "acct_stats 0 1000 rc=0 mem=1000");
	tu_write_file(f->dir, "map", "gpubox-nvml-pids 1\ntime 1\nvalid 1\nmode own\npid 1000 17\n");
	run_client(f, env_path("FAKE_NVML_DIR"), true, out);
	assert_line(out, "compute_v3 0 ", expected);
}

/* Drivers 535.43-535.86: 32-byte entries through _v3, 24 through _v2. */
static void test_wide_driver(void **state)
{
	struct fixture *f = *state;
	__do_free char *out = malloc(OUTPUT_MAX);

	write_map(f->dir, now_ms(), "own");
	run_client(f, env_path("FAKE_NVML_WIDE_DIR"), true, out);
	assert_line(out, "compute_v2 0 ", "compute_v2 0 rc=0 pids=17/1000,18/2000");
	/* The client reads 24-byte entries, as a client of 535.98 would:
	 * the first is right, and the pids it reads are this container's. */
	/* The interposer defines it; this driver has none. */
	assert_line(out, "detail 0 ", "detail 0 rc=13 pids=");
	assert_true(strstr(out, "compute_v3 0 rc=0 pids=17/1000,") != NULL);
}

/* A driver older than 510: no _v3, FUNCTION_NOT_FOUND through the
 * interposer, and _v2 answered and translated. */
static void test_old_driver(void **state)
{
	struct fixture *f = *state;
	__do_free char *out = malloc(OUTPUT_MAX);

	write_map(f->dir, now_ms(), "own");
	run_client(f, env_path("FAKE_NVML_OLD_DIR"), true, out);
	assert_line(out, "compute_v3 0 ", "compute_v3 0 rc=13 pids=");
	assert_line(out, "graphics_v3 0 ", "graphics_v3 0 rc=13 pids=");
	assert_line(out, "compute_v2 0 ", "compute_v2 0 rc=0 pids=17/1000,18/2000");
	assert_line(out, "novelty 0 ", "novelty 0 rc=0 value=4242000");
	run_client(f, env_path("FAKE_NVML_OLD_DIR"), false, out);
	assert_line(out, "compute_v3 0 ", "compute_v3 0 rc=missing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pidmap_round_trip),
		cmocka_unit_test(test_pidmap_refuses),
		cmocka_unit_test_setup_teardown(test_own_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anonymous_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_calls_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_map_passes_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wide_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_driver, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
