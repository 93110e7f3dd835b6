// parkflow for drivers: find a lot with free spots (live), reserve a window, pay, and open the
// gate with the pass's QR code — which stays on the phone for when the garage has no signal.
// Plain browser JavaScript over the JSON API (no build step). Text from the API or a user is
// only ever set as text, never as HTML; the page's policy allows no inline script.
'use strict';

const REFRESH_KEY = 'parkflow.refresh';
const PASS_KEY = (id) => `parkflow.pass.${id}`;
let access = null; // the access token lives in memory only

// ---------------------------------------------------------------------------------------------
// Talking to the API

class Failure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// What went wrong, in words a driver understands (the API's message when it has one).
function words(e) {
  if (e instanceof Failure) {
    if (e.code === 'network') return 'No connection to parkflow. Check your signal and try again.';
    if (e.status === 401) return 'Please sign in again.';
    if (e.status === 429) return 'Too many attempts. Wait a moment, then try again.';
    if (e.message) return e.message.charAt(0).toUpperCase() + e.message.slice(1) + (/[.!?]$/.test(e.message) ? '' : '.');
    return `Something went wrong (${e.status}). Please try again.`;
  }
  return 'Something went wrong. Please try again.';
}

async function call(method, path, body, { key, auth = true, retried = false, raw = false } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth && access) headers.authorization = `Bearer ${access}`;
  if (key) headers['idempotency-key'] = key;
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Failure(0, 'network', '');
  }
  if (r.status === 401 && auth && !retried && (await refresh())) {
    return call(method, path, body, { key, auth, retried: true, raw });
  }
  if (!r.ok) {
    let err = {};
    try { err = (await r.json()).error || {}; } catch (e) { /* not JSON */ }
    throw new Failure(r.status, err.code || 'http', err.message || '');
  }
  if (raw) return r.text();
  return r.status === 204 ? null : r.json();
}

function keep(tokens) {
  access = tokens.accessToken;
  localStorage.setItem(REFRESH_KEY, tokens.refreshToken);
}

// Spend the refresh token for new tokens (each refresh token works once).
async function refresh() {
  const token = localStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  try {
    keep(await call('POST', '/v1/sessions/refresh', { refreshToken: token }, { auth: false }));
    return true;
  } catch (e) {
    if (e instanceof Failure && e.code !== 'network') forget();
    return false;
  }
}

function forget() {
  access = null;
  localStorage.removeItem(REFRESH_KEY);
}

const signedIn = () => !!access;

// ---------------------------------------------------------------------------------------------
// Building the page

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function show(title, ...content) {
  const view = document.getElementById('view');
  view.replaceChildren(h('h1', { text: title }), ...content.filter((c) => c !== null && c !== undefined));
  document.title = `${title} · parkflow`;
  view.focus();
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
}

function toast(message, ok = false) {
  const t = document.getElementById('toast');
  t.textContent = message;
  t.className = ok ? 'ok' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

const money = (cents, currency) => {
  try { return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100); }
  catch (e) { return `${(cents / 100).toFixed(2)} ${currency}`; }
};
const when = (t) => new Date(t).toLocaleString(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
const field = (label, input) => [h('label', { for: input.id, text: label }), input];

async function guarded(button, work) {
  button.disabled = true;
  try { await work(); } catch (e) { toast(words(e)); } finally { button.disabled = false; }
}

// ---------------------------------------------------------------------------------------------
// Screens

function signInScreen(mode = 'signin') {
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'email', required: true });
  const password = h('input', {
    id: 'password', type: 'password', required: true, minlength: 8,
    autocomplete: mode === 'signin' ? 'current-password' : 'new-password',
  });
  const submit = h('button', { type: 'submit', text: mode === 'signin' ? 'Sign in' : 'Create account' });
  const form = h('form', {
    class: 'card',
    onsubmit: (ev) => {
      ev.preventDefault();
      guarded(submit, async () => {
        const creds = { email: email.value.trim(), password: password.value };
        if (mode === 'register') await call('POST', '/v1/accounts', creds, { auth: false });
        keep(await call('POST', '/v1/sessions', creds, { auth: false }));
        location.hash = '#/lots';
        route();
      });
    },
  }, field('E-mail', email), field('Password', password), submit);
  const other = mode === 'signin'
    ? h('p', {}, 'New here? ', h('a', { href: '#/register', text: 'Create an account' }))
    : h('p', {}, 'Have an account? ', h('a', { href: '#/signin', text: 'Sign in' }));
  show(mode === 'signin' ? 'Sign in' : 'Create your account', form, other);
}

