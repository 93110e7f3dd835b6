// What the browser tests share: settings from the environment, expectations that fail the run,
// and headless Chromium started the way this machine's closed network needs.
import { chromium } from 'playwright-core';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export function expect(ok, message) {
  if (!ok) throw new Error(message);
}

// Run `test(page)` in a fresh headless Chromium (`CHROMIUM`), printing what it returns as one
// JSON line; a thrown error is printed under `name` and makes the run exit 1.
export async function inChromium(name, test, { extraArgs = [], context = {} } = {}) {
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM'),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
  try {
    const page = await (await browser.newContext(context)).newPage();
    page.setDefaultTimeout(15000);
    console.log(JSON.stringify(await test(page)));
  } catch (e) {
    console.error(`${name}: ${e.stack || e}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
