// Drives the soundalert display in Debian's chromium (playwright-core), step by step with
// tests/web/test_browser.py: JSON lines on stdout say what happened, JSON lines on stdin say
// when the test has published something. Exits non-zero with a reason on any failure.
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.DISPLAY_URL;
const TOKEN = process.env.DISPLAY_TOKEN;
const SHOTS = process.env.SCREENSHOT_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EXPECT = JSON.parse(process.env.EXPECT); // {category, color, room, title}

const reader = createInterface({ input: process.stdin });
const lines = reader[Symbol.asyncIterator]();
const say = (doc) => process.stdout.write(`${JSON.stringify(doc)}\n`);
async function hear(step) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${step}`);
  const doc = JSON.parse(value);
  if (doc.step !== step) throw new Error(`expected step ${step}, got ${value}`);
  return doc;
}
function check(ok, message) { if (!ok) throw new Error(message); }
const rgb = (hex) => `rgb(${parseInt(hex.slice(1, 3), 16)}, ${parseInt(hex.slice(3, 5), 16)}, ${parseInt(hex.slice(5, 7), 16)})`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const common = { locale: 'en-GB', timezoneId: process.env.DISPLAY_TZ || 'UTC' };
  // The wall display flashes; the phone asks for reduced motion (steady contrast instead).
  const wall = await browser.newContext({ ...common, viewport: { width: 1920, height: 1080 } });
  const phone = await browser.newContext({
    ...common, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true,
    hasTouch: true, reducedMotion: 'reduce',
  });

  // Without the token the page answers 401 (and offers a token form).
  const stranger = await browser.newContext(common);
  const denied = await (await stranger.newPage()).goto(BASE);
  check(denied.status() === 401, `page without token answered ${denied.status()}`);
  await stranger.close();

  const pages = {};
  for (const [name, context] of [['wall', wall], ['phone', phone]]) {
    const page = await context.newPage();
    page.on('pageerror', (err) => say({ step: 'log', page: name, error: String(err) }));
    const response = await page.goto(`${BASE}?token=${encodeURIComponent(TOKEN)}&name=${name}`);
    check(response.status() === 200, `${name}: page with token answered ${response.status()}`);
    await page.waitForFunction(() => document.getElementById('live').textContent === 'Live', null, { timeout: 10000 });
    check(!page.url().includes('token='), `${name}: the token stayed in the address bar`);
    // Record the moment the alert screen appears, from inside the page.
    await page.evaluate(() => {
      const panel = document.getElementById('alert');
      window.__shownAt = null;
      new MutationObserver(() => {
        if (!panel.hidden && window.__shownAt === null) window.__shownAt = Date.now();
      }).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
    });
    pages[name] = page;
  }
  say({ step: 'ready' });

  const { published_ms: publishedMs } = await hear('published');
  const shown = {};
  for (const [name, page] of Object.entries(pages)) {
    await page.waitForFunction(
      (category) => window.__shownAt !== null && document.getElementById('alert').dataset.category === category,
      EXPECT.category, { timeout: 5000, polling: 20 },
    );
    const facts = await page.evaluate(() => {
      const panel = document.getElementById('alert');
      const style = getComputedStyle(panel);
      return {
        shownAt: window.__shownAt,
        background: style.backgroundColor,
        animation: style.animationName,
        flashing: panel.classList.contains('flashing'),
        what: document.getElementById('alert-what').textContent,
        where: document.getElementById('alert-where').textContent,
        when: document.getElementById('alert-when').textContent,
        focused: document.activeElement?.id,
        announced: document.getElementById('announcer').textContent,
      };
    });
    shown[name] = { ...facts, latency_ms: facts.shownAt - publishedMs };
    check(facts.what === EXPECT.title, `${name}: title ${facts.what}`);
    check(facts.where.includes(EXPECT.room), `${name}: room ${facts.where}`);
    check(/\d\d:\d\d:\d\d/.test(facts.when), `${name}: when says ${facts.when}`);
    check(facts.focused === 'ack', `${name}: focus is on ${facts.focused}, not Acknowledge`);
    check(facts.announced.includes(EXPECT.title), `${name}: live region says ${facts.announced}`);
    check(facts.flashing, `${name}: a sounding alert should flash`);
  }
  check(shown.phone.background === rgb(EXPECT.color), `phone background ${shown.phone.background}`);
  check(shown.phone.animation === 'none', `reduced motion still animates: ${shown.phone.animation}`);
  check(shown.wall.animation === 'flash', `wall animation ${shown.wall.animation}`);

  // Screenshots as the person sees them (infinite animations rest at their first frame:
  // the category colour).
  mkdirSync(SHOTS, { recursive: true });
  await pages.wall.screenshot({ path: `${SHOTS}/web-wall.png`, animations: 'disabled' });
  await pages.phone.screenshot({ path: `${SHOTS}/web-phone.png`, animations: 'disabled' });
  const wallBackground = await pages.wall.evaluate(() => getComputedStyle(document.getElementById('alert')).backgroundColor);
  check(wallBackground === rgb(EXPECT.color), `wall background at rest ${wallBackground}`);
  say({ step: 'shown', shown });

  // False alarm, from the keyboard on the wall display: Tab from Acknowledge, then Enter.
  await pages.wall.keyboard.press('Tab');
  const focused = await pages.wall.evaluate(() => document.activeElement?.id);
  check(focused === 'false-alarm', `Tab moved focus to ${focused}`);
  await pages.wall.keyboard.press('Enter');
  for (const page of Object.values(pages)) {
    await page.waitForFunction(() => document.getElementById('alert').hidden, null, { timeout: 5000 });
    await page.waitForFunction(
      (title) => [...document.querySelectorAll('#history .event')].some(
        (li) => li.textContent.includes(title) && li.textContent.includes('False alarm')),
      EXPECT.title, { timeout: 5000 },
    );
  }
  say({ step: 'clicked' });

  await hear('settled');
  // The quiet screen, with the history filtered by room and the sensors.
  await pages.phone.selectOption('#filter-room', EXPECT.room.toLowerCase());
  const filtered = await pages.phone.$$eval('#history .event', (els) => els.map((e) => e.textContent));
  check(filtered.length > 0 && filtered.every((t) => t.includes(EXPECT.room)), `room filter: ${filtered}`);
  await pages.phone.selectOption('#filter-room', '');
  const nodes = await pages.wall.$$eval('#nodes .node', (els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
  await pages.wall.screenshot({ path: `${SHOTS}/web-wall-quiet.png`, animations: 'disabled' });
  await pages.phone.screenshot({ path: `${SHOTS}/web-phone-quiet.png`, animations: 'disabled', fullPage: true });
  say({ step: 'done', nodes, filtered });
} finally {
  await browser.close();
  reader.close();
}