let live = null; // the open stream of the lots on screen
function closeLive() { if (live) { live.close(); live = null; } }

function position() {
  return new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (p) => resolve(`${p.coords.latitude.toFixed(6)},${p.coords.longitude.toFixed(6)}`),
      () => resolve(null),
      { timeout: 5000, maximumAge: 60000 },
    );
  });
}

async function lotsScreen() {
  show('Lots near you', h('p', { class: 'muted', text: 'Finding lots…' }));
  const near = await position();
  const { lots } = await call('GET', near ? `/v1/lots?near=${near}` : '/v1/lots');
  const cards = lots.map((l) => h('li', { class: 'card', 'data-lot': l.id },
    h('div', { class: 'row' },
      h('h2', { text: l.name }),
      h('span', { class: 'free', 'aria-live': 'polite', text: `${l.freeSpots} free` })),
    h('p', { class: 'muted' },
      `${money(l.currentCentsPerHour, l.currency)} an hour now`,
      l.distanceM !== undefined ? ` · ${(l.distanceM / 1000).toFixed(1)} km away` : ''),
    h('a', { href: `#/lot/${l.id}`, text: `Reserve at ${l.name}` })));
  show('Lots near you',
    h('p', { class: 'muted', text: near ? 'Nearest first. Free spots update live.' : 'Free spots update live.' }),
    h('ul', { class: 'plain', id: 'lots' }, cards));
  closeLive();
  if (lots.length && window.EventSource) {
    live = new EventSource(`/v1/live?lots=${lots.map((l) => l.id).join(',')}`);
    live.addEventListener('lot', (ev) => {
      const s = JSON.parse(ev.data);
      const free = document.querySelector(`li[data-lot="${s.lotId}"] .free`);
      if (!free) return;
      const n = s.freeFor ? s.freeFor.car : s.freeSpots;
      free.textContent = `${n} free`;
      free.classList.toggle('none', n === 0);
    });
  }
}

