import Fastify from 'fastify';
import { createPool } from 'mysql2/promise';

// The API benchmark's baseline: a bare Fastify route that runs one mysql2 query, the run's row by primary key,
// on the same database the service reads. No logger, auth, rate limit or schema: the least an API answering
// from MySQL can do, and what afluente's routes are measured against. A process of its own, like the service.
// Usage: node bench/api/baseline-server.ts <mysql url>; prints `listening <port>` once it is.

const url = process.argv[2];
if (!url) throw new Error('usage: node bench/api/baseline-server.ts <mysql url>');

// The pool size of the service's ORM (service/state/orm.ts), so both may hold as many queries in flight.
const pool = createPool({ uri: url, connectionLimit: 10 });
const app = Fastify();
app.get<{ Params: { id: string } }>('/runs/:id', async (request, reply) => {
  const [rows] = await pool.query('select * from runs where id = ?', [Number(request.params.id)]);
  const row = (rows as unknown[])[0];
  return row ? row : reply.code(404).send({ message: 'not found' });
});
app.addHook('onClose', async () => pool.end());

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(`listening ${typeof address === 'object' && address ? address.port : ''}`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
