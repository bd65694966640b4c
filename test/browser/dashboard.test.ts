/// <reference lib="dom" />
// page.evaluate() callbacks run in the browser: they see its globals (document, location, sessionStorage).
// The web app at /ui/ in headless Chromium (Debian's, driven by playwright-core), against the real service on a
// real port with real runs: the demo source API, the local Lambdas, the embedded engine and PostgreSQL. A user
// signs in with the keyboard, starts a run from the Sources page and follows it to COMPLETED, reads its timeline
// and funnel, cancels a slow run, and retries a failed one after its API recovers; at 1280 px and at 390 px, with
// no console error. Each step saves a screenshot (test/support/browser.ts says where).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import request from 'supertest';
import { build } from 'vite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { demoSourcesAt, startTestApp, withEngine, type TestApp } from '../support/app.ts';
import { BrowserSession, VIEWPORTS } from '../support/browser.ts';
import { FAST_CATALOG } from '../support/catalog.ts';
import { TOKEN } from '../support/env.ts';

const RECORDS = 300;
const auth = { authorization: `Bearer ${TOKEN}` };

let api: DemoApi;
let dist: string;
let lakeDir: string;
let t: TestApp;
let base: string;
let session: BrowserSession | undefined;

beforeAll(async () => {
  dist = await mkdtemp(join(tmpdir(), 'afluente-ui-'));
  await build({ root: 'ui', logLevel: 'silent', build: { outDir: dist, emptyOutDir: true } });
  api = await startDemoApi({ records: RECORDS, pageSize: 100 });
  lakeDir = await mkdtemp(join(tmpdir(), 'afluente-browser-'));
  t = await startTestApp({
    env: { AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href },
    sources: await withEngine('embedded', await demoSourcesAt(`${api.url}/orders`)),
    // Two attempts a stage, so a run whose API keeps failing fails within the test.
    catalog: FAST_CATALOG,
    ui: { root: dist },
  });
  base = await t.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);

afterAll(async () => {
  await t?.close();
  await api?.close();
  for (const dir of [dist, lakeDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  // Whatever the app logged to the console is a failure of the test that ran it, and so is an error response
  // the test did not expect (it takes those it expects out of the list).
  const problems = [...(session?.problems ?? []), ...(session?.failedRequests ?? [])];
  await session?.close();
  session = undefined;
  api.setFaults({});
  expect(problems).toEqual([]);
});

/** Signs in the way a person would: the token typed into the form, Enter to submit. */
async function signIn(page: Page): Promise<void> {
  await page.goto(`${base}/ui/`);
  await page.getByRole('heading', { name: 'Sign in to afluente' }).waitFor();
  await page.getByLabel('API token').fill(TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
}

/** Waits until the run page shows the status (it polls the API while the run is active). */
async function runStatus(page: Page, status: string, timeout = 120_000): Promise<void> {
  try {
    await page.locator(`[data-testid="run-status"][data-status="${status}"]`).waitFor({ timeout });
  } catch (error) {
    const id = /#\/runs\/(\d+)/.exec(page.url())?.[1];
    const run = id ? (await request(t.app.server).get(`/runs/${id}`).set(auth)).body : undefined;
    throw new Error(
      `run ${id} did not reach ${status}: the API says ${run?.status} (${JSON.stringify(run?.error)})`,
      { cause: error },
    );
  }
}

/** A run of every record the API serves: a cursor before them all, whatever the source's own has reached. */
async function createRun(): Promise<number> {
  const res = await request(t.app.server)
    .post('/runs')
    .set(auth)
    .send({ source: 'demo', params: { cursor: '2000-01-01T00:00:00.000Z' } });
  expect(res.status).toBe(202);
  return res.body.id as number;
}

describe('the web app in Chromium', () => {
  it('signs in with the keyboard and keeps the token in session storage only', async () => {
    session = await BrowserSession.open();
    const { page } = session;
    await page.goto(`${base}/ui/`);
    // A wrong token is refused with the server's own message, and nothing is stored.
    await page.getByLabel('API token').fill('not-a-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#sign-in-problem').textContent()).toMatch(/token/i);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    // The API's 401 is the one error response, and the app showed its message.
    expect(session.failedRequests.splice(0)).toEqual(['401 GET /sources']);
    await session.screenshot('sign-in');

    await page.getByLabel('API token').fill('');
    await signIn(page);
    const stored = await page.evaluate(() => ({
      session: Object.values(sessionStorage),
      local: Object.keys(localStorage).length,
      url: location.href,
    }));
    expect(stored.session).toContain(TOKEN);
    expect(stored.local).toBe(0);
    expect(stored.url).not.toContain(TOKEN);

    // The skip link is the first stop of the keyboard and moves focus to the content.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');
  });

  it('starts a run from Sources and follows it to COMPLETED, with its timeline and funnel', async () => {
    session = await BrowserSession.open();
    const { page } = session;
    await signIn(page);
    await page.getByRole('link', { name: 'Sources' }).click();
    await page.getByRole('button', { name: 'Run demo now' }).click();
    // The app goes to the new run's page, and follows it live.
    await page.locator('[data-testid="run-status"]').waitFor();
    await runStatus(page, 'COMPLETED');
    const id = Number(/#\/runs\/(\d+)/.exec(page.url())?.[1]);
    expect(id).toBeGreaterThan(0);

    // One bar per stage on the timeline, and the funnel's counts are the API's.
    await expect.poll(() => page.locator('[data-testid="timeline-bar"]').count()).toBe(4);
    const run = (await request(t.app.server).get(`/runs/${id}`).set(auth).expect(200)).body;
    expect(await page.locator('[data-testid="funnel-fetched"]').textContent()).toContain(
      run.counts.fetched.toLocaleString('en-US'),
    );
    for (const [table, rows] of Object.entries(run.counts.rows as Record<string, number>))
      expect(
        await page.locator(`[data-testid="funnel-table"][data-table="${table}"]`).textContent(),
      ).toContain(rows.toLocaleString('en-US'));
    await session.screenshot('run-completed');

    // The runs list shows it, and so does a phone-sized screen, without sideways scrolling.
    await page.getByRole('link', { name: 'Runs', exact: true }).click();
    await page.locator(`[data-testid="run-row"][data-run-id="${id}"]`).waitFor();
    await session.screenshot('runs');
    await page.setViewportSize(VIEWPORTS.phone);
    await page.locator(`[data-testid="run-row"][data-run-id="${id}"]`).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      VIEWPORTS.phone.width,
    );
    await session.screenshot('runs-phone');
    await page.goto(`${base}/ui/#/runs/${id}`);
    await runStatus(page, 'COMPLETED');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      VIEWPORTS.phone.width,
    );
    await session.screenshot('run-phone');
  }, 180_000);

  it('shows a new run in the runs list and follows it there to COMPLETED, without a reload', async () => {
    session = await BrowserSession.open();
    const { page } = session;
    await signIn(page);
    const id = await createRun();
    const row = page.locator(`[data-testid="run-row"][data-run-id="${id}"]`);
    await row.waitFor();
    await row.locator('[data-testid="run-status"][data-status="COMPLETED"]').waitFor({ timeout: 120_000 });
    // The filters narrow the list, and the URL says so.
    await page.getByLabel('Status').selectOption('FAILED');
    await expect.poll(() => page.url()).toContain('status=FAILED');
    await row.waitFor({ state: 'detached' });
  }, 180_000);

  it('browses a run’s rejected records with their reasons, and a source’s runs, schema versions and drift', async () => {
    // Every 50th record breaks in one of three ways: 6 of 300 are rejected, under the 5 % the source allows.
    api.setFaults({ badRecords: { every: 50 } });
    const id = await createRun();
    session = await BrowserSession.open();
    const { page } = session;
    await signIn(page);
    await page.goto(`${base}/ui/#/runs/${id}`);
    await runStatus(page, 'COMPLETED');
    await page.getByRole('link', { name: 'Browse the 6 rejected records' }).click();
    await page.getByRole('heading', { name: `Rejected records of run ${id}` }).waitFor();
    await expect.poll(() => page.locator('[data-testid="reject"]').count()).toBe(6);
    const reasons = await page.locator('[data-testid="reject"] .reasons').allTextContents();
    expect(reasons.join('\n')).toMatch(/status/);
    expect(reasons.join('\n')).toMatch(/total/);
    await session.screenshot('rejects');

    await page.goto(`${base}/ui/#/sources/demo`);
    await page.getByRole('heading', { name: 'demo', level: 1 }).waitFor();
    // The strip of the source's last runs links each one, with its status.
    await page.getByRole('link', { name: `Run ${id}: COMPLETED` }).waitFor();
    // Its schema versions: the one its runs loaded is the current config's.
    await page
      .locator('[data-testid="schema-versions"]')
      .getByText('current config', { exact: true })
      .waitFor();
    // The drift its last run saw: the demo's customer.email, which no column names.
    expect(await page.locator('[data-testid="source"]').textContent()).toContain('customer.email');
    await session.screenshot('source');

    // A backfill of two daily windows from the form: a bad step is refused with the API's message, then two
    // runs, one per window, complete.
    const form = page.getByRole('region', { name: 'Backfill' });
    await form.getByLabel('From (inclusive)').fill('2026-01-01');
    await form.getByLabel('To (exclusive)').fill('2026-01-03');
    await form.getByLabel('Step').fill('one day');
    await form.getByRole('button', { name: 'Start backfill' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toMatch(/step/);
    expect(session.failedRequests.splice(0)).toEqual(['400 POST /sources/demo/backfill']);
    await form.getByLabel('Step').fill('P1D');
    await form.getByRole('button', { name: 'Start backfill' }).click();
    const status = page.locator('[data-testid="backfill"]');
    await status.getByText('2 of 2 runs completed').waitFor({ timeout: 120_000 });
    expect(await status.getByRole('link').count()).toBe(2);
  }, 180_000);

  it('cancels a running run from its page', async () => {
    // Every page after the first is held, so the run is still ingesting when the user cancels it.
    api.setFaults({ slow: { pages: [2, 3], delayMs: 60_000 } });
    const id = await createRun();
    session = await BrowserSession.open();
    const { page } = session;
    await signIn(page);
    await page.goto(`${base}/ui/#/runs/${id}`);
    await runStatus(page, 'RUNNING', 60_000);
    // Escape closes the dialog without cancelling, and gives the focus back to the button that opened it.
    await page.getByRole('button', { name: 'Cancel run' }).click();
    const dialog = page.getByRole('dialog', { name: `Cancel run ${id}?` });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Cancel run');
    await page.keyboard.press('Enter');
    await dialog.getByLabel('Reason (optional)').fill('testing the web app');
    await dialog.getByRole('button', { name: 'Cancel run' }).click();
    await runStatus(page, 'CANCELLED', 60_000);
    await session.screenshot('run-cancelled');
    const run = (await request(t.app.server).get(`/runs/${id}`).set(auth).expect(200)).body;
    expect(run.status).toBe('CANCELLED');
  }, 120_000);

  it('retries a failed run once its API recovers, and it completes', async () => {
    // The API answers 503 to the first page every time: both ingest attempts fail, and so does the run.
    api.setFaults({ serverErrors: { pages: [1], status: 503, times: 1000 } });
    const id = await createRun();
    session = await BrowserSession.open();
    const { page } = session;
    await signIn(page);
    await page.goto(`${base}/ui/#/runs/${id}`);
    await runStatus(page, 'FAILED', 120_000);
    await page.locator('[data-testid="run-error"]').waitFor();
    expect(await page.locator('[data-testid="run-error"]').textContent()).toMatch(/503/);
    await session.screenshot('run-failed');

    api.setFaults({});
    await page.getByRole('button', { name: 'Retry' }).click();
    const dialog = page.getByRole('dialog', { name: `Retry run ${id}` });
    await dialog.getByRole('button', { name: 'Retry' }).click();
    await runStatus(page, 'COMPLETED', 120_000);
    // The timeline shows both attempts: the first one's failed ingest, and the second one's four stages.
    const bars = page.locator('[data-testid="timeline-bar"]');
    await expect
      .poll(async () =>
        (
          await bars.evaluateAll((els) =>
            els.map((e) => `${e.dataset.runAttempt} ${e.dataset.stage} ${e.dataset.status}`),
          )
        ).sort(),
      )
      .toEqual([
        '1 ingest FAILED',
        '2 ingest COMPLETED',
        '2 load COMPLETED',
        '2 transform COMPLETED',
        '2 validate COMPLETED',
      ]);
    await session.screenshot('run-retried');
  }, 240_000);
});
