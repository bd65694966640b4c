// Runs before `npm test`, `npm run demo` and `npm start`: on a fresh clone it installs the dependencies, Node 24
// among them, builds the web app (ui/dist) when it is missing or older than its sources, with `--python` the
// Python tools (.venv), and with `--browser` Debian's chromium for the browser tests, so the two quick-start
// commands work without a separate install step. Plain JavaScript on purpose: it runs on whatever Node the shell
// has.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

if (!existsSync('node_modules/.bin/node') || !existsSync('node_modules/.package-lock.json')) {
  console.error('afluente: installing dependencies and Node 24 (npm ci), once');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

/** The newest modification time of the files under `dir` (ui/dist left out), in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== join('ui', 'dist') && entry.name !== 'node_modules')
        latest = Math.max(latest, newest(path));
    } else latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

// The service serves ui/dist at /ui/. A glance at a few dozen files' times when it is up to date.
const built = join('ui', 'dist', 'index.html');
const sourcesChanged = Math.max(newest('ui'), statSync('package-lock.json').mtimeMs);
if (!existsSync(built) || statSync(built).mtimeMs < sourcesChanged) {
  if (existsSync('node_modules/vite')) {
    console.error(
      `afluente: building the web app (npm run build), as ui/dist is ${existsSync(built) ? 'older than ui/' : 'missing'}`,
    );
    execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  } else {
    // A production-only install has no Vite: the API works, and /ui/ says how to build the app.
    console.error(
      'afluente: the web app is not built and Vite is not installed (npm ci installs it); /ui/ answers 503',
    );
  }
}

// Quick when .venv already matches requirements.txt, so it can run before every command. The service itself
// needs no Python, so `npm start` leaves it out.
if (process.argv.includes('--python'))
  execFileSync('bash', ['scripts/setup-python.sh'], { stdio: 'inherit' });

// Quick when chromium is already installed.
if (process.argv.includes('--browser'))
  execFileSync('bash', ['scripts/setup-browser.sh'], { stdio: 'inherit' });
