#!/bin/bash
# Every bad input is refused with one clear sentence and changes nothing.
. "$(dirname "$0")/lib.sh"

a=ba$GBX_ID
b=bb$GBX_ID
trap 'remove_member $a; remove_member $b' EXIT
add_member "$a" && ok "member $a added" || not_ok "member $a added"
add_member "$b" && ok "member $b added" || not_ok "member $b added"

before_users=$(gpubox admin user ls --json)
before_rules=$(nft_rules)
# Host accounts are the machine's: look at this suite's members only.
members_of_suite() { getent group "gbxm$GBX_ID" | cut -d: -f4; }
before_members=$(members_of_suite)

# Names.
for bad in '../x' 'a;b' '-rf' 'A' 'x y' '$(id)' "$(printf 'a%.0s' $(seq 300))" ''; do
	refuse "user add refuses the name '${bad:0:20}'" 2 'member name|usage|name' \
		gpubox admin user add "$bad" --key "$GBX_DIR/keys-client/$a.pub"
done

# Keys.
printf 'command="id" %s\n' "$(cut -d' ' -f1-2 "$GBX_DIR/keys-client/$a.pub")" >"$GBX_DIR/optkey.pub"
refuse "a key with options is refused" 2 'options' \
	gpubox admin user add "x$GBX_ID" --key "$GBX_DIR/optkey.pub"
echo 'ssh-ed25519 AAAAnotbase64!!' >"$GBX_DIR/badkey.pub"
refuse "a damaged key is refused" 2 'base64|damaged' \
	gpubox admin user add "x$GBX_ID" --key "$GBX_DIR/badkey.pub"
refuse "a missing key file is refused" 1 'cannot read|No such file' \
	gpubox admin user add "x$GBX_ID" --key "$GBX_DIR/nonexistent.pub"

# Ports.
refuse "port 0 is refused" 2 'port' as_user "$a" port add 0
refuse "port 65536 is refused" 2 'port' as_user "$a" port add 65536
refuse "port 'abc' is refused" 2 'port' as_user "$a" port add abc
refuse "a reserved host port is refused" 1 'reserved' as_user "$a" port add 8080 22
refuse "a host port outside the range is refused" 1 'reserved' as_user "$a" port add 8080 "$GBX_SSH_FIRST"
check "$b forwards host port $((GBX_FWD_FIRST + 50))" as_user "$b" port add 8080 $((GBX_FWD_FIRST + 50))
refuse "another member's host port is refused" 1 'another member' as_user "$a" port add 8080 $((GBX_FWD_FIRST + 50))
as_user "$b" port rm 8080 >/dev/null
refuse "port add --from refuses 300.1.1.1/8" 2 '"300.1.1.1/8" is not a network' as_user "$a" port add 8080 --from 300.1.1.1/8
refuse "port set needs --from" 2 'name who may connect with --from' as_user "$a" port set ssh
refuse "port set refuses a port that is not a number or ssh" 2 'port' as_user "$a" port set http --from any
refuse "port set of a port not forwarded is refused" 1 'not forwarded' as_user "$a" port set 8080 --from any
refuse "port set takes no host port" 2 'one container port' as_user "$a" port set 8080 9090 --from any
refuse "port rm takes no --from" 2 'does not take --from' as_user "$a" port rm 8080 --from any
refuse "limits set --until takes an end" 2 '--until takes an end' gpubox admin limits set "$a" pids=500 --until soon
refuse "limits set --until refuses an end that has passed" 2 'has passed' gpubox admin limits set "$a" pids=500 --until 2020-01-01
refuse "limits rm takes no --until" 2 'does not take --until' gpubox admin limits rm "$a" pids --until 1h

# Shell syntax through the login shell: refused, never run.
for line in 'start; id' '$(id)' '`id`' 'start && id' 'stop | id' "start
id" 'status > /tmp/x'; do
	refuse "login shell refuses '$(printf '%s' "$line" | tr '\n' ' ')'" 2 'refused' \
		setpriv --reuid="$a" --regid="$(id -g "$a")" --init-groups \
		"$GBX_BIN/gpubox-login" -c "$line"
done
refuse "an unknown command is refused" 2 'not a gpubox command' as_user "$a" frobnicate
refuse "a member cannot run admin commands" 1 'admin' as_user "$a" admin user ls
refuse "log --since takes a time" 2 'cannot read "whenever" as a time' as_user "$a" log --since whenever
refuse "log --limit takes 1 to 10000" 2 '--limit takes a number of entries from 1 to 10000' as_user "$a" log --limit 10001
refuse "log takes no --member" 2 'does not take --member' as_user "$a" log --member "$b"
refuse "admin log --limit takes a number" 2 '--limit takes a number' gpubox admin log --limit ten
refuse "admin log --member takes a member name" 2 'member name|name' gpubox admin log --member 'A;B'
refuse "gpu attach takes no --force" 2 'does not take --force' gpubox admin gpu attach "$a" 0 --force
refuse "a member cannot detach a GPU, even with --force" 1 'admin' as_user "$a" admin gpu detach "$a" 0 --force

# Reservations (this suite's server has no GPU until t0070 fakes one).
refuse "reserve --for 0 is refused" 2 'not a duration' as_user "$a" reserve --for 0
refuse "reserve --for 4hours is refused" 2 'not a duration' as_user "$a" reserve --for 4hours
refuse "reserve 0 is refused" 2 'not a number of GPUs' as_user "$a" reserve 0
refuse "reserve with a count and --gpu is refused" 2 'not both' as_user "$a" reserve 2 --gpu 1
refuse "reserve --extend without a duration is refused" 2 'how much longer' as_user "$a" reserve --extend 1
refuse "reserve --extend of a bad id is refused" 2 "not a reservation's id" as_user "$a" reserve --extend x 1h
refuse "reserve on a server without GPU is refused" 1 'no NVIDIA GPU' as_user "$a" reserve 1
refuse "release of a reservation that does not exist is refused" 1 'no reservation 42' as_user "$a" release 42
refuse "release 'x' is refused" 2 "not a reservation's id" as_user "$a" release x
refuse "a member cannot reserve for another" 1 'only on your own' as_user "$a" admin reserve "$b" 1
refuse "an admin release names a reservation" 2 'takes the id' gpubox admin release
[ "$(gpubox reservations --json | jq '.reservations | length')" = 0 ] && ok "no reservation was made" ||
	not_ok "no reservation was made"

after_users=$(gpubox admin user ls --json)
[ "$before_users" = "$after_users" ] && ok "no member was changed" || not_ok "no member was changed"
[ "$before_rules" = "$(nft_rules)" ] && ok "no rule was changed" || not_ok "no rule was changed"
created=
for bad in '../x' 'a;b' '-rf' 'A' 'x y' "x$GBX_ID"; do
	getent passwd "$bad" >/dev/null && created="$created $bad"
done
[ "$before_members" = "$(members_of_suite)" ] && [ -z "$created" ] && ok "no host account was changed" ||
	not_ok "no host account was changed (created:$created)"
done_testing
