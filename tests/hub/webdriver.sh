# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# A small client of the W3C WebDriver HTTP protocol in bash, with curl and
# jq only, for the browser tests of the hub's pages (tests/hub/run) and of
# the monitor.  It drives Debian's headless Chromium through chromedriver.
# Source it, then:
#
#   wd_start                   start chromedriver on a free port (WD_URL, WD_PID)
#   wd_session [W H [mobile]]  a headless Chromium session (WD_SESSION), W x H
#                              pixels; "mobile" emulates a phone's screen
#                              (plain --window-size stops at 500 px wide)
#   wd_go URL                  open URL and wait until it has loaded
#   wd_find CSS                print the id of the first element that matches
#   wd_count CSS               print how many elements match (0 is no error)
#   wd_click CSS               click the first match; waits for a page it loads
#   wd_type CSS TEXT           clear the first match, then type TEXT into it
#   wd_text CSS                print the first match's visible text
#   wd_attr CSS NAME           print an attribute of the first match
#   wd_url, wd_title, wd_source
#   wd_cookie NAME             print one cookie as JSON (name, value, httpOnly,
#                              sameSite, secure, path, expiry)
#   wd_add_cookie JSON         add a cookie for the current page's site
#   wd_exec SCRIPT [JSONARG...] run JavaScript; print its result as JSON
#   wd_on_new_page SCRIPT      run SCRIPT in every page opened from now on,
#                              before the page's own scripts (Chromium only)
#   wd_screenshot FILE         save a PNG of the viewport
#   wd_quit                    end the session (closes Chromium)
#   wd_stop                    wd_quit, then stop chromedriver and remove its files
#
# Each function returns non-zero, with WebDriver's message on stderr, when
# a command fails; none of them exits the calling script.

WD_DRIVER=${WD_DRIVER:-/usr/bin/chromedriver}
WD_BROWSER=${WD_BROWSER:-/usr/bin/chromium}
WD_IMPLICIT_MS=${WD_IMPLICIT_MS:-2000}
WD_URL=""
WD_PID=""
WD_SESSION=""
WD_TMP=""
WD_PROFILES=0
# The W3C name under which an element's id travels.
WD_ELEMENT_KEY=element-6066-11e4-a52e-4f735466cecf

# A TCP port nobody listens on (random, so parallel runs rarely collide).
wd_free_port() {
	local port
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 30000))
		if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
			echo "$port"
			return 0
		fi
	done
	echo "webdriver: no free TCP port found" >&2
	return 1
}

