// Fails fast with a clear message when a service the tests need is not running, instead of 60 s of timeouts.
import { Socket } from 'node:net';

const SERVICES = [
  { name: 'MariaDB/MySQL', host: '127.0.0.1', port: 3306 },
  { name: 'Redis', host: '127.0.0.1', port: 6379 },
];

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, host);
  });
}

export default async function setup(): Promise<void> {
  const down = [];
  for (const s of SERVICES)
    if (!(await reachable(s.host, s.port))) down.push(`${s.name} at ${s.host}:${s.port}`);
  if (down.length > 0) throw new Error(`the tests need these services running: ${down.join(', ')}`);
}
