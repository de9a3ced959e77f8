// The buyer's page: a small single-page application over the box office's public API.
// Views (location.hash): #/ events and search, #/events/{id} rounds, #/rounds/{id} seat map,
// #/login sign in or register, #/bookings my bookings. No framework, no build step.
'use strict';

const $ = (sel, el) => (el || document).querySelector(sel);
const main = $('#main');
const msgBox = $('#msg');
const session = {
  token: localStorage.getItem('bo.token'),
  email: localStorage.getItem('bo.email'),
};
// Measurements the browser tests read (time to interactive of a seat map).
window.boMetrics = {};

// ---- helpers -------------------------------------------------------------------------------

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
function money(minor) { return (minor / 100).toFixed(2); }
function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
function say(text, ok) {
  msgBox.textContent = text;
  msgBox.className = ok ? 'msg ok' : 'msg';
  msgBox.hidden = false;
}
function clearMsg() { msgBox.hidden = true; msgBox.textContent = ''; }

// What the API's error codes mean to a buyer.
const WORDS = {
  seats_unavailable: 'Sorry, some of those seats were just taken by someone else. Pick other seats.',
  contention: 'Many people are buying right now and your request lost the race. Please try again.',
  hold_not_active: 'Your hold is no longer active (it expired or was released). Choose your seats again.',
  booking_expired: 'Your booking expired before it was paid. The seats have been released.',
  payment_declined: 'Your payment was declined. Nothing was charged; you can try again before the booking expires.',
  payment_unavailable: 'The payment service is not answering. Nothing was charged; please try again in a moment.',
  amount_mismatch: 'The amount to pay changed. Reload your booking and try again.',
  already_paid: 'This booking is already paid.',
  invalid_state: 'This booking cannot do that in its current state.',
  email_taken: 'An account with this email already exists. Sign in instead.',
  unauthorized: 'Please sign in (your session may have expired).',
  unknown_seats: 'Those seats are not part of this show.',
  not_found: 'Not found.',
  network: 'The box office cannot be reached. Check your connection and try again.',
};

class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

async function api(method, path, body, headers) {
  const h = Object.assign({ accept: 'application/json' }, headers || {});
  if (body !== undefined) h['content-type'] = 'application/json';
  if (session.token) h.authorization = 'Bearer ' + session.token;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError('network', WORDS.network, 0);
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const code = (data && data.error && data.error.code) || 'http_' + res.status;
    const detail = (data && data.error && data.error.message) || res.statusText;
    if (res.status === 401 && session.token) signOut(true);
    // The API's own message when there are no better words (a 404 says what was not found).
    const words = code !== 'not_found' && WORDS[code] || detail.charAt(0).toUpperCase() + detail.slice(1) + '.';
    throw new ApiError(code, words, res.status);
  }
  return data;
}

function showError(e) { say(e instanceof ApiError ? e.message : 'Something went wrong: ' + e.message); }

function signOut(expired) {
  session.token = null; session.email = null;
  localStorage.removeItem('bo.token'); localStorage.removeItem('bo.email');
  renderWho();
  if (expired) say(WORDS.unauthorized);
}

function renderWho() {
  const who = $('#who');
  if (session.token) {
    who.innerHTML = '<span>' + esc(session.email || '') + '</span> <button type="button" class="secondary" id="signout">Sign out</button>';
    $('#signout').onclick = () => { signOut(false); say('You are signed out.', true); route(); };
  } else {
    who.innerHTML = '<a href="#/login?next=' + encodeURIComponent(location.hash || '#/') + '">Sign in</a>';
  }
}

function needLogin() {
  return '<p><a class="btn" href="#/login?next=' + encodeURIComponent(location.hash) + '">Sign in or register</a> to choose seats.</p>';
}

// ---- router --------------------------------------------------------------------------------

let leave = null; // cleanup of the current view (closes the seat stream, stops timers)

