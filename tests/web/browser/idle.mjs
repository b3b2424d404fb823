// The idle screen tells the truth about listening (issue 14, acceptance 1). Driven by
// tests/web/test_idle_browser.py: each stdin line {"step": NAME, "expect": {...}} waits until
// the quiet title (and, when given, the listening line) of both pages reads as expected, then
// answers {"step": NAME, "pages": {...}} with what each page shows.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BASE = process.env.DISPLAY_URL;
const TOKEN = process.env.DISPLAY_TOKEN;
const SHOTS = process.env.SCREENSHOT_DIR;
const say = (doc) => process.stdout.write(`${JSON.stringify(doc)}\n`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const common = { locale: 'en-GB', timezoneId: 'UTC' };
  const sizes = { wall: { width: 1920, height: 1080 }, phone: { width: 390, height: 844 } };
  const pages = {};
  for (const [name, viewport] of Object.entries(sizes)) {
    const page = await (await browser.newContext({ ...common, viewport })).newPage();
    page.on('pageerror', (err) => say({ step: 'log', page: name, error: String(err) }));
    await page.goto(`${BASE}?token=${encodeURIComponent(TOKEN)}&name=${name}`);
    await page.waitForFunction(() => document.getElementById('live').textContent === 'Live', null, { timeout: 10000 });
    pages[name] = page;
  }
  say({ step: 'ready' });
  for await (const line of createInterface({ input: process.stdin })) {
    const { step, expect } = JSON.parse(line);
    const shown = {};
    for (const [name, page] of Object.entries(pages)) {
      await page.waitForFunction(
        (want) => document.getElementById('quiet-title').textContent === want.title
          && (want.listening === undefined || document.getElementById('listening').textContent === want.listening),
        expect, { timeout: 15000, polling: 100 },
      ).catch(async () => {
        const seen = await page.evaluate(() => [document.getElementById('quiet-title').textContent,
          document.getElementById('listening').textContent]);
        throw new Error(`${step}/${name}: expected ${JSON.stringify(expect)}, shows ${JSON.stringify(seen)}`);
      });
      shown[name] = await page.evaluate(() => {
        const title = document.getElementById('quiet-title');
        const listening = document.getElementById('listening');
        return {
          title: title.textContent,
          listening: listening.hidden ? '' : listening.textContent,
          color: getComputedStyle(title).color,
          fontPx: parseFloat(getComputedStyle(title).fontSize),
          visibleText: document.body.innerText,
        };
      });
      if (SHOTS) await page.screenshot({ path: `${SHOTS}/idle-${step}-${name}.png` });
    }
    say({ step, pages: shown });
  }
} finally {
  await browser.close();
}
