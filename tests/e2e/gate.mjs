// The gate page in headless Chromium at a phone's size, as an attendant's handheld with a
// keyboard-wedge scanner uses it: sign the gate in, scan a pass (typed into the focused input
// and Enter, which is what a wedge scanner does), read the verdict. Prints what it saw as JSON.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { env, expect, inChromium } from './browser.mjs';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// Serious and critical accessibility violations of the page as it is now.
async function audit(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${name}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

const base = env('GATE_URL');
const lot = env('LOT');
const pass = env('PASS');
const token = env('GATE_TOKEN');
const shots = process.env.SCREENSHOT_DIR;

async function signIn(page, way, tok) {
  await page.fill('#lot', lot);
  await page.selectOption('#way', way);
  await page.fill('#token', tok);
  await page.click('#setup button[type=submit]');
  await page.waitForSelector('#scanner:not([hidden])');
}

async function scan(page, text) {
  const before = await page.textContent('#verdict');
  await page.fill('#pass', text);
  await page.press('#pass', 'Enter');
  await page.waitForFunction((b) => document.querySelector('#verdict').textContent !== b, before);
  return {
    verdict: await page.getAttribute('#verdict', 'class'),
    word: (await page.textContent('#verdict .word')).trim(),
    why: (await page.textContent('#verdict .why')).trim(),
    focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
  };
}

await inChromium('gate', async (page) => {
  const out = { violations: [] };
  await page.goto(`${base}/gate`);
  await page.waitForSelector('#setup:not([hidden])');
  out.violations.push(...(await audit(page, 'gate-setup')));
  await signIn(page, 'entries', token);
  out.where = await page.textContent('#where');
  out.entry = await scan(page, pass);
  if (shots) await page.screenshot({ path: `${shots}/gate-open.png`, fullPage: true });
  out.violations.push(...(await audit(page, 'gate-open')));
  out.again = await scan(page, pass);
  if (shots) await page.screenshot({ path: `${shots}/gate-refused.png`, fullPage: true });
  out.violations.push(...(await audit(page, 'gate-refused')));
  out.garbage = await scan(page, 'not-a-pass');

  await page.click('#change');
  await signIn(page, 'exits', token);
  out.exit = await scan(page, pass);
  if (shots) await page.screenshot({ path: `${shots}/gate-exit.png`, fullPage: true });

  await page.click('#change');
  await signIn(page, 'entries', 'wrong-token');
  out.badToken = await scan(page, pass);
  // The token is kept for this tab only, never in lasting storage.
  out.lasting = await page.evaluate(() => JSON.stringify(window.localStorage));

  // The camera path, where the browser has a barcode detector. This Chromium on Linux has
  // none, so the test stands one in that "sees" the second pass in Chromium's fake camera
  // stream; the page's own code opens the camera, reads the code and checks it.
  const camera = await page.context().browser().newContext({
    viewport: { width: 390, height: 844 },
    permissions: ['camera'],
  });
  await camera.addInitScript((seen) => {
    window.BarcodeDetector = class {
      constructor(options) { this.formats = options.formats; }
      async detect(video) { return video.readyState >= 2 ? [{ rawValue: seen, format: 'qr_code' }] : []; }
    };
  }, env('CAMERA_PASS'));
  const cam = await camera.newPage();
  await cam.goto(`${base}/gate`);
  await signIn(cam, 'entries', token);
  out.cameraButton = await cam.isVisible('#camera');
  await cam.click('#camera');
  await cam.waitForSelector('#verdict.open, #verdict.refused', { timeout: 15000 });
  out.camera = {
    verdict: await cam.getAttribute('#verdict', 'class'),
    why: (await cam.textContent('#verdict .why')).trim(),
    streaming: await cam.evaluate(() => !document.querySelector('#video').hidden),
  };
  if (shots) await cam.screenshot({ path: `${shots}/gate-camera.png`, fullPage: true });
  expect(out.entry.word.length > 0, 'no verdict shown');
  return out;
}, {
  context: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
  extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
