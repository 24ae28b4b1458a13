/* SPDX-License-Identifier: MIT */
/*
 * gpubox: the one command-line tool, and the members' login shell on a
 * GPU server.  It holds no privilege: every request goes to gpuboxd over
 * its Unix socket, and gpuboxd decides from the peer's credentials.
 *
 * As a login shell (after git-shell) it is started by sshd either as
 * "gpubox -c LINE" or, for an interactive login, with no argument and an
 * argv[0] starting with '-'.  LINE (or $SSH_ORIGINAL_COMMAND under a
 * forced command) is split by shell.c and must name a command of the
 * table below; nothing is ever handed to a shell.
 *
 * This file is the table and nothing else; the framework that runs it is
 * command.c.
 */
#include <signal.h>

#include "cli.h"
#include "log.h"

#include "banned.h"

/* The whitelist: nothing outside this table can be run, login shell or not. */
static const struct cli_command cli_commands[] = {
	{ "start", cmd_start, false,
	  "start [--json] [--member NAME]",
	  "Start your container, or make sure it is running, and print how to log in to it. "
	  "This is what an interactive login to the server does." },
	{ "stop", cmd_stop, false,
	  "stop [--member NAME]",
	  "Stop your container.  Its files are kept." },
	{ "status", cmd_status, false,
	  "status [--json] [--member NAME]",
	  "Show your container's state, template, address, SSH port and port forwards." },
	{ "rebuild", cmd_rebuild, false,
	  "rebuild [--keep-home] [--yes] [--member NAME]",
	  "Delete every change made inside your container and start again from the newest "
	  "version of its template; with --keep-home, /home is kept.  Asks you to type the "
	  "member name unless --yes is given." },
	{ "snapshot", cmd_snapshot, false,
	  "snapshot [NAME] [--local] [--freeze] | snapshot ls | snapshot rm NAME",
	  "Save what you changed in your container (not the template it starts from) as a "
	  "snapshot NAME (default: the date and time).  The container is stopped for it and "
	  "started again, or with --freeze only paused.  With --local, a copy-on-write "
	  "snapshot kept on this server, taken at one instant while the container runs: not "
	  "a backup, it goes with the server's disk.  \"snapshot ls\" lists your "
	  "snapshots, \"snapshot rm NAME\" deletes one." },
	{ "restore", cmd_restore, false,
	  "restore NAME [--yes] [--member NAME]",
	  "Replace every file of your container with those of your snapshot NAME, and start "
	  "it.  Your current files are kept until the restored container has started.  Asks "
	  "you to type the member name unless --yes is given." },
	{ "port", cmd_port, false,
	  "port add|set|rm|ls ...",
	  "Forward a port of the server to a port of your container, choose who may reach "
	  "it (or your container's SSH), remove a forward, or list them." },
	{ "admin", cmd_admin, true,
	  "admin user|template|gpu|limits|reserve|release|log|doctor|ls ...",
	  "Manage members, templates, GPUs, limits, reservations and containers, read the audit log, and check the server (admins only; see gpubox admin --help)." },
	{ "ps", cmd_ps, false,
	  "ps [--json] [--member NAME]",
	  "Show your processes on the server's GPUs, with their process ids inside your "
	  "container (ready for kill), GPU memory, SM use, running time and command.  Works "
	  "inside your container too.  Admins without --member see every process." },
	{ "gpus", cmd_gpus, false,
	  "gpus [--json]",
	  "Show every GPU of the server: use, memory, temperature, and who is on it; free "
	  "GPUs are marked.  Works inside your container too." },
	{ "history", cmd_history, false,
	  "history [--gpu N] [--at TIME | --since TIME [--until TIME]] [--json]",
	  "What the GPUs did in the past.  With --gpu N --at TIME, the state of GPU N at that "
	  "moment and who used it (\"4 hours ago\", \"14:00\", \"2026-11-23 14:00\").  With "
	  "--since (default 1h), a table over the period.  A TIME runs to the next option, "
	  "so it needs no quotes: ssh gpu17 history --gpu 3 --at 4 hours ago." },
	{ "usage", cmd_usage, false,
	  "usage [--since TIME] [--until TIME] [--csv | --json]",
	  "GPU-hours and GPU-memory-hours (GiB x hours) per member over a period (default: "
	  "the last 7 days, --since 7d).  A TIME runs to the next option: --since 2 days ago." },
	{ "log", cmd_log, false,
	  "log [--since TIME] [--limit N] [--json]",
	  "What you asked of this server's agent that changes something (start, stop, "
	  "ports, snapshots ...) and anything refused, newest last: the time, who, the "
	  "operation, what it acted on and its result.  --since takes a time or a duration "
	  "(2h, 7d, 2026-12-01, 4 hours ago); --limit the newest N entries (default 100)." },
	{ "reserve", cmd_reserve, false,
	  "reserve [N | --gpu I[,I...]] [--for DURATION] [--wait] [--json] | reserve --extend ID DURATION",
	  "Make GPUs yours alone for a time (default 1h, --for 30m, 4h, 2d): N of them (default "
	  "1; those your processes use first, then the lowest), or those --gpu names (indices or "
	  "UUIDs, as gpubox gpus shows them).  Their devices leave every other member's "
	  "container at once and come back when the reservation ends.  Only GPUs of your own "
	  "container that no other member's process holds can be reserved; with --wait a request "
	  "that cannot be granted now waits in a queue, served in order of arrival, and the "
	  "command returns at once with its id.  --extend ID DURATION keeps a reservation that "
	  "much longer.  Works inside your container too." },
	{ "reservations", cmd_reservations, false,
	  "reservations [--json]",
	  "List the server's reservations and the requests waiting: who holds which GPUs, "
	  "since when and until when.  Works inside your container too." },
	{ "release", cmd_release, false,
	  "release [ID] [--json]",
	  "End your reservation ID early, or cancel your request ID that waits; without ID, "
	  "all of yours.  The GPUs go back to the other members' containers at once.  Works "
	  "inside your container too." },
	{ "version", cmd_version, false,
	  "version [--json]",
	  "Print the version of this program and of the server's agent." },
	{ "help", cmd_help, false,
	  "help [COMMAND]",
	  "Show the commands, or the help of one command (help port add)." },
	{ NULL, NULL, false, NULL, NULL },
};

int main(int argc, char **argv)
{
	struct cli cli = { .prog = "gpubox", .commands = cli_commands };

	/* A closed socket must be an error to report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	log_init("gpubox", false, LOG_LEVEL_WARN);
	return cli_main(&cli, argc, argv);
}
