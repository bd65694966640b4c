// Runs before `npm test`, `npm run demo` and `npm start`: on a fresh clone it installs the dependencies, Node 24
// among them, with `--python` the Python tools (.venv), and with `--browser` Debian's chromium for the browser
// tests, so the two quick-start commands work without a separate install step. Plain JavaScript on purpose: it runs on whatever Node the shell has.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (!existsSync('node_modules/.bin/node') || !existsSync('node_modules/.package-lock.json')) {
  console.error('afluente: installing dependencies and Node 24 (npm ci), once');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

// Quick when .venv already matches requirements.txt, so it can run before every command. The service itself
// needs no Python, so `npm start` leaves it out.
if (process.argv.includes('--python'))
  execFileSync('bash', ['scripts/setup-python.sh'], { stdio: 'inherit' });

// Quick when chromium is already installed.
if (process.argv.includes('--browser'))
  execFileSync('bash', ['scripts/setup-browser.sh'], { stdio: 'inherit' });
