// The drivers' app in headless Chromium at a phone's size, as a new driver uses it: sign up,
// find the lot (nearest first, from the browser's position), reserve a window, pay, open the
// pass. The pass's QR code is read back from a screenshot (jsQR) and scanned at the gate page,
// which opens. Meanwhile a second browser context watches the lot's free count drop, pushed
// live. Every screen is checked with axe-core. Prints what it saw as JSON.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { env, expect } from './browser.mjs';

const require = createRequire(import.meta.url);
const base = env('APP_URL');
const lot = env('LOT');
const gateToken = env('GATE_TOKEN');
const shots = process.env.SCREENSHOT_DIR;
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const jsqrSource = readFileSync(require.resolve('jsqr/dist/jsQR.js'), 'utf8');
const phone = {
  viewport: { width: 390, height: 844 },
  isMobile: true,
  hasTouch: true,
  geolocation: { latitude: Number(env('LATITUDE')), longitude: Number(env('LONGITUDE')) },
  permissions: ['geolocation'],
};

// Serious and critical accessibility violations of the page as it is now (axe runs through
// the DevTools protocol, which the page's script policy does not govern).
async function audit(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  return bad.map((v) => `${name}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

async function signUp(page, email) {
  await page.goto(`${base}/#/register`);
  await page.fill('#email', email);
  await page.fill('#password', 'correct horse battery');
  await page.click('button[type=submit]');
  await page.waitForSelector(`li[data-lot="${lot}"]`);
}

// A local datetime-local value `minutes` from now.
const localInput = (minutes) => {
  const d = new Date(Date.now() + minutes * 60000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { violations: [] };
try {
  const driver = await (await browser.newContext(phone)).newPage();
  const watcher = await (await browser.newContext(phone)).newPage();
  driver.setDefaultTimeout(15000);
  watcher.setDefaultTimeout(15000);
  const texts = [];
  driver.on('pageerror', (e) => texts.push(`page error: ${e.message}`));

  await driver.goto(`${base}/#/register`);
  await driver.waitForSelector('#email');
  out.violations.push(...(await audit(driver, 'app-register')));
  await signUp(driver, env('DRIVER_EMAIL'));
  out.violations.push(...(await audit(driver, 'app-lots')));
  // Installable: the manifest is linked and the service worker that keeps the app's files is
  // running (the offline reload below is served by it).
  out.installable = await driver.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    const manifest = await (await fetch(document.querySelector('link[rel=manifest]').href)).json();
    return { worker: !!reg.active, display: manifest.display, start: manifest.start_url };
  });
  out.firstLot = await driver.getAttribute('#lots li:first-child', 'data-lot');
  out.distance = await driver.textContent(`li[data-lot="${lot}"] p.muted`);

  await signUp(watcher, env('WATCHER_EMAIL'));
  const freeText = () => watcher.textContent(`li[data-lot="${lot}"] .free`);
  out.freeBefore = await freeText();

  // Reserve from ten minutes from now for an hour, a car.
  await driver.click(`li[data-lot="${lot}"] a`);
  await driver.waitForSelector('#start');
  out.violations.push(...(await audit(driver, 'app-lot')));
  await driver.fill('#start', localInput(10));
  await driver.selectOption('#hours', '1');
  // The price before booking, with what it is made of.
  await driver.waitForFunction(() => {
    const s = new Date(document.querySelector('#start').value);
    const e = new Date(s.getTime() + Number(document.querySelector('#hours').value) * 3600000);
    return document.querySelector('#price').dataset.for === `${s.toISOString()}/${e.toISOString()}/car`;
  });
  // The chance of a free spot on arrival, from the lot's published forecast.
  await driver.waitForFunction(() => {
    const s = new Date(document.querySelector('#start').value);
    const e = new Date(s.getTime() + Number(document.querySelector('#hours').value) * 3600000);
    return document.querySelector('#chance').dataset.for === `${s.toISOString()}/${e.toISOString()}/car`;
  });
  out.chance = await driver.textContent('#chance');
  out.preview = await driver.textContent('#price .total strong');
  out.previewParts = await driver.locator('#price li').allTextContents();
  await driver.click('form button[type=submit]');
  await driver.waitForSelector('#quote');
  const booked = Date.now();
  out.quote = await driver.textContent('#quote .quote');
  // The watcher's count drops, pushed (no reload, no polling).
  await watcher.waitForFunction(
    ([l, before]) => document.querySelector(`li[data-lot="${l}"] .free`).textContent !== before,
    [lot, out.freeBefore],
    { timeout: 5000 },
  );
  out.watcherMs = Date.now() - booked;
  out.freeAfter = await freeText();
  out.violations.push(...(await audit(driver, 'app-quote')));

  await driver.selectOption('#method', 'card');
  await driver.click('#quote button');
  await driver.waitForSelector('#qr');
  await driver.waitForFunction(() => document.querySelector('#qr').complete && document.querySelector('#qr').naturalWidth > 0);
  out.window = await driver.textContent('.pass .window');
  out.violations.push(...(await audit(driver, 'app-pass')));

  // Read the QR code back from a screenshot of the pass, as a gate's camera would.
  const png = await driver.locator('#qr').screenshot();
  const reader = await (await browser.newContext()).newPage();
  await reader.setContent(`<img id="shot" src="data:image/png;base64,${png.toString('base64')}">`);
  await reader.waitForFunction(() => document.querySelector('#shot').complete);
  await reader.evaluate(jsqrSource.replace(/^/, 'var module = undefined, exports = undefined;\n'));
  out.decoded = await reader.evaluate(() => {
    const img = document.querySelector('#shot');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const data = g.getImageData(0, 0, c.width, c.height);
    const code = window.jsQR(data.data, c.width, c.height);
    return code ? code.data : null;
  });
  expect(out.decoded, 'the QR code on the screen could not be read');

  // The pass stays on the phone: offline, the pass screen still shows it.
  await driver.context().setOffline(true);
  await driver.reload();
  await driver.waitForSelector('#qr');
  out.offlineWindow = await driver.textContent('.pass .window');
  await driver.context().setOffline(false);

  // The gate page reads the decoded pass and opens.
  const gate = await (await browser.newContext(phone)).newPage();
  await gate.goto(`${base}/gate`);
  await gate.fill('#lot', lot);
  await gate.selectOption('#way', 'entries');
  await gate.fill('#token', gateToken);
  await gate.click('#setup button[type=submit]');
  await gate.fill('#pass', out.decoded);
  await gate.press('#pass', 'Enter');
  await gate.waitForSelector('#verdict.open, #verdict.refused');
  out.gate = { verdict: await gate.getAttribute('#verdict', 'class'), why: await gate.textContent('#verdict .why') };
  if (shots) await gate.screenshot({ path: `${shots}/gate.png` });

  // The driver's bookings, inbox and data.
  await driver.goto(`${base}/#/reservations`);
  await driver.waitForSelector('li[data-reservation]');
  out.status = await driver.textContent('li[data-reservation] p.muted');

  // The driver saves their car and their workplace.
  await driver.goto(`${base}/#/me`);
  await driver.waitForSelector('#vehicles');
  await driver.fill('#plate', 'b-pf 25');
  await driver.fill('#region', 'B');
  await driver.selectOption('#kind', 'car');
  await driver.click('#vehicles button[type=submit]');
  await driver.waitForSelector('#vehicles li');
  out.vehicles = await driver.locator('#vehicles li').allTextContents();
  await driver.click('#workplace button');
  await driver.waitForFunction(() => document.querySelector('#workplace p').textContent.startsWith('Saved at'));
  out.workplace = await driver.textContent('#workplace p');
  out.violations.push(...(await audit(driver, 'app-me-saved')));

  // A second booking two days ahead with the saved car, paid, then cancelled: the app says
  // what came back.
  await driver.goto(`${base}/#/lot/${lot}`);
  await driver.waitForSelector('#start');
  await driver.selectOption('#vehicle', { label: 'BPF25 (Car)' });
  await driver.fill('#start', localInput(2 * 24 * 60));
  await driver.selectOption('#hours', '2');
  await driver.click('form button[type=submit]');
  await driver.waitForSelector('#quote');
  out.secondQuote = await driver.textContent('#quote .quote strong');
  await driver.selectOption('#method', 'wallet');
  await driver.click('#quote button');
  await driver.waitForSelector('#qr');
  await driver.goto(`${base}/#/reservations`);
  await driver.waitForSelector('li[data-reservation] button.danger');
  // Moved an hour later first (before it starts), then cancelled.
  const booking = driver.locator('li[data-reservation]', { has: driver.locator('button.danger') });
  await booking.locator('summary').click();
  await booking.locator('input[type=datetime-local]').fill(localInput(2 * 24 * 60 + 60));
  await booking.locator('button[type=submit]').click();
  await driver.waitForFunction(() => document.querySelector('#toast').textContent.startsWith('Moved'));
  out.moved = await driver.textContent('#toast');
  // Extended by an hour: paid already, so the extra hour is due at the exit.
  await driver.waitForSelector('li[data-reservation] button.danger');
  driver.once('dialog', (d) => { out.extendConfirm = d.message(); d.accept(); });
  await booking.locator('button.extend').click();
  await driver.waitForFunction(() => document.querySelector('#toast').textContent.startsWith('Extended'));
  out.extended = await driver.textContent('#toast');
  await driver.waitForSelector('li[data-reservation] button.danger');
  driver.once('dialog', (d) => { out.confirm = d.message(); d.accept(); });
  await driver.click('li[data-reservation] button.danger');
  await driver.waitForFunction(() => document.querySelector('#toast').textContent.startsWith('Cancelled'));
  out.cancelled = await driver.textContent('#toast');
  await driver.waitForSelector('li[data-reservation]');
  out.violations.push(...(await audit(driver, 'app-bookings')));
  await driver.goto(`${base}/#/inbox`);
  await driver.waitForSelector('#inbox');
  out.inbox = await driver.locator('main li h2').allTextContents();
  // A message written while the inbox is open shows without a reload: the driver books from
  // another device (the API directly), and the confirmation appears.
  const login = await fetch(`${base}/v1/sessions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: env('DRIVER_EMAIL'), password: 'correct horse battery' }),
  });
  const { accessToken } = await login.json();
  const shown = await driver.locator('li[data-message]').count();
  const start = new Date(Date.now() + 3 * 24 * 3600 * 1000);
  start.setUTCMinutes(0, 0, 0);
  const sent = Date.now();
  const other = await fetch(`${base}/v1/reservations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}`, 'idempotency-key': 'other-device-1' },
    body: JSON.stringify({ lotId: Number(lot), startAt: start.toISOString(), endAt: new Date(start.getTime() + 3600000).toISOString(), vehicleType: 'car' }),
  });
  expect(other.status === 201, `booking from another device answered ${other.status}`);
  await driver.waitForFunction((n) => document.querySelectorAll('li[data-message]').length > n, shown, { timeout: 5000 });
  out.inboxPushMs = Date.now() - sent;
  out.inboxNewest = await driver.textContent('#inbox li:first-child h2');
  out.violations.push(...(await audit(driver, 'app-inbox')));

  // A monthly pass for the saved car, bought on the lot's page; its code shown; its renewal
  // stopped on the Me screen.
  await driver.goto(`${base}/#/lot/${lot}`);
  await driver.waitForSelector('#pass-offers .buy-pass');
  out.passOffer = await driver.textContent('#pass-offers .offer p');
  await driver.click('#pass-offers .buy-pass');
  await driver.waitForSelector('#monthly-passes li[data-pass]');
  out.passBought = await driver.textContent('#toast');
  out.monthlyPass = await driver.textContent('#monthly-passes li p');
  out.violations.push(...(await audit(driver, 'app-me-pass')));
  await driver.click('#monthly-passes a');
  await driver.waitForSelector('#qr');
  await driver.waitForFunction(() => document.querySelector('#qr').complete && document.querySelector('#qr').naturalWidth > 0);
  out.monthlyPassCode = await driver.textContent('.pass .window');
  await driver.goto(`${base}/#/me`);
  await driver.waitForSelector('#monthly-passes .stop-renewal');
  await driver.click('#monthly-passes .stop-renewal');
  await driver.waitForFunction(() => document.querySelector('#toast').textContent.startsWith('It ends on'));
  await driver.waitForFunction(() => !document.querySelector('#monthly-passes .stop-renewal'));
  out.passStopped = await driver.textContent('#monthly-passes li p');

  await driver.goto(`${base}/#/me`);
  await driver.waitForSelector('text=Sign out');
  out.violations.push(...(await audit(driver, 'app-me')));

  // Signing out revokes the session: the kept refresh token no longer works.
  const token = await driver.evaluate(() => localStorage.getItem('parkflow.refresh'));
  await driver.click('text=Sign out');
  await driver.waitForSelector('#email');
  const refresh = await fetch(`${base}/v1/sessions/refresh`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: token }),
  });
  out.refreshAfterSignOut = refresh.status;
  out.pageErrors = texts;
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`driver: ${e.stack || e}`);
  console.log(JSON.stringify(out));
  process.exitCode = 1;
} finally {
  await browser.close();
}
