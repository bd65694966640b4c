import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { orderAt } from '../../demo/source-api/records.ts';

/**
 * Writes the shipped sources file into `dir` with the demo source pointed at `apiUrl` and its engine set, for a
 * test that starts the real service process (which reads its sources from a file). Returns the file's path.
 */
export async function writeDemoSourcesFile(
  dir: string,
  apiUrl: string,
  engine: 'auto' | 'embedded' | 'spark' = 'auto',
): Promise<string> {
  const shipped = await readFile('config/sources.yaml', 'utf8');
  if (!shipped.includes('http://127.0.0.1:8787/orders') || !/engine: auto\b/.test(shipped))
    throw new Error('config/sources.yaml changed: the demo source no longer reads as this helper expects');
  await copyFile('config/schemas/orders.schema.json', join(dir, 'orders.schema.json'));
  const file = join(dir, 'sources.yaml');
  await writeFile(
    file,
    shipped
      .replace('http://127.0.0.1:8787/orders', `${apiUrl}/orders`)
      .replace('schemas/orders.schema.json', 'orders.schema.json')
      .replace(/engine: auto\b/, `engine: ${engine}`),
  );
  return file;
}

/** The warehouse rows a run of the demo API's first `records` orders must leave, per table. */
export function demoRows(records: number, seed = 1): Record<string, number> {
  let items = 0;
  let tags = 0;
  for (let i = 0; i < records; i++) {
    const order = orderAt(i, seed);
    items += order.items.length;
    tags += order.tags.length;
  }
  return { orders: records, order_items: items, order_tags: tags };
}
