// Drives Debian's chromium (playwright-core, no bundled browser) through the fleet web UI:
// `/` must land on the login page; log in; fleet page; click to a host; click a control's
// evidence to its bundle page; log out. Screenshots of each step go to MSP_BROWSER_OUT.
//
// Environment (fleet/tests/browser.rs sets these; point it at any running server by hand):
//   MSP_FLEET_URL     base URL, e.g. http://127.0.0.1:8427
//   MSP_FLEET_TOKEN   an operator token
//   MSP_BROWSER_OUT   directory for the PNGs
//   MSP_BROWSER_VISIT optional space-separated extra paths to open and screenshot
//   MSP_CHROMIUM      browser binary (default /usr/bin/chromium)
// Any failed expectation, console error (a CSP violation shows as one), page error or
// JavaScript dialog (an injected alert()) makes it exit 1.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = (process.env.MSP_FLEET_URL || process.argv[2] || '').replace(/\/$/, '');
const token = process.env.MSP_FLEET_TOKEN || '';
const out = process.env.MSP_BROWSER_OUT || 'browser-artifacts';
const extra = (process.env.MSP_BROWSER_VISIT || '').split(/\s+/).filter(Boolean);
if (!base || !token) {
  console.error('run.mjs: set MSP_FLEET_URL (or pass it as the first argument) and MSP_FLEET_TOKEN');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const problems = [];
// The wrong-token step answers 401 on purpose; chromium logs that as a console error.
let expect401 = false;
function expect(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.MSP_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in a container: chromium's sandbox needs user namespaces it may not get.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, javaScriptEnabled: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expect401 && m.text().includes('status of 401')) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => { problems.push(`a script opened a dialog: ${d.message()}`); await d.dismiss(); });

  const shot = async (name) => {
    const file = join(out, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot ${file} (${page.url()})`);
  };

  // 1. Not logged in: the fleet page sends us to the login form.
  await page.goto(`${base}/`);
  expect(new URL(page.url()).pathname === '/login', `/ lands on /login, got ${page.url()}`);
  expect(await page.locator('input[name=token]').count() === 1, 'login form has a token field');
  await shot('01-login');

  // 2. A wrong token is refused, the right one logs in.
  await page.fill('input[name=token]', `${token}-wrong`);
  expect401 = true;
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  expect((await page.content()).includes('not accepted'), 'wrong token refused');
  expect401 = false;
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  expect(new URL(page.url()).pathname === '/', `after login we are on /, got ${page.url()}`);
  expect((await page.locator('h1').innerText()).trim() === 'Fleet', 'fleet page heading');
  // The stylesheet loaded (CSP allows 'self'): the header bar is dark.
  const bg = await page.locator('header.top').evaluate((e) => getComputedStyle(e).backgroundColor);
  expect(bg === 'rgb(24, 35, 58)', `stylesheet applied (header background ${bg})`);
  await shot('02-fleet');

  // 3. To a host: the first host needing attention, else the first client's first host.
  if (await page.locator('a.host').count() === 0) {
    await Promise.all([page.waitForNavigation(), page.locator('a.client').first().click()]);
  }
  const hostLinks = page.locator('a.host');
  expect(await hostLinks.count() > 0, 'a host link');
  await Promise.all([page.waitForNavigation(), hostLinks.first().click()]);
  expect(new URL(page.url()).pathname.includes('/h/'), `on a host page, got ${page.url()}`);
  expect(await page.locator('table.controls').count() === 1, 'host page has the controls table');
  await shot('03-host');

  // 4. A control's evidence link to its bundle page.
  const ev = page.locator('table.controls a.evidence');
  expect(await ev.count() > 0, 'a control with an evidence link');
  await Promise.all([page.waitForNavigation(), ev.first().click()]);
  expect(new URL(page.url()).pathname.includes('/b/'), `on a bundle page, got ${page.url()}`);
  const text = await page.locator('main').innerText();
  expect(text.includes('Verify it yourself'), 'bundle page shows the stock-tool commands');
  expect(await page.locator('pre.json').count() === 1, 'bundle page shows the JSON');
  await shot('04-bundle');

  // 5. Extra pages (e.g. one with hostile strings): they must render, and run nothing.
  for (const [i, p] of extra.entries()) {
    const r = await page.goto(`${base}${p}`);
    expect(r && r.status() === 200, `${p}: status ${r && r.status()}`);
    await shot(`05-extra-${i + 1}`);
  }

  // 6. Log out: the session ends, `/` is the login page again.
  await Promise.all([page.waitForNavigation(), page.click('header .who button[type=submit]')]);
  expect(new URL(page.url()).pathname === '/login', `after logout on /login, got ${page.url()}`);
  await page.goto(`${base}/`);
  expect(new URL(page.url()).pathname === '/login', 'after logout / asks for login again');
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('browser run: ok');
