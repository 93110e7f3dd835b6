// Management's usage report file (report.html, as `parkflow report` writes it) in headless
// Chromium at a laptop's size: every section is there and filled, and nothing is wider than the
// page. Run by tests/it/demo.rs; what the browser saw is printed as one JSON line, and any
// failed expectation exits 1.
import { env, expect, inChromium } from './browser.mjs';

const sections = [
  'Occupancy by hour',
  'Peak times',
  'Lots: turnover, dwell, revenue',
  'Revenue by vehicle type',
  'Revenue by entry method',
  'Payments by method',
  'Dwell times',
  'Reservations',
];

async function run(page) {
  await page.goto(`file://${env('REPORT_HTML')}`);
  await page.waitForSelector('.usage-report');
  const seen = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const headings = Array.from(document.querySelectorAll('.usage-report h2'));
    const filled = {};
    for (const h of headings) {
      // What follows a heading up to the next one: a chart, a table with rows, or a sentence.
      let content = 0;
      for (let n = h.nextElementSibling; n && n.tagName !== 'H2'; n = n.nextElementSibling) {
        if (n.tagName === 'TABLE') content += n.querySelectorAll('tr').length - 1;
        else if (n.tagName === 'svg' || n.tagName === 'SVG' || n.querySelector?.('svg')) content += 1;
        else if (n.tagName === 'P' && n.textContent.trim()) content += 1;
      }
      filled[h.textContent] = content;
    }
    const wide = Array.from(document.querySelectorAll('.usage-report *'))
      .filter((e) => e.getBoundingClientRect().right > width + 1)
      .map((e) => `${e.tagName.toLowerCase()}${e.className?.baseVal ?? e.className ? '.' + (e.className.baseVal ?? e.className) : ''}`);
    return {
      width,
      scrollWidth: document.documentElement.scrollWidth,
      filled,
      wide: [...new Set(wide)].slice(0, 10),
      charts: document.querySelectorAll('.usage-report svg').length,
    };
  });
  for (const s of sections) {
    expect(s in seen.filled, `section "${s}" missing: ${JSON.stringify(seen.filled)}`);
    expect(seen.filled[s] > 0, `section "${s}" is empty`);
  }
  expect(seen.scrollWidth <= seen.width, `the page scrolls sideways: ${JSON.stringify(seen)}`);
  expect(seen.wide.length === 0, `wider than the page: ${seen.wide.join(', ')}`);
  const shots = process.env.SCREENSHOT_DIR;
  if (shots) await page.screenshot({ path: `${shots}/report.png`, fullPage: true });
  return seen;
}

await inChromium('report e2e', run, { extraArgs: ['--allow-file-access-from-files'], context: { viewport: { width: 1280, height: 900 } } });
