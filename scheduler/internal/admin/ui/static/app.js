// berth admin panel. It renders the Overview the scheduler streams as
// server-sent events (/admin/ui/events) and drives the admin API with the
// session cookie and the session's CSRF token. No framework and no HTML
// strings: every node is made with createElement and filled with
// textContent, so nothing a host reports can inject markup. Rows are keyed
// (data-server-id, …) and updated in place, so a live update never loses a
// half-done action.
'use strict';

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ---- formatting

  const round = (n, d) => { const f = Math.pow(10, d); return Math.round(n * f) / f; };
  const cores = n => round(n, 2) + (round(n, 2) === 1 ? ' core' : ' cores');
  const mb = n => (n >= 1024 ? round(n / 1024, n >= 10240 ? 0 : 1) + ' GB' : n + ' MB');
  const gb = n => (n >= 1024 ? round(n / 1024, 1) + ' TB' : n + ' GB');
  const pct = (part, whole) => (whole > 0 ? Math.min(100, Math.max(0, (100 * part) / whole)) : 0);
  const time = iso => (iso ? new Date(iso).toLocaleTimeString() : '');
  const dateTime = iso => (iso ? new Date(iso).toLocaleString() : '—');
  const labels = m => Object.keys(m || {}).sort().map(k => k + '=' + m[k]).join(', ');

  // ---- capacity meters: reserved of effective, and real use

  function meter(resource) {
    return el('div', { class: 'meter', 'data-resource': resource },
      el('div', { class: 'meter-text' }),
      el('div', { class: 'bar reserved', title: 'reserved of effective capacity' }, el('span')),
      el('div', { class: 'bar used', title: 'real use (gossip)' }, el('span')),
      el('div', { class: 'meter-sub muted' }));
  }

  // setMeter fills a meter: reserved of effective (placement's view) and
  // used of total (the host's real use), each formatted with fmt.
  function setMeter(m, reserved, effective, used, total, fmt) {
    m.dataset.reserved = reserved;
    m.dataset.effective = effective;
    m.dataset.used = used === null ? '' : used;
    $('.meter-text', m).textContent = effective > 0
      ? fmt(reserved) + ' of ' + fmt(effective) + ' reserved'
      : fmt(reserved) + ' reserved (capacity unknown)';
    const r = pct(reserved, effective);
    const rb = $('.bar.reserved', m);
    rb.firstChild.style.width = r + '%';
    rb.classList.toggle('high', r >= 90);
    const ub = $('.bar.used', m);
    if (used === null || !(total > 0)) {
      ub.firstChild.style.width = '0%';
      ub.classList.add('none');
      $('.meter-sub', m).textContent = 'real use: no live data';
    } else {
      const u = pct(used, total);
      ub.firstChild.style.width = u + '%';
      ub.classList.remove('none');
      ub.classList.toggle('high', u >= 90);
      $('.meter-sub', m).textContent = 'in use ' + fmt(used) + ' of ' + fmt(total) + ' (' + Math.round(u) + '%)';
    }
  }

  function serverMeters(row, s) {
    const u = s.use;
    setMeter($('[data-resource=cpu]', row), s.reserved.cpu, s.effective.cpu,
      u ? round((u.cpu_cores * u.cpu_percent) / 100, 2) : null, u ? u.cpu_cores : 0, cores);
    setMeter($('[data-resource=memory]', row), s.reserved.memory_mb, s.effective.memory_mb,
      u ? u.memory_used_mb : null, u ? u.memory_total_mb : 0, mb);
    setMeter($('[data-resource=disk]', row), s.reserved.disk_gb, s.effective.disk_gb,
      u ? u.disk_used_gb : null, u ? u.disk_total_gb : 0, gb);
  }

  // ---- keyed lists

  // sync makes parent's children match items: one node per key, made by
  // create(item) when new, passed to update(node, item) every time, and
  // removed when its item is gone. Order follows items.
  function sync(parent, items, key, attr, create, update) {
    const old = new Map();
    for (const n of Array.from(parent.children)) old.set(n.getAttribute(attr), n);
    let prev = null;
    for (const item of items) {
      const k = key(item);
      let n = old.get(k);
      if (n) old.delete(k);
      else { n = create(item); n.setAttribute(attr, k); }
      update(n, item);
      const want = prev ? prev.nextSibling : parent.firstChild;
      if (want !== n) parent.insertBefore(n, want);
      prev = n;
    }
    for (const n of old.values()) n.remove();
  }

  // ---- actions

  function say(msg, isError) {
    const m = $('#action-message');
    m.textContent = msg;
    m.classList.toggle('error', !!isError);
    m.classList.toggle('ok', !isError && !!msg);
  }

  // The session's CSRF token, which every state-changing call carries (the
  // scheduler refuses one without it: 403).
  const csrfMeta = document.querySelector('meta[name="berth-csrf"]');
  const csrf = csrfMeta ? csrfMeta.content : '';

  async function call(method, path, body) {
    const opts = { method, headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    if (resp.status === 401) {
      window.location.assign('/admin/ui/signin');
      throw new Error('signed out');
    }
    let data = null;
    const text = await resp.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = { detail: text }; } }
    if (!resp.ok) {
      const d = data && data.detail;
      throw new Error(typeof d === 'string' ? d : (d ? JSON.stringify(d) : resp.status + ' ' + resp.statusText));
    }
    return data;
  }

  const stateActions = { drain: 'draining', activate: 'active', cordon: 'cordoned' };

  async function act(row, action, button) {
    const id = row.dataset.serverId;
    if (action in stateActions) {
      button.disabled = true;
      try {
        await call('PATCH', '/admin/servers/' + encodeURIComponent(id), { state: stateActions[action] });
        say('Server ' + id + ' is now ' + stateActions[action] + '.');
      } catch (e) {
        say('Could not change ' + id + ': ' + e.message, true);
      } finally {
        button.disabled = false;
      }
      return;
    }
    // Remove asks for a second click; a refusal because of workspaces turns
    // the button into a forced removal, which asks again.
    if (button.dataset.confirm !== '1') {
      button.dataset.confirm = '1';
      button.textContent = button.dataset.force === '1' ? 'Confirm force remove' : 'Confirm remove';
      clearTimeout(button._reset);
      button._reset = setTimeout(() => resetRemove(button), 6000);
      return;
    }
    clearTimeout(button._reset);
    button.disabled = true;
    const force = button.dataset.force === '1';
    try {
      await call('DELETE', '/admin/servers/' + encodeURIComponent(id) + (force ? '?force=true' : ''));
      say('Server ' + id + ' removed.');
    } catch (e) {
      say('Could not remove ' + id + ': ' + e.message, true);
      resetRemove(button);
      if (!force && /force=true/.test(e.message)) {
        button.dataset.force = '1';
        button.textContent = 'Force remove';
      }
    } finally {
      button.disabled = false;
    }
  }

  function resetRemove(button) {
    button.dataset.confirm = '';
    button.textContent = button.dataset.force === '1' ? 'Force remove' : 'Remove';
  }

  // ---- servers

  function newServerRow() {
    const row = el('tr');
    const button = (action, text, cls) => {
      const b = el('button', { type: 'button', 'data-action': action, class: cls || 'secondary', text });
      b.addEventListener('click', () => act(row, action, b));
      return b;
    };
    row.append(
      el('td', { class: 'name' }, el('strong', { 'data-field': 'name' }), el('div', { class: 'sub muted', 'data-field': 'address' })),
      el('td', {}, el('span', { class: 'badge', 'data-field': 'state' })),
      el('td', {}, el('span', { class: 'badge', 'data-field': 'health' }), el('div', { class: 'last-error', 'data-field': 'last-error' })),
      el('td', {}, meter('cpu')),
      el('td', {}, meter('memory')),
      el('td', {}, meter('disk')),
      el('td', { class: 'num', 'data-field': 'workspaces' }),
      el('td', { class: 'actions' },
        button('drain', 'Drain'), button('activate', 'Activate'), button('cordon', 'Cordon'),
        button('remove', 'Remove', 'danger')));
    return row;
  }

  function updateServerRow(row, s) {
    row.dataset.health = s.health;
    row.dataset.state = s.state;
    row.dataset.gossip = s.gossip_state || '';
    $('[data-field=name]', row).textContent = s.name && s.name !== s.id ? s.id + ' (' + s.name + ')' : s.id;
    const facts = [s.agent_address, s.region || 'no region', s.architecture || 'arch unknown'];
    if (Object.keys(s.labels || {}).length) facts.push(labels(s.labels));
    $('[data-field=address]', row).textContent = facts.join(' · ');
    const state = $('[data-field=state]', row);
    state.textContent = s.state;
    state.className = 'badge state-' + s.state;
    const health = $('[data-field=health]', row);
    health.textContent = s.health;
    health.className = 'badge health-' + s.health;
    const err = $('[data-field=last-error]', row);
    err.textContent = s.last_error || '';
    err.title = s.last_health_check ? 'last check ' + dateTime(s.last_health_check) : '';
    serverMeters(row, s);
    $('[data-field=workspaces]', row).textContent =
      s.workspaces + ' / ' + (s.max_workspaces > 0 ? s.max_workspaces : '∞');
    $('[data-action=drain]', row).hidden = s.state === 'draining';
    $('[data-action=activate]', row).hidden = s.state === 'active';
    $('[data-action=cordon]', row).hidden = s.state === 'cordoned';
  }

  // ---- discovered agents

  function newDiscoveredRow() {
    const row = el('tr');
    const add = el('button', { type: 'button', 'data-action': 'add', text: 'Add' });
    add.addEventListener('click', async () => {
      const id = row.dataset.agentId;
      add.disabled = true;
      try {
        await call('POST', '/admin/servers', { from_discovered: id });
        say('Server ' + id + ' added from gossip.');
      } catch (e) {
        say('Could not add ' + id + ': ' + e.message, true);
      } finally {
        add.disabled = false;
      }
    });
    row.append(el('td', { 'data-field': 'id' }), el('td', { 'data-field': 'address' }),
      el('td', { 'data-field': 'region' }), el('td', { 'data-field': 'gossip' }), el('td', {}, add));
    return row;
  }

  function updateDiscoveredRow(row, d) {
    $('[data-field=id]', row).textContent = d.id;
    $('[data-field=address]', row).textContent = d.agent_address || '—';
    $('[data-field=region]', row).textContent = d.region || '—';
    $('[data-field=gossip]', row).textContent = d.gossip_state;
  }

  // ---- workspaces by server

  // A block shows its server's newest page of workspaces, live from the
  // stream. Next and Previous page through the older ones with GET
  // /admin/servers/{id}/workspaces?order=newest&after=… (the stream's
  // workspaces_next starts it); while a block shows a later page, the
  // stream only updates its count. block._afters holds the after of every
  // page from the first ('') to the one shown, so Previous goes back
  // exactly.

  function newWorkspaceBlock() {
    const pageButton = (dir, text) => el('button', { type: 'button', class: 'secondary', 'data-page': dir, text,
      onclick: ev => turnPage(ev.target.closest('details'), dir) });
    const block = el('details', { class: 'ws-block' },
      el('summary', {}, el('strong', { 'data-field': 'server' }), ' ', el('span', { class: 'muted', 'data-field': 'count' })),
      el('div', { class: 'table-wrap' },
        el('table', { class: 'ws' },
          el('thead', {}, el('tr', {}, ...['Workspace', 'User', 'Status', 'Tier', 'Reserved', 'Created', 'Idle stop in'].map(h => el('th', { text: h })))),
          el('tbody'))),
      el('p', { class: 'pager' }, pageButton('prev', 'Previous'), ' ', pageButton('next', 'Next')));
    block._afters = [''];
    block._page = null; // {workspaces, next} of a later page; null on the first, live one
    return block;
  }

  function updateWorkspaceBlock(block, item) {
    const [server, list, total, next] = item;
    block._live = { workspaces: list, next };
    block._total = total;
    $('[data-field=server]', block).textContent = server;
    block.dataset.count = total;
    showWorkspaces(block);
  }

  async function turnPage(block, dir) {
    if (block._busy) return;
    const server = block.getAttribute('data-workspaces-of');
    const shown = block._page || block._live;
    const afters = block._afters;
    const after = dir === 'next' ? shown.next : afters[afters.length - 2];
    if (after === undefined || after === null || (dir === 'next' && after === '')) return;
    if (after === '') { // back to the first page: live again
      block._afters = [''];
      block._page = null;
      showWorkspaces(block);
      return;
    }
    block._busy = true;
    showWorkspaces(block);
    try {
      const p = await call('GET', '/admin/servers/' + encodeURIComponent(server) +
        '/workspaces?order=newest&after=' + encodeURIComponent(after));
      block._total = p.total_count;
      block._page = { workspaces: p.workspaces, next: p.next || '' };
      if (dir === 'next') afters.push(after);
      else afters.pop();
    } catch (e) {
      say('Could not list the workspaces of ' + server + ': ' + e.message, true);
    } finally {
      block._busy = false;
    }
    showWorkspaces(block);
  }

  function showWorkspaces(block) {
    const total = block._total;
    const page = block._afters.length;
    const shown = block._page || block._live;
    const list = shown.workspaces;
    $('[data-field=count]', block).textContent = total === 0 ? 'no workspaces'
      : total + (total === 1 ? ' workspace' : ' workspaces') +
        (page > 1 ? ' (page ' + page + ', ' + list.length + ' shown, newest first)'
          : list.length < total ? ' (newest ' + list.length + ' shown)' : '');
    block.dataset.page = page;
    $('.pager', block).hidden = page === 1 && !shown.next;
    $('[data-page=prev]', block).disabled = block._busy || page === 1;
    $('[data-page=next]', block).disabled = block._busy || !shown.next;
    const tbody = $('tbody', block);
    tbody.replaceChildren(...list.map(w => el('tr', { 'data-workspace-id': w.id, 'data-status': w.status },
      el('td', { class: 'mono', text: w.id }),
      el('td', { text: w.user_id }),
      el('td', {}, el('span', { class: 'badge status-' + w.status, text: w.status, title: w.status_reason || '' })),
      el('td', { text: w.tier || '—' }),
      el('td', { text: cores(w.reserved.cpu) + ', ' + mb(w.reserved.memory_mb) + ', ' + gb(w.reserved.disk_gb) }),
      el('td', { text: dateTime(w.created_at) }),
      el('td', { 'data-field': 'idle', text: idleIn(w.idle_stop_at) }))));
  }

  // idleIn is the time left before an unused workspace is stopped.
  function idleIn(at) {
    if (!at) return '—';
    const s = Math.round((Date.parse(at) - Date.now()) / 1000);
    if (s <= 0) return 'now';
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    return Math.round(s / 3600) + ' h';
  }

  // ---- cluster totals

  function chips(by, prefix) {
    return el('div', { class: 'chips' }, ...Object.keys(by).filter(k => by[k] > 0).map(k =>
      el('span', { class: 'badge ' + prefix + k, 'data-count-of': k, text: by[k] + ' ' + k })));
  }

  // billingCard is the usage outbox: events not yet acknowledged by the
  // podex API (its depth), and the workspaces being billed.
  function billingCard(b) {
    const waiting = b.outbox_pending === 0 ? 'all usage acknowledged by the podex API'
      : b.pending_seconds + ' s of compute waiting' + (b.oldest_pending_at ? ' since ' + time(b.oldest_pending_at) : '');
    const card = el('div', { class: 'card', 'data-card': 'billing' },
      el('h3', { text: 'Billing outbox' }),
      el('div', { class: 'big', text: String(b.outbox_pending) }),
      el('div', { class: 'muted', text: waiting }),
      el('div', { class: 'muted', text: b.open_intervals + (b.open_intervals === 1 ? ' workspace' : ' workspaces') + ' being billed' }),
      b.failing > 0 ? el('div', { class: 'last-error', text: b.failing + ' failing: ' + b.last_error }) : null);
    card.dataset.pending = b.outbox_pending;
    return card;
  }

  function renderCluster(c, servers, billing) {
    const card = (name, title, big, ...rest) => el('div', { class: 'card', 'data-card': name },
      el('h3', { text: title }), el('div', { class: 'big', text: String(big) }), ...rest);
    const cpu = meter('cpu'), mem = meter('memory'), disk = meter('disk');
    let usedCPU = 0;
    for (const s of servers) if (s.use) usedCPU += (s.use.cpu_cores * s.use.cpu_percent) / 100;
    const u = c.use;
    setMeter(cpu, c.capacity.reserved.cpu, c.capacity.effective.cpu, u.cpu_cores > 0 ? round(usedCPU, 2) : null, u.cpu_cores, cores);
    setMeter(mem, c.capacity.reserved.memory_mb, c.capacity.effective.memory_mb, u.memory_total_mb > 0 ? u.memory_used_mb : null, u.memory_total_mb, mb);
    setMeter(disk, c.capacity.reserved.disk_gb, c.capacity.effective.disk_gb, u.disk_total_gb > 0 ? u.disk_used_gb : null, u.disk_total_gb, gb);
    const servCard = card('servers', 'Servers', c.servers.total,
      el('div', { class: 'muted', text: c.placement.schedulable + ' taking new workspaces' }),
      chips(c.servers.by_health, 'health-'), chips(c.servers.by_state, 'state-'));
    servCard.dataset.total = c.servers.total;
    servCard.dataset.healthy = c.servers.by_health.healthy || 0;
    const wsCard = card('workspaces', 'Workspaces', c.workspaces.total, chips(c.workspaces.by, 'status-'));
    wsCard.dataset.total = c.workspaces.total;
    $('#cluster-cards').replaceChildren(
      servCard, wsCard,
      card('cpu', 'CPU', cores(c.capacity.effective.cpu), cpu),
      card('memory', 'Memory', mb(c.capacity.effective.memory_mb), mem),
      card('disk', 'Disk', gb(c.capacity.effective.disk_gb), disk),
      card('members', 'Gossip members', c.members.total, chips(c.members.by, 'gossip-')));
    if (c.raft) $('#cluster-cards').append(raftCard(c.raft));
    if (billing) $('#cluster-cards').append(billingCard(billing));
  }

  // The schedulers of a raft cluster (high availability), as the leader
  // sees them: the panel's requests are answered by the leader, whichever
  // scheduler they reach.
  function raftCard(r) {
    const members = r.members || [];
    const c = el('div', { class: 'card', 'data-card': 'schedulers' },
      el('h3', { text: 'Schedulers' }), el('div', { class: 'big', text: String(members.length) }),
      el('div', { class: 'muted', text: 'leader ' + (r.leader_id || 'none') + ', term ' + r.term + ', commit ' + r.commit_index }),
      el('ul', { class: 'plain' }, ...members.map(m => el('li', { 'data-scheduler': m.id, 'data-leading': String(m.leading) },
        el('strong', { text: m.id }), ' ', el('span', { class: 'mono muted', text: m.addr }),
        m.leading ? el('span', { class: 'badge health-healthy', text: 'leader' }) : null))));
    c.dataset.leader = r.leader_id || '';
    return c;
  }

  // ---- members and events

  function renderMembers(members) {
    $('#members tbody').replaceChildren(...members.map(m => el('tr', { 'data-member': m.name, 'data-state': m.state },
      el('td', {}, el('strong', { text: m.name })),
      el('td', { text: m.role || '—' }),
      el('td', {}, el('span', { class: 'badge gossip-' + m.state, text: m.state })),
      el('td', { class: 'mono', text: m.address }),
      el('td', { class: 'mono', text: m.agent_address || '—' }),
      el('td', { text: m.region || '—' }),
      el('td', { class: 'num', text: m.use.cpu_cores > 0 ? cores(m.use.cpu_cores) + ', ' + m.use.cpu_percent + '% used' : '—' }),
      el('td', { class: 'num', text: m.use.memory_total_mb > 0 ? mb(m.use.memory_total_mb - m.use.memory_used_mb) + ' of ' + mb(m.use.memory_total_mb) : '—' }),
      el('td', { class: 'num', text: m.use.disk_total_gb > 0 ? gb(m.use.disk_total_gb - m.use.disk_used_gb) + ' of ' + gb(m.use.disk_total_gb) : '—' }),
      el('td', { text: m.version || '—' }))));
    if (members.length === 0) {
      $('#members tbody').append(el('tr', {}, el('td', { colspan: 10, class: 'muted', text: 'Gossip is off or no member is known yet.' })));
    }
  }

  function renderEvents(events) {
    $('#events').replaceChildren(...events.map(e => el('li', { 'data-event-id': e.id },
      el('time', { datetime: e.at, text: time(e.at) }), ' ',
      el('span', { class: 'kind', text: e.kind }), ' ',
      el('span', { text: e.message }))));
  }

  function renderMoves(moves) {
    $('#moves').replaceChildren(...moves.map(m => el('li', { 'data-move-of': m.workspace_id },
      el('strong', { text: m.workspace_id }), ' ',
      el('span', { class: 'mono', text: m.from + ' → ' + m.to }), ' ',
      el('span', { text: m.progress }))));
    $('#no-moves').hidden = moves.length > 0;
  }

  // ---- the whole page

  function render(o) {
    renderCluster(o.cluster, o.servers, o.billing);
    const tbody = $('#servers tbody');
    sync(tbody, o.servers, s => s.id, 'data-server-id', newServerRow, updateServerRow);
    $('#no-servers').hidden = o.servers.length > 0;
    sync($('#discovered tbody'), o.discovered, d => d.id, 'data-agent-id', newDiscoveredRow, updateDiscoveredRow);
    $('#discovered').dataset.count = o.discovered.length;
    const next = o.workspaces_next || {};
    const blocks = o.servers.map(s => [s.id, o.workspaces[s.id] || [], s.workspaces, next[s.id] || '']);
    sync($('#workspaces'), blocks, b => b[0], 'data-workspaces-of', newWorkspaceBlock, updateWorkspaceBlock);
    renderMembers(o.members);
    renderEvents(o.events);
    renderMoves(o.moves || []);
    $('#updated-at').textContent = 'updated ' + time(o.generated_at);
    document.body.dataset.generatedAt = o.generated_at;
  }

  function setLive(state, text) {
    const s = $('#live-status');
    s.dataset.live = state;
    s.textContent = text;
  }

  function connect() {
    const es = new EventSource('/admin/ui/events');
    es.addEventListener('open', () => setLive('live', 'live'));
    es.addEventListener('snapshot', e => {
      setLive('live', 'live');
      render(JSON.parse(e.data));
    });
    es.addEventListener('error', async () => {
      setLive('down', 'reconnecting…');
      try {
        const r = await fetch('/admin/cluster', { credentials: 'same-origin' });
        if (r.status === 401) window.location.assign('/admin/ui/signin');
      } catch (err) { /* the scheduler is down; EventSource retries */ }
    });
  }

  // ---- add form

  function parseLabels(text) {
    const out = {};
    for (const part of text.split(',').map(p => p.trim()).filter(Boolean)) {
      const i = part.indexOf('=');
      if (i <= 0) throw new Error('labels: "' + part + '" is not key=value');
      out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
  }

  function setupAddForm() {
    const form = $('#add-server');
    const result = $('#add-result');
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      const f = new FormData(form);
      const submit = $('#add-submit');
      result.className = 'message';
      let body;
      try {
        body = { id: f.get('id').trim(), ip_address: f.get('ip_address').trim(), agent_port: Number(f.get('agent_port') || 7443) };
        if (f.get('region').trim()) body.region = f.get('region').trim();
        if (f.get('state') && f.get('state') !== 'active') body.state = f.get('state');
        const l = parseLabels(f.get('labels'));
        if (Object.keys(l).length) body.labels = l;
      } catch (e) {
        result.textContent = e.message;
        result.classList.add('error');
        return;
      }
      submit.disabled = true;
      result.textContent = 'Checking the agent at ' + body.ip_address + ':' + body.agent_port + '…';
      try {
        const s = await call('POST', '/admin/servers', body);
        result.textContent = 'Added ' + s.id + ' (' + s.agent_address + ').';
        result.classList.add('ok');
        form.reset();
      } catch (e) {
        result.textContent = e.message;
        result.classList.add('error');
      } finally {
        submit.disabled = false;
      }
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    setupAddForm();
    const initial = $('#initial-state');
    if (initial && initial.textContent.trim()) render(JSON.parse(initial.textContent));
    connect();
  });
})();