# METHOD PATH [JSON]: one WebDriver command; prints its "value" as JSON.
_wd_call() {
	local method=$1 path=$2 data=${3-} out
	local args=(-sS -X "$method" --max-time "${WD_TIMEOUT:-60}" -H 'Content-Type: application/json')

	if [ -n "$data" ]; then
		args+=(--data-binary "$data")
	fi
	if ! out=$(curl "${args[@]}" "$WD_URL$path"); then
		echo "webdriver: $method $path: chromedriver did not answer" >&2
		return 1
	fi
	# One jq for both cases: "E message" for an error, else "V value".
	out=$(jq -r 'if (.value | type == "object" and has("error"))
		then "E " + (.value.message | split("\n")[0])
		else "V " + (.value | tojson) end' <<<"$out") || out="E not a WebDriver answer"
	if [ "${out:0:2}" = "E " ]; then
		echo "webdriver: $method $path: ${out:2}" >&2
		return 1
	fi
	printf '%s\n' "${out:2}"
}

_wd_need_session() {
	if [ -z "$WD_SESSION" ]; then
		echo "webdriver: no session (call wd_session first)" >&2
		return 1
	fi
}

wd_start() {
	local port out

	WD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpubox-webdriver.XXXXXX") || return 1
	port=$(wd_free_port) || return 1
	WD_URL=http://127.0.0.1:$port
	# Its own process group, so that wd_stop can end chromedriver and
	# every Chromium process it started, by that one id.
	setsid "$WD_DRIVER" --port="$port" --log-path="$WD_TMP/chromedriver.log" >/dev/null 2>&1 &
	WD_PID=$!
	for _ in $(seq 1 100); do
		# Not "curl | jq -e": jq 1.6 exits 0 on empty input, which let a
		# chromedriver that had not bound its port yet count as ready.
		out=$(curl -sf --max-time 2 "$WD_URL/status" 2>/dev/null) &&
			[ "$(jq -r '.value.ready' <<<"$out" 2>/dev/null)" = true ] && return 0
		kill -0 "$WD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "webdriver: chromedriver did not start (log: $WD_TMP/chromedriver.log)" >&2
	return 1
}

wd_session() {
	local width=${1:-412} height=${2:-915} mode=${3:-} caps out

	WD_PROFILES=$((WD_PROFILES + 1))
	caps=$(jq -n --arg bin "$WD_BROWSER" --argjson w "$width" --argjson h "$height" \
		--arg mode "$mode" --arg profile "$WD_TMP/profile-$WD_PROFILES" '
		{capabilities: {alwaysMatch: {"goog:chromeOptions": ({
			binary: $bin,
			args: ["--headless=new", "--no-sandbox", "--disable-gpu",
			       "--window-size=\($w),\($h)", "--user-data-dir=\($profile)",
			       "--no-first-run", "--disable-extensions"]
		} + (if $mode == "mobile"
		     then {mobileEmulation: {deviceMetrics: {width: $w, height: $h, pixelRatio: 1}}}
		     else {} end))}}}') || return 1
	out=$(_wd_call POST /session "$caps") || return 1
	WD_SESSION=$(jq -r '.sessionId' <<<"$out")
	_wd_call POST "/session/$WD_SESSION/timeouts" \
		"{\"implicit\": $WD_IMPLICIT_MS, \"pageLoad\": 30000, \"script\": 10000}" >/dev/null
}

wd_go() {
	_wd_need_session || return 1
	_wd_call POST "/session/$WD_SESSION/url" "$(jq -n --arg url "$1" '{url: $url}')" >/dev/null
}

wd_find() {
	local out

	_wd_need_session || return 1
	out=$(_wd_call POST "/session/$WD_SESSION/element" \
		"$(jq -n --arg css "$1" '{using: "css selector", value: $css}')") || return 1
	jq -r --arg k "$WD_ELEMENT_KEY" '.[$k]' <<<"$out"
}

# Counted in the page, so that no match answers at once (a WebDriver
# search for elements waits the implicit timeout before it says none).
wd_count() {
	wd_exec 'return document.querySelectorAll(arguments[0]).length' "$(jq -n --arg css "$1" '$css')"
}

wd_click() {
	local el

	el=$(wd_find "$1") || return 1
	_wd_call POST "/session/$WD_SESSION/element/$el/click" '{}' >/dev/null
}

wd_type() {
	local el

	el=$(wd_find "$1") || return 1
	_wd_call POST "/session/$WD_SESSION/element/$el/clear" '{}' >/dev/null || return 1
	_wd_call POST "/session/$WD_SESSION/element/$el/value" \
		"$(jq -n --arg text "$2" '{text: $text}')" >/dev/null
}

wd_text() {
	local el out

	el=$(wd_find "$1") || return 1
	out=$(_wd_call GET "/session/$WD_SESSION/element/$el/text") || return 1
	jq -r '.' <<<"$out"
}

wd_attr() {
	local el out

	el=$(wd_find "$1") || return 1
	out=$(_wd_call GET "/session/$WD_SESSION/element/$el/attribute/$2") || return 1
	jq -r '. // empty' <<<"$out"
}

wd_url() {
	_wd_need_session || return 1
	_wd_call GET "/session/$WD_SESSION/url" | jq -r '.'
}

wd_title() {
	_wd_need_session || return 1
	_wd_call GET "/session/$WD_SESSION/title" | jq -r '.'
}

wd_source() {
	_wd_need_session || return 1
	_wd_call GET "/session/$WD_SESSION/source" | jq -r '.'
}

wd_cookie() {
	_wd_need_session || return 1
	_wd_call GET "/session/$WD_SESSION/cookie/$1"
}

wd_add_cookie() {
	_wd_need_session || return 1
	_wd_call POST "/session/$WD_SESSION/cookie" "$(jq -n --argjson c "$1" '{cookie: $c}')" >/dev/null
}

wd_on_new_page() {
	_wd_call POST "/session/$WD_SESSION/goog/cdp/execute" \
		"$(jq -n --arg s "$1" '{cmd: "Page.addScriptToEvaluateOnNewDocument", params: {source: $s}}')" >/dev/null
}

wd_exec() {
	local script=$1 args

	shift
	_wd_need_session || return 1
	args=$(printf '%s\n' "$@" | jq -s -c '.') || return 1
	_wd_call POST "/session/$WD_SESSION/execute/sync" \
		"$(jq -n --arg s "$script" --argjson a "$args" '{script: $s, args: $a}')"
}

wd_screenshot() {
	local out

	_wd_need_session || return 1
	out=$(_wd_call GET "/session/$WD_SESSION/screenshot") || return 1
	jq -r '.' <<<"$out" | base64 -d >"$1"
}

wd_quit() {
	if [ -n "$WD_SESSION" ] && [ -n "$WD_URL" ]; then
		_wd_call DELETE "/session/$WD_SESSION" >/dev/null 2>&1
	fi
	WD_SESSION=""
}

wd_stop() {
	wd_quit
	if [ -n "$WD_PID" ]; then
		kill -TERM -- "-$WD_PID" 2>/dev/null
		wait "$WD_PID" 2>/dev/null
		# Chromium's helpers may outlive the driver by a moment.
		sleep 0.2
		kill -KILL -- "-$WD_PID" 2>/dev/null
		WD_PID=""
	fi
	if [ -n "$WD_TMP" ]; then
		rm -rf "$WD_TMP"
		WD_TMP=""
	fi
	WD_URL=""
}