function route() {
  if (leave) { leave(); leave = null; }
  const hash = location.hash || '#/';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  renderWho();
  let view;
  if (parts.length === 0) view = eventsView(params);
  else if (parts[0] === 'events' && parts[1]) view = eventView(+parts[1]);
  else if (parts[0] === 'rounds' && parts[1]) view = roundView(+parts[1]);
  else if (parts[0] === 'login') view = loginView(params);
  else if (parts[0] === 'bookings') view = bookingsView();
  else { main.innerHTML = '<h1>Not found</h1><p><a href="#/">All events</a></p>'; return; }
  view.catch(showError);
}

window.addEventListener('hashchange', () => { clearMsg(); route(); main.focus(); });

// ---- events --------------------------------------------------------------------------------

async function eventsView(params) {
  const q = params.get('q') || '';
  document.title = 'Events · Box Office';
  main.innerHTML = '<h1>Events</h1>' +
    '<form class="search" role="search" id="search"><label for="q" class="sr">Search events</label>' +
    '<input type="search" id="q" name="q" placeholder="Title or category (jazz, theatre…)" value="' + esc(q) + '">' +
    '<button type="submit">Search</button></form><div id="results" aria-live="polite"></div>';
  let timer = null;
  $('#search').onsubmit = (e) => { e.preventDefault(); load($('#q').value, 1, false); };
  $('#q').oninput = () => { clearTimeout(timer); timer = setTimeout(() => load($('#q').value, 1, false), 250); };
  leave = () => clearTimeout(timer);
  await load(q, 1, false);

  async function load(text, page, append) {
    const data = await api('GET', '/v1/events?per_page=20&page=' + page + '&q=' + encodeURIComponent(text.trim()));
    const box = $('#results');
    if (!box) return;
    let list = append ? $('#event-list') : null;
    if (!list) {
      box.innerHTML = '<p class="muted">' + data.total + (data.total === 1 ? ' event' : ' events') + (text.trim() ? ' matching “' + esc(text.trim()) + '”' : '') + '</p><ul class="cards" id="event-list"></ul>';
      list = $('#event-list');
    }
    list.insertAdjacentHTML('beforeend', data.items.map((e) =>
      '<li class="card"><h2><a href="#/events/' + e.id + '">' + esc(e.title) + '</a></h2>' +
      '<div class="muted">' + esc(e.venue_name) + '</div>' +
      (e.category ? '<span class="tag">' + esc(e.category) + '</span>' : '') +
      (e.description ? '<p>' + esc(e.description) + '</p>' : '') +
      '<a href="#/events/' + e.id + '">See dates and seats</a></li>').join(''));
    const more = $('#more');
    if (more) more.remove();
    if (page * data.per_page < data.total) {
      box.insertAdjacentHTML('beforeend', '<button type="button" id="more" class="secondary">More events</button>');
      $('#more').onclick = () => load(text, page + 1, true).catch(showError);
    }
    if (!data.total) {
      list.outerHTML = '<p>No events match. Try another word' +
        (text.trim() ? '' : ', or start the box office with <code>--demo</code> for a demo catalog') + '.</p>';
    }
  }
}

