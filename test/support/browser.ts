import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

/** Debian's chromium, which scripts/setup-browser.sh installs; AFLUENTE_CHROMIUM names another binary. */
export const CHROMIUM = process.env.AFLUENTE_CHROMIUM ?? '/usr/bin/chromium';

/** The widths the web app must be usable at: a laptop and a phone. */
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/**
 * Where the tests save their screenshots: a folder of the test run by default, or `docs/screenshots` (what the
 * README shows) when AFLUENTE_UPDATE_SCREENSHOTS=1, so a plain test run changes no tracked file.
 */
export const SCREENSHOTS =
  process.env.AFLUENTE_UPDATE_SCREENSHOTS === '1'
    ? 'docs/screenshots'
    : join(process.env.AFLUENTE_TEST_OUTPUT ?? 'test-output', 'screenshots');

/**
 * Headless Chromium with one page, recording every console error or warning, every uncaught page error and every
 * error response, so a test can assert the app logged none and asked for nothing it did not expect to be refused.
 */
export class BrowserSession {
  /** Console errors and warnings, uncaught page errors, and requests that got no response. */
  readonly problems: string[] = [];
  /** `401 GET /sources`: every response with an error status the page received. */
  readonly failedRequests: string[] = [];
  readonly browser: Browser;
  readonly context: BrowserContext;
  readonly page: Page;

  private constructor(browser: Browser, context: BrowserContext, page: Page) {
    this.browser = browser;
    this.context = context;
    this.page = page;
    page.on('console', (message: ConsoleMessage) => {
      // Chromium itself logs every 4xx/5xx response as an error: those are in `failedRequests`, for a test to
      // say which it expects (a refused token is the server's answer, and the app shows it).
      if (message.text().startsWith('Failed to load resource: the server responded with a status of')) return;
      if (message.type() === 'error' || message.type() === 'warning')
        this.problems.push(`console.${message.type()}: ${message.text()}`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400) {
        const url = new URL(response.url());
        this.failedRequests.push(`${response.status()} ${response.request().method()} ${url.pathname}`);
      }
    });
    page.on('requestfailed', (failed) => {
      // ERR_ABORTED is the page's own doing: a poll it stopped (AbortController) as the view changed.
      const reason = failed.failure()?.errorText;
      if (reason !== 'net::ERR_ABORTED')
        this.problems.push(`request failed: ${failed.method()} ${failed.url()} (${reason})`);
    });
    page.on('pageerror', (error) => this.problems.push(`page error: ${error.message}`));
  }

  static async open(
    viewport: { width: number; height: number } = VIEWPORTS.desktop,
  ): Promise<BrowserSession> {
    // No sandbox: the tests run as root in CI, where Chromium refuses to start with one.
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox'],
    });
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    return new BrowserSession(browser, context, page);
  }

  /** Saves a full-page screenshot as `<name>.png` and returns its path. */
  async screenshot(name: string): Promise<string> {
    await mkdir(SCREENSHOTS, { recursive: true });
    const path = join(SCREENSHOTS, `${name}.png`);
    await this.page.screenshot({ path, fullPage: true });
    return path;
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
    await this.browser.close();
  }
}