function nextQuarter(minutesAhead) {
  const d = new Date(Date.now() + minutesAhead * 60000);
  d.setMinutes(Math.ceil(d.getMinutes() / 15) * 15, 0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const KINDS = { car: 'Car', ev: 'Electric car', motorcycle: 'Motorcycle', van: 'Van' };

async function lotScreen(id) {
  const [lot, { vehicles }] = await Promise.all([call('GET', `/v1/lots/${id}`), call('GET', '/v1/vehicles')]);
  const start = h('input', { id: 'start', type: 'datetime-local', value: nextQuarter(45), required: true });
  const hours = h('select', { id: 'hours' }, [1, 2, 3, 4, 6, 8].map((n) => h('option', { value: n, text: `${n} h` })));
  hours.value = '2';
  // The driver's saved vehicles first (the gate also knows them by plate), then any type.
  const vehicle = h('select', { id: 'vehicle' },
    vehicles.map((v) => h('option', { value: `id:${v.id}`, text: `${v.plate} (${KINDS[v.vehicleType]})` })),
    Object.entries(KINDS).map(([v, name]) => h('option', { value: `type:${v}`, text: `A ${name.toLowerCase()}` })));
  const reserve = h('button', { type: 'submit', text: 'Reserve' });
  const result = h('div', { id: 'result' });
  const price = h('div', { id: 'price', 'aria-live': 'polite' });
  const chance = h('p', { id: 'chance', class: 'muted', 'aria-live': 'polite' });
  const window_ = () => {
    const startAt = new Date(start.value);
    return [startAt, new Date(startAt.getTime() + Number(hours.value) * 3600000)];
  };
  const kindOf = () => {
    const [how, what] = vehicle.value.split(/:(.*)/s);
    return how === 'id' ? (vehicles.find((v) => v.id === what) || {}).vehicleType : what;
  };
  // The price before booking, and what it is made of: the same tariff the booking uses.
  const preview = async () => {
    const [startAt, endAt] = window_();
    if (Number.isNaN(startAt.getTime())) return;
    const asked = `${startAt.toISOString()}/${endAt.toISOString()}/${kindOf()}`;
    const current = () => { const [s2, e2] = window_(); return `${s2.toISOString()}/${e2.toISOString()}/${kindOf()}` === asked; };
    try {
      const q = await call('GET', `/v1/lots/${id}/quote?start-at=${encodeURIComponent(startAt.toISOString())}&end-at=${encodeURIComponent(endAt.toISOString())}&vehicle-type=${kindOf()}`);
      if (!current()) return; // the form changed meanwhile: a newer preview follows
      price.dataset.for = asked;
      const span = (m) => (m >= 60 ? `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}` : `${m} min`);
      price.replaceChildren(h('div', { class: 'card' },
        h('p', { class: 'total' }, 'Price: ', h('strong', { text: money(q.quoteCents, q.currency) })),
        h('ul', {}, q.parts.map((p) => h('li', {},
          h('span', { text: `${span(p.minutes)} of ${p.dayKind} ${p.band} at ${money(p.centsPerHour, q.currency)} an hour` }),
          // Why pricing set that rate, in a sentence.
          p.explanation ? h('p', { class: 'muted why', text: p.explanation }) : null))),
        q.dailyCapCents ? h('p', { class: 'muted', text: `At most ${money(q.dailyCapCents, q.currency)} a day.` }) : null));
    } catch (e) {
      if (current()) price.replaceChildren(h('p', { class: 'muted', text: words(e) }));
    }
    // The chance of a free spot on arrival then, from the lot's forecast (none beyond it).
    try {
      const a = await call('GET', `/v1/lots/${id}/arrival?at=${encodeURIComponent(startAt.toISOString())}&vehicle-type=${kindOf()}`, undefined, { auth: false });
      if (!current()) return;
      chance.dataset.for = asked;
      chance.textContent = `${Math.round(a.freeChance * 100)} % chance of a free spot if you just drive up then (about ${Math.round(a.forecastOccupancy)} of ${a.capacity} spots taken, as forecast).`
        + (a.reservableSpots > 0 ? ' Reserve to be sure.' : '');
    } catch (e) {
      if (current()) { chance.dataset.for = asked; chance.textContent = ''; }
    }
  };
  for (const input of [start, hours, vehicle]) input.addEventListener('change', preview);
  const form = h('form', {
    class: 'card',
    onsubmit: (ev) => {
      ev.preventDefault();
      guarded(reserve, async () => {
        const [startAt, endAt] = window_();
        const [how, what] = vehicle.value.split(/:(.*)/s);
        const body = { lotId: Number(id), startAt: startAt.toISOString(), endAt: endAt.toISOString() };
        if (how === 'id') body.vehicleId = what; else body.vehicleType = what;
        try {
          const r = await call('POST', '/v1/reservations', body, { key: crypto.randomUUID() });
          result.replaceChildren(payCard(r));
        } catch (e) {
          if (e.code !== 'no_spot_available') throw e;
          const saved = vehicles.find((v) => v.id === body.vehicleId);
          result.replaceChildren(waitlistCard(body, words(e), saved ? saved.vehicleType : body.vehicleType));
        }
      });
    },
  }, field('From', start), field('For', hours), field('Vehicle', vehicle), reserve);
  show(lot.name,
    h('p', { class: 'muted' }, `${lot.freeSpots} of ${lot.capacity} spots free now · ${money(lot.currentCentsPerHour, lot.currency)} an hour now`),
    form, chance, price, result, await passOffers(id, vehicles).catch(() => null));
  preview();
}

// The lot's monthly passes, each bought for one of the driver's saved vehicles it covers.
async function passOffers(lotId, vehicles) {
  const { items } = await call('GET', `/v1/lots/${lotId}/pass-products`, undefined, { auth: false });
  if (!items.length) return null;
  return h('div', { class: 'card', id: 'pass-offers' }, h('h2', { text: 'Monthly passes' }),
    items.map((p) => {
      const fits = vehicles.filter((v) => p.vehicleTypes.includes(v.vehicleType));
      const pick = h('select', { class: 'pass-vehicle', 'aria-label': `Vehicle for ${p.name}` },
        fits.map((v) => h('option', { value: v.id, text: v.plate })));
      const buy = h('button', { type: 'button', class: 'buy-pass', text: `Buy for ${money(p.priceCents, p.currency)} a month` });
      const key = crypto.randomUUID();
      buy.addEventListener('click', () => guarded(buy, async () => {
        const card = { method: 'card', token: 'tok_ok', last4: '4242' };
        const pass = await call('POST', '/v1/me/monthly-passes', { productId: p.id, vehicleId: pick.value, payment: card }, { key });
        toast(`Your ${pass.name} pass is active until ${when(pass.periodEnd)}.`, true);
        location.hash = '#/me';
      }));
      const terms = `${p.rights}, ${p.keepsSpot ? 'a spot kept for you' : 'any free spot'} · ${p.available} left`;
      return h('div', { class: 'offer', 'data-product': p.id },
        h('p', {}, h('strong', { text: p.name }), ' ', h('span', { text: terms })),
        fits.length && p.available > 0 ? [h('label', {}, 'Vehicle ', pick), buy]
          : h('p', { class: 'muted', text: p.available > 0 ? 'Save a vehicle it covers under Me to buy it.' : 'Sold out.' }));
    }));
}

// A monthly pass's gate code, as a QR code (the plate opens the gate too).
async function monthlyPassScreen(id) {
  const pass = await call('GET', `/v1/me/monthly-passes/${id}`);
  const svg = await call('GET', `/v1/me/monthly-passes/${id}/qr`, undefined, { raw: true });
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  show(pass.name,
    h('div', { class: 'card pass' },
      h('img', { id: 'qr', src: url, alt: 'QR code of your monthly pass: hold it to the scanner at the entrance', width: 320, height: 320 }),
      h('p', { class: 'window', text: `${pass.plate} · ${pass.rights} free · until ${when(pass.periodEnd)}` }),
      h('p', { class: 'muted', text: 'Your plate opens the gate too.' })));
}

// The driver's monthly passes, with the code of an active one and the cancellation.
function monthlyPassesCard(passes) {
  return h('div', { class: 'card', id: 'monthly-passes' }, h('h2', { text: 'My monthly passes' }),
    passes.length ? h('ul', {}, passes.map((p) => {
      const until = p.status !== 'active' ? '' : p.renews ? `, renews ${when(p.periodEnd)}` : `, ends ${when(p.periodEnd)}`;
      const spot = p.spotLabel ? ` · spot ${p.spotLabel}` : '';
      const li = h('li', { 'data-pass': p.id }, h('p', { text: `${p.name} · ${p.plate} · ${p.rights} · ${p.status}${until}${spot}` }));
      if (p.status === 'active') {
        li.append(h('a', { href: `#/monthly/${p.id}`, text: 'Show code' }));
        if (p.renews) {
          const stop = h('button', { type: 'button', class: 'secondary stop-renewal', text: 'Stop renewing' });
          stop.addEventListener('click', () => guarded(stop, async () => {
            const ended = await call('DELETE', `/v1/me/monthly-passes/${p.id}`);
            toast(`It ends on ${when(ended.periodEnd)} and will not renew.`, true);
            meScreen();
          }));
          li.append(stop);
        }
      }
      return li;
    })) : h('p', { class: 'muted', text: 'None. Lots that sell them list them on their page.' }));
}

function waitlistCard(body, why, vehicleType) {
  const join = h('button', { type: 'button', class: 'secondary', text: 'Join the waitlist' });
  join.addEventListener('click', () => guarded(join, async () => {
    await call('POST', '/v1/waitlist', { lotId: body.lotId, startAt: body.startAt, endAt: body.endAt, vehicleType, autoBook: true });
    toast('You are on the waitlist: we book the first spot that frees up and tell you.', true);
  }));
  return h('div', { class: 'card' }, h('p', { text: why }), join);
}

function payCard(r) {
  const method = h('select', { id: 'method' },
    h('option', { value: 'card', text: 'Card ending 4242' }),
    h('option', { value: 'wallet', text: 'Wallet' }),
    h('option', { value: 'balance', text: 'Prepaid balance' }));
  const pay = h('button', { type: 'button', text: `Pay ${money(r.quoteCents, r.currency)}` });
  const key = crypto.randomUUID();
  pay.addEventListener('click', () => guarded(pay, async () => {
    const m = method.value === 'card' ? { method: 'card', token: 'tok_ok', last4: '4242' }
      : method.value === 'wallet' ? { method: 'wallet', token: 'wal_ok' } : { method: 'balance' };
    await call('POST', `/v1/reservations/${r.id}/payments`, m, { key });
    toast('Paid. Your pass is ready.', true);
    location.hash = `#/pass/${r.id}`;
  }));
  return h('div', { class: 'card', id: 'quote' },
    h('h2', { text: `Spot ${r.spotLabel} is yours` }),
    h('p', {}, `${when(r.startAt)} – ${when(r.endAt)}`),
    h('p', { class: 'quote' }, 'Price: ', h('strong', { text: money(r.quoteCents, r.currency) }), ' at the rates in force for those hours'),
    field('Pay with', method), pay);
}

async function passScreen(id) {
  let kept = JSON.parse(localStorage.getItem(PASS_KEY(id)) || 'null');
  try {
    const pass = await call('GET', `/v1/reservations/${id}/pass`);
    const svg = await call('GET', `/v1/reservations/${id}/pass/qr`, undefined, { raw: true });
    kept = { svg, entryFrom: pass.entryFrom, entryUntil: pass.entryUntil, pass: pass.pass };
    localStorage.setItem(PASS_KEY(id), JSON.stringify(kept));
  } catch (e) {
    if (!kept) throw e;
    if (e.code !== 'network') { localStorage.removeItem(PASS_KEY(id)); throw e; }
  }
  const url = URL.createObjectURL(new Blob([kept.svg], { type: 'image/svg+xml' }));
  show('Your pass',
    h('div', { class: 'card pass' },
      h('img', { id: 'qr', src: url, alt: 'QR code of your gate pass: hold it to the scanner at the entrance', width: 320, height: 320 }),
      h('p', { class: 'window' }, `Enter between ${when(kept.entryFrom)} and ${when(kept.entryUntil)}`),
      h('p', { class: 'muted', text: 'Turn your screen brightness up. The pass works without a signal once opened here.' })));
}

async function reservationsScreen() {
  const page = await call('GET', '/v1/reservations?perPage=50');
  const items = page.items.map((r) => {
    const actions = [];
    if (r.status === 'active') {
      actions.push(h('a', { href: `#/pass/${r.id}`, text: 'Show pass' }));
      const cancel = h('button', { type: 'button', class: 'danger', text: 'Cancel booking' });
      cancel.addEventListener('click', () => guarded(cancel, async () => {
        const back = await call('GET', `/v1/reservations/${r.id}/refund`);
        const terms = back.paidCents === 0 ? 'Nothing was paid for it.'
          : back.refundCents > 0 ? `You get ${money(back.refundCents, back.currency)} back (${back.percent}% under the cancellation policy).`
            : 'It starts too soon for a refund under the cancellation policy.';
        if (!window.confirm(`Cancel this booking? ${terms}`)) return;
        const c = await call('POST', `/v1/reservations/${r.id}/cancel`);
        localStorage.removeItem(PASS_KEY(r.id));
        toast(c.refundedCents > 0
          ? `Cancelled. ${money(c.refundedCents, c.currency)} is refunded to how you paid.`
          : 'Cancelled. No refund under the cancellation policy.', true);
        reservationsScreen();
      }));
      actions.push(changeForm(r), extendButton(r), cancel);
    } else if (r.status === 'checked_in') {
      actions.push(extendButton(r));
    }
    return h('li', { class: 'card', 'data-reservation': r.id },
      h('h2', { text: `Spot ${r.spotLabel} · lot ${r.lotId}` }),
      h('p', {}, `${when(r.startAt)} – ${when(r.endAt)}`),
      h('p', { class: 'muted' }, `${r.status.replace('_', ' ')} · ${money(r.quoteCents, r.currency)}`),
      actions);
  });
  show('Your bookings', items.length ? h('ul', { class: 'plain' }, items) : h('p', { text: 'No bookings yet.' }));
}

// Extend a booking, or the stay in progress, by an hour: the price of the extra hour and how
// it is paid first; before the car is in, another spot when the booked one is taken then.
function extendButton(r) {
  const extend = h('button', { type: 'button', class: 'secondary extend', text: 'Extend by 1 hour' });
  extend.addEventListener('click', () => guarded(extend, async () => {
    const endAt = new Date(new Date(r.endAt).getTime() + 3600000).toISOString();
    const p = await call('GET', `/v1/reservations/${r.id}/extension?end-at=${encodeURIComponent(endAt)}`);
    const paid = p.settlement === 'at_exit' ? 'added to what you pay at the exit' : 'paid with the booking';
    let body = { endAt };
    if (!p.spotStaysFree) {
      const other = p.alternatives[0];
      if (!other) { toast('Your spot is booked by someone else right after, and no other spot is free for the longer time.'); return; }
      if (!window.confirm(`Your spot is booked right after. Move to spot ${other.label} and stay until ${when(endAt)} for ${money(p.extraCents, p.currency)} more (${paid})?`)) return;
      body = { endAt, spotId: other.spotId };
    } else if (!window.confirm(`Stay until ${when(endAt)} for ${money(p.extraCents, p.currency)} more (${paid})?`)) {
      return;
    }
    const done = await call('POST', `/v1/reservations/${r.id}/extension`, body, { key: crypto.randomUUID() });
    localStorage.removeItem(PASS_KEY(r.id));
    toast(`Extended until ${when(done.reservation.endAt)}, spot ${done.reservation.spotLabel}: ${money(done.extraCents, done.reservation.currency)} more.`, true);
    reservationsScreen();
  }));
  return extend;
}

// Move a booking to another window before it starts (the same spot if it is free then, else
// another of the lot; never a double booking).
function changeForm(r) {
  const n = r.id.slice(0, 8);
  const start = h('input', { id: `start-${n}`, type: 'datetime-local', required: true });
  const d = new Date(r.startAt);
  const p2 = (x) => String(x).padStart(2, '0');
  start.value = `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}`;
  const hours = h('select', { id: `hours-${n}` }, [1, 2, 3, 4, 6, 8].map((x) => h('option', { value: x, text: `${x} h` })));
  hours.value = String(Math.max(1, Math.round((new Date(r.endAt) - d) / 3600000)));
  const save = h('button', { type: 'submit', class: 'secondary', text: 'Change time' });
  return h('details', {}, h('summary', { text: 'Change time' }), h('form', {
    onsubmit: (ev) => {
      ev.preventDefault();
      guarded(save, async () => {
        const startAt = new Date(start.value);
        const endAt = new Date(startAt.getTime() + Number(hours.value) * 3600000);
        const moved = await call('PATCH', `/v1/reservations/${r.id}`, { startAt: startAt.toISOString(), endAt: endAt.toISOString() });
        localStorage.removeItem(PASS_KEY(r.id));
        toast(`Moved: spot ${moved.spotLabel}, ${when(moved.startAt)}, ${money(moved.quoteCents, moved.currency)}.`, true);
        reservationsScreen();
      });
    },
  }, field('New start', start), field('For', hours), save));
}

// Read a Server-Sent Events stream that needs the driver's token (an `EventSource` cannot send
// one): `onEvent(id, data)` per event; reconnects after a dropped connection, from the last id.
async function follow(path, lastId, onEvent, signal) {
  while (!signal.aborted) {
    try {
      const headers = { accept: 'text/event-stream', authorization: `Bearer ${access}` };
      if (lastId) headers['last-event-id'] = String(lastId);
      const r = await fetch(path, { headers, signal });
      if (r.status === 401 && !(await refresh())) return;
      if (!r.ok || !r.body) throw new Error(String(r.status));
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let id = null; let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) id = line.slice(3).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) { lastId = id || lastId; onEvent(id, JSON.parse(data)); }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

let inboxFollow = null;
function stopInbox() { if (inboxFollow) { inboxFollow.abort(); inboxFollow = null; } }

function messageCard(n) {
  return h('li', { class: 'card', 'data-message': n.id },
    h('h2', { text: n.title || n.kind }),
    h('p', { text: n.body }),
    h('p', { class: 'muted', text: when(n.createdAt) }));
}

// The inbox: the latest messages, then each new one as it is written (pushed, no polling).
async function inboxScreen() {
  const { items } = await call('GET', '/v1/notifications?limit=50');
  const list = h('ul', { class: 'plain', id: 'inbox', 'aria-live': 'polite' }, items.map(messageCard));
  const empty = h('p', { text: 'No messages yet.', hidden: items.length > 0 });
  show('Inbox', empty, list);
  stopInbox();
  inboxFollow = new AbortController();
  const newest = items.length ? Math.max(...items.map((n) => n.id)) : 0;
  follow('/v1/notifications/live', newest, (id, n) => {
    if (document.querySelector(`li[data-message="${n.id}"]`)) return;
    empty.hidden = true;
    list.prepend(messageCard(n));
  }, inboxFollow.signal);
}

async function meScreen() {
  const [{ vehicles }, { workplace }, { items: passes }] = await Promise.all([
    call('GET', '/v1/vehicles'), call('GET', '/v1/me/workplace'), call('GET', '/v1/me/monthly-passes')]);
  // My vehicles: booked by choosing one, recognised at the gate by plate.
  const plate = h('input', { id: 'plate', required: true, autocomplete: 'off', maxlength: 24 });
  const region = h('input', { id: 'region', required: true, value: 'D', maxlength: 8 });
  const kind = h('select', { id: 'kind' }, Object.entries(KINDS).map(([v, name]) => h('option', { value: v, text: name })));
  const add = h('button', { type: 'submit', class: 'secondary', text: 'Add vehicle' });
  const cars = h('form', {
    class: 'card',
    id: 'vehicles',
    onsubmit: (ev) => {
      ev.preventDefault();
      guarded(add, async () => {
        const v = await call('POST', '/v1/vehicles', { plate: plate.value, region: region.value.trim(), vehicleType: kind.value });
        toast(`${v.plate} is saved.`, true);
        meScreen();
      });
    },
  }, h('h2', { text: 'My vehicles' }),
  vehicles.length ? h('ul', {}, vehicles.map((v) => h('li', { text: `${v.plate} (${v.region}) — ${KINDS[v.vehicleType]}` }))) : h('p', { class: 'muted', text: 'None saved yet.' }),
  field('Plate', plate), field('Region', region), field('Type', kind), add);
  // My workplace: lots near it come first when the phone does not say where it is.
  const here = h('button', { type: 'button', class: 'secondary', text: 'Use where I am now as my workplace' });
  here.addEventListener('click', () => guarded(here, async () => {
    const p = await position();
    if (!p) { toast('Your browser did not tell where you are.'); return; }
    const [latitude, longitude] = p.split(',').map(Number);
    await call('PUT', '/v1/me/workplace', { latitude, longitude });
    toast('Workplace saved: lots near it come first.', true);
    meScreen();
  }));
  const work = h('div', { class: 'card', id: 'workplace' }, h('h2', { text: 'My workplace' }),
    h('p', { class: 'muted', text: workplace ? `Saved at ${workplace.latitude.toFixed(4)}, ${workplace.longitude.toFixed(4)}.` : 'Not saved.' }), here);
  const exportData = h('button', { type: 'button', class: 'secondary', text: 'Download my data' });
  exportData.addEventListener('click', () => guarded(exportData, async () => {
    const data = await call('GET', '/v1/me/export');
    const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: 'parkflow-my-data.json' });
    a.click();
  }));
  const out = h('button', { type: 'button', class: 'secondary', text: 'Sign out' });
  out.addEventListener('click', () => guarded(out, async () => {
    const token = localStorage.getItem(REFRESH_KEY);
    if (token) await call('POST', '/v1/sessions/revoke', { refreshToken: token }, { auth: false }).catch(() => {});
    forget();
    location.hash = '#/signin';
  }));
  const erase = h('button', { type: 'button', class: 'danger', text: 'Delete my account' });
  erase.addEventListener('click', () => guarded(erase, async () => {
    if (!confirm('Delete your account? Upcoming bookings are cancelled and your balance paid back.')) return;
    await call('DELETE', '/v1/me');
    forget();
    localStorage.clear();
    toast('Your account is deleted.', true);
    location.hash = '#/signin';
  }));
  show('Me', cars, monthlyPassesCard(passes), work, h('div', { class: 'card' }, exportData, out, erase));
}

// ---------------------------------------------------------------------------------------------
// Routing

async function route() {
  const hash = location.hash || '#/lots';
  const [, screen, id] = hash.split('/');
  // Opened without a signal, the session could not be renewed then: try again now.
  if (!signedIn() && localStorage.getItem(REFRESH_KEY)) await refresh();
  document.getElementById('nav').hidden = !signedIn();
  if (screen !== 'lots') closeLive();
  if (screen !== 'inbox') stopInbox();
  if (!signedIn() && !['signin', 'register'].includes(screen)) {
    // The pass kept on the phone opens without a session (and without a signal).
    if (screen === 'pass' && localStorage.getItem(PASS_KEY(id))) return passScreen(id).catch((e) => toast(words(e)));
    return signInScreen();
  }
  try {
    switch (screen) {
      case 'signin': return signInScreen('signin');
      case 'register': return signInScreen('register');
      case 'lot': return await lotScreen(id);
      case 'pass': return await passScreen(id);
      case 'monthly': return await monthlyPassScreen(id);
      case 'reservations': return await reservationsScreen();
      case 'inbox': return await inboxScreen();
      case 'me': return await meScreen();
      default: return await lotsScreen();
    }
  } catch (e) {
    show('Something went wrong', h('p', { text: words(e) }), h('a', { href: '#/lots', text: 'Back to the lots' }));
  }
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', async () => {
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
  await refresh();
  route();
});