async function eventView(id) {
  const e = await api('GET', '/v1/events/' + id);
  document.title = e.title + ' · Box Office';
  sessionStorage.setItem('bo.event', JSON.stringify({ id: e.id, title: e.title, venue: e.venue_name }));
  const rounds = e.rounds || [];
  main.innerHTML = '<p><a href="#/">← All events</a></p><h1>' + esc(e.title) + '</h1>' +
    '<p class="muted">' + esc(e.venue_name) + (e.category ? ' · <span class="tag">' + esc(e.category) + '</span>' : '') + '</p>' +
    (e.description ? '<p>' + esc(e.description) + '</p>' : '') +
    '<h2>Dates</h2>' + (rounds.length ? '<ul class="cards">' + rounds.map((r) => {
      const prices = Object.values(r.prices);
      return '<li class="card"><h3>' + esc(when(r.starts_at)) + '</h3>' +
        '<div>' + money(Math.min(...prices)) + ' – ' + money(Math.max(...prices)) + '</div>' +
        '<div class="muted" id="avail-' + r.id + '">' + r.capacity + ' seats</div>' +
        '<a class="btn" href="#/rounds/' + r.id + '">Choose seats</a></li>';
    }).join('') + '</ul>' : '<p>No dates yet.</p>');
  for (const r of rounds) {
    api('GET', '/v1/rounds/' + r.id + '/availability').then((a) => {
      const el = $('#avail-' + r.id);
      if (el) el.textContent = a.available + ' of ' + a.capacity + ' seats left';
    }).catch(() => {});
  }
}

// ---- sign in -------------------------------------------------------------------------------

async function loginView(params) {
  const next = params.get('next') || '#/';
  document.title = 'Sign in · Box Office';
  main.innerHTML = '<h1>Sign in or register</h1><div class="forms">' +
    '<form class="card" id="login"><h2>Sign in</h2>' +
    '<label for="li-email">Email</label><input id="li-email" type="email" autocomplete="username" required>' +
    '<label for="li-pw">Password</label><input id="li-pw" type="password" autocomplete="current-password" required>' +
    '<button type="submit" id="login-btn">Sign in</button></form>' +
    '<form class="card" id="register"><h2>New here? Register</h2>' +
    '<label for="re-name">Name</label><input id="re-name" autocomplete="name" required>' +
    '<label for="re-email">Email</label><input id="re-email" type="email" autocomplete="email" required>' +
    '<label for="re-pw">Password (8 characters or more)</label><input id="re-pw" type="password" autocomplete="new-password" minlength="8" required>' +
    '<button type="submit" id="register-btn">Register and sign in</button></form></div>';
  async function signIn(email, password) {
    const t = await api('POST', '/v1/auth/token', { email, password });
    session.token = t.access_token; session.email = email;
    localStorage.setItem('bo.token', t.access_token); localStorage.setItem('bo.email', email);
    say('Signed in as ' + email + '.', true);
    location.hash = next;
  }
  $('#login').onsubmit = (e) => {
    e.preventDefault();
    signIn($('#li-email').value.trim(), $('#li-pw').value).catch((err) => {
      say(err.status === 401 ? 'That email and password do not match an account.' : err.message);
    });
  };
  $('#register').onsubmit = (e) => {
    e.preventDefault();
    const email = $('#re-email').value.trim(), password = $('#re-pw').value;
    api('POST', '/v1/users', { email, password, name: $('#re-name').value.trim() })
      .then(() => signIn(email, password)).catch(showError);
  };
}

// ---- the seat map --------------------------------------------------------------------------

const GLYPH = { free: '', held: '–', sold: '✕', mine: '★', selected: '✓' };
const SAY = { free: 'free', held: 'held by another buyer', sold: 'sold', mine: 'yours', selected: 'selected' };

