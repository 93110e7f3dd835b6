// The admin portal in headless Chromium, signed in for real: run by tests/it/portal.rs, which
// starts the server, seeds it and checks the store afterwards. Settings come from the
// environment; what the browser saw is printed as one JSON line. Any failed expectation exits 1.
import { env, expect, inChromium } from './browser.mjs';

const base = env('PORTAL_URL');
const email = env('ADMIN_EMAIL');
const password = env('ADMIN_PASSWORD');
const liveLot = env('LIVE_LOT');
const shots = process.env.SCREENSHOT_DIR;

async function run(page) {
  const out = {};

  // Not signed in: the portal sends the browser to its sign-in page.
  await page.goto(`${base}/admin`);
  expect(page.url().startsWith(`${base}/admin/login`), `not sent to sign in: ${page.url()}`);

  // A wrong password is refused on the page.
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'not the password');
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
  await page.waitForSelector('.error');
  expect((await page.textContent('.error')).includes('wrong e-mail or password'), 'no error for a wrong password');

  // The real sign-in lands on the lots.
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click('button[type=submit]')]);
  expect((await page.textContent('#admin-email')) === email, 'signed in as someone else');

  // Live occupancy: a car enters at the gate; the open page shows it without a reload, pushed
  // by the live stream within two seconds (no polling).
  const occupied = page.locator(`tr[data-lot="${liveLot}"] .occupied`);
  const before = Number(await occupied.textContent());
  const entry = await fetch(`${base}/v1/gates/${liveLot}/entries`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env('GATE_TOKEN')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ vehicleType: 'car', method: 'qr' }),
  });
  expect(entry.status === 201, `gate entry answered ${entry.status}`);
  await page.waitForFunction(
    ([lot, n]) => Number(document.querySelector(`tr[data-lot="${lot}"] .occupied`).textContent) === n,
    [liveLot, before + 1],
    { timeout: 2000 },
  );
  out.live = { before, after: Number(await occupied.textContent()) };
  if (shots) await page.screenshot({ path: `${shots}/lots.png`, fullPage: true });

  // A new lot from the form.
  await Promise.all([page.waitForURL(`${base}/admin/lots/new`), page.click('text=New lot')]);
  await page.fill('input[name=name]', 'E2E Garage');
  await page.fill('input[name=time_zone]', 'Europe/Berlin');
  await page.fill('input[name=latitude]', '53.55');
  await page.fill('input[name=longitude]', '10.0');
  await page.fill('input[name=default_cents_per_hour]', '250');
  await page.fill('input[name=spots_car]', '3');
  await Promise.all([page.waitForURL(/\/admin\/lots\/\d+$/), page.click('text=Create lot')]);
  out.newLot = Number(page.url().split('/').pop());
  expect((await page.textContent('#lot-name')) === 'E2E Garage', 'the new lot page shows another name');
  expect((await page.textContent('#lot-capacity')) === '3', 'the new lot has not 3 open spots');

  // Close its first spot.
  await Promise.all([page.waitForLoadState('load'), page.locator('tr[data-spot="C-001"] button').click()]);
  await page.waitForFunction(() => document.querySelector('tr[data-spot="C-001"] .state').textContent === 'closed');
  out.capacityAfterClose = Number(await page.textContent('#lot-capacity'));
  if (shots) await page.screenshot({ path: `${shots}/lot.png`, fullPage: true });

  // The reservation search by the driver's e-mail.
  await Promise.all([page.waitForURL(`${base}/admin/reservations`), page.click('header >> text=Reservations')]);
  await page.fill('input[name=email]', env('DRIVER_EMAIL'));
  await Promise.all([page.waitForURL(/email=/), page.click('text=Search')]);
  out.searchHits = await page.locator('#results tr td:first-child').allTextContents();

  // Answer the driver's inquiry.
  await Promise.all([page.waitForURL(`${base}/admin/inquiries`), page.click('header >> text=Inquiries')]);
  const inquiry = page.locator('article.inquiry', { hasText: env('INQUIRY_SUBJECT') });
  await inquiry.locator('textarea[name=answer]').fill('Your receipt is in your e-mail.');
  await Promise.all([page.waitForLoadState('load'), inquiry.locator('button').click()]);
  await inquiry.locator('.answer').waitFor();
  out.answer = await inquiry.locator('.answer').textContent();

  // The audit log of what this admin did.
  await Promise.all([page.waitForURL(`${base}/admin/audit`), page.click('header >> text=Audit log')]);
  out.audit = await page.locator('#audit tr').evaluateAll((rows) =>
    rows.slice(1).map((r) => Array.from(r.cells).map((c) => c.textContent)),
  );

  // Management's report: the rows of its lots table.
  await page.goto(`${base}/admin/reports?from=${env('REPORT_FROM')}&to=${env('REPORT_TO')}`);
  await page.waitForSelector('.usage-report');
  out.reportLots = await page.evaluate(() => {
    const heading = Array.from(document.querySelectorAll('.usage-report h2')).find((h) => h.textContent.startsWith('Lots'));
    let el = heading && heading.nextElementSibling;
    while (el && el.tagName !== 'TABLE') el = el.nextElementSibling;
    if (!el) return null;
    return Array.from(el.rows).slice(1).map((r) => Array.from(r.cells).map((c) => c.textContent));
  });
  out.reportCharts = await page.locator('.usage-report svg').count();
  if (shots) await page.screenshot({ path: `${shots}/report.png`, fullPage: true });

  // Signing out ends the session.
  await Promise.all([page.waitForURL(/\/admin\/login/), page.click('text=Sign out')]);
  await page.goto(`${base}/admin`);
  out.afterSignOut = new URL(page.url()).pathname;
  return out;
}

await inChromium('admin portal e2e', run);
