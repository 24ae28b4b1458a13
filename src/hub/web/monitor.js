/* SPDX-License-Identifier: MIT */
/*
 * The monitor pages of gpubox-hub: the overview of every server, one
 * server, one GPU, and a member's own page (/me).  The hub writes a page
 * shell, <main id="monitor" data-page="…">, and this script fills it from
 * the JSON API (docs/hub-api.md, "Monitor endpoints").
 *
 * Rules this file keeps: the hub's Content-Security-Policy is
 * "default-src 'self'", so no inline styles in markup and no eval; every
 * string from the API is untrusted and reaches the page through
 * textContent or a checked attribute only; a failed fetch never replaces
 * the last good view with zeros.
 */
(function () {
	'use strict';

	const GIB = 1024 ** 3;
	const TIB = 1024 ** 4;
	const MINUTE = 60 * 1000;
	const HOUR = 60 * MINUTE;
	const DAY = 24 * HOUR;
	const RANGES = { '1h': HOUR, '1d': DAY, '1w': 7 * DAY };
	const RANGE_LABELS = { '1h': '1 hour', '1d': '1 day', '1w': '1 week' };
	const DEFAULT_POLL_MS = 5000;
	const FETCH_TIMEOUT_MS = 15000;
	const HISTORY_POINTS = 300;
	const HISTORY_REFRESH_MS = 60 * 1000;
	const STORE_PREFIX = 'gpubox.monitor.';
	/* Distinct on the light and the dark background alike. */
	const PALETTE = ['#3b6fd8', '#e8590c', '#2f9e44', '#ae3ec9', '#e03131', '#1098ad',
		'#f08c00', '#74b816', '#7048e8', '#d6336c', '#5c7cfa', '#868e96'];

	/* ---- DOM building: text only through textContent, never markup ---------- */

	function el(tag, props, children) {
		const node = document.createElement(tag);

		for (const [key, value] of Object.entries(props || {})) {
			if (value === undefined || value === null || value === false)
				continue;
			if (key === 'style' || key.startsWith('on'))
				throw new Error('monitor: no inline ' + key);
			if (key === 'text')
				node.textContent = String(value);
			else if (key === 'className')
				node.className = value;
			else
				node.setAttribute(key, value === true ? '' : String(value));
		}
		for (const child of [].concat(children || [])) {
			if (child !== null && child !== undefined && child !== false)
				node.append(child);
		}
		return node;
	}

	/* "1 server", "2 servers". */
	function plural(n, word) {
		return n + ' ' + word + (n === 1 ? '' : 's');
	}

	/* Writes only when the text changed: most cells keep their value between polls. */
	function setText(node, text) {
		text = String(text);
		if (node.textContent !== text)
			node.textContent = text;
	}

	function setTitle(node, text) {
		if (node.title !== text)
			node.title = text;
	}

	function setData(node, key, value) {
		value = String(value);
		if (node.dataset[key] !== value)
			node.dataset[key] = value;
	}

	function link(href, text) {
		return el('a', { href, text });
	}

	function serverUrl(server) {
		return '/monitor/servers/' + encodeURIComponent(server);
	}

	function gpuUrl(server, gpu) {
		return serverUrl(server) + '/gpus/' + encodeURIComponent(gpu);
	}

	function apiServerUrl(server, what, params) {
		const query = new URLSearchParams();
		for (const [key, value] of Object.entries(params))
			if (value !== null && value !== undefined)
				query.set(key, String(value));
		return '/api/v1/monitor/servers/' + encodeURIComponent(server) + '/' + what + '?' + query;
	}

	/* ---- human formats: GiB with one decimal, local 24-hour clock ------------ */

	function fmtBytes(bytes) {
		if (typeof bytes !== 'number')
			return '—';
		return bytes >= TIB ? (bytes / TIB).toFixed(1) + ' TiB' : (bytes / GIB).toFixed(1) + ' GiB';
	}

	/* "41.0 / 80.0 GiB": both in the unit of the total. */
	function fmtUsedOf(used, total) {
		if (typeof used !== 'number')
			return '—';
		if (typeof total !== 'number')
			return fmtBytes(used);
		const [unit, name] = total >= TIB ? [TIB, 'TiB'] : [GIB, 'GiB'];
		return (used / unit).toFixed(1) + ' / ' + (total / unit).toFixed(1) + ' ' + name;
	}

	/* "↓12.0 ↑1.0 MB/s": read and write, or in and out. */
	function fmtRates(down, up) {
		const mb = (v) => (typeof v === 'number' ? (v / 1e6).toFixed(1) : '—');
		return '↓' + mb(down) + ' ↑' + mb(up) + ' MB/s';
	}

	function fmtNumber(value, digits, unit) {
		return typeof value === 'number' ? value.toFixed(digits) + unit : '—';
	}

	function pad2(n) {
		return String(n).padStart(2, '0');
	}

	function fmtClock(ms) {
		const d = new Date(ms);
		return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
	}

	function fmtDay(ms) {
		return new Date(ms).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
	}

	/* The clock, and the day too when it is not today. */
	function fmtWhen(ms) {
		const today = new Date().toDateString() === new Date(ms).toDateString();
		return today ? fmtClock(ms) : fmtClock(ms) + ' on ' + fmtDay(ms);
	}

	function fmtAgo(ms, now) {
		const s = Math.max(0, Math.round((now - ms) / 1000));
		if (s < 60)
			return s + ' s ago';
		if (s < 3600)
			return Math.floor(s / 60) + ' min ago';
		if (s < 172800)
			return Math.floor(s / 3600) + ' h ago';
		return Math.floor(s / 86400) + ' days ago';
	}

	/* "2 h 5 min", "4 min", "40 s": how long a GPU has been held idle. */
	function fmtDuration(seconds) {
		const s = Math.max(0, Math.round(seconds || 0));
		if (s < 60)
			return s + ' s';
		if (s < 3600)
			return Math.floor(s / 60) + ' min';
		return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
	}

	function fmtLastContact(ms, now) {
		if (typeof ms !== 'number')
			return 'last contact never';
		return 'last contact ' + fmtWhen(ms) + ', ' + fmtAgo(ms, now);
	}

	/* "NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA A100-SXM4-80GB" -> "A100-SXM4":
	 * the memory is in its own column; the full name goes in the title. */
	function shortModel(name) {
		return String(name || '').replace(/^NVIDIA\s+/i, '').replace(/^(Tesla|GeForce)\s+/i, '')
			.replace(/[-\s]\d+\s?GB\b.*$/i, '') || '—';
	}

	/* ---- fetching: one error shape for network, HTTP and JSON failures ------- */

	class ApiError extends Error {
		constructor(status, message) {
			super(message);
			this.status = status;
		}
	}

	async function getJSON(url) {
		const abort = new AbortController();
		const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
		let resp, body = null;

		try {
			resp = await fetch(url, {
				credentials: 'same-origin',
				headers: { Accept: 'application/json' },
				signal: abort.signal,
			});
			body = await resp.json().catch(() => null);
		} catch (e) {
			throw new ApiError(0, e.name === 'AbortError' ? 'the hub did not answer in time'
				: 'the hub could not be reached');
		} finally {
			clearTimeout(timer);
		}
		if (!resp.ok) {
			const text = body && typeof body.error === 'string' ? body.error : 'the hub answered ' + resp.status;
			throw new ApiError(resp.status, text);
		}
		if (!body || typeof body !== 'object')
			throw new ApiError(resp.status, 'the hub sent an answer that is not JSON');
		return body;
	}

	/* The hub's clock as best known, so "N min ago" does not depend on ours. */
	let clockSkew = 0;

	function hubNow() {
		return Date.now() + clockSkew;
	}

	function noteHubTime(ms) {
		if (typeof ms === 'number')
			clockSkew = ms - Date.now();
	}

	/* ---- messages: errors in an alert, a stale view flagged but kept -------- */

	function showError(slot, message) {
		let p = slot.querySelector(':scope > p.error');
		if (!p) {
			p = el('p', { className: 'error flash', role: 'alert' });
			slot.replaceChildren(p);
		}
		setText(p, message);
	}

	function clearError(slot) {
		if (slot.firstChild)
			slot.replaceChildren();
	}

	/* A failed refresh: keep the view, say how old it is and why. */
	function showStale(slot, sinceMs, error) {
		if (typeof sinceMs !== 'number')
			return showError(slot, error.message);
		let p = slot.querySelector(':scope > p.stale');
		if (!p) {
			p = el('p', { className: 'stale error', role: 'alert' });
			slot.replaceChildren(p);
		}
		setText(p, 'not updated since ' + fmtClock(sinceMs) + ' (' + error.message + ')');
	}

	/* ---- polling: one request at a time, paused while the tab is hidden ----- */

	function makePoller(task, intervalMs) {
		let timer = null, running = false;

		async function tick() {
			timer = null;
			if (document.hidden)
				return;
			running = true;
			try {
				const next = await task();
				if (typeof next === 'number' && next > 0)
					intervalMs = Math.max(1000, next);
			} catch (e) {
				console.error('monitor:', e);
			}
			running = false;
			if (!document.hidden && timer === null)
				timer = setTimeout(tick, intervalMs);
		}
		document.addEventListener('visibilitychange', () => {
			if (document.hidden || running)
				return;
			clearTimeout(timer);
			tick();
		});
		return { start: tick };
	}

	function storeGet(key, fallback) {
		try {
			return localStorage.getItem(STORE_PREFIX + key) ?? fallback;
		} catch (e) {
			return fallback;
		}
	}

	function storeSet(key, value) {
		try {
			localStorage.setItem(STORE_PREFIX + key, value);
		} catch (e) {
			/* Private mode or full: the choice lasts for this page only. */
		}
	}

	/* ---- a server's numbers, computed once per answer ----------------------- */

	/* The hub sends member objects; an agent's bare names are taken too. */
	function memberList(gpu) {
		return (gpu.members || []).map((m) => (typeof m === 'string' ? { member: m } : m || {}));
	}

	/* A GPU held by a reservation is not free, even while nothing runs on it. */
	function gpuIsFree(gpu) {
		return !gpu.lost && memberList(gpu).length === 0 && !gpu.reserved;
	}

	/* Members whose processes hold the GPU idle (the agent's idle_after). */
	function idleMembers(gpu) {
		return memberList(gpu).filter((m) => m.idle === true);
	}

	function serverStats(srv) {
		const gpus = srv.reachable && srv.sample ? srv.sample.gpus || [] : [];
		let free = 0, freeMem = 0;

		for (const g of gpus) {
			if (gpuIsFree(g))
				free++;
			if (!g.lost && typeof g.mem_total === 'number')
				freeMem += Math.max(0, g.mem_total - (g.mem_used || 0));
		}
		return { gpus: gpus.length, free, freeMem };
	}

	/* ---- server card: built when its shape changes, else updated in place --- */

	/*
	 * A card's shape is what decides its elements: reachable or not, the
	 * GPU note, and which GPU rows are shown.  Between polls the shape
	 * rarely changes, so most polls only rewrite the texts that changed.
	 */
	function cardShape(srv, rows) {
		if (!srv.reachable || !srv.sample)
			return 'down';
		const s = srv.sample;
		return ['up', s.gpu_ok !== false, (s.gpus || []).length,
			rows.map((g) => g.index + (g.lost ? 'L' : '')).join(',')].join('|');
	}

	function createCard(name) {
		return { name, root: el('section', { className: 'server card', 'data-server': name }), shape: null };
	}

	function buildCardHead(card) {
		card.badge = el('span', { className: 'badge' });
		card.driver = el('span', { className: 'muted driver' });
		return el('div', { className: 'server-head' }, [
			el('h2', null, link(serverUrl(card.name), card.name)), card.badge, card.driver,
		]);
	}

	function buildUnreachable(card) {
		card.lastContact = el('p', { className: 'last-contact' });
		card.errorText = el('p', { className: 'muted server-error' });
		card.root.append(card.lastContact, card.errorText);
	}

	const HOST_FACTS = [
		['cpu', 'CPU'], ['mem', 'Memory'], ['disk', 'Disk'], ['load', 'Load 1/5/15'],
		['containers', 'Containers'], ['io', 'Disk read/write'], ['net', 'Network in/out'],
	];

	function buildHostFacts(card) {
		const dl = el('dl', { className: 'host-facts' });
		card.facts = {};
		for (const [key, label] of HOST_FACTS) {
			card.facts[key] = el('dd');
			dl.append(el('div', { className: 'fact-' + key }, [el('dt', { text: label }), card.facts[key]]));
		}
		card.root.append(dl);
	}

	function buildGpuTable(card, rows) {
		const head = el('tr', null, ['GPU', 'Model', 'Util.', 'Memory', 'Temp.', 'Power', 'Members']
			.map((label) => el('th', { scope: 'col', text: label })));
		const body = el('tbody');
		card.rows = rows.map((g) => {
			const row = createGpuRow(card.name, g);
			body.append(row.tr);
			return row;
		});
		card.root.append(el('div', { className: 'table-wrap gpu-wrap' },
			el('table', { className: 'gpus' }, [el('thead', null, head), body])));
	}

	function buildCard(card, srv, rows) {
		card.root.replaceChildren(buildCardHead(card));
		card.rows = [];
		if (!srv.reachable || !srv.sample)
			return buildUnreachable(card);
		buildHostFacts(card);
		card.gpuNote = el('p', { className: 'gpu-note', role: 'note' });
		card.gpuNote.hidden = true;
		card.root.append(card.gpuNote);
		if (rows.length > 0)
			buildGpuTable(card, rows);
		else if ((srv.sample.gpus || []).length === 0 && srv.sample.gpu_ok !== false)
			card.root.append(el('p', { className: 'muted', text: 'No GPUs.' }));
		card.reservations = el('div', { className: 'reservations' });
		card.reservations.hidden = true;
		card.reservationsKey = null;
		card.root.append(card.reservations);
	}

	/* ---- reservations: who holds which GPUs until when, and who waits ------ */

	function fmtGpuList(gpus) {
		const list = Array.isArray(gpus) ? gpus.filter((g) => typeof g === 'number') : [];
		return (list.length === 1 ? 'GPU ' : 'GPUs ') + (list.length ? list.join(', ') : '?');
	}

	function reservationItem(r, names) {
		const until = typeof r.until_ms === 'number' ? 'until ' + fmtWhen(r.until_ms) : '';
		const holder = names && typeof r.member === 'string' ? r.member : null;
		return el('li', { className: 'reservation ' + (r.state === 'queued' ? 'queued' : 'active'),
			'data-id': typeof r.id === 'number' ? r.id : null }, [
			el('span', { className: 'res-gpus', text: fmtGpuList(r.gpus) }),
			holder ? el('span', { className: 'res-member', text: holder }) : null,
			el('span', { className: 'res-until muted', text: until }),
		]);
	}

	function reservationList(title, className, list, names) {
		if (list.length === 0)
			return null;
		return el('div', { className }, [
			el('h3', { text: title }),
			el('ul', null, list.map((r) => reservationItem(r, names))),
		]);
	}

	/* Rebuilt only when what it shows changed. */
	function updateReservations(card, s, names) {
		const all = Array.isArray(s.reservations) ? s.reservations.filter((r) => r && typeof r === 'object') : [];
		const key = JSON.stringify([names, all.map((r) => [r.id, r.state, r.member, r.gpus, r.until_ms])]);

		if (key === card.reservationsKey)
			return;
		card.reservationsKey = key;
		const active = all.filter((r) => r.state !== 'queued');
		const queued = all.filter((r) => r.state === 'queued');
		card.reservations.hidden = all.length === 0;
		card.reservations.replaceChildren(...[
			reservationList('Reserved', 'res-active', active, names),
			reservationList('Queued', 'res-queued', queued, names),
		].filter(Boolean));
	}

	function updateCardHead(card, srv, stats) {
		const up = srv.reachable && srv.sample;
		setData(card.root, 'reachable', up ? 'true' : 'false');
		const [text, kind] = !up ? ['unreachable', 'off']
			: srv.sample.gpu_ok === false ? ['GPUs not read', 'off']
				: stats.gpus === 0 ? ['no GPUs', 'busy']
					: [stats.free + ' of ' + stats.gpus + ' free', stats.free > 0 ? 'on' : 'busy'];
		setText(card.badge, text);
		if (card.badge.className !== 'badge ' + kind)
			card.badge.className = 'badge ' + kind;
		setText(card.driver, up && srv.sample.driver_version ? 'driver ' + srv.sample.driver_version : '');
	}

	function updateHostFacts(card, s) {
		const h = s.host || {};
		const f = card.facts;
		const memUsed = typeof h.mem_total === 'number' && typeof h.mem_available === 'number'
			? h.mem_total - h.mem_available : null;
		const load = Array.isArray(h.load) ? h.load.map((v) => fmtNumber(v, 2, '')).join(' / ') : '—';

		setText(f.cpu, fmtNumber(h.cpu_percent, 1, ' %') + (h.ncpus ? ' of ' + h.ncpus + ' CPUs' : ''));
		setText(f.mem, fmtUsedOf(memUsed, h.mem_total));
		setText(f.disk, fmtUsedOf(h.disk_used, h.disk_total));
		setText(f.load, load);
		setText(f.containers, typeof s.containers !== 'number' ? '—' : s.containers + ' running' +
			(s.near_memory_limit > 0 ? ', ' + s.near_memory_limit + ' near the memory limit' : '') +
			(s.oom_kills > 0 ? ', ' + s.oom_kills + ' killed for memory' : ''));
		setTitle(f.containers, Array.isArray(s.container_limits) ? s.container_limits.map((c) =>
			(c.member || '?') + ': ' + (c.mem_limit ? fmtUsedOf(c.mem_used, c.mem_limit) : fmtBytes(c.mem_used)) +
			', ' + (c.pids || 0) + ' processes' + (c.oom_kills ? ', ' + c.oom_kills + ' killed for memory' : '')).join('\n') : '');
		setText(f.io, fmtRates(h.disk_read_rate, h.disk_write_rate));
		setText(f.net, fmtRates(h.net_rx_rate, h.net_tx_rate));
	}

	/* Returns the number of GPU rows the card shows. */
	function renderCard(card, srv, view) {
		const up = srv.reachable && srv.sample;
		const all = up ? srv.sample.gpus || [] : [];
		const rows = all.filter((g) => (view.gpu === null || g.index === view.gpu) &&
			(!view.onlyFree || gpuIsFree(g)));
		const shape = cardShape(srv, rows);

		if (shape !== card.shape) {
			buildCard(card, srv, rows);
			card.shape = shape;
		}
		updateCardHead(card, srv, serverStats(srv));
		if (!up) {
			setText(card.lastContact, fmtLastContact(srv.last_contact, view.now));
			setText(card.errorText, srv.error || '');
			return 0;
		}
		updateHostFacts(card, srv.sample);
		card.gpuNote.hidden = srv.sample.gpu_ok !== false;
		setText(card.gpuNote, srv.sample.gpu_ok === false ? srv.sample.gpu_note || 'The GPUs cannot be read.' : '');
		rows.forEach((g, i) => updateGpuRow(card.rows[i], g, view.names));
		updateReservations(card, srv.sample, view.names);
		return rows.length;
	}

	/* ---- GPU rows ------------------------------------------------------------ */

	/* Rows are cloned from one template: with 160 rows, cloning is several
	 * times cheaper than building each row element by element. */
	let gpuRowTemplate = null;

	function createGpuRow(server, g) {
		if (!gpuRowTemplate) {
			gpuRowTemplate = el('tr', { className: 'gpu' }, [
				el('td', { className: 'index' }, el('a')),
				el('td', { className: 'model' }, el('span')),
				el('td', { className: 'util' }, [
					el('meter', { min: 0, max: 100, value: 0, 'aria-label': 'utilisation' }),
					el('span', { className: 'num' })]),
				el('td', { className: 'mem' }, [
					el('meter', { min: 0, max: 1, value: 0, optimum: 0, 'aria-label': 'memory used' }),
					el('span', { className: 'num' })]),
				el('td', { className: 'temp num' }),
				el('td', { className: 'power num' }),
				el('td', { className: 'members' }),
			]);
		}
		const tr = gpuRowTemplate.cloneNode(true);
		const cells = tr.cells;
		const anchor = cells[0].firstChild;

		tr.dataset.server = server;
		tr.dataset.gpu = g.index;
		anchor.href = gpuUrl(server, g.index);
		anchor.textContent = String(g.index);
		return {
			tr, model: cells[1].firstChild,
			utilMeter: cells[2].firstChild, utilText: cells[2].lastChild,
			memMeter: cells[3].firstChild, memText: cells[3].lastChild,
			temp: cells[4], power: cells[5], members: cells[6],
		};
	}

	function setMeter(meter, value, max) {
		if (meter.max !== max) {
			meter.max = max;
			meter.high = max * 0.9;
		}
		if (meter.value !== value)
			meter.value = value;
	}

	/* "alice (idle 2 h 5 min)": a member holding the GPU idle. */
	function memberText(m) {
		const name = m.member || 'host';
		return m.idle === true ? name + ' (idle ' + fmtDuration(m.idle_seconds) + ')' : name;
	}

	function updateMembers(cell, g, names) {
		const members = memberList(g);
		const idle = idleMembers(g).length;
		let text, key;

		if (g.lost) {
			key = 'lost';
			text = 'lost';
		} else if (members.length === 0 && g.reserved) {
			key = 'reserved';
			text = names && typeof g.reserved.member === 'string' ? 'reserved: ' + g.reserved.member : 'reserved';
		} else if (members.length === 0) {
			key = 'free';
			text = 'free';
		} else if (!names) {
			key = 'in-use';
			text = idle > 0 ? 'in use, held idle' : 'in use';
		} else {
			key = 'names';
			text = members.map(memberText).join(', ');
		}
		if (cell.dataset.kind !== key) {
			cell.dataset.kind = key;
			cell.replaceChildren(key === 'names' ? document.createTextNode('')
				: el('span', { className: 'badge ' + ({ free: 'on', lost: 'off', reserved: 'busy' }[key] || '') }));
		}
		setText(cell.firstChild, text);
		setTitle(cell, names ? members.map((m) => memberText(m) + ': ' + fmtBytes(m.mem_used)).join('\n') : '');
	}

	function updateGpuRow(row, g, names) {
		const free = gpuIsFree(g);
		const idle = !g.lost && idleMembers(g).length > 0;
		setData(row.tr, 'free', free ? 'true' : 'false');
		setData(row.tr, 'idle', idle ? 'true' : 'false');
		row.tr.classList.toggle('free', free);
		row.tr.classList.toggle('idle', idle);
		row.tr.classList.toggle('lost', !!g.lost);
		setText(row.model, shortModel(g.name));
		setTitle(row.model, g.name || '');
		updateMembers(row.members, g, names);
		if (g.lost) {
			row.utilMeter.hidden = row.memMeter.hidden = true;
			for (const node of [row.utilText, row.memText, row.temp, row.power])
				setText(node, '—');
			return;
		}
		row.utilMeter.hidden = typeof g.util !== 'number';
		if (typeof g.util === 'number')
			setMeter(row.utilMeter, g.util, 100);
		setText(row.utilText, fmtNumber(g.util, 0, ' %'));
		row.memMeter.hidden = typeof g.mem_total !== 'number';
		if (typeof g.mem_total === 'number')
			setMeter(row.memMeter, g.mem_used || 0, g.mem_total);
		setText(row.memText, fmtUsedOf(g.mem_used, g.mem_total));
		setText(row.temp, fmtNumber(g.temperature, 0, ' °C'));
		setText(row.power, fmtNumber(g.power_w, 0, ' W'));
	}

	/* ---- page skeleton shared by the pages ---------------------------------- */

	function statusSlot() {
		return el('div', { className: 'monitor-status' });
	}

	/* Whether member names may be shown: the answer says, else the shell. */
	function namesShown(data, main) {
		return typeof data.names === 'boolean' ? data.names : main.dataset.names !== 'false';
	}

	function markUpdated(main, time, gpuRows, started) {
		setData(main, 'updated', time);
		if (gpuRows !== null)
			setData(main, 'gpus', gpuRows);
		setData(main, 'renderMs', (performance.now() - started).toFixed(1));
	}

	/* ---- overview: every server, sorted and filtered ------------------------ */

	/* Server names are plain ASCII words: no locale collation needed (its
	 * first use costs tens of milliseconds). */
	const byName = (a, b) => (a.srv.name < b.srv.name ? -1 : a.srv.name > b.srv.name ? 1 : 0);
	const SORTS = {
		name: byName,
		free: (a, b) => b.stats.free - a.stats.free || byName(a, b),
		memory: (a, b) => b.stats.freeMem - a.stats.freeMem || byName(a, b),
	};

	function buildOverviewControls(state, rerender) {
		const sort = el('select', { id: 'sort' }, [
			el('option', { value: 'name', text: 'name (A–Z)' }),
			el('option', { value: 'free', text: 'most free GPUs' }),
			el('option', { value: 'memory', text: 'most free GPU memory' }),
		]);
		const onlyFree = el('input', { type: 'checkbox', id: 'only-free' });
		sort.value = state.sort;
		onlyFree.checked = state.onlyFree;
		sort.addEventListener('change', () => {
			state.sort = SORTS[sort.value] ? sort.value : 'name';
			storeSet('sort', state.sort);
			rerender();
		});
		onlyFree.addEventListener('change', () => {
			state.onlyFree = onlyFree.checked;
			storeSet('onlyFree', String(state.onlyFree));
			rerender();
		});
		return el('div', { className: 'monitor-bar' }, [
			el('label', { for: 'sort' }, ['Sort by ', sort]),
			el('label', { for: 'only-free', className: 'check' }, [onlyFree, ' only free GPUs']),
		]);
	}

	/* Moves cards only when the order changed: moving a node costs a layout. */
	function placeCards(grid, roots) {
		const current = grid.children;
		let same = current.length === roots.length;
		for (let i = 0; same && i < roots.length; i++)
			same = current[i] === roots[i];
		if (!same)
			grid.replaceChildren(...roots);
	}

	function renderOverview(main, state) {
		const started = performance.now();
		const data = state.data;
		const view = { names: namesShown(data, main), now: data.time, onlyFree: state.onlyFree, gpu: null };
		const servers = (Array.isArray(data.servers) ? data.servers : [])
			.map((srv) => ({ srv, stats: serverStats(srv) }));
		let gpus = 0, free = 0, rows = 0;

		for (const entry of servers) {
			gpus += entry.stats.gpus;
			free += entry.stats.free;
		}
		const shown = servers.filter((e) => !state.onlyFree || e.stats.free > 0)
			.sort(SORTS[state.sort] || SORTS.name);
		const names = new Set(servers.map((e) => e.srv.name));
		for (const name of state.cards.keys())
			if (!names.has(name))
				state.cards.delete(name);
		const roots = shown.map(({ srv }) => {
			let card = state.cards.get(srv.name);
			if (!card) {
				card = createCard(srv.name);
				state.cards.set(srv.name, card);
			}
			rows += renderCard(card, srv, view);
			return card.root;
		});
		placeCards(state.grid, roots);
		state.empty.hidden = roots.length > 0;
		setText(state.empty, servers.length === 0 ? 'No server is registered yet.'
			: 'No server has a free GPU now.');
		setText(state.summary, plural(servers.length, 'server') + ', ' + plural(gpus, 'GPU') +
			', ' + free + ' free');
		markUpdated(main, data.time, rows, started);
	}

	function overviewPage(main) {
		const state = {
			data: null, cards: new Map(),
			sort: SORTS[storeGet('sort', 'name')] ? storeGet('sort', 'name') : 'name',
			onlyFree: storeGet('onlyFree', 'false') === 'true',
			summary: el('p', { className: 'summary', id: 'summary', 'aria-live': 'polite' }),
			grid: el('div', { className: 'server-grid' }),
			empty: el('p', { className: 'muted empty', hidden: true }),
		};
		const slot = statusSlot();
		const rerender = () => state.data && renderOverview(main, state);

		main.append(buildOverviewControls(state, rerender), state.summary, slot, state.empty, state.grid);
		makePoller(async () => {
			try {
				const data = await getJSON('/api/v1/monitor');
				noteHubTime(data.time);
				state.data = data;
				renderOverview(main, state);
				clearError(slot);
				return data.poll_ms || DEFAULT_POLL_MS;
			} catch (e) {
				showStale(slot, state.data && state.data.time, e);
				return null;
			}
		}, DEFAULT_POLL_MS).start();
	}

	/* ---- the current card of one server (server and GPU pages) -------------- */

	/*
	 * Polls /api/v1/monitor and shows one server's card; onData gets each
	 * answer's server (for the GPU list of the time picker, the names flag).
	 */
	function currentCard(main, server, gpu, onData) {
		const card = createCard(server);
		const slot = statusSlot();
		const grid = el('div', { className: 'server-grid single' }, card.root);
		let last = null;

		async function refresh() {
			const started = performance.now();
			try {
				const data = await getJSON('/api/v1/monitor');
				noteHubTime(data.time);
				const srv = (data.servers || []).find((s) => s.name === server);
				if (!srv)
					throw new ApiError(404, 'there is no server named ' + server);
				const view = { names: namesShown(data, main), now: data.time, onlyFree: false, gpu };
				const rows = renderCard(card, srv, view);
				if (gpu !== null && srv.reachable && srv.sample && rows === 0)
					throw new ApiError(404, server + ' has no GPU ' + gpu + ' now');
				markUpdated(main, data.time, rows, started);
				last = data.time;
				clearError(slot);
				onData(srv, data);
				return data.poll_ms || DEFAULT_POLL_MS;
			} catch (e) {
				showStale(slot, last, e);
				return null;
			}
		}
		makePoller(refresh, DEFAULT_POLL_MS).start();
		return el('div', null, [slot, grid]);
	}

	/* The members of the shown GPU with their memory, under its card. */
	function gpuMembersList(list, srv, gpu, names) {
		const g = srv.reachable && srv.sample ? (srv.sample.gpus || []).find((x) => x.index === gpu) : null;
		const members = g ? memberList(g) : [];
		const key = JSON.stringify([names, members]);

		if (list.dataset.key === key)
			return;
		list.dataset.key = key;
		list.replaceChildren(...members.map((m) => el('li', null, [
			el('strong', { text: names ? m.member || 'host' : 'a member' }),
			' — ' + fmtBytes(m.mem_used) + (m.processes ? ', ' + m.processes + ' process' +
				(m.processes === 1 ? '' : 'es') : ''),
		])));
		list.hidden = members.length === 0;
	}

	/* ---- page URL: ?at= and ?range= ----------------------------------------- */

	function pageParams() {
		const q = new URLSearchParams(location.search);
		const at = Number(q.get('at'));
		return {
			at: q.has('at') && Number.isFinite(at) && at > 0 ? at : null,
			range: RANGES[q.get('range')] ? q.get('range') : '1h',
		};
	}

	function updatePageUrl(changes) {
		const url = new URL(location.href);
		for (const [key, value] of Object.entries(changes)) {
			if (value === null)
				url.searchParams.delete(key);
			else
				url.searchParams.set(key, String(value));
		}
		history.replaceState(null, '', url);
	}

	/* ---- charts: uPlot, sized to their box, local time, gaps for nulls ------ */

	function cssVar(name, fallback) {
		return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
	}

	/* Axis labels: 24-hour clock, with the day where it changes. */
	function timeAxisValues(u, splits, axisIdx, space, incr) {
		let lastDay = null;
		return splits.map((t) => {
			const d = new Date(t);
			const day = d.toDateString();
			const clock = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
			const label = incr >= DAY ? fmtDay(t) : day !== lastDay && lastDay !== null ? clock + '\n' + fmtDay(t)
				: clock;
			lastDay = day;
			return label;
		});
	}

	function chartHeight() {
		return window.matchMedia('(max-width: 40rem)').matches ? 170 : 210;
	}

	const resizer = new ResizeObserver((entries) => {
		/* After the layout, so that resizing never feeds back into the same frame. */
		requestAnimationFrame(() => {
			for (const entry of entries) {
				const box = entry.target;
				const width = Math.floor(box.clientWidth);
				if (box.plot && width > 0 && width !== box.plot.width)
					box.plot.setSize({ width, height: chartHeight() });
			}
		});
	});

	/*
	 * spec: { series: [{label, color, dash}], unit and tick: a value as
	 * text in the legend and on the axis, range: 'percent' for 0-100, else
	 * from 0, empty: what to say without data }.  data: [xs, ...ys] from
	 * alignTables().
	 */
	function drawChart(box, spec, data, charts) {
		if (box.plot) {
			box.plot.destroy();
			box.plot = null;
		}
		if (data[0].length === 0 || spec.series.length === 0) {
			box.replaceChildren(el('p', { className: 'muted chart-empty',
				text: spec.empty || 'No readings in this period.' }));
			return;
		}
		box.replaceChildren();
		const muted = cssVar('--muted', '#5b6575');
		const line = cssVar('--line', '#d9dde3');
		const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
		const opts = {
			width: Math.max(200, Math.floor(box.clientWidth)),
			height: chartHeight(),
			ms: 1,
			cursor: { sync: { key: 'monitor' }, drag: { x: true, y: false } },
			legend: { live: true },
			scales: {
				x: { time: true },
				y: { range: spec.range === 'percent' ? [0, 100] : (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
			},
			series: [{ value: (u, t) => (t == null ? '—' : fmtWhen(t)) }].concat(spec.series.map((s) => ({
				label: s.label, stroke: s.color, width: 1.5, dash: s.dash, spanGaps: false,
				value: (u, v) => (v == null ? '—' : spec.unit(v)),
			}))),
			axes: [
				Object.assign({ values: timeAxisValues, space: 70 }, axis),
				Object.assign({ values: (u, ticks) => ticks.map(spec.tick), size: axisSize }, axis),
			],
			hooks: { draw: [(u) => drawMarker(u, charts.marker)] },
		};
		box.plot = new uPlot(opts, data, box);
		resizer.observe(box);
		listenForPick(box.plot, charts);
	}

	/* The y axis as wide as its longest label ("512 GiB" needs more than "0 %"). */
	function axisSize(u, values, axisIdx, cycleNum) {
		const axis = u.axes[axisIdx];
		if (cycleNum > 1)
			return axis._size;
		const longest = (values || []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), '');
		u.ctx.font = axis.font[0];
		return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / devicePixelRatio) + 4;
	}

	/* The time shown in the picker, as a line across the charts. */
	function drawMarker(u, t) {
		if (t === null || t < u.scales.x.min || t > u.scales.x.max)
			return;
		const x = Math.round(u.valToPos(t, 'x', true));
		const ctx = u.ctx;
		ctx.save();
		ctx.strokeStyle = cssVar('--err', '#a1261b');
		ctx.lineWidth = 2 * devicePixelRatio;
		ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
		ctx.beginPath();
		ctx.moveTo(x, u.bbox.top);
		ctx.lineTo(x, u.bbox.top + u.bbox.height);
		ctx.stroke();
		ctx.restore();
	}

	/* A click (not a drag, which zooms) asks the picker who was there then. */
	function listenForPick(u, charts) {
		let downX = null;
		u.over.addEventListener('mousedown', (e) => {
			downX = e.clientX;
		});
		u.over.addEventListener('click', (e) => {
			if (!charts.onPick || downX === null || Math.abs(e.clientX - downX) > 3)
				return;
			const t = u.posToVal(u.cursor.left, 'x');
			if (Number.isFinite(t))
				charts.onPick(Math.round(t));
		});
	}

	/*
	 * Puts series of [t, …] rows on one time axis.  tables: [{rows, cols,
	 * scale}]; each col of each table becomes a series.  A bucket missing
	 * between two readings (the agent sends none when nothing was
	 * recorded) gets a null, so the line breaks there instead of bridging.
	 */
	function alignTables(step, tables) {
		const times = new Set();
		for (const table of tables)
			for (const row of table.rows)
				times.add(row[0]);
		const sorted = Array.from(times).sort((a, b) => a - b);
		const xs = [];
		for (let i = 0; i < sorted.length; i++) {
			if (step > 0 && i > 0 && sorted[i] - sorted[i - 1] > step * 1.5)
				xs.push(sorted[i - 1] + step);
			xs.push(sorted[i]);
		}
		const pos = new Map(xs.map((t, i) => [t, i]));
		const out = [xs];
		for (const table of tables) {
			for (const col of table.cols) {
				const ys = new Array(xs.length).fill(null);
				for (const row of table.rows) {
					const v = row[col];
					ys[pos.get(row[0])] = typeof v === 'number' ? v * (table.scale || 1) : null;
				}
				out.push(ys);
			}
		}
		return out;
	}

	/* Units of the charts: unit() for the legend, tick() for the axis. */
	const PERCENT = {
		unit: (v) => Math.round(v) + ' %',
		tick: (v) => Math.round(v) + ' %',
		range: 'percent',
	};
	const GIB_UNIT = {
		unit: (v) => v.toFixed(1) + ' GiB',
		tick: (v) => (Number.isInteger(v) ? v : v.toFixed(1)) + ' GiB',
	};

	function chartFigure(id, title) {
		const box = el('div', { className: 'chart-box', id });
		return { box, figure: el('figure', { className: 'chart' }, [el('figcaption', { text: title }), box]) };
	}

	/* ---- history: range buttons, the window, and reloading ------------------ */

	/* "one point per 12 s" or "averages per 5 min", from the answer's step. */
	function fmtStep(json) {
		const step = json.step_ms || 0;
		const text = step < MINUTE ? Math.max(1, Math.round(step / 1000)) + ' s'
			: step < 2 * HOUR ? Math.round(step / MINUTE) + ' min' : Math.round(step / HOUR) + ' h';
		return (json.resolution === 'minute' ? 'averages per ' : 'one point per ') + text;
	}

	/* A chart the reader zoomed into is not redrawn under them by the refresh. */
	function anyZoomed() {
		for (const box of document.querySelectorAll('.chart-box')) {
			const u = box.plot;
			const xs = u ? u.data[0] : [];
			if (xs.length > 1 && (u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1]))
				return true;
		}
		return false;
	}

	/*
	 * The charts section of the server and GPU pages.  draw(json) draws the
	 * charts of one answer; the window follows the clock unless the page
	 * looks at a fixed time (?at=), which the window is centred on.
	 */
	function historySection(server, gpu, figures, draw, charts) {
		const params = pageParams();
		const slot = statusSlot();
		const note = el('p', { className: 'muted history-note' });
		const buttons = Object.keys(RANGES).map((r) => el('button', {
			type: 'button', className: 'range', 'data-range': r, text: RANGE_LABELS[r],
			'aria-pressed': r === params.range ? 'true' : 'false',
		}));
		const state = { range: params.range, center: params.at, seq: 0 };

		async function load() {
			const seq = ++state.seq;
			const span = RANGES[state.range];
			const now = hubNow();
			const to = state.center === null ? now : Math.min(now, state.center + span);
			const from = state.center === null ? now - span : state.center - span;
			try {
				const json = await getJSON(apiServerUrl(server, 'history',
					{ gpu, from: Math.round(from), to: Math.round(to), points: HISTORY_POINTS }));
				if (seq !== state.seq)
					return;
				clearError(slot);
				draw(json);
				setText(note, fmtWhen(from) + ' to ' + fmtWhen(to) + ', ' + fmtStep(json) +
					'. Drag to zoom, double-click to zoom out, click to see who was there.');
			} catch (e) {
				if (seq !== state.seq)
					return;
				showError(slot, 'History: ' + e.message);
				for (const f of figures)
					if (!f.box.plot)
						f.box.replaceChildren(el('p', { className: 'muted chart-empty', text: 'Not available.' }));
			}
		}
		for (const button of buttons) {
			button.addEventListener('click', () => {
				state.range = button.dataset.range;
				for (const b of buttons)
					b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
				updatePageUrl({ range: state.range });
				load();
			});
		}
		charts.recentre = (t) => {
			const span = RANGES[state.range];
			const inside = state.center === null ? t >= hubNow() - span : Math.abs(t - state.center) <= span;
			if (!inside) {
				state.center = t;
				load();
			}
		};
		load();
		setInterval(() => {
			if (state.center === null && !document.hidden && !anyZoomed())
				load();
		}, HISTORY_REFRESH_MS);
		return el('section', { className: 'history', 'aria-labelledby': 'history-title' }, [
			el('h2', { id: 'history-title', text: 'History' }),
			el('div', { className: 'ranges', role: 'group', 'aria-label': 'Period' }, buttons),
			slot, note,
			el('div', { className: 'charts' }, figures.map((f) => f.figure)),
		]);
	}

	function colour(i) {
		return PALETTE[i % PALETTE.length];
	}

	function usedTotal() {
		return [{ label: 'used', color: colour(1) },
			{ label: 'total', color: cssVar('--muted', '#888'), dash: [5, 4] }];
	}

	function serverCharts(server, charts) {
		const f = {
			cpu: chartFigure('chart-cpu', 'Host CPU'),
			mem: chartFigure('chart-mem', 'Host memory'),
			util: chartFigure('chart-gpu-util', 'GPU utilisation'),
			gmem: chartFigure('chart-gpu-mem', 'GPU memory used'),
		};
		function draw(json) {
			const host = Array.isArray(json.host) ? json.host : [];
			const gpus = Array.isArray(json.gpus) ? json.gpus : [];
			const step = json.step_ms || 0;
			const perGpu = (col, scale) => alignTables(step,
				gpus.map((g) => ({ rows: g.points || [], cols: [col], scale })));
			const gpuSeries = gpus.map((g, i) => ({ label: 'GPU ' + g.gpu, color: colour(i) }));

			if (charts.onGpus)
				charts.onGpus(gpus.map((g) => g.gpu));
			drawChart(f.cpu.box, { ...PERCENT, series: [{ label: 'CPU', color: colour(0) }] },
				alignTables(step, [{ rows: host, cols: [1] }]), charts);
			drawChart(f.mem.box, { ...GIB_UNIT, series: usedTotal() },
				alignTables(step, [{ rows: host, cols: [2, 3], scale: 1 / GIB }]), charts);
			drawChart(f.util.box, { ...PERCENT, series: gpuSeries }, perGpu(1, 1), charts);
			drawChart(f.gmem.box, { ...GIB_UNIT, series: gpuSeries }, perGpu(2, 1 / GIB), charts);
		}
		return historySection(server, null, Object.values(f), draw, charts);
	}

	function gpuCharts(main, server, gpu, charts) {
		const f = {
			util: chartFigure('chart-util', 'Utilisation'),
			mem: chartFigure('chart-mem', 'Memory'),
			members: chartFigure('chart-members', 'Memory per member'),
		};
		function draw(json) {
			const entry = (json.gpus || []).find((g) => g.gpu === gpu) || {};
			const points = Array.isArray(entry.points) ? entry.points : [];
			const members = Object.entries(entry.members || {}).filter(([, rows]) => Array.isArray(rows));
			const step = json.step_ms || 0;

			drawChart(f.util.box, { ...PERCENT, series: [{ label: 'utilisation', color: colour(0) }] },
				alignTables(step, [{ rows: points, cols: [1] }]), charts);
			drawChart(f.mem.box, { ...GIB_UNIT, series: usedTotal() },
				alignTables(step, [{ rows: points, cols: [2, 3], scale: 1 / GIB }]), charts);
			drawChart(f.members.box, {
				...GIB_UNIT,
				series: members.map(([name], i) => ({ label: name, color: colour(i) })),
				empty: charts.names === false ? 'Member names are not shown publicly.'
					: 'Nobody used this GPU in this period.',
			}, alignTables(step, members.map(([, rows]) => ({ rows, cols: [1], scale: 1 / GIB }))), charts);
			setData(main, 'members', members.map(([name]) => name).join(','));
			setData(main, 'points', points.length);
		}
		return historySection(server, gpu, Object.values(f), draw, charts);
	}

	/* ---- time picker: who was on a GPU at a given time ---------------------- */

	/* datetime-local wants local "YYYY-MM-DDTHH:MM". */
	function toLocalInput(ms) {
		const d = new Date(ms);
		return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + 'T' +
			pad2(d.getHours()) + ':' + pad2(d.getMinutes());
	}

	function renderAtAnswer(result, a, names) {
		const when = 'reading of ' + fmtWhen(a.time) + (a.resolution === 'minute' ? ', per minute' : '');
		const facts = ['GPU ' + a.gpu, 'utilisation ' + fmtNumber(a.util, 0, ' %'),
			'memory ' + fmtUsedOf(a.mem_used, a.mem_total), fmtNumber(a.temperature, 0, ' °C'),
			fmtNumber(a.power_w, 0, ' W')];
		const members = Array.isArray(a.members) ? a.members : [];
		const parts = [el('p', { className: 'at-when' }, el('strong', { text: when })),
			el('p', { className: 'at-facts', text: facts.join(' · ') })];

		if (members.length === 0) {
			parts.push(el('p', { className: 'at-nobody', text: 'nobody — the GPU was free' }));
		} else {
			const rows = members.map((m) => el('tr', { className: 'at-member' }, [
				el('td', { className: 'name', text: names === false || !m.member ? 'a member' : m.member }),
				el('td', { className: 'num', text: fmtBytes(m.mem_used) }),
				el('td', { className: 'num', text: fmtNumber(m.sm_util, 0, ' %') }),
				el('td', { className: 'num', text: typeof m.processes === 'number' ? String(m.processes) : '—' }),
			]));
			parts.push(el('div', { className: 'table-wrap' }, el('table', { className: 'at-members' }, [
				el('thead', null, el('tr', null, ['Member', 'Memory', 'SM', 'Processes']
					.map((h) => el('th', { scope: 'col', text: h })))),
				el('tbody', null, rows),
			])));
		}
		result.replaceChildren(...parts);
		result.dataset.at = String(a.time);
	}

	/*
	 * gpu: the GPU of the page, or null for a server page (then a select
	 * filled by setGpus()).  Returns the section and the means to drive it.
	 */
	function timePicker(server, gpu, charts) {
		const input = el('input', { type: 'datetime-local', id: 'at', step: 60, required: true });
		const result = el('div', { id: 'at-result', 'aria-live': 'polite' });
		const select = gpu === null ? el('select', { id: 'at-gpu' }) : null;
		const form = el('form', { className: 'at-form' }, [
			select && el('div', null, [el('label', { for: 'at-gpu', text: 'GPU' }), select]),
			el('div', null, [el('label', { for: 'at', text: 'Time' }), input]),
			el('div', null, el('button', { type: 'submit', id: 'at-go', text: 'Who was there?' })),
		]);
		let exact = null, pending = false, seq = 0;

		async function ask() {
			const t = exact !== null ? exact : new Date(input.value).getTime();
			const which = gpu === null ? select.value : gpu;
			if (!Number.isFinite(t))
				return showError(result, 'Choose a date and a time.');
			if (which === '' || which === null) {
				pending = true;
				return setText(result, 'Waiting for the list of GPUs…');
			}
			const mine = ++seq;
			charts.marker = t;
			for (const box of document.querySelectorAll('.chart-box'))
				if (box.plot)
					box.plot.redraw(false);
			try {
				const a = await getJSON(apiServerUrl(server, 'at', { gpu: which, t: Math.round(t) }));
				if (mine === seq)
					renderAtAnswer(result, a, charts.names);
			} catch (e) {
				if (mine !== seq)
					return;
				showError(result, e.message);
				result.dataset.at = 'none';
			}
		}
		function pick(t) {
			exact = t;
			input.value = toLocalInput(t);
			updatePageUrl({ at: Math.round(t) });
			if (charts.recentre)
				charts.recentre(t);
			ask();
		}
		input.addEventListener('input', () => {
			exact = null;
		});
		if (select)
			select.addEventListener('change', () => input.value && ask());
		form.addEventListener('submit', (e) => {
			e.preventDefault();
			const t = new Date(input.value).getTime();
			if (Number.isFinite(t) && exact === null)
				pick(t);
			else
				ask();
		});
		charts.onPick = pick;
		return {
			section: el('section', { className: 'at-picker', 'aria-labelledby': 'at-title' }, [
				el('h2', { id: 'at-title', text: 'Who was there?' }), form, result,
			]),
			start(at) {
				input.value = toLocalInput(at === null ? hubNow() : at);
				if (at === null) {
					result.append(el('p', { className: 'muted', text: 'Choose a time, or click a chart.' }));
					return;
				}
				exact = at;
				charts.marker = at;
				ask();
			},
			/* The server page's GPUs, from its current card (or, as a fallback
			 * only, from its history); kept if unchanged. */
			setGpus(indices, fallback) {
				if (!select || select.dataset.key === indices.join(',') || (fallback && select.options.length))
					return;
				const keep = select.value;
				select.dataset.key = indices.join(',');
				select.replaceChildren(...indices.map((i) => el('option', { value: i, text: 'GPU ' + i })));
				if (indices.map(String).includes(keep))
					select.value = keep;
				if (pending && indices.length > 0) {
					pending = false;
					ask();
				}
			},
		};
	}

	/* ---- server and GPU pages ----------------------------------------------- */

	function crumbs(items) {
		return el('nav', { className: 'crumbs', 'aria-label': 'Breadcrumb' },
			items.map(([href, text]) => link(href, text)));
	}

	function serverPage(main) {
		const server = main.dataset.server || '';
		const params = pageParams();
		const charts = { marker: params.at, names: null };
		const picker = timePicker(server, null, charts);
		const current = currentCard(main, server, null, (srv, data) => {
			charts.names = namesShown(data, main);
			if (srv.reachable && srv.sample)
				picker.setGpus((srv.sample.gpus || []).map((g) => g.index));
		});

		/* The history names the GPUs too: enough while the server is unreachable now. */
		charts.onGpus = (indices) => picker.setGpus(indices, true);
		main.prepend(crumbs([['/monitor', 'Monitor']]));
		main.append(current, serverCharts(server, charts), picker.section);
		picker.start(params.at);
	}

	function gpuPage(main) {
		const server = main.dataset.server || '';
		const gpu = Number.parseInt(main.dataset.gpu, 10);
		const params = pageParams();
		const charts = { marker: params.at, names: null };
		const list = el('ul', { className: 'gpu-members', 'aria-label': 'Members on this GPU', hidden: true });
		const picker = timePicker(server, gpu, charts);
		const current = currentCard(main, server, gpu, (srv, data) => {
			charts.names = namesShown(data, main);
			gpuMembersList(list, srv, gpu, charts.names);
		});

		main.prepend(crumbs([['/monitor', 'Monitor'], [serverUrl(server), server]]));
		main.append(current, list, gpuCharts(main, server, gpu, charts), picker.section);
		picker.start(params.at);
	}

	/* ---- me: the signed-in member's containers and GPU processes ------------ */

	const STATES = { running: 'on', stopped: '', unknown: 'off' };

	function buildProcess(srv, p) {
		const started = typeof p.started === 'number' && p.started > 0 ? p.started * 1000 : null;
		return el('tr', { className: 'process' }, [
			el('td', { className: 'num' }, link(gpuUrl(srv.name, p.gpu), String(p.gpu))),
			el('td', { className: 'num', text: String(p.pid) }),
			el('td', { className: 'command', text: p.command || '' }),
			el('td', { text: started === null ? '—' : fmtWhen(started) }),
			el('td', { className: 'num' }),
			el('td', { className: 'num' }),
		]);
	}

	function buildProcessTable(srv, procs) {
		return el('div', { className: 'table-wrap' }, el('table', { className: 'processes' }, [
			el('thead', null, el('tr', null, ['GPU', 'PID', 'Command', 'Started', 'Memory', 'SM']
				.map((h) => el('th', { scope: 'col', text: h })))),
			el('tbody', null, procs.map((p) => buildProcess(srv, p))),
		]));
	}

	/*
	 * A section's structure: rebuilt when it changes (state, GPUs, the set
	 * of processes), while the numbers that move every poll are rewritten
	 * in place, so that a reader selecting a command does not lose it.
	 */
	function myServerKey(srv) {
		const c = srv.container || {};
		return JSON.stringify([srv.name, !!srv.reachable, srv.error || '', c.state, c.mem_limit, srv.gpus,
			(srv.processes || []).map((p) => [p.gpu, p.pid, p.command, p.started]),
			myIdleGpus(srv).map((g) => g.gpu),
			myReservations(srv).map((r) => [r.id, r.state, r.gpus, r.until_ms, r.count])]);
	}

	/* The GPUs the member's processes hold idle there, each with its
	 * longest idle time: [{gpu, seconds}], by GPU. */
	function myIdleGpus(srv) {
		const longest = new Map();
		(Array.isArray(srv.processes) ? srv.processes : []).forEach((p) => {
			if (p && p.idle === true && typeof p.gpu === 'number')
				longest.set(p.gpu, Math.max(longest.get(p.gpu) || 0, Number(p.idle_seconds) || 0));
		});
		return [...longest.entries()].sort((a, b) => a[0] - b[0]).map(([gpu, seconds]) => ({ gpu, seconds }));
	}

	function myReservations(srv) {
		return Array.isArray(srv.reservations) ? srv.reservations.filter((r) => r && typeof r === 'object') : [];
	}

	/* "GPUs 1, 2 until 14:00:00", or "1 GPU, waiting in the queue". */
	function myReservationText(r) {
		const gpus = Array.isArray(r.gpus) && r.gpus.length ? fmtGpuList(r.gpus)
			: plural(typeof r.count === 'number' ? r.count : 1, 'GPU');
		if (r.state === 'queued')
			return gpus + ', waiting in the queue';
		return gpus + (typeof r.until_ms === 'number' ? ' until ' + fmtWhen(r.until_ms) : '');
	}

	/* Idle GPUs and reservations: what the member holds from others. */
	function buildMyHolds(srv, entry) {
		const idle = myIdleGpus(srv), res = myReservations(srv), parts = [];
		entry.idle = new Map();
		if (idle.length) {
			parts.push(el('div', { className: 'my-idle' }, [
				el('h3', { text: 'Idle GPUs' }),
				el('p', { className: 'muted', text: 'Your processes hold these GPUs at 0 % utilisation: end them if you are done, so that others can use the GPU.' }),
				el('ul', null, idle.map((g) => {
					const since = el('span', { className: 'idle-for' });
					entry.idle.set(g.gpu, since);
					return el('li', { className: 'idle-gpu', 'data-gpu': g.gpu },
						[link(gpuUrl(srv.name, g.gpu), 'GPU ' + g.gpu), ' on ' + srv.name + ', ', since]);
				})),
			]));
		}
		if (res.length) {
			parts.push(el('div', { className: 'my-reservations' }, [
				el('h3', { text: 'Reservations' }),
				el('ul', null, res.map((r) => el('li', { className: 'reservation ' + (r.state === 'queued' ? 'queued' : 'active'),
					'data-id': typeof r.id === 'number' ? r.id : null, text: myReservationText(r) }))),
			]));
		}
		return parts;
	}

	function buildMyServer(srv) {
		const c = srv.container || {};
		const state = STATES[c.state] !== undefined ? c.state : 'unknown';
		const section = el('section', { className: 'my-server card', 'data-server': srv.name, 'data-state': state }, [
			el('div', { className: 'server-head' }, [
				el('h2', null, link(serverUrl(srv.name), srv.name)),
				el('span', { className: 'badge ' + STATES[state], text: state }),
			]),
		]);
		const entry = { key: myServerKey(srv), root: section, state };

		if (!srv.reachable) {
			entry.since = el('p', { className: 'last-contact' });
			section.append(entry.since);
			if (srv.error)
				section.append(el('p', { className: 'muted server-error', text: srv.error }));
			return entry;
		}
		const gpus = Array.isArray(srv.gpus) ? srv.gpus : [];
		const gpuLinks = gpus.length === 0 ? ['none']
			: gpus.flatMap((g, i) => [i ? ', ' : '', link(gpuUrl(srv.name, g), 'GPU ' + g)]);
		const fact = (label, dd) => el('div', null, [el('dt', { text: label }), dd]);
		entry.cpu = el('dd');
		entry.mem = el('dd');
		entry.pids = el('dd');
		section.append(el('dl', { className: 'host-facts' }, [
			fact('Container', el('dd', { text: state })), fact('CPU', entry.cpu), fact('Memory', entry.mem),
			fact('Processes', entry.pids), fact('GPUs in use', el('dd', null, gpuLinks)),
		]));
		const procs = Array.isArray(srv.processes) ? srv.processes : [];
		section.append(procs.length === 0 ? el('p', { className: 'muted', text: 'No GPU processes.' })
			: buildProcessTable(srv, procs));
		entry.rows = section.querySelectorAll('tr.process');
		section.append(...buildMyHolds(srv, entry));
		return entry;
	}

	function updateMyServer(entry, srv, now) {
		const c = srv.container || {};
		const running = entry.state === 'running';

		if (entry.since) {
			setText(entry.since, 'unknown — server unreachable ' + (typeof srv.last_contact === 'number'
				? 'since ' + fmtWhen(srv.last_contact) + ' (' + fmtAgo(srv.last_contact, now) + ')' : '(never reached)'));
			return;
		}
		setText(entry.cpu, running ? fmtNumber(c.cpu_percent, 1, ' %') + ' of one CPU' : '—');
		setText(entry.mem, !running ? '—' : (c.mem_limit ? fmtUsedOf(c.mem_used, c.mem_limit)
			: fmtBytes(c.mem_used) + ', no limit') + (c.oom_kills > 0 ? ' — ' + c.oom_kills + ' process' +
			(c.oom_kills === 1 ? '' : 'es') + ' killed for the memory limit' : ''));
		setText(entry.pids, running && typeof c.pids === 'number' ? String(c.pids) : '—');
		(srv.processes || []).forEach((p, i) => {
			setText(entry.rows[i].cells[4], fmtBytes(p.mem_used));
			setText(entry.rows[i].cells[5], fmtNumber(p.sm_util, 0, ' %'));
		});
		myIdleGpus(srv).forEach((g) => {
			if (entry.idle.has(g.gpu))
				setText(entry.idle.get(g.gpu), 'idle for ' + fmtDuration(g.seconds));
		});
	}

	function renderMe(main, state) {
		const started = performance.now();
		const data = state.data;
		const now = typeof data.time === 'number' ? data.time : hubNow();
		const servers = Array.isArray(data.servers) ? data.servers : [];
		const next = new Map();

		const roots = servers.map((srv) => {
			const old = state.sections.get(srv.name);
			const entry = old && old.key === myServerKey(srv) ? old : buildMyServer(srv);
			updateMyServer(entry, srv, now);
			next.set(srv.name, entry);
			return entry.root;
		});
		state.sections = next;
		if (roots.length === 0) {
			roots.push(el('p', { className: 'no-servers' }, [
				'You have no server enabled yet. Choose the servers you want on the ',
				link('/servers', 'Servers'), ' page.',
			]));
		}
		placeCards(state.list, roots);
		markUpdated(main, now, null, started);
	}

	function mePage(main) {
		const state = { data: null, sections: new Map(), list: el('div', { className: 'my-servers' }) };
		const slot = statusSlot();
		let last = null;

		main.append(slot, state.list);
		makePoller(async () => {
			try {
				state.data = await getJSON('/api/v1/me/monitor');
				noteHubTime(state.data.time);
				renderMe(main, state);
				last = Date.now();
				clearError(slot);
			} catch (e) {
				showStale(slot, last, e);
			}
			return DEFAULT_POLL_MS;
		}, DEFAULT_POLL_MS).start();
	}

	/* ---- start ---------------------------------------------------------------- */

	function boot() {
		const main = document.getElementById('monitor');
		const pages = { overview: overviewPage, server: serverPage, gpu: gpuPage, me: mePage };

		if (!main)
			return;
		const page = pages[main.dataset.page];
		if (!page)
			return main.append(el('p', { className: 'error flash', role: 'alert', text: 'Unknown monitor page.' }));
		if ((main.dataset.page === 'server' || main.dataset.page === 'gpu') && typeof uPlot !== 'function') {
			main.append(el('p', { className: 'error flash', role: 'alert', text: 'The chart library did not load.' }));
			return;
		}
		page(main);
	}

	if (document.readyState === 'loading')
		document.addEventListener('DOMContentLoaded', boot);
	else
		boot();
})();