async function roundView(roundId) {
  const t0 = performance.now();
  const stored = JSON.parse(sessionStorage.getItem('bo.event') || 'null');
  const data = await api('GET', '/v1/rounds/' + roundId + '/seats');
  window.boMetrics.fetchMs = performance.now() - t0;
  const seats = data.seats;
  const byId = new Map();
  // Tiers, dearest first, get the palette in order.
  const tierPrice = new Map();
  for (const s of seats) tierPrice.set(s.tier, Math.max(tierPrice.get(s.tier) || 0, s.price));
  const tiers = [...tierPrice.keys()].sort((a, b) => tierPrice.get(b) - tierPrice.get(a));
  const st = {
    round: roundId, status: new Map(), selected: new Set(), mineHeld: new Set(), mineBooked: new Set(),
    hold: null, booking: null, timer: null, es: null,
  };
  document.title = 'Seats of round ' + roundId + ' · Box Office';

  // Sections → rows → seats, in the venue map's order (seat ids ascend with it).
  let html = '';
  let section = null, row = null;
  for (const s of seats) {
    if (s.section !== section) {
      if (row !== null) html += '</div>';
      if (section !== null) html += '</div></section>';
      section = s.section; row = null;
      html += '<section class="section" aria-label="Section ' + esc(section) + '"><h3>' + esc(section) + '</h3><div class="rows">';
    }
    if (s.row !== row) {
      if (row !== null) html += '</div>';
      row = s.row;
      html += '<div class="row" role="group" aria-label="Section ' + esc(section) + ', row ' + esc(row) + '"><span class="rl" aria-hidden="true">' + esc(row) + '</span>';
    }
    s.number = s.label.slice(s.label.lastIndexOf('-') + 1);
    st.status.set(s.id, s.status);
    byId.set(s.id, s);
    // The first paint is written into the HTML: one parse, no per-seat DOM calls.
    const state = stateOf(s.id);
    html += '<button type="button" class="seat" id="s' + s.id + '" data-id="' + s.id + '" data-state="' + state +
      '" aria-pressed="false" aria-disabled="' + (state === 'held' || state === 'sold') + '" aria-label="' + esc(describe(s.id)) +
      '" style="--tc:var(--t' + Math.min(tiers.indexOf(s.tier), 5) + ')">' + GLYPH[state] + '</button>';
  }
  if (row !== null) html += '</div>';
  if (section !== null) html += '</div></section>';

  const title = stored && stored.title ? esc(stored.title) : 'Round ' + roundId;
  const back = stored && stored.id ? '<a href="#/events/' + stored.id + '">← ' + esc(stored.title) + '</a>' : '<a href="#/">← All events</a>';
  main.innerHTML = '<p>' + back + '</p><h1>' + title + ' <span class="live off" id="live">connecting…</span></h1>' +
    '<p class="muted" id="counts"></p>' +
    '<div class="legend" aria-label="Legend">' +
    tiers.map((t, k) => '<span><span class="seat" style="--tc:var(--t' + Math.min(k, 5) + ')" aria-hidden="true"></span> ' + esc(t) + ' ' + money(tierPrice.get(t)) + '</span>').join('') +
    ['held', 'sold', 'mine', 'selected'].map((k) => '<span><span class="seat" data-state="' + k + '" style="--tc:var(--t0)" aria-hidden="true">' + GLYPH[k] + '</span> ' + SAY[k] + '</span>').join('') +
    '</div><div class="layout"><div><div class="map" id="map" aria-label="Seat map: use Tab or the arrow keys to move between seats, Enter or Space to select"><div class="stage" aria-hidden="true">STAGE</div>' + html + '</div>' +
    '<p class="info" id="info" aria-hidden="true"></p></div>' +
    '<aside class="panel" id="panel" aria-label="Your seats" aria-live="polite"></aside></div>';

  const map = $('#map');
  // Long rows get smaller seats on a wide screen so a whole row fits (phones scroll instead).
  let longest = 0;
  for (const r of map.querySelectorAll('.row')) longest = Math.max(longest, r.childElementCount - 1);
  map.classList.toggle('wide', longest > 28);
  counts();
  window.boMetrics.renderMs = performance.now() - t0;
  requestAnimationFrame(() => { window.boMetrics.mapReadyMs = performance.now(); document.body.dataset.map = 'ready'; });

  function stateOf(id) {
    if (st.mineHeld.has(id) || st.mineBooked.has(id)) return 'mine';
    const s = st.status.get(id);
    if (s === 'sold') return 'sold';
    if (s === 'held') return 'held';
    return st.selected.has(id) ? 'selected' : 'free';
  }
  function describe(id) {
    const s = byId.get(id), state = stateOf(id);
    let words = SAY[state];
    if (state === 'mine') words = st.mineBooked.has(id) ? 'yours, booked' : 'yours, held for you';
    return 'Section ' + s.section + ', row ' + s.row + ', seat ' + s.number + ', ' + s.tier + ', ' + money(s.price) + ', ' + words;
  }
  function paint(id) {
    const b = document.getElementById('s' + id);
    if (!b) return;
    const state = stateOf(id);
    b.dataset.state = state;
    b.textContent = GLYPH[state];
    b.setAttribute('aria-label', describe(id));
    b.setAttribute('aria-pressed', state === 'selected' ? 'true' : 'false');
    b.setAttribute('aria-disabled', state === 'held' || state === 'sold' ? 'true' : 'false');
  }
  function counts() {
    let free = 0, held = 0, sold = 0;
    for (const v of st.status.values()) { if (v === 'sold') sold++; else if (v === 'held') held++; else free++; }
    const el = $('#counts');
    if (el) el.textContent = seats.length + ' seats: ' + free + ' free, ' + held + ' held, ' + sold + ' sold';
  }

  // Selecting: click, Enter or Space on a seat.
  map.addEventListener('click', (e) => {
    const b = e.target.closest('button.seat');
    if (!b) return;
    const id = +b.dataset.id, state = stateOf(id);
    if (!session.token) { say('Sign in to choose seats.'); return; }
    if (st.hold || st.booking) { say('Finish or release your current hold before choosing other seats.'); return; }
    if (state === 'held' || state === 'sold') { say('Seat ' + byId.get(id).label + ' is ' + SAY[state] + ' and cannot be selected.'); return; }
    if (state === 'mine') return;
    clearMsg();
    if (st.selected.has(id)) st.selected.delete(id); else st.selected.add(id);
    paint(id);
    panel();
  });
  // Arrow keys move between seats: left/right in a row, up/down to the nearest seat of the
  // next row, Home/End to a row's ends.
  map.addEventListener('keydown', (e) => {
    const b = e.target.closest && e.target.closest('button.seat');
    if (!b) return;
    let to = null;
    const rowEl = b.parentElement;
    if (e.key === 'ArrowRight') to = b.nextElementSibling;
    else if (e.key === 'ArrowLeft') to = b.previousElementSibling;
    else if (e.key === 'Home') to = rowEl.querySelector('button.seat');
    else if (e.key === 'End') to = rowEl.lastElementChild;
    else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const rows = [...map.querySelectorAll('.row')];
      const k = rows.indexOf(rowEl) + (e.key === 'ArrowDown' ? 1 : -1);
      if (rows[k]) {
        const idx = [...rowEl.children].indexOf(b);
        const kids = rows[k].children;
        to = kids[Math.min(idx, kids.length - 1)];
      }
    } else return;
    e.preventDefault();
    if (to && to.classList.contains('seat')) to.focus();
  });
  const info = $('#info');
  const hover = (e) => { const b = e.target.closest && e.target.closest('button.seat'); if (b) info.textContent = describe(+b.dataset.id); };
  map.addEventListener('mouseover', hover);
  map.addEventListener('focusin', hover);

  // Live: a snapshot on every (re)connection, then one event per change.
  function setStatus(ids, status) {
    for (const id of ids) {
      if (!byId.has(id)) continue;
      const before = st.status.get(id);
      st.status.set(id, status);
      if (status !== 'available' && st.selected.has(id)) {
        st.selected.delete(id);
        say('Seat ' + byId.get(id).label + ' was just taken by someone else.');
        panel();
      }
      if (status === 'available') { st.mineHeld.delete(id); st.mineBooked.delete(id); }
      if (before !== status) paint(id);
    }
  }
  function live() {
    const es = new EventSource('/v1/rounds/' + roundId + '/seats/stream');
    st.es = es;
    const badge = $('#live');
    es.onopen = () => { badge.textContent = 'live'; badge.className = 'live'; };
    es.onerror = () => { badge.textContent = 'reconnecting…'; badge.className = 'live off'; };
    es.addEventListener('snapshot', (e) => {
      const snap = JSON.parse(e.data);
      const held = new Set(snap.held), sold = new Set(snap.sold);
      for (const id of byId.keys()) {
        const s = sold.has(id) ? 'sold' : held.has(id) ? 'held' : 'available';
        if (st.status.get(id) !== s) setStatus([id], s);
      }
      counts();
      if (!window.boMetrics.liveMs) window.boMetrics.liveMs = performance.now();
      badge.textContent = 'live'; badge.className = 'live';
    });
    es.addEventListener('held', (e) => { setStatus(JSON.parse(e.data).seat_ids, 'held'); counts(); });
    es.addEventListener('sold', (e) => { setStatus(JSON.parse(e.data).seat_ids, 'sold'); counts(); });
    es.addEventListener('released', (e) => {
      const ids = JSON.parse(e.data).seat_ids;
      // My held seats released by the reaper: my hold expired.
      if (st.hold && ids.some((id) => st.hold.seat_ids.includes(id))) holdGone('Your hold expired and the seats were released.');
      setStatus(ids, 'available'); counts();
    });
  }
  live();

  // My seats: my bookings of this round, and the hold this tab placed (kept for a reload).
  const holdKey = 'bo.hold.' + roundId;
  if (session.token) {
    try {
      const mine = await api('GET', '/v1/me/bookings');
      for (const b of mine.bookings) {
        if (b.round_id !== roundId) continue;
        if (b.status === 'confirmed') b.seat_ids.forEach((id) => st.mineBooked.add(id));
        if (b.status === 'pending_payment') { b.seat_ids.forEach((id) => st.mineHeld.add(id)); st.booking = b; }
      }
      const saved = JSON.parse(sessionStorage.getItem(holdKey) || 'null');
      if (saved && !st.booking) {
        const h = await api('GET', '/v1/holds/' + saved.id).catch(() => null);
        if (h && h.status === 'active') setHold(h); else sessionStorage.removeItem(holdKey);
      }
    } catch (e) { showError(e); }
    for (const id of [...st.mineHeld, ...st.mineBooked]) paint(id);
  }
  panel();

  leave = () => { if (st.es) st.es.close(); clearInterval(st.timer); };

  function setHold(h) {
    st.hold = h;
    sessionStorage.setItem(holdKey, JSON.stringify({ id: h.id }));
    for (const id of st.selected) paint(id);
    st.selected.clear();
    h.seat_ids.forEach((id) => { st.mineHeld.add(id); st.status.set(id, 'held'); paint(id); });
    counts();
  }
  function holdGone(text) {
    if (!st.hold) return;
    const ids = st.hold.seat_ids;
    st.hold = null; sessionStorage.removeItem(holdKey);
    clearInterval(st.timer);
    ids.forEach((id) => { st.mineHeld.delete(id); paint(id); });
    say(text);
    panel();
  }
  function countdown(el, until, onZero) {
    clearInterval(st.timer);
    const end = new Date(until).getTime();
    const tick = () => {
      const left = Math.max(0, Math.round((end - Date.now()) / 1000));
      el.textContent = Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0');
      el.classList.toggle('low', left <= 30);
      if (left === 0) { clearInterval(st.timer); onZero(); }
    };
    tick();
    st.timer = setInterval(tick, 250);
  }
  function seatList(ids) {
    return '<ul>' + ids.map((id) => { const s = byId.get(id); return '<li>' + esc(s.section) + ', row ' + esc(s.row) + ', seat ' + esc(s.number) + ' — ' + money(s.price) + '</li>'; }).join('') + '</ul>';
  }

  // The panel: what to do next.
  function panel() {
    const p = $('#panel');
    if (!p) return;
    clearInterval(st.timer);
    if (!session.token) { p.innerHTML = '<h2>Your seats</h2>' + needLogin(); return; }
    if (st.booking && st.booking.status === 'pending_payment') {
      const b = st.booking;
      p.innerHTML = '<h2>Booking #' + b.id + '</h2>' + seatList(b.seat_ids) +
        '<p>Total <strong>' + money(b.amount) + '</strong></p>' +
        '<p>Pay within <span class="timer" role="timer" aria-live="off" id="timer"></span></p>' +
        '<div class="actions"><button type="button" id="pay-btn">Pay ' + money(b.amount) + '</button>' +
        '<button type="button" class="secondary" id="cancel-btn">Cancel booking</button></div>';
      countdown($('#timer'), b.pay_by, () => say(WORDS.booking_expired));
      $('#pay-btn').onclick = () => act($('#pay-btn'), async () => {
        const paid = await api('POST', '/v1/bookings/' + b.id + '/pay', { amount: b.amount }, { 'Idempotency-Key': 'page-' + b.id + '-' + (b.attempt = (b.attempt || 0) + 1) });
        st.booking = null;
        paid.seat_ids.forEach((id) => { st.mineHeld.delete(id); st.mineBooked.add(id); st.status.set(id, 'sold'); paint(id); });
        counts();
        panelDone(paid);
      });
      $('#cancel-btn').onclick = () => act($('#cancel-btn'), async () => {
        await api('POST', '/v1/bookings/' + b.id + '/cancel');
        st.booking = null;
        b.seat_ids.forEach((id) => { st.mineHeld.delete(id); st.status.set(id, 'available'); paint(id); });
        counts();
        say('Booking #' + b.id + ' cancelled; the seats are free again.', true);
        panel();
      });
      return;
    }
    if (st.hold) {
      const h = st.hold;
      p.innerHTML = '<h2>Held for you</h2>' + seatList(h.seat_ids) +
        '<p>Total <strong>' + money(h.amount) + '</strong></p>' +
        '<p>Time left <span class="timer" role="timer" aria-live="off" id="timer"></span></p>' +
        '<div class="actions"><button type="button" id="book-btn">Book these seats</button>' +
        '<button type="button" class="secondary" id="release-btn">Release</button></div>';
      countdown($('#timer'), h.expires_at, () => holdGone('Your hold expired and the seats were released.'));
      $('#book-btn').onclick = () => act($('#book-btn'), async () => {
        const b = await api('POST', '/v1/bookings', { hold_id: h.id });
        st.hold = null; sessionStorage.removeItem(holdKey);
        st.booking = b;
        say('Booking #' + b.id + ' created. Pay to confirm it.', true);
        panel();
      }, (e) => { if (e.code === 'hold_not_active') holdGone(e.message); });
      $('#release-btn').onclick = () => act($('#release-btn'), async () => {
        await api('DELETE', '/v1/holds/' + h.id);
        const ids = h.seat_ids;
        st.hold = null; sessionStorage.removeItem(holdKey);
        ids.forEach((id) => { st.mineHeld.delete(id); st.status.set(id, 'available'); paint(id); });
        counts();
        say('Seats released.', true);
        panel();
      });
      return;
    }
    const sel = [...st.selected].sort((a, b) => a - b);
    const total = sel.reduce((n, id) => n + byId.get(id).price, 0);
    p.innerHTML = '<h2>Your seats</h2>' + (sel.length ? seatList(sel) + '<p>Total <strong>' + money(total) + '</strong></p>' : '<p class="muted">Choose seats on the map, or ask for the best available.</p>') +
      '<div class="actions"><button type="button" id="hold-btn"' + (sel.length ? '' : ' disabled') + '>Hold ' + (sel.length || '') + (sel.length === 1 ? ' seat' : ' seats') + '</button></div>' +
      '<form id="qty-form" class="actions"><label for="qty">Or best available, how many?</label><input id="qty" type="number" min="1" max="10" value="2" style="width:5em"><button type="submit" class="secondary" id="qty-btn">Hold best</button></form>';
    $('#hold-btn').onclick = () => act($('#hold-btn'), async () => {
      const h = await api('POST', '/v1/rounds/' + roundId + '/holds', { seat_ids: sel });
      setHold(h);
      say('Seats held for you. Book them before the time runs out.', true);
      panel();
    });
    $('#qty-form').onsubmit = (e) => {
      e.preventDefault();
      act($('#qty-btn'), async () => {
        const h = await api('POST', '/v1/rounds/' + roundId + '/holds', { quantity: +$('#qty').value });
        for (const id of st.selected) { st.selected.delete(id); paint(id); }
        setHold(h);
        say('Seats held for you. Book them before the time runs out.', true);
        panel();
      });
    };
  }
  function panelDone(b) {
    const p = $('#panel');
    p.innerHTML = '<h2>Confirmed</h2><p>Booking <strong>#' + b.id + '</strong> is paid: ' + money(b.amount) + '.</p>' + seatList(b.seat_ids) +
      '<div class="actions"><a class="btn" href="#/bookings">My bookings</a><button type="button" class="secondary" id="again-btn">Choose more seats</button></div>';
    say('Payment captured. Booking #' + b.id + ' is confirmed.', true);
    $('#again-btn').onclick = () => { clearMsg(); panel(); };
  }
}

// Runs an action from a button: disabled while it runs, errors in words.
async function act(button, fn, onError) {
  button.disabled = true;
  try { await fn(); } catch (e) { showError(e); if (onError) onError(e); } finally { if (button.isConnected) button.disabled = false; }
}

// ---- my bookings ---------------------------------------------------------------------------

async function bookingsView() {
  document.title = 'My bookings · Box Office';
  if (!session.token) { main.innerHTML = '<h1>My bookings</h1>' + needLogin().replace('to choose seats', 'to see your bookings'); return; }
  const data = await api('GET', '/v1/me/bookings');
  const list = data.bookings;
  main.innerHTML = '<h1>My bookings</h1>' + (list.length ? '<ul class="bookings" id="bookings">' + list.map((b) =>
    '<li class="card" id="booking-' + b.id + '"><h2>Booking #' + b.id + ' <span class="status ' + esc(b.status) + '">' + esc(b.status.replace('_', ' ')) + '</span></h2>' +
    '<div>' + b.seat_ids.length + (b.seat_ids.length === 1 ? ' seat' : ' seats') + ' · ' + money(b.amount) + ' · <a href="#/rounds/' + b.round_id + '">round ' + b.round_id + '</a></div>' +
    '<div class="muted">Booked ' + esc(when(b.created_at)) + (b.confirmed_at ? ' · paid ' + esc(when(b.confirmed_at)) : '') + '</div>' +
    (b.status === 'confirmed' || b.status === 'pending_payment'
      ? '<div class="actions"><button type="button" class="secondary" data-cancel="' + b.id + '">' + (b.status === 'confirmed' ? 'Cancel and refund' : 'Cancel') + '</button></div>' : '') +
    '</li>').join('') + '</ul>' : '<p>No bookings yet. <a href="#/">Find an event</a>.</p>');
  main.addEventListener('click', onCancel);
  leave = () => main.removeEventListener('click', onCancel);
  function onCancel(e) {
    const b = e.target.closest('button[data-cancel]');
    if (!b) return;
    // Two steps: the first press asks, the second cancels.
    if (!b.dataset.armed) { b.dataset.armed = '1'; b.textContent = 'Press again to confirm'; return; }
    act(b, async () => {
      const done = await api('POST', '/v1/bookings/' + b.dataset.cancel + '/cancel');
      say('Booking #' + done.id + ' cancelled' + (done.confirmed_at ? '; the payment is refunded.' : '.'), true);
      await bookingsView();
    });
  }
}

route();
